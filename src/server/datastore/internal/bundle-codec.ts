/**
 * The stored form of a bundle's content: JSON text with base64 DER, so an operator can read
 * it with `sqlite3`/`psql` and a backup is plain text. The sequence number lives in its own
 * column (compare-and-swap and listing do not parse the JSON).
 */
import { dsError } from '../errors.js';
import type { Bundle, JwtAuthority, X509Authority } from '../types.js';
import type { BundleContent } from '../validate.js';

interface StoredBundle {
  v: 1;
  x509: Array<{ der: string; notAfter: number; tainted: boolean }>;
  jwt: Array<{ kid: string; key: string; notAfter: number; tainted: boolean }>;
  refreshHint: number;
}

/** Encodes bundle content as stored JSON text. */
export function encodeBundleContent(c: BundleContent): string {
  const stored: StoredBundle = {
    v: 1,
    x509: c.x509Authorities.map((a) => ({
      der: Buffer.from(a.certificateDer).toString('base64'),
      notAfter: a.notAfter,
      tainted: a.tainted,
    })),
    jwt: c.jwtAuthorities.map((a) => ({
      kid: a.keyId,
      key: Buffer.from(a.publicKeyDer).toString('base64'),
      notAfter: a.notAfter,
      tainted: a.tainted,
    })),
    refreshHint: c.refreshHint,
  };
  return JSON.stringify(stored);
}

/** Decodes stored JSON text; a malformed row is reported as `ERR_DATASTORE_INTERNAL`. */
export function decodeBundleContent(text: unknown, trustDomain: string): BundleContent {
  try {
    const s = JSON.parse(String(text)) as StoredBundle;
    if (s.v !== 1 || !Array.isArray(s.x509) || !Array.isArray(s.jwt)) throw new Error('bad shape');
    const x509Authorities: X509Authority[] = s.x509.map((a) => ({
      certificateDer: new Uint8Array(Buffer.from(a.der, 'base64')),
      notAfter: Number(a.notAfter),
      tainted: a.tainted === true,
    }));
    const jwtAuthorities: JwtAuthority[] = s.jwt.map((a) => ({
      keyId: String(a.kid),
      publicKeyDer: new Uint8Array(Buffer.from(a.key, 'base64')),
      notAfter: Number(a.notAfter),
      tainted: a.tainted === true,
    }));
    return { x509Authorities, jwtAuthorities, refreshHint: Number(s.refreshHint) || 0 };
  } catch (err) {
    throw dsError('ERR_DATASTORE_INTERNAL', `stored bundle of ${trustDomain} is corrupt`, {
      cause: err,
    });
  }
}

/** Builds the public record. */
export function toBundle(trustDomain: string, c: BundleContent, sequenceNumber: number): Bundle {
  return {
    trustDomain,
    x509Authorities: c.x509Authorities,
    jwtAuthorities: c.jwtAuthorities,
    refreshHint: c.refreshHint,
    sequenceNumber,
  };
}
