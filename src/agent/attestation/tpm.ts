/**
 * The `tpm` node attestor, agent side: sends the EK certificate (when the TPM has one), the
 * EK and AK public areas; answers the server's challenge with TPM2_ActivateCredential (the
 * secret) and one TPM2_Quote per PCR bank over SHA-256(secret ‖ server nonce), with the PCR
 * values read right after. Wire format: src/server/attestation/tpm-wire.ts; design:
 * docs/tpm-attestation.md.
 *
 * The TPM is opened for each attestation (payload → respond) and closed after it, so a TPM
 * without a resource manager (swtpm serves one connection) is free between attestations.
 * The AK is created once, under the configured EK, and its blobs kept by a {@link TpmAkStore}
 * (by default the file `<data_dir>/tpm-ak.json`, mode 0600: the private part is wrapped by
 * the EK and useless outside this TPM). An AK that no longer loads (TPM cleared, other EK) is
 * replaced by a new one.
 *
 * Errors: `ERR_AGENT_ATTESTATION_INVALID` (a malformed challenge, or one without a payload
 * first), `ERR_TPM_AK_STORE_INVALID` (an unreadable AK file), the device's `ERR_TPM_*` errors.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import {
  decodeTpmChallenge,
  encodeTpmPayload,
  encodeTpmResponse,
  type TpmChallenge,
  type TpmWireQuote,
  tpmQuoteNonce,
} from '../../server/attestation/tpm-wire.js';
import type {
  AkAlgorithm,
  AkBlobs,
  EkAlgorithm,
  LoadedAk,
  PcrSelection,
  Tpm,
} from '../../tpm/device/index.js';
import type { AgentNodeAttestor } from './node-attestor.js';

/** Where the AK blobs are kept between attestations and restarts. */
export interface TpmAkStore {
  load(): Promise<AkBlobs | undefined>;
  save(blobs: AkBlobs): Promise<void>;
}

/** Options of {@link createTpmAttestorClient}. */
export interface TpmAttestorClientOptions {
  /** Opens the TPM (called once per attestation; the result is closed after it). */
  readonly openTpm: () => Promise<Tpm>;
  /** `ek_algorithm` (default `rsa`): which EK (and certificate) identifies the device. */
  readonly ekAlgorithm?: EkAlgorithm;
  /** The AK's algorithm (default `ecc-p256`). */
  readonly akAlgorithm?: AkAlgorithm;
  /** PCRs quoted besides what the server asks for (`pcr_banks` × `pcr_indices`). */
  readonly pcrs?: readonly PcrSelection[];
  readonly akStore: TpmAkStore;
}

/** The agent's TPM attestor; `close()` releases a TPM left open by an abandoned attestation. */
export interface TpmAttestorClient extends AgentNodeAttestor {
  close(): Promise<void>;
}

const B64_FIELDS = ['private', 'public', 'name'] as const;

function storeError(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_TPM_AK_STORE_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

/**
 * AK blobs in a JSON file (`{"version":1,"ek","alg","private","public","name"}`, base64),
 * written atomically with mode 0600. A missing file is "no AK yet".
 */
export function fileAkStore(path: string): TpmAkStore {
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw storeError(`cannot read AK file ${path}: ${describeError(err)}`, err);
      }
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(text) as Record<string, unknown>;
      } catch (err) {
        throw storeError(`AK file ${path} is not JSON`, err);
      }
      if (o === null || typeof o !== 'object' || o.version !== 1) {
        throw storeError(`AK file ${path} is not a version 1 AK record`);
      }
      const bytes: Partial<Record<(typeof B64_FIELDS)[number], Uint8Array>> = {};
      for (const f of B64_FIELDS) {
        if (typeof o[f] !== 'string')
          throw storeError(`AK file ${path}: ${f} must be a base64 string`);
        bytes[f] = new Uint8Array(Buffer.from(o[f] as string, 'base64'));
      }
      return {
        ek: o.ek as EkAlgorithm,
        alg: o.alg as AkAlgorithm,
        private: bytes.private!,
        public: bytes.public!,
        name: bytes.name!,
      };
    },
    async save(b) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const tmp = `${path}.tmp`;
      const b64 = (x: Uint8Array) => Buffer.from(x).toString('base64');
      await writeFile(
        tmp,
        JSON.stringify({
          version: 1,
          ek: b.ek,
          alg: b.alg,
          private: b64(b.private),
          public: b64(b.public),
          name: b64(b.name),
        }),
        { mode: 0o600 },
      );
      await rename(tmp, path);
    },
  };
}

/** The default AK file under the agent's data directory. */
export function tpmAkPath(dataDir: string): string {
  return join(dataDir, 'tpm-ak.json');
}

