import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeValue } from '../../../src/agent/storage/codec.js';
import {
  type AgentIdentityRecord,
  type AgentStore,
  type BundleRecord,
  type EntryRecord,
  isRecoverableStoreError,
  type JwtSvidRecord,
  jwtSvidCacheKey,
  type OpenAgentStoreOptions,
  openAgentStore,
  openAgentStoreWithRecovery,
  quarantineAgentStore,
  type Sealer,
  type X509SvidRecord,
} from '../../../src/agent/storage/index.js';
import { RecordKind } from '../../../src/agent/storage/layout.js';
import { ManualClock } from '../../../src/common/clock.js';
import { isSpireEdgeError } from '../../../src/common/errors.js';

const TD = 'example.org';
const root = mkdtempSync(join(tmpdir(), 'spire-edge-agent-store-'));
let dataDir: string;
let n = 0;

beforeEach(() => {
  dataDir = join(root, `d${String(n++)}`);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function newKey(): { pkcs8: Uint8Array; scalar: Buffer } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    pkcs8: new Uint8Array(privateKey.export({ type: 'pkcs8', format: 'der' })),
    scalar: Buffer.from(jwk.d!, 'base64url'),
  };
}

const KEY = newKey();

function entry(i: number, extra: Partial<EntryRecord> = {}): EntryRecord {
  return {
    id: `entry-${String(i)}`,
    spiffeId: `spiffe://${TD}/workload/${String(i)}`,
    parentId: `spiffe://${TD}/spire/agent/join_token/t`,
    selectors: [{ type: 'unix', value: `uid:${String(1000 + i)}` }],
    x509SvidTtl: 3600,
    jwtSvidTtl: 300,
    federatesWith: [],
    admin: false,
    downstream: false,
    expiresAt: 0,
    dnsNames: [],
    revisionNumber: 1,
    storeSvid: false,
    hint: '',
    createdAt: 1_767_225_600,
    ...extra,
  };
}

function svid(i: number, key = KEY.pkcs8, extra: Partial<X509SvidRecord> = {}): X509SvidRecord {
  return {
    entryId: `entry-${String(i)}`,
    spiffeId: `spiffe://${TD}/workload/${String(i)}`,
    certChain: [new Uint8Array(randomBytes(300)), new Uint8Array(randomBytes(200))],
    privateKey: key,
    expiresAtMs: 2_000_000,
    rotateAtMs: 1_000_000,
    entryRevision: 1,
    ...extra,
  };
}

function bundle(td = TD): BundleRecord {
  return {
    trustDomain: td,
    x509Authorities: [new Uint8Array(randomBytes(120))],
    jwtAuthorities: [{ keyId: 'k1', publicKey: new Uint8Array(randomBytes(91)), expiresAt: 99 }],
    refreshHint: 300,
    sequenceNumber: 3,
  };
}

function agent(key: Uint8Array | null = KEY.pkcs8): AgentIdentityRecord {
  return {
    spiffeId: `spiffe://${TD}/spire/agent/join_token/t`,
    certChain: [new Uint8Array(randomBytes(400))],
    ...(key === null ? {} : { privateKey: key }),
    expiresAtMs: 5_000_000,
    reattestable: false,
    attestorType: 'join_token',
    lastAttestedAtMs: 1_000,
  };
}

function jwt(aud: string[], token = `eyJ.${randomBytes(16).toString('hex')}.sig`): JwtSvidRecord {
  return {
    spiffeId: `spiffe://${TD}/workload/1`,
    audience: aud,
    token,
    issuedAtMs: 1_000,
    expiresAtMs: 301_000,
  };
}

async function open(extra: Partial<OpenAgentStoreOptions> = {}): Promise<AgentStore> {
  return openAgentStore({ dataDir, trustDomain: TD, ...extra });
}

async function openError(extra: Partial<OpenAgentStoreOptions> = {}): Promise<unknown> {
  try {
    const s = await open(extra);
    await s.close();
  } catch (err) {
    return err;
  }
  throw new Error('expected the store to be refused');
}

const storeDir = () => join(dataDir, 'agent-store');

