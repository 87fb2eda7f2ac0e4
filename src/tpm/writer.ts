/**
 * A big-endian writer for TPM 2.0 marshalled structures (Part 2 §4–5). The values come from
 * the caller, so a value out of range or a TPM2B over its maximum is a programming error:
 * `TypeError` naming the field.
 */

/** Appends TPM-marshalled values to a growing buffer. */
export class TpmWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  constructor(initialCapacity = 256) {
    this.#buf = new Uint8Array(initialCapacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  #reserve(n: number): number {
    const need = this.#len + n;
    if (need > this.#buf.length) {
      const next = new Uint8Array(Math.max(need, this.#buf.length * 2));
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    const at = this.#len;
    this.#len = need;
    return at;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  /** Writes a UINT8. */
  u8(v: number, field = 'value'): this {
    checkInt(v, 0xff, field);
    const at = this.#reserve(1); // before reading #view: reserving may replace it
    this.#view.setUint8(at, v);
    return this;
  }

  /** Writes a UINT16. */
  u16(v: number, field = 'value'): this {
    checkInt(v, 0xffff, field);
    const at = this.#reserve(2);
    this.#view.setUint16(at, v);
    return this;
  }

  /** Writes a UINT32. */
  u32(v: number, field = 'value'): this {
    checkInt(v, 0xffffffff, field);
    const at = this.#reserve(4);
    this.#view.setUint32(at, v);
    return this;
  }

  /** Writes a UINT64. */
  u64(v: bigint, field = 'value'): this {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) {
      throw new TypeError(`${field} must be a bigint in [0, 2^64)`);
    }
    const at = this.#reserve(8);
    this.#view.setBigUint64(at, v);
    return this;
  }

  /** Writes raw bytes. */
  bytes(b: Uint8Array, field = 'value'): this {
    if (!(b instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
    const at = this.#reserve(b.length);
    this.#buf.set(b, at);
    return this;
  }

  /** Writes a TPM2B: UINT16 size then the bytes; `max` is the buffer's maximum. */
  tpm2b(b: Uint8Array, max: number, field = 'value'): this {
    if (!(b instanceof Uint8Array)) throw new TypeError(`${field} must be a Uint8Array`);
    if (b.length > max)
      throw new TypeError(`${field} is ${b.length} bytes, over the maximum ${max}`);
    return this.u16(b.length, `${field}.size`).bytes(b, field);
  }

  /** Writes a TPM2B wrapping the structure `inner` writes (size computed afterwards). */
  sized(inner: (w: TpmWriter) => void, max: number, field = 'value'): this {
    const at = this.#reserve(2);
    const start = this.#len;
    inner(this);
    const size = this.#len - start;
    if (size > max) throw new TypeError(`${field} is ${size} bytes, over the maximum ${max}`);
    this.#view.setUint16(at, size);
    return this;
  }

  /** The bytes written (a copy). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

function checkInt(v: number, max: number, field: string): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new TypeError(`${field} must be an integer in [0, ${max}]`);
  }
}

/** Marshals with a fresh writer. */
export function marshalWith(write: (w: TpmWriter) => void, capacity = 256): Uint8Array {
  const w = new TpmWriter(capacity);
  write(w);
  return w.finish();
}
