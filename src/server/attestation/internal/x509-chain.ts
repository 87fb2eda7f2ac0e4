/**
 * RFC 5280 path building for node-attestation evidence (x509pop): from a leaf, through the
 * certificates the agent presented, to one of the operator's trust anchors. Returns every
 * chain that verifies (SPIRE derives `ca:fingerprint` selectors from all of them, as Go's
 * `x509.Certificate.Verify` returns all).
 *
 * Checks per chain: every certificate (anchor included) valid at `now`; each issuer's
 * subject equals the child's issuer byte for byte and its key verifies the child's
 * signature; non-anchor issuers are CAs (basicConstraints cA) with keyCertSign when they
 * carry keyUsage, and respect pathLenConstraint; no certificate but the anchor carries an
 * unprocessed critical extension. No extended-key-usage check (Go's `ExtKeyUsageAny`, as
 * SPIRE asks), no revocation, no name constraints (a critical one is refused as
 * unprocessed).
 */
import { SpireEdgeError } from '../../../common/errors.js';
import {
  certificatePublicKey,
  type ParsedCertificate,
  verifyCertificateSignature,
} from '../../../spiffe/x509-cert.js';

const MAX_CHAINS = 8;
const MAX_SIGNATURE_CHECKS = 64;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function validAt(c: ParsedCertificate, now: Date): boolean {
  const t = now.getTime();
  return t >= c.notBefore.getTime() && t <= c.notAfter.getTime();
}

/**
 * Every chain `[leaf, …, anchor]` that verifies.
 *
 * @throws SpireEdgeError `ERR_X509_CHAIN_INVALID` naming the first reason found when none
 *   verifies.
 */
export function verifyChainToAnchors(
  leaf: ParsedCertificate,
  intermediates: readonly ParsedCertificate[],
  anchors: readonly ParsedCertificate[],
  now: Date,
  maxDepth: number,
): ParsedCertificate[][] {
  const fail = (m: string) => new SpireEdgeError('ERR_X509_CHAIN_INVALID', m);
  if (!validAt(leaf, now)) {
    throw fail(
      `leaf certificate has expired or is not yet valid (valid from ${leaf.notBefore.toISOString()} to ${leaf.notAfter.toISOString()})`,
    );
  }
  if (leaf.extensions.unknownCritical.length > 0) {
    throw fail(
      `leaf certificate has unhandled critical extension ${leaf.extensions.unknownCritical[0]}`,
    );
  }
  // The leaf itself is an anchor: a chain of one (Go accepts it too).
  if (anchors.some((a) => sameBytes(a.der, leaf.der))) return [[leaf]];

  const chains: ParsedCertificate[][] = [];
  let checks = 0;
  let reason = 'certificate signed by unknown authority';
  const signedBy = (child: ParsedCertificate, issuer: ParsedCertificate): boolean => {
    if (!sameBytes(child.issuerDer, issuer.subjectDer)) return false;
    if (++checks > MAX_SIGNATURE_CHECKS) return false;
    try {
      return verifyCertificateSignature(child, certificatePublicKey(issuer));
    } catch (err) {
      reason = (err as Error).message;
      return false;
    }
  };

  const extend = (path: ParsedCertificate[]): void => {
    if (chains.length >= MAX_CHAINS) return;
    const tip = path[path.length - 1]!;
    for (const anchor of anchors) {
      if (!signedBy(tip, anchor)) continue;
      if (!validAt(anchor, now)) {
        reason = 'trust anchor certificate has expired or is not yet valid';
        continue;
      }
      chains.push([...path, anchor]);
    }
    if (path.length >= maxDepth) return;
    for (const ca of intermediates) {
      if (path.some((p) => sameBytes(p.der, ca.der))) continue;
      if (anchors.some((a) => sameBytes(a.der, ca.der))) continue;
      if (!signedBy(tip, ca)) continue;
      const bc = ca.extensions.basicConstraints;
      if (bc?.ca !== true) {
        reason = 'intermediate certificate is not a CA';
        continue;
      }
      if (ca.extensions.keyUsage !== undefined && !ca.extensions.keyUsage.keyCertSign) {
        reason = 'intermediate certificate keyUsage lacks keyCertSign';
        continue;
      }
      // pathLen counts the intermediates below this one (the leaf excluded).
      if (bc.pathLen !== undefined && path.length - 1 > bc.pathLen) {
        reason = 'intermediate certificate pathLenConstraint exceeded';
        continue;
      }
      if (ca.extensions.unknownCritical.length > 0) {
        reason = `intermediate certificate has unhandled critical extension ${ca.extensions.unknownCritical[0]}`;
        continue;
      }
      if (!validAt(ca, now)) {
        reason = 'intermediate certificate has expired or is not yet valid';
        continue;
      }
      extend([...path, ca]);
    }
  };
  extend([leaf]);
  if (chains.length === 0) throw fail(reason);
  return chains;
}
