/**
 * `spire_edge.enrollment.v1.Enrollment/EnrollDevice` on the agent API port (ours, not
 * SPIRE's): a device presents a one-time provisioning token and its TPM endorsement key, and
 * the server binds the token's node alias to the EK — the node alias entry
 * `parent spiffe://<td>/spire/server, spiffeID <alias>, selector tpm:pub_hash:<hash>` that the
 * `tpm` NodeAttestor counts as "enrolled". docs/tpm-enroll.md, "Registering over the network".
 *
 * Order of checks (the first failure answers):
 * 1. the server has a `NodeAttestor "tpm"` — else FailedPrecondition "the server has no tpm
 *    node attestor" (the token is not touched);
 * 2. the caller's address has no debt of failed attempts (see "Rate limit");
 * 3. the request: `token` present, `ek_public` a TPM2B_PUBLIC with an RSA or ECC key
 *    (InvalidArgument), `spiffe_id` a SPIFFE ID when given;
 * 4. the EK certificate, when sent: parses under the TCG EK Credential Profile, certifies
 *    exactly that EK public area, and chains to the attestor's `ek_ca_path` when one is
 *    configured; none sent while `require_ek_cert = true` is refused (PermissionDenied);
 * 5. the token is consumed (atomically, single use, also across servers): unknown, used,
 *    expired or malformed → PermissionDenied {@link TOKEN_REFUSED_MESSAGE}, whatever the
 *    reason. From here on the token is spent, whatever the outcome;
 * 6. `spiffe_id`, when given, must equal the token's alias (PermissionDenied naming both);
 * 7. the alias rules of src/enroll/alias-plan.ts: created, already registered (idempotent),
 *    replaced (only when the token carries `replace`), or refused as a conflict
 *    (FailedPrecondition, naming the bound `pub_hash` and entry).
 *
 * Steps 3–4 come before the token so that a device with bad evidence does not spend the
 * operator's token; they need no secret and reveal only what a verifier of public EK
 * certificates would.
 *
 * Rate limit: failures (anything but an internal error) cost the caller's IP address one token
 * of a bucket of `failureBurst` (5) refilled at `failuresPerSecond` (1/s); a failing caller
 * first waits for its answer, then for its next attempt to be looked at, and gets
 * ResourceExhausted when that wait would exceed 10 s. Successes are free: a provisioning
 * station enrolling many devices from one address is not slowed.
 *
 * Concurrency: registrations of one alias are serialised in this process, so two devices
 * enrolling the same alias at once cannot both create an entry. Two servers sharing one
 * PostgreSQL do not share that lock (docs/tpm-enroll.md).
 *
 * Logged (info): alias, pub_hash, outcome, entry ID, the caller's address and the EK
 * certificate's manufacturer; refusals at warn with the reason. Never the token.
 *
 * What it trusts: the datastore; the EK CA pool it is given. It does not authenticate the
 * caller beyond the token (anyone holding a valid token may bind any EK to its alias: the
 * token is the operator's authorisation).
 */
