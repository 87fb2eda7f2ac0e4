/**
 * PEM (RFC 7468) encoding and decoding. Strict about labels and base64; tolerant of CRLF and
 * surrounding text (explanatory text between blocks is allowed by RFC 7468 §5.2).
 *
 * Errors: `ERR_PEM_INVALID`.
 */
import { SpireEdgeError } from './errors.js';

export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

const BLOCK_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes every PEM block in `text`, in order. */
export function decodePem(text: string): PemBlock[] {
  if (typeof text !== 'string') throw new TypeError('PEM input must be a string');
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK_RE)) {
    const [, begin, body, end] = m;
    if (begin !== end) {
      throw new SpireEdgeError('ERR_PEM_INVALID', `PEM block BEGIN ${begin} ends with END ${end}`);
    }
    const b64 = body!.replace(/\s+/g, '');
    if (!B64_RE.test(b64) || b64.length % 4 !== 0) {
      throw new SpireEdgeError('ERR_PEM_INVALID', `PEM block ${begin} has invalid base64`);
    }
    out.push({ label: begin!, der: new Uint8Array(Buffer.from(b64, 'base64')) });
  }
  if (out.length === 0 && /-----BEGIN /.test(text)) {
    throw new SpireEdgeError('ERR_PEM_INVALID', 'PEM block is not terminated');
  }
  return out;
}

/** Decodes the blocks with `label`, failing when a block has another label. */
export function decodePemOfType(text: string, label: string, what: string): Uint8Array[] {
  const blocks = decodePem(text);
  const ders: Uint8Array[] = [];
  for (const b of blocks) {
    if (b.label !== label) {
      throw new SpireEdgeError(
        'ERR_PEM_INVALID',
        `${what}: unexpected PEM block ${b.label}, expected ${label}`,
      );
    }
    ders.push(b.der);
  }
  return ders;
}

/** Encodes DER bytes as one PEM block with 64-character lines. */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** True when the bytes look like PEM text rather than DER. */
export function looksLikePem(data: Uint8Array | string): boolean {
  if (typeof data === 'string') return data.includes('-----BEGIN ');
  return Buffer.from(data.buffer, data.byteOffset, Math.min(data.byteLength, 4096))
    .toString('latin1')
    .includes('-----BEGIN ');
}
