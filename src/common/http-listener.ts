/**
 * The small HTTP listeners the server and the agent run for health checks (`/live`, `/ready`)
 * and Prometheus metrics (`/metrics`): GET only, a handler per path, JSON or text answers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a path handler answers: JSON `body`, or `text` with its content `type`. */
export interface HttpAnswer {
  readonly status: number;
  readonly body?: unknown;
  readonly text?: string;
  readonly type?: string;
}

/** A running listener. */
export interface HttpListener {
  readonly address: { readonly host: string; readonly port: number };
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/**
 * Listens on `host:port` (0 picks a free port). `handle` maps a path to an answer or
 * `undefined` (404); anything but GET is 405; a handler that throws is 500.
 */
export async function listenHttp(
  host: string,
  port: number,
  handle: (path: string) => HttpAnswer | undefined | Promise<HttpAnswer | undefined>,
): Promise<HttpListener> {
  const srv: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    Promise.resolve()
      .then(() => handle(path))
      .then(
        (a) => {
          if (a === undefined) res.writeHead(404).end();
          else if (a.text !== undefined) {
            res.writeHead(a.status, { 'content-type': a.type ?? 'text/plain' }).end(a.text);
          } else {
            res
              .writeHead(a.status, { 'content-type': 'application/json' })
              .end(JSON.stringify(a.body));
          }
        },
        () => res.writeHead(500).end(),
      );
  });
  await new Promise<void>((ok, fail) => {
    srv.once('error', fail);
    srv.listen(port, host, () => {
      srv.off('error', fail);
      ok();
    });
  });
  const a = srv.address() as AddressInfo;
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise((ok) => {
        srv.close(() => ok());
        srv.closeAllConnections();
      }),
  };
}
