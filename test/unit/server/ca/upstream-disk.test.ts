import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../../src/common/clock.js';
import { isSpireEdgeError } from '../../../../src/common/errors.js';
import { encodePem } from '../../../../src/common/pem.js';
import { seededRandom } from '../../../../src/common/random.js';
import { MemoryKeyManager } from '../../../../src/hsm/memory.js';
import { MemoryJournalStore } from '../../../../src/server/ca/journal.js';
import { type BundleChange, CaManager } from '../../../../src/server/ca/manager.js';
import type { UpstreamAuthority } from '../../../../src/server/ca/upstream-authority.js';
import { openDiskUpstreamAuthority } from '../../../../src/server/ca/upstream-disk.js';
import { parseTrustDomain } from '../../../../src/spiffe/id.js';
import { X509Bundle } from '../../../../src/spiffe/x509-bundle.js';
import { parseCertificate, splitCertificates } from '../../../../src/spiffe/x509-cert.js';
import { verifyX509Svid } from '../../../../src/spiffe/x509-verify.js';

const TD = 'example.org';
const H = 3600 * 1000;
let dir: string;
/** The test's "now": the real time (openssl stamps the upstream CAs with it), whole seconds. */
let NOW: number;

const CNF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_leaf]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
`;

function openssl(args: string[]): Buffer {
  try {
    return execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(
      `openssl ${args.join(' ')} failed (run scripts/setup.sh to install openssl): ${(err as { stderr?: Buffer }).stderr?.toString() ?? err}`,
    );
  }
}

/** A self-signed CA: `<name>.pem` and `<name>.key` in `dir`. */
function makeRoot(name: string, days = 30): void {
  openssl([
    'req',
    '-x509',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    String(days),
    '-config',
    'openssl.cnf',
    '-extensions',
    'v3_ca',
    '-subj',
    `/CN=${name}`,
  ]);
}

/** A certificate for a new key signed by `issuer`: `<name>.pem`, `<name>.key`. */
function makeSigned(name: string, issuer: string, ext: 'v3_ca' | 'v3_leaf', days = 20): void {
  openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-config',
    'openssl.cnf',
    '-subj',
    `/CN=${name}`,
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${issuer}.pem`,
    '-CAkey',
    `${issuer}.key`,
    '-set_serial',
    String(Math.floor(Math.random() * 1e9)),
    '-days',
    String(days),
    '-extfile',
    'openssl.cnf',
    '-extensions',
    ext,
    '-out',
    `${name}.pem`,
  ]);
}

const p = (f: string): string => join(dir, f);

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return isSpireEdgeError(err) ? err.code : String(err);
  }
}

