/**
 * A command tree that dispatches as SPIRE's CLIs do (they use github.com/mitchellh/cli with
 * nested commands such as `entry create`), with the same help texts and exit codes:
 *
 * - `<app> -h` / `--help` / `-help` (anywhere before `--`), with no command: the command list
 *   on stderr, exit 0. With a command: that command's help on stderr, exit 0.
 * - `<app> -v` / `-version` / `--version` before the command: the version on stderr, exit 0.
 * - No command, or an unknown one: the command list of the nearest parent on stderr, exit 127.
 * - A group (`<app> entry`, `<app> entry bogus`): its help with the `Subcommands:` list on
 *   stderr, exit 1.
 * - Flags before the command (`<app> -x entry show`): a notice and the command's help on
 *   stderr, exit 1.
 * - Otherwise the command runs with the arguments after its name; its result is the exit code.
 *
 * Commands are listed with a synopsis up front and loaded only when run, so a command whose
 * implementation cannot load (a missing optional module) does not break the others.
 *
 * Deliberate difference: SPIRE's group help also prints every subcommand's flag usage to
 * stderr (a side effect of how its adapter builds help text); this tree prints only the list.
 */
import { compareBytes } from './flag-set.js';
import type { CliIo } from './io.js';

/** A runnable command. */
export interface CliCommand {
  /** The command's help text (for flag-based commands: the usage then `flag: help requested`). */
  help(): string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(args: readonly string[], io: CliIo): Promise<number>;
}

/** A command as listed in the tree: its synopsis, and how to load it. */
export interface CommandSpec {
  readonly synopsis: string;
  load(): CliCommand | Promise<CliCommand>;
}

/** An application: its name (in `Usage: <name> …`), version and commands by full name. */
export interface CliApp {
  readonly name: string;
  readonly version: string;
  /** Full command names (`"entry create"`, `"healthcheck"`) to their specs. */
  readonly commands: Readonly<Record<string, CommandSpec>>;
}

/** Returned by a command's `run` to ask for its help to be printed with exit code 1. */
export const RUN_RESULT_HELP = -18511;

const GROUP_HELP = 'This command is accessed by using one of the subcommands below.';

const groupCommand: CliCommand = {
  help: () => GROUP_HELP,
  run: async () => RUN_RESULT_HELP,
};

function buildTree(app: CliApp): Map<string, CommandSpec> {
  const tree = new Map<string, CommandSpec>();
  for (const [name, spec] of Object.entries(app.commands)) tree.set(name.trim(), spec);
  for (const name of [...tree.keys()]) {
    let k = name;
    for (let i = k.lastIndexOf(' '); i >= 0; i = k.lastIndexOf(' ')) {
      k = k.slice(0, i);
      if (!tree.has(k)) tree.set(k, { synopsis: '', load: () => groupCommand });
    }
  }
  return tree;
}

/** The direct children of `prefix` ('' = top level), sorted. */
function childrenOf(tree: Map<string, CommandSpec>, prefix: string): string[] {
  const p = prefix === '' || prefix.endsWith(' ') ? prefix : `${prefix} `;
  return [...tree.keys()]
    .filter((k) => k.startsWith(p) && !k.slice(p.length).includes(' ') && k !== '')
    .sort(compareBytes);
}

/** mitchellh/cli `BasicHelpFunc`: the command list. */
function listHelp(app: CliApp, tree: Map<string, CommandSpec>, prefix: string): string {
  const keys = childrenOf(tree, prefix);
  const width = Math.max(0, ...keys.map((k) => k.length));
  let out = `Usage: ${app.name} [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n`;
  for (const k of keys) out += `    ${k.padEnd(width)}    ${tree.get(k)!.synopsis}\n`;
  return out;
}

/** mitchellh/cli `commandHelp` with its default template. */
function commandHelp(tree: Map<string, CommandSpec>, name: string, command: CliCommand): string {
  let out = command.help();
  const subs = childrenOf(tree, name);
  if (subs.length > 0) {
    const longest = Math.max(...subs.map((k) => k.length));
    out += '\n\nSubcommands:';
    for (const k of subs) {
      const short = k.slice(k.lastIndexOf(' ') + 1);
      out += `\n    ${short}${' '.repeat(longest - k.length)}    ${tree.get(k)!.synopsis}`;
    }
  }
  return `${out}\n`;
}

interface ParsedArgs {
  subcommand: string;
  subcommandArgs: string[];
  isHelp: boolean;
  isVersion: boolean;
  topFlags: string[];
}

/** mitchellh/cli `processArgs` for a nested command tree. */
function processArgs(tree: Map<string, CommandSpec>, args: readonly string[]): ParsedArgs {
  const r: ParsedArgs = {
    subcommand: '',
    subcommandArgs: [],
    isHelp: false,
    isVersion: false,
    topFlags: [],
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    if (arg === '-h' || arg === '-help' || arg === '--help') {
      r.isHelp = true;
      continue;
    }
    if (r.subcommand === '') {
      if (arg === '-v' || arg === '-version' || arg === '--version') {
        r.isVersion = true;
        continue;
      }
      if (arg !== '' && arg[0] === '-') r.topFlags.push(arg);
    }
    if (r.subcommand === '' && arg !== '' && arg[0] !== '-') {
      r.subcommand = arg;
      if (arg.includes(' ')) {
        r.subcommand = '';
        return r;
      }
      let j = 0;
      for (let k = i; k < args.length; k++) {
        const v = args[k]!;
        if (v.includes(' ') || v === '' || v[0] === '-') break;
        j = k + 1;
      }
      const searchKey = args.slice(i, j).join(' ');
      let longest: string | undefined;
      for (const k of tree.keys()) {
        if (searchKey.startsWith(k) && (longest === undefined || k.length > longest.length)) {
          longest = k;
        }
      }
      if (
        longest !== undefined &&
        (searchKey.length === longest.length || searchKey[longest.length] === ' ')
      ) {
        r.subcommand = longest;
        i += longest.split(' ').length - 1;
      }
      r.subcommandArgs = args.slice(i + 1);
    }
  }
  return r;
}

/**
 * Runs `app` with `args` (the arguments after the program name) and resolves to the exit
 * code. All help and version output goes to `io.stderr`, as SPIRE's does.
 */
export async function runCliApp(app: CliApp, args: readonly string[], io: CliIo): Promise<number> {
  const tree = buildTree(app);
  const p = processArgs(tree, args);
  if (p.isVersion && app.version !== '') {
    io.stderr.write(`${app.version}\n`);
    return 0;
  }
  if (p.isHelp && p.subcommand === '') {
    io.stderr.write(`${listHelp(app, tree, '')}\n`);
    return 0;
  }
  const spec = tree.get(p.subcommand);
  if (spec === undefined) {
    const sub = p.subcommand.trimEnd();
    const parent = sub.includes(' ') ? sub.slice(0, sub.lastIndexOf(' ')) : '';
    io.stderr.write(`${listHelp(app, tree, parent)}\n`);
    return 127;
  }
  const command = await spec.load();
  if (p.isHelp) {
    io.stderr.write(commandHelp(tree, p.subcommand, command));
    return 0;
  }
  if (p.topFlags.length > 0) {
    io.stderr.write(
      'Invalid flags before the subcommand. If these flags are for\n' +
        'the subcommand, please put them after the subcommand.\n\n',
    );
    io.stderr.write(commandHelp(tree, p.subcommand, command));
    return 1;
  }
  const code = await command.run(p.subcommandArgs, io);
  if (code === RUN_RESULT_HELP) {
    io.stderr.write(commandHelp(tree, p.subcommand, command));
    return 1;
  }
  return code;
}
