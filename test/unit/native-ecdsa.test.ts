import { generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCsr } from '../../src/agent/attestation/csr.js';
import {
  loadNativeAddon,
  type NativeEcdsaCurve,
  type NativeEcdsaHash,
  type NativeEcdsaResult,
} from '../../src/native/addon.js';
import { nativeEcdsaVerifier } from '../../src/server/ca/server-ca.js';
import { type ParsedCsr, parseCsr, parseCsrAsync } from '../../src/spiffe/csr.js';

const addon = loadNativeAddon();
if (typeof addon.ecdsaVerifySync !== 'function') {
  throw new Error('the native addon has no ecdsaVerifySync: run scripts/setup.sh (build:native)');
}

const SIZES: Record<NativeEcdsaCurve, number> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };

interface Key {
  readonly curve: NativeEcdsaCurve;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** 04 || X || Y */
  readonly point: Uint8Array;
}

function makeKey(curve: NativeEcdsaCurve): Key {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  const jwk = publicKey.export({ format: 'jwk' });
  const size = SIZES[curve];
  const point = new Uint8Array(1 + 2 * size);
  point[0] = 4;
  const x = Buffer.from(jwk.x!, 'base64url');
  const y = Buffer.from(jwk.y!, 'base64url');
  point.set(x, 1 + size - x.length);
  point.set(y, 1 + 2 * size - y.length);
  return { curve, privateKey, publicKey, point };
}

const keys: Record<NativeEcdsaCurve, Key> = {
  'P-256': makeKey('P-256'),
  'P-384': makeKey('P-384'),
  'P-521': makeKey('P-521'),
};
const other = makeKey('P-256');

/** node:crypto's verdict, as the native functions report it (1 / 0; never -1 here). */
function nodeVerdict(
  hash: NativeEcdsaHash,
  key: KeyObject,
  data: Uint8Array,
  sig: Uint8Array,
): NativeEcdsaResult {
  try {
    return verify(hash, data, key, sig) ? 1 : 0;
  } catch {
    return 0;
  }
}

/** The three native entry points must agree; returns their common answer. */
async function nativeVerdict(
  curve: NativeEcdsaCurve,
  hash: NativeEcdsaHash,
  point: Uint8Array,
  data: Uint8Array,
  sig: Uint8Array,
): Promise<NativeEcdsaResult> {
  const s = addon.ecdsaVerifySync(curve, hash, point, data, sig);
  const a = await addon.ecdsaVerify(curve, hash, point, data, sig);
  const b = await addon.ecdsaVerifyBatch([{ curve, hash, point, data, signature: sig }]);
  expect(a).toBe(s);
  expect(b[0]).toBe(s);
  return s;
}

const DATA = new TextEncoder().encode('certificationRequestInfo stand-in');

describe('native ecdsaVerify against node:crypto', () => {
  for (const curve of ['P-256', 'P-384', 'P-521'] as const) {
    for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
      it(`accepts valid and refuses wrong ${curve}/${hash} signatures, as crypto.verify does`, async () => {
        const k = keys[curve];
        const sig = new Uint8Array(sign(hash, DATA, k.privateKey));
        expect(nodeVerdict(hash, k.publicKey, DATA, sig)).toBe(1);
        expect(await nativeVerdict(curve, hash, k.point, DATA, sig)).toBe(1);
        // Other data, another hash, another key: all refused by both.
        const data2 = new Uint8Array(DATA);
        data2[0]! ^= 1;
        expect(await nativeVerdict(curve, hash, k.point, data2, sig)).toBe(0);
        expect(nodeVerdict(hash, k.publicKey, data2, sig)).toBe(0);
        const otherHash = hash === 'sha256' ? 'sha384' : 'sha256';
        expect(await nativeVerdict(curve, otherHash, k.point, DATA, sig)).toBe(0);
        expect(nodeVerdict(otherHash, k.publicKey, DATA, sig)).toBe(0);
      });
    }
  }

  it('refuses a signature made by another key on the same curve', async () => {
    const sig = new Uint8Array(sign('sha256', DATA, other.privateKey));
    expect(await nativeVerdict('P-256', 'sha256', keys['P-256'].point, DATA, sig)).toBe(0);
  });

  it('refuses non-DER signatures as crypto.verify does: trailing bytes, long forms, raw r||s', async () => {
    const k = keys['P-256'];
    const der = new Uint8Array(sign('sha256', DATA, k.privateKey));
    const raw = new Uint8Array(
      sign('sha256', DATA, { key: k.privateKey, dsaEncoding: 'ieee-p1363' }),
    );
    const trailing = new Uint8Array([...der, 0]);
    // The same SEQUENCE with a non-minimal (long-form) length.
    const longForm = new Uint8Array([0x30, 0x81, der[1]!, ...der.subarray(2)]);
    for (const sig of [raw, trailing, longForm, new Uint8Array(0), new Uint8Array([0x30, 0])]) {
      expect(nodeVerdict('sha256', k.publicKey, DATA, sig)).toBe(0);
      expect(await nativeVerdict('P-256', 'sha256', k.point, DATA, sig)).toBe(0);
    }
  });

  it('refuses r or s of zero or not below the order', async () => {
    const k = keys['P-256'];
    const n = Buffer.from(
      'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551',
      'hex',
    );
    const int = (b: Uint8Array) =>
      b[0]! & 0x80 ? [2, b.length + 1, 0, ...b] : [2, b.length, ...b];
    const sigOf = (r: Uint8Array, s: Uint8Array) => {
      const body = [...int(r), ...int(s)];
      return new Uint8Array([0x30, body.length, ...body]);
    };
    for (const sig of [
      sigOf(new Uint8Array([0]), n),
      sigOf(n, new Uint8Array([1])),
      sigOf(new Uint8Array([1]), new Uint8Array([0])),
    ]) {
      expect(nodeVerdict('sha256', k.publicKey, DATA, sig)).toBe(0);
      expect(await nativeVerdict('P-256', 'sha256', k.point, DATA, sig)).toBe(0);
    }
  });
});

