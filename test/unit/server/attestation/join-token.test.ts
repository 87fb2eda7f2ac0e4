import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../src/common/clock.js';
import {
  createJoinTokenAttestor,
  joinTokenAgentId,
} from '../../../../src/server/attestation/join-token.js';
import type { ServerNodeAttestor } from '../../../../src/server/attestation/node-attestor.js';
import { openDataStore } from '../../../../src/server/datastore/index.js';
import type { DataStore } from '../../../../src/server/datastore/types.js';

const T0 = Date.UTC(2026, 0, 1);
const te = new TextEncoder();
const noChallenge = async (): Promise<Uint8Array> => {
  throw new Error('join_token must not challenge');
};

let dir: string;
let ds: DataStore;
let clock: ManualClock;
let attestor: ServerNodeAttestor;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'jt-'));
  clock = new ManualClock(T0);
  ds = await openDataStore({
    databaseType: 'sqlite3',
    connectionString: join(dir, 'ds.sqlite3'),
    clock,
  });
  attestor = createJoinTokenAttestor({ trustDomain: 'example.org', dataStore: ds, clock });
});

afterEach(async () => {
  await ds.close();
  await rm(dir, { recursive: true, force: true });
});

async function attestCode(token: string): Promise<string | undefined> {
  try {
    await attestor.attest(te.encode(token), noChallenge, {});
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

describe('join_token attestor', () => {
  it('consumes a valid token once and names the agent after it', async () => {
    const token = '6f1b0b3e-4b6c-4b8e-9f4e-2a7c1d9e0f11';
    await ds.createJoinToken({ token, expiresAt: T0 / 1000 + 600 });
    const r = await attestor.attest(te.encode(token), noChallenge, {});
    expect(r).toEqual({
      agentId: `spiffe://example.org/spire/agent/join_token/${token}`,
      selectors: [],
      canReattest: false,
      evidence: { type: 'join_token', tokenExpiresAt: T0 / 1000 + 600 },
    });
    expect(JSON.stringify(r.evidence)).not.toContain(token);
    expect(r.agentId).toBe(joinTokenAgentId('example.org', token));
    // reused
    expect(await attestCode(token)).toBe('ERR_ATTESTATION_INVALID_ARGUMENT');
  });

  it('refuses unknown, expired and malformed tokens as SPIRE does (InvalidArgument)', async () => {
    expect(await attestCode('never-issued')).toBe('ERR_ATTESTATION_INVALID_ARGUMENT');
    await ds.createJoinToken({ token: 'short-lived', expiresAt: T0 / 1000 + 10 });
    clock.advance(11_000);
    expect(await attestCode('short-lived')).toBe('ERR_ATTESTATION_INVALID_ARGUMENT');
    // an expired token is consumed too: it is gone afterwards
    await expect(ds.consumeJoinToken('short-lived', 0)).rejects.toMatchObject({
      code: 'ERR_DATASTORE_NOT_FOUND',
    });
    expect(await attestCode('')).toBe('ERR_ATTESTATION_INVALID_ARGUMENT');
    expect(await attestCode('a/b')).toBe('ERR_ATTESTATION_INVALID_ARGUMENT');
    expect(await attestCode('x'.repeat(256))).toBe('ERR_ATTESTATION_INVALID_ARGUMENT');
  });

  it('lets exactly one of two concurrent attestations win a token', async () => {
    await ds.createJoinToken({ token: 'race', expiresAt: T0 / 1000 + 600 });
    const results = await Promise.allSettled([
      attestor.attest(te.encode('race'), noChallenge, {}),
      attestor.attest(te.encode('race'), noChallenge, {}),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(lost.reason).toMatchObject({ code: 'ERR_ATTESTATION_INVALID_ARGUMENT' });
  });
});
