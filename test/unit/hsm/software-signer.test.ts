import { generateKeyPairSync, verify } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createSoftwareSigner, MemoryKeyManager } from '../../../src/hsm/memory.js';
import { loadNativeAddon } from '../../../src/native/addon.js';

const addon = loadNativeAddon();
if (typeof addon.ecdsaSignBatch !== 'function') {
  throw new Error('the native addon has no ecdsaSignBatch: run scripts/setup.sh (build:native)');
}

const p1363 = (hash: string, key: Parameters<typeof verify>[2], d: Uint8Array, s: Uint8Array) =>
  verify(hash, d, { key: key as never, dsaEncoding: 'ieee-p1363' }, s);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('software signer: native batch signing of EC keys', () => {
  for (const [curve, hash] of [
    ['P-256', 'sha256'],
    ['P-384', 'sha384'],
  ] as const) {
    it(`signs ${curve} calls made in one turn together, in few native tasks`, async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      const batch = vi.spyOn(addon, 'ecdsaSignBatch');
      const { signer, dispose } = createSoftwareSigner(privateKey);
      const data = Array.from({ length: 50 }, (_, i) => Buffer.from(`tbs ${i}`));
      const sigs = await Promise.all(data.map((d) => signer.sign(d)));
      sigs.forEach((s, i) => {
        expect(p1363(hash, publicKey, data[i]!, s)).toBe(true);
      });
      // 50 signatures in chunks of 4 to 16 (by core count): 4 to 13 tasks, not 50.
      expect(batch.mock.calls.length).toBeGreaterThanOrEqual(4);
      expect(batch.mock.calls.length).toBeLessThanOrEqual(13);
      expect(batch.mock.calls.reduce((n, c) => n + c[1].length, 0)).toBe(50);
      dispose();
    });
  }

  it('signs through node:crypto after dispose and when a native batch fails', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { signer, dispose } = createSoftwareSigner(privateKey);
    const batch = vi.spyOn(addon, 'ecdsaSignBatch');
    batch.mockImplementationOnce(() => Promise.reject(new Error('injected')));
    const d = Buffer.from('data');
    expect(p1363('sha256', publicKey, d, await signer.sign(d))).toBe(true);
    batch.mockImplementationOnce(() => {
      throw new TypeError('injected');
    });
    expect(p1363('sha256', publicKey, d, await signer.sign(d))).toBe(true);
    batch.mockImplementationOnce(() => Promise.resolve(new Uint8Array(3))); // wrong size
    expect(p1363('sha256', publicKey, d, await signer.sign(d))).toBe(true);
    dispose();
    dispose(); // idempotent
    const calls = batch.mock.calls.length;
    expect(p1363('sha256', publicKey, d, await signer.sign(d))).toBe(true);
    expect(batch.mock.calls.length).toBe(calls);
  });

  it('keeps RSA keys on node:crypto', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const create = vi.spyOn(addon, 'ecdsaSigningKey');
    const { signer } = createSoftwareSigner(privateKey);
    expect(create).not.toHaveBeenCalled();
    const d = Buffer.from('data');
    expect(verify('sha256', d, publicKey, await signer.sign(d))).toBe(true);
  });

  it('zeroes the exported PKCS#8 buffer once the addon has the key', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    let seen: Uint8Array | undefined;
    const real = addon.ecdsaSigningKey!.bind(addon);
    vi.spyOn(addon, 'ecdsaSigningKey').mockImplementation((der, curve) => {
      seen = der;
      expect(der.some((b) => b !== 0)).toBe(true);
      return real(der, curve);
    });
    createSoftwareSigner(privateKey).dispose();
    expect(seen).toBeDefined();
    expect(seen!.every((b) => b === 0)).toBe(true);
  });
});

describe('SoftwareKeyManager frees native key copies', () => {
  it('when a key is deleted, replaced, or the manager closes', async () => {
    const free = vi.spyOn(addon, 'ecdsaSigningKeyFree');
    const km = new MemoryKeyManager();
    const a = await km.generateKey('a', 'ec-p256');
    await km.generateKey('b', 'ec-p384');
    await km.generateKey('c', 'rsa-2048');
    expect(free).not.toHaveBeenCalled();
    await km.generateKey('a', 'ec-p256'); // replaces a
    expect(free).toHaveBeenCalledTimes(1);
    await expect(a.sign(Buffer.from('x'))).rejects.toMatchObject({
      code: 'ERR_KEY_MANAGER_KEY_REPLACED',
    });
    expect(await km.deleteKey('b')).toBe(true);
    expect(free).toHaveBeenCalledTimes(2);
    await km.close();
    // the new 'a' (c is RSA: no native copy)
    expect(free).toHaveBeenCalledTimes(3);
  });
});
