// Shared launcher for the commands in bin/ (spire-server, spire-agent, tpm-enroll): each is a
// two-line script that calls launch() with its module under dist/. The same files serve as
// package.json "bin" entries after `npm install -g` and as ./bin/<command> from a checkout.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Imports dist/<modulePath> and calls its `main(argv, io)`, exiting with its return code.
 * @param {string} modulePath path under dist/, e.g. "server/cli/main.js"
 */
export async function launch(modulePath) {
  const target = fileURLToPath(new URL(`../dist/${modulePath}`, import.meta.url));
  if (!existsSync(target)) {
    process.stderr.write(
      `spire-edge is not built (${target} is missing): run scripts/setup.sh or "npm run build" first\n`,
    );
    process.exit(2);
  }
  const mod = await import(pathToFileURL(target).href);
  const code = await mod.main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  });
  if (typeof code === 'number') process.exitCode = code;
}
