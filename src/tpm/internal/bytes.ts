/** Byte helpers shared by the TPM code. */
import { timingSafeEqual } from 'node:crypto';

/** True when `a` and `b` hold the same bytes (not constant-time: for public values). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Constant-time equality for secrets and nonces: the time taken depends only on the
 * lengths, which are public.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/** Lower-case hex. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** A Buffer view of `b` (no copy), for node:crypto calls. */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** `b` without leading zero bytes (at least one byte is kept). */
export function stripLeadingZeros(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

/** `b` left-padded with zeros to `size` bytes; undefined when its magnitude is longer. */
export function leftPad(b: Uint8Array, size: number): Uint8Array | undefined {
  const m = stripLeadingZeros(b);
  if (m.length > size) return undefined;
  if (m.length === size) return m;
  const out = new Uint8Array(size);
  out.set(m, size - m.length);
  return out;
}
