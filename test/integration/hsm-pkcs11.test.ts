/**
 * The pkcs11 KeyManager and UpstreamAuthority on a real SoftHSM2 token, checked with
 * independent tools: OpenSC's pkcs11-tool lists the objects and their attributes, OpenSSL
 * verifies the certificates the token keys signed.
 */
import { generateKeyPairSync, verify } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/common/pem.js';
import type { ManagedKey } from '../../src/hsm/key-manager.js';
import {
  ckaIdForLabel,
  openPkcs11KeyManager,
  type Pkcs11KeyManager,
  type Pkcs11KeyManagerConfig,
} from '../../src/hsm/pkcs11/key-manager.js';
import {
  openPkcs11UpstreamAuthority,
  provisionPkcs11UpstreamRoot,
} from '../../src/hsm/pkcs11/upstream-authority.js';
import { formatPkcs11Uri } from '../../src/hsm/pkcs11/uri.js';
import { parseSpiffeId } from '../../src/spiffe/id.js';
import { mintX509CaCertificate, X509SvidMinter } from '../../src/spiffe/x509-mint.js';
import { makeTempDir, removeTempDir, run } from '../harness/common.js';
import { type SoftHsmInstance, startSoftHsm } from '../harness/softhsm.js';

let hsm: SoftHsmInstance;
let dir: string;
let tokens = 0;
const open: Array<{ close(): Promise<void> }> = [];
const DATA = Buffer.from('signed on the token');
const TD = 'example.org';

beforeAll(async () => {
  hsm = await startSoftHsm({ label: 'main' });
  process.env['SOFTHSM2_CONF'] = hsm.confPath; // read at C_Initialize; this file's own process
  dir = await makeTempDir('hsm-pkcs11-openssl');
});

afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

afterAll(async () => {
  await hsm?.stop();
  if (dir !== undefined) await removeTempDir(dir);
});

/** A fresh token; returns its label. */
async function newToken(): Promise<string> {
  const label = `t${++tokens}`;
  await hsm.initToken(label);
  return label;
}

async function openKm(
  label: string,
  extra: Partial<Pkcs11KeyManagerConfig> = {},
): Promise<Pkcs11KeyManager> {
  const km = await openPkcs11KeyManager({
    modulePath: hsm.modulePath,
    tokenLabel: label,
    pin: hsm.pin,
    ...extra,
  });
  open.push(km);
  return km;
}

interface ListedObject {
  kind: string;
  label: string;
  id: string;
  usage: string[];
  access: string[];
  ecPoint?: string;
}

/** `pkcs11-tool --list-objects`, parsed into objects. */
async function listObjects(token: string, login = true): Promise<ListedObject[]> {
  const args = ['--token-label', token, '--list-objects'];
  if (login) args.push('--login', '--pin', hsm.pin);
  const { stdout } = await hsm.pkcs11Tool(args);
  const out: ListedObject[] = [];
  for (const block of stdout.split(/\n(?=\S)/)) {
    const head = block.split('\n')[0]!.trim();
    if (head === '') continue;
    const field = (name: string): string =>
      new RegExp(`^\\s+${name}:\\s*(.*)$`, 'm').exec(block)?.[1]?.trim() ?? '';
    const list = (name: string): string[] =>
      field(name)
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    const ecPoint = field('EC_POINT');
    out.push({
      kind: head.split(';')[0]!.trim(),
      label: field('label'),
      id: field('ID'),
      usage: list('Usage'),
      access: list('Access'),
      ...(ecPoint === '' ? {} : { ecPoint }),
    });
  }
  return out;
}

function verifies(key: ManagedKey, data: Uint8Array, sig: Uint8Array): boolean {
  const hash = key.keyType === 'ec-p384' ? 'sha384' : 'sha256';
  return key.keyType.startsWith('ec-')
    ? verify(hash, data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, sig)
    : verify(hash, data, key.publicKey, sig);
}

async function writePem(name: string, ders: Uint8Array[]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, ders.map((d) => encodePem('CERTIFICATE', d)).join(''));
  return path;
}