/** `openssl verify` of an SVID chain against `rootFile`, at the test's time. */
async function opensslVerify(chain: Uint8Array[], rootFile: string): Promise<string> {
  const leaf = p(`leaf-${Math.random().toString(16).slice(2)}.pem`);
  const untrusted = `${leaf}.chain`;
  await writeFile(leaf, encodePem('CERTIFICATE', chain[0]!));
  const args = ['verify', '-attime', String(Math.floor(NOW / 1000) + 60), '-CAfile', p(rootFile)];
  if (chain.length > 1) {
    await writeFile(
      untrusted,
      chain
        .slice(1)
        .map((c) => encodePem('CERTIFICATE', c))
        .join(''),
    );
    args.push('-untrusted', untrusted);
  }
  args.push(leaf);
  return openssl(args).toString().trim();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'upstream-disk-'));
  await writeFile(join(dir, 'openssl.cnf'), CNF);
  makeRoot('root');
  makeSigned('intermediate', 'root', 'v3_ca');
  makeRoot('otherroot');
  makeSigned('leafcert', 'root', 'v3_leaf');
  // A SEC1 EC key (with its EC PARAMETERS block) and a PKCS#1 RSA key, as openssl writes them.
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-out', 'sec1.key']);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    'sec1.key',
    '-out',
    'sec1.pem',
    '-days',
    '5',
    '-config',
    'openssl.cnf',
    '-extensions',
    'v3_ca',
    '-subj',
    '/CN=sec1',
  ]);
  openssl(['genrsa', '-traditional', '-out', 'rsa.key', '2048']);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    'rsa.key',
    '-out',
    'rsa.pem',
    '-days',
    '5',
    '-config',
    'openssl.cnf',
    '-extensions',
    'v3_ca',
    '-subj',
    '/CN=rsa',
  ]);
  NOW = Math.floor(Date.now() / 1000) * 1000 + 1000;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('disk UpstreamAuthority', () => {
  const td = parseTrustDomain(TD);
  const request = (ttlSeconds = 24 * 3600) => ({
    publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
    ttlSeconds,
    trustDomain: td,
    subject: { country: ['US'], organization: ['SPIFFE'] },
  });

  it('signs with a self-signed upstream CA, which is the root (no bundle_file_path)', async () => {
    const clock = new ManualClock(NOW);
    const ua = await openDiskUpstreamAuthority({
      certFilePath: p('root.pem'),
      keyFilePath: p('root.key'),
      clock,
      random: seededRandom(1),
    });
    const req = request();
    const res = await ua.mintX509CaIntermediate(req);
    const root = splitCertificates(await readFile(p('root.pem'), 'utf8'))[0]!;
    expect(res.upstreamRoots).toEqual([root]);
    expect(res.certChain).toHaveLength(1);
    const ca = parseCertificate(res.certChain[0]!);
    expect(ca.extensions.basicConstraints?.ca).toBe(true);
    expect(ca.extensions.subjectAltName?.uris).toEqual([`spiffe://${TD}`]);
    expect(Buffer.compare(ca.spkiDer, req.publicKey.export({ type: 'spki', format: 'der' }))).toBe(
      0,
    );
    expect(Buffer.compare(ca.issuerDer, parseCertificate(root).subjectDer)).toBe(0);
    expect(ca.notBefore.getTime()).toBe(NOW - 10_000);
    expect(ca.notAfter.getTime()).toBe(NOW + 24 * H);
    await writeFile(p('ca-self.pem'), encodePem('CERTIFICATE', res.certChain[0]!));
    expect(openssl(['verify', '-CAfile', p('root.pem'), p('ca-self.pem')]).toString()).toContain(
      ': OK',
    );
  });

  it('caps the CA lifetime at the upstream certificate notAfter', async () => {
    const ua = await openDiskUpstreamAuthority({
      certFilePath: p('root.pem'),
      keyFilePath: p('root.key'),
      clock: new ManualClock(NOW),
    });
    const res = await ua.mintX509CaIntermediate(request(365 * 24 * 3600));
    const root = parseCertificate(splitCertificates(await readFile(p('root.pem'), 'utf8'))[0]!);
    expect(parseCertificate(res.certChain[0]!).notAfter.getTime()).toBe(root.notAfter.getTime());
  });

  it('joins an existing PKI: chain = [CA, upstream intermediate], roots from bundle_file_path', async () => {
    const ua = await openDiskUpstreamAuthority({
      certFilePath: p('intermediate.pem'),
      keyFilePath: p('intermediate.key'),
      bundleFilePath: p('root.pem'),
      clock: new ManualClock(NOW),
    });
    const res = await ua.mintX509CaIntermediate(request());
    const [int] = splitCertificates(await readFile(p('intermediate.pem'), 'utf8'));
    const [root] = splitCertificates(await readFile(p('root.pem'), 'utf8'));
    expect(res.certChain).toHaveLength(2);
    expect(res.certChain[1]).toEqual(int);
    expect(res.upstreamRoots).toEqual([root]);
    await writeFile(p('ca-int.pem'), encodePem('CERTIFICATE', res.certChain[0]!));
    expect(
      openssl([
        'verify',
        '-CAfile',
        p('root.pem'),
        '-untrusted',
        p('intermediate.pem'),
        p('ca-int.pem'),
      ]).toString(),
    ).toContain(': OK');
  });

  it('refuses unusable files with ERR_UPSTREAM_AUTHORITY_INVALID / _IO', async () => {
    const clock = new ManualClock(NOW);
    const open = (c: { cert: string; key: string; bundle?: string }) =>
      openDiskUpstreamAuthority({
        certFilePath: p(c.cert),
        keyFilePath: p(c.key),
        ...(c.bundle === undefined ? {} : { bundleFilePath: p(c.bundle) }),
        clock,
      });
    // Key of another CA.
    expect(await codeOf(open({ cert: 'root.pem', key: 'otherroot.key' }))).toBe(
      'ERR_UPSTREAM_AUTHORITY_INVALID',
    );
    // Not self-signed and no bundle.
    expect(await codeOf(open({ cert: 'intermediate.pem', key: 'intermediate.key' }))).toBe(
      'ERR_UPSTREAM_AUTHORITY_INVALID',
    );
    // Chains to another root.
    expect(
      await codeOf(
        open({ cert: 'intermediate.pem', key: 'intermediate.key', bundle: 'otherroot.pem' }),
      ),
    ).toBe('ERR_UPSTREAM_AUTHORITY_INVALID');
    // Not a CA.
    expect(
      await codeOf(open({ cert: 'leafcert.pem', key: 'leafcert.key', bundle: 'root.pem' })),
    ).toBe('ERR_UPSTREAM_AUTHORITY_INVALID');
    // Two keys in the key file.
    await writeFile(
      p('two.key'),
      (await readFile(p('root.key'), 'utf8')) + (await readFile(p('otherroot.key'), 'utf8')),
    );
    expect(await codeOf(open({ cert: 'root.pem', key: 'two.key' }))).toBe(
      'ERR_UPSTREAM_AUTHORITY_INVALID',
    );
    // Missing file.
    expect(await codeOf(open({ cert: 'missing.pem', key: 'root.key' }))).toBe(
      'ERR_UPSTREAM_AUTHORITY_IO',
    );
    // Expired upstream CA (the clock is past its notAfter).
    const late = new ManualClock(NOW + 40 * 24 * H);
    expect(
      await codeOf(
        openDiskUpstreamAuthority({
          certFilePath: p('root.pem'),
          keyFilePath: p('root.key'),
          clock: late,
        }),
      ),
    ).toBe('ERR_UPSTREAM_AUTHORITY_INVALID');
    await expect(
      openDiskUpstreamAuthority({ certFilePath: '', keyFilePath: p('root.key') }),
    ).rejects.toThrow(/cert_file_path is required/);
  });

  it('accepts SEC1 keys with EC PARAMETERS and PKCS#1 RSA keys', async () => {
    expect(await readFile(p('sec1.key'), 'utf8')).toContain('BEGIN EC PARAMETERS');
    const ec = await openDiskUpstreamAuthority({
      certFilePath: p('sec1.pem'),
      keyFilePath: p('sec1.key'),
      clock: new ManualClock(NOW),
    });
    expect((await ec.mintX509CaIntermediate(request())).certChain).toHaveLength(1);

    expect(await readFile(p('rsa.key'), 'utf8')).toContain('BEGIN RSA PRIVATE KEY');
    const rsa = await openDiskUpstreamAuthority({
      certFilePath: p('rsa.pem'),
      keyFilePath: p('rsa.key'),
      clock: new ManualClock(NOW),
    });
    const res = await rsa.mintX509CaIntermediate(request());
    await writeFile(p('ca-rsa.pem'), encodePem('CERTIFICATE', res.certChain[0]!));
    expect(openssl(['verify', '-CAfile', p('rsa.pem'), p('ca-rsa.pem')]).toString()).toContain(
      ': OK',
    );
  });

  it('re-reads the files on every mint and keeps the last good credentials when they break', async () => {
    await writeFile(p('live.pem'), await readFile(p('root.pem')));
    await writeFile(p('live.key'), await readFile(p('root.key')));
    const ua = await openDiskUpstreamAuthority({
      certFilePath: p('live.pem'),
      keyFilePath: p('live.key'),
      clock: new ManualClock(NOW),
    });
    const root = splitCertificates(await readFile(p('root.pem'), 'utf8'))[0]!;
    const other = splitCertificates(await readFile(p('otherroot.pem'), 'utf8'))[0]!;
    expect((await ua.mintX509CaIntermediate(request())).upstreamRoots).toEqual([root]);
    // Rotated on disk: picked up without a restart.
    await writeFile(p('live.pem'), await readFile(p('otherroot.pem')));
    await writeFile(p('live.key'), await readFile(p('otherroot.key')));
    expect((await ua.mintX509CaIntermediate(request())).upstreamRoots).toEqual([other]);
    // Broken on disk: the last good credentials still sign.
    await writeFile(p('live.pem'), 'garbage');
    expect((await ua.mintX509CaIntermediate(request())).upstreamRoots).toEqual([other]);
    await ua.close();
    expect(await codeOf(ua.mintX509CaIntermediate(request()))).toBe(
      'ERR_UPSTREAM_AUTHORITY_CLOSED',
    );
  });
});

