/**
 * Sealing secrets on their way into the store (bounded concurrency, as a hardware sealer
 * serialises anyway).
 */
import { RecordKind, type StoredSecret, type StoredValue } from '../layout.js';
import type { Sealer } from '../sealer.js';
import type { StoredRecordInput } from './transaction.js';

/** Unseal/seal at most this many secrets at once (a hardware sealer queues anyway). */
export const SEAL_CONCURRENCY = 32;

/** Maps `items` through `fn` with at most `limit` calls in flight, keeping order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const textEncoder = new TextEncoder();

/** Seals `plain`, kept under `recordKey`, with `sealer`, or keeps it as is without one. */
export async function sealSecret(
  sealer: Sealer | undefined,
  plain: Uint8Array,
  recordKey: string,
): Promise<StoredSecret> {
  if (sealer === undefined) return { sealed: false, bytes: plain };
  const sealed = await sealer.seal(plain, { recordKey });
  if (!(sealed instanceof Uint8Array)) throw new TypeError('the sealer must return a Uint8Array');
  return { sealed: true, bytes: sealed };
}

/** The stored form of the record to be kept under `key`: its secrets sealed. */
export async function toStored(
  input: StoredRecordInput,
  sealer: Sealer | undefined,
  key: string,
): Promise<StoredValue> {
  switch (input.kind) {
    case RecordKind.agent: {
      const { privateKey, ...rest } = input.record;
      if (privateKey === undefined) return { kind: input.kind, record: rest };
      return {
        kind: input.kind,
        record: { ...rest, privateKey: await sealSecret(sealer, privateKey, key) },
      };
    }
    case RecordKind.x509Svid:
      return {
        kind: input.kind,
        record: {
          ...input.record,
          privateKey: await sealSecret(sealer, input.record.privateKey, key),
        },
      };
    case RecordKind.jwtSvid:
      return {
        kind: input.kind,
        record: {
          ...input.record,
          token: await sealSecret(sealer, textEncoder.encode(input.record.token), key),
        },
      };
    default:
      return input;
  }
}