async function opensslVerify(
  root: Uint8Array,
  chain: Uint8Array[],
  leaf: Uint8Array,
  name: string,
): Promise<string> {
  const args = ['verify', '-CAfile', await writePem(`${name}-root.pem`, [root])];
  if (chain.length > 0) args.push('-untrusted', await writePem(`${name}-chain.pem`, chain));
  args.push(await writePem(`${name}-leaf.pem`, [leaf]));
  const res = await run('openssl', args, { allowFailure: true });
  return `${res.stdout}${res.stderr}`.trim();
}

function leafKey(): Uint8Array {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
}

async function selfSignedCa(key: ManagedKey, hours = 24): Promise<Uint8Array> {
  const now = Date.now();
  return mintX509CaCertificate({
    trustDomain: TD,
    subject: { country: ['US'], organization: ['SPIFFE'] },
    publicKey: key.publicKey,
    notBefore: new Date(now - 10_000),
    notAfter: new Date(now + hours * 3600_000),
    signer: key,
  });
}

async function svidFrom(
  caCert: Uint8Array,
  key: ManagedKey,
  path = '/workload',
): Promise<Uint8Array> {
  const now = Date.now();
  return new X509SvidMinter({ issuerCertDer: caCert, signer: key }).mint({
    spiffeId: parseSpiffeId(`spiffe://${TD}${path}`),
    publicKey: leafKey(),
    notBefore: new Date(now - 10_000),
    notAfter: new Date(now + 3600_000),
  });
}

