/**
 * TCG firmware event log parser: the log a PC Client platform's firmware keeps of what it
 * measured into the TPM's PCRs (Linux: /sys/kernel/security/tpm0/binary_bios_measurements).
 *
 * Two formats (TCG PC Client Platform Firmware Profile, PFP, §10 "Event Logging"):
 * - legacy SHA-1: TCG_PCR_EVENT records only (pcrIndex u32, eventType u32, digest[20],
 *   eventSize u32, event);
 * - crypto-agile: a first TCG_PCR_EVENT of type EV_NO_ACTION whose data is the
 *   TCG_EfiSpecIDEvent ("Spec ID Event03\0", the digest algorithms and sizes), then
 *   TCG_PCR_EVENT2 records (pcrIndex u32, eventType u32, TPML_DIGEST_VALUES
 *   {count u32, {hashAlg u16, digest}[]}, eventSize u32, event).
 * All integers are little-endian (unlike TPM structures).
 *
 * Everything in a log is untrusted until replayed against PCR values from a verified quote
 * (event-log-replay.ts). Every violation throws `ERR_TPM_EVENT_LOG_INVALID` naming the record
 * number, its offset and the field.
 */
import { SpireEdgeError } from '../common/errors.js';
import { algText, type PcrBank, tpmHashByAlg } from './hash.js';
import { EV_NO_ACTION, eventTypeName } from './internal/event-types.js';

/** Error codes of the event log code. */
export type EventLogErrorCode = 'ERR_TPM_EVENT_LOG_INVALID' | 'ERR_TPM_EVENT_LOG_MISMATCH';

/** The limits {@link parseEventLog} enforces. */
export const EVENT_LOG_LIMITS = {
  /** Largest log accepted, in bytes (real logs are 2–100 KiB). */
  maxBytes: 4 * 1024 * 1024,
  /** Default cap on the number of records, the Spec ID header included (real logs: < 1,000). */
  maxEvents: 10_000,
  /** Most digest algorithms a Spec ID event may declare (HASH_COUNT-sized, as tpm2-tss). */
  maxAlgorithms: 16,
  /** Largest digest size a Spec ID event may declare (sizeof(TPMU_HA)). */
  maxDigestSize: 64,
} as const;

/** The PCR index Windows gives its EV_NO_ACTION events (never extended, so harmless). */
export const NO_PCR = 0xffffffff;

/** One digest algorithm a Spec ID event declares. */
export interface SpecIdAlgorithm {
  /** TPM_ALG_ID. */
  readonly algorithmId: number;
  /** The digest size the log declares (checked against the real size for known hashes). */
  readonly digestSize: number;
  /**
   * The PCR bank, or undefined for an algorithm this code does not know: its digests are read
   * (with the declared size) and skipped, and it gives no bank.
   */
  readonly bank: PcrBank | undefined;
}

/** TCG_EfiSpecIDEvent (PFP §10.4.5.1), the header of a crypto-agile log. */
export interface SpecIdEvent {
  /** Always "Spec ID Event03" (the trailing NUL removed). */
  readonly signature: string;
  readonly platformClass: number;
  readonly specVersionMinor: number;
  readonly specVersionMajor: number;
  readonly specErrata: number;
  /** 1: UINTN is 32 bits; 2: 64 bits. */
  readonly uintnSize: number;
  /** Every algorithm in the order declared; every later event carries one digest of each. */
  readonly algorithms: readonly SpecIdAlgorithm[];
  readonly vendorInfo: Uint8Array;
}

/** One measured (or EV_NO_ACTION) event. All fields are untrusted until replay verifies them. */
export interface LogEvent {
  /**
   * Record number in the log, from 0 (as tpm2_eventlog's EventNum): in a crypto-agile log
   * record 0 is the Spec ID header, so its first event is 1.
   */
  readonly index: number;
  /** Byte offset of the record in the log. */
  readonly offset: number;
  readonly pcrIndex: number;
  /** The event type (untrusted: it is not part of what is extended). */
  readonly type: number;
  /** The PFP name of `type`, e.g. `EV_SEPARATOR`. */
  readonly typeName: string;
  /** One digest per known bank of the log (sha1 only in a legacy log). */
  readonly digests: ReadonlyMap<PcrBank, Uint8Array>;
  /** The event data (not extended: for many types the digest is its hash, not always). */
  readonly data: Uint8Array;
}

