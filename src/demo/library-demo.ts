/**
 * The library demo the quickstart runs until the server and agent land: a CA, an X509-SVID
 * minted from it and verified by the library and by `openssl verify`, and a JWT-SVID minted
 * and validated. Writes its files under `.quickstart/` (or the directory given as argv[2]).
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { encodePem } from '../common/pem.js';
import type { Signer } from '../common/signer.js';
import {
  BundleSet,
  JwtBundle,
  mintJwtSvid,
  mintX509CaCertificate,
  parseCertificate,
  validateJwtSvid,
  verifyX509Svid,
  X509Bundle,
  X509SvidMinter,
} from '../spiffe/index.js';

function memorySigner(): Signer & { privateKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    keyType: 'ec-p256',
    publicKey,
    publicKeySpki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    sign: async (data) =>
      new Uint8Array(sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })),
  };
}

export async function main(argv: string[]): Promise<number> {
  const dir = resolve(argv[0] ?? '.quickstart');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = new Date();
  const trustDomain = 'example.org';

  const ca = memorySigner();
  const caDer = await mintX509CaCertificate({
    trustDomain,
    subject: { country: ['US'], organization: ['SPIFFE'] },
    publicKey: ca.publicKey,
    notBefore: new Date(now.getTime() - 10_000),
    notAfter: new Date(now.getTime() + 24 * 3600_000),
    signer: ca,
  });

  const workload = memorySigner();
  const spiffeId = `spiffe://${trustDomain}/demo/workload`;
  const leafDer = await new X509SvidMinter({ issuerCertDer: caDer, signer: ca }).mint({
    spiffeId,
    publicKey: workload.publicKey,
    notBefore: new Date(now.getTime() - 10_000),
    notAfter: new Date(now.getTime() + 3600_000),
  });

  const bundle = new X509Bundle(trustDomain, [caDer]);
  const verified = verifyX509Svid([leafDer], bundle);
  const leaf = parseCertificate(leafDer);

  const bundlePath = join(dir, 'bundle.0.pem');
  const svidPath = join(dir, 'svid.0.pem');
  writeFileSync(bundlePath, bundle.marshalPem());
  writeFileSync(svidPath, encodePem('CERTIFICATE', leafDer));
  writeFileSync(join(dir, 'svid.0.key'), workload.privateKeyPem, { mode: 0o600 });
  let opensslResult: string;
  try {
    opensslResult = execFileSync('openssl', ['verify', '-CAfile', bundlePath, svidPath], {
      encoding: 'utf8',
    }).trim();
  } catch (err) {
    opensslResult = `openssl verify FAILED: ${(err as Error).message}`;
  }

  const jwtBundle = new JwtBundle(trustDomain);
  jwtBundle.addJwtAuthority('demo-key', ca.publicKey);
  const token = await mintJwtSvid({
    signer: ca,
    keyId: 'demo-key',
    spiffeId,
    audience: ['demo-audience'],
    expiresAt: new Date(now.getTime() + 300_000),
  });
  const jwt = await validateJwtSvid(token, new BundleSet([jwtBundle]), ['demo-audience']);

  const out = [
    `X509-SVID   : ${verified.id.toString()} (verified against the bundle by the library)`,
    `Expires at  : ${leaf.notAfter.toISOString()}`,
    `openssl     : ${opensslResult}`,
    `JWT-SVID    : ${jwt.id.toString()} for audience ${jwt.audience.join(',')}, expires ${jwt.expiresAt.toISOString()}`,
    `Files       : ${svidPath}, ${bundlePath}`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  return opensslResult.endsWith(': OK') ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`demo failed: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