describe('pkcs11 KeyManager on SoftHSM2', () => {
  it('generates keys on the token as private, sensitive, non-extractable, sign-only objects (pkcs11-tool)', async () => {
    const token = await newToken();
    const km = await openKm(token);
    await km.generateKey('x509-CA-A', 'ec-p256');
    await km.generateKey('JWT-Signer-A', 'ec-p384');
    await km.generateKey('x509-CA-B', 'rsa-2048');

    const objects = await listObjects(token);
    for (const id of ['x509-CA-A', 'JWT-Signer-A', 'x509-CA-B']) {
      const label = `spire-edge-${id}`;
      const mine = objects.filter((o) => o.label === label);
      expect(mine.map((o) => o.kind).sort(), label).toEqual([
        'Private Key Object',
        'Public Key Object',
      ]);
      const priv = mine.find((o) => o.kind === 'Private Key Object')!;
      expect(priv.usage, label).toEqual(['sign']);
      expect(priv.access, label).toEqual(
        expect.arrayContaining(['sensitive', 'always sensitive', 'never extractable', 'local']),
      );
      // The deterministic CKA_ID a restarted server looks for.
      expect(priv.id).toBe(ckaIdForLabel(label).toString('hex'));
      const pub = mine.find((o) => o.kind === 'Public Key Object')!;
      expect(pub.usage).toEqual(['verify']);
      expect(pub.id).toBe(priv.id);
    }
    // CKA_PRIVATE: without logging in, pkcs11-tool sees the public halves only.
    const anonymous = await listObjects(token, false);
    expect(anonymous.filter((o) => o.label.startsWith('spire-edge-')).map((o) => o.kind)).toEqual([
      'Public Key Object',
      'Public Key Object',
      'Public Key Object',
    ]);
  });

  it('signs CA certificates and X509-SVIDs that openssl verifies (P-256, P-384, RSA-2048)', async () => {
    const token = await newToken();
    const km = await openKm(token);
    for (const keyType of ['ec-p256', 'ec-p384', 'rsa-2048'] as const) {
      const key = await km.generateKey(`x509-CA-${keyType}`, keyType);
      const ca = await selfSignedCa(key);
      const svid = await svidFrom(ca, key);
      expect(await opensslVerify(ca, [], svid, keyType)).toMatch(/: OK$/);
      // A certificate signed by another key does not verify against this CA.
      const other = await km.generateKey(`other-${keyType}`, keyType);
      const forged = await svidFrom(await selfSignedCa(other), other);
      expect(await opensslVerify(ca, [], forged, `${keyType}-forged`)).not.toMatch(/: OK$/);
    }
  });

  it('finds the same keys by label after a restart and keeps signing with them', async () => {
    const token = await newToken();
    const km = await openKm(token);
    const ca = await km.generateKey('x509-CA-A', 'ec-p256');
    const jwt = await km.generateKey('JWT-Signer-A', 'rsa-2048');
    const caCert = await selfSignedCa(ca);
    const before = await listObjects(token);
    await km.close();

    const again = await openKm(token);
    const keys = await again.listKeys();
    expect(keys.map((k) => [k.id, k.keyType, k.fingerprint])).toEqual([
      ['JWT-Signer-A', 'rsa-2048', jwt.fingerprint],
      ['x509-CA-A', 'ec-p256', ca.fingerprint],
    ]);
    const reopened = (await again.getKey('x509-CA-A'))!;
    expect(verifies(ca, DATA, await reopened.sign(DATA))).toBe(true);
    // The CA certificate minted before the restart still signs SVIDs openssl accepts.
    expect(await opensslVerify(caCert, [], await svidFrom(caCert, reopened), 'restart')).toMatch(
      /: OK$/,
    );
    // Nothing was generated again: the token holds exactly the same objects.
    expect(await listObjects(token)).toEqual(before);
  });

  it('adds new key objects on rotation and removes the retired ones', async () => {
    const token = await newToken();
    const km = await openKm(token);
    const a = await km.generateKey('x509-CA-A', 'ec-p256');
    const labels = async () =>
      (await listObjects(token))
        .filter((o) => o.kind === 'Private Key Object')
        .map((o) => o.label)
        .sort();
    expect(await labels()).toEqual(['spire-edge-x509-CA-A']);

    const b = await km.generateKey('x509-CA-B', 'ec-p256'); // prepared next CA
    expect(await labels()).toEqual(['spire-edge-x509-CA-A', 'spire-edge-x509-CA-B']);
    expect(b.fingerprint).not.toBe(a.fingerprint);

    expect(await km.deleteKey('x509-CA-A')).toBe(true); // retired, out of the bundle
    expect(await labels()).toEqual(['spire-edge-x509-CA-B']);
    expect((await listObjects(token)).filter((o) => o.label === 'spire-edge-x509-CA-A')).toEqual(
      [],
    );

    // Re-using a slot id makes new objects; the replaced pair is gone.
    const pointOf = async (label: string) =>
      (await listObjects(token)).filter((o) => o.label === label && o.ecPoint !== undefined);
    const oldPoint = (await pointOf('spire-edge-x509-CA-B'))[0]!.ecPoint;
    const b2 = await km.generateKey('x509-CA-B', 'ec-p256');
    expect(b2.fingerprint).not.toBe(b.fingerprint);
    const now = await pointOf('spire-edge-x509-CA-B');
    expect(now).toHaveLength(1);
    expect(now[0]!.ecPoint).not.toBe(oldPoint);
    expect(await labels()).toEqual(['spire-edge-x509-CA-B']);
  });

  it('reports a key whose objects were destroyed as missing and never regenerates it', async () => {
    const token = await newToken();
    const km = await openKm(token, { signingMode: 'async' });
    const key = await km.generateKey('JWT-Signer-A', 'ec-p256');
    for (const type of ['privkey', 'pubkey']) {
      await hsm.pkcs11Tool([
        '--token-label',
        token,
        '--login',
        '--pin',
        hsm.pin,
        '--delete-object',
        '--type',
        type,
        '--label',
        'spire-edge-JWT-Signer-A',
      ]);
    }
    // The handle notices on its next signature (the object handle became invalid).
    const err = await key.sign(DATA).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ERR_KEY_MANAGER_KEY_NOT_FOUND');
    expect(await km.getKey('JWT-Signer-A')).toBeUndefined();
    expect(await km.listKeys()).toEqual([]);
    expect((await listObjects(token)).filter((o) => o.label.startsWith('spire-edge-'))).toEqual([]);
    expect((await km.health()).ok).toBe(true);
  });

  it('finishes an interrupted replacement when it opens', async () => {
    const token = await newToken();
    const km = await openKm(token);
    const live = await km.generateKey('x509-CA-A', 'ec-p256');
    await km.close();
    const keypairgen = (label: string) =>
      hsm.pkcs11Tool([
        '--token-label',
        token,
        '--login',
        '--pin',
        hsm.pin,
        '--keypairgen',
        '--key-type',
        'EC:prime256v1',
        '--label',
        label,
      ]);
    // A crash after generating the new pair: the old one is still live, the new one dies.
    await keypairgen('spire-edge-x509-CA-A#pending');
    // A crash after destroying the old pair: the new one is all there is, and is kept.
    await keypairgen('spire-edge-x509-CA-B#pending');

    const again = await openKm(token);
    expect((await again.getKey('x509-CA-A'))?.fingerprint).toBe(live.fingerprint);
    const b = (await again.getKey('x509-CA-B'))!;
    expect(b.keyType).toBe('ec-p256');
    expect(verifies(b, DATA, await b.sign(DATA))).toBe(true);
    const labels = (await listObjects(token)).map((o) => o.label).sort();
    expect(labels).toEqual([
      'spire-edge-x509-CA-A',
      'spire-edge-x509-CA-A',
      'spire-edge-x509-CA-B',
      'spire-edge-x509-CA-B',
    ]);
  });

  for (const signingMode of ['sync', 'async', 'worker'] as const) {
    it(`signs 300 requests concurrently on a 2-session pool (signing_mode ${signingMode})`, async () => {
      const token = await newToken();
      const km = await openKm(token, { sessionPoolSize: 2, signingMode });
      const keys = [await km.generateKey('a', 'ec-p256'), await km.generateKey('b', 'ec-p384')];
      const inputs = Array.from({ length: 300 }, (_, i) => Buffer.from(`request ${i}`));
      const sigs = await Promise.all(inputs.map((d, i) => keys[i % 2]!.sign(d)));
      sigs.forEach((s, i) => {
        expect(verifies(keys[i % 2]!, inputs[i]!, s)).toBe(true);
      });
      expect(km.signingMode.path).toBe(signingMode);
    });
  }

  it('signing_mode auto measures the token and batches on a signing thread when it is fast', async () => {
    const token = await newToken();
    // A generous threshold: SoftHSM answers in ~0.25 ms, but this machine may be loaded.
    const km = await openKm(token, { signingModeOptions: { fastMs: 20 } });
    expect(km.signingMode).toMatchObject({ mode: 'auto', path: 'async' });
    const key = await km.generateKey('k', 'ec-p256');
    for (let i = 0; i < 200 && !km.signingMode.reason.includes('median'); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(km.signingMode.path).toBe('worker');
    expect(km.signingMode.reason).toMatch(/median of 8\): batched on a signing thread/);
    const sigs = await Promise.all(Array.from({ length: 50 }, () => key.sign(DATA)));
    for (const s of sigs) expect(verifies(key, DATA, s)).toBe(true);
    // The handle of a deleted key stops signing on the thread too.
    await km.deleteKey('k');
    await expect(key.sign(DATA)).rejects.toMatchObject({ code: 'ERR_KEY_MANAGER_KEY_NOT_FOUND' });
  });

  it('opens from a single RFC 7512 URI, with the PIN from pin-source', async () => {
    const token = await newToken();
    const pinFile = join(dir, 'pin');
    await writeFile(pinFile, `${hsm.pin}\n`, { mode: 0o600 });
    const uri = formatPkcs11Uri({
      token,
      modulePath: hsm.modulePath,
      pinSource: pinFile,
      vendorPath: [],
      vendorQuery: [],
    });
    expect(uri).toMatch(/^pkcs11:token=t\d+\?pin-source=/);
    const km = await openPkcs11KeyManager({ uri });
    open.push(km);
    const key = await km.generateKey('k', 'ec-p256');
    expect(verifies(key, DATA, await key.sign(DATA))).toBe(true);
    expect(km.tokenDescription).toContain(`"${token}"`);
  });

  it('derives CKA_ID with key_id_length bytes (YubiHSM 2 object ids are 2 bytes)', async () => {
    const token = await newToken();
    const km = await openKm(token, { keyIdLength: 2 });
    await km.generateKey('x509-CA-A', 'ec-p256');
    const ids = (await listObjects(token)).map((o) => o.id);
    expect(ids).toEqual([
      ckaIdForLabel('spire-edge-x509-CA-A', 2).toString('hex'),
      ckaIdForLabel('spire-edge-x509-CA-A', 2).toString('hex'),
    ]);
    expect(ids[0]).toHaveLength(4);
    await km.close();
    // Found again by label whatever the id length.
    expect((await (await openKm(token)).getKey('x509-CA-A'))?.keyType).toBe('ec-p256');
  });

  it('refuses key types other than key_type when it is set', async () => {
    const token = await newToken();
    const km = await openKm(token, { keyType: 'ec-p384' });
    await expect(km.generateKey('k', 'ec-p256')).rejects.toMatchObject({
      code: 'ERR_KEY_MANAGER_GENERATE_FAILED',
      message: expect.stringContaining('key_type ec-p384'),
    });
    expect((await km.generateKey('k', 'ec-p384')).keyType).toBe('ec-p384');
  });
});

