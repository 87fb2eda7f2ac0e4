/**
 * Event log replay (TCG PC Client Platform Firmware Profile, PFP, §10 and TPM 2.0 Part 1 §17
 * "PCR extend"): recomputes the PCR values a log claims, compares them with PCR values from a
 * verified quote, and derives facts (Secure Boot state) only from what that comparison
 * verified.
 */
import { createHash, getHashes } from 'node:crypto';
import { SpireEdgeError } from '../common/errors.js';
import type { EventLog, LogEvent } from './event-log.js';
import { type PcrBank, tpmHashByBank } from './hash.js';
import { bytesEqual, toHex } from './internal/bytes.js';
import {
  EV_EFI_VARIABLE_DRIVER_CONFIG,
  EV_NO_ACTION,
  EV_SEPARATOR,
} from './internal/event-types.js';

/** PCR values by bank, then by index. */
export type ReplayedPcrs = Map<PcrBank, Map<number, Uint8Array>>;

/** What {@link checkEventLogAgainstPcrs} verified. */
export interface EventLogCheck {
  /**
   * Bank → ascending PCR indices whose replayed value equals the quoted value. Only PCRs that
   * were quoted *and* have at least one measured event in the log; banks with none are left
   * out.
   */
  readonly verified: Map<PcrBank, number[]>;
}

/** A JSON-friendly summary of a log and what replay verified, for evidence records. */
export interface EventLogSummary {
  readonly format: 'sha1' | 'crypto-agile';
  /** Events after the Spec ID header (EV_NO_ACTION included). */
  readonly events: number;
  readonly banks: PcrBank[];
  /** Bank → verified PCR indices, as {@link EventLogCheck}.verified. */
  readonly verifiedPcrs: Record<string, number[]>;
  /** {@link secureBootState}; null when it cannot be established. */
  readonly secureBoot: boolean | null;
}

let available: Set<string> | undefined;

/** The node:crypto name of a bank's hash, or undefined when this Node lacks it (e.g. sm3). */
function nodeHash(bank: PcrBank): string | undefined {
  available ??= new Set(getHashes());
  const node = tpmHashByBank(bank)?.node;
  return node !== undefined && available.has(node) ? node : undefined;
}

