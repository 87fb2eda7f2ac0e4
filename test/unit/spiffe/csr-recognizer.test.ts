/**
 * The minting path's CSR recognizer (recognizeEcdsaCsr, used by verifyCsrKeyAsync) skips the
 * parse tree for requests shaped as agents send them. It must never accept what the full
 * parser refuses, and must find the same key, signed bytes and signature when it accepts.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bitString, DER_NULL, oid, seq, set, smallInteger, tlv } from '../../../src/common/der.js';
import { nativeEcdsaVerifier } from '../../../src/server/ca/server-ca.js';
import {
  type EcdsaVerifyRequest,
  parseCsr,
  parseCsrAsync,
  recognizeEcdsaCsr,
  verifyCsrKeyAsync,
} from '../../../src/spiffe/csr.js';
import { encodeName } from '../../../src/spiffe/internal/x509-name.js';

const SIG_ALGS = {
  sha256: '1.2.840.10045.4.3.2',
  sha384: '1.2.840.10045.4.3.3',
  sha512: '1.2.840.10045.4.3.4',
  sha1: '1.2.840.10045.4.1',
} as const;

interface CsrShape {
  readonly subject?: Uint8Array;
  readonly attributes?: Uint8Array;
  readonly hash?: keyof typeof SIG_ALGS;
  /** Extra bytes inside the signature AlgorithmIdentifier (e.g. NULL parameters). */
  readonly sigAlgParams?: Uint8Array;
}

/** A PKCS#10 request built field by field (agents' own createCsr makes the plain shape). */
function makeCsr(privateKey: KeyObject, shape: CsrShape = {}): Uint8Array {
  const spki = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }));
  const info = seq(
    smallInteger(0),
    shape.subject ?? seq(),
    spki,
    shape.attributes ?? Uint8Array.of(0xa0, 0x00),
  );
  const hash = shape.hash ?? 'sha256';
  const alg =
    shape.sigAlgParams === undefined
      ? seq(oid(SIG_ALGS[hash]))
      : seq(oid(SIG_ALGS[hash]), shape.sigAlgParams);
  return seq(
    info,
    alg,
    bitString(new Uint8Array(sign(hash === 'sha1' ? 'sha1' : hash, info, privateKey))),
  );
}

const ec = (curve: 'P-256' | 'P-384' | 'P-521') =>
  generateKeyPairSync('ec', { namedCurve: curve }).privateKey;
const keys = { p256: ec('P-256'), p384: ec('P-384'), p521: ec('P-521') };
const spireSubject = encodeName({ country: ['US'], organization: ['SPIRE'] });
const extensionRequest = tlv(
  0xa0,
  seq(
    oid('1.2.840.113549.1.9.14'),
    set(seq(seq(oid('2.5.29.17'), tlv(0x04, seq(tlv(0x86, Buffer.from('spiffe://x/y'))))))),
  ),
);

/** The full parser's view: its error, or the request it would hand an injected verifier. */
async function fullView(
  der: Uint8Array,
): Promise<{ request?: EcdsaVerifyRequest; spki?: Uint8Array; error?: string }> {
  let request: EcdsaVerifyRequest | undefined;
  try {
    const csr = await parseCsrAsync(der, {
      verifyEcdsa: async (r) => {
        request = r;
        return true;
      },
    });
    return request === undefined ? { spki: csr.spkiDer } : { request, spki: csr.spkiDer };
  } catch (err) {
    return { error: (err as { code?: string }).code ?? String(err) };
  }
}

const plain = (r: EcdsaVerifyRequest) => ({
  curve: r.curve,
  hash: r.hash,
  point: Buffer.from(r.point).toString('hex'),
  data: Buffer.from(r.data).toString('hex'),
  signature: Buffer.from(r.signature).toString('hex'),
});

