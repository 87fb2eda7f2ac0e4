/**
 * JWT-SVIDs: mints/s beside raw ES256 signs/s, and validations/s beside raw ES256 verifies/s,
 * with the same P-256 key in the same run.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { compactVerify } from 'jose';
import type { Signer } from '../src/common/signer.js';
import { JwtBundle } from '../src/spiffe/jwt-bundle.js';
import { mintJwtSvid, validateJwtSvid } from '../src/spiffe/jwt-svid.js';
import { type Benchmark, measure, measureConcurrent, reportRatio } from './lib.js';

const bench: Benchmark = {
  title: 'JWT-SVID mint and validate, ES256 (P-256)',
  async run() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const p1363 = (data: Uint8Array): Uint8Array =>
      sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    const signer: Signer = {
      keyType: 'ec-p256',
      publicKey,
      publicKeySpki: publicKey.export({ format: 'der', type: 'spki' }),
      sign: async (data) => p1363(data),
      signSync: p1363,
    };
    const now = new Date();
    const mintArgs = {
      signer,
      keyId: 'bench-key-1',
      spiffeId: 'spiffe://example.org/ns/default/sa/reports',
      audience: ['spiffe://example.org/ns/default/sa/billing'],
      issuedAt: now,
      expiresAt: new Date(now.getTime() + 300_000),
    };
    const token = await mintJwtSvid(mintArgs);
    // The raw baselines sign and verify exactly the JWS signing input of a real token.
    const [h, p, s] = token.split('.');
    const input = Buffer.from(`${h}.${p}`);
    const sig = Buffer.from(s!, 'base64url');

    const rawSign = await measure('crypto.sign ES256 (KeyObject, ieee-p1363)', () =>
      sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' }),
    );
    const mints = await measure('mintJwtSvid ES256 (signSync)', () => mintJwtSvid(mintArgs));
    reportRatio('JWT-SVID mints/s vs raw ES256 signs/s', mints, rawSign);

    const bundle = new JwtBundle('example.org');
    bundle.addJwtAuthority('bench-key-1', publicKey);
    const audiences = mintArgs.audience;
    const rawVerify = await measure('crypto.verify ES256 (KeyObject, ieee-p1363)', () =>
      verify('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig),
    );
    const validations = await measure('validateJwtSvid ES256 (sequential)', () =>
      validateJwtSvid(token, bundle, audiences, { now }),
    );
    reportRatio('JWT-SVID validations/s vs raw ES256 verifies/s', validations, rawVerify);

    // Where the time goes: jose's WebCrypto verify alone, and with several in flight
    // (WebCrypto runs off the main thread, so concurrency can hide some of its latency).
    const joseOnly = await measure('jose compactVerify ES256 alone', () =>
      compactVerify(token, publicKey, { algorithms: ['ES256'] }),
    );
    reportRatio('jose compactVerify/s vs raw ES256 verifies/s', joseOnly, rawVerify);
    const concurrent = await measureConcurrent(
      'validateJwtSvid ES256 (16 in flight)',
      () => validateJwtSvid(token, bundle, audiences, { now }),
      { concurrency: 16 },
    );
    reportRatio('JWT-SVID validations/s, 16 in flight, vs raw verifies/s', concurrent, rawVerify);
  },
};

export default bench;
