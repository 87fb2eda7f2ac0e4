/**
 * The `tpm` node attestor, server side: EK certificate (or enrolled EK) → AK bound to the EK
 * by credential activation → quote over a fresh nonce → PCR selectors. One AttestAgent
 * stream, one challenge round (wire format: tpm-wire.ts; design and threat model:
 * docs/tpm-attestation.md; ARCHITECTURE.md "TPM node attestation").
 *
 * 1. payload: EK certificate (or none), EK and AK public areas. The EK certificate must
 *    parse under the TCG EK Credential Profile, chain to `ekCaPool` and certify exactly the
 *    EK public area; without a certificate (`requireEkCert: false`) the EK's `pub_hash` must
 *    be enrolled. With `requireEnrollment`, it must be enrolled in every case. The AK must be
 *    a TPM-resident restricted signing key (checkAkAttributes).
 * 2. challenge: MakeCredential(EK, fresh 32-byte secret, AK name) and a fresh 32-byte nonce,
 *    both from the injected randomness, local to this call (so single-use and bound to this
 *    stream), plus the PCRs the quote must cover.
 * 3. response: the secret (compared in constant time) and one quote per bank whose
 *    extraData is SHA-256(secret ‖ nonce), signed by the AK, over a selection that covers the
 *    configured PCRs; the PCR digest is recomputed from the signed selection only.
 * 4. clockInfo (resetCount, restartCount, clock, safe) is recorded in the evidence and, when
 *    `lastClockInfo` gives the node's previous one, must not go backwards.
 *
 * Agent ID `spiffe://<td>/spire/agent/tpm/<pub_hash>` (hex SHA-256 of the EK public key's
 * SubjectPublicKeyInfo DER, spire-tpm-plugin's definition). Selectors (type `tpm`):
 * `pub_hash:<hex>`, `ek_manufacturer:<id>`, `ek_model:<…>`, `ek_version:<…>`,
 * `ek_issuer_cn:<CN>` (when there is a certificate), `pcr:<bank>:<index>:<hex>` for every
 * quoted PCR. Re-attestable: the server makes such agents re-attest (fresh quote) on every
 * renewal.
 *
 * Errors: `ERR_ATTESTATION_INVALID_ARGUMENT` (malformed payload, response or TPM
 * structures), `ERR_ATTESTATION_PERMISSION_DENIED` (evidence that does not verify; the TPM
 * error as `cause`), `ERR_TPM_ATTESTOR_CONFIG_INVALID` (bad options, at creation).
 */
import { timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import type { RandomSource } from '../../common/random.js';
import {
  type FirmwarePolicy,
  type PcrValueMap,
  policyMismatch,
  policyPcrSelection,
} from '../../policy/firmware-policy.js';
import { spiffeIdFromSegments, type TrustDomain, toTrustDomain } from '../../spiffe/id.js';
import { nameAttributes } from '../../spiffe/x509-cert.js';
import {
  type ClockInfo,
  checkAkAttributes,
  checkEventLogAgainstPcrs,
  type EkCaPool,
  type EkCertificate,
  ekCertMatchesPublic,
  eventLogSummary,
  makeCredential,
  objectName,
  type PcrBank,
  parseEkCertificate,
  parseEventLog,
  parseTpm2bPublic,
  parseTpmsAttest,
  pubHash,
  type TpmtPublic,
  tpmHashByAlg,
  verifyQuote,
} from '../../tpm/index.js';
import type { Selector } from '../datastore/types.js';
import {
  type AttestationErrorCode,
  type AttestationResult,
  attestationError,
  type ServerNodeAttestor,
} from './node-attestor.js';
import {
  decodeTpmPayload,
  decodeTpmResponse,
  encodeTpmChallenge,
  TPM_NONCE_LENGTH,
  type TpmPayload,
  type TpmResponse,
  type TpmWireBank,
  type TpmWirePcrSelection,
  tpmQuoteNonce,
} from './tpm-wire.js';

/** `AttestationData.type` and selector type of TPM attestation. */
export const TPM_TYPE = 'tpm';
/** Default PCR banks quoted. */
export const TPM_DEFAULT_PCR_BANKS: readonly TpmWireBank[] = ['sha256'];
/** Default PCR indices quoted (the firmware/boot PCRs of the PC Client profile). */
export const TPM_DEFAULT_PCR_INDICES: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7];

