/**
 * {@link openTpm}: the {@link Tpm} implementation over the native tpm2-tss addon
 * (native/tpm*.cc). This adapter owns the policy the C++ layer leaves out: which EK handles to
 * try, caching the EK per context, checking AK names, the sealed-blob format, argument checks,
 * and the in-process mutex that serialises callers (the addon serialises per context too; the
 * queue keeps waiting callers off the libuv thread pool).
 *
 * Trusts: the TPM behind the TCTI string, for returning what it produced. Returns unverified
 * data (see ./tpm.ts): the caller parses and verifies with src/tpm.
 */
import { createHash } from 'node:crypto';
import { SpireEdgeError } from '../../common/errors.js';
import { loadNativeAddon, type NativeAddon, type NativeTpmContext } from '../../native/addon.js';
import { EK_LOCATIONS } from './ek-profile.js';
import { SerialQueue } from './internal/serial-queue.js';
import { decodeSealedBlob, encodeSealedBlob } from './sealed-blob.js';
import type {
  AkAlgorithm,
  AkBlobs,
  Credential,
  EkAlgorithm,
  LoadedAk,
  PcrBank,
  PcrSelection,
  SealOptions,
  Tpm,
  TpmHandleKind,
  TpmQuote,
} from './tpm.js';
import { TPM_RC, tpmError, tpmRcBase } from './tpm-error.js';

/** Options of {@link openTpm}. */
export interface OpenTpmOptions {
  /**
   * tpm2-tss TCTI configuration: `device:/dev/tpmrm0` (kernel resource manager; the default
   * on real hardware), `swtpm:host=127.0.0.1,port=2321`, `mssim:host=…,port=…`.
   */
  readonly tcti: string;
  /**
   * Persistent handles to look for each EK at (default: {@link EK_LOCATIONS}); `null` always
   * re-derives that EK from its template.
   */
  readonly persistentEkHandles?: Partial<Readonly<Record<EkAlgorithm, number | null>>>;
}

const EK_ALGS: readonly EkAlgorithm[] = ['rsa', 'ecc-p256', 'ecc-p384'];
const AK_ALGS: readonly AkAlgorithm[] = ['ecc-p256', 'rsa-2048'];
const BANKS: readonly PcrBank[] = ['sha1', 'sha256', 'sha384', 'sha512'];
const HANDLE_KINDS: readonly TpmHandleKind[] = ['transient', 'persistent', 'loaded-session'];
const NAME_HASH: Readonly<Record<number, string>> = {
  4: 'sha1',
  11: 'sha256',
  12: 'sha384',
  13: 'sha512',
};

/**
 * Opens the TPM named by `tcti`. Errors: `ERR_NATIVE_UNAVAILABLE` (addon not built, or built
 * without TPM support), `ERR_TPM_RC` (the TCTI could not be loaded or the TPM not reached:
 * `details.op` says which, e.g. `Tss2_TctiLdr_Initialize`).
 */
export async function openTpm(options: OpenTpmOptions): Promise<Tpm> {
  if (typeof options?.tcti !== 'string' || options.tcti === '') {
    throw new TypeError('tcti must be a non-empty string');
  }
  const handles: Record<EkAlgorithm, number | undefined> = {
    rsa: EK_LOCATIONS.rsa.persistentHandle,
    'ecc-p256': EK_LOCATIONS['ecc-p256'].persistentHandle,
    'ecc-p384': EK_LOCATIONS['ecc-p384'].persistentHandle,
  };
  for (const [alg, h] of Object.entries(options.persistentEkHandles ?? {})) {
    if (!EK_ALGS.includes(alg as EkAlgorithm)) throw new TypeError(`unknown ek algorithm ${alg}`);
    if (h !== null && h !== undefined && !(Number.isInteger(h) && h >>> 24 === 0x81)) {
      throw new TypeError(`persistent ek handle for ${alg} must be in 0x81000000..0x81ffffff`);
    }
    handles[alg as EkAlgorithm] = h ?? undefined;
  }
  const addon = loadNativeAddon();
  if (typeof addon.tpmOpen !== 'function') {
    throw new SpireEdgeError(
      'ERR_NATIVE_UNAVAILABLE',
      'native addon was built without tpm support (no tpm2-tss headers): install libtss2-dev and run "npm run build:native"',
    );
  }
  let ctx: NativeTpmContext;
  try {
    ctx = await addon.tpmOpen(options.tcti);
  } catch (e) {
    throw tpmError(e, `open tpm "${options.tcti}"`);
  }
  return new NativeTpm(addon, ctx, handles);
}

