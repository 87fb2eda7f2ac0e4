/**
 * The agent store's layout 2: device records (`device:<name>`) — CRUD, atomicity with other
 * records, the record count, strict loading, reset and quarantine; the migration of a layout 1
 * store (built here record by record with the codec, as layout 1 wrote it); and the sealer
 * factory's place in the open sequence (after loading and migration, before any unseal), its
 * device record access, and how its failures are reported.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import fc from 'fast-check';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { decodeValue, encodeValue } from '../../../src/agent/storage/codec.js';
import {
  type AgentIdentityRecord,
  type AgentStore,
  DEVICE_RECORD_MAX_BYTES,
  type DeviceRecordAccess,
  LAYOUT_VERSION,
  type OpenAgentStoreOptions,
  openAgentStore,
  openAgentStoreWithRecovery,
  type Sealer,
  type SealerFactory,
  type X509SvidRecord,
} from '../../../src/agent/storage/index.js';
import { isDeviceRecordName, kindOfKey, RecordKind } from '../../../src/agent/storage/layout.js';
import { storeError } from '../../../src/agent/storage/store-errors.js';
import { SpireEdgeError } from '../../../src/common/errors.js';

const TD = 'example.org';
const root = mkdtempSync(join(tmpdir(), 'spire-edge-device-records-'));
let dataDir: string;
let n = 0;

beforeEach(() => {
  dataDir = join(root, `d${String(n++)}`);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const storeDir = () => join(dataDir, 'agent-store');
const PKCS8 = new Uint8Array(
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'pkcs8',
    format: 'der',
  }),
);

function agent(): AgentIdentityRecord {
  return {
    spiffeId: `spiffe://${TD}/spire/agent/tpm/abc`,
    certChain: [new Uint8Array(randomBytes(300))],
    privateKey: PKCS8,
    expiresAtMs: 5_000_000,
    reattestable: true,
    attestorType: 'tpm',
    lastAttestedAtMs: 1_000,
  };
}

function svid(i: number): X509SvidRecord {
  return {
    entryId: `entry-${String(i)}`,
    spiffeId: `spiffe://${TD}/workload/${String(i)}`,
    certChain: [new Uint8Array(randomBytes(200))],
    privateKey: PKCS8,
    expiresAtMs: 2_000_000,
    rotateAtMs: 1_000_000,
    entryRevision: 1,
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

async function rawRows(): Promise<Map<string, Uint8Array>> {
  const db = new ClassicLevel<string, Uint8Array>(storeDir(), { valueEncoding: 'view' });
  await db.open();
  try {
    return new Map(await db.iterator().all());
  } finally {
    await db.close();
  }
}

async function rawPut(rows: Array<[string, Uint8Array]>, dels: string[] = []): Promise<void> {
  const db = new ClassicLevel<string, Uint8Array>(storeDir(), { valueEncoding: 'view' });
  await db.open();
  await db.batch([
    ...rows.map(([key, value]) => ({ type: 'put' as const, key, value })),
    ...dels.map((key) => ({ type: 'del' as const, key })),
  ]);
  await db.close();
}

const text = (s: string) => new TextEncoder().encode(s);
const countOf = (rows: Map<string, Uint8Array>) =>
  new DataView(rows.get('meta:records')!.buffer, rows.get('meta:records')!.byteOffset).getFloat64(
    6,
  );

describe('device records: keys and codec', () => {
  it('classifies device:<name> keys with a valid name only', () => {
    expect(kindOfKey('device:sealing-key')).toBe(RecordKind.device);
    expect(kindOfKey('device:tpm-ak')).toBe(RecordKind.device);
    expect(kindOfKey('device:')).toBeUndefined();
    expect(kindOfKey('device:A')).toBeUndefined();
    expect(kindOfKey(`device:${'a'.repeat(64)}`)).toBeUndefined();
    expect(isDeviceRecordName('a.b_c-1')).toBe(true);
    expect(isDeviceRecordName('.a')).toBe(false);
  });

  it('round-trips any bytes, and answers damaged values only with ERR_AGENT_STORE_CORRUPT (property)', () => {
    const name = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,62}$/);
    fc.assert(
      fc.property(name, fc.uint8Array({ maxLength: 512 }), fc.nat(), (nm, bytes, cut) => {
        const key = `device:${nm}`;
        const encoded = encodeValue(key, { kind: RecordKind.device, record: { bytes } });
        expect(decodeValue(key, encoded, RecordKind.device)).toEqual({
          kind: RecordKind.device,
          record: { bytes },
        });
        const short = encoded.subarray(0, cut % encoded.length);
        expect(() => decodeValue(key, short, RecordKind.device)).toThrow(
          expect.objectContaining({ code: 'ERR_AGENT_STORE_CORRUPT' }),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('device records', () => {
  it('are written, read, replaced and deleted through transactions, and survive a restart', async () => {
    const s = await open();
    expect(s.deviceRecord('tpm-ak')).toBeUndefined();
    const value = new Uint8Array([1, 2, 3]);
    await s.update((tx) =>
      tx.putDeviceRecord('tpm-ak', value).putDeviceRecord('sealing-key', text('k')),
    );
    // Copied in, copied out: neither the caller's bytes nor the returned ones change the store.
    value[0] = 9;
    const out = s.deviceRecord('tpm-ak')!;
    expect(out).toEqual(new Uint8Array([1, 2, 3]));
    out[1] = 9;
    expect(s.deviceRecord('tpm-ak')).toEqual(new Uint8Array([1, 2, 3]));
    expect([...s.snapshot.devices.keys()].sort()).toEqual(['sealing-key', 'tpm-ak']);
    await s.update((tx) => tx.putDeviceRecord('tpm-ak', text('v2')));
    await s.close();

    const r = await open();
    expect(r.deviceRecord('tpm-ak')).toEqual(text('v2'));
    expect(r.deviceRecord('sealing-key')).toEqual(text('k'));
    await r.update((tx) => tx.deleteDeviceRecord('sealing-key').deleteDeviceRecord('never'));
    expect(r.deviceRecord('sealing-key')).toBeUndefined();
    await r.close();
    const rows = await rawRows();
    expect([...rows.keys()].filter((k) => k.startsWith('device:'))).toEqual(['device:tpm-ak']);
    // Counted like every data record: one device record.
    expect(countOf(rows)).toBe(1);
  });

  it('are committed atomically with other records in one batch', async () => {
    const s = await open();
    await s.update((tx) => tx.setAgentIdentity(agent()).putDeviceRecord('tpm-ak', text('ak')));
    const before = s.snapshot.revision;
    // A batch that fails to encode writes nothing: neither the device record nor the SVID.
    await expect(
      s.update((tx) =>
        tx.putDeviceRecord('tpm-ak', text('ak2')).putX509Svid({ ...svid(1), entryRevision: 1.5 }),
      ),
    ).rejects.toThrow(TypeError);
    expect(s.snapshot.revision).toBe(before);
    expect(s.deviceRecord('tpm-ak')).toEqual(text('ak'));
    await s.close();
    const r = await open();
    expect(r.deviceRecord('tpm-ak')).toEqual(text('ak'));
    expect(r.snapshot.x509Svids.size).toBe(0);
    await r.close();
  });

  it('refuse bad names and oversized values with TypeError', async () => {
    const s = await open();
    for (const bad of ['', 'Upper', '-lead', 'a/b', 'a:b', 'x'.repeat(64), 7]) {
      expect(() => s.update((tx) => tx.putDeviceRecord(bad as string, text('v')))).toThrow(
        TypeError,
      );
    }
    expect(() => s.deviceRecord('a b')).toThrow(TypeError);
    expect(() =>
      s.update((tx) => tx.putDeviceRecord('big', new Uint8Array(DEVICE_RECORD_MAX_BYTES + 1))),
    ).toThrow(`device record must be at most ${String(DEVICE_RECORD_MAX_BYTES)} bytes`);
    expect(() => s.update((tx) => tx.putDeviceRecord('s', 'str' as never))).toThrow(TypeError);
    await s.update((tx) => tx.putDeviceRecord('x'.repeat(63), new Uint8Array(0)));
    expect(s.deviceRecord('x'.repeat(63))).toEqual(new Uint8Array(0));
    await s.close();
  });

  it('stay through reset() and clear(): they describe the device, not the agent', async () => {
    const s = await open();
    await s.update((tx) => tx.setAgentIdentity(agent()).putDeviceRecord('tpm-ak', text('ak')));
    await s.reset();
    await s.update((tx) => tx.clear());
    expect(s.agentIdentity()).toBeUndefined();
    expect(s.deviceRecord('tpm-ak')).toEqual(text('ak'));
    await s.close();
    const r = await open();
    expect(r.deviceRecord('tpm-ak')).toEqual(text('ak'));
    await r.close();
  });

  it('are checked at load like every record: CRC over the key, strict value, counted', async () => {
    const s = await open();
    await s.update((tx) => tx.putDeviceRecord('tpm-ak', text('ak')));
    await s.close();
    const good = encodeValue('device:tpm-ak', {
      kind: RecordKind.device,
      record: { bytes: text('ak') },
    });
    // Moved under another name: the CRC covers the key.
    await rawPut([['device:other', good]]);
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message: 'record "device:other" is corrupt: checksum mismatch',
    });
    await rawPut([], ['device:other']);
    // A flipped bit in the value.
    const flipped = Uint8Array.from(good);
    flipped[flipped.length - 1]! ^= 1;
    await rawPut([['device:tpm-ak', flipped]]);
    expect(await openError()).toMatchObject({ code: 'ERR_AGENT_STORE_CORRUPT' });
    // An invalid device name is an unknown key.
    await rawPut([['device:tpm-ak', good]]);
    await rawPut([['device:Bad', good]]);
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message: 'the agent store holds an unknown key "device:Bad"',
    });
    // Deleted behind the store's back: the count notices.
    await rawPut([], ['device:Bad', 'device:tpm-ak']);
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message:
        'the agent store should hold 1 records and holds 0: records were lost or added behind its back',
    });
  });

  it('go with the store into quarantine; the fresh store has none', async () => {
    const s = await open();
    await s.update((tx) => tx.putDeviceRecord('tpm-ak', text('ak')));
    await s.close();
    await rawPut([['meta:version', text('99')]]);
    const { store, quarantined } = await openAgentStoreWithRecovery({ dataDir, trustDomain: TD });
    expect(quarantined?.error.code).toBe('ERR_AGENT_STORE_VERSION');
    expect(store.created).toBe(true);
    expect(store.snapshot.devices.size).toBe(0);
    await store.close();
    expect(readdirSync(dataDir).filter((f) => f.startsWith('agent-store.corrupt-'))).toHaveLength(
      1,
    );
  });
});

/** Builds a layout 1 store as layout 1 wrote it: meta records, then data records, one batch. */
async function buildV1Store(records: Array<[string, Uint8Array]>): Promise<void> {
  const db = new ClassicLevel<string, Uint8Array>(storeDir(), {
    valueEncoding: 'view',
    createIfMissing: true,
  });
  await db.open();
  await db.batch(
    [
      { type: 'put', key: 'meta:version', value: text('1') },
      {
        type: 'put',
        key: 'meta:store',
        value: encodeValue('meta:store', {
          kind: RecordKind.storeInfo,
          record: { trustDomain: TD, createdAtMs: 1_700_000_000_000, storeId: '0011223344556677' },
        }),
      },
      {
        type: 'put',
        key: 'meta:records',
        value: encodeValue('meta:records', {
          kind: RecordKind.recordCount,
          record: { count: records.length },
        }),
      },
      ...records.map(([key, value]) => ({ type: 'put' as const, key, value })),
    ],
    { sync: true },
  );
  await db.close();
}

