/**
 * The KeyManager contract suite (SPIRE runs one suite against every KeyManager plugin):
 * every implementation — memory, disk, pkcs11 — registers it with its own factory and must
 * pass it unchanged. It tests only through the {@link KeyManager} interface.
 *
 * Usage, in a `*.test.ts` file:
 * ```ts
 * runKeyManagerContract('disk', { persistent: true, newStore: async () => ({ open, dispose }) });
 * ```
 */
import { createHash, constants as cryptoConstants, type KeyObject, verify } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../src/common/errors.js';
import { hashForKeyType, KEY_TYPES, type KeyType } from '../../src/common/signer.js';
import type { KeyManager, ManagedKey } from '../../src/hsm/key-manager.js';

/** One store under test: opened (and re-opened) as often as the suite needs. */
export interface KeyManagerStore {
  /**
   * Opens the store. Called again after `close()` it re-opens the SAME store: a persistent
   * implementation must show the keys it held.
   */
  open(): Promise<KeyManager>;
  /** Removes what the store left behind (temporary directories, tokens). */
  dispose(): Promise<void>;
}

/** How an implementation is set up for the contract suite. */
export interface KeyManagerContractFactory {
  /** True when keys survive `close()` and a new `open()`; false when a reopen starts empty. */
  readonly persistent: boolean;
  /** Key types to exercise; all of {@link KEY_TYPES} unless an HSM lacks some. */
  readonly keyTypes?: readonly KeyType[];
  /** Creates a new, empty store. */
  newStore(): Promise<KeyManagerStore>;
}

const DATA = new TextEncoder().encode('to be signed: spire-edge contract');

function signatureLength(t: KeyType): number {
  switch (t) {
    case 'ec-p256':
      return 64;
    case 'ec-p384':
      return 96;
    case 'rsa-2048':
      return 256;
    case 'rsa-4096':
      return 512;
  }
}