/** A parsed event log. */
export interface EventLog {
  readonly format: 'sha1' | 'crypto-agile';
  /** The Spec ID header (crypto-agile logs only). */
  readonly specId?: SpecIdEvent;
  /** The banks the log carries digests for, in declaration order (known hashes only). */
  readonly banks: readonly PcrBank[];
  /** Every event after the Spec ID header, in log order. */
  readonly events: readonly LogEvent[];
  /**
   * The locality of TPM2_Startup from a StartupLocality EV_NO_ACTION event (PFP §10.4.5.3),
   * 0, 3 or 4; absent when the log has no such event (locality 0).
   */
  readonly startupLocality?: number;
}

/** Options of {@link parseEventLog}. */
export interface ParseEventLogOptions {
  /** Cap on the number of records (default {@link EVENT_LOG_LIMITS}.maxEvents). */
  readonly maxEvents?: number;
}

const SPEC_ID_03 = 'Spec ID Event03\0';
const STARTUP_LOCALITY = 'StartupLocality\0';
const LEGACY_HEADER = 32;

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function startsWithAscii(b: Uint8Array, s: string): boolean {
  if (b.length < s.length) return false;
  for (let i = 0; i < s.length; i++) if (b[i] !== s.charCodeAt(i)) return false;
  return true;
}

/** Throws the coded error for the record at `offset`. */
function invalid(record: number, offset: number, field: string, rule: string): never {
  throw new SpireEdgeError(
    'ERR_TPM_EVENT_LOG_INVALID',
    `event log record ${record} at offset ${offset}: ${field}: ${rule}`,
    { details: { record, offset, field } },
  );
}

/** A bounded little-endian cursor over the log; errors name the current record. */
class Cursor {
  readonly buf: Uint8Array;
  readonly #view: DataView;
  pos = 0;
  record = 0;
  start = 0;

