/**
 * Checks an X509-SVID the server just issued to the agent (its own, or a workload's) before the
 * agent keeps it: the chain verifies against the agent's bundle at the agent's current time
 * (SPIFFE X509-SVID §5, `verifyX509Svid`), the SPIFFE ID is the one expected, and the leaf
 * certifies the key the agent generated for it. A server that answers anything else is not
 * trusted with it.
 *
 * Errors: `ERR_AGENT_ISSUED_SVID_INVALID`, naming the rule.
 */
import { describeError, SpireEdgeError } from '../../common/errors.js';
import type { TrustDomain } from '../../spiffe/id.js';
import { X509Bundle } from '../../spiffe/x509-bundle.js';
import { parseCertificate } from '../../spiffe/x509-cert.js';
import { verifyX509Svid } from '../../spiffe/x509-verify.js';
import { sameBytes } from './keys.js';

/** What {@link checkIssuedX509Svid} established. */
export interface IssuedX509Svid {
  readonly spiffeId: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

/** Options of {@link checkIssuedX509Svid}. */
export interface CheckIssuedX509SvidOptions {
  readonly trustDomain: TrustDomain;
  /** The bundle's X.509 authorities (DER). */
  readonly authorities: readonly Uint8Array[];
  /** SPKI DER of the key the agent generated for this SVID. */
  readonly spki: Uint8Array;
  /** The SPIFFE ID it must carry, or a predicate on it. */
  readonly expectedId: string | ((id: string) => boolean);
  readonly now: Date;
}

function invalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_ISSUED_SVID_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

/**
 * Verifies an issued X509-SVID chain (see the module docs).
 *
 * @throws SpireEdgeError `ERR_AGENT_ISSUED_SVID_INVALID`.
 */
export function checkIssuedX509Svid(
  chain: readonly Uint8Array[],
  options: CheckIssuedX509SvidOptions,
): IssuedX509Svid {
  if (chain.length === 0) throw invalid('the issued SVID has no certificate');
  let id: string;
  try {
    id = verifyX509Svid(chain, new X509Bundle(options.trustDomain, options.authorities), {
      now: options.now,
    }).id.toString();
  } catch (err) {
    throw invalid(`the issued SVID does not verify against the bundle: ${describeError(err)}`, err);
  }
  const ok =
    typeof options.expectedId === 'string' ? id === options.expectedId : options.expectedId(id);
  if (!ok) throw invalid(`the issued SVID has the unexpected SPIFFE ID ${id}`);
  const leaf = parseCertificate(chain[0]!);
  if (!sameBytes(leaf.spkiDer, options.spki)) {
    throw invalid(`the issued SVID for ${id} does not certify the key the agent generated`);
  }
  return {
    spiffeId: id,
    notBeforeMs: leaf.notBefore.getTime(),
    notAfterMs: leaf.notAfter.getTime(),
  };
}
