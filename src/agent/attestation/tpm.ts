/**
 * The `tpm` node attestor, agent side: sends the EK certificate (when the TPM has one), the
 * EK and AK public areas; answers the server's challenge with TPM2_ActivateCredential (the
 * secret) and one TPM2_Quote per PCR bank over SHA-256(secret ‖ server nonce), with the PCR
 * values read right after. Wire format: src/server/attestation/tpm-wire.ts; design:
 * docs/tpm-attestation.md.
 *
 * The TPM is held for each attestation (payload → respond) as one session of a
 * {@link TpmAccess} shared with the store's TPM sealer (./tpm-sealer.ts), and released after
 * it, so a TPM without a resource manager (swtpm serves one connection) is free between
 * attestations and never opened twice at once. The AK is created once, under the configured
 * EK, and its blobs kept by a {@link TpmAkStore}: in the agent the device record
 * `device:tpm-ak` of the agent store ({@link agentStoreAkStore}; the private part is wrapped by
 * the EK and useless outside this TPM). An AK file `<data_dir>/tpm-ak.json` left by an older
 * agent is imported into the store, then deleted. An AK that no longer loads (TPM cleared,
 * other EK) is replaced by a new one.
 *
 * {@link tpmAgentPluginFromConfig} builds what `NodeAttestor "tpm"` gives the agent: the
 * attestor, the AK store, and (with `seal_secrets`, the default) the store's sealer factory,
 * all over one {@link TpmAccess}.
 *
 * Errors: `ERR_AGENT_ATTESTATION_INVALID` (a malformed challenge, or one without a payload
 * first), `ERR_TPM_AK_STORE_INVALID` (unreadable AK blobs), the device's `ERR_TPM_*` errors.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import {
  decodeTpmChallenge,
  encodeTpmPayload,
  encodeTpmResponse,
  TPM_MAX_EVENT_LOG,
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
import type { AgentStore } from '../storage/agent-store.js';
import type { SealerFactory } from '../storage/sealer.js';
import type { AgentNodeAttestor } from './node-attestor.js';
import { createTpmAccess, type TpmAccess, type TpmSession } from './tpm-access.js';
import { createTpmSealer, type TpmSealerOpenEvent } from './tpm-sealer.js';

/** Where the AK blobs are kept between attestations and restarts. */
export interface TpmAkStore {
  load(): Promise<AkBlobs | undefined>;
  save(blobs: AkBlobs): Promise<void>;
}

/** Options of {@link createTpmAttestorClient}: `access` or `openTpm`. */
export interface TpmAttestorClientOptions {
  /** The TPM, shared with the store's sealer: one session per attestation. */
  readonly access?: TpmAccess;
  /**
   * Without `access`: opens the TPM (once per attestation; closed after it) through an access
   * of the attestor's own.
   */
  readonly openTpm?: () => Promise<Tpm>;
  /** `ek_algorithm` (default `rsa`): which EK (and certificate) identifies the device. */
  readonly ekAlgorithm?: EkAlgorithm;
  /** The AK's algorithm (default `ecc-p256`). */
  readonly akAlgorithm?: AkAlgorithm;
  /** PCRs quoted besides what the server asks for (`pcr_banks` × `pcr_indices`). */
  readonly pcrs?: readonly PcrSelection[];
  readonly akStore: TpmAkStore;
  /**
   * How long a payload may wait for its challenge before the TPM is released (default 65 s,
   * past the attestation deadline): an attestation abandoned after its payload (the server
   * unreachable) must not hold the TPM through the retry backoff.
   */
  readonly sessionTimeoutMs?: number;
  /**
   * Reads the platform's TCG firmware event log, sent with the quotes (read after them, so it
   * holds every event the quoted PCRs include). Resolves undefined when there is none.
   */
  readonly readEventLog?: () => Promise<Uint8Array | undefined>;
}

/** Where Linux exposes the firmware event log (securityfs). */
export const DEFAULT_EVENT_LOG_PATH = '/sys/kernel/security/tpm0/binary_bios_measurements';

