import { createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  loadNativeAddon,
  type NativeEcdsaCurve,
  type NativeEcdsaHash,
  type NativeEcdsaItem,
  type NativeEcdsaSigningKey,
} from '../../src/native/addon.js';

const addon = loadNativeAddon();
const { ecdsaSigningKey, ecdsaSigningKeyFree, ecdsaSignBatch, ecdsaVerifyMany } = addon;
if (
  ecdsaSigningKey === undefined ||
  ecdsaSigningKeyFree === undefined ||
  ecdsaSignBatch === undefined ||
  ecdsaVerifyMany === undefined
) {
  throw new Error('the native addon has no ecdsaSignBatch / ecdsaVerifyMany: run scripts/setup.sh');
}
const signingKey = ecdsaSigningKey.bind(addon);
const freeKey = ecdsaSigningKeyFree.bind(addon);
const signBatch = ecdsaSignBatch.bind(addon);
const verifyMany = ecdsaVerifyMany.bind(addon);

function importKey(privateKey: KeyObject, curve: 'P-256' | 'P-384'): NativeEcdsaSigningKey {
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  try {
    return signingKey(der, curve);
  } finally {
    der.fill(0);
  }
}

function p1363Verifies(
  hash: string,
  publicKey: KeyObject,
  data: Uint8Array,
  sig: Uint8Array,
): boolean {
  return verify(hash, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);
}

describe('native ecdsaSignBatch', () => {
  for (const [curve, hash, size] of [
    ['P-256', 'sha256', 64],
    ['P-384', 'sha384', 96],
  ] as const) {
    it(`signs every item with the ${curve} key (${hash}, P1363), verified by node:crypto`, async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      const key = importKey(privateKey, curve);
      const items = [
        new Uint8Array(0),
        new Uint8Array(420).fill(7),
        Buffer.from('a tbsCertificate'),
        new Uint8Array(420).fill(7),
      ];
      const sigs = await signBatch(key, items);
      expect(sigs).toBeInstanceOf(Uint8Array);
      expect(sigs.length).toBe(items.length * size);
      for (let i = 0; i < items.length; i++) {
        const sig = sigs.subarray(i * size, (i + 1) * size);
        expect(p1363Verifies(hash, publicKey, items[i]!, sig)).toBe(true);
        // and not for another message
        expect(p1363Verifies(hash, publicKey, Buffer.from('other'), sig)).toBe(false);
      }
      // Fresh nonces: the same data twice gives two different signatures.
      expect(Buffer.compare(sigs.subarray(size, 2 * size), sigs.subarray(3 * size))).not.toBe(0);
      expect((await signBatch(key, [])).length).toBe(0);
      freeKey(key);
    });
  }

  it('signs concurrent batches from several threads with one key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key = importKey(privateKey, 'P-256');
    const data = Array.from({ length: 16 }, (_, i) => Buffer.from(`message ${i}`));
    const all = await Promise.all(Array.from({ length: 8 }, () => signBatch(key, data)));
    for (const sigs of all) {
      data.forEach((d, i) => {
        expect(p1363Verifies('sha256', publicKey, d, sigs.subarray(i * 64, (i + 1) * 64))).toBe(
          true,
        );
      });
    }
    freeKey(key);
  });

  it('refuses keys that are not PKCS#8 EC keys of the named curve, with TypeError', () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const pkcs8 = (k: KeyObject) => k.export({ format: 'der', type: 'pkcs8' });
    expect(() => signingKey(pkcs8(p256), 'P-384')).toThrow(TypeError);
    expect(() => signingKey(pkcs8(rsa), 'P-256')).toThrow(TypeError);
    expect(() => signingKey(new Uint8Array(0), 'P-256')).toThrow(TypeError);
    expect(() => signingKey(Buffer.from('not a key'), 'P-256')).toThrow(TypeError);
    expect(() => signingKey(Buffer.concat([pkcs8(p256), Buffer.of(0)]), 'P-256')).toThrow(
      TypeError,
    );
    const truncated = pkcs8(p256);
    expect(() => signingKey(truncated.subarray(0, truncated.length - 1), 'P-256')).toThrow(
      TypeError,
    );
    // only the private half: a SubjectPublicKeyInfo is not a private key
    const spki = createPublicKey(p256).export({ format: 'der', type: 'spki' });
    expect(() => signingKey(spki, 'P-256')).toThrow(TypeError);
    expect(() => signingKey(pkcs8(p256), 'P-521' as 'P-256')).toThrow(TypeError);
  });

  it('throws TypeError for bad handles and items, and after the key is freed', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key = importKey(privateKey, 'P-256');
    const fake = {} as NativeEcdsaSigningKey;
    expect(() => signBatch(fake, [])).toThrow(TypeError);
    expect(() => signBatch(key, ['text' as unknown as Uint8Array])).toThrow(TypeError);
    expect(() => signBatch(key, new Uint8Array(3) as unknown as Uint8Array[])).toThrow(TypeError);
    expect(() => freeKey(fake)).toThrow(TypeError);
    // A batch queued before the key is freed still completes with it.
    const queued = signBatch(key, [Buffer.from('queued')]);
    freeKey(key);
    freeKey(key); // idempotent
    expect((await queued).length).toBe(64);
    expect(() => signBatch(key, [Buffer.from('late')])).toThrow(/freed/);
  });
});