/** Verifies as a relying party would, with node:crypto only. */
function verifies(
  keyType: KeyType,
  publicKey: KeyObject,
  data: Uint8Array,
  sig: Uint8Array,
  hash: string = hashForKeyType(keyType),
): boolean {
  if (keyType.startsWith('ec-')) {
    return verify(hash, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig);
  }
  return verify(hash, data, { key: publicKey, padding: cryptoConstants.RSA_PKCS1_PADDING }, sig);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected a rejection with ${code}`).toBeDefined();
  expect(isSpireEdgeError(err) ? err.code : err).toBe(code);
}

function fingerprintOf(spki: Uint8Array): string {
  return createHash('sha256').update(spki).digest('hex');
}

/** Registers the KeyManager contract tests for implementation `name`. */
export function runKeyManagerContract(name: string, factory: KeyManagerContractFactory): void {
  const keyTypes = factory.keyTypes ?? KEY_TYPES;

  describe(`KeyManager contract: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];

    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    /** A fresh store, opened once; closed and disposed after the test. */
    async function fresh(): Promise<{ store: KeyManagerStore; km: KeyManager }> {
      const store = await factory.newStore();
      cleanups.push(() => store.dispose());
      const km = await store.open();
      cleanups.push(() => km.close());
      return { store, km };
    }

    it('starts empty', async () => {
      const { km } = await fresh();
      expect(await km.listKeys()).toEqual([]);
      expect(await km.getKey('x509-CA-A')).toBeUndefined();
      expect(await km.deleteKey('x509-CA-A')).toBe(false);
    });

    for (const keyType of keyTypes) {
      it(`generates ${keyType} keys whose signatures verify with node:crypto`, async () => {
        const { km } = await fresh();
        const key = await km.generateKey('k1', keyType);
        expect(key.id).toBe('k1');
        expect(key.keyType).toBe(keyType);
        expect(key.publicKey.type).toBe('public');
        const spki = new Uint8Array(key.publicKey.export({ type: 'spki', format: 'der' }));
        expect(Buffer.compare(spki, key.publicKeySpki)).toBe(0);
        expect(key.fingerprint).toBe(fingerprintOf(key.publicKeySpki));

        const sig = await key.sign(DATA);
        expect(sig.length).toBe(signatureLength(keyType));
        expect(verifies(keyType, key.publicKey, DATA, sig)).toBe(true);
        const tampered = Uint8Array.from(DATA);
        tampered[0] = tampered[0]! ^ 1;
        expect(verifies(keyType, key.publicKey, tampered, sig)).toBe(false);
        // The hash is the one the key type prescribes, not another.
        const other = hashForKeyType(keyType) === 'sha256' ? 'sha384' : 'sha256';
        expect(verifies(keyType, key.publicKey, DATA, sig, other)).toBe(false);

        if (key.signSync !== undefined) {
          expect(verifies(keyType, key.publicKey, DATA, key.signSync(DATA))).toBe(true);
        }

        const got = await km.getKey('k1');
        expect(got?.fingerprint).toBe(key.fingerprint);
        expect(verifies(keyType, key.publicKey, DATA, await got!.sign(DATA))).toBe(true);
      });
    }

    it('lists keys sorted by id', async () => {
      const { km } = await fresh();
      await km.generateKey('x509-CA-B', 'ec-p256');
      await km.generateKey('JWT-Signer-A', 'ec-p256');
      await km.generateKey('x509-CA-A', 'ec-p256');
      const ids = (await km.listKeys()).map((k) => k.id);
      expect(ids).toEqual(['JWT-Signer-A', 'x509-CA-A', 'x509-CA-B']);
    });

    it('replaces a key generated under an existing id; the old handle stops signing', async () => {
      const { km } = await fresh();
      const first = await km.generateKey('x509-CA-A', 'ec-p256');
      const second = await km.generateKey(
        'x509-CA-A',
        keyTypes.includes('ec-p384') ? 'ec-p384' : 'ec-p256',
      );
      expect(second.fingerprint).not.toBe(first.fingerprint);
      expect((await km.getKey('x509-CA-A'))?.fingerprint).toBe(second.fingerprint);
      expect((await km.listKeys()).map((k) => k.id)).toEqual(['x509-CA-A']);
      await expectCode(first.sign(DATA), 'ERR_KEY_MANAGER_KEY_REPLACED');
      expect(verifies(second.keyType, second.publicKey, DATA, await second.sign(DATA))).toBe(true);
    });

    it('deletes a key; the handle stops signing and other keys stay', async () => {
      const { km } = await fresh();
      const a = await km.generateKey('a', 'ec-p256');
      const b = await km.generateKey('b', 'ec-p256');
      expect(await km.deleteKey('a')).toBe(true);
      expect(await km.getKey('a')).toBeUndefined();
      expect(await km.deleteKey('a')).toBe(false);
      await expectCode(a.sign(DATA), 'ERR_KEY_MANAGER_KEY_NOT_FOUND');
      expect((await km.listKeys()).map((k) => k.id)).toEqual(['b']);
      expect(verifies('ec-p256', b.publicKey, DATA, await b.sign(DATA))).toBe(true);
    });

    it('signs 100 requests in parallel, each verifying', async () => {
      const { km } = await fresh();
      const key = await km.generateKey('parallel', 'ec-p256');
      const inputs = Array.from({ length: 100 }, (_, i) => new TextEncoder().encode(`msg ${i}`));
      const sigs = await Promise.all(inputs.map((d) => key.sign(d)));
      sigs.forEach((s, i) => {
        expect(verifies('ec-p256', key.publicKey, inputs[i]!, s)).toBe(true);
      });
    });

    it('generates keys concurrently without losing any', async () => {
      const { store, km } = await fresh();
      const ids = Array.from({ length: 8 }, (_, i) => `concurrent-${i}`);
      const keys = await Promise.all(ids.map((id) => km.generateKey(id, 'ec-p256')));
      expect((await km.listKeys()).map((k) => k.id)).toEqual([...ids].sort());
      if (factory.persistent) {
        await km.close();
        const again = await store.open();
        cleanups.push(() => again.close());
        const reloaded = await again.listKeys();
        expect(reloaded.map((k) => k.fingerprint).sort()).toEqual(
          keys.map((k) => k.fingerprint).sort(),
        );
      }
    });

    it(
      factory.persistent
        ? 'keeps keys, replacements and deletions across a reopen'
        : 'starts empty again after a reopen (not persistent)',
      async () => {
        const { store, km } = await fresh();
        const kept = await km.generateKey('x509-CA-A', 'ec-p256');
        await km.generateKey('JWT-Signer-A', 'ec-p256');
        const replaced = await km.generateKey('JWT-Signer-A', 'ec-p256');
        await km.generateKey('gone', 'ec-p256');
        await km.deleteKey('gone');
        await km.close();

        const again = await store.open();
        cleanups.push(() => again.close());
        if (!factory.persistent) {
          expect(await again.listKeys()).toEqual([]);
          expect(await again.getKey('x509-CA-A')).toBeUndefined();
          return;
        }
        expect((await again.listKeys()).map((k) => k.id)).toEqual(['JWT-Signer-A', 'x509-CA-A']);
        const k = await again.getKey('x509-CA-A');
        expect(k?.fingerprint).toBe(kept.fingerprint);
        expect(k?.keyType).toBe('ec-p256');
        // The reopened key is the same private key: its signature verifies with the old public key.
        expect(verifies('ec-p256', kept.publicKey, DATA, await k!.sign(DATA))).toBe(true);
        expect((await again.getKey('JWT-Signer-A'))?.fingerprint).toBe(replaced.fingerprint);
        expect(await again.getKey('gone')).toBeUndefined();
      },
    );

    it('rejects malformed key ids with TypeError', async () => {
      const { km } = await fresh();
      const bad: unknown[] = ['', 'a/b', 'a b', '../x', 'x'.repeat(129), 'é', 42, undefined];
      for (const id of bad) {
        await expect(km.generateKey(id as string, 'ec-p256')).rejects.toThrow(TypeError);
        await expect(km.getKey(id as string)).rejects.toThrow(TypeError);
        await expect(km.deleteKey(id as string)).rejects.toThrow(TypeError);
      }
      await expect(km.generateKey('', 'ec-p256')).rejects.toThrow(/key id must not be empty/);
      expect(await km.listKeys()).toEqual([]);
    });

    it('rejects unknown key types with TypeError', async () => {
      const { km } = await fresh();
      for (const t of ['ec-p521', 'RSA-2048', 'ed25519', '', undefined]) {
        await expect(km.generateKey('k', t as KeyType)).rejects.toThrow(/key type must be one of/);
      }
      expect(await km.listKeys()).toEqual([]);
    });

    it('refuses every operation after close, also through handles', async () => {
      const { km } = await fresh();
      const key: ManagedKey = await km.generateKey('k', 'ec-p256');
      await km.close();
      await km.close(); // idempotent
      await expectCode(km.getKey('k'), 'ERR_KEY_MANAGER_CLOSED');
      await expectCode(km.listKeys(), 'ERR_KEY_MANAGER_CLOSED');
      await expectCode(km.generateKey('k2', 'ec-p256'), 'ERR_KEY_MANAGER_CLOSED');
      await expectCode(km.deleteKey('k'), 'ERR_KEY_MANAGER_CLOSED');
      await expectCode(key.sign(DATA), 'ERR_KEY_MANAGER_CLOSED');
    });
  });
}
