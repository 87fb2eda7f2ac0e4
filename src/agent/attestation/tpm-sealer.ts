/**
 * The agent store's sealer bound to the device's TPM: secrets at rest (the agent's key, the
 * workload SVID keys, cached JWT-SVIDs) are encrypted under a data key that only this TPM can
 * unseal.
 *
 * - **Data key.** 32 bytes, SHA-256 of 32 bytes from the node's CSPRNG and 32 from the TPM's
 *   RNG (either one alone suffices), sealed with `Tpm.seal` under the storage root key (a
 *   transient ECC P-256 SRK derived from the owner hierarchy's seed, so the blob loads in this
 *   TPM only) and kept in the device record `device:sealing-key`:
 *   `0x01 ‖ sealed blob (src/tpm/device/sealed-blob.ts)`. It is created once, written with
 *   fsync before anything is sealed with it, and unsealed ONCE per agent start (one TPM
 *   session at store open); afterwards it lives only in this process's memory and is zeroed
 *   when the store closes.
 * - **PCR binding: off by default.** Bound to PCR values (`seal_pcrs`), the key no longer
 *   unseals after a firmware, bootloader or Secure Boot change — every update would make the
 *   agent lose its store and re-attest. Unbound, the key is still useless off this TPM (a
 *   copied disk, another device). With `pcrs` the key is sealed to their current sha256 values;
 *   a store whose key was sealed under another selection is resealed at start.
 * - **Each secret**: AES-256-GCM under the data key, a fresh random 12-byte IV each time:
 *   `version (1) ‖ IV (12) ‖ ciphertext ‖ tag (16)`, additional data
 *   `"spire-edge/agent-store/secret" ‖ 0x00 ‖ version ‖ record key (UTF-8)` — so a sealed value
 *   does not unseal under another record's key, and the version byte cannot be changed. Random
 *   IVs bound one key to about 2^32 seals (NIST SP 800-38D): decades of rotations.
 *
 * Failure modes: the TPM refuses the sealed key (another TPM, a cleared TPM, a changed bound
 * PCR, a damaged record) → `ERR_AGENT_STORE_SEALED`, and the store's recovery quarantines the
 * store and starts fresh (the agent re-attests). A TPM that cannot be reached, or answers with
 * a transient warning (out of memory, retry, lockout), fails the open with its own error
 * instead, so a passing fault never throws the store away. A secret that fails authentication
 * → `ERR_AGENT_SEALED_SECRET_INVALID` (the store turns it into `ERR_AGENT_STORE_SEALED`).
 *
 * The sealer never needs the TPM after the store opened: store writes made while an
 * attestation holds the TPM cannot wait on it.
 */
import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { cryptoRandom, type RandomSource } from '../../common/random.js';
import { decodeSealedBlob } from '../../tpm/device/sealed-blob.js';
import type { PcrSelection } from '../../tpm/device/tpm.js';
import { tpmRcBase } from '../../tpm/device/tpm-error.js';
import type { DeviceRecordAccess, SealContext, Sealer, SealerFactory } from '../storage/sealer.js';
import { storeError } from '../storage/store-errors.js';
import type { TpmAccess } from './tpm-access.js';

/** The device record that holds the sealed data key. */
export const SEALING_KEY_RECORD = 'sealing-key';
/** Format version of {@link SEALING_KEY_RECORD}. */
export const SEALING_KEY_FORMAT = 1;
/** The version byte of each sealed secret. */
export const SEALED_SECRET_VERSION = 1;
/** Data key length (AES-256). */
export const DATA_KEY_BYTES = 32;

const IV_BYTES = 12;
const TAG_BYTES = 16;
const AAD_LABEL = new TextEncoder().encode('spire-edge/agent-store/secret\0');
const textEncoder = new TextEncoder();

/** A {@link Sealer} over a data key held in memory; `close()` zeroes the key. */
export interface DataKeySealer extends Sealer {
  close(): void;
  readonly closed: boolean;
}

