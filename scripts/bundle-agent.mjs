#!/usr/bin/env node
// Bundles the compiled agent command (dist/agent/cli/main.js and everything it imports) into
// dist/agent-bundle/ with esbuild: an ESM entry point plus one chunk per lazily imported part
// (so `import()` stays lazy), whitespace and syntax minified, identifiers not. bin/spire-agent runs
// the bundle when it is at least as new as dist/agent/cli/main.js, else the plain dist/ files.
//
// Why: loading ~250 small ES modules costs the agent more start-up time than everything else
// it does before serving, and their sources (with comments) stay in the V8 heap; the bundle
// measured ~150 ms faster to the first SVID and ~4 MB smaller (docs/performance.md, "Agent").
//
// Run after `tsc -p tsconfig.build.json`. The output directory is two levels below the package
// root, like dist/native/, so `new URL('../../build/Release/…', import.meta.url)` in the
// addon loader resolves the same. classic-level (a native addon found relative to its own
// package) and prom-client (CommonJS, loaded only for Prometheus) stay external.
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'agent', 'cli', 'main.js');
const outdir = join(root, 'dist', 'agent-bundle');

if (!existsSync(entry)) {
  process.stderr.write(`bundle-agent: ${relative(root, entry)} is missing: build first\n`);
  process.exit(1);
}
let esbuild;
try {
  esbuild = await import('esbuild');
} catch (err) {
  process.stderr.write(`bundle-agent: esbuild is not installed (${err.message})\n`);
  process.exit(1);
}
rmSync(outdir, { recursive: true, force: true });
const result = await esbuild.build({
  entryPoints: { main: entry },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunk-[hash]',
  external: ['classic-level', 'prom-client'],
  minifyWhitespace: true,
  minifySyntax: true,
  // No keepNames: it wraps every function and class expression in a call that defines its
  // `name` property, also each time a closure is created — ~4.5 KB of allocation and the
  // matching CPU per Workload API call (docs/performance.md, "Agent"). Identifiers are not
  // minified, so names stay readable; esbuild renames only where two modules' top-level names
  // collide (`parse2`), and nothing in the agent depends on a function's `name`.
  sourcemap: 'linked',
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
const outputs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'));
const bytes = outputs.reduce((n, [, o]) => n + o.bytes, 0);
process.stdout.write(
  `bundle-agent: ${relative(root, outdir)}/main.js and ${outputs.length - 1} chunks, ${(bytes / 1024).toFixed(0)} KiB\n`,
);