function digestOf(node: string, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash(node);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

function invalid(message: string): never {
  throw new SpireEdgeError('ERR_TPM_EVENT_LOG_INVALID', message);
}

function checkLog(log: EventLog): void {
  if (typeof log !== 'object' || log === null || !Array.isArray(log.events)) {
    throw new TypeError('log must be an EventLog from parseEventLog');
  }
  if (!Array.isArray(log.banks)) throw new TypeError('log.banks must be an array');
}

function eventDigest(e: LogEvent, bank: PcrBank, size: number): Uint8Array {
  const d = e.digests.get(bank);
  if (d === undefined || d.length !== size) {
    invalid(
      `event log record ${e.index} at offset ${e.offset}: no ${size}-byte ${bank} digest for PCR ${e.pcrIndex}`,
    );
  }
  return d;
}

/**
 * Replays `log`: for every bank of the log whose hash this Node implements, starts each PCR
 * at zeros of the bank's digest size (PCR 0 at the StartupLocality value: zeros with the
 * locality as last byte, PFP §10.4.5.3) and extends PCR[i] = H(PCR[i] || digest) with every
 * event's digest of that bank, in log order. EV_NO_ACTION events are not extended. A legacy
 * SHA-1 log gives only the sha1 bank.
 *
 * The result holds only PCRs with at least one extended event (a PCR the log says nothing
 * about is absent, not zeros). It is what the log *claims*: compare it with a verified quote
 * ({@link checkEventLogAgainstPcrs}) before trusting any of it.
 *
 * @throws TypeError when `log` is not an EventLog.
 * @throws SpireEdgeError `ERR_TPM_EVENT_LOG_INVALID` when an event lacks a digest of a bank
 *   (impossible for logs from parseEventLog).
 */
export function replayEventLog(log: EventLog): ReplayedPcrs {
  checkLog(log);
  const out: ReplayedPcrs = new Map();
  for (const bank of log.banks) {
    const h = tpmHashByBank(bank);
    const node = nodeHash(bank);
    if (h === undefined || node === undefined) continue;
    const pcrs = new Map<number, Uint8Array>();
    for (const e of log.events) {
      if (e.type === EV_NO_ACTION) continue;
      const digest = eventDigest(e, bank, h.size);
      let old = pcrs.get(e.pcrIndex);
      if (old === undefined) {
        old = new Uint8Array(h.size);
        if (e.pcrIndex === 0) old[h.size - 1] = log.startupLocality ?? 0;
      }
      pcrs.set(e.pcrIndex, digestOf(node, old, digest));
    }
    out.set(bank, pcrs);
  }
  return out;
}

/**
 * Replays `log` and compares it with `quoted`: for every quoted bank the log has and every
 * quoted index the log has measured events for, the replayed value must equal the quoted one.
 * Those PCRs are returned as verified: their event digests (and only their digests — not event
 * types or data) are what the TPM extended. A quoted PCR without events in the log, or a
 * quoted bank the log does not carry, is simply not verified (no error); PCRs the log has but
 * the quote does not cover are not verified either.
 *
 * Trusts `quoted` entirely: it MUST be the PCR values of a verified quote
 * (`verifyQuote(...).pcrs`), from the same boot as the log. The caller must still decide
 * which PCRs policy requires to be verified, and never use events of unverified PCRs.
 *
 * @throws TypeError when `log` is not an EventLog, `quoted` is not a Map of Maps, or a quoted
 *   value's length is not its bank's digest size.
 * @throws SpireEdgeError `ERR_TPM_EVENT_LOG_MISMATCH` naming the bank, index, replayed and
 *   quoted values of every PCR that differs (also in `details.mismatches`).
 */
export function checkEventLogAgainstPcrs(
  log: EventLog,
  quoted: ReadonlyMap<PcrBank, ReadonlyMap<number, Uint8Array>>,
): EventLogCheck {
  checkLog(log);
  if (!(quoted instanceof Map)) throw new TypeError('quoted must be a Map of bank to Map');
  const replayed = replayEventLog(log);
  const verified = new Map<PcrBank, number[]>();
  const mismatches: Array<{ bank: PcrBank; index: number; replayed: string; quoted: string }> = [];
  for (const [bank, values] of quoted) {
    if (!(values instanceof Map)) throw new TypeError(`quoted.get('${bank}') must be a Map`);
    const h = tpmHashByBank(bank);
    if (h === undefined) throw new TypeError(`quoted bank '${bank}' is not a PCR bank`);
    const mine = replayed.get(bank);
    const indices: number[] = [];
    for (const [index, value] of values) {
      if (!(value instanceof Uint8Array) || value.length !== h.size) {
        throw new TypeError(`quoted ${bank}:${index} must be a ${h.size}-byte Uint8Array`);
      }
      const r = mine?.get(index);
      if (r === undefined) continue;
      if (bytesEqual(r, value)) indices.push(index);
      else mismatches.push({ bank, index, replayed: toHex(r), quoted: toHex(value) });
    }
    if (indices.length > 0)
      verified.set(
        bank,
        indices.sort((a, b) => a - b),
      );
  }
  if (mismatches.length > 0) {
    const [m] = mismatches;
    const more =
      mismatches.length > 1
        ? ` (and ${mismatches.length - 1} more: ${mismatches
            .slice(1)
            .map((x) => `${x.bank}:${x.index}`)
            .join(', ')})`
        : '';
    throw new SpireEdgeError(
      'ERR_TPM_EVENT_LOG_MISMATCH',
      `event log replay of PCR ${m!.bank}:${m!.index} gives ${m!.replayed} but the quote has ${m!.quoted}${more}`,
      { details: { mismatches } },
    );
  }
  return { verified };
}

/** Strongest first; the first verified bank with PCR 7 is used for digest checks. */
const PREFERENCE: readonly PcrBank[] = [
  'sha256',
  'sha384',
  'sha512',
  'sha3_256',
  'sha3_384',
  'sha3_512',
  'sm3_256',
  'sha1',
];

/** EFI_GLOBAL_VARIABLE 8be4df61-93ca-11d2-aa0d-00e098032b8c as EFI_GUID bytes (mixed-endian). */
const EFI_GLOBAL_VARIABLE = Uint8Array.of(
  0x61,
  0xdf,
  0xe4,
  0x8b,
  0xca,
  0x93,
  0xd2,
  0x11,
  0xaa,
  0x0d,
  0x00,
  0xe0,
  0x98,
  0x03,
  0x2b,
  0x8c,
);

/** UEFI_VARIABLE_DATA (PFP §10.2.6) when `data` is exactly one; undefined otherwise. */
function parseVariableData(
  data: Uint8Array,
): { guid: Uint8Array; name: string; value: Uint8Array } | undefined {
  if (data.length < 32) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nameLength = view.getBigUint64(16, true);
  const dataLength = view.getBigUint64(24, true);
  if (32n + nameLength * 2n + dataLength !== BigInt(data.length)) return undefined;
  const nameEnd = 32 + Number(nameLength) * 2;
  const name = Buffer.from(data.buffer, data.byteOffset + 32, nameEnd - 32).toString('utf16le');
  return { guid: data.subarray(0, 16), name, value: data.subarray(nameEnd) };
}

const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

/**
 * The UEFI Secure Boot state the firmware measured, established only from PCR 7 events that
 * replay verified (PFP §3.3.4.8 PCR[7] usage, §10.4.4 EV_EFI_VARIABLE_DRIVER_CONFIG):
 *
 * 1. PCR 7 must be verified (`verified`, from {@link checkEventLogAgainstPcrs}) in a bank the
 *    log carries; the strongest such bank B is used. Otherwise: `undefined`.
 * 2. The pre-OS part of PCR 7 ends at its EV_SEPARATOR. The separator is found by its verified
 *    B digest (hash of 00000000, or of an error value 00000001 / ffffffff), and must also be
 *    typed EV_SEPARATOR with data hashing to that digest — a retyped or relabelled separator is
 *    `ERR_TPM_EVENT_LOG_INVALID`. No separator, or an error separator: `undefined` (the
 *    firmware never closed, or reported an error in, the pre-OS phase).
 * 3. Before the separator, a PCR 7 event whose B digest is the hash of "UEFI Debug Mode"
 *    (the EV_EFI_ACTION firmware logs when a debugger is enabled) makes the result `false`,
 *    whatever the event's untrusted type or data say.
 * 4. The SecureBoot variable is an EV_EFI_VARIABLE_DRIVER_CONFIG event in PCR 7 whose data is
 *    a UEFI_VARIABLE_DATA with the EFI global variable GUID and the name "SecureBoot". Its data
 *    must hash to its B digest, it must come before the separator and occur once (otherwise
 *    `ERR_TPM_EVENT_LOG_INVALID`). Value 01 → `true`; 00, or an empty value (the variable does
 *    not exist) → `false`; anything else → `ERR_TPM_EVENT_LOG_INVALID`.
 * 5. No SecureBoot event before the separator → `false`: the PFP requires firmware that
 *    supports Secure Boot to measure the variable, so its absence means none is enforced.
 *
 * Tampering with event data or types can only hide a SecureBoot=1 measurement (giving
 * `false`), never invent one: digests are verified and the data is checked against them.
 *
 * Trusts `verified` (it must come from checkEventLogAgainstPcrs with a verified quote) and
 * the platform firmware, which alone measures PCR 7 before the separator.
 *
 * @throws SpireEdgeError `ERR_TPM_EVENT_LOG_INVALID` as above.
 */
export function secureBootState(
  log: EventLog,
  verified: ReadonlyMap<PcrBank, readonly number[]>,
): boolean | undefined {
  checkLog(log);
  if (!(verified instanceof Map)) throw new TypeError('verified must be a Map of bank to indices');
  const bank = PREFERENCE.find(
    (b) =>
      log.banks.includes(b) && verified.get(b)?.includes(7) === true && nodeHash(b) !== undefined,
  );
  if (bank === undefined) return undefined;
  const node = nodeHash(bank)!;
  const size = tpmHashByBank(bank)!.size;
  const hash = (b: Uint8Array): Uint8Array => digestOf(node, b);
  const separatorOk = hash(new Uint8Array(4));
  const separatorErrors = [
    hash(Uint8Array.of(1, 0, 0, 0)),
    hash(Uint8Array.of(0xff, 0xff, 0xff, 0xff)),
  ];
  const debugMode = hash(ascii('UEFI Debug Mode'));

  let separator: 'ok' | 'error' | undefined;
  let debugger_ = false;
  let value: boolean | undefined;
  for (const e of log.events) {
    if (e.pcrIndex !== 7 || e.type === EV_NO_ACTION) continue;
    const where = `event log record ${e.index} at offset ${e.offset}`;
    const d = eventDigest(e, bank, size);
    if (separator === undefined) {
      const isOk = bytesEqual(d, separatorOk);
      const isError = separatorErrors.some((s) => bytesEqual(d, s));
      if (e.type === EV_SEPARATOR || isOk || isError) {
        if (e.type !== EV_SEPARATOR || !(isOk || isError) || !bytesEqual(hash(e.data), d)) {
          invalid(
            `${where}: PCR 7 separator: its type (${e.typeName}), data and ${bank} digest do not agree`,
          );
        }
        separator = isOk ? 'ok' : 'error';
        continue;
      }
      if (bytesEqual(d, debugMode)) debugger_ = true;
    }
    if (e.type !== EV_EFI_VARIABLE_DRIVER_CONFIG) continue;
    const v = parseVariableData(e.data);
    if (v === undefined || v.name !== 'SecureBoot' || !bytesEqual(v.guid, EFI_GLOBAL_VARIABLE)) {
      continue;
    }
    if (separator !== undefined) {
      invalid(`${where}: the SecureBoot variable is measured into PCR 7 after its separator`);
    }
    if (!bytesEqual(hash(e.data), d)) {
      invalid(`${where}: the SecureBoot variable data does not hash to its ${bank} digest`);
    }
    if (value !== undefined) invalid(`${where}: the SecureBoot variable is measured twice`);
    if (v.value.length === 0) value = false;
    else if (v.value.length === 1 && (v.value[0] === 0 || v.value[0] === 1)) {
      value = v.value[0] === 1;
    } else {
      invalid(`${where}: the SecureBoot variable value ${toHex(v.value)} is not 00 or 01`);
    }
  }
  if (separator !== 'ok') return undefined;
  if (debugger_) return false;
  return value ?? false;
}

/**
 * A JSON-friendly summary for a node's evidence record: format, event count, banks, the PCRs
 * replay verified and {@link secureBootState} (null when undetermined).
 *
 * @throws SpireEdgeError `ERR_TPM_EVENT_LOG_INVALID` as {@link secureBootState}.
 */
export function eventLogSummary(
  log: EventLog,
  verified: ReadonlyMap<PcrBank, readonly number[]>,
): EventLogSummary {
  const secureBoot = secureBootState(log, verified);
  return {
    format: log.format,
    events: log.events.length,
    banks: [...log.banks],
    verifiedPcrs: Object.fromEntries(
      [...verified].map(([bank, indices]) => [bank, [...indices].sort((a, b) => a - b)]),
    ),
    secureBoot: secureBoot ?? null,
  };
}
