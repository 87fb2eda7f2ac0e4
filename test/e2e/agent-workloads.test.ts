/**
 * The agent as a user drives it: real `./bin/spire-server run` and `./bin/spire-agent run`
 * processes, the agent attested with a join token from `spire-server token generate`,
 * registration entries made with `spire-server entry create`, and workloads as separate
 * processes (test/e2e/workload-process.ts) started as other uids with `setpriv`, so the
 * agent's `unix` attestor tells them apart by SO_PEERCRED.
 *
 * - Two workloads of different uids each get exactly their own X509-SVID (`openssl verify`
 *   and `verifyX509Svid` against the server's bundle as `spire-server bundle show` prints it);
 *   a uid without an entry gets PermissionDenied.
 * - `entry delete` removes the identity from an open FetchX509SVID stream; the last one ends
 *   the stream with PermissionDenied.
 * - An entry with `-x509SVIDTTL 20` is rotated on the open stream before it expires.
 * - The two workloads complete mutual TLS with `node:tls` on their SVIDs, each verifying the
 *   other with `verifyX509Svid` and checking its SPIFFE ID; a workload of another trust
 *   domain (`other.org`, its SVID from `spire-server x509 mint` on a second server) is
 *   refused both as a client and as a server, and so is a same-trust-domain workload whose
 *   ID the server does not authorize.
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseX509Bundle } from '../../src/spiffe/x509-bundle.js';
import { verifyX509Svid } from '../../src/spiffe/x509-verify.js';
import {
  agentApiPort,
  entryIdOf,
  generateJoinToken,
  opensslVerify,
  type ReportedSvid,
  runCommand,
  type ServiceProcess,
  SPIRE_AGENT,
  serverCommand,
  startAgentProcess,
  startServerProcess,
  type WorkloadEvent,
  WorkloadProcess,
  writeAgentConfig,
  writeServerConfig,
} from './support.js';

const TD = 'example.org';
const ALICE = 64101;
const BOB = 64102;
const ROTATOR = 64103;
const MULTI = 64104;
const NOBODY = 64109;
const NODE_ID = `spiffe://${TD}/node/gw1`;
const id = (path: string) => `spiffe://${TD}${path}`;

const dir = mkdtempSync(join(tmpdir(), 'e2e-agent-wl-'));
chmodSync(dir, 0o755);
let server: ServiceProcess;
let other: ServiceProcess;
let agent: ServiceProcess;
let socketPath: string;
let cli: ReturnType<typeof serverCommand>;
let bundlePem: string;
const entryIds = new Map<string, string>();
const workloads: WorkloadProcess[] = [];
const intruderDir = join(dir, 'intruder');

function workload(args: string[], uid?: number): WorkloadProcess {
  const w = new WorkloadProcess(args, { socketPath, ...(uid === undefined ? {} : { uid }) });
  workloads.push(w);
  return w;
}

async function createEntry(path: string, uid: number, ...extra: string[]): Promise<string> {
  const r = await cli(
    'entry',
    'create',
    '-parentID',
    NODE_ID,
    '-spiffeID',
    id(path),
    '-selector',
    `unix:uid:${uid}`,
    ...extra,
  );
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  const entryId = entryIdOf(r.out);
  entryIds.set(path, entryId);
  return entryId;
}

/** Polls `spire-agent api fetch x509` as `uid` until it succeeds (the agent has synced its entry). */
async function untilServed(uid: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await runCommand('setpriv', [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      '--clear-groups',
      SPIRE_AGENT,
      'api',
      'fetch',
      'x509',
      '-silent',
      '-socketPath',
      socketPath,
    ]);
    if (r.code === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `uid ${uid} was not served in time: ${r.err}\n${agent.output().slice(-2000)}`,
      );
    }
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function x509Event(w: WorkloadProcess, timeoutMs = 20_000): Promise<ReportedSvid[]> {
  const e = await w.next(timeoutMs);
  if (e.event !== 'x509') throw new Error(`expected an x509 message, got ${JSON.stringify(e)}`);
  return e['svids'] as ReportedSvid[];
}

/** The workload's own view checked against the server's bundle, independently twice. */
function expectVerified(svid: ReportedSvid, expectedId: string): void {
  const v = opensslVerify(dir, bundlePem, svid.certsPem);
  expect(v.out.trim()).toBe('CERT: OK');
  expect(v.code).toBe(0);
  const ders = svid.certsPem
    .split('-----END CERTIFICATE-----')
    .filter((b) => b.includes('BEGIN'))
    .map((b) => new Uint8Array(new X509Certificate(`${b}-----END CERTIFICATE-----\n`).raw));
  expect(verifyX509Svid(ders, parseX509Bundle(TD, bundlePem)).id.toString()).toBe(expectedId);
  // the key is the certificate's
  const certKey = new X509Certificate(ders[0]!).publicKey.export({ format: 'der', type: 'spki' });
  const ownKey = createPublicKey(svid.keyPem).export({ format: 'der', type: 'spki' });
  expect(Buffer.compare(certKey, ownKey)).toBe(0);
}