describe('pkcs11 UpstreamAuthority on SoftHSM2', () => {
  it('signs intermediate CAs with a root that lives on the token; openssl verifies the chain', async () => {
    const token = await newToken();
    const root = await provisionPkcs11UpstreamRoot({
      modulePath: hsm.modulePath,
      tokenLabel: token,
      pin: hsm.pin,
      keyLabel: 'spire-root',
      keyType: 'ec-p384',
      trustDomain: TD,
      subject: { country: ['US'], organization: ['Example'], commonName: 'Example Root' },
      ttlSeconds: 30 * 86_400,
    });
    const objects = await listObjects(token);
    const rootKey = objects.find(
      (o) => o.label === 'spire-root' && o.kind === 'Private Key Object',
    );
    expect(rootKey?.access).toEqual(expect.arrayContaining(['sensitive', 'never extractable']));
    expect(rootKey?.usage).toEqual(['sign']);
    expect(
      objects.filter((o) => o.kind.startsWith('Certificate Object')).map((o) => o.label),
    ).toEqual(['spire-root']);
    // Provisioning twice would overwrite a root: refused.
    await expect(
      provisionPkcs11UpstreamRoot({
        modulePath: hsm.modulePath,
        tokenLabel: token,
        pin: hsm.pin,
        keyLabel: 'spire-root',
        keyType: 'ec-p256',
        trustDomain: TD,
        subject: {},
        ttlSeconds: 3600,
      }),
    ).rejects.toMatchObject({ code: 'ERR_UPSTREAM_AUTHORITY_INVALID' });

    // The server's CA key in the pkcs11 KeyManager (same token), its CA signed by the root.
    const km = await openKm(token);
    const caKey = await km.generateKey('x509-CA-A', 'ec-p256');
    const ua = await openPkcs11UpstreamAuthority({
      uri: `pkcs11:token=${token};object=spire-root;type=private?module-path=${hsm.modulePath}&pin-value=${hsm.pin}`,
    });
    open.push(ua);
    expect(Buffer.compare(ua.rootCertificate, root)).toBe(0);
    const minted = await ua.mintX509CaIntermediate({
      publicKey: caKey.publicKey,
      ttlSeconds: 3600,
      trustDomain: parseSpiffeId(`spiffe://${TD}/x`).trustDomain,
      subject: { country: ['US'], organization: ['SPIFFE'] },
    });
    expect(minted.certChain).toHaveLength(1);
    expect(minted.upstreamRoots.map((r) => Buffer.compare(r, root))).toEqual([0]);
    const svid = await svidFrom(minted.certChain[0]!, caKey);
    expect(await opensslVerify(root, minted.certChain, svid, 'upstream')).toMatch(/: OK$/);
    // Without the intermediate the SVID does not reach the root.
    expect(await opensslVerify(root, [], svid, 'upstream-no-chain')).not.toMatch(/: OK$/);
  });

  it('names a missing root key or certificate', async () => {
    const token = await newToken();
    await expect(
      openPkcs11UpstreamAuthority({
        modulePath: hsm.modulePath,
        tokenLabel: token,
        pin: hsm.pin,
        keyLabel: 'no-such-root',
      }),
    ).rejects.toMatchObject({
      code: 'ERR_UPSTREAM_AUTHORITY_INVALID',
      message: expect.stringContaining('no private key with label "no-such-root"'),
    });
    await hsm.pkcs11Tool([
      '--token-label',
      token,
      '--login',
      '--pin',
      hsm.pin,
      '--keypairgen',
      '--key-type',
      'EC:prime256v1',
      '--label',
      'keyonly',
      '--id',
      'a1b2',
    ]);
    await expect(
      openPkcs11UpstreamAuthority({
        modulePath: hsm.modulePath,
        tokenLabel: token,
        pin: hsm.pin,
        keyId: 'a1b2',
      }),
    ).rejects.toMatchObject({
      code: 'ERR_UPSTREAM_AUTHORITY_INVALID',
      message: expect.stringContaining('no certificate object with id a1b2'),
    });
  });
});
