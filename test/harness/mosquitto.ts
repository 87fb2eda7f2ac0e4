/**
 * A mosquitto 2.0 MQTT broker (MQTT 5, 3.1.1, 3.1) for integration tests, in the foreground
 * as a child of the test process, listening on one ephemeral 127.0.0.1 port.
 *
 * Configuration: `listener <port> 127.0.0.1`, `allow_anonymous true`, `set_tcp_nodelay true`
 * (88 ms → 0.5 ms per request/response), persistence off, log to stderr (captured for error
 * messages, see `output()`). Running as root, mosquitto would switch to the `mosquitto` user
 * and then fail to read files in the caller's 0700 temp dirs (TLS keys, ACL files); the
 * harness sets `user` to the current user so it keeps the test's identity (as root it
 * logs a warning about that, which is expected).
 *
 * Extending it (TLS with client certificates, ACLs): pass `files` (written into the
 * broker's dir before start), `extraConfig` (appended to mosquitto.conf; a function gets
 * the dir so it can name those files) and `globalConfig` (placed before the listeners).
 * Extra listeners need their own ports: take them with `freePort()` and probe them
 * yourself; readiness here covers the main listener only.
 */
import { writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  listensOn,
  makeTempDir,
  removeTempDir,
  requireBinary,
  retryOnPortInUse,
  type Service,
  spawnService,
} from './common.js';

/** Options of {@link startMosquitto}. */
export interface MosquittoOptions {
  /**
   * mosquitto.conf text appended after the harness's listener (e.g. a TLS `listener` with
   * `cafile`, `certfile`, `keyfile`, `require_certificate true`, `use_identity_as_username
   * true`, an `acl_file`). A function receives the broker's dir, where `files` were written.
   */
  extraConfig?: string | ((ctx: { dir: string }) => string);
  /**
   * mosquitto.conf text placed before the first listener: options that must precede all
   * listeners, such as `per_listener_settings true`.
   */
  globalConfig?: string;
  /** Files (name → content, mode 0600) written into the broker's dir before it starts. */
  files?: Readonly<Record<string, string | Uint8Array>>;
}

/** A running broker. */
export interface MosquittoInstance {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `mqtt://127.0.0.1:<port>` */
  readonly url: string;
  readonly confPath: string;
  readonly dir: string;
  readonly pid: number;
  /** The broker's recent log (stderr). */
  output(): string;
  /** Stops the broker (SIGTERM, then SIGKILL) and removes its dir; idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts mosquitto with the configuration above, ready when mosquitto itself listens on the
 * port. Throws `ERR_HARNESS_MISSING_COMPONENT` naming the Debian package when mosquitto is
 * missing, `ERR_HARNESS_START_FAILED` with the broker's log when it refuses the
 * configuration.
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<MosquittoInstance> {
  const mosquitto = requireBinary('mosquitto', 'mosquitto');
  const dir = await makeTempDir('mosquitto');
  const confPath = join(dir, 'mosquitto.conf');
  try {
    for (const [name, content] of Object.entries(options.files ?? {})) {
      if (name.includes('/') || name.startsWith('.')) {
        throw new TypeError(`files keys must be plain file names, got '${name}'`);
      }
      await writeFile(join(dir, name), content, { mode: 0o600 });
    }
    const extra =
      typeof options.extraConfig === 'function'
        ? options.extraConfig({ dir })
        : (options.extraConfig ?? '');

    let port = 0;
    const service: Service = await retryOnPortInUse(async () => {
      port = await freePort();
      await writeFile(
        confPath,
        [
          `user ${userInfo().username}`,
          'persistence false',
          'set_tcp_nodelay true',
          'log_dest stderr',
          'log_type error',
          'log_type warning',
          'log_type notice',
          'log_type information',
          'connection_messages true',
          options.globalConfig ?? '',
          `listener ${port} 127.0.0.1`,
          'allow_anonymous true',
          extra,
          '',
        ].join('\n'),
      );
      return spawnService({
        name: 'mosquitto',
        command: mosquitto,
        args: ['-c', confPath],
        cwd: dir,
        ready: (pid) => listensOn(pid, port),
      });
    });

    let stopping: Promise<void> | undefined;
    return {
      host: '127.0.0.1',
      port,
      url: `mqtt://127.0.0.1:${port}`,
      confPath,
      dir,
      pid: service.pid,
      output: () => service.output(),
      stop() {
        stopping ??= (async () => {
          await service.stop();
          await removeTempDir(dir);
        })();
        return stopping;
      },
    };
  } catch (e) {
    await removeTempDir(dir);
    throw e;
  }
}