beforeAll(async () => {
  const serverDir = join(dir, 'server');
  mkdirSync(serverDir);
  const sc = writeServerConfig({ dir: serverDir });
  const otherDir = join(dir, 'other');
  mkdirSync(otherDir);
  const oc = writeServerConfig({ dir: otherDir, trustDomain: 'other.org' });
  [server, other] = await Promise.all([
    startServerProcess(sc.path, sc.socketPath),
    startServerProcess(oc.path, oc.socketPath),
  ]);
  cli = serverCommand(sc.socketPath);

  const b = await cli('bundle', 'show');
  expect(b.code).toBe(0);
  bundlePem = b.out;
  const bundlePath = join(dir, 'bundle.pem');
  writeFileSync(bundlePath, bundlePem);

  // The intruder: an SVID of trust domain other.org, minted by the other server.
  mkdirSync(intruderDir, { mode: 0o755 });
  const minted = await serverCommand(oc.socketPath)(
    'x509',
    'mint',
    '-spiffeID',
    'spiffe://other.org/intruder',
    '-write',
    intruderDir,
  );
  expect(minted.code, minted.err).toBe(0);
  chmodSync(join(intruderDir, 'key.pem'), 0o644);

  const token = await generateJoinToken(sc.socketPath, NODE_ID);
  const ac = writeAgentConfig({
    dir: join(dir, 'agent'),
    serverPort: agentApiPort(server),
    bundlePath,
    logLevel: 'INFO',
  });
  socketPath = ac.socketPath;
  agent = await startAgentProcess(ac.path, { joinToken: token });

  await createEntry('/wl/alice', ALICE);
  await createEntry('/wl/bob', BOB);
  await createEntry('/wl/rotating', ROTATOR, '-x509SVIDTTL', '20');
  await createEntry('/wl/multi-a', MULTI);
  await createEntry('/wl/multi-b', MULTI, '-selector', `unix:gid:${MULTI}`);
  await Promise.all([ALICE, BOB, ROTATOR, MULTI].map((uid) => untilServed(uid)));
}, 120_000);

afterAll(async () => {
  for (const w of workloads) await w.kill();
  const agentExit = await agent?.stop();
  const agentLog = agent?.output().slice(-3000);
  await Promise.all([server?.stop(), other?.stop()]);
  rmSync(dir, { recursive: true, force: true });
  // SIGTERM: a clean stop well within the 10 s grace (no SIGKILL)
  expect(agentExit, agentLog).toBe(0);
}, 60_000);

describe('workloads of different uids', () => {
  it('each gets exactly its own X509-SVID; a uid without an entry gets PermissionDenied', async () => {
    const alice = workload(['watch'], ALICE);
    const bob = workload(['watch'], BOB);
    const nobody = workload(['watch'], NOBODY);

    const [a, b] = await Promise.all([x509Event(alice), x509Event(bob)]);
    expect(a.map((s) => s.id)).toEqual([id('/wl/alice')]);
    expect(b.map((s) => s.id)).toEqual([id('/wl/bob')]);
    expectVerified(a[0]!, id('/wl/alice'));
    expectVerified(b[0]!, id('/wl/bob'));
    expect(a[0]!.serial).not.toBe(b[0]!.serial);
    expect(a[0]!.keyPem).not.toBe(b[0]!.keyPem);

    const denied = await nobody.next();
    expect(denied).toMatchObject({
      event: 'error',
      code: 'PermissionDenied',
      message: 'no identity issued',
    });
    expect(await nobody.exited).toBe(0);
    expect(agent.output()).toMatch(new RegExp(`msg="no identity issued".* uid=${NOBODY}`));
  }, 60_000);
});