describe('layout migration 1 → 2', () => {
  const v1Agent = () => {
    const { privateKey, ...rest } = agent();
    return encodeValue('agent:identity', {
      kind: RecordKind.agent,
      record: { ...rest, privateKey: { sealed: false, bytes: privateKey! } },
    });
  };

  it('opens a v1 store, keeps every record and upgrades it in place to v2', async () => {
    expect(LAYOUT_VERSION).toBe(2);
    await buildV1Store([['agent:identity', v1Agent()]]);
    const s = await open();
    expect(s.created).toBe(false);
    expect(s.storeId).toBe('0011223344556677');
    expect(s.agentIdentity()?.privateKey).toEqual(PKCS8);
    // v2 from now on: device records can be written.
    await s.update((tx) => tx.putDeviceRecord('tpm-ak', text('ak')));
    await s.close();
    const rows = await rawRows();
    expect(new TextDecoder().decode(rows.get('meta:version'))).toBe('2');
    expect(countOf(rows)).toBe(2);
    const r = await open();
    expect(r.deviceRecord('tpm-ak')).toEqual(text('ak'));
    await r.close();
  });

  it('migrates before the sealer factory runs, so its device records land in a v2 store', async () => {
    await buildV1Store([['agent:identity', v1Agent()]]);
    let versionSeen: string | undefined;
    const s = await open({
      createSealer: async (devices) => {
        // The factory runs on the migrated store; its write is one more counted record.
        versionSeen = 'called';
        await devices.put('sealing-key', text('k'));
        return xorSealer();
      },
    });
    expect(versionSeen).toBe('called');
    await s.close();
    const rows = await rawRows();
    expect(new TextDecoder().decode(rows.get('meta:version'))).toBe('2');
    expect(rows.has('device:sealing-key')).toBe(true);
    // The plain key of the v1 store was resealed in place.
    expect(rows.get('agent:identity')![1]).toBe(RecordKind.agent);
    expect(Buffer.from(rows.get('agent:identity')!).includes(Buffer.from(PKCS8))).toBe(false);
  });

  it('never migrates a damaged v1 store, and refuses device records in one', async () => {
    const bad = v1Agent();
    bad[bad.length - 1]! ^= 1;
    await buildV1Store([['agent:identity', bad]]);
    expect(await openError()).toMatchObject({ code: 'ERR_AGENT_STORE_CORRUPT' });
    expect(new TextDecoder().decode((await rawRows()).get('meta:version'))).toBe('1');

    dataDir = join(root, `d${String(n++)}`);
    const device = encodeValue('device:tpm-ak', {
      kind: RecordKind.device,
      record: { bytes: text('ak') },
    });
    await buildV1Store([['device:tpm-ak', device]]);
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message: 'the agent store holds an unknown key "device:tpm-ak"',
    });
    expect(new TextDecoder().decode((await rawRows()).get('meta:version'))).toBe('1');
  });

  it('refuses a layout newer than 2 (as a v1 agent refuses a v2 store)', async () => {
    await buildV1Store([]);
    await rawPut([['meta:version', text('3')]]);
    expect(await openError()).toMatchObject({
      code: 'ERR_AGENT_STORE_VERSION',
      details: { version: 3, known: 2 },
    });
  });
});