/** The clock state recorded with a node (from its last verified quote). */
export interface TpmClockRecord {
  readonly resetCount: number;
  readonly restartCount: number;
  /** TPM clock in ms, as a decimal string (a uint64). */
  readonly clock: string;
  readonly safe: boolean;
}

/** Options of {@link createTpmAttestor}. */
export interface TpmAttestorOptions {
  readonly trustDomain: TrustDomain | string;
  readonly clock: Clock;
  /** Secrets, nonces and MakeCredential randomness come from here. */
  readonly random: RandomSource;
  /** EK manufacturer roots and intermediates (`ek_ca_path`); required when `requireEkCert`. */
  readonly ekCaPool?: EkCaPool;
  /** `require_ek_cert` (default true): refuse agents without an EK certificate. */
  readonly requireEkCert?: boolean;
  /** `require_enrollment` (default false): the EK's pub_hash must be enrolled even with a certificate. */
  readonly requireEnrollment?: boolean;
  /**
   * Whether an EK is enrolled: the server wires it to "a node entry with selector
   * `tpm:pub_hash:<hash>` whose parent is `spiffe://<td>/spire/server` exists". Needed when
   * enrollment can be asked for (no certificate, or `requireEnrollment`).
   */
  readonly isEnrolled?: (pubHash: string) => Promise<boolean>;
  /** The clock state of the node's previous attestation, when there was one. */
  readonly lastClockInfo?: (agentId: string) => Promise<TpmClockRecord | undefined>;
  /** `pcr_banks` (default `["sha256"]`). */
  readonly pcrBanks?: readonly TpmWireBank[];
  /** `pcr_indices` (default 0..7). */
  readonly pcrIndices?: readonly number[];
  /** `allow_sha1` (default false): SHA-1 AK signatures, PCR banks and EK chain signatures. */
  readonly allowSha1?: boolean;
  /**
   * The firmware policies in force, asked once per attestation (the server re-reads its
   * policy directory when it changes). Each satisfied policy adds `tpm:policy:<name>`; the
   * PCRs they read are added to the quote the challenge asks for.
   */
  readonly policies?: () => Promise<readonly FirmwarePolicy[]> | readonly FirmwarePolicy[];
  /**
   * Called when a device that has proved it holds the TPM of its EK (credential activation
   * passed) then fails a check (quote, PCR coverage, clock state): the server records the
   * reason with the node so that `spire-server agent show` says why it lost its identity.
   * Failures before activation are not reported: anyone can send a device's public EK.
   */
  readonly onDeviceFailure?: (agentId: string, reason: string) => Promise<void>;
  /**
   * `require_event_log` (default false): refuse a device that sends no TCG event log. With or
   * without it, a log that is sent must parse (known event types only) and replay to the
   * quoted PCRs (docs/tpm-event-log.md).
   */
  readonly requireEventLog?: boolean;
}

/** What a device's PCRs made of each firmware policy: `satisfied` or why not. */
export type TpmPolicyOutcomes = Record<string, string>;

/** `satisfied`, the outcome of a policy the device meets. */
export const POLICY_SATISFIED = 'satisfied';

/**
 * The outcome of every policy for verified PCR values: name → {@link POLICY_SATISFIED} or the
 * reason it is not met (src/policy policyMismatch).
 */
export function policyOutcomes(
  policies: readonly FirmwarePolicy[],
  pcrs: ReadonlyMap<PcrBank, ReadonlyMap<number, Uint8Array>>,
): TpmPolicyOutcomes {
  const hex: PcrValueMap = new Map(
    [...pcrs].map(([bank, m]) => [
      bank,
      new Map([...m].map(([i, v]) => [i, Buffer.from(v).toString('hex')])),
    ]),
  );
  const out: TpmPolicyOutcomes = {};
  for (const p of policies) out[p.name] = policyMismatch(p, hex) ?? POLICY_SATISFIED;
  return out;
}

