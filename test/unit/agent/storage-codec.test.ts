import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CODEC_VERSION, decodeValue, encodeValue } from '../../../src/agent/storage/codec.js';
import {
  jwtSvidCacheKey,
  keys,
  kindOfKey,
  normalizeAudience,
  RecordKind,
  type StoredValue,
} from '../../../src/agent/storage/layout.js';
import type { EntryRecord } from '../../../src/agent/storage/records.js';
import { isSpireEdgeError } from '../../../src/common/errors.js';

const bytes = (...b: number[]) => new Uint8Array(b);

const ENTRY: EntryRecord = {
  id: 'e-1',
  spiffeId: 'spiffe://example.org/web',
  parentId: 'spiffe://example.org/spire/agent/join_token/t',
  selectors: [
    { type: 'unix', value: 'uid:1000' },
    { type: 'unix', value: 'gid:ü' },
  ],
  x509SvidTtl: 3600,
  jwtSvidTtl: 300,
  federatesWith: ['other.org'],
  admin: true,
  downstream: false,
  expiresAt: 0,
  dnsNames: ['web.local'],
  revisionNumber: 7,
  storeSvid: false,
  hint: 'web',
  createdAt: 1_767_225_600,
};

/** One value of every kind, each under its key. */
const SAMPLES: ReadonlyArray<readonly [string, StoredValue]> = [
  [
    'meta:store',
    {
      kind: RecordKind.storeInfo,
      record: { trustDomain: 'example.org', createdAtMs: 1, storeId: 'ab' },
    },
  ],
  [
    keys.agent(),
    {
      kind: RecordKind.agent,
      record: {
        spiffeId: 'spiffe://example.org/spire/agent/x',
        certChain: [bytes(1, 2), bytes(3)],
        privateKey: { sealed: true, bytes: bytes(9, 9) },
        expiresAtMs: 2,
        reattestable: true,
        attestorType: 'x509pop',
        lastAttestedAtMs: 3,
      },
    },
  ],
  [
    keys.agent(),
    {
      kind: RecordKind.agent,
      record: {
        spiffeId: 'spiffe://example.org/spire/agent/y',
        certChain: [],
        expiresAtMs: 0,
        reattestable: false,
        attestorType: '',
        lastAttestedAtMs: 0,
      },
    },
  ],
  [
    keys.bundle(),
    {
      kind: RecordKind.bundle,
      record: {
        trustDomain: 'example.org',
        x509Authorities: [bytes(0x30, 1)],
        jwtAuthorities: [{ keyId: 'k1', publicKey: bytes(5), expiresAt: 9 }],
        refreshHint: 300,
        sequenceNumber: 4,
      },
    },
  ],
  [
    keys.federatedBundle('other.org'),
    {
      kind: RecordKind.federatedBundle,
      record: {
        trustDomain: 'other.org',
        x509Authorities: [],
        jwtAuthorities: [],
        refreshHint: 0,
        sequenceNumber: 0,
      },
    },
  ],
  [keys.entry('e-1'), { kind: RecordKind.entry, record: ENTRY }],
  [
    keys.sync(),
    { kind: RecordKind.sync, record: { lastSyncAtMs: 5, lastFullSyncAtMs: 4, cursor: 'c' } },
  ],
  [
    keys.x509Svid('e-1'),
    {
      kind: RecordKind.x509Svid,
      record: {
        entryId: 'e-1',
        spiffeId: 'spiffe://example.org/web',
        certChain: [bytes(1), bytes(2)],
        privateKey: { sealed: false, bytes: bytes(7, 7, 7) },
        expiresAtMs: 10,
        rotateAtMs: 5,
        entryRevision: 7,
      },
    },
  ],
  [
    keys.jwtSvid('spiffe://example.org/web', ['b', 'a']),
    {
      kind: RecordKind.jwtSvid,
      record: {
        spiffeId: 'spiffe://example.org/web',
        audience: ['a', 'b'],
        token: { sealed: false, bytes: new TextEncoder().encode('x.y.z') },
        issuedAtMs: 1,
        expiresAtMs: 2,
      },
    },
  ],
];

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (isSpireEdgeError(err)) return err.code;
    throw err;
  }
}

