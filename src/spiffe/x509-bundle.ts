/**
 * X.509 bundles (SPIFFE X509-SVID §6, SPIFFE Trust Domain and Bundle §4): the set of X.509
 * authorities (CA certificates) of one trust domain.
 *
 * Errors: `ERR_BUNDLE_INVALID`.
 */
import { readTlv, readWhole } from '../common/der.js';
import { SpireEdgeError } from '../common/errors.js';
import { decodePemOfType, encodePem, looksLikePem } from '../common/pem.js';
import type { X509BundleSource } from './bundle-source.js';
import { type TrustDomain, toTrustDomain } from './id.js';

export class X509Bundle implements X509BundleSource {
  readonly trustDomain: TrustDomain;
  readonly #authorities: Uint8Array[];

  constructor(trustDomain: TrustDomain | string, authorities: readonly Uint8Array[] = []) {
    this.trustDomain = toTrustDomain(trustDomain);
    this.#authorities = [];
    for (const a of authorities) this.addAuthority(a);
  }

  /** The DER certificates of the authorities, in insertion order. */
  get x509Authorities(): readonly Uint8Array[] {
    return this.#authorities;
  }

  /** Adds an authority unless an identical one is present. */
  addAuthority(der: Uint8Array): void {
    if (!this.hasAuthority(der)) this.#authorities.push(der);
  }

  removeAuthority(der: Uint8Array): void {
    const i = this.#authorities.findIndex((a) => bytesEqual(a, der));
    if (i >= 0) this.#authorities.splice(i, 1);
  }

  hasAuthority(der: Uint8Array): boolean {
    return this.#authorities.some((a) => bytesEqual(a, der));
  }

  getX509Authorities(td: TrustDomain): readonly Uint8Array[] | undefined {
    return td.name === this.trustDomain.name ? this.#authorities : undefined;
  }

  /** The authorities as concatenated PEM blocks. */
  marshalPem(): string {
    return this.#authorities.map((a) => encodePem('CERTIFICATE', a)).join('');
  }

  /** The authorities as concatenated DER (the Workload API `bundle` field form). */
  marshalDer(): Uint8Array {
    return Buffer.concat(this.#authorities);
  }

  equals(other: X509Bundle): boolean {
    return (
      this.trustDomain.equals(other.trustDomain) &&
      this.#authorities.length === other.#authorities.length &&
      this.#authorities.every((a, i) => bytesEqual(a, other.#authorities[i]!))
    );
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Parses an X.509 bundle from PEM text (or from concatenated DER certificates given as bytes).
 * Each block must be a CERTIFICATE that is well-formed DER; an empty bundle is allowed.
 *
 * @throws SpireEdgeError `ERR_BUNDLE_INVALID`
 */
export function parseX509Bundle(
  trustDomain: TrustDomain | string,
  data: string | Uint8Array,
): X509Bundle {
  const td = toTrustDomain(trustDomain);
  let ders: Uint8Array[];
  try {
    if (typeof data === 'string' || looksLikePem(data)) {
      const text = typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
      ders = decodePemOfType(text, 'CERTIFICATE', 'X.509 bundle');
      if (ders.length === 0 && text.trim() !== '') {
        throw new SpireEdgeError('ERR_BUNDLE_INVALID', 'X.509 bundle holds no PEM certificates');
      }
    } else {
      ders = splitDerCertificates(data);
    }
    for (const d of ders) readWhole(d, 'certificate');
  } catch (err) {
    if (err instanceof SpireEdgeError && err.code === 'ERR_BUNDLE_INVALID') throw err;
    throw new SpireEdgeError(
      'ERR_BUNDLE_INVALID',
      `cannot parse X.509 bundle for ${td.name}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return new X509Bundle(td, ders);
}

/** Splits concatenated DER certificates (the Workload API wire form). */
export function splitDerCertificates(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < data.length) {
    const t = readTlv(data, pos);
    out.push(data.subarray(pos, t.end));
    pos = t.end;
  }
  return out;
}