describe('an open FetchX509SVID stream', () => {
  it('loses an identity when its entry is deleted, and ends with PermissionDenied after the last', async () => {
    const multi = workload(['watch'], MULTI);
    const first = await x509Event(multi);
    expect(first.map((s) => s.id).sort()).toEqual([id('/wl/multi-a'), id('/wl/multi-b')]);

    const d1 = await cli('entry', 'delete', '-entryID', entryIds.get('/wl/multi-a')!);
    expect(d1.code).toBe(0);
    const second = await x509Event(multi);
    expect(second.map((s) => s.id)).toEqual([id('/wl/multi-b')]);
    // the remaining SVID is the same certificate, not a re-mint
    expect(second[0]!.serial).toBe(first.find((s) => s.id === id('/wl/multi-b'))!.serial);

    const d2 = await cli('entry', 'delete', '-entryID', entryIds.get('/wl/multi-b')!);
    expect(d2.code).toBe(0);
    const last: WorkloadEvent = await multi.next();
    expect(last).toMatchObject({
      event: 'error',
      code: 'PermissionDenied',
      message: 'no identity issued',
    });
  }, 60_000);

  it('receives the rotated SVID of a 20 s TTL entry before the old one expires', async () => {
    const w = workload(['watch'], ROTATOR);
    const [old] = await x509Event(w);
    expect(old!.id).toBe(id('/wl/rotating'));
    // 20 s asked for, NotBefore backdated 10 s by the server
    expect(old!.notAfter - old!.notBefore).toBeGreaterThanOrEqual(20_000);
    expect(old!.notAfter - old!.notBefore).toBeLessThanOrEqual(31_000);
    expectVerified(old!, id('/wl/rotating'));

    const deadline = old!.notAfter;
    for (;;) {
      const e = await w.next(Math.max(1000, deadline - Date.now() + 2000));
      expect(e.event).toBe('x509');
      const [svid] = e['svids'] as ReportedSvid[];
      expect(svid!.id).toBe(id('/wl/rotating'));
      if (svid!.serial === old!.serial) continue; // an unrelated resend
      expect(e.at).toBeLessThan(old!.notAfter);
      expect(svid!.notAfter).toBeGreaterThan(old!.notAfter);
      expectVerified(svid!, id('/wl/rotating'));
      break;
    }
  }, 60_000);
});

describe('mutual TLS between workloads with their SVIDs', () => {
  let alice: WorkloadProcess;
  let port: number;

  beforeAll(async () => {
    alice = workload(['serve', '--allow', id('/wl/bob')], ALICE);
    const listening = await alice.next();
    expect(listening).toMatchObject({ event: 'listening', id: id('/wl/alice') });
    port = listening['port'] as number;
  }, 30_000);

  it('bob and alice authenticate each other', async () => {
    const bob = workload(['connect', '--port', String(port), '--expect', id('/wl/alice')], BOB);
    expect(await bob.next()).toMatchObject({
      event: 'connected',
      server: id('/wl/alice'),
      reply: { from: id('/wl/alice'), to: id('/wl/bob') },
    });
    expect(await alice.next()).toMatchObject({ event: 'accepted', peer: id('/wl/bob') });
  }, 30_000);

  it('a workload of trust domain other.org is refused as a client', async () => {
    const intruder = workload(
      ['connect', '--port', String(port), '--expect', id('/wl/alice'), '--files', intruderDir],
      NOBODY,
    );
    const verdict = await alice.next();
    expect(verdict['event'], JSON.stringify(verdict)).toBe('refused');
    expect(verdict['reason']).toBe(
      'ERR_SVID_VERIFICATION_FAILED: no X.509 bundle for trust domain other.org',
    );
    // the intruder cannot verify alice either (it trusts other.org only): it refuses or is closed
    const seen = await intruder.next();
    expect(['refused', 'closed']).toContain(seen.event);
    expect(seen.event === 'connected').toBe(false);
  }, 30_000);

  it('a workload of the same trust domain whose ID is not authorized is refused', async () => {
    const rotator = workload(
      ['connect', '--port', String(port), '--expect', id('/wl/alice')],
      ROTATOR,
    );
    expect(await alice.next()).toMatchObject({
      event: 'refused',
      peer: id('/wl/rotating'),
      reason: `unauthorized SPIFFE ID ${id('/wl/rotating')}`,
    });
    expect(await rotator.next()).toMatchObject({ event: 'closed', server: id('/wl/alice') });
  }, 30_000);

  it('a server of trust domain other.org is refused by a workload', async () => {
    const intruder = workload(['serve', '--allow', id('/wl/bob'), '--files', intruderDir], NOBODY);
    const listening = await intruder.next();
    expect(listening).toMatchObject({ event: 'listening', id: 'spiffe://other.org/intruder' });
    const bob = workload(
      ['connect', '--port', String(listening['port']), '--expect', id('/wl/alice')],
      BOB,
    );
    expect(await bob.next()).toMatchObject({
      event: 'refused',
      reason: 'ERR_SVID_VERIFICATION_FAILED: no X.509 bundle for trust domain other.org',
    });
    // and the intruder's SVID does not verify against this trust domain's bundle with openssl
    const foreign = opensslVerify(
      dir,
      bundlePem,
      readFileSync(join(intruderDir, 'svid.pem'), 'utf8'),
    );
    expect(foreign.code).not.toBe(0);
  }, 30_000);
});
