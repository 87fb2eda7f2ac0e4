import { describe, expect, it } from 'vitest';
import {
  type CliApp,
  type CliCommand,
  RUN_RESULT_HELP,
  runCliApp,
} from '../../../src/common/cli/command-tree.js';
import { type CliIo, StringWriter } from '../../../src/common/cli/io.js';

function recorder() {
  const calls: Array<{ name: string; args: readonly string[] }> = [];
  const command = (name: string, code = 0): CliCommand => ({
    help: () => `help of ${name}`,
    async run(args) {
      calls.push({ name, args });
      return code;
    },
  });
  const app: CliApp = {
    name: 'app',
    version: '1.2.3',
    commands: {
      'entry create': { synopsis: 'Creates entries', load: () => command('entry create') },
      'entry show': { synopsis: 'Shows entries', load: () => command('entry show', 3) },
      healthcheck: { synopsis: 'Checks health', load: () => command('healthcheck') },
      'local x509 show': { synopsis: 'Shows X.509', load: () => command('local x509 show') },
      broken: {
        synopsis: 'Needs help',
        load: () => ({ help: () => 'broken help', run: async () => RUN_RESULT_HELP }),
      },
    },
  };
  return { app, calls };
}

async function run(app: CliApp, args: string[]) {
  const stdout = new StringWriter();
  const stderr = new StringWriter();
  const io: CliIo = { stdout, stderr, stdin: (async function* () {})(), env: {} };
  const code = await runCliApp(app, args, io);
  return { code, out: stdout.text, err: stderr.text };
}

const TOP_HELP = [
  'Usage: app [--version] [--help] <command> [<args>]',
  '',
  'Available commands are:',
  '    broken         Needs help',
  '    entry          ',
  '    healthcheck    Checks health',
  '    local          ',
  '',
  '',
].join('\n');

describe('command tree (mitchellh/cli behaviour)', () => {
  it('runs a nested command with the arguments after its name', async () => {
    const { app, calls } = recorder();
    const r = await run(app, ['entry', 'show', '-spiffeID', 'x', 'pos']);
    expect(r.code).toBe(3);
    expect(calls).toEqual([{ name: 'entry show', args: ['-spiffeID', 'x', 'pos'] }]);
    expect(await run(app, ['local', 'x509', 'show'])).toMatchObject({ code: 0 });
    expect(calls[1]).toEqual({ name: 'local x509 show', args: [] });
  });

  it('lists the top-level commands on stderr: exit 0 for -h, 127 for none or unknown', async () => {
    const { app, calls } = recorder();
    for (const h of ['-h', '--help', '-help']) {
      expect(await run(app, [h])).toEqual({ code: 0, out: '', err: TOP_HELP });
    }
    expect(await run(app, [])).toEqual({ code: 127, out: '', err: TOP_HELP });
    expect(await run(app, ['bogus', 'x'])).toEqual({ code: 127, out: '', err: TOP_HELP });
    expect(await run(app, ['entryx'])).toEqual({ code: 127, out: '', err: TOP_HELP });
    expect(calls).toEqual([]);
  });

  it('shows group help with subcommands: exit 1 when run, 0 with -h', async () => {
    const { app, calls } = recorder();
    const groupHelp =
      'This command is accessed by using one of the subcommands below.\n\nSubcommands:\n' +
      '    create    Creates entries\n    show      Shows entries\n';
    expect(await run(app, ['entry'])).toEqual({ code: 1, out: '', err: groupHelp });
    expect(await run(app, ['entry', 'bogus', '-x'])).toEqual({ code: 1, out: '', err: groupHelp });
    expect(await run(app, ['entry', '-h'])).toEqual({ code: 0, out: '', err: groupHelp });
    expect(await run(app, ['local'])).toMatchObject({
      code: 1,
      err: 'This command is accessed by using one of the subcommands below.\n\nSubcommands:\n    x509    \n',
    });
    expect(calls).toEqual([]);
  });

  it('shows a command help for -h anywhere before --, without running it', async () => {
    const { app, calls } = recorder();
    expect(await run(app, ['entry', 'create', '-spiffeID', 'x', '-h'])).toEqual({
      code: 0,
      out: '',
      err: 'help of entry create\n',
    });
    expect(await run(app, ['healthcheck', '--', '-h'])).toMatchObject({ code: 0, err: '' });
    expect(calls).toEqual([{ name: 'healthcheck', args: ['--', '-h'] }]);
  });

  it('prints the version for -v before the command', async () => {
    const { app } = recorder();
    for (const v of ['-v', '-version', '--version']) {
      expect(await run(app, [v])).toEqual({ code: 0, out: '', err: '1.2.3\n' });
    }
  });

  it('refuses flags before the command with exit 1', async () => {
    const { app, calls } = recorder();
    const r = await run(app, ['-socketPath=/x', 'healthcheck']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      'Invalid flags before the subcommand. If these flags are for\n' +
        'the subcommand, please put them after the subcommand.\n\nhelp of healthcheck\n',
    );
    expect(calls).toEqual([]);
  });

  it('prints the command help with exit 1 when a command asks for it', async () => {
    const { app } = recorder();
    expect(await run(app, ['broken'])).toEqual({ code: 1, out: '', err: 'broken help\n' });
  });
});
