/**
 * The SPIFFE X509-SVID shape rules (X509-SVID.md §2, §3, §4.1, §4.3, §5.2), shared by the
 * SVID parser (which checks shape) and the verifier (which checks shape and trust). Each
 * rule returns the message naming it; the caller chooses the error code.
 */
import { parseSpiffeId, type SpiffeId } from '../id.js';
import type { ParsedCertificate } from '../x509-cert.js';

/** A broken rule: the message and, when a lower-level error explains it, that error. */
export interface RuleViolation {
  readonly message: string;
  readonly cause?: unknown;
}

/**
 * Checks the leaf rules and returns its SPIFFE ID: exactly one URI SAN (§2), a valid SPIFFE
 * ID with a non-root path (§3.1, §5.2), basicConstraints cA FALSE (§4.1), keyUsage present
 * with digitalSignature and without keyCertSign and cRLSign (§4.3, §5.2), no critical
 * extension this code does not process (RFC 5280 §4.2).
 */
export function checkLeaf(cert: ParsedCertificate): SpiffeId | RuleViolation {
  const uris = cert.extensions.subjectAltName?.uris ?? [];
  if (uris.length !== 1) {
    return { message: `leaf certificate must have exactly one URI SAN (found ${uris.length})` };
  }
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]!);
  } catch (err) {
    return {
      message: `leaf certificate URI SAN is not a valid SPIFFE ID: ${(err as Error).message}`,
      cause: err,
    };
  }
  if (id.path === '') return { message: 'leaf certificate SPIFFE ID must have a non-root path' };
  if (cert.extensions.basicConstraints?.ca === true) {
    return { message: 'leaf certificate cannot be a CA' };
  }
  const ku = cert.extensions.keyUsage;
  if (ku === undefined) return { message: 'leaf certificate must have the keyUsage extension' };
  if (!ku.digitalSignature) {
    return { message: 'leaf certificate must have the digitalSignature key usage' };
  }
  if (ku.keyCertSign) return { message: 'leaf certificate cannot have the keyCertSign key usage' };
  if (ku.cRLSign) return { message: 'leaf certificate cannot have the cRLSign key usage' };
  const unknown = unknownCriticalViolation(cert, 'leaf');
  if (unknown !== undefined) return unknown;
  return id;
}

/**
 * Checks a signing certificate (§3.2, §4.1, §4.3): basicConstraints cA TRUE, keyUsage
 * keyCertSign, and when it carries a SPIFFE ID URI SAN, that the ID has no path; plus no
 * unprocessed critical extension. `role` names the certificate in messages.
 */
export function checkSigning(cert: ParsedCertificate, role: string): RuleViolation | undefined {
  if (cert.extensions.basicConstraints?.ca !== true) {
    return { message: `${role} certificate must be a CA (basicConstraints cA TRUE)` };
  }
  if (cert.extensions.keyUsage?.keyCertSign !== true) {
    return { message: `${role} certificate must have the keyCertSign key usage` };
  }
  for (const uri of cert.extensions.subjectAltName?.uris ?? []) {
    if (uri.slice(0, 9).toLowerCase() !== 'spiffe://') continue;
    let id: SpiffeId;
    try {
      id = parseSpiffeId(uri);
    } catch (err) {
      return {
        message: `${role} certificate URI SAN is not a valid SPIFFE ID: ${(err as Error).message}`,
        cause: err,
      };
    }
    if (id.path !== '') return { message: `${role} certificate SPIFFE ID cannot have a path` };
  }
  return unknownCriticalViolation(cert, role);
}

function unknownCriticalViolation(
  cert: ParsedCertificate,
  role: string,
): RuleViolation | undefined {
  const oid = cert.extensions.unknownCritical[0];
  return oid === undefined
    ? undefined
    : { message: `${role} certificate has an unsupported critical extension ${oid}` };
}

/** True when `v` is a violation rather than a SPIFFE ID. */
export function isViolation(v: SpiffeId | RuleViolation): v is RuleViolation {
  return 'message' in v;
}
