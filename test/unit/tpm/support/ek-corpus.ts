/**
 * The corpus of real EK CA certificates (../shared/corpus/ek-roots) and EK leaf certificates
 * (../shared/corpus/ek-certs). Trust anchors are the certificates whose issuer is in none of
 * the files (self-signed roots, and "IFX TPM EK Root CA", whose VeriSign issuer no source
 * holds); every other CA certificate is an intermediate.
 */
import { readTlv } from '../../../../src/common/der.js';
import {
  formatName,
  isSelfIssued,
  type ParsedCertificate,
  parseCertificates,
} from '../../../../src/spiffe/x509-cert.js';
import { EkCaPool } from '../../../../src/tpm/index.js';
import { listCorpus, readCorpus } from '../../../support/corpus.js';

export interface CorpusCa {
  readonly file: string;
  readonly cert: ParsedCertificate;
}

const WS = new Set([0x0a, 0x0d, 0x20, 0x09]);

/** Every CA certificate of ek-roots/, with the file it came from. */
export function loadCorpusCas(): CorpusCa[] {
  const out: CorpusCa[] = [];
  for (const file of listCorpus('ek-roots')) {
    const bytes = readCorpus('ek-roots', file);
    const text = bytes.toString('latin1');
    let certs: ParsedCertificate[];
    if (text.includes('-----BEGIN ')) {
      certs = parseCertificates(text);
    } else {
      // DER files that end with a newline: drop whitespace after the last DER value only.
      let end = 0;
      while (end < bytes.length && !bytes.subarray(end).every((b) => WS.has(b))) {
        end = readTlv(bytes, end).end;
      }
      certs = parseCertificates(new Uint8Array(bytes.subarray(0, end)));
    }
    for (const cert of certs) out.push({ file, cert });
  }
  return out;
}

/** Splits the corpus CAs into anchors and intermediates (see the module comment). */
export function corpusPool(cas: readonly CorpusCa[] = loadCorpusCas()): {
  pool: EkCaPool;
  anchors: CorpusCa[];
  intermediates: CorpusCa[];
} {
  const subjects = new Set(cas.map((c) => formatName(c.cert.subjectDer)));
  const isAnchor = (c: CorpusCa): boolean =>
    isSelfIssued(c.cert) || !subjects.has(formatName(c.cert.issuerDer));
  const anchors = cas.filter(isAnchor);
  const intermediates = cas.filter((c) => !isAnchor(c));
  return {
    pool: EkCaPool.from({
      roots: anchors.map((a) => a.cert),
      intermediates: intermediates.map((i) => i.cert),
    }),
    anchors,
    intermediates,
  };
}

/** CN of a certificate's subject (or the whole name when it has none). */
export function cn(c: ParsedCertificate): string {
  const n = formatName(c.subjectDer);
  return /CN=([^,]+(?:, [^=,]+(?=,|$))*)/.exec(n)?.[1] ?? (n === '' ? '(empty)' : n);
}