const CURVE_INDEX: Record<NativeEcdsaCurve, number> = { 'P-256': 0, 'P-384': 1, 'P-521': 2 };
const HASH_INDEX: Record<NativeEcdsaHash, number> = { sha256: 0, sha384: 1, sha512: 2 };

/** The flat call ecdsaVerifyMany takes, from items. */
function flat(items: readonly NativeEcdsaItem[]): [Uint8Array, Uint8Array, Uint32Array] {
  const kinds = Uint8Array.from(items, (it) => CURVE_INDEX[it.curve] * 3 + HASH_INDEX[it.hash]);
  const blob = Buffer.concat(items.flatMap((it) => [it.point, it.data, it.signature]));
  const ends = new Uint32Array(items.length * 3);
  let o = 0;
  items.forEach((it, i) => {
    ends[3 * i] = o += it.point.length;
    ends[3 * i + 1] = o += it.data.length;
    ends[3 * i + 2] = o += it.signature.length;
  });
  return [kinds, blob, ends];
}

function point(publicKey: KeyObject, size: number): Uint8Array {
  const jwk = publicKey.export({ format: 'jwk' });
  const out = new Uint8Array(1 + 2 * size);
  out[0] = 4;
  const x = Buffer.from(jwk.x!, 'base64url');
  const y = Buffer.from(jwk.y!, 'base64url');
  out.set(x, 1 + size - x.length);
  out.set(y, 1 + 2 * size - y.length);
  return out;
}

describe('native ecdsaVerifyMany', () => {
  const curves = [
    ['P-256', 32],
    ['P-384', 48],
    ['P-521', 66],
  ] as const;
  const keys = curves.map(([curve, size]) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    return { curve, privateKey, point: point(publicKey, size) };
  });

  it('answers as ecdsaVerifyBatch does, per item and in order (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            key: fc.integer({ min: 0, max: 2 }),
            hash: fc.constantFrom<NativeEcdsaHash>('sha256', 'sha384', 'sha512'),
            data: fc.uint8Array({ maxLength: 300 }),
            flip: fc.option(fc.nat(), { nil: undefined }),
            breakPoint: fc.boolean(),
          }),
          { maxLength: 12 },
        ),
        async (specs) => {
          const items: NativeEcdsaItem[] = specs.map((s) => {
            const k = keys[s.key]!;
            const signature = new Uint8Array(sign(s.hash, s.data, k.privateKey));
            const data = Uint8Array.from(s.data);
            if (s.flip !== undefined && data.length > 0) data[s.flip % data.length]! ^= 1;
            const p = Uint8Array.from(k.point);
            if (s.breakPoint) p[p.length - 1]! ^= 1; // off the curve
            return { curve: k.curve, hash: s.hash, point: p, data, signature };
          });
          const expected = await addon.ecdsaVerifyBatch(items);
          const got = await verifyMany(...flat(items));
          expect(Array.from(got)).toEqual(Array.from(expected));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('throws TypeError for malformed layouts, without crashing', () => {
    const k = keys[0]!;
    const data = Buffer.from('x');
    const item: NativeEcdsaItem = {
      curve: 'P-256',
      hash: 'sha256',
      point: k.point,
      data,
      signature: new Uint8Array(sign('sha256', data, k.privateKey)),
    };
    const [kinds, blob, ends] = flat([item]);
    expect(() => verifyMany(kinds, blob, new Uint32Array(2))).toThrow(TypeError);
    expect(() => verifyMany(Uint8Array.of(9), blob, ends)).toThrow(TypeError);
    expect(() => verifyMany(kinds, blob, Uint32Array.of(ends[0]!, 1, ends[2]!))).toThrow(TypeError);
    expect(() => verifyMany(kinds, blob.subarray(0, 10), ends)).toThrow(TypeError);
    expect(() => verifyMany(kinds, blob, Uint32Array.of(200, 201, 202))).toThrow(TypeError);
    expect(() => verifyMany(kinds, blob, new Uint16Array(3) as unknown as Uint32Array)).toThrow(
      TypeError,
    );
    expect(() => verifyMany([0] as unknown as Uint8Array, blob, ends)).toThrow(TypeError);
  });
});
