/**
 * The `spire-agent` command tree as mitchellh/cli dispatches SPIRE's: the command list with
 * SPIRE's synopses, version, groups, the `api fetch` alias, unknown commands, flags before the
 * command.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from './support.js';

const LIST =
  'Usage: spire-agent [--version] [--help] <command> [<args>]\n\n' +
  'Available commands are:\n' +
  '    api            \n' +
  '    healthcheck    Determines agent health status\n' +
  '    run            Runs the agent\n' +
  '    validate       Validates a SPIRE agent configuration file\n\n';

describe('spire-agent command tree', () => {
  it('lists the commands on -h (exit 0) and without a command (exit 127)', async () => {
    expect(await runCli(['-h'])).toEqual({ code: 0, out: '', err: LIST });
    expect(await runCli([])).toEqual({ code: 127, out: '', err: LIST });
    expect((await runCli(['bogus'])).code).toBe(127);
  });

  it('prints the package version', async () => {
    const pkg = JSON.parse(
      readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8'),
    );
    expect(await runCli(['--version'])).toEqual({ code: 0, out: '', err: `${pkg.version}\n` });
  });

  it("groups list their subcommands with SPIRE's synopses (exit 1)", async () => {
    expect(await runCli(['api'])).toEqual({
      code: 1,
      out: '',
      err:
        'This command is accessed by using one of the subcommands below.\n\n' +
        'Subcommands:\n' +
        '    fetch       Fetches X509 SVIDs from the Workload API\n' +
        '    validate    \n' +
        "    watch       Attaches to the Workload API and prints updates as they're received\n",
    });
    const v = await runCli(['api', 'validate']);
    expect(v.code).toBe(1);
    expect(v.err).toContain('\n    jwt    Validates a JWT SVID\n');
    const bogus = await runCli(['api', 'bogus']);
    expect(bogus.code).toBe(1);
    expect(bogus.err).toContain('This command is accessed by using one of the subcommands below.');
  });

  it('`api fetch -h` is the x509 help with the jwt/x509 subcommands', async () => {
    const r = await runCli(['api', 'fetch', '-h']);
    expect(r.code).toBe(0);
    expect(r.err.startsWith('Usage of fetch x509:\n')).toBe(true);
    expect(
      r.err.endsWith(
        '\n\nSubcommands:\n' +
          '    jwt     Fetches a JWT SVID from the Workload API\n' +
          '    x509    Fetches X509 SVIDs from the Workload API\n',
      ),
    ).toBe(true);
  });

  it('refuses flags before the command', async () => {
    const r = await runCli(['-verbose', 'healthcheck']);
    expect(r.code).toBe(1);
    expect(
      r.err.startsWith(
        'Invalid flags before the subcommand. If these flags are for\nthe subcommand, please put them after the subcommand.\n\n',
      ),
    ).toBe(true);
  });
});