  constructor(buf: Uint8Array) {
    this.buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  fail(field: string, rule: string): never {
    invalid(this.record, this.start, field, rule);
  }

  #need(field: string, n: number): number {
    if (n > this.buf.length - this.pos) {
      this.fail(field, `needs ${n} bytes at offset ${this.pos} but only ${this.remaining} remain`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u16(field: string): number {
    return this.#view.getUint16(this.#need(field, 2), true);
  }

  u32(field: string): number {
    return this.#view.getUint32(this.#need(field, 4), true);
  }

  bytes(field: string, n: number): Uint8Array {
    const at = this.#need(field, n);
    return this.buf.subarray(at, at + n);
  }

  /** Reads an eventSize and that many bytes, checking the size against what remains. */
  sized(field: string): Uint8Array {
    const size = this.u32(`${field}Size`);
    if (size > this.remaining) {
      this.fail(`${field}Size`, `${size} exceeds the remaining ${this.remaining} bytes`);
    }
    return this.bytes(field, size);
  }
}

function checkPcrIndex(c: Cursor, pcrIndex: number, type: number): void {
  if (pcrIndex <= 23) return;
  if (pcrIndex === NO_PCR && type === EV_NO_ACTION) return;
  c.fail('pcrIndex', `${pcrIndex} is not a PCR (0–23; 0xffffffff only for EV_NO_ACTION)`);
}

function checkType(c: Cursor, type: number): string {
  const name = eventTypeName(type);
  if (name === undefined) {
    c.fail(
      'eventType',
      `${hex32(type)} is not an event type of the PC Client firmware profile (unknown types are refused)`,
    );
  }
  return name;
}

function parseSpecId(c: Cursor, data: Uint8Array, dataOffset: number): SpecIdEvent {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let p = 16;
  const need = (field: string, n: number): number => {
    if (n > data.length - p) {
      c.fail(
        `SpecIdEvent.${field}`,
        `needs ${n} bytes at offset ${dataOffset + p} but only ${data.length - p} remain`,
      );
    }
    const at = p;
    p += n;
    return at;
  };
  const platformClass = view.getUint32(need('platformClass', 4), true);
  const specVersionMinor = view.getUint8(need('specVersionMinor', 1));
  const specVersionMajor = view.getUint8(need('specVersionMajor', 1));
  const specErrata = view.getUint8(need('specErrata', 1));
  const uintnSize = view.getUint8(need('uintnSize', 1));
  if (specVersionMajor !== 2 || specVersionMinor !== 0) {
    c.fail('SpecIdEvent.specVersion', `${specVersionMajor}.${specVersionMinor} is not 2.0`);
  }
  if (uintnSize !== 1 && uintnSize !== 2) {
    c.fail('SpecIdEvent.uintnSize', `${uintnSize} is neither 1 (UINT32) nor 2 (UINT64)`);
  }
  const count = view.getUint32(need('numberOfAlgorithms', 4), true);
  if (count === 0 || count > EVENT_LOG_LIMITS.maxAlgorithms) {
    c.fail(
      'SpecIdEvent.numberOfAlgorithms',
      `${count} is not between 1 and ${EVENT_LOG_LIMITS.maxAlgorithms}`,
    );
  }
  const algorithms: SpecIdAlgorithm[] = [];
  for (let i = 0; i < count; i++) {
    const algorithmId = view.getUint16(need(`digestSizes[${i}].algorithmId`, 2), true);
    const digestSize = view.getUint16(need(`digestSizes[${i}].digestSize`, 2), true);
    if (algorithms.some((a) => a.algorithmId === algorithmId)) {
      c.fail(
        `SpecIdEvent.digestSizes[${i}]`,
        `algorithm ${algText(algorithmId)} is declared twice`,
      );
    }
    const h = tpmHashByAlg(algorithmId);
    if (h !== undefined && h.size !== digestSize) {
      c.fail(
        `SpecIdEvent.digestSizes[${i}].digestSize`,
        `${digestSize} is not the ${h.size}-byte size of ${h.bank}`,
      );
    }
    if (digestSize === 0 || digestSize > EVENT_LOG_LIMITS.maxDigestSize) {
      c.fail(
        `SpecIdEvent.digestSizes[${i}].digestSize`,
        `${digestSize} is not between 1 and ${EVENT_LOG_LIMITS.maxDigestSize}`,
      );
    }
    algorithms.push({ algorithmId, digestSize, bank: h?.bank });
  }
  const vendorInfoSize = view.getUint8(need('vendorInfoSize', 1));
  if (vendorInfoSize !== data.length - p) {
    c.fail(
      'SpecIdEvent.vendorInfoSize',
      `${vendorInfoSize} but ${data.length - p} bytes follow it in the event`,
    );
  }
  const vendorInfo = data.subarray(p);
  return {
    signature: 'Spec ID Event03',
    platformClass,
    specVersionMinor,
    specVersionMajor,
    specErrata,
    uintnSize,
    algorithms,
    vendorInfo,
  };
}

/** Tracks the StartupLocality rules while events are read. */
class LocalityState {
  locality: number | undefined;
  pcr0Extended = false;

  see(c: Cursor, pcrIndex: number, type: number, data: Uint8Array): void {
    if (type !== EV_NO_ACTION) {
      if (pcrIndex === 0) this.pcr0Extended = true;
      return;
    }
    if (!startsWithAscii(data, STARTUP_LOCALITY)) return;
    if (data.length !== STARTUP_LOCALITY.length + 1) {
      c.fail('StartupLocality', `event is ${data.length} bytes, not 17`);
    }
    if (pcrIndex !== 0) c.fail('StartupLocality', `logged for PCR ${pcrIndex}, not PCR 0`);
    if (this.locality !== undefined) c.fail('StartupLocality', 'logged more than once');
    if (this.pcr0Extended) {
      c.fail(
        'StartupLocality',
        'logged after a measurement into PCR 0 (it sets its initial value)',
      );
    }
    const locality = data[16]!;
    if (locality !== 0 && locality !== 3 && locality !== 4) {
      c.fail('StartupLocality', `locality ${locality} is not 0, 3 or 4`);
    }
    this.locality = locality;
  }
}

function checkOptions(options: ParseEventLogOptions | undefined): number {
  if (options === undefined) return EVENT_LOG_LIMITS.maxEvents;
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('options must be an object');
  }
  const { maxEvents } = options;
  if (maxEvents === undefined) return EVENT_LOG_LIMITS.maxEvents;
  if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) {
    throw new TypeError('options.maxEvents must be a positive integer');
  }
  return maxEvents;
}

/**
 * Parses a TCG firmware event log (PFP §10: legacy SHA-1 TCG_PCR_EVENT records, or a
 * crypto-agile log whose first record is the Spec ID Event03 header). Detects the format,
 * checks every length against what remains, every digest list against the Spec ID header
 * (exactly one digest per declared algorithm, with the declared size), every PCR index
 * (0–23; 0xffffffff only for EV_NO_ACTION, as Windows logs them), every event type against
 * the PFP table, the StartupLocality event (PCR 0, once, before any PCR 0 measurement, locality
 * 0, 3 or 4), and caps the size ({@link EVENT_LOG_LIMITS}) and the record count.
 *
 * An algorithm the Spec ID header declares but this code does not know is skipped but
 * recorded (`specId.algorithms[i].bank` undefined): its digests are read with the declared
 * size and dropped, and it gives no bank.
 *
 * Trusts nothing: the result is unverified until {@link checkEventLogAgainstPcrs} replays it
 * against PCR values from a verified quote. The log is copied; the result does not alias
 * `bytes`.
 *
 * @throws TypeError when `bytes` is not a Uint8Array or `options.maxEvents` is not a
 *   positive integer.
 * @throws SpireEdgeError `ERR_TPM_EVENT_LOG_INVALID` naming the record number, its offset
 *   and the field, for any malformed, oversized or unknown content.
 */
export function parseEventLog(bytes: Uint8Array, options?: ParseEventLogOptions): EventLog {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('event log must be a Uint8Array');
  const maxEvents = checkOptions(options);
  if (bytes.length === 0) invalid(0, 0, 'log', 'is empty');
  if (bytes.length > EVENT_LOG_LIMITS.maxBytes) {
    invalid(
      0,
      0,
      'log',
      `${bytes.length} bytes exceed the ${EVENT_LOG_LIMITS.maxBytes}-byte limit`,
    );
  }
  const c: Cursor = new Cursor(bytes.slice());
  const locality = new LocalityState();
  const events: LogEvent[] = [];

  // Record 0 is always a TCG_PCR_EVENT: the Spec ID header or a legacy event.
  const pcrIndex0 = c.u32('pcrIndex');
  const type0 = c.u32('eventType');
  const digest0 = c.bytes('digest', 20);
  const data0Offset = c.pos + 4;
  const data0 = c.sized('event');
  let specId: SpecIdEvent | undefined;
  if (type0 === EV_NO_ACTION && startsWithAscii(data0, SPEC_ID_03)) {
    if (pcrIndex0 !== 0) c.fail('pcrIndex', `${pcrIndex0} is not 0 for the Spec ID event`);
    if (digest0.some((b) => b !== 0)) c.fail('digest', 'is not zero for the Spec ID event');
    specId = parseSpecId(c, data0, data0Offset);
  } else {
    checkPcrIndex(c, pcrIndex0, type0);
    const typeName = checkType(c, type0);
    locality.see(c, pcrIndex0, type0, data0);
    events.push({
      index: 0,
      offset: 0,
      pcrIndex: pcrIndex0,
      type: type0,
      typeName,
      digests: new Map([['sha1', digest0]]),
      data: data0,
    });
  }

  while (c.remaining > 0) {
    c.record++;
    c.start = c.pos;
    if (c.record >= maxEvents) c.fail('log', `has more than ${maxEvents} records`);
    if (specId === undefined) {
      if (c.remaining < LEGACY_HEADER) {
        c.fail('header', `needs ${LEGACY_HEADER} bytes but only ${c.remaining} remain`);
      }
      const pcrIndex = c.u32('pcrIndex');
      const type = c.u32('eventType');
      checkPcrIndex(c, pcrIndex, type);
      const typeName = checkType(c, type);
      const digest = c.bytes('digest', 20);
      const data = c.sized('event');
      locality.see(c, pcrIndex, type, data);
      events.push({
        index: c.record,
        offset: c.start,
        pcrIndex,
        type,
        typeName,
        digests: new Map([['sha1', digest]]),
        data,
      });
      continue;
    }
    const pcrIndex = c.u32('pcrIndex');
    const type = c.u32('eventType');
    checkPcrIndex(c, pcrIndex, type);
    const typeName = checkType(c, type);
    const count = c.u32('digests.count');
    const algs = specId.algorithms;
    if (count !== algs.length) {
      c.fail(
        'digests.count',
        `${count} but the Spec ID event declares ${algs.length} algorithm${algs.length === 1 ? '' : 's'}`,
      );
    }
    const digests = new Map<PcrBank, Uint8Array>();
    const seen = new Set<number>();
    for (let i = 0; i < count; i++) {
      const alg = c.u16(`digests[${i}].hashAlg`);
      const declared = algs.find((a) => a.algorithmId === alg);
      if (declared === undefined) {
        c.fail(`digests[${i}].hashAlg`, `${algText(alg)} is not declared by the Spec ID event`);
      }
      if (seen.has(alg)) c.fail(`digests[${i}].hashAlg`, `${algText(alg)} appears twice`);
      seen.add(alg);
      const digest = c.bytes(`digests[${i}].digest`, declared.digestSize);
      if (declared.bank !== undefined) digests.set(declared.bank, digest);
    }
    const data = c.sized('event');
    locality.see(c, pcrIndex, type, data);
    events.push({ index: c.record, offset: c.start, pcrIndex, type, typeName, digests, data });
  }

  const banks: PcrBank[] =
    specId === undefined
      ? ['sha1']
      : specId.algorithms.flatMap((a) => (a.bank === undefined ? [] : [a.bank]));
  return {
    format: specId === undefined ? 'sha1' : 'crypto-agile',
    ...(specId === undefined ? {} : { specId }),
    banks,
    events,
    ...(locality.locality === undefined ? {} : { startupLocality: locality.locality }),
  };
}
