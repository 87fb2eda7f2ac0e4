import { generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyTypeOfPrivateKey, MemoryKeyManager, softwareSigner } from '../../../src/hsm/memory.js';
import { runKeyManagerContract } from '../../contract/key-manager.contract.js';

runKeyManagerContract('memory', {
  persistent: false,
  newStore: async () => ({
    open: async () => new MemoryKeyManager(),
    dispose: async () => {},
  }),
});

describe('softwareSigner', () => {
  it('signs with a private KeyObject (P-384 hashes with SHA-384)', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const s = softwareSigner(privateKey);
    expect(s.keyType).toBe('ec-p384');
    const data = Buffer.from('x');
    const sig = await s.sign(data);
    expect(verify('sha384', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    expect(
      verify('sha384', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, s.signSync!(data)),
    ).toBe(true);
  });

  it('rejects public keys and unsupported key types with TypeError', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => softwareSigner(ec.publicKey)).toThrow(/needs a private key/);
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' });
    expect(() => softwareSigner(p521.privateKey)).toThrow(/EC P-256\/P-384 or RSA 2048\/4096/);
    const ed = generateKeyPairSync('ed25519');
    expect(keyTypeOfPrivateKey(ed.privateKey)).toBeUndefined();
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(keyTypeOfPrivateKey(rsa1024.privateKey)).toBeUndefined();
  });
});