/** A value with a correct header and CRC around an arbitrary payload. */
function framed(key: string, kind: number, payload: Uint8Array, version = CODEC_VERSION) {
  const head = bytes(version, kind);
  const out = new Uint8Array(6 + payload.length);
  out.set(head);
  const crc = crc32(payload, crc32(head, crc32(new TextEncoder().encode(key))));
  new DataView(out.buffer).setUint32(2, crc);
  out.set(payload, 6);
  return out;
}

describe('agent store codec', () => {
  it('round-trips a value of every kind exactly', () => {
    for (const [key, value] of SAMPLES) {
      const encoded = encodeValue(key, value);
      expect(encoded[0]).toBe(CODEC_VERSION);
      expect(encoded[1]).toBe(value.kind);
      expect(decodeValue(key, encoded, value.kind)).toEqual(value);
      // Deterministic: the same value encodes to the same bytes.
      expect(encodeValue(key, value)).toEqual(encoded);
    }
  });

  it('classifies keys by prefix', () => {
    expect(kindOfKey('meta:store')).toBe(RecordKind.storeInfo);
    expect(kindOfKey('entry:e')).toBe(RecordKind.entry);
    expect(kindOfKey('entry:')).toBeUndefined();
    expect(kindOfKey('federated:a.org')).toBe(RecordKind.federatedBundle);
    expect(kindOfKey('x509:e')).toBe(RecordKind.x509Svid);
    expect(kindOfKey('jwt:[]')).toBe(RecordKind.jwtSvid);
    expect(kindOfKey('meta:version')).toBeUndefined();
    expect(kindOfKey('other:1')).toBeUndefined();
  });

  it('keys JWT-SVIDs by SPIFFE ID and audience set, unambiguously', () => {
    expect(jwtSvidCacheKey('spiffe://a/b', ['y', 'x', 'y'])).toBe(
      jwtSvidCacheKey('spiffe://a/b', ['x', 'y']),
    );
    expect(jwtSvidCacheKey('spiffe://a/b', ['x,y'])).not.toBe(
      jwtSvidCacheKey('spiffe://a/b', ['x', 'y']),
    );
    expect(jwtSvidCacheKey('spiffe://a/b', ['x'])).not.toBe(jwtSvidCacheKey('spiffe://a/b', []));
    expect(normalizeAudience(['b', 'a', 'b'])).toEqual(['a', 'b']);
  });

  it('detects every single-bit flip, every truncation and trailing bytes', () => {
    const [key, value] = SAMPLES.find(([, v]) => v.kind === RecordKind.entry)!;
    const good = encodeValue(key, value);
    for (let i = 0; i < good.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = good.slice();
        bad[i]! ^= bit;
        const code = codeOf(() => decodeValue(key, bad, RecordKind.entry));
        // A flipped version byte may read as a newer codec; everything else is corruption.
        expect(code).toBe(
          i === 0 && bad[0]! > CODEC_VERSION
            ? 'ERR_AGENT_STORE_VERSION'
            : 'ERR_AGENT_STORE_CORRUPT',
        );
      }
    }
    for (let n = 0; n < good.length; n++) {
      expect(codeOf(() => decodeValue(key, good.subarray(0, n)))).toBe('ERR_AGENT_STORE_CORRUPT');
    }
    const longer = framed(key, RecordKind.entry, new Uint8Array([...good.subarray(6), 0]));
    expect(() => decodeValue(key, longer)).toThrow(/1 trailing bytes/);
  });

  it('refuses a value under another key or of another kind, naming the key', () => {
    const [key, value] = SAMPLES.find(([, v]) => v.kind === RecordKind.entry)!;
    const good = encodeValue(key, value);
    let err: unknown;
    try {
      decodeValue(keys.entry('e-2'), good);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'ERR_AGENT_STORE_CORRUPT',
      message: 'record "entry:e-2" is corrupt: checksum mismatch',
      details: { key: 'entry:e-2' },
    });
    expect(() => decodeValue(key, good, RecordKind.x509Svid)).toThrow(
      'record "entry:e-1" is corrupt: holds record kind 5, expected 7',
    );
  });

  it('refuses newer codec versions as ERR_AGENT_STORE_VERSION and version 0 as corrupt', () => {
    const payload = encodeValue('sync:state', SAMPLES[6]![1]).subarray(6);
    expect(codeOf(() => decodeValue('sync:state', framed('sync:state', 6, payload, 2)))).toBe(
      'ERR_AGENT_STORE_VERSION',
    );
    expect(codeOf(() => decodeValue('sync:state', framed('sync:state', 6, payload, 0)))).toBe(
      'ERR_AGENT_STORE_CORRUPT',
    );
    expect(decodeValue('sync:state', framed('sync:state', 6, payload)).kind).toBe(6);
  });

  it('is strict about booleans, integers, UTF-8, sealing flags and kinds behind a valid CRC', () => {
    const sync = (p: number[]) => () =>
      decodeValue('sync:state', framed('sync:state', 6, bytes(...p)));
    const f64 = (v: number) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, v);
      return [...b];
    };
    const str = (s: number[]) => [0, 0, 0, s.length, ...s];
    expect(sync([...f64(1), ...f64(2), ...str([0x61])])()).toMatchObject({
      record: { lastSyncAtMs: 1, lastFullSyncAtMs: 2, cursor: 'a' },
    });
    expect(sync([...f64(1.5), ...f64(2), ...str([])])).toThrow(
      /lastSyncAtMs is not a non-negative integer/,
    );
    expect(sync([...f64(-1), ...f64(2), ...str([])])).toThrow(/lastSyncAtMs/);
    expect(sync([...f64(-0), ...f64(2), ...str([])])).toThrow(/lastSyncAtMs/);
    expect(sync([...f64(2 ** 53), ...f64(2), ...str([])])).toThrow(/lastSyncAtMs/);
    expect(sync([...f64(Number.NaN), ...f64(2), ...str([])])).toThrow(/lastSyncAtMs/);
    expect(sync([...f64(1), ...f64(2), ...str([0xc3, 0x28])])).toThrow(/cursor is not valid UTF-8/);
    expect(sync([...f64(1), ...f64(2), 0xff, 0xff, 0xff, 0xff])).toThrow(/cursor is truncated/);
    // An unknown kind with a valid CRC.
    expect(() => decodeValue('k', framed('k', 99, bytes()))).toThrow(/unknown record kind 99/);
    // The byte where two encodings differ is the field that differs between them.
    const diffAt = (a: StoredValue, b: StoredValue, key: string) => {
      const x = encodeValue(key, a).subarray(6);
      const y = encodeValue(key, b).subarray(6);
      const at = x.findIndex((v, i) => v !== y[i]);
      expect(at).toBeGreaterThanOrEqual(0);
      return { payload: x.slice(), at };
    };
    const admin = diffAt(
      { kind: RecordKind.entry, record: ENTRY },
      { kind: RecordKind.entry, record: { ...ENTRY, admin: false } },
      'entry:e-1',
    );
    admin.payload[admin.at] = 2;
    expect(() => decodeValue('entry:e-1', framed('entry:e-1', 5, admin.payload))).toThrow(
      'record "entry:e-1" is corrupt: admin is not a boolean',
    );
    const svid = SAMPLES[7]![1] as Extract<StoredValue, { kind: 7 }>;
    const flag = diffAt(
      svid,
      { ...svid, record: { ...svid.record, privateKey: { sealed: true, bytes: bytes(7, 7, 7) } } },
      'x509:e-1',
    );
    flag.payload[flag.at] = 2;
    expect(() => decodeValue('x509:e-1', framed('x509:e-1', 7, flag.payload))).toThrow(
      /privateKey has an unknown sealing flag/,
    );
  });

  it('does not allocate for absurd list counts', () => {
    // certChain claims 2^32-1 items in a tiny value.
    const p = bytes(0, 0, 0, 1, 0x65, 0, 0, 0, 1, 0x73, 0xff, 0xff, 0xff, 0xff);
    expect(() => decodeValue('x509:e', framed('x509:e', 7, p))).toThrow(
      /certChain count is too large/,
    );
  });

  it('throws TypeError when encoding values the format cannot hold', () => {
    const sync = (r: Record<string, unknown>) => () =>
      encodeValue('sync:state', {
        kind: RecordKind.sync,
        record: { lastSyncAtMs: 1, lastFullSyncAtMs: 1, cursor: '', ...r },
      } as StoredValue);
    expect(sync({ lastSyncAtMs: 1.5 })).toThrow(TypeError);
    expect(sync({ lastSyncAtMs: -1 })).toThrow('lastSyncAtMs must be a non-negative safe integer');
    expect(sync({ lastSyncAtMs: 2 ** 53 })).toThrow(TypeError);
    expect(sync({ cursor: 5 })).toThrow('cursor must be a string');
    // -0 is written as the canonical 0.
    expect(decodeValue('sync:state', sync({ lastSyncAtMs: -0 })())).toMatchObject({
      record: { lastSyncAtMs: 0 },
    });
    expect(() =>
      encodeValue('entry:e', {
        kind: RecordKind.entry,
        record: { ...ENTRY, admin: 'yes' as unknown as boolean },
      }),
    ).toThrow('admin must be a boolean');
    expect(() =>
      encodeValue('bundle:local', {
        kind: RecordKind.bundle,
        record: { ...(SAMPLES[3]![1].record as object), x509Authorities: ['x'] } as never,
      }),
    ).toThrow('x509Authorities[0] must be a Uint8Array');
  });

  it('round-trips arbitrary entries and X509-SVIDs (property)', () => {
    const int = fc.nat({ max: Number.MAX_SAFE_INTEGER });
    const entry = fc.record({
      id: fc.string({ minLength: 1 }),
      spiffeId: fc.string(),
      parentId: fc.string(),
      selectors: fc.array(fc.record({ type: fc.string(), value: fc.string({ unit: 'binary' }) })),
      x509SvidTtl: int,
      jwtSvidTtl: int,
      federatesWith: fc.array(fc.string()),
      admin: fc.boolean(),
      downstream: fc.boolean(),
      expiresAt: int,
      dnsNames: fc.array(fc.string()),
      revisionNumber: int,
      storeSvid: fc.boolean(),
      hint: fc.string({ unit: 'binary' }),
      createdAt: int,
    });
    const svid = fc.record({
      entryId: fc.string({ minLength: 1 }),
      spiffeId: fc.string(),
      certChain: fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 4 }),
      privateKey: fc.record({ sealed: fc.boolean(), bytes: fc.uint8Array({ maxLength: 64 }) }),
      expiresAtMs: int,
      rotateAtMs: int,
      entryRevision: int,
    });
    fc.assert(
      fc.property(entry, svid, fc.string(), (e, s, key) => {
        const ev: StoredValue = { kind: RecordKind.entry, record: e };
        expect(decodeValue(key, encodeValue(key, ev))).toEqual(ev);
        const sv: StoredValue = { kind: RecordKind.x509Svid, record: s };
        expect(decodeValue(key, encodeValue(key, sv))).toEqual(sv);
      }),
      { numRuns: 200 },
    );
  });

  it('answers arbitrary bytes, with or without a valid CRC, only with coded errors (property)', () => {
    const codes = new Set(['ERR_AGENT_STORE_CORRUPT', 'ERR_AGENT_STORE_VERSION']);
    const check = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        if (!isSpireEdgeError(err) || !codes.has(err.code)) throw err;
      }
    };
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 0, max: 10 }),
        fc.string({ maxLength: 10 }),
        (payload, kind, key) => {
          check(() => decodeValue(key, payload));
          check(() => decodeValue(key, framed(key, kind, payload)));
        },
      ),
      { numRuns: 500 },
    );
    // Mutations of real values behind a recomputed CRC exercise the field parsers.
    fc.assert(
      fc.property(
        fc.constantFrom(...SAMPLES),
        fc.array(fc.record({ at: fc.nat(), byte: fc.nat({ max: 255 }) }), { maxLength: 4 }),
        fc.nat({ max: 8 }),
        ([key, value], edits, cut) => {
          const payload = encodeValue(key, value).slice(6);
          for (const { at, byte } of edits) {
            if (payload.length > 0) payload[at % payload.length] = byte;
          }
          check(() =>
            decodeValue(key, framed(key, value.kind, payload.subarray(0, payload.length - cut))),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