/** Writes raw rows into the store's LevelDB (the store must be closed). */
async function rawPut(rows: Array<[string, Uint8Array]>, dels: string[] = []): Promise<void> {
  const db = new ClassicLevel<string, Uint8Array>(storeDir(), { valueEncoding: 'view' });
  await db.open();
  await db.batch([
    ...rows.map(([key, value]) => ({ type: 'put' as const, key, value })),
    ...dels.map((key) => ({ type: 'del' as const, key })),
  ]);
  await db.close();
}

/** Every byte of every file in the store directory. */
function storeBytes(): Buffer {
  return Buffer.concat(readdirSync(storeDir()).map((f) => readFileSync(join(storeDir(), f))));
}

function xorSealer(): { sealer: Sealer; calls: { seal: number; unseal: number } } {
  const calls = { seal: 0, unseal: 0 };
  return {
    calls,
    sealer: {
      async seal(plain) {
        calls.seal++;
        return Uint8Array.from([0x53, 0x4c, ...plain.map((b) => b ^ 0xa5)]);
      },
      async unseal(sealed) {
        calls.unseal++;
        if (sealed[0] !== 0x53 || sealed[1] !== 0x4c) throw new Error('not sealed by this sealer');
        return sealed.subarray(2).map((b) => b ^ 0xa5);
      },
    },
  };
}

describe('openAgentStore: creation, layout and file modes', () => {
  it('creates a private store under data_dir with its meta records, and reopens it', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const s = await open({ clock });
    expect(s.created).toBe(true);
    expect(s.location).toBe(storeDir());
    expect(s.trustDomain).toBe(TD);
    expect(s.createdAtMs).toBe(Date.UTC(2026, 0, 1));
    expect(s.storeId).toMatch(/^[0-9a-f]{16}$/);
    expect(s.snapshot).toMatchObject({ revision: 0, trustDomain: TD, agent: undefined });
    expect(s.snapshot.entries.size).toBe(0);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(storeDir()).mode & 0o777).toBe(0o700);
    await s.setBundle(bundle());
    await s.close();
    for (const f of readdirSync(storeDir())) {
      expect({ f, mode: statSync(join(storeDir(), f)).mode & 0o777 }).toEqual({ f, mode: 0o600 });
    }
    // No temporary creation directory is left behind.
    expect(readdirSync(dataDir)).toEqual(['agent-store']);
    const again = await open({ trustDomain: `spiffe://${TD}` });
    expect(again.created).toBe(false);
    expect(again.storeId).toBe(s.storeId);
    expect(again.createdAtMs).toBe(s.createdAtMs);
    expect(again.bundle()?.sequenceNumber).toBe(3);
    await again.close();
  });

  it('narrows a directory and files other users can read back to 0700/0600 at open', async () => {
    const s = await open();
    await s.setAgentIdentity(agent());
    await s.close();
    chmodSync(storeDir(), 0o755);
    for (const f of readdirSync(storeDir())) chmodSync(join(storeDir(), f), 0o644);
    const again = await open();
    expect(statSync(storeDir()).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(storeDir())) {
      expect(statSync(join(storeDir(), f)).mode & 0o777).toBe(0o600);
    }
    await again.close();
  });

  it('replaces an empty store directory and cleans up interrupted creations', async () => {
    mkdirSync(storeDir(), { recursive: true, mode: 0o755 });
    mkdirSync(join(dataDir, 'agent-store.creating-0123'));
    writeFileSync(join(dataDir, 'agent-store.creating-0123', 'LOG'), 'x');
    const s = await open();
    expect(s.created).toBe(true);
    expect(statSync(storeDir()).mode & 0o777).toBe(0o700);
    expect(readdirSync(dataDir)).toEqual(['agent-store']);
    await s.close();
  });
});

