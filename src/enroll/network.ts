/**
 * Registration of a device over the network with a one-time provisioning token
 * (`tpm-enroll -serverAddress … -provisioningToken …`, docs/tpm-enroll.md): calls the server's
 * `spire_edge.enrollment.v1.Enrollment/EnrollDevice` on its agent API port with the EK public
 * area and certificate; the server consumes the token and creates the node alias entry with
 * the alias rules of alias-plan.ts.
 *
 * The connection is TLS, the server authenticated as `spiffe://<td>/spire/server` by an
 * X509-SVID that chains to `bundle` (the server's trust bundle, `spire-server bundle show`);
 * no client certificate.
 *
 * Trusts: `bundle` for the server's identity; the server's answer. Errors: the call's
 * ConnectError (PermissionDenied for a refused token or EK certificate, FailedPrecondition for
 * an alias conflict or a server without a tpm attestor, Unavailable when unreachable),
 * `ERR_ENROLL_SERVER_UNTRUSTED` when the server's certificate does not verify against the
 * bundle or is not the trust domain's server (the token was not sent), and
 * `ERR_ENROLL_REGISTER_FAILED` for an answer that does not fit the request.
 */
import { type Client, ConnectError } from '@connectrpc/connect';
import { SpireEdgeError } from '../common/errors.js';
import { enrollmentv1 } from '../protocol/index.js';
import type { RegisterOutcome } from './alias-plan.js';
import type { RegisterResult } from './register.js';

/** The enrollment API call this module makes. */
export type EnrollmentClient = Pick<Client<typeof enrollmentv1.Enrollment>, 'enrollDevice'>;

/** Options of {@link enrollDevice}. */
export interface NetworkEnrollOptions {
  readonly client: EnrollmentClient;
  /** The provisioning token. */
  readonly token: string;
  /** The alias the operator expects (the server checks it against the token's). */
  readonly spiffeId: string;
  /** The EK's TPM2B_PUBLIC as read from the TPM. */
  readonly ekPublic: Uint8Array;
  /** The EK certificate as read from NV (padding allowed), when there is one. */
  readonly ekCertificate?: Uint8Array | undefined;
  /** The device's `pub_hash` as computed locally, compared with the server's. */
  readonly pubHash: string;
  /** Call deadline; default 30 s. */
  readonly timeoutMs?: number;
  /** `host:port`, for messages. */
  readonly server?: string;
}

/** Node's certificate verification failures and the SPIFFE ID check of the transport. */
const UNTRUSTED = /^(SELF_SIGNED_|DEPTH_ZERO_SELF_SIGNED|UNABLE_TO_|CERT_|ERR_TLS_SERVER_IDENTITY)/;

/** The TLS verification failure behind `err`, when that is what it is. */
function untrustedServer(err: unknown): Error | undefined {
  const seen = new Set<unknown>();
  let e = err;
  while (e instanceof Error && !seen.has(e)) {
    seen.add(e);
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && UNTRUSTED.test(code)) return e;
    e = e.cause;
  }
  return undefined;
}

const OUTCOMES: ReadonlyMap<enrollmentv1.EnrollOutcome, RegisterOutcome> = new Map([
  [enrollmentv1.EnrollOutcome.CREATED, 'created'],
  [enrollmentv1.EnrollOutcome.ALREADY_REGISTERED, 'already-registered'],
  [enrollmentv1.EnrollOutcome.REPLACED, 'replaced'],
]);

/**
 * Enrolls the device with the server; see the module comment.
 *
 * @throws ConnectError as the server or transport answered; SpireEdgeError
 *   `ERR_ENROLL_REGISTER_FAILED` when the answer names another alias, another `pub_hash`, or
 *   no outcome.
 */
export async function enrollDevice(o: NetworkEnrollOptions): Promise<RegisterResult> {
  let resp: Awaited<ReturnType<EnrollmentClient['enrollDevice']>>;
  try {
    resp = await o.client.enrollDevice(
      {
        token: o.token,
        spiffeId: o.spiffeId,
        ekPublic: o.ekPublic,
        ...(o.ekCertificate === undefined ? {} : { ekCert: o.ekCertificate }),
      },
      { timeoutMs: o.timeoutMs ?? 30_000 },
    );
  } catch (err) {
    const tls = err instanceof ConnectError ? untrustedServer(err) : undefined;
    if (tls === undefined) throw err;
    throw new SpireEdgeError(
      'ERR_ENROLL_SERVER_UNTRUSTED',
      `the server${o.server === undefined ? '' : ` at ${o.server}`} is not trusted (check -trustBundle): ${tls.message}`,
      { cause: err },
    );
  }
  const outcome = OUTCOMES.get(resp.outcome);
  const mismatch =
    outcome === undefined
      ? `no outcome (${resp.outcome})`
      : resp.spiffeId !== o.spiffeId
        ? `alias ${resp.spiffeId}`
        : resp.pubHash !== o.pubHash
          ? `pub_hash ${resp.pubHash} (this device has ${o.pubHash})`
          : undefined;
  if (mismatch !== undefined) {
    throw new SpireEdgeError(
      'ERR_ENROLL_REGISTER_FAILED',
      `the server's enrollment answer does not match the request: ${mismatch}`,
    );
  }
  return {
    outcome: outcome!,
    entryId: resp.entryId,
    previousPubHashes: resp.previousPubHashes,
    otherAliases: resp.otherAliases,
  };
}

/** The default EnrollDevice client: TLS to `host:port`, the server checked against `bundle`. */
export async function connectEnrollmentClient(o: {
  readonly host: string;
  readonly port: number;
  readonly trustDomain: string;
  readonly bundle: readonly Uint8Array[];
}): Promise<{ client: EnrollmentClient; close(): void }> {
  const [{ createClient }, { createAgentApiTransport }] = await Promise.all([
    import('@connectrpc/connect'),
    import('../agent/attestation/server-transport.js'),
  ]);
  const transport = createAgentApiTransport({
    host: o.host,
    port: o.port,
    trustDomain: o.trustDomain,
    bundle: o.bundle,
  });
  return {
    client: createClient(enrollmentv1.Enrollment, transport),
    close: () => transport.close(),
  };
}
