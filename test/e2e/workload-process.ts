/**
 * A workload as a separate process, for the end-to-end tests: it gets its identity from the
 * agent's SPIFFE Workload API (the socket in `SPIFFE_ENDPOINT_SOCKET`) — or, with `--files
 * DIR`, from `svid.pem`/`key.pem`/`bundle.pem` as `spire-server x509 mint -write` leaves them
 * (a workload of a trust domain this agent does not serve) — and reports on stdout, one JSON
 * object per line, so a test can follow it. The tests start it as other uids with `setpriv`,
 * so the agent's `unix` attestor sees that uid.
 *
 * Modes (`node --import tsx test/e2e/workload-process.ts <mode> …`):
 *
 * - `watch [--retry]`: opens `FetchX509SVID` and prints every message
 *   (`{"event":"x509","at":…,"svids":[{id,serial,notBefore,notAfter,certsPem,keyPem}],…}`);
 *   a stream error prints `{"event":"error","code":"PermissionDenied",…}` and exits 0.
 *   `--retry` retries a missing socket or `Unavailable` every 5 ms until the first message
 *   (for timing an agent start from the workload's side), printing `waiting` once.
 * - `serve --allow ID[,ID…]`: a mutual-TLS server on 127.0.0.1 with the workload's SVID.
 *   Like go-spiffe's `tlsconfig.MTLSServerConfig`, OpenSSL only does the handshake; the
 *   client's chain is verified with `verifyX509Svid` against the workload's bundles and its
 *   SPIFFE ID must be one of `--allow`. Prints `listening` (with the port), then `accepted`
 *   or `refused` per connection; an accepted client receives one JSON line and the end.
 * - `connect --port P --expect ID`: the client side; verifies the server the same way and
 *   requires its ID to be `ID`. Prints `connected` (with the server's reply), `refused` (it
 *   refused the server) or `closed` (the server refused it), and exits.
 *
 * What it trusts: the Workload API (its answers are the workload's identity and trust), or the
 * files given. Nothing here is imported by src/.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect, createServer as tlsCreateServer } from 'node:tls';
import { createClient } from '@connectrpc/connect';
import {
  parseX509Context,
  WorkloadApiClient,
  type X509Context,
} from '../../src/agent/workload-api/client.js';
import { createUdsTransport } from '../../src/common/grpc.js';
import { encodePem } from '../../src/common/pem.js';
import { WORKLOAD_API_HEADER, workload } from '../../src/protocol/index.js';
import { BundleSet } from '../../src/spiffe/bundle-set.js';
import { parseX509Bundle, splitDerCertificates } from '../../src/spiffe/x509-bundle.js';
import { parseX509Svid, type X509Svid } from '../../src/spiffe/x509-svid.js';
import { verifyX509Svid } from '../../src/spiffe/x509-verify.js';

const [mode = '', ...rest] = process.argv.slice(2);

function flag(name: string): string | undefined {
  const i = rest.indexOf(`--${name}`);
  return i < 0 ? undefined : rest[i + 1];
}

function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, at: Date.now(), ...fields })}\n`);
}

function describe(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; rawMessage?: unknown; message?: unknown };
  // ConnectError codes are numbers: report the gRPC name, as go-spiffe's status does.
  const names: Record<number, string> = {
    1: 'Canceled',
    2: 'Unknown',
    3: 'InvalidArgument',
    4: 'DeadlineExceeded',
    7: 'PermissionDenied',
    13: 'Internal',
    14: 'Unavailable',
    16: 'Unauthenticated',
  };
  const code = typeof e.code === 'number' ? (names[e.code] ?? String(e.code)) : String(e.code);
  const message = typeof e.rawMessage === 'string' ? e.rawMessage : String(e.message);
  return { code, message };
}

function serialOf(der: Uint8Array): string {
  return new X509Certificate(der).serialNumber;
}

function describeContext(ctx: X509Context) {
  return {
    svids: ctx.svids.map((s) => {
      const leaf = new X509Certificate(s.certificates[0]!);
      const m = s.marshal();
      return {
        id: s.id.toString(),
        serial: leaf.serialNumber,
        notBefore: new Date(leaf.validFrom).getTime(),
        notAfter: s.expiresAt.getTime(),
        certsPem: m.certsPem,
        keyPem: m.keyPem,
      };
    }),
    bundlePem: ctx.response.svids[0] === undefined ? '' : bundlePem(ctx.response.svids[0].bundle),
    federated: Object.keys(ctx.response.federatedBundles).sort(),
  };
}

function bundlePem(der: Uint8Array): string {
  return splitDerCertificates(der)
    .map((a) => encodePem('CERTIFICATE', a))
    .join('');
}

async function watch(retry: boolean): Promise<void> {
  const socket = process.env['SPIFFE_ENDPOINT_SOCKET'] ?? '';
  let waiting = false;
  for (;;) {
    const transport = createUdsTransport(socket);
    const client = createClient(workload.SpiffeWorkloadAPI, transport);
    let received = 0;
    try {
      for await (const m of client.fetchX509SVID(
        {},
        { headers: { [WORKLOAD_API_HEADER]: 'true' } },
      )) {
        received++;
        emit('x509', describeContext(parseX509Context(m)));
      }
      emit('end');
      return;
    } catch (err) {
      const d = describe(err);
      if (retry && received === 0 && d.code === 'Unavailable') {
        if (!waiting) emit('waiting', d);
        waiting = true;
        transport.close();
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      emit('error', d);
      return;
    } finally {
      transport.close();
    }
  }
}

interface Identity {
  readonly svid: X509Svid;
  readonly bundles: BundleSet;
}

async function identity(): Promise<Identity> {
  const files = flag('files');
  if (files !== undefined) {
    const svid = parseX509Svid(
      readFileSync(join(files, 'svid.pem')),
      readFileSync(join(files, 'key.pem')),
    );
    const bundle = parseX509Bundle(svid.id.trustDomain, readFileSync(join(files, 'bundle.pem')));
    return { svid, bundles: new BundleSet([bundle]) };
  }
  const client = new WorkloadApiClient();
  try {
    const ctx = await client.fetchX509Context({ timeoutMs: 10_000 });
    return { svid: ctx.svids[0]!, bundles: ctx.bundles };
  } finally {
    client.close();
  }
}

/** The peer's certificates as presented (leaf first), without self-issued roots. */
function peerChain(sock: TLSSocket): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  let c = sock.getPeerCertificate(true);
  while (c?.raw !== undefined && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    const der = new Uint8Array(c.raw);
    const x = new X509Certificate(der);
    if (out.length === 0 || x.subject !== x.issuer) out.push(der);
    if (c.issuerCertificate === undefined) break;
    c = c.issuerCertificate;
  }
  return out;
}