describe('AgentStore: records, snapshot and transactions', () => {
  it('round-trips every record kind through a restart', async () => {
    const s = await open();
    const records = {
      agent: agent(),
      bundle: bundle(),
      federated: bundle('other.org'),
      entries: [
        entry(1, { federatesWith: ['other.org'], dnsNames: ['a.local'], hint: 'h' }),
        entry(2),
      ],
      sync: { lastSyncAtMs: 10, lastFullSyncAtMs: 9, cursor: 'cur' },
      svids: [svid(1), svid(2)],
      jwts: [jwt(['b', 'a']), jwt(['c'])],
    };
    await s.update((tx) => {
      tx.setAgentIdentity(records.agent)
        .setBundle(records.bundle)
        .putFederatedBundle(records.federated)
        .setSyncState(records.sync);
      for (const e of records.entries) tx.putEntry(e);
      for (const v of records.svids) tx.putX509Svid(v);
      for (const j of records.jwts) tx.putJwtSvid(j);
    });
    await s.close();
    const r = await open();
    expect(r.agentIdentity()).toEqual(records.agent);
    expect(r.bundle()).toEqual(records.bundle);
    expect(r.federatedBundle('other.org')).toEqual(records.federated);
    expect([...r.snapshot.federatedBundles.keys()]).toEqual(['other.org']);
    expect(r.entry('entry-1')).toEqual(records.entries[0]);
    expect(r.entry('entry-2')).toEqual(records.entries[1]);
    expect(r.syncState()).toEqual(records.sync);
    expect(r.x509Svid('entry-1')).toEqual(records.svids[0]);
    expect(r.x509Svid('entry-2')).toEqual(records.svids[1]);
    expect(r.jwtSvid(records.jwts[0]!.spiffeId, ['a', 'b', 'a'])).toEqual({
      ...records.jwts[0],
      audience: ['a', 'b'],
    });
    expect([...r.snapshot.jwtSvids.keys()].sort()).toEqual(
      [
        jwtSvidCacheKey(records.jwts[0]!.spiffeId, ['a', 'b']),
        jwtSvidCacheKey(records.jwts[1]!.spiffeId, ['c']),
      ].sort(),
    );
    // An agent identity without a persisted key (KeyManager "memory").
    await r.setAgentIdentity(agent(null));
    await r.close();
    const r2 = await open();
    expect(r2.agentIdentity()?.privateKey).toBeUndefined();
    expect(r2.agentIdentity()?.attestorType).toBe('join_token');
    await r2.close();
  });

  it('serves reads from an immutable snapshot that each committed write replaces', async () => {
    const s = await open();
    const before = s.snapshot;
    const e = entry(1);
    const after = await s.update((tx) => tx.putEntry(e));
    expect(after).toBe(s.snapshot);
    expect(after.revision).toBe(before.revision + 1);
    expect(before.entries.size).toBe(0);
    expect(after.entries.get('entry-1')).toEqual(e);
    // Only the record's own fields are kept (what a restart would read back).
    await s.update((tx) => tx.putEntry({ ...entry(9), extra: 'x' } as EntryRecord));
    expect(s.entry('entry-9')).toEqual(entry(9));
    // The caller's objects are copied: mutating them does not change the store.
    (e.selectors as Array<{ type: string; value: string }>).push({ type: 'x', value: 'y' });
    expect(s.entry('entry-1')?.selectors).toHaveLength(1);
    expect(Object.isFrozen(s.entry('entry-1'))).toBe(true);
    expect(Object.isFrozen(s.snapshot)).toBe(true);
    // An empty transaction writes nothing.
    const current = s.snapshot;
    expect(await s.update(() => {})).toBe(current);
    // Writes are applied in call order.
    const p1 = s.update((tx) => tx.putEntry(entry(2, { revisionNumber: 1 })));
    const p2 = s.update((tx) => tx.putEntry(entry(2, { revisionNumber: 2 })));
    expect(s.entry('entry-2')).toBeUndefined();
    await Promise.all([p1, p2]);
    expect(s.entry('entry-2')?.revisionNumber).toBe(2);
    await s.close();
  });

  it('resolves a transaction in order: later operations win, clear removes what exists', async () => {
    const s = await open();
    await s.update((tx) => {
      tx.putEntry(entry(1)).putEntry(entry(2)).putX509Svid(svid(1)).setBundle(bundle());
    });
    await s.update((tx) => {
      tx.putEntry(entry(3)).clear(['entries']).putEntry(entry(4)).deleteX509Svid('entry-1');
      tx.putX509Svid(svid(5)).deleteX509Svid('entry-5');
    });
    expect([...s.snapshot.entries.keys()]).toEqual(['entry-4']);
    expect(s.snapshot.x509Svids.size).toBe(0);
    expect(s.bundle()).toBeDefined();
    await s.close();
    const r = await open();
    expect([...r.snapshot.entries.keys()]).toEqual(['entry-4']);
    expect(r.snapshot.x509Svids.size).toBe(0);
    await r.close();
  });

  it('applies a sync result in one batch, dropping the SVIDs of removed entries', async () => {
    const s = await open();
    await s.applySyncResult({
      upsertEntries: [entry(1), entry(2)],
      syncState: { lastSyncAtMs: 1, lastFullSyncAtMs: 1, cursor: '' },
      bundle: bundle(),
      federatedBundles: { put: [bundle('a.org'), bundle('b.org')] },
    });
    await s.storeX509Svids([svid(1), svid(2)]);
    const snap = await s.applySyncResult({
      upsertEntries: [entry(2, { revisionNumber: 2 })],
      deleteEntryIds: ['entry-1'],
      syncState: { lastSyncAtMs: 2, lastFullSyncAtMs: 1, cursor: 'c2' },
      federatedBundles: { delete: ['a.org'] },
    });
    expect([...snap.entries.keys()]).toEqual(['entry-2']);
    expect(snap.entries.get('entry-2')?.revisionNumber).toBe(2);
    expect([...snap.x509Svids.keys()]).toEqual(['entry-2']);
    expect([...snap.federatedBundles.keys()]).toEqual(['b.org']);
    expect(snap.sync).toEqual({ lastSyncAtMs: 2, lastFullSyncAtMs: 1, cursor: 'c2' });
    // storeX509Svids may drop others in the same batch.
    const after = await s.storeX509Svids([svid(3)], { deleteEntryIds: ['entry-2'] });
    expect([...after.x509Svids.keys()]).toEqual(['entry-3']);
    await s.close();
  });

  it('prunes expired SVIDs against the clock and resets to an empty store keeping its meta', async () => {
    const clock = new ManualClock(1_000_000);
    const s = await open({ clock });
    await s.storeX509Svids([
      svid(1, KEY.pkcs8, { expiresAtMs: 1_000_000 }),
      svid(2, KEY.pkcs8, { expiresAtMs: 1_000_001 }),
    ]);
    await s.putJwtSvid({ ...jwt(['a']), expiresAtMs: 999_999 });
    await s.putJwtSvid({ ...jwt(['b']), expiresAtMs: 2_000_000 });
    expect(await s.pruneExpired()).toEqual({ x509Svids: 1, jwtSvids: 1 });
    expect([...s.snapshot.x509Svids.keys()]).toEqual(['entry-2']);
    expect(s.jwtSvid(jwt([]).spiffeId, ['b'])).toBeDefined();
    clock.advance(2_000_000);
    expect(await s.pruneExpired()).toEqual({ x509Svids: 1, jwtSvids: 1 });
    // Nothing left to prune, nothing to delete: no write.
    const revision = s.snapshot.revision;
    expect(await s.pruneExpired()).toEqual({ x509Svids: 0, jwtSvids: 0 });
    await s.update((tx) => tx.deleteEntry('never-there').deleteBundle());
    expect(s.snapshot.revision).toBe(revision);
    await s.setAgentIdentity(agent());
    await s.setBundle(bundle());
    const id = s.storeId;
    const snap = await s.reset();
    expect(snap.agent).toBeUndefined();
    expect(snap.bundle).toBeUndefined();
    await s.close();
    const r = await open();
    expect(r.storeId).toBe(id);
    expect(r.agentIdentity()).toBeUndefined();
    await r.close();
  });

  it('throws TypeError for records it cannot hold and writes nothing of them', async () => {
    const s = await open();
    expect(() => s.update((tx) => tx.setBundle(bundle('other.org')))).toThrow(
      'bundle of other.org given as the bundle of example.org',
    );
    expect(() => s.update((tx) => tx.putFederatedBundle(bundle()))).toThrow(TypeError);
    expect(() => s.update((tx) => tx.putEntry(entry(1, { id: '' })))).toThrow(
      'entry.id must be a non-empty string',
    );
    expect(() => s.update((tx) => tx.putX509Svid(svid(1, KEY.pkcs8, { certChain: [] })))).toThrow(
      'x509Svid.certChain must hold at least the leaf',
    );
    expect(() => s.update((tx) => tx.clear(['nope' as never]))).toThrow(TypeError);
    // What loading would refuse is refused when written, so a write cannot break the next open.
    expect(() => s.update((tx) => tx.putEntry(entry(1, { spiffeId: 'web' })))).toThrow(
      'entry.spiffeId must be a SPIFFE ID (spiffe://…)',
    );
    expect(() =>
      s.update((tx) => tx.putJwtSvid({ ...jwt(['a']), audience: ['a', 1 as never] })),
    ).toThrow('jwtSvid.audience[1] must be a string');
    await expect(
      s.update((tx) => tx.putEntry(entry(1)).putEntry(entry(2, { revisionNumber: 1.5 }))),
    ).rejects.toThrow('revisionNumber must be a non-negative safe integer');
    expect(s.snapshot.entries.size).toBe(0);
    expect(s.snapshot.revision).toBe(0);
    await s.close();
    const r = await open();
    expect(r.snapshot.entries.size).toBe(0);
    await r.close();
  });

  it('finishes pending writes on close and refuses writes after it', async () => {
    const s = await open();
    const pending = s.storeX509Svids([svid(1)]);
    await s.close();
    await pending;
    expect(s.closed).toBe(true);
    await expect(s.setBundle(bundle())).rejects.toMatchObject({ code: 'ERR_AGENT_STORE_CLOSED' });
    await s.close();
    // The last snapshot stays readable while the agent shuts down.
    expect(s.x509Svid('entry-1')).toBeDefined();
    const r = await open();
    expect(r.x509Svid('entry-1')).toBeDefined();
    await r.close();
  });
});

