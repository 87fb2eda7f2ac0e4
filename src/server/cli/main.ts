/**
 * The `spire-server` command line: SPIRE's command tree, flags and output (docs/cli-server.md).
 * bin/spire-server calls {@link main} through bin/launch.js.
 *
 * Each command module is loaded only when that command runs, so `run`/`validate` (which pull
 * in the whole server) cost nothing for `entry show`, and a command that fails to load does
 * not break the others.
 */
import { readFileSync } from 'node:fs';
import { type CliApp, type CommandSpec, runCliApp } from '../../common/cli/command-tree.js';
import type { CliIo } from '../../common/cli/io.js';
import { describeCliError } from '../../common/cli/rpc-error.js';

function spec(synopsis: string, load: CommandSpec['load']): CommandSpec {
  return { synopsis, load };
}

/** Every command, by full name, with SPIRE's synopses. */
export const SERVER_COMMANDS: Readonly<Record<string, CommandSpec>> = {
  'agent ban': spec('Ban an attested agent given its SPIFFE ID', async () =>
    (await import('./agent/ban.js')).agentBanCommand(),
  ),
  'agent count': spec('Count attested agents', async () =>
    (await import('./agent/count.js')).agentCountCommand(),
  ),
  'agent evict': spec('Evicts an attested agent given its SPIFFE ID', async () =>
    (await import('./agent/evict.js')).agentEvictCommand(),
  ),
  'agent list': spec('Lists attested agents and their SPIFFE IDs', async () =>
    (await import('./agent/list.js')).agentListCommand(),
  ),
  'agent show': spec('Shows the details of an attested agent given its SPIFFE ID', async () =>
    (await import('./agent/show.js')).agentShowCommand(),
  ),
  'bundle count': spec('Count bundles', async () =>
    (await import('./bundle/count.js')).bundleCountCommand(),
  ),
  'bundle show': spec('Prints server CA bundle to stdout', async () =>
    (await import('./bundle/show.js')).bundleShowCommand(),
  ),
  'bundle list': spec('Lists federated bundle data', async () =>
    (await import('./bundle/list.js')).bundleListCommand(),
  ),
  'bundle set': spec('Creates or updates federated bundle data', async () =>
    (await import('./bundle/set.js')).bundleSetCommand(),
  ),
  'bundle delete': spec('Deletes federated bundle data', async () =>
    (await import('./bundle/delete.js')).bundleDeleteCommand(),
  ),
  'enrollment token generate': spec(
    'Generates a one-time provisioning token for tpm-enroll',
    async () => (await import('./enrollment/token-generate.js')).enrollmentTokenGenerateCommand(),
  ),
  'enrollment token list': spec('Lists unused provisioning tokens', async () =>
    (await import('./enrollment/token-list.js')).enrollmentTokenListCommand(),
  ),
  'enrollment token revoke': spec('Revokes the provisioning tokens of a node alias', async () =>
    (await import('./enrollment/token-revoke.js')).enrollmentTokenRevokeCommand(),
  ),
  'entry count': spec('Count registration entries', async () =>
    (await import('./entry/count.js')).entryCountCommand(),
  ),
  'entry create': spec('Creates registration entries', async () =>
    (await import('./entry/create.js')).entryCreateCommand(),
  ),
  'entry update': spec('Updates registration entries', async () =>
    (await import('./entry/update.js')).entryUpdateCommand(),
  ),
  'entry delete': spec('Deletes registration entries', async () =>
    (await import('./entry/delete.js')).entryDeleteCommand(),
  ),
  'entry show': spec('Displays configured registration entries', async () =>
    (await import('./entry/show.js')).entryShowCommand(),
  ),
  run: spec('Runs the server', async () => (await import('./run.js')).runCommand()),
  'token generate': spec('Generates a join token', async () =>
    (await import('./token/generate.js')).tokenGenerateCommand(),
  ),
  healthcheck: spec('Determines server health status', async () =>
    (await import('./healthcheck.js')).healthcheckCommand(),
  ),
  'x509 mint': spec('Mints an X509-SVID', async () =>
    (await import('./x509/mint.js')).x509MintCommand(),
  ),
  'jwt mint': spec('Mints a JWT-SVID', async () =>
    (await import('./jwt/mint.js')).jwtMintCommand(),
  ),
  validate: spec('Validates a SPIRE server configuration file', async () =>
    (await import('./validate.js')).validateCommand(),
  ),
};

/** The package version (package.json), printed by `spire-server --version`. */
export function serverVersion(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
    ) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Runs `spire-server` with `argv` (the arguments after the program name) and resolves to the
 * process exit code. Never throws: an unexpected failure is printed on stderr (exit 1).
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const app: CliApp = { name: 'spire-server', version: serverVersion(), commands: SERVER_COMMANDS };
  try {
    return await runCliApp(app, argv, io);
  } catch (err) {
    io.stderr.write(`Error: ${describeCliError(err)}\n`);
    return 1;
  }
}
