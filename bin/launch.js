// Shared launcher for the commands in bin/ (spire-server, spire-agent, tpm-enroll): each calls
// launch() with its module under dist/, either as a two-line Node script or, where the command
// needs Node/V8 flags (spire-agent), from a shell script that runs
// `node <flags> bin/launch.js <module> <args…>`. The same files serve as package.json "bin"
// entries after `npm install -g` and as ./bin/<command> from a checkout.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Bundled forms of entry points (scripts/bundle-agent.mjs), by the module they replace. A
 * bundle is used only when it is at least as new as that module: `tsc` rewrites every file of
 * dist/ on each build, so a bundle older than its module was built from older code.
 */
const BUNDLES = { 'agent/cli/main.js': 'agent-bundle/main.js' };

/** dist/<modulePath>, or its bundle when a fresh one exists. */
function entryFile(modulePath) {
  const plain = fileURLToPath(new URL(`../dist/${modulePath}`, import.meta.url));
  const bundled = BUNDLES[modulePath];
  if (bundled === undefined) return plain;
  const bundle = fileURLToPath(new URL(`../dist/${bundled}`, import.meta.url));
  try {
    if (statSync(bundle).mtimeMs >= statSync(plain).mtimeMs) return bundle;
  } catch {
    // no bundle (or no dist at all: reported below)
  }
  return plain;
}

/**
 * Imports dist/<modulePath> (or its fresh bundle) and calls its `main(argv, io)`, exiting with
 * its return code.
 * @param {string} modulePath path under dist/, e.g. "server/cli/main.js"
 * @param {readonly string[]} [argv] the command's arguments (default: those after the script)
 */
export async function launch(modulePath, argv = process.argv.slice(2)) {
  const target = entryFile(modulePath);
  if (!existsSync(target)) {
    process.stderr.write(
      `spire-edge is not built (${target} is missing): run scripts/setup.sh or "npm run build" first\n`,
    );
    process.exit(2);
  }
  const mod = await import(pathToFileURL(target).href);
  const code = await mod.main(argv, {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  });
  if (typeof code === 'number') process.exitCode = code;
}

// `node bin/launch.js <module under dist/> <args…>` (bin/spire-agent).
const self = process.argv[1] === undefined ? undefined : realpathSync(process.argv[1]);
if (self === fileURLToPath(import.meta.url)) {
  const modulePath = process.argv[2];
  if (modulePath === undefined || !/^[a-z0-9/-]+\.js$/.test(modulePath)) {
    process.stderr.write('usage: node bin/launch.js <module under dist/> [args…]\n');
    process.exit(2);
  }
  await launch(modulePath, process.argv.slice(3));
}