/** The configured selection with every PCR the policies read added (sha1 only when allowed). */
function withPolicyPcrs(
  base: readonly TpmWirePcrSelection[],
  policies: readonly FirmwarePolicy[],
  allowSha1: boolean,
): TpmWirePcrSelection[] {
  const m = new Map<TpmWireBank, Set<number>>(base.map((r) => [r.bank, new Set(r.indices)]));
  for (const [bank, indices] of policyPcrSelection(policies)) {
    if (bank === 'sha1' && !allowSha1) continue;
    const set = m.get(bank) ?? new Set<number>();
    for (const i of indices) set.add(i);
    m.set(bank, set);
  }
  return [...m].map(([bank, set]) => ({ bank, indices: [...set].sort((a, b) => a - b) }));
}

function configError(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_TPM_ATTESTOR_CONFIG_INVALID', message);
}

function fail(code: AttestationErrorCode, message: string, cause?: unknown): never {
  throw attestationError(code, message, cause);
}

function denied(message: string, cause?: unknown): never {
  return fail(
    'ERR_ATTESTATION_PERMISSION_DENIED',
    cause === undefined ? message : `${message}: ${describeError(cause)}`,
    cause,
  );
}

function isCode(err: unknown, code: string): boolean {
  return err instanceof SpireEdgeError && err.code === code;
}

function parsePublic(bytes: Uint8Array, what: string): TpmtPublic {
  try {
    return parseTpm2bPublic(bytes);
  } catch (err) {
    return fail(
      'ERR_ATTESTATION_INVALID_ARGUMENT',
      `${what} is not a TPM2B_PUBLIC: ${describeError(err)}`,
      err,
    );
  }
}

function issuerCommonName(ek: EkCertificate): string | undefined {
  try {
    let cn: string | undefined;
    for (const a of nameAttributes(ek.cert.issuerDer)) if (a.oid === '2.5.4.3') cn = a.value;
    return cn;
  } catch {
    return undefined;
  }
}

function clockRecord(c: ClockInfo): TpmClockRecord {
  return {
    resetCount: c.resetCount,
    restartCount: c.restartCount,
    clock: c.clock.toString(),
    safe: c.safe,
  };
}

/**
 * Checks that the TPM's clock state did not go backwards since `prev`: resetCount never
 * decreases; within one reset, restartCount never decreases; within one restart, the clock
 * never decreases when the TPM says it is `safe`. A TPM cleared (TPM2_Clear) resets all
 * three: such a device must be enrolled again (evict the agent).
 */
export function clockProblem(prev: TpmClockRecord, now: ClockInfo): string | undefined {
  if (now.resetCount < prev.resetCount) {
    return `resetCount ${now.resetCount} is lower than the previous ${prev.resetCount}`;
  }
  if (now.resetCount === prev.resetCount && now.restartCount < prev.restartCount) {
    return `restartCount ${now.restartCount} is lower than the previous ${prev.restartCount}`;
  }
  let prevClock: bigint | undefined;
  try {
    prevClock = BigInt(prev.clock);
  } catch {
    prevClock = undefined;
  }
  if (
    now.resetCount === prev.resetCount &&
    now.restartCount === prev.restartCount &&
    now.safe &&
    prevClock !== undefined &&
    now.clock < prevClock
  ) {
    return `clock ${now.clock} is lower than the previous ${prevClock}`;
  }
  return undefined;
}

function checkIndexList(v: readonly number[], what: string): number[] {
  if (!Array.isArray(v) || v.length === 0) throw configError(`${what} must not be empty`);
  const set = new Set<number>();
  for (const i of v) {
    if (!Number.isInteger(i) || i < 0 || i > 23)
      throw configError(`${what} must hold integers 0 to 23`);
    set.add(i);
  }
  return [...set].sort((a, b) => a - b);
}

/**
 * Creates the `tpm` attestor.
 *
 * Trusts: `ekCaPool` (operator configuration) and `isEnrolled` (the registration entries).
 * Verifies everything the agent sends. What the caller must still do: store the selectors
 * and the evidence with the node (the agent service does), and evict a node whose TPM was
 * cleared (its clock state restarts from zero and is refused).
 *
 * @throws SpireEdgeError `ERR_TPM_ATTESTOR_CONFIG_INVALID` for inconsistent options.
 */
