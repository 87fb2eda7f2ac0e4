/**
 * The `spire-agent` command line: SPIRE's command tree, flags and output (docs/cli-agent.md).
 * bin/spire-agent calls {@link main} through bin/launch.js.
 *
 * Each command module is loaded only when that command runs, so `run` (which pulls in the whole
 * agent) costs nothing for `api fetch x509`, and a command that fails to load does not break
 * the others. SPIRE's `debug getinfo` and `logger …` (its admin API) are not offered.
 */
// First: the agent's own global Headers, before anything can load Node's (web-headers.ts).
import './web-headers-global.js';
import { readFileSync } from 'node:fs';
import { type CliApp, type CommandSpec, runCliApp } from '../../common/cli/command-tree.js';
import type { CliIo } from '../../common/cli/io.js';
import { describeCliError } from '../../common/cli/rpc-error.js';

function spec(synopsis: string, load: CommandSpec['load']): CommandSpec {
  return { synopsis, load };
}

const fetchX509 = spec('Fetches X509 SVIDs from the Workload API', async () =>
  (await import('./api/fetch-x509.js')).fetchX509Command(),
);

/** Every command, by full name, with SPIRE's synopses. */
export const AGENT_COMMANDS: Readonly<Record<string, CommandSpec>> = {
  // SPIRE registers `api fetch` as an alias of `api fetch x509`.
  'api fetch': fetchX509,
  'api fetch x509': fetchX509,
  'api fetch jwt': spec('Fetches a JWT SVID from the Workload API', async () =>
    (await import('./api/fetch-jwt.js')).fetchJwtCommand(),
  ),
  'api validate jwt': spec('Validates a JWT SVID', async () =>
    (await import('./api/validate-jwt.js')).validateJwtCommand(),
  ),
  'api watch': spec(
    "Attaches to the Workload API and prints updates as they're received",
    async () => (await import('./api/watch.js')).watchCommand(),
  ),
  healthcheck: spec('Determines agent health status', async () =>
    (await import('./healthcheck.js')).healthcheckCommand(),
  ),
  run: spec('Runs the agent', async () => (await import('./run.js')).runCommand()),
  validate: spec('Validates a SPIRE agent configuration file', async () =>
    (await import('./validate.js')).validateCommand(),
  ),
};

/**
 * The package version (package.json), printed by `spire-agent --version`. Looked up from this
 * module's directory upwards, so that it is found from src/, dist/ and the bundle
 * (dist/agent-bundle/, scripts/bundle-agent.mjs) alike.
 */
export function agentVersion(): string {
  for (let up = 1; up <= 3; up++) {
    try {
      const pkg = JSON.parse(
        readFileSync(new URL(`${'../'.repeat(up)}package.json`, import.meta.url), 'utf8'),
      ) as { name?: unknown; version?: unknown };
      if (pkg.name !== 'spire-edge') continue;
      return typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

/**
 * Runs `spire-agent` with `argv` (the arguments after the program name) and resolves to the
 * process exit code. Never throws: an unexpected failure is printed on stderr (exit 1).
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const app: CliApp = { name: 'spire-agent', version: agentVersion(), commands: AGENT_COMMANDS };
  try {
    return await runCliApp(app, argv, io);
  } catch (err) {
    io.stderr.write(`${describeCliError(err)}\n`);
    return 1;
  }
}
