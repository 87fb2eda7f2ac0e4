/**
 * `spire-agent api watch`: attaches to the Workload API's X.509 stream and prints every
 * update as it arrives, as SPIRE's `watch.go` (go-spiffe's `WatchX509Context`):
 *
 * - each update in the `fetch x509` layout (x509-printer.ts) with the time since the previous
 *   update (or since the start), federated bundles labelled by trust domain name (without
 *   `spiffe://`) and no `Hint:` line, as SPIRE's watcher builds them;
 * - every stream failure (`rpc error: code = PermissionDenied desc = no identity issued`, an
 *   unreachable socket) is printed on stderr and the watch reconnects with backoff; an
 *   `InvalidArgument` answer ends it (the error printed again, exit 1);
 * - flags: `-socketPath`, `-instance` only (no `-timeout`: the watch runs until stopped).
 *
 * It stops on SIGINT (or the `signal` option). Deliberate difference: SPIRE then prints the
 * stream's cancellation error twice and exits 1; spire-edge treats the interrupt as the
 * normal end of a watch and exits 0 silently.
 */
import type { CliCommand } from '../../../common/cli/command-tree.js';
import { FlagSet, isFlagError } from '../../../common/cli/flag-set.js';
import { describeCliError } from '../../../common/cli/rpc-error.js';
import { parseCertificate } from '../../../spiffe/x509-cert.js';
import {
  type WatchBackoff,
  WorkloadApiClient,
  type X509Context,
} from '../../workload-api/client.js';
import { defineSocketFlags, resolveAgentSocket } from '../socket.js';
import { formatX509SvidResponse, type PrintableX509Svid } from './x509-printer.js';

/** Options of {@link watchCommand} (tests stop the watch with `signal`). */
export interface WatchCommandOptions {
  /** Ends the watch like SIGINT does. */
  readonly signal?: AbortSignal;
  /** Reconnection backoff (default go-spiffe's: 1 s growing to 30 s). */
  readonly backoff?: WatchBackoff;
}

/** go-spiffe's `X509Context` as SPIRE's watcher prints it. */
export function printableX509Context(ctx: X509Context): PrintableX509Svid[] {
  const validity = (ders: readonly Uint8Array[]) => ders.map(parseCertificate);
  return ctx.svids.map((svid) => {
    let bundle: ReturnType<typeof validity> = [];
    const federated: Array<readonly [string, ReturnType<typeof validity>]> = [];
    for (const td of ctx.bundles.trustDomains()) {
      const authorities = validity(ctx.bundles.getX509Authorities(td) ?? []);
      if (td.name === svid.id.trustDomain.name) bundle = authorities;
      else federated.push([td.name, authorities]);
    }
    return {
      spiffeId: svid.id.toString(),
      hint: '',
      certificates: validity(svid.certificates),
      bundle,
      federatedBundles: federated,
    };
  });
}

/** The `api watch` command. */
export function watchCommand(options: WatchCommandOptions = {}): CliCommand {
  const build = () => {
    const fs = new FlagSet('watch');
    const socket = defineSocketFlags(fs, 'Path to the SPIRE Agent API Unix domain socket');
    return { fs, socket };
  };
  return {
    help: () => `${build().fs.usage()}flag: help requested`,
    async run(args, io) {
      const { fs, socket } = build();
      try {
        fs.parse(args);
      } catch (err) {
        if (!isFlagError(err)) throw err;
        io.stderr.write(fs.failureText(err));
        io.stderr.write(`${err.message}\n`);
        return 1;
      }
      let client: WorkloadApiClient;
      try {
        const path = resolveAgentSocket(
          { socketPath: socket.socketPath.value, instance: socket.instance.value },
          io.env,
          io.cwd ?? process.cwd(),
        );
        client = new WorkloadApiClient({ socket: path, env: {} });
      } catch (err) {
        io.stderr.write(`${describeCliError(err)}\n`);
        return 1;
      }
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      const outer = options.signal;
      if (outer?.aborted) stop.abort();
      outer?.addEventListener('abort', onSignal, { once: true });
      let last = process.hrtime.bigint();
      try {
        await client.watchX509Context({
          signal: stop.signal,
          ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
          onUpdate(ctx) {
            const now = process.hrtime.bigint();
            let text: string;
            try {
              text = formatX509SvidResponse(printableX509Context(ctx), now - last);
            } catch (err) {
              io.stderr.write(`${describeCliError(err)}\n`);
              return;
            }
            io.stdout.write(text);
            last = process.hrtime.bigint();
          },
          onError(err) {
            io.stderr.write(`${describeCliError(err)}\n`);
          },
        });
        return 0;
      } catch (err) {
        io.stderr.write(`${describeCliError(err)}\n`);
        return 1;
      } finally {
        process.off('SIGINT', onSignal);
        outer?.removeEventListener('abort', onSignal);
        client.close();
      }
    },
  };
}