describe('openAgentStore: damaged, foreign and newer stores', () => {
  async function seeded(): Promise<void> {
    const s = await open();
    await s.applySyncResult({
      upsertEntries: [entry(1), entry(2)],
      syncState: { lastSyncAtMs: 1, lastFullSyncAtMs: 1, cursor: '' },
    });
    await s.storeX509Svids([svid(1)]);
    await s.close();
  }

  it('detects a corrupt value and names its key', async () => {
    await seeded();
    const good = encodeValue('entry:entry-1', { kind: RecordKind.entry, record: entry(1) });
    good[good.length - 3]! ^= 0x04;
    await rawPut([['entry:entry-1', good]]);
    const err = await openError();
    expect(err).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message: 'record "entry:entry-1" is corrupt: checksum mismatch',
      details: { key: 'entry:entry-1' },
    });
    expect(isRecoverableStoreError(err)).toBe(true);
  });

  it('detects a value copied under another key, unknown keys and records lost behind its back', async () => {
    await seeded();
    const copied = encodeValue('entry:entry-1', { kind: RecordKind.entry, record: entry(1) });
    await rawPut([['entry:entry-9', copied]]);
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message: 'record "entry:entry-9" is corrupt: checksum mismatch',
    });
    await rawPut([], ['entry:entry-9']);
    await rawPut([['bogus:1', new Uint8Array([1])]]);
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message: 'the agent store holds an unknown key "bogus:1"',
    });
    await rawPut([], ['bogus:1', 'entry:entry-2']);
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message:
        'the agent store should hold 4 records and holds 3: records were lost or added behind its back',
    });
  });

  it('detects a record whose content contradicts its key', async () => {
    await seeded();
    const key = 'entry:entry-1';
    await rawPut([[key, encodeValue(key, { kind: RecordKind.entry, record: entry(7) })]]);
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message: 'record "entry:entry-1" is corrupt: holds entry "entry-7"',
    });
  });

  it('refuses a store of another trust domain as foreign', async () => {
    await seeded();
    const err = await openError({ trustDomain: 'other.org' });
    expect(err).toMatchObject({
      code: 'ERR_AGENT_STORE_FOREIGN',
      message: 'the agent store belongs to trust domain "example.org", not "other.org"',
    });
    expect(isRecoverableStoreError(err)).toBe(true);
  });

  it('refuses a LevelDB database that is not an agent store, and directories of other files', async () => {
    const db = new ClassicLevel(storeDir());
    await db.open();
    await db.put('hello', 'world');
    await db.close();
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_FOREIGN',
      message:
        'the LevelDB database holds 1 records but no "meta:version": it is not an agent store',
    });
    rmSync(storeDir(), { recursive: true });
    mkdirSync(storeDir(), { recursive: true });
    writeFileSync(join(storeDir(), 'notes.txt'), 'garbage');
    writeFileSync(join(storeDir(), 'data.bin'), randomBytes(64));
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_FOREIGN',
      message: `${storeDir()} is not an agent store: it holds "data.bin", "notes.txt" and no LevelDB CURRENT file`,
    });
    rmSync(storeDir(), { recursive: true });
    writeFileSync(storeDir(), 'a file');
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_FOREIGN',
      message: `the agent store path ${storeDir()} exists and is not a directory`,
    });
  });

  it('refuses a newer layout or codec version with ERR_AGENT_STORE_VERSION', async () => {
    await seeded();
    await rawPut([['meta:version', new TextEncoder().encode('3')]]);
    const err = await openError();
    expect(err).toMatchObject({
      code: 'ERR_AGENT_STORE_VERSION',
      message:
        'the agent store has layout version 3, newer than this agent knows (2): it was written by a newer spire-edge agent',
    });
    expect(isRecoverableStoreError(err)).toBe(true);
    await rawPut([['meta:version', new TextEncoder().encode('one')]]);
    expect(await openError()).toMatchObject({ code: 'ERR_AGENT_STORE_CORRUPT' });
    await rawPut([['meta:version', new TextEncoder().encode('2')]]);
    const v = encodeValue('entry:entry-1', { kind: RecordKind.entry, record: entry(1) });
    v[0] = 9;
    await rawPut([['entry:entry-1', v]]);
    expect(await openError()).toMatchObject({ code: 'ERR_AGENT_STORE_VERSION' });
  });

  it("detects damaged LevelDB bookkeeping and garbage among the store's files", async () => {
    const cases: Array<[string, () => void, string, RegExp]> = [
      [
        'garbage CURRENT',
        () => writeFileSync(join(storeDir(), 'CURRENT'), 'garbage\n'),
        'ERR_AGENT_STORE_CORRUPT',
        /CURRENT file does not name a manifest/,
      ],
      [
        'CURRENT naming a missing manifest',
        () => writeFileSync(join(storeDir(), 'CURRENT'), 'MANIFEST-999999\n'),
        'ERR_AGENT_STORE_CORRUPT',
        /names MANIFEST-999999, which does not exist/,
      ],
      [
        'garbage manifest',
        () => {
          const m = readdirSync(storeDir()).find((f) => f.startsWith('MANIFEST-'))!;
          writeFileSync(join(storeDir(), m), randomBytes(300));
        },
        'ERR_AGENT_STORE_CORRUPT',
        /is corrupt: Corruption/,
      ],
      [
        'CURRENT deleted',
        () => rmSync(join(storeDir(), 'CURRENT')),
        'ERR_AGENT_STORE_CORRUPT',
        /has LevelDB files .* but no CURRENT file/,
      ],
      [
        'a stranger file',
        () => writeFileSync(join(storeDir(), 'evil.sh'), '#!/bin/sh'),
        'ERR_AGENT_STORE_CORRUPT',
        /holds unexpected files: "evil.sh"/,
      ],
      [
        'garbage table files',
        () => {
          for (const f of readdirSync(storeDir()).filter((x) => /\.(ldb|log)$/.test(x))) {
            writeFileSync(join(storeDir(), f), randomBytes(4096));
          }
        },
        'ERR_AGENT_STORE_CORRUPT',
        /./,
      ],
    ];
    for (const [name, damage, code, message] of cases) {
      dataDir = join(root, `d${String(n++)}`);
      await seeded();
      // Push the records into table files so there is one to damage.
      const db = new ClassicLevel(storeDir());
      await db.open();
      await db.compactRange('', '\u{10ffff}');
      await db.close();
      damage();
      const err = await openError();
      expect({ name, code: isSpireEdgeError(err) ? err.code : err }).toEqual({ name, code });
      expect((err as Error).message).toMatch(message);
    }
  });

  it('never returns silently different data when a table file has a flipped byte', async () => {
    await seeded();
    const db = new ClassicLevel(storeDir());
    await db.open();
    await db.compactRange('', '\u{10ffff}');
    await db.close();
    const table = readdirSync(storeDir()).find((f) => f.endsWith('.ldb'))!;
    const original = readFileSync(join(storeDir(), table));
    const outcomes = new Set<string>();
    for (let at = 0; at < original.length; at += 37) {
      const damaged = Buffer.from(original);
      damaged[at]! ^= 0x10;
      writeFileSync(join(storeDir(), table), damaged);
      try {
        const s = await open();
        // Opened: the data must be exactly what was written.
        expect([...s.snapshot.entries.keys()].sort()).toEqual(['entry-1', 'entry-2']);
        expect(s.entry('entry-1')).toEqual(entry(1));
        expect(s.x509Svid('entry-1')?.privateKey).toEqual(KEY.pkcs8);
        await s.close();
        outcomes.add('intact');
      } catch (err) {
        if (!isSpireEdgeError(err, 'ERR_AGENT_STORE_CORRUPT')) throw err;
        outcomes.add('corrupt');
      }
    }
    expect(outcomes.has('corrupt')).toBe(true);
  });

  it('reports a store another process holds as locked, which is not recoverable', async () => {
    const s = await open();
    const err = await openError();
    expect(err).toMatchObject({ code: 'ERR_AGENT_STORE_LOCKED' });
    expect((err as Error).message).toMatch(/in use by another process/);
    expect(isRecoverableStoreError(err)).toBe(false);
    await s.close();
  });
});