function invalidSecret(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_SEALED_SECRET_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

function aad(version: number, recordKey: string): Buffer {
  return Buffer.concat([AAD_LABEL, Uint8Array.of(version), textEncoder.encode(recordKey)]);
}

function recordKeyOf(context: SealContext | undefined): string {
  const key = context?.recordKey;
  if (typeof key !== 'string' || key === '') {
    throw new TypeError('the data key sealer needs the record key as context');
  }
  return key;
}

/**
 * A sealer that encrypts each secret with AES-256-GCM under `dataKey` (32 bytes, copied; the
 * caller zeroes its own copy), bound to the record key it is given as context (see the module
 * docs for the format). Trusts nothing it unseals: version, length and tag are checked.
 *
 * Errors: `ERR_AGENT_SEALED_SECRET_INVALID` (unseal: wrong version, too short, or failed
 * authentication — another key, another record, tampered), `ERR_AGENT_SEALER_CLOSED` (after
 * close()); TypeError without a context or for non-bytes.
 */
export function createDataKeySealer(
  dataKey: Uint8Array,
  options: { readonly random?: RandomSource } = {},
): DataKeySealer {
  if (!(dataKey instanceof Uint8Array) || dataKey.length !== DATA_KEY_BYTES) {
    throw new TypeError(`dataKey must be ${String(DATA_KEY_BYTES)} bytes`);
  }
  const random = options.random ?? cryptoRandom;
  const key = Buffer.alloc(DATA_KEY_BYTES);
  key.set(dataKey);
  let closed = false;
  const live = (): void => {
    if (closed) {
      throw new SpireEdgeError('ERR_AGENT_SEALER_CLOSED', 'could not use the sealer: it is closed');
    }
  };
  return {
    get closed() {
      return closed;
    },
    async seal(plain, context) {
      if (!(plain instanceof Uint8Array)) throw new TypeError('plain must be a Uint8Array');
      const recordKey = recordKeyOf(context);
      live();
      const iv = random.bytes(IV_BYTES);
      if (!(iv instanceof Uint8Array) || iv.length !== IV_BYTES) {
        throw new TypeError('random.bytes returned the wrong length');
      }
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(aad(SEALED_SECRET_VERSION, recordKey));
      const body = Buffer.concat([cipher.update(plain), cipher.final()]);
      const out = new Uint8Array(1 + IV_BYTES + body.length + TAG_BYTES);
      out[0] = SEALED_SECRET_VERSION;
      out.set(iv, 1);
      out.set(body, 1 + IV_BYTES);
      out.set(cipher.getAuthTag(), 1 + IV_BYTES + body.length);
      return out;
    },
    async unseal(sealed, context) {
      if (!(sealed instanceof Uint8Array)) throw new TypeError('sealed must be a Uint8Array');
      const recordKey = recordKeyOf(context);
      live();
      if (sealed.length < 1 + IV_BYTES + TAG_BYTES) {
        throw invalidSecret(
          `sealed secret is ${String(sealed.length)} bytes, shorter than its ${String(1 + IV_BYTES + TAG_BYTES)}-byte frame`,
        );
      }
      const version = sealed[0]!;
      if (version !== SEALED_SECRET_VERSION) {
        throw invalidSecret(`sealed secret has unknown version ${String(version)}`);
      }
      const iv = sealed.subarray(1, 1 + IV_BYTES);
      const body = sealed.subarray(1 + IV_BYTES, sealed.length - TAG_BYTES);
      const tag = sealed.subarray(sealed.length - TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(version, recordKey));
      decipher.setAuthTag(tag);
      try {
        const plain = Buffer.concat([decipher.update(body), decipher.final()]);
        return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
      } catch (err) {
        throw invalidSecret(
          'sealed secret failed authentication: sealed with another key, for another record, or altered',
          err,
        );
      }
    },
    close() {
      key.fill(0);
      closed = true;
    },
  };
}

/** Options of {@link createTpmSealer}. */
export interface TpmSealerOptions {
  /** The TPM, shared with the node attestor. */
  readonly access: TpmAccess;
  /** `seal_pcrs`: bind the data key to these PCRs' current values (default: no binding). */
  readonly pcrs?: PcrSelection;
  /** Node randomness for the data key and the IVs (default: the system CSPRNG). */
  readonly random?: RandomSource;
  /** Told what happened at store open (for the agent's log). */
  readonly onOpen?: (event: TpmSealerOpenEvent) => void;
}

/** What the TPM sealer did when the store opened. */
export interface TpmSealerOpenEvent {
  /** `created`: a new data key; `unsealed`: the stored one; `resealed`: stored, then sealed anew under `pcrs`. */
  readonly action: 'created' | 'unsealed' | 'resealed';
  /** Time spent in the TPM session, ms. */
  readonly tpmMs: number;
  /** The PCR selection the data key is now sealed to. */
  readonly pcrs: PcrSelection | undefined;
}

function encodeKeyRecord(blob: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + blob.length);
  out[0] = SEALING_KEY_FORMAT;
  out.set(blob, 1);
  return out;
}

function sealedError(message: string, cause?: unknown) {
  return storeError('ERR_AGENT_STORE_SEALED', message, cause, { record: SEALING_KEY_RECORD });
}

/**
 * True when the TPM's answer means "this sealed key is not for this TPM (any more)": a blob it
 * cannot load or unseal. False for faults that may pass (TPM warnings such as out of memory,
 * retry, lockout; errors below the TPM: TCTI, connection), which must not cost the store.
 */