/**
 * An event log reader for {@link TpmAttestorClientOptions.readEventLog}: the file at `path`;
 * a missing file (no firmware log: a VM without one, swtpm) is no log; an unreadable one
 * (securityfs is root-only on most distributions) is no log and is reported once through
 * `onProblem`, so attestation still works without the log's selectors. A log larger than
 * the wire allows is reported and not sent.
 */
export function fileEventLogReader(
  path: string,
  onProblem: (message: string) => void = () => {},
): () => Promise<Uint8Array | undefined> {
  let reported = false;
  const report = (message: string): undefined => {
    if (!reported) onProblem(message);
    reported = true;
    return undefined;
  };
  return async () => {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return report(
        `the TCG event log ${path} cannot be read (${describeError(err)}): attesting without it, so no tpm:secure_boot selector`,
      );
    }
    if (bytes.length === 0) return undefined;
    if (bytes.length > TPM_MAX_EVENT_LOG) {
      return report(
        `the TCG event log ${path} is ${bytes.length} bytes, more than the ${TPM_MAX_EVENT_LOG} the server accepts: attesting without it`,
      );
    }
    return new Uint8Array(bytes);
  };
}

/** The agent's TPM attestor; `close()` releases a TPM left open by an abandoned attestation. */
export interface TpmAttestorClient extends AgentNodeAttestor {
  close(): Promise<void>;
}

const B64_FIELDS = ['private', 'public', 'name'] as const;
const EK_ALGS: readonly EkAlgorithm[] = ['rsa', 'ecc-p256', 'ecc-p384'];
const AK_ALGS: readonly AkAlgorithm[] = ['ecc-p256', 'rsa-2048'];

function storeError(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_TPM_AK_STORE_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

/**
 * The AK record format, as a file and as the device record `device:tpm-ak`: UTF-8 JSON
 * `{"version":1,"ek","alg","private","public","name"}`, the byte strings in base64.
 */
export function encodeAkRecord(b: AkBlobs): Uint8Array {
  const b64 = (x: Uint8Array) => Buffer.from(x).toString('base64');
  return new TextEncoder().encode(
    JSON.stringify({
      version: 1,
      ek: b.ek,
      alg: b.alg,
      private: b64(b.private),
      public: b64(b.public),
      name: b64(b.name),
    }),
  );
}

/**
 * Decodes an AK record ({@link encodeAkRecord}); `where` names its origin in errors. Checks
 * the shape only: the TPM checks the blobs when it loads them.
 *
 * @throws SpireEdgeError `ERR_TPM_AK_STORE_INVALID`.
 */
export function decodeAkRecord(bytes: Uint8Array, where: string): AkBlobs {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<
      string,
      unknown
    >;
  } catch (err) {
    throw storeError(`${where} is not JSON`, err);
  }
  if (o === null || typeof o !== 'object' || o.version !== 1) {
    throw storeError(`${where} is not a version 1 AK record`);
  }
  if (!EK_ALGS.includes(o.ek as EkAlgorithm))
    throw storeError(`${where}: ek is not an ek algorithm`);
  if (!AK_ALGS.includes(o.alg as AkAlgorithm))
    throw storeError(`${where}: alg is not an ak algorithm`);
  const bytesOf: Partial<Record<(typeof B64_FIELDS)[number], Uint8Array>> = {};
  for (const f of B64_FIELDS) {
    if (typeof o[f] !== 'string') throw storeError(`${where}: ${f} must be a base64 string`);
    bytesOf[f] = new Uint8Array(Buffer.from(o[f] as string, 'base64'));
  }
  return {
    ek: o.ek as EkAlgorithm,
    alg: o.alg as AkAlgorithm,
    private: bytesOf.private!,
    public: bytesOf.public!,
    name: bytesOf.name!,
  };
}

/**
 * AK blobs in a JSON file ({@link encodeAkRecord}), written atomically with mode 0600; a
 * missing file is "no AK yet". The agent no longer keeps its AK in a file: this reads the file
 * an older agent left (imported by {@link agentStoreAkStore}), and serves tools and tests that
 * attest without an agent store.
 */
export function fileAkStore(path: string): TpmAkStore {
  return {
    async load() {
      let bytes: Uint8Array;
      try {
        bytes = await readFile(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw storeError(`cannot read AK file ${path}: ${describeError(err)}`, err);
      }
      return decodeAkRecord(bytes, `AK file ${path}`);
    },
    async save(b) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const tmp = `${path}.tmp`;
      await writeFile(tmp, encodeAkRecord(b), { mode: 0o600 });
      await rename(tmp, path);
    },
  };
}

