/**
 * X509-SVID verification (SPIFFE X509-SVID §5): the leaf rules of §5.2 plus RFC 5280 path
 * validation (§5.1) from the leaf, through the presented intermediates, to an authority of
 * the bundle of the leaf's own trust domain.
 *
 * Errors: `ERR_X509_INVALID` (a chain element that is not a certificate),
 * `ERR_SVID_VERIFICATION_FAILED` (a rule is broken; the message names it).
 */
import type { KeyObject } from 'node:crypto';
import { SpireEdgeError } from '../common/errors.js';
import type { X509BundleSource } from './bundle-source.js';
import type { SpiffeId } from './id.js';
import { checkLeaf, checkSigning, isViolation } from './internal/svid-rules.js';
import {
  certificatePublicKey,
  formatName,
  isSelfIssued,
  type ParsedCertificate,
  parseCertificate,
  verifyCertificateSignature,
} from './x509-cert.js';

/** The most certificates a presented chain may hold (leaf included). */
export const MAX_X509_CHAIN_LENGTH = 16;
/** The longest certification path built, leaf and root included. */
export const MAX_X509_PATH_LENGTH = 10;
/** Signature checks allowed while building paths, to bound work on hostile input. */
const MAX_SIGNATURE_CHECKS = 64;
/** Verified chains returned at most. */
const MAX_VERIFIED_CHAINS = 8;

/** Options of {@link verifyX509Svid}. */
export interface VerifyX509SvidOptions {
  /** The time to check validity periods at; the current time by default. */
  readonly now?: Date;
}

/** The result of a successful verification. */
export interface VerifiedX509Svid {
  /** The leaf's SPIFFE ID. */
  readonly id: SpiffeId;
  /** Each chain that verifies, as DER from the leaf to a bundle authority. */
  readonly verifiedChains: Uint8Array[][];
}

function failed(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_SVID_VERIFICATION_FAILED',
    message,
    cause === undefined ? {} : { cause },
  );
}

interface CacheEntry {
  readonly copy: Uint8Array;
  readonly cert: ParsedCertificate | undefined;
}

// Bundle authorities (and re-presented intermediates) are usually the same Uint8Array
// objects call after call: keep their parse and imported key, keyed by identity and
// re-checked byte for byte so a buffer mutated in place is never served stale.
const parsedCache = new WeakMap<Uint8Array, CacheEntry>();

