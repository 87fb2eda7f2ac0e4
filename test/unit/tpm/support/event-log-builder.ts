/**
 * Builds TCG event logs byte by byte for tests (little-endian, PFP §10): legacy SHA-1 logs
 * (TCG_PCR_EVENT records) and crypto-agile logs (Spec ID Event03 header + TCG_PCR_EVENT2).
 * Digests default to the hash of the event data in each bank, as firmware computes most of
 * them.
 */
import { createHash } from 'node:crypto';
import { tpmHashByAlg } from '../../../../src/tpm/index.js';

/** One event to write. */
export interface BuildEvent {
  readonly pcr: number;
  readonly type: number;
  readonly data: Uint8Array | string;
  /** Digests by TPM_ALG_ID (default: hash of `data`; 0xab bytes for unknown algorithms). */
  readonly digests?: ReadonlyMap<number, Uint8Array>;
  /** Overrides the digest count written (crypto-agile). */
  readonly count?: number;
}

/** Spec ID event fields (defaults: a valid 2.0 header). */
export interface SpecIdFields {
  readonly algorithms: ReadonlyArray<readonly [alg: number, size: number]>;
  readonly specVersionMajor?: number;
  readonly specVersionMinor?: number;
  readonly uintnSize?: number;
  readonly vendorInfo?: Uint8Array;
  /** Overrides vendorInfoSize. */
  readonly vendorInfoSize?: number;
  /** Overrides numberOfAlgorithms. */
  readonly numberOfAlgorithms?: number;
  readonly pcrIndex?: number;
}

export const ALG = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c } as const;

export const SHA1_256: ReadonlyArray<readonly [number, number]> = [
  [ALG.sha1, 20],
  [ALG.sha256, 32],
];

function u16(n: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, n, true);
  return b;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

export function bytesOf(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? new Uint8Array(Buffer.from(data, 'latin1')) : data;
}

/** The digest firmware would log for `data` with algorithm `alg`. */
export function digestFor(alg: number, size: number, data: Uint8Array | string): Uint8Array {
  const h = tpmHashByAlg(alg);
  if (h === undefined) return new Uint8Array(size).fill(0xab);
  return new Uint8Array(createHash(h.node).update(bytesOf(data)).digest());
}

/** A TCG_PCR_EVENT record (legacy format; also the Spec ID header). */
export function legacyRecord(
  pcr: number,
  type: number,
  data: Uint8Array | string,
  digest?: Uint8Array,
): Uint8Array {
  const d = bytesOf(data);
  return concat(u32(pcr), u32(type), digest ?? digestFor(ALG.sha1, 20, d), u32(d.length), d);
}

/** A legacy SHA-1 log. */
export function legacyLog(events: readonly BuildEvent[]): Uint8Array {
  return concat(
    ...events.map((e) => legacyRecord(e.pcr, e.type, e.data, e.digests?.get(ALG.sha1))),
  );
}

/** The TCG_EfiSpecIDEvent data. */
export function specIdData(f: SpecIdFields): Uint8Array {
  const vendor = f.vendorInfo ?? new Uint8Array(0);
  return concat(
    bytesOf('Spec ID Event03\0'),
    u32(0),
    Uint8Array.of(f.specVersionMinor ?? 0, f.specVersionMajor ?? 2, 0, f.uintnSize ?? 2),
    u32(f.numberOfAlgorithms ?? f.algorithms.length),
    ...f.algorithms.map(([alg, size]) => concat(u16(alg), u16(size))),
    Uint8Array.of(f.vendorInfoSize ?? vendor.length),
    vendor,
  );
}

/** A TCG_PCR_EVENT2 record. */
export function agileRecord(
  algorithms: ReadonlyArray<readonly [number, number]>,
  e: BuildEvent,
): Uint8Array {
  const data = bytesOf(e.data);
  const digests = algorithms.map(([alg, size]) =>
    concat(u16(alg), e.digests?.get(alg) ?? digestFor(alg, size, data)),
  );
  return concat(
    u32(e.pcr),
    u32(e.type),
    u32(e.count ?? algorithms.length),
    ...digests,
    u32(data.length),
    data,
  );
}

/** A crypto-agile log: the Spec ID header, then `events`. */
export function agileLog(spec: SpecIdFields, events: readonly BuildEvent[]): Uint8Array {
  return concat(
    legacyRecord(spec.pcrIndex ?? 0, 3, specIdData(spec), new Uint8Array(20)),
    ...events.map((e) => agileRecord(spec.algorithms, e)),
  );
}

/** EFI_GLOBAL_VARIABLE 8be4df61-93ca-11d2-aa0d-00e098032b8c as EFI_GUID bytes. */
export const EFI_GLOBAL_VARIABLE_GUID = Uint8Array.from(
  Buffer.from('61dfe48bca93d211aa0d00e098032b8c', 'hex'),
);

/** UEFI_VARIABLE_DATA (PFP §10.2.6). */
export function variableData(guid: Uint8Array, name: string, value: Uint8Array): Uint8Array {
  return concat(
    guid,
    u64(name.length),
    u64(value.length),
    new Uint8Array(Buffer.from(name, 'utf16le')),
    value,
  );
}

/** Event types used in tests. */
export const EV = {
  POST_CODE: 0x1,
  NO_ACTION: 0x3,
  SEPARATOR: 0x4,
  S_CRTM_VERSION: 0x8,
  EFI_VARIABLE_DRIVER_CONFIG: 0x80000001,
  EFI_ACTION: 0x80000007,
  EFI_VARIABLE_AUTHORITY: 0x800000e0,
} as const;

/** The StartupLocality EV_NO_ACTION data (PFP §10.4.5.3). */
export function startupLocality(locality: number): Uint8Array {
  return concat(bytesOf('StartupLocality\0'), Uint8Array.of(locality));
}

/** A firmware-like PCR 7: SecureBoot (or none), PK, then the separator, then an authority. */
export function pcr7Events(secureBoot: Uint8Array | undefined): BuildEvent[] {
  const out: BuildEvent[] = [];
  if (secureBoot !== undefined) {
    out.push({
      pcr: 7,
      type: EV.EFI_VARIABLE_DRIVER_CONFIG,
      data: variableData(EFI_GLOBAL_VARIABLE_GUID, 'SecureBoot', secureBoot),
    });
  }
  out.push(
    {
      pcr: 7,
      type: EV.EFI_VARIABLE_DRIVER_CONFIG,
      data: variableData(EFI_GLOBAL_VARIABLE_GUID, 'PK', Uint8Array.of(1, 2, 3)),
    },
    { pcr: 7, type: EV.SEPARATOR, data: new Uint8Array(4) },
    { pcr: 7, type: EV.EFI_VARIABLE_AUTHORITY, data: 'authority' },
  );
  return out;
}