import { create } from '@bufbuild/protobuf';
import { Code, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { describeError, isSpireEdgeError, SpireEdgeError } from '../../../common/errors.js';
import { grpcCodeFor, grpcPeer } from '../../../common/grpc.js';
import type { Logger } from '../../../common/log.js';
import {
  type AliasEntryView,
  otherAliasesOf,
  outcomeOf,
  planAliasBinding,
  pubHashSelector,
  type RegisterOutcome,
} from '../../../enroll/alias-plan.js';
import { enrollmentv1 } from '../../../protocol/index.js';
import { parseSpiffeId, type SpiffeId } from '../../../spiffe/id.js';
import {
  type EkCaPool,
  type EkCertificate,
  ekCertMatchesPublic,
  parseEkCertificate,
  parseTpm2bPublic,
  pubHash,
  type TpmtPublic,
} from '../../../tpm/index.js';
import type { ServerContext } from '../../context.js';
import type { RegistrationEntry } from '../../datastore/types.js';
import { KeyedRateLimiter } from '../agent/rate-limit.js';
import { fromDataStoreError } from '../convert.js';
import { PROVISIONING_TOKEN_PATTERN, TOKEN_REFUSED_MESSAGE } from './provisioning-token.js';

/** Error codes of the enrollment service (each maps to the gRPC status its suffix names). */
export type EnrollmentErrorCode =
  | 'ERR_ENROLL_INVALID_ARGUMENT'
  | 'ERR_ENROLL_PERMISSION_DENIED'
  | 'ERR_ENROLL_FAILED_PRECONDITION'
  | 'ERR_ENROLL_ALIAS_CONFLICT';

/** The server's `NodeAttestor "tpm"` settings the enrollment checks follow. */
export interface EnrollmentTpmSettings {
  /** `ek_ca_path`: EK certificates must chain to it when given. */
  readonly ekCaPool?: EkCaPool;
  /** `require_ek_cert`: refuse devices that send no EK certificate. */
  readonly requireEkCert: boolean;
  /** `allow_sha1`: accept SHA-1 signatures in the EK certificate chain. */
  readonly allowSha1?: boolean;
}

/** Options of {@link createEnrollmentService}. */
export interface EnrollmentServiceOptions {
  readonly context: ServerContext;
  /** The tpm attestor's settings; absent when the server has no `NodeAttestor "tpm"`. */
  readonly tpm?: EnrollmentTpmSettings;
  /** Failed attempts a caller address may make at once before waiting; default 5. */
  readonly failureBurst?: number;
  /** Failed attempts per second a caller address may sustain; default 1. */
  readonly failuresPerSecond?: number;
  /** Longest wait before ResourceExhausted; default 10 s. */
  readonly maxWaitMs?: number;
  /** No failure limit at all (tests, or a server behind a rate-limiting proxy). */
  readonly disableRateLimit?: boolean;
}

/** The Enrollment service implementation. */
export type EnrollmentService = ServiceImpl<typeof enrollmentv1.Enrollment>;

/** The fully-qualified procedures of the service (all open: no agent SVID needed). */
export const ENROLLMENT_PROCEDURES: readonly string[] = [
  `/${enrollmentv1.Enrollment.typeName}/EnrollDevice`,
];

const OUTCOME: Record<RegisterOutcome, enrollmentv1.EnrollOutcome> = {
  created: enrollmentv1.EnrollOutcome.CREATED,
  'already-registered': enrollmentv1.EnrollOutcome.ALREADY_REGISTERED,
  replaced: enrollmentv1.EnrollOutcome.REPLACED,
};

function enrollError(code: EnrollmentErrorCode, message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(code, message, cause === undefined ? {} : { cause });
}

const invalid = (field: string, reason: string, cause?: unknown) =>
  enrollError('ERR_ENROLL_INVALID_ARGUMENT', `invalid ${field}: ${reason}`, cause);
const denied = (message: string, cause?: unknown) =>
  enrollError('ERR_ENROLL_PERMISSION_DENIED', message, cause);

/** A FIFO lock per key (alias), dropped when idle. */
class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const tail = prev.then(() => mine);
    this.#tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/** The device evidence of a request, checked (steps 3–4). */
interface CheckedDevice {
  readonly ek: TpmtPublic;
  readonly hash: string;
  readonly ekCert: EkCertificate | undefined;
  readonly requested: SpiffeId | undefined;
}

/**
 * Builds the service; see the module comment. Mount it on the agent API listener as an open
 * service ({@link ENROLLMENT_PROCEDURES} need no agent SVID).
 */
export function createEnrollmentService(options: EnrollmentServiceOptions): EnrollmentService {
  if (options === null || typeof options !== 'object' || options.context === undefined) {
    throw new TypeError('createEnrollmentService needs options with a context');
  }
  const { context, tpm } = options;
  const ds = context.dataStore;
  const td = context.trustDomain;
  const serverId = `${td.idString()}/spire/server`;
  const log: Logger = context.log.with({ subsystem_name: 'enrollment_api' });
  const locks = new KeyedLock();
  const failures =
    options.disableRateLimit === true
      ? undefined
      : new KeyedRateLimiter({
          perSecond: options.failuresPerSecond ?? 1,
          burst: options.failureBurst ?? 5,
          clock: context.clock,
          maxWaitMs: options.maxWaitMs ?? 10_000,
          what: 'failed enrollment',
        });

  function checkDevice(req: enrollmentv1.EnrollDeviceRequest, t: EnrollmentTpmSettings) {
    if (req.token === '') throw invalid('token', 'a provisioning token is required');
    if (req.ekPublic.length === 0) {
      throw invalid('ek_public', 'the EK public area (TPM2B_PUBLIC) is required');
    }
    let ek: TpmtPublic;
    let hash: string;
    try {
      ek = parseTpm2bPublic(req.ekPublic);
      hash = pubHash(ek);
    } catch (err) {
      throw invalid('ek_public', `not an RSA or ECC TPM2B_PUBLIC: ${describeError(err)}`, err);
    }
    let requested: SpiffeId | undefined;
    if (req.spiffeId !== '') {
      try {
        requested = parseSpiffeId(req.spiffeId);
      } catch (err) {
        throw invalid('spiffe_id', describeError(err), err);
      }
    }
    let ekCert: EkCertificate | undefined;
    if (req.ekCert.length > 0) {
      try {
        ekCert = parseEkCertificate(req.ekCert);
      } catch (err) {
        throw denied(`EK certificate is not a TCG EK certificate: ${describeError(err)}`, err);
      }
      let same: boolean;
      try {
        same = ekCertMatchesPublic(ekCert, ek);
      } catch (err) {
        throw invalid('ek_public', `the EK has no usable key: ${describeError(err)}`, err);
      }
      if (!same) throw denied('EK certificate does not certify the EK public area');
      if (t.ekCaPool !== undefined) {
        try {
          t.ekCaPool.verify(ekCert, { now: context.clock.now(), allowSha1: t.allowSha1 === true });
        } catch (err) {
          throw denied(
            `EK certificate does not chain to a configured EK CA (ek_ca_path): ${describeError(err)}`,
            err,
          );
        }
      }
    } else if (t.requireEkCert) {
      throw denied('an EK certificate is required (require_ek_cert = true) and none was sent');
    }
    return { ek, hash, ekCert, requested } satisfies CheckedDevice;
  }

  async function consumeToken(token: string) {
    if (!PROVISIONING_TOKEN_PATTERN.test(token)) {
      throw denied(TOKEN_REFUSED_MESSAGE, new Error('malformed token'));
    }
    try {
      return await ds.consumeProvisioningToken(token, Math.floor(context.clock.nowMs() / 1000));
    } catch (err) {
      if (isSpireEdgeError(err, 'ERR_DATASTORE_NOT_FOUND'))
        throw denied(TOKEN_REFUSED_MESSAGE, err);
      throw fromDataStoreError(err, 'consume provisioning token');
    }
  }

  async function aliasEntries(alias: string): Promise<RegistrationEntry[]> {
    const out: RegistrationEntry[] = [];
    let pageToken: string | undefined;
    do {
      const page = await ds.listEntries({
        bySpiffeId: alias,
        byParentId: serverId,
        pagination: { pageSize: 500, ...(pageToken === undefined ? {} : { pageToken }) },
      });
      out.push(...page.items);
      pageToken = page.nextPageToken;
    } while (pageToken !== undefined && pageToken !== '');
    return out;
  }

  /** Other aliases bound to the device (best effort: [] when the lookup fails). */
  async function otherAliases(entryId: string, hash: string): Promise<string[]> {
    try {
      const page = await ds.listEntries({
        byParentId: serverId,
        bySelectors: { selectors: [pubHashSelector(hash)], match: 'superset' },
        pagination: { pageSize: 500 },
      });
      return otherAliasesOf(page.items, entryId, hash);
    } catch {
      return [];
    }
  }

  async function bind(alias: string, hash: string, replace: boolean) {
    return locks.run(alias, async () => {
      let existing: AliasEntryView[];
      try {
        existing = await aliasEntries(alias);
      } catch (err) {
        throw fromDataStoreError(err, 'list node alias entries');
      }
      const plan = planAliasBinding({
        spiffeId: alias,
        pubHash: hash,
        replace,
        existing,
        replaceHint:
          'generate a provisioning token with -replace to rebind it (this token is now used)',
      });
      let entryId: string;
      let previous: string[] = [];
      try {
        switch (plan.action) {
          case 'create':
            entryId = (
              await ds.createEntry({
                spiffeId: alias,
                parentId: serverId,
                selectors: plan.selectors,
              })
            ).id;
            break;
          case 'keep':
            entryId = plan.entryId;
            previous = [hash];
            break;
          case 'replace':
            entryId = (
              await ds.updateEntry({
                id: plan.entryId,
                set: { selectors: plan.selectors },
                mask: ['selectors'],
              })
            ).id;
            previous = plan.previousPubHashes;
            break;
        }
      } catch (err) {
        throw fromDataStoreError(err, 'write the node alias entry');
      }
      return { outcome: outcomeOf(plan), entryId, previous };
    });
  }

  async function enroll(
    req: enrollmentv1.EnrollDeviceRequest,
    peerAddress: string,
  ): Promise<enrollmentv1.EnrollDeviceResponse> {
    if (tpm === undefined) {
      throw enrollError('ERR_ENROLL_FAILED_PRECONDITION', 'the server has no tpm node attestor');
    }
    const device = checkDevice(req, tpm);
    const token = await consumeToken(req.token);
    const alias = token.spiffeId;
    if (device.requested !== undefined && device.requested.toString() !== alias) {
      throw denied(
        `the provisioning token is for ${alias}, not ${device.requested.toString()} (this token is now used)`,
      );
    }
    let aliasId: SpiffeId;
    try {
      aliasId = parseSpiffeId(alias);
    } catch (err) {
      throw fromDataStoreError(err, 'read the provisioning token');
    }
    if (!aliasId.memberOf(td)) {
      throw enrollError(
        'ERR_ENROLL_FAILED_PRECONDITION',
        `the provisioning token's alias ${alias} is not in trust domain ${td.name}`,
      );
    }
    const r = await bind(alias, device.hash, token.replace);
    const others = await otherAliases(r.entryId, device.hash);
    log.info('device enrolled', {
      spiffe_id: alias,
      pub_hash: device.hash,
      outcome: r.outcome,
      entry_id: r.entryId,
      peer_address: peerAddress,
      ek_certificate: device.ekCert !== undefined,
      ...(device.ekCert?.manufacturer === undefined
        ? {}
        : { ek_manufacturer: device.ekCert.manufacturer }),
      ...(r.previous.length > 0 && r.outcome === 'replaced'
        ? { previous_pub_hashes: r.previous.join(',') }
        : {}),
      ...(others.length > 0 ? { other_aliases: others.join(',') } : {}),
    });
    return create(enrollmentv1.EnrollDeviceResponseSchema, {
      spiffeId: alias,
      pubHash: device.hash,
      outcome: OUTCOME[r.outcome],
      entryId: r.entryId,
      previousPubHashes: r.previous,
      otherAliases: others,
    });
  }

  return {
    async enrollDevice(req, ctx: HandlerContext) {
      const peer = grpcPeer(ctx);
      const peerAddress = peer.kind === 'tls' ? (peer.remoteAddress ?? 'unknown') : 'local';
      await failures?.take(peerAddress, 0, ctx.signal);
      try {
        return await enroll(req, peerAddress);
      } catch (err) {
        const code = isSpireEdgeError(err) ? grpcCodeFor(err.code) : Code.Internal;
        if (code !== Code.Internal) {
          log.warn('device enrollment refused', {
            peer_address: peerAddress,
            error: describeError(err),
            ...(isSpireEdgeError(err) && err.cause instanceof Error
              ? { reason: describeError(err.cause) }
              : {}),
          });
          try {
            await failures?.take(peerAddress, 1, ctx.signal);
          } catch {
            // Already deep in debt: the next attempt waits (or is refused) at the gate.
          }
        }
        throw err;
      }
    },
  };
}