describe('sealing secrets at rest', () => {
  it('passes every private key and JWT token through the sealer; none is on disk in clear', async () => {
    const { sealer, calls } = xorSealer();
    const keys = [newKey(), newKey(), newKey()];
    const token = `eyJhbGciOiJFUzI1NiJ9.${randomBytes(24).toString('hex')}.sig`;
    const s = await open({ sealer });
    await s.setAgentIdentity(agent(keys[0]!.pkcs8));
    await s.storeX509Svids([svid(1, keys[1]!.pkcs8), svid(2, keys[2]!.pkcs8)]);
    await s.putJwtSvid(jwt(['aud'], token));
    await s.setBundle(bundle());
    expect(calls).toEqual({ seal: 4, unseal: 0 });
    // The snapshot holds the plain keys for the Workload API.
    expect(s.x509Svid('entry-1')?.privateKey).toEqual(keys[1]!.pkcs8);
    await s.close();
    const bytes = storeBytes();
    for (const k of keys) {
      expect(bytes.includes(k.scalar)).toBe(false);
      expect(bytes.includes(Buffer.from(k.pkcs8))).toBe(false);
    }
    expect(bytes.includes(Buffer.from(token))).toBe(false);

    const r = await open({ sealer });
    expect(calls).toEqual({ seal: 4, unseal: 4 });
    expect(r.agentIdentity()?.privateKey).toEqual(keys[0]!.pkcs8);
    expect(r.x509Svid('entry-2')?.privateKey).toEqual(keys[2]!.pkcs8);
    expect(r.jwtSvid(jwt([]).spiffeId, ['aud'])?.token).toBe(token);
    await r.close();

    // Without the sealer, or with one that cannot unseal them, the store cannot be used.
    const noSealer = await openError();
    expect(noSealer).toMatchObject({
      code: 'ERR_AGENT_STORE_SEALED',
      message: 'the agent store holds 4 sealed secrets and no sealer was configured to unseal them',
    });
    expect(isRecoverableStoreError(noSealer)).toBe(true);
    const wrong: Sealer = {
      seal: async (b) => b,
      unseal: async () => {
        throw new Error('TPM says no');
      },
    };
    const err = await openError({ sealer: wrong });
    expect(err).toMatchObject({ code: 'ERR_AGENT_STORE_SEALED' });
    expect((err as Error).message).toMatch(/could not be unsealed: TPM says no$/);
  });

  it('stores keys as they are without a sealer (the control for the check above)', async () => {
    const k = newKey();
    const s = await open();
    await s.storeX509Svids([svid(1, k.pkcs8)]);
    await s.close();
    expect(storeBytes().includes(k.scalar)).toBe(true);
  });

  it('seals the plain secrets of an existing store when a sealer is configured later', async () => {
    const k = newKey();
    const token = `eyJ.${randomBytes(20).toString('hex')}.s`;
    const s = await open();
    await s.storeX509Svids([svid(1, k.pkcs8)]);
    await s.putJwtSvid(jwt(['a'], token));
    await s.close();
    const { sealer, calls } = xorSealer();
    const r = await open({ sealer });
    expect(calls.seal).toBe(2);
    expect(r.x509Svid('entry-1')?.privateKey).toEqual(k.pkcs8);
    await r.close();
    const bytes = storeBytes();
    expect(bytes.includes(k.scalar)).toBe(false);
    expect(bytes.includes(Buffer.from(token))).toBe(false);
    const r2 = await open({ sealer });
    expect(calls).toEqual({ seal: 2, unseal: 2 });
    await r2.close();
  });

  it('fails a write whose secret cannot be sealed, applying nothing', async () => {
    const s = await open({
      sealer: {
        seal: async () => {
          throw new Error('TPM busy');
        },
        unseal: async (b) => b,
      },
    });
    await expect(s.storeX509Svids([svid(1)])).rejects.toMatchObject({
      code: 'ERR_AGENT_STORE_WRITE',
      message: 'could not seal a secret for the agent store: TPM busy',
    });
    expect(s.snapshot.x509Svids.size).toBe(0);
    // The store stays usable.
    await s.setBundle(bundle());
    await s.close();
  });
});