describe('recognizeEcdsaCsr', () => {
  const recognized: Array<[string, Uint8Array]> = [
    ['P-256 (agent shape)', makeCsr(keys.p256)],
    ['P-384 with SHA-384', makeCsr(keys.p384, { hash: 'sha384' })],
    ['P-521 with SHA-512', makeCsr(keys.p521, { hash: 'sha512' })],
    ['P-256 with SHA-384', makeCsr(keys.p256, { hash: 'sha384' })],
    ["SPIRE's subject C=US, O=SPIRE", makeCsr(keys.p256, { subject: spireSubject })],
  ];
  for (const [name, der] of recognized) {
    it(`recognizes ${name} as the full parser reads it`, async () => {
      const fast = recognizeEcdsaCsr(der);
      const full = await fullView(der);
      expect(fast).toBeDefined();
      expect(full.request).toBeDefined();
      expect(plain(fast!.request)).toEqual(plain(full.request!));
      expect(Buffer.from(fast!.spkiDer)).toEqual(Buffer.from(full.spki!));
    });
  }

  const others: Array<[string, Uint8Array]> = [
    ['attributes (an extensionRequest)', makeCsr(keys.p256, { attributes: extensionRequest })],
    ['NULL signature parameters', makeCsr(keys.p256, { sigAlgParams: DER_NULL })],
    ['ecdsa-with-SHA1', makeCsr(keys.p256, { hash: 'sha1' })],
    ['an RSA key', makeCsr(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey)],
    [
      'an Ed25519 key',
      (() => {
        const k = generateKeyPairSync('ed25519').privateKey;
        const spki = new Uint8Array(createPublicKey(k).export({ format: 'der', type: 'spki' }));
        const info = seq(smallInteger(0), seq(), spki, Uint8Array.of(0xa0, 0x00));
        return seq(info, seq(oid('1.3.101.112')), bitString(new Uint8Array(sign(null, info, k))));
      })(),
    ],
  ];
  for (const [name, der] of others) {
    it(`leaves requests with ${name} to the full parser`, () => {
      expect(recognizeEcdsaCsr(der)).toBeUndefined();
    });
  }

  it('never accepts what the full parser refuses, and agrees when it accepts (property)', async () => {
    const bases = [...recognized.map(([, d]) => d), ...others.map(([, d]) => d)];
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: bases.length - 1 }),
        fc.array(
          fc.oneof(
            fc.record({
              kind: fc.constant('set' as const),
              at: fc.nat(),
              value: fc.nat({ max: 255 }),
            }),
            fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
            fc.record({
              kind: fc.constant('insert' as const),
              at: fc.nat(),
              value: fc.nat({ max: 255 }),
            }),
          ),
          { minLength: 1, maxLength: 3 },
        ),
        async (which, edits) => {
          let der = Uint8Array.from(bases[which]!);
          for (const e of edits) {
            const at = e.at % (der.length + 1);
            if (e.kind === 'set' && at < der.length) der[at] = e.value;
            else if (e.kind === 'cut') der = der.subarray(0, at);
            else if (e.kind === 'insert') {
              der = Uint8Array.from([...der.subarray(0, at), e.value, ...der.subarray(at)]);
            }
          }
          const fast = recognizeEcdsaCsr(der);
          if (fast === undefined) return;
          const full = await fullView(der);
          expect(full.error).toBeUndefined();
          expect(full.request).toBeDefined();
          expect(plain(fast.request)).toEqual(plain(full.request!));
          expect(Buffer.from(fast.spkiDer)).toEqual(Buffer.from(full.spki!));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('is well-behaved on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        const r = recognizeEcdsaCsr(b);
        expect(r === undefined || r.request.curve.startsWith('P-')).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('verifyCsrKeyAsync', () => {
  const verifyEcdsa = nativeEcdsaVerifier();
  if (verifyEcdsa === undefined) {
    throw new Error('the native addon has no ecdsaVerifyBatch: run scripts/setup.sh');
  }

  /** parseCsr's verdict: ok, or the error's code and message. */
  const verdict = async (f: () => Promise<unknown> | unknown): Promise<string> => {
    try {
      await f();
      return 'ok';
    } catch (err) {
      return `${(err as { code?: string }).code}: ${(err as Error).message}`;
    }
  };

  it('accepts and refuses as parseCsr does, with the same errors, on mutated requests (property)', async () => {
    const bases = [
      makeCsr(keys.p256),
      makeCsr(keys.p384, { hash: 'sha384' }),
      makeCsr(keys.p256, { subject: spireSubject }),
      makeCsr(keys.p256, { attributes: extensionRequest }),
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: bases.length - 1 }),
        fc.option(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { nil: undefined }),
        async (which, edit) => {
          const der = Uint8Array.from(bases[which]!);
          if (edit !== undefined) der[edit[0] % der.length] = edit[1];
          const expected = await verdict(() => parseCsr(der));
          expect(await verdict(() => verifyCsrKeyAsync(der, { verifyEcdsa }))).toBe(expected);
          expect(await verdict(() => verifyCsrKeyAsync(der))).toBe(expected);
          if (expected === 'ok') {
            const k = await verifyCsrKeyAsync(der, { verifyEcdsa });
            expect(Buffer.from(k.spkiDer)).toEqual(Buffer.from(parseCsr(der).spkiDer));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('lets node:crypto decide when the injected verifier says no or fails', async () => {
    const der = makeCsr(keys.p256);
    const no = await verifyCsrKeyAsync(der, { verifyEcdsa: async () => false });
    expect(no.inspected).toBeUndefined();
    const failing = await verifyCsrKeyAsync(der, {
      verifyEcdsa: () => Promise.reject(new Error('injected')),
    });
    expect(failing.inspected).toBeUndefined();
    const yes = await verifyCsrKeyAsync(der, { verifyEcdsa });
    expect(yes.inspected?.kind).toBe('ec');
    const bad = Uint8Array.from(der);
    bad[bad.length - 5]! ^= 1; // the signature
    await expect(verifyCsrKeyAsync(bad, { verifyEcdsa: async () => true })).resolves.toBeDefined();
    await expect(verifyCsrKeyAsync(bad, { verifyEcdsa })).rejects.toMatchObject({
      code: 'ERR_CSR_INVALID',
      message:
        'invalid certification request: signature does not verify with the request public key',
    });
  });
});