/** Verifies the peer's SVID; the peer's SPIFFE ID, or throws. */
function verifyPeer(sock: TLSSocket, bundles: BundleSet): string {
  const chain = peerChain(sock);
  if (chain.length === 0) throw new Error('the peer presented no certificate');
  return verifyX509Svid(chain, bundles).id.toString();
}

function tlsCredentials(id: Identity) {
  const m = id.svid.marshal();
  return { cert: m.certsPem, key: m.keyPem };
}

async function serve(): Promise<void> {
  const allow = new Set((flag('allow') ?? '').split(',').filter((s) => s !== ''));
  const me = await identity();
  const server = tlsCreateServer(
    {
      ...tlsCredentials(me),
      requestCert: true,
      // go-spiffe's approach: any client certificate in the handshake, SPIFFE verification after.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    (sock) => {
      let peer: string;
      try {
        peer = verifyPeer(sock, me.bundles);
      } catch (err) {
        emit('refused', {
          reason: `${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}`,
        });
        sock.destroy();
        return;
      }
      if (!allow.has(peer)) {
        emit('refused', { peer, reason: `unauthorized SPIFFE ID ${peer}` });
        sock.destroy();
        return;
      }
      emit('accepted', { peer, serial: serialOf(me.svid.certificates[0]!) });
      sock.end(`${JSON.stringify({ from: me.svid.id.toString(), to: peer })}\n`);
    },
  );
  server.on('tlsClientError', (err) => emit('tls-error', { message: err.message }));
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    emit('listening', { port, id: me.svid.id.toString() });
  });
  await new Promise(() => {});
}

async function connectTo(): Promise<void> {
  const port = Number(flag('port'));
  const expect = flag('expect') ?? '';
  const me = await identity();
  await new Promise<void>((done) => {
    let reply = '';
    let verdict: string | undefined;
    // A refusal closes gracefully (close_notify, FIN): the server still completes the handshake
    // and gives its own verdict; reading nothing more from an untrusted peer.
    const refuse = () => {
      sock.end();
      setTimeout(() => sock.destroy(), 3000).unref();
    };
    const sock = tlsConnect(
      { host: '127.0.0.1', port, ...tlsCredentials(me), rejectUnauthorized: false },
      () => {
        let server: string;
        try {
          server = verifyPeer(sock, me.bundles);
        } catch (err) {
          verdict = 'refused';
          emit('refused', {
            reason: `${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}`,
          });
          refuse();
          return;
        }
        if (server !== expect) {
          verdict = 'refused';
          emit('refused', { server, reason: `unexpected server SPIFFE ID ${server}` });
          refuse();
          return;
        }
        verdict = server;
      },
    );
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      if (verdict !== 'refused') reply += d;
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (verdict === 'refused') {
        // already reported
      } else if (verdict !== undefined && reply !== '') {
        emit('connected', { server: verdict, reply: JSON.parse(reply) as unknown });
      } else {
        emit('closed', { server: verdict ?? null, reason: 'the server closed the connection' });
      }
      done();
    });
  });
}

emit('started', { pid: process.pid, uid: process.geteuid?.(), gid: process.getegid?.() });
try {
  if (mode === 'watch') await watch(rest.includes('--retry'));
  else if (mode === 'serve') await serve();
  else if (mode === 'connect') await connectTo();
  else throw new TypeError(`unknown mode ${JSON.stringify(mode)}`);
} catch (err) {
  emit('failed', describe(err));
  process.exitCode = 1;
}