interface Ek {
  readonly handle: number;
  readonly publicArea: Uint8Array;
}

class NativeTpm implements Tpm {
  readonly #addon: NativeAddon;
  readonly #ctx: NativeTpmContext;
  readonly #queue = new SerialQueue();
  readonly #persistent: Readonly<Record<EkAlgorithm, number | undefined>>;
  readonly #eks = new Map<EkAlgorithm, Ek>();
  /** AKs this Tpm loaded (ESYS handles mean nothing in another context). */
  readonly #aks = new WeakSet<LoadedAk>();
  #closing: Promise<void> | undefined;

  constructor(
    addon: NativeAddon,
    ctx: NativeTpmContext,
    persistent: Readonly<Record<EkAlgorithm, number | undefined>>,
  ) {
    this.#addon = addon;
    this.#ctx = ctx;
    this.#persistent = persistent;
  }

  /** Queues `fn` behind earlier calls; maps native rejections to coded errors. */
  #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) {
      return Promise.reject(
        new SpireEdgeError('ERR_TPM_CLOSED', `could not ${what}: tpm is closed`),
      );
    }
    return this.#queue.run(async () => {
      try {
        return await fn();
      } catch (e) {
        throw tpmError(e, what);
      }
    });
  }

  /** The EK of `alg`, opened or derived once per context. Call only inside #call. */
  async #ek(alg: EkAlgorithm): Promise<Ek> {
    const cached = this.#eks.get(alg);
    if (cached !== undefined) return cached;
    const r = await this.#addon.tpmCreateEk(this.#ctx, alg, this.#persistent[alg]);
    const ek = { handle: r.handle, publicArea: copy(r.publicArea) };
    this.#eks.set(alg, ek);
    return ek;
  }

  #checkAk(ak: LoadedAk): void {
    if (!this.#aks.has(ak)) throw new TypeError("ak must be a LoadedAk from this Tpm's loadAk()");
  }

  async readEkCertificate(alg: EkAlgorithm): Promise<Uint8Array | undefined> {
    checkEkAlg(alg);
    return this.#call(`read the ${alg} ek certificate`, async () => {
      try {
        return copy(await this.#addon.tpmNvRead(this.#ctx, EK_LOCATIONS[alg].certNvIndex));
      } catch (e) {
        const rc = (e as { rc?: unknown }).rc;
        if (typeof rc === 'number' && tpmRcBase(rc) === TPM_RC.HANDLE) return undefined;
        throw e;
      }
    });
  }

  async ekPublic(alg: EkAlgorithm): Promise<Uint8Array> {
    checkEkAlg(alg);
    return this.#call(`read the ${alg} ek`, async () => copy((await this.#ek(alg)).publicArea));
  }

  async createAk(alg: AkAlgorithm, options: { readonly ek?: EkAlgorithm } = {}): Promise<AkBlobs> {
    if (!AK_ALGS.includes(alg)) throw new TypeError('ak algorithm must be ecc-p256 or rsa-2048');
    const ekAlg = options.ek ?? 'rsa';
    checkEkAlg(ekAlg);
    return this.#call(`create an ${alg} ak`, async () => {
      const ek = await this.#ek(ekAlg);
      const r = await this.#addon.tpmCreateAk(this.#ctx, ek.handle, alg);
      const pub = copy(r.public);
      return { ek: ekAlg, alg, private: copy(r.private), public: pub, name: objectName(pub) };
    });
  }

  async loadAk(blobs: AkBlobs): Promise<LoadedAk> {
    checkEkAlg(blobs?.ek);
    if (!AK_ALGS.includes(blobs.alg)) throw new TypeError('ak blobs alg is not an ak algorithm');
    for (const k of ['private', 'public', 'name'] as const) {
      if (!(blobs[k] instanceof Uint8Array)) throw new TypeError(`ak blobs ${k} must be bytes`);
    }
    return this.#call('load the ak', async () => {
      const ek = await this.#ek(blobs.ek);
      const r = await this.#addon.tpmLoadAk(this.#ctx, ek.handle, blobs.private, blobs.public);
      const name = copy(r.name);
      if (!sameBytes(name, blobs.name)) {
        await this.#addon.tpmFlush(this.#ctx, r.handle);
        throw new SpireEdgeError(
          'ERR_TPM_BLOB_INVALID',
          'could not load the ak: the tpm name of the loaded key differs from the blobs name',
        );
      }
      const ak: LoadedAk = Object.freeze({
        handle: r.handle,
        ek: blobs.ek,
        alg: blobs.alg,
        public: copy(blobs.public),
        name,
      });
      this.#aks.add(ak);
      return ak;
    });
  }

  async flushAk(ak: LoadedAk): Promise<void> {
    this.#checkAk(ak);
    return this.#call('flush the ak', () => this.#addon.tpmFlush(this.#ctx, ak.handle));
  }

  async readPcrs(selection: PcrSelection): Promise<ReadonlyMap<number, Uint8Array>> {
    const sel = checkSelection(selection);
    return this.#call(`read ${sel.bank} pcrs`, async () => {
      const digests = await this.#addon.tpmReadPcrs(this.#ctx, sel.bank, sel.indices);
      return new Map(sel.indices.map((index, k) => [index, copy(digests[k]!)]));
    });
  }

  async quote(ak: LoadedAk, nonce: Uint8Array, selection: PcrSelection): Promise<TpmQuote> {
    this.#checkAk(ak);
    if (!(nonce instanceof Uint8Array) || nonce.length > 64) {
      throw new TypeError('nonce must be a Uint8Array of at most 64 bytes');
    }
    const sel = checkSelection(selection);
    return this.#call('quote', async () => {
      const r = await this.#addon.tpmQuote(this.#ctx, ak.handle, nonce, sel.bank, sel.indices);
      return { quoted: copy(r.quoted), signature: copy(r.signature) };
    });
  }

  async activateCredential(ak: LoadedAk, credential: Credential): Promise<Uint8Array> {
    this.#checkAk(ak);
    if (
      !(credential?.idObject instanceof Uint8Array) ||
      !(credential.encryptedSecret instanceof Uint8Array)
    ) {
      throw new TypeError('credential idObject and encryptedSecret must be Uint8Arrays');
    }
    const idObject = tpm2bContents(credential.idObject, 'credential idObject');
    const encSecret = tpm2bContents(credential.encryptedSecret, 'credential encryptedSecret');
    return this.#call('activate the credential', async () => {
      const ek = await this.#ek(ak.ek);
      return copy(
        await this.#addon.tpmActivateCredential(
          this.#ctx,
          ak.handle,
          ek.handle,
          idObject,
          encSecret,
        ),
      );
    });
  }

  async seal(data: Uint8Array, options: SealOptions = {}): Promise<Uint8Array> {
    if (!(data instanceof Uint8Array) || data.length < 1 || data.length > 128) {
      throw new TypeError('data to seal must be 1..128 bytes (seal a key that encrypts more)');
    }
    const pcrs = options.pcrs === undefined ? undefined : checkSelection(options.pcrs);
    return this.#call('seal', async () => {
      const r = await this.#addon.tpmSeal(this.#ctx, data, pcrs?.bank ?? null, pcrs?.indices ?? []);
      return encodeSealedBlob({ pcrs, public: copy(r.public), private: copy(r.private) });
    });
  }

  async unseal(blob: Uint8Array): Promise<Uint8Array> {
    const sealed = decodeSealedBlob(blob);
    return this.#call('unseal', async () =>
      copy(
        await this.#addon.tpmUnseal(
          this.#ctx,
          sealed.private,
          sealed.public,
          sealed.pcrs?.bank ?? null,
          sealed.pcrs?.indices ?? [],
        ),
      ),
    );
  }

  async getRandom(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 1 || n > 65536) throw new TypeError('n must be 1..65536');
    return this.#call('get random bytes', async () =>
      copy(await this.#addon.tpmGetRandom(this.#ctx, n)),
    );
  }

  async handles(kind: TpmHandleKind): Promise<number[]> {
    if (!HANDLE_KINDS.includes(kind)) throw new TypeError(`unknown handle kind ${String(kind)}`);
    return this.#call(`list ${kind} handles`, () => this.#addon.tpmHandles(this.#ctx, kind));
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#queue.drained();
      try {
        await this.#addon.tpmClose(this.#ctx);
      } catch (e) {
        throw tpmError(e, 'close the tpm');
      }
    })();
    return this.#closing;
  }
}

