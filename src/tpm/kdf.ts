/**
 * The TPM key derivation functions (TPM 2.0 Part 1 §11.4.10):
 * - KDFa: SP 800-108 counter mode with HMAC, `K(i) = HMAC(key, [i]32 || label || 0x00 ||
 *   contextU || contextV || [bits]32)`;
 * - KDFe: SP 800-56A concatenation KDF, `K(i) = H([i]32 || Z || use || 0x00 || partyUInfo ||
 *   partyVInfo)`.
 * Labels are NUL-terminated strings ("IDENTITY", "STORAGE", "INTEGRITY"…); the terminating
 * 0x00 is added here. When `bits` is not a multiple of 8 the extra high-order bits of the
 * first byte are cleared, as the specification says.
 */
import { createHash, createHmac } from 'node:crypto';
import type { TpmHash } from './hash.js';

const enc = new TextEncoder();

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits <= 0 || bits > 0xffff * 8) {
    throw new TypeError('bits must be a positive integer');
  }
}

function finish(blocks: Uint8Array[], bits: number): Uint8Array {
  const len = Math.ceil(bits / 8);
  const out = new Uint8Array(len);
  let at = 0;
  for (const b of blocks) {
    out.set(b.subarray(0, Math.min(b.length, len - at)), at);
    at += b.length;
    if (at >= len) break;
  }
  if (bits % 8 !== 0) out[0]! &= (1 << (bits % 8)) - 1;
  return out;
}

/** KDFa(hashAlg, key, label, contextU, contextV, bits). */
export function kdfa(
  hash: TpmHash,
  key: Uint8Array,
  label: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Uint8Array {
  checkBits(bits);
  const labelBytes = enc.encode(`${label}\0`);
  const blocks: Uint8Array[] = [];
  for (let i = 1, made = 0; made < bits; i++, made += hash.size * 8) {
    blocks.push(
      createHmac(hash.node, key)
        .update(u32(i))
        .update(labelBytes)
        .update(contextU)
        .update(contextV)
        .update(u32(bits))
        .digest(),
    );
  }
  return finish(blocks, bits);
}

/** KDFe(hashAlg, Z, use, partyUInfo, partyVInfo, bits). */
export function kdfe(
  hash: TpmHash,
  z: Uint8Array,
  use: string,
  partyUInfo: Uint8Array,
  partyVInfo: Uint8Array,
  bits: number,
): Uint8Array {
  checkBits(bits);
  const useBytes = enc.encode(`${use}\0`);
  const blocks: Uint8Array[] = [];
  for (let i = 1, made = 0; made < bits; i++, made += hash.size * 8) {
    blocks.push(
      createHash(hash.node)
        .update(u32(i))
        .update(z)
        .update(useBytes)
        .update(partyUInfo)
        .update(partyVInfo)
        .digest(),
    );
  }
  return finish(blocks, bits);
}