function xorSealer(log?: string[]): Sealer & { closed: number } {
  const s = {
    closed: 0,
    async seal(plain: Uint8Array, ctx?: { recordKey: string }) {
      log?.push(`seal ${ctx?.recordKey ?? '?'}`);
      return Uint8Array.from([0x53, 0x4c, ...plain.map((b) => b ^ 0xa5)]);
    },
    async unseal(sealed: Uint8Array, ctx?: { recordKey: string }) {
      log?.push(`unseal ${ctx?.recordKey ?? '?'}`);
      if (sealed[0] !== 0x53 || sealed[1] !== 0x4c) throw new Error('not sealed by this sealer');
      return sealed.subarray(2).map((b) => b ^ 0xa5);
    },
    close() {
      s.closed++;
    },
  };
  return s;
}

describe('the sealer factory (createSealer)', () => {
  it('runs once per open, after loading and before unsealing, with the record key as context', async () => {
    const log: string[] = [];
    const sealer = xorSealer(log);
    const factory: SealerFactory = async (devices) => {
      log.push(`factory sees ${devices.get('sealing-key') === undefined ? 'no key' : 'a key'}`);
      if (devices.get('sealing-key') === undefined) await devices.put('sealing-key', text('k'));
      return sealer;
    };
    const s = await open({ createSealer: factory });
    await s.update((tx) => tx.setAgentIdentity(agent()).putX509Svid(svid(1)));
    await s.close();
    expect(sealer.closed).toBe(1);
    const r = await open({ createSealer: factory });
    expect(r.agentIdentity()?.privateKey).toEqual(PKCS8);
    await r.close();
    expect(log).toEqual([
      'factory sees no key',
      'seal agent:identity',
      'seal x509:entry-1',
      'factory sees a key',
      'unseal agent:identity',
      'unseal x509:entry-1',
    ]);
    expect(sealer.closed).toBe(2);
  });

  it('writes device records durably, counted, and visible in the store it opens', async () => {
    const s = await open({
      createSealer: async (devices) => {
        await devices.put('sealing-key', text('one'));
        await devices.put('sealing-key', text('two'));
        await devices.put('scratch', text('x'));
        await devices.delete('scratch');
        await devices.delete('never-there');
        return xorSealer();
      },
    });
    expect(s.deviceRecord('sealing-key')).toEqual(text('two'));
    expect(s.deviceRecord('scratch')).toBeUndefined();
    await s.update((tx) =>
      tx.putEntry({
        id: 'e',
        spiffeId: `spiffe://${TD}/w`,
        parentId: `spiffe://${TD}/spire/agent/x`,
        selectors: [],
        x509SvidTtl: 0,
        jwtSvidTtl: 0,
        federatesWith: [],
        admin: false,
        downstream: false,
        expiresAt: 0,
        dnsNames: [],
        revisionNumber: 0,
        storeSvid: false,
        hint: '',
        createdAt: 0,
      }),
    );
    await s.close();
    const rows = await rawRows();
    expect(countOf(rows)).toBe(2);
    const r = await open();
    expect(r.deviceRecord('sealing-key')).toEqual(text('two'));
    await r.close();
  });

  it('ends the device record access when the factory returns', async () => {
    let kept: DeviceRecordAccess | undefined;
    const s = await open({
      createSealer: async (devices) => {
        kept = devices;
        return xorSealer();
      },
    });
    expect(() => kept!.get('sealing-key')).toThrow(
      'device record access ended when the sealer was created: use the store instead',
    );
    expect(() => kept!.put('sealing-key', text('late'))).toThrow(TypeError);
    await s.close();
  });

  it('reports a refused key as ERR_AGENT_STORE_SEALED (quarantined), other failures as ERR_AGENT_STORE_IO (not)', async () => {
    const s = await open();
    await s.update((tx) => tx.putDeviceRecord('tpm-ak', text('ak')));
    await s.close();
    const refused = await openError({
      createSealer: async () => {
        throw storeError('ERR_AGENT_STORE_SEALED', 'the tpm refused the data key');
      },
    });
    expect(refused).toMatchObject({
      code: 'ERR_AGENT_STORE_SEALED',
      message: 'the tpm refused the data key',
    });
    const unreachable = await openError({
      createSealer: async () => {
        throw new SpireEdgeError('ERR_TPM_RC', 'could not open tpm: connection refused');
      },
    });
    expect(unreachable).toMatchObject({
      code: 'ERR_AGENT_STORE_IO',
      message: "could not create the agent store's sealer: could not open tpm: connection refused",
    });
    expect((unreachable as Error).cause).toMatchObject({ code: 'ERR_TPM_RC' });
    // Recovery quarantines the first and keeps the store for the second.
    await expect(
      openAgentStoreWithRecovery({
        dataDir,
        trustDomain: TD,
        createSealer: async () => {
          throw new Error('tpm unreachable');
        },
      }),
    ).rejects.toMatchObject({ code: 'ERR_AGENT_STORE_IO' });
    expect(readdirSync(dataDir)).toEqual(['agent-store']);
    let calls = 0;
    const { store, quarantined } = await openAgentStoreWithRecovery({
      dataDir,
      trustDomain: TD,
      createSealer: async () => {
        if (calls++ === 0) throw storeError('ERR_AGENT_STORE_SEALED', 'another tpm');
        return xorSealer();
      },
    });
    expect(quarantined?.error.code).toBe('ERR_AGENT_STORE_SEALED');
    expect(store.created).toBe(true);
    await store.close();
  });

  it('closes the sealer it created when the open fails afterwards, and checks its options', async () => {
    const s = await open();
    await s.update((tx) => tx.setAgentIdentity(agent()));
    await s.close();
    // Sealed by one sealer …
    const a = await open({ sealer: xorSealer() });
    await a.close();
    // … and a factory whose sealer cannot unseal it.
    const wrong = {
      ...xorSealer(),
      unseal: async () => {
        throw new Error('wrong key');
      },
      closed: 0,
      close() {
        wrong.closed++;
      },
    };
    expect(await openError({ createSealer: async () => wrong })).toMatchObject({
      code: 'ERR_AGENT_STORE_SEALED',
    });
    expect(wrong.closed).toBe(1);
    await expect(
      open({ sealer: xorSealer(), createSealer: async () => xorSealer() }),
    ).rejects.toThrow('give sealer or createSealer, not both');
    expect(await openError({ createSealer: async () => ({}) as Sealer })).toBeInstanceOf(TypeError);
  });
});
