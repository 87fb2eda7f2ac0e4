/**
 * Caller resolution for the Workload API: SO_PEERCRED + pidfd peers (as the gRPC server
 * records them) → attested selectors, with the per-connection cache, the shared in-flight
 * attestation and the liveness check after attestation. Peers and pidfd liveness are
 * faked here; test/integration/workload-api-limits.test.ts drives the real kernel path.
 */
import type { Socket } from 'node:net';
import { Code, ConnectError, createContextValues, createHandlerContext } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { createPeerCallerResolver } from '../../../src/agent/workload-api/caller.js';
import type { WorkloadAttestor } from '../../../src/agent/workload-attestors/workload-attestor.js';
import { ManualClock } from '../../../src/common/clock.js';
import { SpireEdgeError } from '../../../src/common/errors.js';
import { type GrpcPeer, kGrpcPeer } from '../../../src/common/grpc.js';
import { createLogger } from '../../../src/common/log.js';
import { workload } from '../../../src/protocol/index.js';

function peer(pid: number, pidfd: number | undefined, destroyed = false): GrpcPeer {
  return {
    kind: 'unix',
    socket: { destroyed } as Socket,
    fd: 10,
    cred: { pid, uid: 1000, gid: 1000 },
    pidfd,
  };
}

function ctxFor(p: GrpcPeer | undefined, signal?: AbortSignal) {
  return createHandlerContext({
    service: workload.SpiffeWorkloadAPI,
    method: workload.SpiffeWorkloadAPI.method.fetchX509SVID,
    protocolName: 'grpc',
    requestMethod: 'POST',
    url: 'http://localhost/SpiffeWorkloadAPI/FetchX509SVID',
    contextValues: createContextValues().set(kGrpcPeer, p),
    ...(signal === undefined ? {} : { requestSignal: signal }),
  });
}

function counting(delayMs = 0, fail = false) {
  const calls: Array<{ pid: number; pidfd: number | undefined }> = [];
  const attestor: WorkloadAttestor = {
    name: 'fake',
    attest: async (pid, opts) => {
      calls.push({ pid, pidfd: opts?.pidfd });
      await new Promise((r) => setTimeout(r, delayMs));
      if (fail) throw new Error('proc unreadable');
      return [{ type: 'unix', value: `uid:${pid}` }];
    },
  };
  return { attestor, calls };
}

async function failure(p: Promise<unknown>): Promise<{ code: unknown; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof SpireEdgeError) return { code: err.code, message: err.message };
    if (err instanceof ConnectError) return { code: err.code, message: err.rawMessage };
    throw err;
  }
  throw new Error('expected a failure');
}

describe('createPeerCallerResolver', () => {
  it('attests the pid of the connection, passing its pidfd, and checks liveness after', async () => {
    const { attestor, calls } = counting();
    const checked: number[] = [];
    const r = createPeerCallerResolver({
      attestor,
      pidfdAlive: (fd) => {
        checked.push(fd);
        return true;
      },
    });
    const caller = await r.resolve(ctxFor(peer(4242, 77)));
    expect(caller).toEqual({
      pid: 4242,
      uid: 1000,
      gid: 1000,
      selectors: [{ type: 'unix', value: 'uid:4242' }],
    });
    expect(calls).toEqual([{ pid: 4242, pidfd: 77 }]);
    expect(checked).toEqual([77]);
  });

  it('refuses a caller whose process exited (pidfd dead after attestation): Unavailable', async () => {
    const lines: string[] = [];
    const { attestor } = counting();
    const r = createPeerCallerResolver({
      attestor,
      pidfdAlive: () => false,
      log: createLogger({ write: (l) => lines.push(l), format: 'json' }),
    });
    expect(await failure(r.resolve(ctxFor(peer(4242, 77))))).toEqual({
      code: 'ERR_WORKLOAD_ATTESTATION_UNAVAILABLE',
      message: 'workload attestation failed',
    });
    expect(lines.join('')).toMatch(/could not verify existence of the original caller/);
    // no pidfd at all: the caller was gone at accept time
    expect((await failure(r.resolve(ctxFor(peer(4242, undefined))))).code).toBe(
      'ERR_WORKLOAD_ATTESTATION_UNAVAILABLE',
    );
    // a pidfd that cannot be queried counts as dead
    const throwing = createPeerCallerResolver({
      attestor,
      pidfdAlive: () => {
        throw new Error('EBADF');
      },
    });
    expect((await failure(throwing.resolve(ctxFor(peer(4242, 77))))).code).toBe(
      'ERR_WORKLOAD_ATTESTATION_UNAVAILABLE',
    );
  });

  it('caches per connection for cacheMs and shares one attestation between concurrent calls', async () => {
    const clock = new ManualClock();
    const { attestor, calls } = counting(10);
    const r = createPeerCallerResolver({ attestor, clock, cacheMs: 1000, pidfdAlive: () => true });
    const a = peer(1, 5);
    const b = peer(2, 6);
    await Promise.all([...Array(50)].map(() => r.resolve(ctxFor(a))));
    expect(calls).toHaveLength(1);
    await r.resolve(ctxFor(a));
    await r.resolve(ctxFor(b));
    expect(calls.map((c) => c.pid)).toEqual([1, 2]);
    clock.advance(1000);
    await r.resolve(ctxFor(a));
    expect(calls.map((c) => c.pid)).toEqual([1, 2, 1]);
    const uncached = createPeerCallerResolver({
      attestor,
      clock,
      cacheMs: 0,
      pidfdAlive: () => true,
    });
    await uncached.resolve(ctxFor(a));
    await uncached.resolve(ctxFor(a));
    expect(calls).toHaveLength(5);
  });

  it('does not cache failures', async () => {
    const { attestor, calls } = counting(0, true);
    const r = createPeerCallerResolver({ attestor, pidfdAlive: () => true });
    const p = peer(3, 9);
    expect((await failure(r.resolve(ctxFor(p)))).code).toBe('ERR_WORKLOAD_ATTESTATION_UNAVAILABLE');
    expect((await failure(r.resolve(ctxFor(p)))).code).toBe('ERR_WORKLOAD_ATTESTATION_UNAVAILABLE');
    expect(calls).toHaveLength(2);
  });

  it('answers Canceled when the call goes away, and never reads a pidfd of a closed connection', async () => {
    const { attestor } = counting(50);
    let checked = 0;
    const r = createPeerCallerResolver({
      attestor,
      pidfdAlive: () => {
        checked++;
        return true;
      },
    });
    const ac = new AbortController();
    const pending = r.resolve(ctxFor(peer(1, 5), ac.signal));
    ac.abort();
    expect((await failure(pending)).code).toBe(Code.Canceled);
    expect((await failure(r.resolve(ctxFor(peer(1, 5, true))))).code).toBe(Code.Canceled);
    expect(checked).toBe(0);
  });

  it('refuses calls it cannot attribute: no peer, no credentials', async () => {
    const { attestor, calls } = counting();
    const r = createPeerCallerResolver({ attestor, pidfdAlive: () => true });
    expect((await failure(r.resolve(ctxFor(undefined)))).code).toBe(Code.Unavailable);
    const noCred: GrpcPeer = {
      kind: 'unix',
      socket: {} as Socket,
      fd: 3,
      cred: undefined,
      pidfd: 4,
    };
    expect(await failure(r.resolve(ctxFor(noCred)))).toEqual({
      code: 'ERR_WORKLOAD_CALLER_UNKNOWN',
      message: 'could not resolve caller information',
    });
    expect(calls).toHaveLength(0);
  });
});
