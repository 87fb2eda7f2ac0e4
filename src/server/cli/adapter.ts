/**
 * Turns a `spire-server` command definition into a runnable {@link CliCommand}, as SPIRE's
 * `util.Adapter` does: adds `-socketPath` and `-instance`, parses flags Go-style (a bad flag
 * prints the error and the usage on stderr, exit 1), connects to the server API socket, runs the
 * command, and prints any failure as `Error: <message>` on stderr with exit code 1.
 *
 * Socket selection (SPIRE's, POSIX): `-socketPath` when it differs from the default; else
 * `-instance` substituted for `%i` in `SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE`; else
 * `SPIRE_SERVER_PRIVATE_SOCKET`; else `/tmp/spire-server/private/api.sock`. Relative paths are
 * resolved against the working directory.
 *
 * What it trusts: nothing from the server beyond the typed responses; the socket's file mode
 * is the access control (the server's).
 */
import { resolve as resolvePath } from 'node:path';
import { type Client, createClient } from '@connectrpc/connect';
import type { CliCommand } from '../../common/cli/command-tree.js';
import { FlagSet, isFlagError } from '../../common/cli/flag-set.js';
import type { CliIo } from '../../common/cli/io.js';
import { describeCliError } from '../../common/cli/rpc-error.js';
import { createUdsTransport, type GrpcClientTransport } from '../../common/grpc.js';
import {
  agentv1,
  bundlev1,
  enrollmentv1,
  entryv1,
  healthv1,
  svidv1,
} from '../../protocol/index.js';
import { cliFailure, DEFAULT_SOCKET_PATH } from './util.js';

/** Typed clients of the server APIs the commands call. Created on first use. */
export interface ServerClients {
  readonly entry: Client<typeof entryv1.Entry>;
  readonly bundle: Client<typeof bundlev1.Bundle>;
  readonly agent: Client<typeof agentv1.Agent>;
  readonly svid: Client<typeof svidv1.SVID>;
  readonly health: Client<typeof healthv1.Health>;
  /** spire-edge's own provisioning-token service (`enrollment token …`). */
  readonly provisioningToken: Client<typeof enrollmentv1.ProvisioningToken>;
}

/** What a command's `run` gets. */
export interface ServerCommandContext {
  readonly io: CliIo;
  readonly clients: ServerClients;
  /** Resolves a path given on the command line against the working directory. */
  resolvePath(path: string): string;
  /** The current time in milliseconds since the epoch. */
  now(): number;
}

/** A command: its flag-set name, flags, and body. */
export interface ServerCommandDefinition<F> {
  /** The name in `Usage of <name>:` (SPIRE's `Name()`, e.g. `entry create`). */
  readonly name: string;
  /** Defines the command's flags on `fs` and returns their live views. */
  defineFlags(fs: FlagSet): F;
  /** Runs the command; throws to fail (`Error: <message>`, exit 1). */
  run(flags: F, ctx: ServerCommandContext): Promise<void>;
}

/** Options for {@link serverCommand} (tests inject a clock). */
export interface ServerCommandOptions {
  readonly now?: () => number;
}

/** Flags every server command has (SPIRE's `addOSFlags`). */
interface SocketFlags {
  readonly socketPath: { readonly value: string };
  readonly instance: { readonly value: string };
}

function addSocketFlags(fs: FlagSet): SocketFlags {
  return {
    socketPath: fs.string('socketPath', DEFAULT_SOCKET_PATH, 'Path to the SPIRE Server API socket'),
    instance: fs.string(
      'instance',
      '',
      'Instance name to substitute into socket templates (env SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE).',
    ),
  };
}

/**
 * The socket path a command connects to (see the file comment).
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` when `-instance` is given without a usable
 * template.
 */
export function resolveServerSocket(
  socketPath: string,
  instance: string,
  env: CliIo['env'],
  cwd: string,
): string {
  const tpl = env['SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE'] ?? '';
  const sock = env['SPIRE_SERVER_PRIVATE_SOCKET'] ?? '';
  if (instance !== '') {
    if (tpl === '') {
      throw cliFailure(
        'you must define SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE to use the instance flag',
      );
    }
    if (!tpl.includes('%i')) {
      throw cliFailure('failed to find %i in SPIRE_SERVER_PRIVATE_SOCKET_TEMPLATE');
    }
  }
  let path = DEFAULT_SOCKET_PATH;
  if (socketPath !== DEFAULT_SOCKET_PATH) path = socketPath;
  else if (instance !== '') path = tpl.replaceAll('%i', instance);
  else if (sock !== '') path = sock;
  return path.startsWith('unix:') ? path : resolvePath(cwd, path);
}

function lazyClients(socket: string): { clients: ServerClients; close(): void } {
  let transport: GrpcClientTransport | undefined;
  const get = () => {
    transport ??= createUdsTransport(socket);
    return transport;
  };
  const cache = new Map<string, unknown>();
  const lazy = <T>(key: string, make: () => T): T => {
    if (!cache.has(key)) cache.set(key, make());
    return cache.get(key) as T;
  };
  const clients: ServerClients = {
    get entry() {
      return lazy('entry', () => createClient(entryv1.Entry, get()));
    },
    get bundle() {
      return lazy('bundle', () => createClient(bundlev1.Bundle, get()));
    },
    get agent() {
      return lazy('agent', () => createClient(agentv1.Agent, get()));
    },
    get svid() {
      return lazy('svid', () => createClient(svidv1.SVID, get()));
    },
    get health() {
      return lazy('health', () => createClient(healthv1.Health, get()));
    },
    get provisioningToken() {
      return lazy('provisioningToken', () => createClient(enrollmentv1.ProvisioningToken, get()));
    },
  };
  return { clients, close: () => transport?.close() };
}

/** Builds the {@link CliCommand} for `def`; see the file comment. */
export function serverCommand<F>(
  def: ServerCommandDefinition<F>,
  options: ServerCommandOptions = {},
): CliCommand {
  const build = () => {
    const fs = new FlagSet(def.name);
    const socket = addSocketFlags(fs);
    const flags = def.defineFlags(fs);
    return { fs, socket, flags };
  };
  return {
    help() {
      return `${build().fs.usage()}flag: help requested`;
    },
    async run(args, io) {
      const { fs, socket, flags } = build();
      try {
        fs.parse(args);
      } catch (err) {
        if (!isFlagError(err)) throw err;
        io.stderr.write(fs.failureText(err));
        return 1;
      }
      const cwd = io.cwd ?? process.cwd();
      let path: string;
      try {
        path = resolveServerSocket(socket.socketPath.value, socket.instance.value, io.env, cwd);
      } catch (err) {
        io.stderr.write(`Error: ${describeCliError(err)}\n`);
        return 1;
      }
      const connection = lazyClients(path);
      try {
        await def.run(flags, {
          io,
          clients: connection.clients,
          resolvePath: (p) => resolvePath(cwd, p),
          now: options.now ?? Date.now,
        });
        return 0;
      } catch (err) {
        io.stderr.write(`Error: ${describeCliError(err)}\n`);
        return 1;
      } finally {
        connection.close();
      }
    },
  };
}