describe('native ecdsaVerify on bad points', () => {
  const sig = new Uint8Array(sign('sha256', DATA, keys['P-256'].privateKey));

  it('reports -1 for points off the curve, with coordinates ≥ p, compressed or of the wrong length', async () => {
    const k = keys['P-256'];
    const off = new Uint8Array(k.point);
    off[64]! ^= 1;
    const p = Buffer.from(
      'ffffffff00000001000000000000000000000000ffffffffffffffffffffffff',
      'hex',
    );
    const xTooBig = new Uint8Array(k.point);
    xTooBig.set(p, 1); // x = p: out of range
    const ff = new Uint8Array(65).fill(0xff);
    ff[0] = 4;
    const compressed = new Uint8Array([2, ...k.point.subarray(1, 33)]);
    const wrongPrefix = new Uint8Array(k.point);
    wrongPrefix[0] = 6; // hybrid form
    const zero = new Uint8Array(65);
    zero[0] = 4; // (0, 0) is not on P-256
    for (const point of [
      off,
      xTooBig,
      ff,
      compressed,
      wrongPrefix,
      zero,
      new Uint8Array([0]), // the point at infinity's encoding
      new Uint8Array(0),
      k.point.subarray(0, 64),
      new Uint8Array([...k.point, 0]),
      keys['P-384'].point, // a P-384 point given as P-256
    ]) {
      expect(await nativeVerdict('P-256', 'sha256', point, DATA, sig)).toBe(-1);
    }
    // A P-256 point given as P-384 is the wrong length there.
    expect(await nativeVerdict('P-384', 'sha256', k.point, DATA, sig)).toBe(-1);
  });

  it('answers per item in a batch, in order', async () => {
    const k = keys['P-256'];
    const off = new Uint8Array(k.point);
    off[64]! ^= 1;
    const bad = new Uint8Array(sig);
    bad[bad.length - 1]! ^= 1;
    const item = (point: Uint8Array, signature: Uint8Array) =>
      ({ curve: 'P-256', hash: 'sha256', point, data: DATA, signature }) as const;
    const r = await addon.ecdsaVerifyBatch([
      item(k.point, sig),
      item(off, sig),
      item(k.point, bad),
    ]);
    expect([...r]).toEqual([1, -1, 0]);
    expect([...(await addon.ecdsaVerifyBatch([]))]).toEqual([]);
  });

  it('throws TypeError for arguments of the wrong type or unknown names, without crashing', () => {
    const k = keys['P-256'];
    const call =
      (...args: unknown[]) =>
      () =>
        (addon.ecdsaVerifySync as (...a: unknown[]) => unknown)(...args);
    expect(call('P-192', 'sha256', k.point, DATA, sig)).toThrow(TypeError);
    expect(call('P-256', 'sha1', k.point, DATA, sig)).toThrow(TypeError);
    expect(call('P-256', 'sha256', 'point', DATA, sig)).toThrow(TypeError);
    expect(call('P-256', 'sha256', k.point, [1, 2], sig)).toThrow(TypeError);
    expect(call('P-256', 'sha256', k.point, DATA, new Uint8Array(257))).toThrow(TypeError);
    expect(call('P-256', 'sha256', k.point, DATA, new Uint16Array(4))).toThrow(TypeError);
    expect(call('P-256', 'sha256', k.point)).toThrow(TypeError);
    expect(() =>
      (addon.ecdsaVerify as (...a: unknown[]) => unknown)('P-256', 'sha256', null, DATA, sig),
    ).toThrow(TypeError);
    expect(() => (addon.ecdsaVerifyBatch as (a: unknown) => unknown)([1])).toThrow(TypeError);
    expect(() => (addon.ecdsaVerifyBatch as (a: unknown) => unknown)({})).toThrow(TypeError);
  });
});

