/**
 * Interop with OpenSSL (an independent X.509 implementation): certificates minted by the
 * library verify with `openssl verify` and read as expected with `openssl x509 -text`;
 * certification requests made by `openssl req` are accepted by mintX509SvidFromCsr.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePem } from '../../src/common/pem.js';
import { parseCsr } from '../../src/spiffe/csr.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { parseCertificate } from '../../src/spiffe/x509-cert.js';
import {
  mintX509CaCertificate,
  mintX509SvidFromCsr,
  X509SvidMinter,
} from '../../src/spiffe/x509-mint.js';
import { verifyX509Svid } from '../../src/spiffe/x509-verify.js';
import { generateKey, memorySigner, type TestPki } from '../unit/spiffe/x509-support.js';

let dir: string;
let pki: TestPki;
const HOUR = 3600_000;

function openssl(...args: string[]): string {
  try {
    return execFileSync('openssl', args, {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; stdout?: string };
    if (e.code === 'ENOENT') {
      throw new Error('openssl is not installed: run scripts/setup.sh');
    }
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
}

function write(name: string, der: Uint8Array): string {
  writeFileSync(join(dir, name), encodePem('CERTIFICATE', der));
  return name;
}

const now = (): Date => new Date();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'spire-edge-x509-'));
  openssl('version');
  pki = await makePkiNow();
});

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** A root (P-384) and an intermediate (P-256, pathLen 0) valid now: openssl checks real time. */
async function makePkiNow(): Promise<TestPki> {
  const rootKey = generateKey('ec-p384');
  const rootSigner = memorySigner('ec-p384', rootKey);
  const t = now().getTime();
  const rootDer = await mintX509CaCertificate({
    trustDomain: 'example.org',
    subject: { country: ['US'], organization: ['SPIFFE'] },
    publicKey: rootKey.publicKey,
    notBefore: new Date(t - HOUR),
    notAfter: new Date(t + 24 * HOUR),
    signer: rootSigner,
  });
  const interKey = generateKey('ec-p256');
  const intermediateSigner = memorySigner('ec-p256', interKey);
  const intermediateDer = await mintX509CaCertificate({
    trustDomain: 'example.org',
    subject: { country: ['US'], organization: ['SPIFFE'], organizationalUnit: ['DOWNSTREAM-1'] },
    publicKey: interKey.publicKey,
    notBefore: new Date(t - HOUR),
    notAfter: new Date(t + 12 * HOUR),
    signer: rootSigner,
    issuerCertDer: rootDer,
    pathLenConstraint: 0,
  });
  const minter = new X509SvidMinter({ issuerCertDer: intermediateDer, signer: intermediateSigner });
  return { rootKey, rootDer, rootSigner, intermediateDer, intermediateSigner, minter };
}

describe('openssl accepts what the library mints', () => {
  it('verifies root → intermediate → leaf with openssl verify', async () => {
    const leaf = await pki.minter.mint({
      spiffeId: 'spiffe://example.org/ns/prod/sa/web',
      publicKey: generateKey('ec-p256').publicKey,
      notBefore: new Date(now().getTime() - 10_000),
      notAfter: new Date(now().getTime() + HOUR),
      dnsNames: ['web.example.org'],
    });
    write('root.pem', pki.rootDer);
    write('inter.pem', pki.intermediateDer);
    write('leaf.pem', leaf);
    const out = openssl('verify', '-CAfile', 'root.pem', '-untrusted', 'inter.pem', 'leaf.pem');
    expect(out.trim()).toBe('leaf.pem: OK');
    // And the chain with purposes a TLS stack applies.
    expect(
      openssl(
        'verify',
        '-purpose',
        'sslclient',
        '-CAfile',
        'root.pem',
        '-untrusted',
        'inter.pem',
        'leaf.pem',
      ).trim(),
    ).toBe('leaf.pem: OK');
    expect(
      openssl(
        'verify',
        '-purpose',
        'sslserver',
        '-CAfile',
        'root.pem',
        '-untrusted',
        'inter.pem',
        'leaf.pem',
      ).trim(),
    ).toBe('leaf.pem: OK');
  });

  it('shows the URI SAN, CA:FALSE and a critical keyUsage in openssl x509 -text', async () => {
    const leaf = await pki.minter.mint({
      spiffeId: 'spiffe://example.org/ns/db',
      publicKey: generateKey('rsa-2048').spki,
      notBefore: new Date(now().getTime() - 10_000),
      notAfter: new Date(now().getTime() + HOUR),
    });
    write('leaf2.pem', leaf);
    const text = openssl('x509', '-in', 'leaf2.pem', '-noout', '-text');
    expect(text).toContain('URI:spiffe://example.org/ns/db');
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(
      /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment, Key Agreement/,
    );
    expect(text).toMatch(
      /X509v3 Extended Key Usage:\s*\n\s+TLS Web Server Authentication, TLS Web Client Authentication/,
    );
    expect(text).toContain('Subject: C = US, O = SPIRE');
    const caText = openssl(
      'x509',
      '-in',
      write('inter2.pem', pki.intermediateDer),
      '-noout',
      '-text',
    );
    expect(caText).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(caText).toMatch(
      /X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/,
    );
    expect(caText).toContain('URI:spiffe://example.org');
    // openssl re-encodes it byte for byte: the DER is canonical.
    const der = execFileSync('openssl', ['x509', '-in', 'leaf2.pem', '-outform', 'DER'], {
      cwd: dir,
    });
    expect(Buffer.compare(der, leaf)).toBe(0);
  });
});