/** The device record of the agent store that holds the AK blobs (`device:tpm-ak`). */
export const AK_DEVICE_RECORD = 'tpm-ak';

/** A {@link TpmAkStore} in the agent store, bound once the store is open. */
export interface AgentStoreAkStore extends TpmAkStore {
  /** Binds the opened agent store (again after a restart of the store). */
  bind(store: AgentStore): void;
}

/**
 * AK blobs in the agent store's device record `device:tpm-ak` ({@link encodeAkRecord}),
 * written as one fsynced batch. Usable once {@link AgentStoreAkStore.bind} was called (the
 * agent builds its attestor before the store opens; attestation runs after). The first
 * `load()` that finds no record imports `legacyFile` (the `<data_dir>/tpm-ak.json` of an older
 * agent) when it exists — stored first, deleted after — so the device keeps its AK.
 *
 * @throws TypeError from load/save before bind(); `ERR_TPM_AK_STORE_INVALID` for unreadable
 * blobs; the store's write errors.
 */
export function agentStoreAkStore(
  options: { readonly legacyFile?: string } = {},
): AgentStoreAkStore {
  let bound: AgentStore | undefined;
  const store = (): AgentStore => {
    if (bound === undefined) {
      throw new TypeError('the AK store is used before the agent store was bound to it');
    }
    return bound;
  };
  const save = async (blobs: AkBlobs): Promise<void> => {
    const record = encodeAkRecord(blobs);
    await store().update((tx) => tx.putDeviceRecord(AK_DEVICE_RECORD, record));
  };
  return {
    bind(s) {
      if (typeof s?.deviceRecord !== 'function') throw new TypeError('store must be an AgentStore');
      bound = s;
    },
    async load() {
      const record = store().deviceRecord(AK_DEVICE_RECORD);
      if (record !== undefined) {
        return decodeAkRecord(record, `device record "${AK_DEVICE_RECORD}"`);
      }
      if (options.legacyFile === undefined) return undefined;
      const legacy = await fileAkStore(options.legacyFile).load();
      if (legacy === undefined) return undefined;
      await save(legacy);
      await rm(options.legacyFile, { force: true });
      return legacy;
    },
    save,
  };
}