describe('native ecdsaVerify (property)', () => {
  const curves = fc.constantFrom<NativeEcdsaCurve>('P-256', 'P-384');
  const hashes = fc.constantFrom<NativeEcdsaHash>('sha256', 'sha384', 'sha512');

  it('agrees with crypto.verify on random messages, keys and single-bit flips', async () => {
    const pool = {
      'P-256': Array.from({ length: 4 }, () => makeKey('P-256')),
      'P-384': Array.from({ length: 4 }, () => makeKey('P-384')),
    } as const;
    await fc.assert(
      fc.asyncProperty(
        curves,
        hashes,
        fc.nat(3),
        fc.uint8Array({ maxLength: 600 }),
        fc.constantFrom('none', 'data', 'signature', 'point'),
        fc.nat(),
        async (curve, hash, ki, data, flip, at) => {
          const k = pool[curve as 'P-256' | 'P-384'][ki]!;
          let sig = new Uint8Array(sign(hash, data, k.privateKey));
          let point = k.point;
          if (flip === 'data' && data.length > 0) {
            data = new Uint8Array(data);
            data[at % data.length]! ^= 1 << (at % 8);
          } else if (flip === 'signature') {
            sig = new Uint8Array(sig);
            sig[at % sig.length]! ^= 1 << (at % 8);
          } else if (flip === 'point') {
            point = new Uint8Array(point);
            // Flip a coordinate bit (not the 04 prefix): off the curve, or out of range.
            point[1 + (at % (point.length - 1))]! ^= 1 << (at % 8);
          }
          const native = await nativeVerdict(curve, hash, point, data, sig);
          if (flip === 'point') {
            expect(native).toBe(-1);
          } else {
            expect(native).toBe(nodeVerdict(hash, k.publicKey, data, sig));
            if (flip === 'none' || (flip === 'data' && data.length === 0)) expect(native).toBe(1);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never crashes on random points and signatures', async () => {
    await fc.assert(
      fc.asyncProperty(
        curves,
        fc.uint8Array({ maxLength: 140 }),
        fc.uint8Array({ maxLength: 200 }),
        async (curve, rawPoint, sig) => {
          const point =
            rawPoint.length > 0 ? new Uint8Array([4, ...rawPoint.subarray(1)]) : rawPoint;
          const r = await nativeVerdict(curve, 'sha256', point, DATA, sig);
          expect([0, -1]).toContain(r);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("the server's native CSR verifier (nativeEcdsaVerifier + parseCsrAsync)", () => {
  const verifyEcdsa = nativeEcdsaVerifier();
  if (verifyEcdsa === undefined)
    throw new Error('nativeEcdsaVerifier() is undefined: run scripts/setup.sh');
  const csrs = Array.from({ length: 60 }, (_, i) =>
    createCsr(
      generateKeyPairSync('ec', { namedCurve: i % 3 === 2 ? 'P-384' : 'P-256' }).privateKey,
    ),
  );

  it('answers each of many concurrent requests (one batch) for its own signature', async () => {
    const forged = csrs.map((c, i) => {
      if (i % 2 === 0) return c;
      const b = Uint8Array.from(c);
      b[b.length - 3]! ^= 1;
      return b;
    });
    const results = await Promise.allSettled(forged.map((c) => parseCsrAsync(c, { verifyEcdsa })));
    for (const [i, r] of results.entries()) {
      if (i % 2 === 0) {
        expect(r.status).toBe('fulfilled');
        const want = parseCsr(csrs[i]!);
        expect(
          (r as PromiseFulfilledResult<ParsedCsr>).value.publicKey.equals(want.publicKey),
        ).toBe(true);
      } else {
        expect(r.status).toBe('rejected');
        const err = (r as PromiseRejectedResult).reason as Error & { code?: string };
        expect(err.code).toBe('ERR_CSR_INVALID');
        expect(err.message).toBe(
          'invalid certification request: signature does not verify with the request public key',
        );
      }
    }
  });

  it('agrees with parseCsr on mutated requests: acceptance, codes and messages (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(csrs.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        async (ci, edits) => {
          const b = Uint8Array.from(csrs[ci]!);
          for (const [pos, v] of edits) b[pos % b.length] = v;
          let sync: ParsedCsr | (Error & { code?: string });
          try {
            sync = parseCsr(b);
          } catch (err) {
            sync = err as Error;
          }
          let native: ParsedCsr | (Error & { code?: string });
          try {
            native = await parseCsrAsync(b, { verifyEcdsa });
          } catch (err) {
            native = err as Error;
          }
          if (sync instanceof Error) {
            expect(native).toBeInstanceOf(Error);
            expect((native as Error & { code?: string }).code).toBe(sync.code);
            expect((native as Error).message).toBe(sync.message);
          } else {
            expect(native).not.toBeInstanceOf(Error);
            expect((native as ParsedCsr).publicKey.equals(sync.publicKey)).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
