/**
 * Fuzz targets for every parser of TPM bytes, shared by the bounded property tests
 * (test/unit/tpm/fuzz.test.ts) and the long-running fuzzer (bench/tpm-fuzz.ts).
 *
 * Each target says which coded errors its function may throw on untrusted input; anything
 * else (a TypeError, a RangeError from a DataView, a hang) is a bug. Parsers that succeed
 * must marshal back to exactly the bytes they read.
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { isSpireEdgeError } from '../../../../src/common/errors.js';
import {
  makeCredential,
  marshalTpm2bCreationData,
  marshalTpm2bEncryptedSecret,
  marshalTpm2bIdObject,
  marshalTpm2bPublic,
  marshalTpmlPcrSelection,
  marshalTpmsAttest,
  marshalTpmsCreationData,
  marshalTpmtPublic,
  marshalTpmtSignature,
  objectName,
  parseEkCertificate,
  parseTpm2bCreationData,
  parseTpm2bEncryptedSecret,
  parseTpm2bIdObject,
  parseTpm2bPublic,
  parseTpmlPcrSelection,
  parseTpmsAttest,
  parseTpmsCreationData,
  parseTpmtPublic,
  parseTpmtSignature,
  pcrSelection,
  verifyQuote,
} from '../../../../src/tpm/index.js';
import { listCorpus, readCorpus } from '../../../support/corpus.js';
import { makeCa, makeEkCert } from './ek-ca.js';
import { eventLogFuzzTargets } from './event-log-fuzz.js';
import { capturePcrs, loadGcpCapture } from './gcp-capture.js';
import { makeAk, makeEk, pcrMap, softQuote } from './soft-tpm.js';

/** One fuzz target. */
export interface FuzzTarget {
  readonly name: string;
  /** Valid inputs to mutate. */
  readonly seeds: readonly Uint8Array[];
  /** The error codes untrusted input may produce. */
  readonly codes: readonly string[];
  /** Runs the function; returns the re-marshalled bytes when it parsed, to check exactness. */
  run(bytes: Uint8Array): Uint8Array | undefined;
}

function codec<T>(
  name: string,
  seeds: Uint8Array[],
  parse: (b: Uint8Array) => T,
  marshal: (v: T) => Uint8Array,
): FuzzTarget {
  return { name, seeds, codes: ['ERR_TPM_PARSE'], run: (b) => marshal(parse(b)) };
}

/** Builds the targets (keys are generated once). */
export function fuzzTargets(): FuzzTarget[] {
  const gcp = loadGcpCapture();
  const eccAk = makeAk('ecc');
  const rsaAk = makeAk('rsa');
  const rsaEk = makeEk('rsa');
  const eccEk = makeEk('ecc');
  const nonce = randomBytes(16);
  const pcrs = pcrMap('sha256', { 0: new Uint8Array(32), 7: new Uint8Array(32).fill(7) });
  const q = softQuote(eccAk, { nonce, selection: [pcrSelection('sha256', [0, 7])], pcrs });

  const publics = [
    gcp.akPublic,
    marshalTpmtPublic(eccAk.public),
    marshalTpmtPublic(rsaEk.public),
    marshalTpmtPublic(eccEk.public),
  ];
  const attests = [gcp.quote, gcp.createAttestation, q.quoted];
  const sigs = [gcp.signature, gcp.createSignature, q.signature];
  const made = makeCredential({
    ekPublic: rsaEk.public,
    objectName: objectName(eccAk.public),
    credential: nonce,
  });
  const madeEcc = makeCredential({
    ekPublic: eccEk.public,
    objectName: objectName(rsaAk.public),
    credential: nonce,
  });

  const ca = makeCa('Fuzz CA', { kind: 'ec' });
  const ekCerts = [
    ...listCorpus('ek-certs')
      .filter((f) => f.endsWith('.der'))
      .map((f) => new Uint8Array(readCorpus('ek-certs', f))),
    makeEkCert(ca, createPublicKey(eccEk.privateKey)),
  ];

  const gcpPcrs = capturePcrs(gcp);
  const gcpAk = parseTpmtPublic(gcp.akPublic);

  return [
    codec('TPMT_PUBLIC', publics, parseTpmtPublic, marshalTpmtPublic),
    codec(
      'TPM2B_PUBLIC',
      publics.map((p) => marshalTpm2bPublic(parseTpmtPublic(p))),
      parseTpm2bPublic,
      marshalTpm2bPublic,
    ),
    codec('TPMS_ATTEST', attests, parseTpmsAttest, marshalTpmsAttest),
    codec('TPMT_SIGNATURE', sigs, parseTpmtSignature, marshalTpmtSignature),
    codec(
      'TPML_PCR_SELECTION',
      [marshalTpmlPcrSelection([pcrSelection('sha1', [0, 23]), pcrSelection('sha256', [7])])],
      parseTpmlPcrSelection,
      marshalTpmlPcrSelection,
    ),
    codec('TPMS_CREATION_DATA', [gcp.createData], parseTpmsCreationData, marshalTpmsCreationData),
    codec(
      'TPM2B_CREATION_DATA',
      [marshalTpm2bCreationData(parseTpmsCreationData(gcp.createData))],
      parseTpm2bCreationData,
      marshalTpm2bCreationData,
    ),
    codec(
      'TPM2B_ID_OBJECT',
      [made.idObject, madeEcc.idObject],
      parseTpm2bIdObject,
      marshalTpm2bIdObject,
    ),
    codec(
      'TPM2B_ENCRYPTED_SECRET',
      [made.encryptedSecret, madeEcc.encryptedSecret],
      parseTpm2bEncryptedSecret,
      marshalTpm2bEncryptedSecret,
    ),
    {
      name: 'EK certificate',
      seeds: ekCerts,
      codes: ['ERR_TPM_EK_CERT_INVALID'],
      run: (b) => {
        parseEkCertificate(b);
        return undefined;
      },
    },
    {
      name: 'verifyQuote (quote bytes)',
      seeds: [gcp.quote],
      codes: ['ERR_TPM_PARSE', 'ERR_TPM_QUOTE_INVALID'],
      run: (b) => {
        verifyQuote({
          akPublic: gcpAk,
          quoted: b,
          signature: gcp.signature,
          pcrs: gcpPcrs,
          expectedNonce: gcp.nonce,
          allowSha1: true,
        });
        return undefined;
      },
    },
    {
      name: 'verifyQuote (signature bytes)',
      seeds: [q.signature],
      codes: ['ERR_TPM_PARSE', 'ERR_TPM_QUOTE_INVALID'],
      run: (b) => {
        verifyQuote({
          akPublic: eccAk.public,
          quoted: q.quoted,
          signature: b,
          pcrs,
          expectedNonce: nonce,
        });
        return undefined;
      },
    },
    {
      name: 'verifyQuote (AK public bytes)',
      seeds: [marshalTpmtPublic(eccAk.public)],
      codes: ['ERR_TPM_PARSE', 'ERR_TPM_AK_INVALID', 'ERR_TPM_QUOTE_INVALID'],
      run: (b) => {
        verifyQuote({
          akPublic: b,
          quoted: q.quoted,
          signature: q.signature,
          pcrs,
          expectedNonce: nonce,
        });
        return undefined;
      },
    },
    {
      name: 'makeCredential (EK TPM2B_PUBLIC bytes)',
      seeds: [marshalTpm2bPublic(rsaEk.public), marshalTpm2bPublic(eccEk.public)].map(
        (b) => new Uint8Array(b),
      ),
      codes: ['ERR_TPM_PARSE', 'ERR_TPM_CREDENTIAL'],
      run: (b) => {
        makeCredential({
          ekPublic: parseTpm2bPublic(b),
          objectName: objectName(eccAk.public),
          credential: nonce,
        });
        return undefined;
      },
    },
    ...eventLogFuzzTargets(),
  ];
}