export function createTpmAttestor(options: TpmAttestorOptions): ServerNodeAttestor {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('createTpmAttestor options are required');
  }
  const td = toTrustDomain(options.trustDomain);
  const { clock, random } = options;
  const requireEkCert = options.requireEkCert ?? true;
  const requireEnrollment = options.requireEnrollment ?? false;
  const allowSha1 = options.allowSha1 === true;
  if (requireEkCert && options.ekCaPool === undefined) {
    throw configError('ek_ca_path is required when require_ek_cert is true');
  }
  if ((requireEnrollment || !requireEkCert) && options.isEnrolled === undefined) {
    throw configError('an enrollment lookup is required when enrollment may be checked');
  }
  const banks = [...new Set(options.pcrBanks ?? TPM_DEFAULT_PCR_BANKS)];
  if (banks.length === 0) throw configError('pcr_banks must not be empty');
  for (const b of banks) {
    if (!['sha1', 'sha256', 'sha384', 'sha512'].includes(b)) {
      throw configError(`pcr_banks: ${JSON.stringify(b)} is not sha1, sha256, sha384 or sha512`);
    }
    if (b === 'sha1' && !allowSha1) throw configError('pcr_banks: sha1 needs allow_sha1 = true');
  }
  const indices = checkIndexList(options.pcrIndices ?? TPM_DEFAULT_PCR_INDICES, 'pcr_indices');
  const required: TpmWirePcrSelection[] = banks.map((bank) => ({ bank, indices }));

  async function checkEk(p: TpmPayload, ekPublic: TpmtPublic) {
    let ekCert: EkCertificate | undefined;
    let hash: string;
    if (p.ekCert !== undefined) {
      try {
        ekCert = parseEkCertificate(p.ekCert);
      } catch (err) {
        denied('EK certificate is not a TCG EK certificate', err);
      }
      try {
        options.ekCaPool?.verify(ekCert, { now: clock.now(), allowSha1 });
      } catch (err) {
        denied('EK certificate does not chain to a configured EK CA', err);
      }
      if (options.ekCaPool === undefined) denied('EK certificates are not trusted: no ek_ca_path');
      let same = false;
      try {
        same = ekCertMatchesPublic(ekCert, ekPublic);
      } catch (err) {
        fail(
          'ERR_ATTESTATION_INVALID_ARGUMENT',
          `EK public area has no usable key: ${describeError(err)}`,
          err,
        );
      }
      if (!same) denied('EK certificate does not certify the EK public area');
      hash = ekCert.pubHash;
    } else {
      if (requireEkCert) denied('EK certificate is required (require_ek_cert) and none was sent');
      try {
        hash = pubHash(ekPublic);
      } catch (err) {
        return fail(
          'ERR_ATTESTATION_INVALID_ARGUMENT',
          `EK public area has no usable key: ${describeError(err)}`,
          err,
        );
      }
    }
    if (requireEnrollment || ekCert === undefined) {
      const enrolled = await options.isEnrolled!(hash);
      if (!enrolled) {
        denied(
          `EK tpm:pub_hash:${hash} is not enrolled (no node entry with that selector under ${td.idString()}/spire/server)`,
        );
      }
    }
    return { ekCert, hash };
  }

  function checkSecret(response: TpmResponse, secret: Uint8Array): void {
    const ok =
      response.secret.length === secret.length &&
      timingSafeEqual(Buffer.from(response.secret), Buffer.from(secret));
    if (!ok) {
      denied(
        'credential activation failed: the returned secret is wrong (the AK is not in the TPM of this EK)',
      );
    }
  }

  function checkQuotes(
    response: TpmResponse,
    secret: Uint8Array,
    nonce: Uint8Array,
    akPublic: TpmtPublic,
    wanted: readonly TpmWirePcrSelection[],
  ) {
    const expectedNonce = tpmQuoteNonce(secret, nonce);
    const pcrs = new Map<PcrBank, ReadonlyMap<number, Uint8Array>>();
    let clockInfo: ClockInfo | undefined;
    for (const [i, q] of response.quotes.entries()) {
      let verified: ReturnType<typeof verifyQuote>;
      try {
        verified = verifyQuote({
          akPublic,
          quoted: q.quoted,
          signature: q.signature,
          pcrs: quoteBankOf(q.quoted, q.pcrs),
          expectedNonce,
          allowSha1,
        });
      } catch (err) {
        if (isCode(err, 'ERR_TPM_PARSE')) {
          fail(
            'ERR_ATTESTATION_INVALID_ARGUMENT',
            `quotes[${i}] is malformed: ${describeError(err)}`,
            err,
          );
        }
        denied(`quotes[${i}] does not verify`, err);
      }
      for (const [bank, values] of verified.pcrs) {
        if (pcrs.has(bank)) denied(`PCR bank ${bank} is quoted twice`);
        pcrs.set(bank, values);
      }
      const c = verified.attest.clockInfo;
      if (
        clockInfo !== undefined &&
        (c.resetCount !== clockInfo.resetCount || c.restartCount !== clockInfo.restartCount)
      ) {
        denied('quotes disagree on the TPM reset/restart counters');
      }
      if (clockInfo === undefined || c.clock > clockInfo.clock) clockInfo = c;
    }
    for (const r of wanted) {
      const got = pcrs.get(r.bank);
      const missing = r.indices.filter((idx) => got?.has(idx) !== true);
      if (missing.length > 0) {
        denied(`the quote does not cover required PCRs ${r.bank}:${missing.join(',')}`);
      }
    }
    return { pcrs, clockInfo: clockInfo! };
  }

  /**
   * Replays the event log (when sent) against the PCRs of the verified quotes: it must parse,
   * hold known event types only, and reproduce every quoted PCR it has events for. Returns
   * the summary kept in the evidence (Secure Boot only from what replay verified).
   */
  function checkEventLog(
    bytes: Uint8Array | undefined,
    pcrs: ReadonlyMap<PcrBank, ReadonlyMap<number, Uint8Array>>,
  ): ReturnType<typeof eventLogSummary> | undefined {
    if (bytes === undefined) {
      if (options.requireEventLog === true) {
        denied('a TCG event log is required (require_event_log) and none was sent');
      }
      return undefined;
    }
    try {
      const log = parseEventLog(bytes);
      const { verified } = checkEventLogAgainstPcrs(log, pcrs);
      return eventLogSummary(log, verified);
    } catch (err) {
      if (isCode(err, 'ERR_TPM_EVENT_LOG_MISMATCH')) {
        denied('the event log does not replay to the quoted PCRs', err);
      }
      return denied('the event log is not acceptable', err);
    }
  }

  return {
    type: TPM_TYPE,
    async attest(payloadBytes, challenge): Promise<AttestationResult> {
      let payload: TpmPayload;
      try {
        payload = decodeTpmPayload(payloadBytes);
      } catch (err) {
        return fail(
          'ERR_ATTESTATION_INVALID_ARGUMENT',
          `failed to unmarshal tpm payload: ${describeError(err)}`,
          err,
        );
      }
      const ekPublic = parsePublic(payload.ekPublic, 'ek_public');
      const akPublic = parsePublic(payload.akPublic, 'ak_public');
      const { ekCert, hash } = await checkEk(payload, ekPublic);
      try {
        checkAkAttributes(akPublic);
      } catch (err) {
        denied('AK is not a TPM-resident restricted signing key', err);
      }

      const policies = (await options.policies?.()) ?? [];
      const wanted =
        policies.length === 0 ? required : withPolicyPcrs(required, policies, allowSha1);
      const agentId = spiffeIdFromSegments(td, 'spire', 'agent', TPM_TYPE, hash).toString();

      const secret = random.bytes(TPM_NONCE_LENGTH);
      const nonce = random.bytes(TPM_NONCE_LENGTH);
      let credential: ReturnType<typeof makeCredential>;
      try {
        credential = makeCredential({
          ekPublic,
          objectName: objectName(akPublic),
          credential: secret,
          random,
        });
      } catch (err) {
        return denied('EK cannot receive a credential', err);
      }
      const responseBytes = await challenge(
        encodeTpmChallenge({
          idObject: credential.idObject,
          encryptedSecret: credential.encryptedSecret,
          nonce,
          pcrs: wanted,
        }),
      );
      let response: TpmResponse;
      try {
        response = decodeTpmResponse(responseBytes);
      } catch (err) {
        return fail(
          'ERR_ATTESTATION_INVALID_ARGUMENT',
          `failed to unmarshal tpm challenge response: ${describeError(err)}`,
          err,
        );
      }
      checkSecret(response, secret);
      // From here on the device has proved it holds the TPM of this EK: failures are its own
      // and are reported to the server (onDeviceFailure) before they are thrown.
      let verified: ReturnType<typeof checkQuotes>;
      try {
        verified = checkQuotes(response, secret, nonce, akPublic, wanted);
        const prev = await options.lastClockInfo?.(agentId);
        if (prev !== undefined) {
          const problem = clockProblem(prev, verified.clockInfo);
          if (problem !== undefined) {
            denied(`TPM clock state went backwards since the last attestation: ${problem}`);
          }
        }
      } catch (err) {
        await options.onDeviceFailure?.(agentId, describeError(err)).catch(() => {});
        throw err;
      }
      const { pcrs, clockInfo } = verified;
      let eventLog: ReturnType<typeof eventLogSummary> | undefined;
      try {
        eventLog = checkEventLog(response.eventLog, pcrs);
      } catch (err) {
        await options.onDeviceFailure?.(agentId, describeError(err)).catch(() => {});
        throw err;
      }
      const outcomes = policyOutcomes(policies, pcrs);

      const values: string[] = [`pub_hash:${hash}`];
      const issuerCn = ekCert === undefined ? undefined : issuerCommonName(ekCert);
      if (ekCert?.manufacturer !== undefined) values.push(`ek_manufacturer:${ekCert.manufacturer}`);
      if (ekCert?.model !== undefined) values.push(`ek_model:${ekCert.model}`);
      if (ekCert?.version !== undefined) values.push(`ek_version:${ekCert.version}`);
      if (issuerCn !== undefined && issuerCn !== '') values.push(`ek_issuer_cn:${issuerCn}`);
      const pcrSummary: Record<string, Record<string, string>> = {};
      for (const [bank, m] of pcrs) {
        const b: Record<string, string> = {};
        for (const idx of [...m.keys()].sort((x, y) => x - y)) {
          const hex = Buffer.from(m.get(idx)!).toString('hex');
          values.push(`pcr:${bank}:${idx}:${hex}`);
          b[String(idx)] = hex;
        }
        pcrSummary[bank] = b;
      }
      if (eventLog !== undefined && eventLog.secureBoot !== null) {
        values.push(`secure_boot:${String(eventLog.secureBoot)}`);
      }
      for (const p of policies) {
        if (outcomes[p.name] === POLICY_SATISFIED) values.push(`policy:${p.name}`);
      }
      const selectors: Selector[] = values.map((value) => ({ type: TPM_TYPE, value }));
      return {
        agentId,
        selectors,
        canReattest: true,
        evidence: {
          type: TPM_TYPE,
          pubHash: hash,
          ekCertificate: ekCert !== undefined,
          ...(ekCert?.manufacturer === undefined ? {} : { ekManufacturer: ekCert.manufacturer }),
          ...(ekCert?.model === undefined ? {} : { ekModel: ekCert.model }),
          ...(ekCert?.version === undefined ? {} : { ekVersion: ekCert.version }),
          ...(issuerCn === undefined ? {} : { ekIssuerCn: issuerCn }),
          akName: Buffer.from(objectName(akPublic)).toString('hex'),
          clockInfo: clockRecord(clockInfo),
          pcrs: pcrSummary,
          ...(eventLog === undefined ? {} : { eventLog }),
          ...(policies.length === 0 ? {} : { policies: outcomes }),
        },
      };
    },
  };
}

/**
 * The reported PCR values keyed by the first bank of the quote's selection (parsed here only
 * to label the agent's values; verifyQuote checks the signature before it trusts anything and
 * refuses values the signed selection does not cover). Our agent quotes one bank per quote.
 */
function quoteBankOf(
  quoted: Uint8Array,
  values: ReadonlyMap<number, Uint8Array>,
): Map<PcrBank, ReadonlyMap<number, Uint8Array>> {
  const attested = parseTpmsAttest(quoted).attested;
  const first = attested.kind === 'quote' ? attested.pcrSelect[0] : undefined;
  const bank = first === undefined ? undefined : tpmHashByAlg(first.hashAlg)?.bank;
  return new Map(bank === undefined ? [] : [[bank, values]]);
}