/** The AK file an older agent kept under its data directory (imported, then deleted). */
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
  if (
    options === null ||
    typeof options !== 'object' ||
    typeof options.akStore?.load !== 'function' ||
    (typeof options.access?.acquire !== 'function' && typeof options.openTpm !== 'function')
  ) {
    throw new TypeError('createTpmAttestorClient needs access (or openTpm) and akStore');
  }
  const access = options.access ?? createTpmAccess(options.openTpm!);
  const ekAlg = options.ekAlgorithm ?? 'rsa';
  const akAlg = options.akAlgorithm ?? 'ecc-p256';
  const own = options.pcrs ?? [];
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 65_000;
  let session: { lease: TpmSession; tpm: Tpm; ak: LoadedAk; timer: NodeJS.Timeout } | undefined;

  const endSession = async (): Promise<void> => {
    const s = session;
    session = undefined;
    if (s !== undefined) {
      clearTimeout(s.timer);
      await s.lease.release();
    }
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
      const lease = await access.acquire();
      const tpm = lease.tpm;
      try {
        const ekCert = await tpm.readEkCertificate(ekAlg);
        const ekPublic = await tpm.ekPublic(ekAlg);
        const ak = await loadOrCreateAk(tpm);
        const timer = setTimeout(() => {
          if (session?.lease === lease) endSession().catch(() => {});
        }, sessionTimeoutMs);
        timer.unref();
        session = { lease, tpm, ak, timer };
        return encodeTpmPayload({
          ...(ekCert === undefined ? {} : { ekCert }),
          ekPublic,
          akPublic: ak.public,
          pcrs: mergeSelections(own, []),
        });
      } catch (err) {
        session = undefined;
        await lease.release().catch(() => {});
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
      clearTimeout(s.timer);
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
        const eventLog = await options.readEventLog?.();
        return encodeTpmResponse(
          eventLog === undefined ? { secret, quotes } : { secret, quotes, eventLog },
        );
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
  /** The agent's data_dir: an AK file `<data_dir>/tpm-ak.json` found there is imported. */
  readonly dataDir: string;
  /** `seal_secrets` (default true): seal the store's secrets with the TPM. */
  readonly sealSecrets?: boolean;
  /** `seal_pcrs`: sha256 PCRs the store's data key is bound to (default none). */
  readonly sealPcrs?: readonly number[];
  /** Told what the sealer did at store open (the agent logs it). */
  readonly onSealerOpen?: (event: TpmSealerOpenEvent) => void;
  /** `event_log_path` (default {@link DEFAULT_EVENT_LOG_PATH}; empty: never send a log). */
  readonly eventLogPath?: string;
  /** Told once when the event log exists but cannot be sent (the agent logs it). */
  readonly onEventLogProblem?: (message: string) => void;
}

/** Creates the attestor from configuration over a {@link TpmAccess} and an AK store. */
export function tpmAttestorClientFromConfig(
  config: TpmAttestorClientConfig & { readonly access: TpmAccess; readonly akStore: TpmAkStore },
): TpmAttestorClient {
  const indices = config.pcrIndices ?? [];
  const eventLogPath = config.eventLogPath ?? DEFAULT_EVENT_LOG_PATH;
  const pcrs =
    indices.length === 0
      ? []
      : (config.pcrBanks ?? ['sha256']).map((bank) => ({
          bank,
          indices: [...new Set(indices)].sort((a, b) => a - b),
        }));
  return createTpmAttestorClient({
    access: config.access,
    ...(config.ekAlgorithm === undefined ? {} : { ekAlgorithm: config.ekAlgorithm }),
    pcrs,
    akStore: config.akStore,
    ...(eventLogPath === ''
      ? {}
      : { readEventLog: fileEventLogReader(eventLogPath, config.onEventLogProblem) }),
  });
}

/** What `NodeAttestor "tpm"` gives the agent: see {@link tpmAgentPluginFromConfig}. */
export interface TpmAgentPlugin {
  readonly attestor: TpmAttestorClient;
  /** The one access to the TPM the attestor and the sealer share. */
  readonly access: TpmAccess;
  /** The AK store in the agent store: bind it once the store is open. */
  readonly akStore: AgentStoreAkStore;
  /** The store's sealer factory; undefined with `seal_secrets = false`. */
  readonly createSealer: SealerFactory | undefined;
  /** Ends an attestation left open and refuses further TPM sessions. */
  close(): Promise<void>;
}

/**
 * Builds the agent's `NodeAttestor "tpm"` over the native TPM adapter (loaded here, lazily):
 * one {@link TpmAccess} on `tcti`, the attestor with its AK in the agent store (importing
 * `<data_dir>/tpm-ak.json`), and the store's TPM sealer unless `sealSecrets` is false. The
 * caller opens the store with `createSealer`, then calls `akStore.bind(store)` before the
 * first attestation.
 */
export async function tpmAgentPluginFromConfig(
  config: TpmAttestorClientConfig,
): Promise<TpmAgentPlugin> {
  const { openTpm } = await import('../../tpm/device/open-tpm.js');
  const access = createTpmAccess(() => openTpm({ tcti: config.tcti }));
  const akStore = agentStoreAkStore({ legacyFile: tpmAkPath(config.dataDir) });
  const attestor = tpmAttestorClientFromConfig({ ...config, access, akStore });
  const sealPcrs = config.sealPcrs ?? [];
  const createSealer =
    config.sealSecrets === false
      ? undefined
      : createTpmSealer({
          access,
          ...(sealPcrs.length === 0
            ? {}
            : {
                pcrs: {
                  bank: 'sha256' as const,
                  indices: [...new Set(sealPcrs)].sort((a, b) => a - b),
                },
              }),
          ...(config.onSealerOpen === undefined ? {} : { onOpen: config.onSealerOpen }),
        });
  return {
    attestor,
    access,
    akStore,
    createSealer,
    async close() {
      await attestor.close();
      await access.close();
    },
  };
}
