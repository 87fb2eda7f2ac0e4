/**
 * The real Google Cloud Shielded VM capture (go-attestation's windows_gcp_shielded_vm.json,
 * see ../shared/corpus/PROVENANCE.md): a Windows PCP AK (RSA-2048, RSASSA-SHA1), its
 * creation data and certify-creation attestation, a quote over all 24 SHA-1 PCRs with an
 * empty nonce, and the PCR values. Byte fields are base64 in the JSON; PCR DigestAlg uses Go's
 * crypto.Hash numbering (3 = SHA-1).
 */
import type { PcrBank } from '../../../../src/tpm/index.js';
import { readCorpus } from '../../../support/corpus.js';

export interface GcpCapture {
  readonly akPublic: Uint8Array;
  readonly createData: Uint8Array;
  readonly createAttestation: Uint8Array;
  readonly createSignature: Uint8Array;
  readonly nonce: Uint8Array;
  readonly quote: Uint8Array;
  readonly signature: Uint8Array;
  /** PCR index → SHA-1 value, in the JSON's order. */
  readonly pcrList: ReadonlyArray<{ index: number; digest: Uint8Array }>;
}

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

export function loadGcpCapture(): GcpCapture {
  const j = JSON.parse(
    readCorpus('quotes', 'goattest__windows_gcp_shielded_vm.json').toString('utf8'),
  );
  for (const p of j.Log.PCRs) {
    if (p.DigestAlg !== 3) throw new Error(`unexpected PCR DigestAlg ${p.DigestAlg}`);
  }
  return {
    akPublic: b64(j.AK.Public),
    createData: b64(j.AK.CreateData),
    createAttestation: b64(j.AK.CreateAttestation),
    createSignature: b64(j.AK.CreateSignature),
    nonce: b64(j.Quote.Nonce),
    quote: b64(j.Quote.Quote),
    signature: b64(j.Quote.Signature),
    pcrList: j.Log.PCRs.map((p: { Index: number; Digest: string }) => ({
      index: p.Index,
      digest: b64(p.Digest),
    })),
  };
}

/** The capture's PCRs as verifyQuote takes them (copies, safe to mutate). */
export function capturePcrs(c: GcpCapture): Map<PcrBank, Map<number, Uint8Array>> {
  return new Map([['sha1', new Map(c.pcrList.map((p) => [p.index, new Uint8Array(p.digest)]))]]);
}
