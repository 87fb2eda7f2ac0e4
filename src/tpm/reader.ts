/**
 * A bounded big-endian reader for TPM 2.0 marshalled structures (Part 2 §4–5: all integers
 * big-endian, TPM2B = UINT16 size || bytes).
 *
 * Every read is checked against the bytes that remain and every TPM2B size against its
 * maximum; a failure throws `SpireEdgeError('ERR_TPM_PARSE', …)` whose message names the
 * structure and the field path, e.g. `TPMS_ATTEST.extraData: size 70 exceeds the remaining
 * 12 bytes`. Nothing else escapes from reading untrusted bytes.
 */
import { SpireEdgeError } from '../common/errors.js';

/** Builds the coded parse error (for structure-level rules the reader cannot see). */
export function tpmParseError(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError('ERR_TPM_PARSE', message, cause === undefined ? {} : { cause });
}

/**
 * Reads one marshalled structure. Byte arrays returned are views into the input (no copies):
 * callers that keep them must not mutate the input.
 */
export class TpmReader {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  readonly #end: number;
  readonly #path: string[];
  #pos: number;

  /**
   * @param buf the bytes to read
   * @param structure the structure name used as the first component of error paths
   */
  constructor(buf: Uint8Array, structure: string, start = 0, end = buf.length, path?: string[]) {
    if (!(buf instanceof Uint8Array)) throw new TypeError(`${structure} must be a Uint8Array`);
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#pos = start;
    this.#end = end;
    this.#path = path ?? [structure];
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.#end - this.#pos;
  }

  /** The read position (offset into the original buffer). */
  get offset(): number {
    return this.#pos;
  }

  /** Throws the coded parse error for `field` (a name relative to the current path). */
  fail(field: string, rule: string): never {
    throw tpmParseError(`${this.#where(field)}: ${rule}`);
  }

  #where(field: string): string {
    return field === '' ? this.#path.join('.') : [...this.#path, field].join('.');
  }

  #need(field: string, n: number): number {
    if (n > this.#end - this.#pos) {
      this.fail(
        field,
        `needs ${n} byte${n === 1 ? '' : 's'} but only ${this.#end - this.#pos} remain`,
      );
    }
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  /** Reads a UINT8. */
  u8(field: string): number {
    return this.#view.getUint8(this.#need(field, 1));
  }

  /** Reads a UINT16. */
  u16(field: string): number {
    return this.#view.getUint16(this.#need(field, 2));
  }

  /** Reads a UINT32. */
  u32(field: string): number {
    return this.#view.getUint32(this.#need(field, 4));
  }

  /** Reads a UINT64. */
  u64(field: string): bigint {
    return this.#view.getBigUint64(this.#need(field, 8));
  }

  /** Reads `n` raw bytes. */
  bytes(field: string, n: number): Uint8Array {
    const at = this.#need(field, n);
    return this.#buf.subarray(at, at + n);
  }

  /** Reads a TPMI_YES_NO (0 or 1). */
  yesNo(field: string): boolean {
    const v = this.u8(field);
    if (v > 1) this.fail(field, `must be 0 (NO) or 1 (YES), found ${v}`);
    return v === 1;
  }

  /** Reads a TPM2B: a UINT16 size, at most `max`, then that many bytes. */
  tpm2b(field: string, max: number): Uint8Array {
    const size = this.u16(`${field}.size`);
    this.#checkSize(field, size, max);
    return this.bytes(field, size);
  }

  #checkSize(field: string, size: number, max: number): void {
    if (size > max) this.fail(field, `size ${size} exceeds the maximum ${max}`);
    if (size > this.#end - this.#pos) {
      this.fail(field, `size ${size} exceeds the remaining ${this.#end - this.#pos} bytes`);
    }
  }

  /**
   * Reads a TPM2B that wraps a structure (TPM2B_PUBLIC, TPM2B_CREATION_DATA…): checks the
   * size, runs `inner` on a reader limited to it, and requires `inner` to consume it exactly.
   * A size of zero is refused unless `allowEmpty` (then `inner` is not called).
   */
  sized<T>(field: string, max: number, inner: (r: TpmReader) => T): T;
  sized<T>(field: string, max: number, inner: (r: TpmReader) => T, allowEmpty: true): T | undefined;
  sized<T>(
    field: string,
    max: number,
    inner: (r: TpmReader) => T,
    allowEmpty = false,
  ): T | undefined {
    const size = this.u16(`${field}.size`);
    if (size === 0) {
      if (allowEmpty) return undefined;
      this.fail(field, 'size 0: the structure is missing');
    }
    this.#checkSize(field, size, max);
    const start = this.#pos;
    this.#pos += size;
    const sub = new TpmReader(this.#buf, '', start, start + size, [...this.#path, field]);
    const value = inner(sub);
    sub.end();
    return value;
  }

  /** Runs `inner` with `field` appended to the error path (for nested structures). */
  scope<T>(field: string, inner: () => T): T {
    this.#path.push(field);
    try {
      return inner();
    } finally {
      this.#path.pop();
    }
  }

  /** Requires every byte to have been read. */
  end(): void {
    const left = this.#end - this.#pos;
    if (left !== 0) {
      this.fail('', `${left} unexpected trailing byte${left === 1 ? '' : 's'} after the structure`);
    }
  }
}

/**
 * Parses `bytes` as one whole structure with `parse`, refusing trailing bytes. Any error
 * other than the coded parse error (there should be none) is wrapped into one, so callers
 * of the public parsers see only `ERR_TPM_PARSE`.
 */
export function parseWhole<T>(bytes: Uint8Array, structure: string, parse: (r: TpmReader) => T): T {
  const r = new TpmReader(bytes, structure);
  try {
    const v = parse(r);
    r.end();
    return v;
  } catch (err) {
    if (err instanceof SpireEdgeError && err.code === 'ERR_TPM_PARSE') throw err;
    throw tpmParseError(`${structure}: malformed (${(err as Error).message})`, err);
  }
}