function protocolError(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_ATTESTATION_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

/** Merges the server's selection with the agent's own, per bank. */
function mergeSelections(a: readonly PcrSelection[], b: readonly PcrSelection[]): PcrSelection[] {
  const m = new Map<PcrSelection['bank'], Set<number>>();
  for (const s of [...a, ...b]) {
    let set = m.get(s.bank);
    if (set === undefined) {
      set = new Set();
      m.set(s.bank, set);
    }
    for (const i of s.indices) set.add(i);
  }
  return [...m].map(([bank, set]) => ({ bank, indices: [...set].sort((x, y) => x - y) }));
}

/**
 * Creates the agent's TPM attestor. Trusts the TPM; trusts nothing in the challenge beyond
 * its format (a credential made for another EK or AK simply fails activation in the TPM).
 */
export function createTpmAttestorClient(options: TpmAttestorClientOptions): TpmAttestorClient {
  if (options === null || typeof options !== 'object' || typeof options.openTpm !== 'function') {
    throw new TypeError('createTpmAttestorClient needs openTpm and akStore');
  }
  const ekAlg = options.ekAlgorithm ?? 'rsa';
  const akAlg = options.akAlgorithm ?? 'ecc-p256';
  const own = options.pcrs ?? [];
  let session: { tpm: Tpm; ak: LoadedAk } | undefined;

  const endSession = async (): Promise<void> => {
    const s = session;
    session = undefined;
    if (s !== undefined) await s.tpm.close();
  };

  async function loadOrCreateAk(tpm: Tpm): Promise<LoadedAk> {
    const stored = await options.akStore.load();
    if (stored !== undefined && stored.ek === ekAlg && stored.alg === akAlg) {
      try {
        return await tpm.loadAk(stored);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== 'ERR_TPM_BLOB_INVALID' && code !== 'ERR_TPM_RC') throw err;
        // The stored AK belongs to another EK or a cleared TPM: make a new one below.
      }
    }
    const blobs = await tpm.createAk(akAlg, { ek: ekAlg });
    await options.akStore.save(blobs);
    return tpm.loadAk(blobs);
  }

  return {
    type: 'tpm',
    async payload() {
      await endSession();
      const tpm = await options.openTpm();
      try {
        const ekCert = await tpm.readEkCertificate(ekAlg);
        const ekPublic = await tpm.ekPublic(ekAlg);
        const ak = await loadOrCreateAk(tpm);
        session = { tpm, ak };
        return encodeTpmPayload({
          ...(ekCert === undefined ? {} : { ekCert }),
          ekPublic,
          akPublic: ak.public,
          pcrs: mergeSelections(own, []),
        });
      } catch (err) {
        session = undefined;
        await tpm.close();
        throw err;
      }
    },
    async respond(challengeBytes) {
      let challenge: TpmChallenge;
      try {
        challenge = decodeTpmChallenge(challengeBytes);
      } catch (err) {
        throw protocolError(`unable to unmarshal tpm challenge: ${describeError(err)}`, err);
      }
      const s = session;
      if (s === undefined) throw protocolError('tpm challenge received before a payload was sent');
      try {
        const secret = await s.tpm.activateCredential(s.ak, {
          idObject: challenge.idObject,
          encryptedSecret: challenge.encryptedSecret,
        });
        const nonce = tpmQuoteNonce(secret, challenge.nonce);
        const quotes: TpmWireQuote[] = [];
        for (const sel of mergeSelections(challenge.pcrs, own)) {
          const q = await s.tpm.quote(s.ak, nonce, sel);
          const pcrs = await s.tpm.readPcrs(sel);
          quotes.push({ quoted: q.quoted, signature: q.signature, pcrs });
        }
        return encodeTpmResponse({ secret, quotes });
      } finally {
        if (session === s) await endSession();
      }
    },
    close: endSession,
  };
}

/** The agent's `NodeAttestor "tpm"` plugin_data, decoded. */
export interface TpmAttestorClientConfig {
  /** `tcti` (default `device:/dev/tpmrm0`). */
  readonly tcti: string;
  readonly ekAlgorithm?: EkAlgorithm;
  readonly pcrBanks?: readonly PcrSelection['bank'][];
  readonly pcrIndices?: readonly number[];
  /** The agent's data_dir: the AK is kept in `<data_dir>/tpm-ak.json`. */
  readonly dataDir: string;
}

/** Creates the attestor from configuration, over the native TPM adapter. */
export async function tpmAttestorClientFromConfig(
  config: TpmAttestorClientConfig,
): Promise<TpmAttestorClient> {
  const { openTpm } = await import('../../tpm/device/open-tpm.js');
  const indices = config.pcrIndices ?? [];
  const pcrs =
    indices.length === 0
      ? []
      : (config.pcrBanks ?? ['sha256']).map((bank) => ({
          bank,
          indices: [...new Set(indices)].sort((a, b) => a - b),
        }));
  return createTpmAttestorClient({
    openTpm: () => openTpm({ tcti: config.tcti }),
    ...(config.ekAlgorithm === undefined ? {} : { ekAlgorithm: config.ekAlgorithm }),
    pcrs,
    akStore: fileAkStore(tpmAkPath(config.dataDir)),
  });
}