type Mutation =
  | { op: 'flip'; at: number; mask: number }
  | { op: 'set16'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; n: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    op: fc.constant('flip' as const),
    at: fc.nat(),
    mask: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({
    op: fc.constant('set16' as const),
    at: fc.nat(),
    value: fc.oneof(
      fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff),
      fc.nat({ max: 0xffff }),
    ),
  }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    at: fc.nat(),
    n: fc.integer({ min: 1, max: 8 }),
  }),
);

function apply(seed: Uint8Array, ms: readonly Mutation[]): Uint8Array {
  let b = new Uint8Array(seed);
  for (const m of ms) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    switch (m.op) {
      case 'flip':
        b[at]! ^= m.mask;
        break;
      case 'set16':
        b[at] = m.value >> 8;
        if (at + 1 < b.length) b[at + 1] = m.value & 0xff;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'insert':
        b = Uint8Array.of(...b.subarray(0, at), ...m.bytes, ...b.subarray(at));
        break;
      case 'delete':
        b = Uint8Array.of(...b.subarray(0, at), ...b.subarray(at + m.n));
        break;
    }
  }
  return b;
}

/** Inputs for a target: random bytes, or its seeds with a few mutations. */
export function inputsFor(t: FuzzTarget): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 700 }) },
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.constantFrom(...t.seeds), fc.array(mutation, { minLength: 1, maxLength: 4 }))
        .map(([seed, ms]) => apply(seed, ms)),
    },
  );
}

/**
 * The property: `t.run` either succeeds (and a parser re-marshals to the same bytes) or
 * throws a coded error from `t.codes`. Throws an Error describing the violation otherwise.
 */
export function checkOne(t: FuzzTarget, bytes: Uint8Array): void {
  let out: Uint8Array | undefined;
  try {
    out = t.run(bytes);
  } catch (e) {
    if (isSpireEdgeError(e) && t.codes.includes(e.code)) return;
    throw new Error(
      `${t.name}: unexpected ${(e as Error)?.constructor?.name} ${(e as { code?: string }).code ?? ''} ${(e as Error).message} on input ${Buffer.from(bytes).toString('hex')}`,
    );
  }
  if (out !== undefined && Buffer.compare(Buffer.from(out), Buffer.from(bytes)) !== 0) {
    throw new Error(
      `${t.name}: parsed but re-marshalled differently: ${Buffer.from(bytes).toString('hex')}`,
    );
  }
}