function keyRefused(err: unknown): boolean {
  if (!(err instanceof SpireEdgeError)) return false;
  if (err.code === 'ERR_TPM_BLOB_INVALID' || err.code === 'ERR_TPM_SEALED_BLOB_INVALID') {
    return true;
  }
  if (err.code !== 'ERR_TPM_RC') return false;
  const rc = err.details['rc'];
  if (typeof rc !== 'number' || rc >>> 16 !== 0) return false;
  const base = tpmRcBase(rc);
  // Format-zero warnings (TPM_RC_WARN = 0x900) are transient.
  return !((base & 0x80) === 0 && (base & 0x900) === 0x900);
}

function samePcrs(a: PcrSelection | undefined, b: PcrSelection | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const x = [...new Set(a.indices)].sort((p, q) => p - q);
  const y = [...new Set(b.indices)].sort((p, q) => p - q);
  return a.bank === b.bank && x.length === y.length && x.every((v, i) => v === y[i]);
}

/**
 * The store's sealer factory for a TPM (pass it as `openAgentStore({ createSealer })`): at open
 * it unseals the data key from `device:sealing-key` in one TPM session, or creates, seals and
 * durably stores a new one, and returns a {@link createDataKeySealer} over it. See the module
 * docs for what is trusted and how it fails.
 *
 * @throws SpireEdgeError `ERR_AGENT_STORE_SEALED` (the TPM refuses the stored key, or the record
 * is malformed — recoverable by quarantine), `ERR_AGENT_STORE_WRITE`; the TPM's own errors for
 * faults that may pass (the store reports them as `ERR_AGENT_STORE_IO`).
 */
export function createTpmSealer(options: TpmSealerOptions): SealerFactory {
  if (typeof options?.access?.withTpm !== 'function') {
    throw new TypeError('createTpmSealer needs a TpmAccess');
  }
  const random = options.random ?? cryptoRandom;
  const pcrs = options.pcrs;
  const sealOptions = pcrs === undefined ? {} : { pcrs };

  return async (devices: DeviceRecordAccess): Promise<Sealer> => {
    const stored = devices.get(SEALING_KEY_RECORD);
    const t0 = performance.now();
    if (stored === undefined) {
      const { dataKey, blob } = await options.access.withTpm(async (tpm) => {
        const node = random.bytes(DATA_KEY_BYTES);
        const chip = await tpm.getRandom(DATA_KEY_BYTES);
        const k = createHash('sha256').update(node).update(chip).digest();
        node.fill(0);
        chip.fill(0);
        try {
          return { dataKey: k, blob: await tpm.seal(k, sealOptions) };
        } catch (err) {
          k.fill(0);
          throw err;
        }
      });
      const tpmMs = performance.now() - t0;
      try {
        // Durable before anything is sealed with it: a crash before this leaves no key and
        // nothing sealed, so the next start simply makes another one.
        await devices.put(SEALING_KEY_RECORD, encodeKeyRecord(blob));
        const sealer = createDataKeySealer(dataKey, { random });
        options.onOpen?.({ action: 'created', tpmMs, pcrs });
        return sealer;
      } finally {
        dataKey.fill(0);
      }
    }

    if (stored.length < 2 || stored[0] !== SEALING_KEY_FORMAT) {
      throw sealedError(
        `device record "${SEALING_KEY_RECORD}" has unknown format ${String(stored[0] ?? 'none')}`,
      );
    }
    const blob = stored.subarray(1);
    let boundTo: PcrSelection | undefined;
    try {
      boundTo = decodeSealedBlob(blob).pcrs;
    } catch (err) {
      throw sealedError(
        `device record "${SEALING_KEY_RECORD}" is not a sealed blob: ${describeError(err)}`,
        err,
      );
    }
    const { dataKey, resealed } = await options.access.withTpm(async (tpm) => {
      let k: Uint8Array;
      try {
        k = await tpm.unseal(blob);
      } catch (err) {
        if (!keyRefused(err)) throw err;
        throw sealedError(
          `the tpm refused the agent store's sealed data key (another or a cleared tpm, or a bound pcr changed): ${describeError(err)}`,
          err,
        );
      }
      if (k.length !== DATA_KEY_BYTES) {
        k.fill(0);
        throw sealedError(
          `the tpm unsealed ${String(k.length)} bytes from device record "${SEALING_KEY_RECORD}", not a ${String(DATA_KEY_BYTES)}-byte key`,
        );
      }
      if (samePcrs(boundTo, pcrs)) return { dataKey: k, resealed: undefined };
      try {
        return { dataKey: k, resealed: await tpm.seal(k, sealOptions) };
      } catch (err) {
        k.fill(0);
        throw err;
      }
    });
    const tpmMs = performance.now() - t0;
    try {
      if (resealed !== undefined) await devices.put(SEALING_KEY_RECORD, encodeKeyRecord(resealed));
      const sealer = createDataKeySealer(dataKey, { random });
      options.onOpen?.({ action: resealed === undefined ? 'unsealed' : 'resealed', tpmMs, pcrs });
      return sealer;
    } finally {
      dataKey.fill(0);
    }
  };
}