describe('recovery: quarantine and start fresh', () => {
  it('moves a corrupt store aside and opens a fresh one', async () => {
    const clock = new ManualClock(Date.UTC(2026, 2, 4, 5, 6, 7, 890));
    const s = await open();
    await s.setBundle(bundle());
    await s.close();
    await rawPut([['entry:x', new Uint8Array([1, 2, 3])]]);
    expect(await openError()).toMatchObject({ code: 'ERR_AGENT_STORE_CORRUPT' });
    const moved = await quarantineAgentStore(dataDir, { clock });
    expect(moved).toBe(join(dataDir, 'agent-store.corrupt-2026-03-04T05-06-07-890Z'));
    expect(readdirSync(moved!)).toContain('CURRENT');
    const fresh = await open();
    expect(fresh.created).toBe(true);
    expect(fresh.bundle()).toBeUndefined();
    await fresh.close();
    // The same instant again gets a suffix; nothing to move is undefined.
    rmSync(storeDir(), { recursive: true });
    mkdirSync(storeDir());
    writeFileSync(join(storeDir(), 'x'), '');
    expect(await quarantineAgentStore(dataDir, { clock })).toBe(`${moved!}-1`);
    expect(await quarantineAgentStore(dataDir, { clock })).toBeUndefined();
  });

  it('openAgentStoreWithRecovery quarantines recoverable failures, keeps the newest few, and rethrows the rest', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const s = await open();
      await s.close();
      await rawPut([['meta:version', new TextEncoder().encode('7')]]);
      clock.advance(1000);
      const { store, quarantined } = await openAgentStoreWithRecovery({
        dataDir,
        trustDomain: TD,
        clock,
        keepQuarantined: 2,
        onQuarantine: ({ error }) => seen.push(error.code),
      });
      expect(store.created).toBe(true);
      expect(quarantined?.error.code).toBe('ERR_AGENT_STORE_VERSION');
      await store.close();
      rmSync(storeDir(), { recursive: true });
    }
    expect(seen).toEqual(Array(4).fill('ERR_AGENT_STORE_VERSION'));
    expect(readdirSync(dataDir).sort()).toEqual([
      'agent-store.corrupt-2026-01-01T00-00-03-000Z',
      'agent-store.corrupt-2026-01-01T00-00-04-000Z',
    ]);
    // A healthy store is opened as is.
    const ok = await openAgentStoreWithRecovery({ dataDir, trustDomain: TD });
    expect(ok.quarantined).toBeUndefined();
    // A locked store is not moved aside.
    await expect(openAgentStoreWithRecovery({ dataDir, trustDomain: TD })).rejects.toMatchObject({
      code: 'ERR_AGENT_STORE_LOCKED',
    });
    await ok.store.close();
    expect(readdirSync(dataDir)).toContain('agent-store');
  });
});
