import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { openDiskKeyManager, parseKeysFile } from '../../../src/hsm/disk.js';
import { runKeyManagerContract } from '../../contract/key-manager.contract.js';

runKeyManagerContract('disk', {
  persistent: true,
  newStore: async () => {
    const dir = await mkdtemp(join(tmpdir(), 'km-disk-'));
    const keysPath = join(dir, 'keys.json');
    return {
      open: () => openDiskKeyManager({ keysPath }),
      dispose: () => rm(dir, { recursive: true, force: true }),
    };
  },
});

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return isSpireEdgeError(err) ? err.code : String(err);
  }
}

const pkcs8 = (k: ReturnType<typeof generateKeyPairSync>['privateKey']): string =>
  k.export({ type: 'pkcs8', format: 'der' }).toString('base64');

describe('disk KeyManager file handling', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'km-disk-unit-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes SPIRE's keys-file format with mode 0600 and leaves no temporary file", async () => {
    const keysPath = join(dir, 'fmt', 'keys.json');
    const km = await openDiskKeyManager({ keysPath });
    const key = await km.generateKey('x509-CA-A', 'ec-p256');
    await km.close();
    const doc = JSON.parse(await readFile(keysPath, 'utf8')) as { keys: Record<string, string> };
    expect(Object.keys(doc.keys)).toEqual(['x509-CA-A']);
    const { createPrivateKey, createPublicKey } = await import('node:crypto');
    const priv = createPrivateKey({
      key: Buffer.from(doc.keys['x509-CA-A']!, 'base64'),
      format: 'der',
      type: 'pkcs8',
    });
    const spki = createPublicKey(priv).export({ type: 'spki', format: 'der' });
    expect(Buffer.compare(spki, key.publicKeySpki)).toBe(0);
    expect((await stat(keysPath)).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, 'fmt'))).toEqual(['keys.json']);
  });

  it('loads a keys file written by SPIRE (base64 PKCS#8 per id)', async () => {
    const keysPath = join(dir, 'spire.json');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(
      keysPath,
      JSON.stringify(
        { keys: { 'x509-CA-B': pkcs8(ec.privateKey), 'JWT-Signer-A': pkcs8(rsa.privateKey) } },
        null,
        '\t',
      ),
    );
    const km = await openDiskKeyManager({ keysPath });
    const keys = await km.listKeys();
    expect(keys.map((k) => [k.id, k.keyType])).toEqual([
      ['JWT-Signer-A', 'rsa-2048'],
      ['x509-CA-B', 'ec-p384'],
    ]);
    await km.close();
  });

  it('removes temporary files a crash left behind, keeping the keys file', async () => {
    const sub = join(dir, 'crash');
    const keysPath = join(sub, 'keys.json');
    const km = await openDiskKeyManager({ keysPath });
    await km.generateKey('a', 'ec-p256');
    await km.close();
    await writeFile(join(sub, 'keys.json.tmp-123-abcdef'), '{"keys": {"torn');
    await writeFile(join(sub, 'other.txt'), 'unrelated');
    const again = await openDiskKeyManager({ keysPath });
    expect((await again.listKeys()).map((k) => k.id)).toEqual(['a']);
    expect((await readdir(sub)).sort()).toEqual(['keys.json', 'other.txt']);
    await again.close();
  });

  const corruptCases: Array<[string, string]> = [
    ['empty file', ''],
    ['torn JSON', '{"keys": {"a": "MIG'],
    ['array at top level', '[]'],
    ['missing keys member', '{"other": {}}'],
    ['keys not an object', '{"keys": "abc"}'],
    ['key value not base64', '{"keys": {"a": "not base64!"}}'],
    ['key value not a string', '{"keys": {"a": 42}}'],
    ['key not PKCS#8', '{"keys": {"a": "AAAA"}}'],
    ['invalid key id', `{"keys": {"a/b": "AAAA"}}`],
  ];
  for (const [what, content] of corruptCases) {
    it(`refuses a corrupt keys file (${what}) with ERR_KEY_MANAGER_STORE_CORRUPT and leaves it untouched`, async () => {
      const keysPath = join(dir, `corrupt-${what.replace(/\W+/g, '-')}.json`);
      await writeFile(keysPath, content);
      expect(await codeOf(openDiskKeyManager({ keysPath }))).toBe('ERR_KEY_MANAGER_STORE_CORRUPT');
      expect(await readFile(keysPath, 'utf8')).toBe(content);
    });
  }

  it('refuses keys of unsupported types (Ed25519, P-521, RSA-3072) as corrupt, naming the id', async () => {
    for (const [id, priv] of [
      ['ed', generateKeyPairSync('ed25519').privateKey],
      ['p521', generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey],
      ['rsa3072', generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey],
    ] as const) {
      const keysPath = join(dir, `unsupported-${id}.json`);
      await writeFile(keysPath, JSON.stringify({ keys: { [id]: pkcs8(priv) } }));
      const err = await openDiskKeyManager({ keysPath }).catch((e: unknown) => e);
      expect(isSpireEdgeError(err, 'ERR_KEY_MANAGER_STORE_CORRUPT')).toBe(true);
      expect((err as Error).message).toContain(`key ${id} is not EC P-256/P-384 or RSA 2048/4096`);
    }
  });

  it('reports an unreadable keys file as ERR_KEY_MANAGER_STORE_IO', async () => {
    const keysPath = join(dir, 'is-a-dir');
    await (await import('node:fs/promises')).mkdir(keysPath);
    expect(await codeOf(openDiskKeyManager({ keysPath }))).toBe('ERR_KEY_MANAGER_STORE_IO');
  });

  it('keeps the previous state when a write fails (ERR_KEY_MANAGER_STORE_IO)', async () => {
    const sub = join(dir, 'failing');
    const keysPath = join(sub, 'keys.json');
    const km = await openDiskKeyManager({ keysPath });
    const a = await km.generateKey('a', 'ec-p256');
    // Replace the directory by a regular file: every later write must fail.
    await rm(sub, { recursive: true });
    await writeFile(sub, 'not a directory');
    expect(await codeOf(km.generateKey('b', 'ec-p256'))).toBe('ERR_KEY_MANAGER_STORE_IO');
    expect(await codeOf(km.generateKey('a', 'ec-p256'))).toBe('ERR_KEY_MANAGER_STORE_IO');
    expect(await codeOf(km.deleteKey('a'))).toBe('ERR_KEY_MANAGER_STORE_IO');
    // Nothing changed: the old key is still current and signs.
    expect((await km.listKeys()).map((k) => k.fingerprint)).toEqual([a.fingerprint]);
    expect((await a.sign(Buffer.from('x'))).length).toBe(64);
    await km.close();
    await rm(sub, { force: true });
  });

  it('rejects a missing keys_path with TypeError', async () => {
    await expect(openDiskKeyManager({ keysPath: '' })).rejects.toThrow(/keys_path/);
  });

  it('parses arbitrary bytes only into entries or ERR_KEY_MANAGER_STORE_CORRUPT', () => {
    const arbJson = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc
        .jsonValue({ maxDepth: 3 })
        .map((v) => new TextEncoder().encode(JSON.stringify({ keys: v }))),
      fc
        .dictionary(fc.string({ maxLength: 10 }), fc.base64String({ maxLength: 40 }))
        .map((keys) => new TextEncoder().encode(JSON.stringify({ keys }))),
    );
    fc.assert(
      fc.property(arbJson, (bytes) => {
        try {
          const entries = parseKeysFile('/fuzz', bytes);
          expect(Array.isArray(entries)).toBe(true);
        } catch (err) {
          expect(isSpireEdgeError(err, 'ERR_KEY_MANAGER_STORE_CORRUPT')).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