function copy(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

/** The buffer of a marshalled TPM2B whose size field must account for every byte. */
function tpm2bContents(b: Uint8Array, what: string): Uint8Array {
  if (b.length < 2 || ((b[0]! << 8) | b[1]!) !== b.length - 2) {
    throw new SpireEdgeError(
      'ERR_TPM_BLOB_INVALID',
      `${what} must be a marshalled TPM2B whose size is its length minus 2`,
    );
  }
  return b.subarray(2);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function checkEkAlg(alg: unknown): asserts alg is EkAlgorithm {
  if (!EK_ALGS.includes(alg as EkAlgorithm)) {
    throw new TypeError('ek algorithm must be rsa, ecc-p256 or ecc-p384');
  }
}

/** A checked copy of a selection with ascending indices. */
function checkSelection(selection: PcrSelection): { bank: PcrBank; indices: number[] } {
  if (!BANKS.includes(selection?.bank)) {
    throw new TypeError('pcr bank must be sha1, sha256, sha384 or sha512');
  }
  if (!Array.isArray(selection.indices) || selection.indices.length === 0) {
    throw new TypeError('pcr indices must be a non-empty array');
  }
  const indices = [...selection.indices].sort((a, b) => a - b);
  indices.forEach((i, k) => {
    if (!Number.isInteger(i) || i < 0 || i > 23) {
      throw new TypeError('pcr index must be an integer in 0..23');
    }
    if (k > 0 && indices[k - 1] === i) throw new TypeError('pcr indices must not repeat');
  });
  return { bank: selection.bank, indices };
}

/**
 * Object name (TPM 2.0 Part 1, 16): nameAlg ‖ H_nameAlg(TPMT_PUBLIC), from a marshalled
 * TPM2B_PUBLIC (size u16 | type u16 | nameAlg u16 | …).
 */
function objectName(tpm2bPublic: Uint8Array): Uint8Array {
  if (tpm2bPublic.length < 6) {
    throw new SpireEdgeError('ERR_TPM_BLOB_INVALID', 'ak public is shorter than a TPMT_PUBLIC');
  }
  const nameAlg = (tpm2bPublic[4]! << 8) | tpm2bPublic[5]!;
  const hash = NAME_HASH[nameAlg];
  if (hash === undefined) {
    throw new SpireEdgeError(
      'ERR_TPM_BLOB_INVALID',
      `ak public has unknown nameAlg 0x${nameAlg.toString(16)}`,
    );
  }
  const digest = createHash(hash).update(tpm2bPublic.subarray(2)).digest();
  const name = new Uint8Array(2 + digest.length);
  name[0] = nameAlg >> 8;
  name[1] = nameAlg & 0xff;
  name.set(digest, 2);
  return name;
}