function parseCached(der: Uint8Array): ParsedCertificate | undefined {
  const hit = parsedCache.get(der);
  if (hit !== undefined && hit.copy.length === der.length && Buffer.compare(hit.copy, der) === 0) {
    return hit.cert;
  }
  let cert: ParsedCertificate | undefined;
  try {
    const copy = new Uint8Array(der);
    cert = parseCertificate(copy);
    parsedCache.set(der, { copy, cert });
  } catch {
    parsedCache.set(der, { copy: new Uint8Array(der), cert: undefined });
  }
  return cert;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function validityViolation(cert: ParsedCertificate, role: string, now: Date): string | undefined {
  const t = now.getTime();
  if (t < cert.notBefore.getTime() || t > cert.notAfter.getTime()) {
    return (
      `${role} certificate has expired or is not yet valid ` +
      `(valid from ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()}, now ${now.toISOString()})`
    );
  }
  return undefined;
}

interface Node {
  readonly cert: ParsedCertificate;
  readonly isRoot: boolean;
}

interface Failure {
  readonly depth: number;
  readonly message: string;
  readonly cause?: unknown;
}

/**
 * Verifies an X509-SVID chain (DER certificates, leaf first, then intermediates in any
 * order) against the bundle of the leaf's trust domain.
 *
 * Checks, in order: the leaf shape (§5.2: exactly one URI SAN holding a SPIFFE ID with a
 * non-root path; basicConstraints cA FALSE; keyUsage with digitalSignature and without
 * keyCertSign and cRLSign; no unprocessed critical extension); the leaf's validity at
 * `now`; that a bundle exists for the ID's trust domain; then builds paths to one of its
 * authorities, where every signing certificate used (intermediates and the authority) must
 * be a CA with keyCertSign whose SPIFFE ID, if any, has no path, must respect
 * pathLenConstraint, carry no unprocessed critical extension and be valid at `now`, and
 * every signature must verify (ECDSA/RSA/RSA-PSS with SHA-2, Ed25519; never SHA-1).
 *
 * Does not check revocation, name constraints (a critical nameConstraints extension is
 * rejected as unprocessed) or extended key usage: callers authorise the returned ID.
 *
 * @throws SpireEdgeError `ERR_SVID_VERIFICATION_FAILED` naming the broken rule;
 *   `ERR_X509_INVALID` when a chain element is not a certificate.
 */
export function verifyX509Svid(
  chainDer: readonly Uint8Array[],
  bundles: X509BundleSource,
  options: VerifyX509SvidOptions = {},
): VerifiedX509Svid {
  if (!Array.isArray(chainDer) || !chainDer.every((c) => c instanceof Uint8Array)) {
    throw new TypeError('chainDer must be an array of DER certificates');
  }
  if (bundles === null || typeof bundles?.getX509Authorities !== 'function') {
    throw new TypeError('bundles must be an X509BundleSource');
  }
  const now = options.now ?? new Date();
  if (!(now instanceof Date) || Number.isNaN(now.getTime()))
    throw new TypeError('now must be a valid Date');
  if (chainDer.length === 0) throw failed('empty certificate chain');
  if (chainDer.length > MAX_X509_CHAIN_LENGTH) {
    throw failed(`certificate chain is longer than ${MAX_X509_CHAIN_LENGTH} certificates`);
  }

  const leaf = parseChainElement(chainDer[0]!, 0);
  const intermediates = chainDer.slice(1).map((d, i) => parseChainElement(d, i + 1));

  const id = checkLeaf(leaf);
  if (isViolation(id)) throw failed(id.message, id.cause);
  const leafValidity = validityViolation(leaf, 'leaf', now);
  if (leafValidity !== undefined) throw failed(leafValidity);

  const authorities = bundles.getX509Authorities(id.trustDomain);
  if (authorities === undefined)
    throw failed(`no X.509 bundle for trust domain ${id.trustDomain.name}`);
  const roots: ParsedCertificate[] = [];
  for (const a of authorities) {
    const c = parseCached(a);
    if (c !== undefined) roots.push(c);
  }
  // An intermediate identical to an authority is the authority (some senders include it).
  const inters = intermediates.filter((i) => !roots.some((r) => bytesEqual(r.der, i.der)));

  const chains: ParsedCertificate[][] = [];
  let failure: Failure | undefined;
  let budget = MAX_SIGNATURE_CHECKS;
  const fail = (depth: number, message: string, cause?: unknown): void => {
    if (failure === undefined || depth > failure.depth) {
      failure = cause === undefined ? { depth, message } : { depth, message, cause };
    }
  };

  const extend = (path: Node[]): void => {
    const child = path[path.length - 1]!.cert;
    const depth = path.length;
    // Issuers by name, authorities first; those whose key identifier contradicts the
    // child's AKI last (the signature decides, key identifiers only order the search).
    const aki = child.extensions.authorityKeyId;
    const akiMismatch = (c: ParsedCertificate): boolean => {
      const ski = c.extensions.subjectKeyId;
      return aki !== undefined && ski !== undefined && !bytesEqual(aki, ski);
    };
    const candidates: Node[] = [
      ...roots.map((cert) => ({ cert, isRoot: true })),
      ...inters.map((cert) => ({ cert, isRoot: false })),
    ]
      .filter((n) => bytesEqual(n.cert.subjectDer, child.issuerDer))
      .filter((n) => !path.some((p) => p.cert === n.cert))
      .sort((a, b) => Number(akiMismatch(a.cert)) - Number(akiMismatch(b.cert)));
    if (candidates.length === 0) fail(depth, 'certificate signed by unknown authority');
    for (const cand of candidates) {
      if (chains.length >= MAX_VERIFIED_CHAINS) return;
      const role = cand.isRoot ? 'root' : 'intermediate';

      if (budget-- <= 0) {
        fail(depth, 'certificate chain is too complex to verify');
        return;
      }
      let key: KeyObject;
      try {
        key = certificatePublicKey(cand.cert);
      } catch (err) {
        fail(depth, `${role} certificate public key is not usable`, err);
        continue;
      }
      let ok: boolean;
      try {
        ok = verifyCertificateSignature(child, key);
      } catch (err) {
        fail(
          depth,
          `certificate signed with an unsupported algorithm: ${(err as Error).message}`,
          err,
        );
        continue;
      }
      if (!ok) {
        fail(
          depth,
          `certificate signed by unknown authority (signature does not verify with the key of ${role} "${formatName(cand.cert.subjectDer)}")`,
        );
        continue;
      }
      const v = checkSigning(cand.cert, role);
      if (v !== undefined) {
        fail(depth, v.message, v.cause);
        continue;
      }
      const pathLen = cand.cert.extensions.basicConstraints?.pathLen;
      if (pathLen !== undefined) {
        // RFC 5280 §6.1.4 (l)-(m): non-self-issued intermediates between it and the leaf.
        let below = 0;
        for (let i = 1; i < path.length; i++) if (!isSelfIssued(path[i]!.cert)) below++;
        if (below > pathLen) {
          fail(depth, `${role} certificate path length constraint (${pathLen}) exceeded`);
          continue;
        }
      }
      const validity = validityViolation(cand.cert, role, now);
      if (validity !== undefined) {
        fail(depth, validity);
        continue;
      }
      const next = [...path, cand];
      if (cand.isRoot) {
        chains.push(next.map((n) => n.cert));
      } else if (next.length < MAX_X509_PATH_LENGTH) {
        extend(next);
      } else {
        fail(depth, `certification path is longer than ${MAX_X509_PATH_LENGTH} certificates`);
      }
    }
  };
  extend([{ cert: leaf, isRoot: false }]);

  if (chains.length === 0) {
    const f: Failure = failure ?? { depth: 0, message: 'certificate signed by unknown authority' };
    throw failed(f.message, f.cause);
  }
  return {
    id,
    verifiedChains: chains.map((c) => c.map((cert, i) => (i === 0 ? chainDer[0]! : cert.der))),
  };
}

function parseChainElement(der: Uint8Array, index: number): ParsedCertificate {
  // Intermediates are often re-presented as the same buffers: cache them like authorities.
  const cached = index > 0 ? parseCached(der) : undefined;
  if (cached !== undefined) return cached;
  try {
    return parseCertificate(der);
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_X509_INVALID',
      `certificate ${index} of the chain: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