describe('CA manager with an UpstreamAuthority', () => {
  async function managerWith(
    upstream: UpstreamAuthority,
    clock: ManualClock,
    changes: BundleChange[] = [],
  ) {
    return CaManager.start({
      trustDomain: TD,
      keyManager: new MemoryKeyManager(),
      journalStore: new MemoryJournalStore(),
      upstreamAuthority: upstream,
      clock,
      random: seededRandom(3),
      onBundleChange: (_b, c) => {
        changes.push(c);
      },
    });
  }

  it('publishes the upstream root, signs SVIDs whose chain verifies to it (verifyX509Svid and openssl)', async () => {
    const clock = new ManualClock(NOW);
    const ua = await openDiskUpstreamAuthority({
      certFilePath: p('intermediate.pem'),
      keyFilePath: p('intermediate.key'),
      bundleFilePath: p('root.pem'),
      clock,
    });
    const changes: BundleChange[] = [];
    const m = await managerWith(ua, clock, changes);
    try {
      const [root] = splitCertificates(await readFile(p('root.pem'), 'utf8'));
      const [int] = splitCertificates(await readFile(p('intermediate.pem'), 'utf8'));
      expect(m.bundle.x509Authorities.map((a) => a.certificate)).toEqual([root]);
      const ca = m.ca.getCurrentX509Ca()!;
      expect(ca.selfSigned).toBe(false);
      expect(ca.upstreamChain).toEqual([int]);

      const svid = await m.ca.signX509Svid({
        spiffeId: `spiffe://${TD}/w`,
        publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
      });
      expect(svid.certChain).toHaveLength(3); // leaf, our CA, the upstream intermediate
      expect(svid.certChain[1]).toEqual(ca.certificate);
      const res = verifyX509Svid(svid.certChain, new X509Bundle(TD, [root!]), { now: clock.now() });
      expect(res.id.toString()).toBe(`spiffe://${TD}/w`);
      expect(await opensslVerify(svid.certChain, 'root.pem')).toMatch(/: OK$/);

      // Rotation: B is signed by the same upstream; the bundle does not change.
      clock.set(NOW + 12 * H);
      await m.idle();
      expect(m.status().x509.next?.status).toBe('prepared');
      expect(m.bundle.x509Authorities).toHaveLength(1);
      // Only B's JWT key was added: the upstream root was already there.
      expect(changes.at(-1)!.addedX509).toEqual([]);
      expect(changes.at(-1)!.addedJwt).toHaveLength(1);
      clock.set(NOW + 20 * H);
      await m.idle();
      const b = await m.ca.signX509Svid({
        spiffeId: `spiffe://${TD}/w`,
        publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
      });
      expect(b.certChain[1]).not.toEqual(ca.certificate);
      expect(() =>
        verifyX509Svid(b.certChain, new X509Bundle(TD, [root!]), { now: clock.now() }),
      ).not.toThrow();
    } finally {
      await m.close();
    }
  });

  it('with a self-signed upstream, the SVID chain is [leaf, CA] and openssl verifies it', async () => {
    const clock = new ManualClock(NOW);
    const ua = await openDiskUpstreamAuthority({
      certFilePath: p('root.pem'),
      keyFilePath: p('root.key'),
      clock,
    });
    const m = await managerWith(ua, clock);
    try {
      const svid = await m.ca.signX509Svid({
        spiffeId: `spiffe://${TD}/w`,
        publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
      });
      expect(svid.certChain).toHaveLength(2);
      expect(await opensslVerify(svid.certChain, 'root.pem')).toMatch(/: OK$/);
    } finally {
      await m.close();
    }
  });

  it('fails with ERR_CA_UPSTREAM_FAILED / _INVALID when the upstream fails or answers wrongly', async () => {
    const clock = new ManualClock(NOW);
    const failing: UpstreamAuthority = {
      name: 'failing',
      mintX509CaIntermediate: async () => {
        throw new Error('upstream unreachable');
      },
      close: async () => {},
    };
    expect(await codeOf(managerWith(failing, clock))).toBe('ERR_CA_UPSTREAM_FAILED');

    const real = await openDiskUpstreamAuthority({
      certFilePath: p('root.pem'),
      keyFilePath: p('root.key'),
      clock,
    });
    const otherKey: UpstreamAuthority = {
      name: 'wrong-key',
      mintX509CaIntermediate: (req) =>
        real.mintX509CaIntermediate({
          ...req,
          publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey,
        }),
      close: async () => {},
    };
    expect(await codeOf(managerWith(otherKey, clock))).toBe('ERR_CA_UPSTREAM_INVALID');

    const wrongRoot: UpstreamAuthority = {
      name: 'wrong-root',
      mintX509CaIntermediate: async (req) => ({
        ...(await real.mintX509CaIntermediate(req)),
        upstreamRoots: splitCertificates(await readFile(p('otherroot.pem'), 'utf8')),
      }),
      close: async () => {},
    };
    expect(await codeOf(managerWith(wrongRoot, clock))).toBe('ERR_CA_UPSTREAM_INVALID');
  });
});