describe('the library accepts what openssl makes', () => {
  for (const [name, genArgs] of [
    ['P-256', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']],
    ['P-384', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']],
    ['RSA-2048', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']],
  ] as const) {
    it(`mints an X509-SVID from an openssl req CSR (${name} key)`, async () => {
      const keyFile = `key-${name}.pem`;
      const csrFile = `req-${name}.csr`;
      openssl('genpkey', ...genArgs, '-out', keyFile);
      openssl(
        'req',
        '-new',
        '-key',
        keyFile,
        '-subj',
        '/CN=requester/O=Example',
        '-addext',
        'subjectAltName=URI:spiffe://evil.example/admin',
        '-out',
        csrFile,
      );
      const csrPem = readFileSync(join(dir, csrFile), 'utf8');
      const csr = parseCsr(csrPem);
      expect(csr.extensions.subjectAltName?.uris).toEqual(['spiffe://evil.example/admin']);
      const der = await mintX509SvidFromCsr(pki.minter, csr.der, {
        spiffeId: 'spiffe://example.org/from-csr',
        notBefore: new Date(now().getTime() - 10_000),
        notAfter: new Date(now().getTime() + HOUR),
      });
      const cert = parseCertificate(der);
      expect(cert.extensions.subjectAltName?.uris).toEqual(['spiffe://example.org/from-csr']);
      // The certified key is openssl's key.
      const pub = openssl('pkey', '-in', keyFile, '-pubout', '-outform', 'PEM');
      const leafPub = openssl('x509', '-in', write(`leaf-${name}.pem`, der), '-noout', '-pubkey');
      expect(leafPub).toBe(pub);
      expect(
        openssl(
          'verify',
          '-CAfile',
          write('root.pem', pki.rootDer),
          '-untrusted',
          write('inter.pem', pki.intermediateDer),
          `leaf-${name}.pem`,
        ).trim(),
      ).toBe(`leaf-${name}.pem: OK`);
      expect(
        verifyX509Svid([der, pki.intermediateDer], new X509Bundle('example.org', [pki.rootDer])).id
          .path,
      ).toBe('/from-csr');
    });
  }

  it('rejects an openssl CSR whose signature was altered', () => {
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'k.pem');
    openssl('req', '-new', '-key', 'k.pem', '-subj', '/CN=x', '-outform', 'DER', '-out', 'r.der');
    const der = new Uint8Array(readFileSync(join(dir, 'r.der')));
    der[der.length - 3]! ^= 0x01;
    let code: string | undefined;
    try {
      parseCsr(der);
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).toBe('ERR_CSR_INVALID');
  });

  it('parses an openssl-made certificate chain', () => {
    openssl(
      'req',
      '-x509',
      '-new',
      '-key',
      'k.pem',
      '-subj',
      '/CN=openssl',
      '-days',
      '1',
      '-addext',
      'subjectAltName=URI:spiffe://example.org',
      '-out',
      'self.pem',
    );
    const c = parseCertificate(
      new Uint8Array(
        execFileSync('openssl', ['x509', '-in', 'self.pem', '-outform', 'DER'], { cwd: dir }),
      ),
    );
    expect(c.extensions.subjectAltName?.uris).toEqual(['spiffe://example.org']);
    expect(c.extensions.basicConstraints?.ca).toBe(true);
  });
});
