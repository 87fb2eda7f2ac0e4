/**
 * The CA manager (SPIRE's pkg/server/ca/manager and rotator): owns the server's X.509 CA and
 * JWT signing key, rotates them on SPIRE's schedule and keeps the trust bundle's local
 * authorities.
 *
 * - Two slots per kind, A and B. With nothing active at start, a CA and a JWT key are
 *   prepared in slot A and activated at once.
 * - When the active one reaches 1/2 of its lifetime (at most 30 days before its notAfter)
 *   the other slot is *prepared*: a new KeyManager key, a CA certificate (self-signed, or
 *   signed by the UpstreamAuthority), a random `kid` for JWT. Its root (or the upstream
 *   roots) and JWT public key join the bundle at once, so agents learn them before use.
 * - At 5/6 of the lifetime (at most 7 days before notAfter) the prepared slot is
 *   *activated* and the old one retires.
 * - An authority leaves the bundle only once everything it signed has expired: SVIDs never
 *   outlive their CA or JWT key, so that is its notAfter, plus a safety margin (SPIRE's
 *   24 h). The last X.509 authority is never pruned.
 * - Every preparation generates a key under an id of its own, `<slot base>-<serial>`
 *   (`x509-CA-A-1`, `JWT-Signer-B-2`, …; the serial counts per kind), so no key is ever
 *   replaced. A retired key is deleted from the KeyManager once its authority has left the
 *   bundle (with an UpstreamAuthority, whose CA certificates are not in the bundle: once its
 *   notAfter + margin has passed), and never while a live slot or any journal entry still
 *   needs it. A failed deletion is reported (`key-delete-failed`) and retried.
 * - Every change is written to the journal (journal.ts) *before* it takes effect, so a
 *   restart with the same journal and a persistent KeyManager re-uses the active CA and key.
 *   A journal entry whose key is missing from the KeyManager (or differs from it) is
 *   skipped with a `journal-entry-unusable` event and a new CA is prepared, as SPIRE does.
 *   Keys that follow the naming scheme but that no journal entry names and no bundle
 *   authority holds (left by a crash between generation and journal save, or by a failed
 *   preparation) are deleted; keys the journal names are never deleted early nor
 *   regenerated, and keys outside the naming scheme are never touched.
 *
 * Timers run on the injected {@link Clock}; randomness (serials, `kid`s) comes from the
 * injected {@link RandomSource}. Work is serialised: one rotation step at a time.
 *
 * Errors: `ERR_CA_KEY_MANAGER` (the KeyManager failed; its coded error is the `cause`),
 * `ERR_CA_UPSTREAM_FAILED` / `ERR_CA_UPSTREAM_INVALID` (the UpstreamAuthority failed or
 * returned an unusable chain), `ERR_CA_MINT_FAILED`, `ERR_CA_JOURNAL_CORRUPT`,
 * `ERR_CA_JOURNAL_LOAD_FAILED`, `ERR_CA_JOURNAL_SAVE_FAILED`, `ERR_CA_CLOSED`. A failed
 * step leaves the active CA and key unchanged and is retried after `retryIntervalSeconds`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError, isSpireEdgeError, SpireEdgeError } from '../../common/errors.js';
import { cryptoRandom, type RandomSource } from '../../common/random.js';
import { KEY_TYPES, type KeyType } from '../../common/signer.js';
import type { KeyManager, ManagedKey } from '../../hsm/key-manager.js';
import { type TrustDomain, toTrustDomain } from '../../spiffe/id.js';
import { jwtAuthorityFromKey } from '../../spiffe/jwt-bundle.js';
import {
  certificatePublicKey,
  isSelfIssued,
  type ParsedCertificate,
  parseCertificate,
  verifyCertificateSignature,
} from '../../spiffe/x509-cert.js';
import { DEFAULT_X509_CA_SUBJECT, mintX509CaCertificate } from '../../spiffe/x509-mint.js';
import {
  type AuthorityStatus,
  decodeJournal,
  EMPTY_JOURNAL,
  encodeJournal,
  JOURNAL_CAP,
  type JournalData,
  type JournalStore,
  type JwtAuthorityJournalEntry,
  type JwtKeyJournalEntry,
  type SlotId,
  slotKeyIdBase,
  type X509AuthorityJournalEntry,
  type X509CaJournalEntry,
} from './journal.js';
import {
  type ActiveJwtKey,
  type ActiveX509Ca,
  type CaBundle,
  type CaJwtAuthority,
  guardSigner,
  LocalServerCa,
  NOT_BEFORE_BACKDATE_SECONDS,
  type ServerCa,
} from './server-ca.js';
import type { UpstreamAuthority, X509CaSubject } from './upstream-authority.js';

/** SPIRE's defaults. */
export const DEFAULT_CA_TTL_SECONDS = 24 * 3600;
export const DEFAULT_X509_SVID_TTL_SECONDS = 3600;
export const DEFAULT_JWT_SVID_TTL_SECONDS = 300;
/** How long past its notAfter an authority stays in the bundle (SPIRE's safetyThresholdBundle). */
export const DEFAULT_BUNDLE_PRUNE_MARGIN_SECONDS = 24 * 3600;
/** How soon a failed rotation step is retried (SPIRE's rotator ticks every 10 s). */
export const DEFAULT_RETRY_INTERVAL_SECONDS = 10;

const PREPARE_CAP_MS = 30 * 24 * 3600 * 1000;
const ACTIVATE_CAP_MS = 7 * 24 * 3600 * 1000;
/** The longest the manager sleeps between checks (guards against wall-clock jumps). */
const MAX_SLEEP_MS = 10 * 60 * 1000;
const KID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** Configuration of the CA manager (SPIRE's `server { … }` CA keys and plugins). */
export interface CaManagerConfig {
  readonly trustDomain: TrustDomain | string;
  readonly keyManager: KeyManager;
  /** Where the journal lives (the datastore's CA-journal table in the server). */
  readonly journalStore: JournalStore;
  /** When set, the CA is signed by it instead of being self-signed. */
  readonly upstreamAuthority?: UpstreamAuthority;
  /** SPIRE's `ca_ttl`; default 24 h. */
  readonly caTtlSeconds?: number;
  /** SPIRE's `ca_key_type`; default `ec-p256`. */
  readonly caKeyType?: KeyType;
  /** SPIRE's `jwt_key_type`; default `ec-p256`. */
  readonly jwtKeyType?: KeyType;
  /** SPIRE's `ca_subject`; default `C=US, O=SPIFFE` (plus serialNumber = the serial). */
  readonly caSubject?: X509CaSubject;
  /** SPIRE's `default_x509_svid_ttl`; default 1 h. */
  readonly defaultX509SvidTtlSeconds?: number;
  /** SPIRE's `default_jwt_svid_ttl`; default 5 min. */
  readonly defaultJwtSvidTtlSeconds?: number;
  /** SPIRE's `jwt_issuer`. */
  readonly jwtIssuer?: string;
  /** How long an expired authority stays in the bundle; default 24 h. */
  readonly bundlePruneMarginSeconds?: number;
  /** Delay before a failed rotation step is retried; default 10 s. */
  readonly retryIntervalSeconds?: number;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  /** Called with the new bundle whenever it changes (also for changes made by `start`). */
  readonly onBundleChange?: BundleChangeListener;
  /** Called for every lifecycle event (for logs and metrics), also during `start`. */
  readonly onEvent?: CaEventListener;
}

/** What changed in a bundle update. */
export interface BundleChange {
  readonly addedX509: readonly Uint8Array[];
  readonly removedX509: readonly Uint8Array[];
  readonly addedJwt: readonly string[];
  readonly removedJwt: readonly string[];
}

/**
 * Receives the CA manager's bundle after every change. With several servers sharing one
 * datastore (HA), merge `change` into the stored bundle rather than replacing it.
 */
export type BundleChangeListener = (bundle: CaBundle, change: BundleChange) => void | Promise<void>;

/** A lifecycle event. */
export type CaEvent =
  | {
      readonly type: 'x509-ca-prepared';
      readonly slotId: SlotId;
      readonly notAfter: Date;
      readonly selfSigned: boolean;
      /** The new CA key's KeyManager id. */
      readonly keyManagerKeyId: string;
    }
  | { readonly type: 'x509-ca-activated'; readonly slotId: SlotId; readonly notAfter: Date }
  | {
      readonly type: 'jwt-key-prepared';
      readonly slotId: SlotId;
      readonly keyId: string;
      readonly notAfter: Date;
      /** The new signing key's KeyManager id (`keyId` is the `kid`). */
      readonly keyManagerKeyId: string;
    }
  | {
      readonly type: 'jwt-key-activated';
      readonly slotId: SlotId;
      readonly keyId: string;
      readonly notAfter: Date;
    }
  | { readonly type: 'authority-pruned'; readonly kind: 'x509' | 'jwt'; readonly notAfter: Date }
  | {
      readonly type: 'journal-entry-unusable';
      readonly kind: 'x509' | 'jwt';
      readonly slotId: SlotId;
      readonly reason: string;
    }
  | { readonly type: 'prune-skipped'; readonly reason: string }
  | {
      /**
       * A KeyManager key was deleted: `retired` once its authority left the bundle,
       * `unused` when no journal entry named it (a crash or a failed preparation left it).
       */
      readonly type: 'key-deleted';
      readonly kind: 'x509' | 'jwt';
      readonly keyManagerKeyId: string;
      readonly reason: 'retired' | 'unused';
    }
  | {
      /** Deleting a key failed (`ERR_CA_KEY_MANAGER`, the KeyManager's error as `cause`); retried. */
      readonly type: 'key-delete-failed';
      readonly keyManagerKeyId: string;
      readonly error: SpireEdgeError;
    }
  | {
      /** A key due for deletion was left alone: the KeyManager's key under that id is another one. */
      readonly type: 'key-delete-skipped';
      readonly keyManagerKeyId: string;
      readonly reason: string;
    }
  | { readonly type: 'rotation-failed'; readonly error: SpireEdgeError };

export type CaEventListener = (event: CaEvent) => void;

/** One slot's state, as the status commands (`localauthority … show`) report it. */
export interface SlotStatus {
  readonly slotId: SlotId;
  readonly status: AuthorityStatus;
  readonly issuedAt: Date;
  readonly notAfter: Date;
  /** The KeyManager key id. */
  readonly keyId: string;
  /** The JWT `kid` (JWT slots only). */
  readonly jwtKeyId?: string;
}

/** The manager's slots: the current one (active) and the next (prepared or old). */
export interface CaManagerStatus {
  readonly x509: { readonly current?: SlotStatus; readonly next?: SlotStatus };
  readonly jwt: { readonly current?: SlotStatus; readonly next?: SlotStatus };
}

interface X509Slot {
  readonly entry: X509CaJournalEntry;
  readonly key: ManagedKey;
}

interface JwtSlot {
  readonly entry: JwtKeyJournalEntry;
  readonly key: ManagedKey;
}

/** Immutable manager state: every step builds a new one, saves it, then swaps it in. */
interface State {
  readonly x509Current?: X509Slot;
  readonly x509Next?: X509Slot;
  readonly jwtCurrent?: JwtSlot;
  readonly jwtNext?: JwtSlot;
  readonly x509Log: readonly X509CaJournalEntry[];
  readonly jwtLog: readonly JwtKeyJournalEntry[];
  readonly x509Authorities: readonly X509AuthorityJournalEntry[];
  readonly jwtAuthorities: readonly JwtAuthorityJournalEntry[];
}

interface Settings {
  readonly trustDomain: TrustDomain;
  readonly keyManager: KeyManager;
  readonly journalStore: JournalStore;
  readonly upstream: UpstreamAuthority | undefined;
  readonly caTtlMs: number;
  readonly caKeyType: KeyType;
  readonly jwtKeyType: KeyType;
  readonly caSubject: X509CaSubject;
  readonly marginMs: number;
  readonly retryMs: number;
  readonly clock: Clock;
  readonly random: RandomSource;
}

type KeyKind = 'x509' | 'jwt';

/** A key no journal entry names: deleted once no bundle authority holds its public key. */
interface UnnamedKey {
  readonly kind: KeyKind;
  readonly spki: Uint8Array;
  /** Not deleted before this time (ms): notAfter + margin of an entry dropped from the journal. */
  readonly keepUntil: number;
  /** `retired` for an entry the journal cap dropped, `unused` for a key never journaled. */
  readonly reason: 'retired' | 'unused';
}

const other = (id: SlotId): SlotId => (id === 'A' ? 'B' : 'A');

/**
 * The manager's key ids: `x509-CA-A-7`, `JWT-Signer-B-12`, and the fixed slot ids of
 * version 1 journals (`x509-CA-A`, serial 0). Anything else in the KeyManager is not ours.
 */
const KEY_ID_RE = /^(x509-CA|JWT-Signer)-[AB](?:-([1-9][0-9]{0,14}))?$/;

function parseOwnKeyId(id: string): { kind: KeyKind; serial: number } | undefined {
  const m = KEY_ID_RE.exec(id);
  if (m === null) return undefined;
  return {
    kind: m[1] === 'x509-CA' ? 'x509' : 'jwt',
    serial: m[2] === undefined ? 0 : Number(m[2]),
  };
}
const isEmpty = (s: { entry: { status: AuthorityStatus } } | undefined): boolean =>
  s === undefined || s.entry.status === 'old';

/** When the next slot should be prepared: half-way, at most 30 days before notAfter. */
function prepareAt(e: { issuedAt: number; notAfter: number }): number {
  return e.notAfter - Math.min((e.notAfter - e.issuedAt) / 2, PREPARE_CAP_MS);
}

/** When the next slot should be activated: at 5/6, at most 7 days before notAfter. */
function activateAt(e: { issuedAt: number; notAfter: number }): number {
  return e.notAfter - Math.min((e.notAfter - e.issuedAt) / 6, ACTIVATE_CAP_MS);
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function caError(code: `ERR_CA_${string}`, message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(code, message, cause === undefined ? {} : { cause });
}

function positiveSeconds(v: number | undefined, fallback: number, what: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new TypeError(`${what} must be a positive whole number of seconds`);
  }
  return v;
}

function keyTypeOf(v: KeyType | undefined, what: string): KeyType {
  if (v === undefined) return 'ec-p256';
  if (!KEY_TYPES.includes(v)) throw new TypeError(`${what} must be one of ${KEY_TYPES.join(', ')}`);
  return v;
}

/**
 * The CA manager. Create it with {@link CaManager.start}; the APIs use {@link CaManager.ca}.
 */
export class CaManager {
  readonly #s: Settings;
  readonly #bundleListeners = new Set<BundleChangeListener>();
  readonly #eventListeners = new Set<CaEventListener>();
  #state: State;
  #bundleCache: CaBundle | undefined;
  #activeX509: ActiveX509Ca | undefined;
  #activeJwt: ActiveJwtKey | undefined;
  #tail: Promise<void> = Promise.resolve();
  #cancelTimer: (() => void) | undefined;
  #failed = false;
  #closed = false;
  /** The highest key serial seen per kind (journal, KeyManager, generated here). */
  readonly #serial: Record<KeyKind, number> = { x509: 0, jwt: 0 };
  /** Our keys that no journal entry names: deleted once no bundle authority holds them. */
  readonly #unnamed = new Map<string, UnnamedKey>();
  /** Keys generated by a step whose journal save failed: unnamed once a later save succeeds. */
  #unsaved: Array<{ kind: KeyKind; key: ManagedKey }> = [];
  /** Keys generated by the step running now. */
  #generated: Array<{ kind: KeyKind; key: ManagedKey }> = [];
  /** Journal-named key ids that need no more work (deleted, absent, or not the entry's key). */
  readonly #settled = new Set<string>();
  /**
   * Consecutive cleanup passes in which a deletion failed: the next pass comes after
   * `retryIntervalSeconds`, doubling per failure up to 10 min (a token may refuse for good).
   */
  #deleteFailures = 0;
  /** SubjectPublicKeyInfo of certificates (journal entries and authorities share arrays). */
  readonly #spkiCache = new WeakMap<Uint8Array, Uint8Array>();
  /** The signing interface the server's APIs use. */
  readonly ca: ServerCa;

  private constructor(config: CaManagerConfig, state: State) {
    if (config === null || typeof config !== 'object') throw new TypeError('config is required');
    if (config.keyManager === undefined) throw new TypeError('keyManager is required');
    if (config.journalStore === undefined) throw new TypeError('journalStore is required');
    const trustDomain = toTrustDomain(config.trustDomain);
    const clock = config.clock ?? systemClock;
    const random = config.random ?? cryptoRandom;
    this.#s = {
      trustDomain,
      keyManager: config.keyManager,
      journalStore: config.journalStore,
      upstream: config.upstreamAuthority,
      caTtlMs: positiveSeconds(config.caTtlSeconds, DEFAULT_CA_TTL_SECONDS, 'caTtlSeconds') * 1000,
      caKeyType: keyTypeOf(config.caKeyType, 'caKeyType'),
      jwtKeyType: keyTypeOf(config.jwtKeyType, 'jwtKeyType'),
      caSubject: config.caSubject ?? DEFAULT_X509_CA_SUBJECT,
      marginMs:
        positiveSeconds(
          config.bundlePruneMarginSeconds,
          DEFAULT_BUNDLE_PRUNE_MARGIN_SECONDS,
          'bundlePruneMarginSeconds',
        ) * 1000,
      retryMs:
        positiveSeconds(
          config.retryIntervalSeconds,
          DEFAULT_RETRY_INTERVAL_SECONDS,
          'retryIntervalSeconds',
        ) * 1000,
      clock,
      random,
    };
    this.#state = state;
    if (config.onBundleChange !== undefined) this.#bundleListeners.add(config.onBundleChange);
    if (config.onEvent !== undefined) this.#eventListeners.add(config.onEvent);
    this.ca = new LocalServerCa(
      {
        activeX509Ca: () => this.#activeX509,
        activeJwtKey: () => this.#activeJwt,
        bundle: () => this.bundle,
      },
      {
        trustDomain,
        clock,
        random,
        defaultX509SvidTtlSeconds: positiveSeconds(
          config.defaultX509SvidTtlSeconds,
          DEFAULT_X509_SVID_TTL_SECONDS,
          'defaultX509SvidTtlSeconds',
        ),
        defaultJwtSvidTtlSeconds: positiveSeconds(
          config.defaultJwtSvidTtlSeconds,
          DEFAULT_JWT_SVID_TTL_SECONDS,
          'defaultJwtSvidTtlSeconds',
        ),
        ...(config.jwtIssuer === undefined ? {} : { jwtIssuer: config.jwtIssuer }),
      },
    );
  }

  /**
   * Loads the journal, re-uses the CA and JWT key it names when the KeyManager still holds
   * their keys, prepares and activates whatever is missing, and starts the rotation timer.
   * Resolves once an X.509 CA and a JWT key are active.
   *
   * @throws TypeError for invalid configuration.
   * @throws SpireEdgeError `ERR_CA_JOURNAL_CORRUPT`, `ERR_CA_JOURNAL_LOAD_FAILED`, or the
   *   error of the first rotation step (`ERR_CA_KEY_MANAGER`, `ERR_CA_UPSTREAM_*`, …).
   */
  static async start(config: CaManagerConfig): Promise<CaManager> {
    const m = new CaManager(config, {
      x509Log: [],
      jwtLog: [],
      x509Authorities: [],
      jwtAuthorities: [],
    });
    await m.#load();
    await m.#run(async () => {
      const err = await m.#step();
      if (err !== undefined) throw err;
    });
    if (m.#activeX509 === undefined || m.#activeJwt === undefined) {
      throw caError('ERR_CA_NOT_READY', 'the CA manager could not activate a CA and a JWT key');
    }
    m.#schedule();
    return m;
  }

  /** Subscribes to bundle changes; returns the unsubscribe function. */
  onBundleChange(listener: BundleChangeListener): () => void {
    this.#bundleListeners.add(listener);
    return () => this.#bundleListeners.delete(listener);
  }

  /** Subscribes to lifecycle events; returns the unsubscribe function. */
  onEvent(listener: CaEventListener): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /** The current local authorities of the trust bundle. */
  get bundle(): CaBundle {
    if (this.#bundleCache === undefined) this.#bundleCache = this.#buildBundle(this.#state);
    return this.#bundleCache;
  }

  /** The slots, for status commands. */
  status(): CaManagerStatus {
    const s = this.#state;
    const x509 = (slot: X509Slot | undefined): SlotStatus | undefined =>
      slot === undefined
        ? undefined
        : {
            slotId: slot.entry.slotId,
            status: slot.entry.status,
            issuedAt: new Date(slot.entry.issuedAt),
            notAfter: new Date(slot.entry.notAfter),
            keyId: slot.key.id,
          };
    const jwt = (slot: JwtSlot | undefined): SlotStatus | undefined =>
      slot === undefined
        ? undefined
        : {
            slotId: slot.entry.slotId,
            status: slot.entry.status,
            issuedAt: new Date(slot.entry.issuedAt),
            notAfter: new Date(slot.entry.notAfter),
            keyId: slot.key.id,
            jwtKeyId: slot.entry.keyId,
          };
    const pick = <T>(current: T | undefined, next: T | undefined) => ({
      ...(current === undefined ? {} : { current }),
      ...(next === undefined ? {} : { next }),
    });
    return {
      x509: pick(x509(s.x509Current), x509(s.x509Next)),
      jwt: pick(jwt(s.jwtCurrent), jwt(s.jwtNext)),
    };
  }

  /** Resolves once no rotation work is queued or running (tests; orderly shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const t = this.#tail;
      await t;
      if (t === this.#tail) return;
    }
  }

  /**
   * Runs a rotation check now (what the timer does), resolving when it is done. A failure
   * is returned as the rejection and also reported as a `rotation-failed` event.
   */
  rotateNow(): Promise<void> {
    if (this.#closed) return Promise.reject(caError('ERR_CA_CLOSED', 'the CA manager is closed'));
    return this.#run(async () => {
      const err = await this.#step();
      this.#schedule();
      if (err !== undefined) throw err;
    });
  }

  /**
   * Stops the timer and waits for in-flight work. The KeyManager, journal store and
   * UpstreamAuthority belong to the caller and stay open. Signing through {@link ca} keeps
   * working with the last active CA until the caller stops using it. Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    await this.idle();
  }

  // -------------------------------------------------------------------------------------
  // Loading

  async #load(): Promise<void> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await this.#s.journalStore.load();
    } catch (err) {
      throw caError(
        'ERR_CA_JOURNAL_LOAD_FAILED',
        `cannot load the CA journal: ${describeError(err)}`,
        err,
      );
    }
    let data: JournalData = EMPTY_JOURNAL;
    if (bytes !== undefined) data = decodeJournal(bytes);
    const now = this.#s.clock.nowMs();

    // Key bookkeeping: serials continue after every id in use; journal-named keys that are
    // gone need no deletion; our keys that the journal does not name are left-overs.
    let listed: ManagedKey[];
    try {
      listed = await this.#s.keyManager.listKeys();
    } catch (err) {
      throw caError(
        'ERR_CA_KEY_MANAGER',
        `cannot list the key manager's keys: ${describeError(err)}`,
        err,
      );
    }
    const named = new Set([...data.x509Cas, ...data.jwtKeys].map((e) => e.keyManagerKeyId));
    for (const id of named) this.#noteSerial(id);
    const present = new Set<string>();
    for (const key of listed) {
      const own = parseOwnKeyId(key.id);
      if (own === undefined) continue;
      present.add(key.id);
      this.#noteSerial(key.id);
      if (!named.has(key.id)) {
        this.#unnamed.set(key.id, {
          kind: own.kind,
          spki: key.publicKeySpki,
          keepUntil: 0,
          reason: 'unused',
        });
      }
    }
    for (const id of named) if (!present.has(id)) this.#settled.add(id);

    // Newest first, as SPIRE's slot loader: ACTIVE goes to current, the newest PREPARED to
    // next; a PREPARED entry with no ACTIVE one becomes current (and is activated if in time).
    let x509Current: X509Slot | undefined;
    let x509Next: X509Slot | undefined;
    for (const entry of [...data.x509Cas].reverse()) {
      if (x509Current !== undefined && x509Next !== undefined) break;
      // OLD entries are never used again (SPIRE treats an OLD slot as empty).
      if (entry.status === 'old') continue;
      if (entry.status === 'active' ? x509Current !== undefined : x509Next !== undefined) continue;
      const slot = await this.#loadX509Slot(entry, now);
      if (slot === undefined) continue;
      if (entry.status === 'active') x509Current = slot;
      else x509Next = slot;
    }
    if (x509Current === undefined && x509Next !== undefined)
      [x509Current, x509Next] = [x509Next, undefined];

    let jwtCurrent: JwtSlot | undefined;
    let jwtNext: JwtSlot | undefined;
    for (const entry of [...data.jwtKeys].reverse()) {
      if (jwtCurrent !== undefined && jwtNext !== undefined) break;
      // OLD entries are never used again (SPIRE treats an OLD slot as empty).
      if (entry.status === 'old') continue;
      if (entry.status === 'active' ? jwtCurrent !== undefined : jwtNext !== undefined) continue;
      const slot = await this.#loadJwtSlot(entry, now);
      if (slot === undefined) continue;
      if (entry.status === 'active') jwtCurrent = slot;
      else jwtNext = slot;
    }
    if (jwtCurrent === undefined && jwtNext !== undefined)
      [jwtCurrent, jwtNext] = [jwtNext, undefined];

    this.#state = {
      ...(x509Current === undefined ? {} : { x509Current }),
      ...(x509Next === undefined ? {} : { x509Next }),
      ...(jwtCurrent === undefined ? {} : { jwtCurrent }),
      ...(jwtNext === undefined ? {} : { jwtNext }),
      x509Log: data.x509Cas,
      jwtLog: data.jwtKeys,
      x509Authorities: data.x509Authorities,
      jwtAuthorities: data.jwtAuthorities,
    };
    this.#bundleCache = undefined;
    this.#refreshActive();
  }

  async #getKey(id: string): Promise<ManagedKey | undefined> {
    try {
      return await this.#s.keyManager.getKey(id);
    } catch (err) {
      throw caError(
        'ERR_CA_KEY_MANAGER',
        `cannot get key ${id} from the key manager: ${describeError(err)}`,
        err,
      );
    }
  }

  #unusable(kind: 'x509' | 'jwt', slotId: SlotId, reason: string): undefined {
    this.#emit({ type: 'journal-entry-unusable', kind, slotId, reason });
    return undefined;
  }

  async #loadX509Slot(entry: X509CaJournalEntry, now: number): Promise<X509Slot | undefined> {
    let cert: ParsedCertificate;
    try {
      cert = parseCertificate(entry.certificate);
    } catch (err) {
      throw caError(
        'ERR_CA_JOURNAL_CORRUPT',
        `CA journal: X.509 CA of slot ${entry.slotId} does not parse`,
        err,
      );
    }
    if (entry.notAfter <= now) return this.#unusable('x509', entry.slotId, 'expired');
    const key = await this.#getKey(entry.keyManagerKeyId);
    if (key === undefined) return this.#unusable('x509', entry.slotId, 'no key manager key');
    if (!bytesEqual(key.publicKeySpki, cert.spkiDer)) {
      return this.#unusable('x509', entry.slotId, 'public key does not match key manager key');
    }
    return { entry, key };
  }

  async #loadJwtSlot(entry: JwtKeyJournalEntry, now: number): Promise<JwtSlot | undefined> {
    if (entry.notAfter <= now) return this.#unusable('jwt', entry.slotId, 'expired');
    const key = await this.#getKey(entry.keyManagerKeyId);
    if (key === undefined) return this.#unusable('jwt', entry.slotId, 'no key manager key');
    if (!bytesEqual(key.publicKeySpki, entry.publicKey)) {
      return this.#unusable('jwt', entry.slotId, 'public key does not match key manager key');
    }
    return { entry, key };
  }

  // -------------------------------------------------------------------------------------
  // Rotation

  /** Serialises `fn` after earlier work. */
  #run(fn: () => Promise<void>): Promise<void> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** One rotation check: X.509 CA, JWT key, pruning; commits whatever succeeded. */
  async #step(): Promise<SpireEdgeError | undefined> {
    const now = this.#s.clock.nowMs();
    const events: CaEvent[] = [];
    let s = this.#state;
    let error: SpireEdgeError | undefined;
    let saved: boolean | undefined;
    this.#generated = [];
    try {
      s = await this.#rotateX509(s, now, events);
    } catch (err) {
      error = this.#asCaError(err);
    }
    try {
      s = await this.#rotateJwt(s, now, events);
    } catch (err) {
      error ??= this.#asCaError(err);
    }
    s = this.#prune(s, now, events);
    if (s !== this.#state) {
      try {
        await this.#save(s);
        saved = true;
        this.#commit(s, events);
      } catch (err) {
        saved ??= false;
        error ??= this.#asCaError(err);
      }
    }
    this.#failed = error !== undefined;
    if (error !== undefined) this.#emit({ type: 'rotation-failed', error });
    this.#trackGenerated(saved);
    await this.#deleteUnneededKeys(now);
    return error;
  }

  /**
   * Keys this step generated that the committed state does not hold belong to a failed
   * preparation. If the journal save failed, the store may still hold what was written, so
   * they wait until a later save succeeds; otherwise no journal ever named them.
   */
  #trackGenerated(saved: boolean | undefined): void {
    const named = namedKeyIds(this.#state);
    const orphaned = this.#generated.filter((g) => !named.has(g.key.id));
    this.#generated = [];
    if (saved === false) {
      this.#unsaved.push(...orphaned);
      return;
    }
    const now = saved === true ? [...this.#unsaved.splice(0), ...orphaned] : orphaned;
    for (const g of now) {
      if (!named.has(g.key.id)) {
        this.#unnamed.set(g.key.id, {
          kind: g.kind,
          spki: g.key.publicKeySpki,
          keepUntil: 0,
          reason: 'unused',
        });
      }
    }
  }

  /**
   * Deletes the keys nothing needs any more: retired keys of journal entries whose authority
   * has left the bundle (after the journal without it was saved), and our keys no journal
   * entry names. Failures are reported and retried; they never fail the step.
   */
  async #deleteUnneededKeys(now: number): Promise<void> {
    const s = this.#state;
    const live = liveKeyIds(s);
    const byId = new Map<string, { kind: KeyKind; needed: boolean; spkis: Uint8Array[] }>();
    const note = (id: string, kind: KeyKind, needed: boolean, spki: Uint8Array | undefined) => {
      const c = byId.get(id) ?? { kind, needed: false, spkis: [] };
      byId.set(id, {
        kind: c.kind,
        needed: c.needed || needed || live.has(id),
        spkis: spki === undefined ? c.spkis : [...c.spkis, spki],
      });
    };
    const margin = this.#s.marginMs;
    for (const e of s.x509Log) {
      const inBundle = s.x509Authorities.some((a) => bytesEqual(a.certificate, e.certificate));
      note(
        e.keyManagerKeyId,
        'x509',
        inBundle || now < e.notAfter + margin,
        this.#certSpki(e.certificate),
      );
    }
    for (const e of s.jwtLog) {
      const inBundle = s.jwtAuthorities.some((a) => a.keyId === e.keyId);
      note(e.keyManagerKeyId, 'jwt', inBundle || now < e.notAfter + margin, e.publicKey);
    }
    let failed = false;
    for (const [id, c] of byId) {
      if (c.needed || this.#settled.has(id)) continue;
      // Only our naming scheme is ever deleted, whatever the journal says.
      if (parseOwnKeyId(id) === undefined) this.#settled.add(id);
      else if (await this.#deleteKey(id, c.kind, c.spkis, 'retired')) this.#settled.add(id);
      else failed = true;
    }
    for (const [id, u] of [...this.#unnamed]) {
      if (byId.has(id) || live.has(id)) {
        this.#unnamed.delete(id);
        continue;
      }
      if (now < u.keepUntil || this.#authorityHolds(s, u.spki)) continue;
      if (await this.#deleteKey(id, u.kind, [u.spki], u.reason)) this.#unnamed.delete(id);
      else failed = true;
    }
    for (const id of this.#settled) if (!byId.has(id)) this.#settled.delete(id);
    this.#deleteFailures = failed ? this.#deleteFailures + 1 : 0;
  }

  /**
   * Deletes `id` if the KeyManager's key under it has one of `spkis` (the retired
   * authority's own key). True when nothing is left to do, false when it must be retried.
   */
  async #deleteKey(
    id: string,
    kind: KeyKind,
    spkis: readonly Uint8Array[],
    reason: 'retired' | 'unused',
  ): Promise<boolean> {
    try {
      const key = await this.#s.keyManager.getKey(id);
      if (key === undefined) return true;
      if (!spkis.some((p) => bytesEqual(p, key.publicKeySpki))) {
        this.#emit({
          type: 'key-delete-skipped',
          keyManagerKeyId: id,
          reason: 'the key manager key is not the one the journal recorded',
        });
        return true;
      }
      if (await this.#s.keyManager.deleteKey(id)) {
        this.#emit({ type: 'key-deleted', kind, keyManagerKeyId: id, reason });
      }
      return true;
    } catch (err) {
      this.#emit({
        type: 'key-delete-failed',
        keyManagerKeyId: id,
        error: caError('ERR_CA_KEY_MANAGER', `cannot delete key ${id}: ${describeError(err)}`, err),
      });
      return false;
    }
  }

  /** Whether a bundle authority (a self-signed root or a JWT key) has this public key. */
  #authorityHolds(s: State, spki: Uint8Array): boolean {
    return (
      s.jwtAuthorities.some((a) => bytesEqual(a.publicKey, spki)) ||
      s.x509Authorities.some((a) => {
        const p = this.#certSpki(a.certificate);
        return p !== undefined && bytesEqual(p, spki);
      })
    );
  }

  /** A certificate's SubjectPublicKeyInfo, or undefined when it does not parse. */
  #certSpki(cert: Uint8Array): Uint8Array | undefined {
    let spki = this.#spkiCache.get(cert);
    if (spki === undefined) {
      try {
        spki = parseCertificate(cert).spkiDer;
      } catch {
        return undefined;
      }
      this.#spkiCache.set(cert, spki);
    }
    return spki;
  }

  #asCaError(err: unknown): SpireEdgeError {
    if (isSpireEdgeError(err) && err.code.startsWith('ERR_CA_')) return err;
    return caError('ERR_CA_MINT_FAILED', `CA rotation failed: ${describeError(err)}`, err);
  }

  async #rotateX509(s: State, now: number, events: CaEvent[]): Promise<State> {
    // A slot restored as prepared with nothing active: activate it if still in time.
    if (
      s.x509Current !== undefined &&
      s.x509Current.entry.status === 'prepared' &&
      now < activateAt(s.x509Current.entry)
    ) {
      s = this.#activateX509(s, s.x509Current, undefined, events);
    }
    if (isEmpty(s.x509Current)) {
      const slot = await this.#prepareX509(s.x509Current?.entry.slotId ?? 'A', now);
      s = this.#addX509(s, slot, 'current', events);
      s = this.#activateX509(s, s.x509Current!, undefined, events);
    }
    const current = s.x509Current!;
    if (isEmpty(s.x509Next) && now >= prepareAt(current.entry)) {
      const slot = await this.#prepareX509(other(current.entry.slotId), now);
      s = this.#addX509(s, slot, 'next', events);
    }
    if (now >= activateAt(current.entry) && s.x509Next?.entry.status === 'prepared') {
      s = this.#activateX509(s, s.x509Next, current, events);
    }
    return s;
  }

  async #rotateJwt(s: State, now: number, events: CaEvent[]): Promise<State> {
    if (
      s.jwtCurrent !== undefined &&
      s.jwtCurrent.entry.status === 'prepared' &&
      now < activateAt(s.jwtCurrent.entry)
    ) {
      s = this.#activateJwt(s, s.jwtCurrent, undefined, events);
    }
    if (isEmpty(s.jwtCurrent)) {
      const slot = await this.#prepareJwt(s.jwtCurrent?.entry.slotId ?? 'A', now);
      s = this.#addJwt(s, slot, 'current', events);
      s = this.#activateJwt(s, s.jwtCurrent!, undefined, events);
    }
    const current = s.jwtCurrent!;
    if (isEmpty(s.jwtNext) && now >= prepareAt(current.entry)) {
      const slot = await this.#prepareJwt(other(current.entry.slotId), now);
      s = this.#addJwt(s, slot, 'next', events);
    }
    if (now >= activateAt(current.entry) && s.jwtNext?.entry.status === 'prepared') {
      s = this.#activateJwt(s, s.jwtNext, current, events);
    }
    return s;
  }

  /** Records the serial of one of our key ids so that new ids never repeat it. */
  #noteSerial(id: string): void {
    const own = parseOwnKeyId(id);
    if (own !== undefined && own.serial > this.#serial[own.kind])
      this.#serial[own.kind] = own.serial;
  }

  /** Generates a key under a fresh id, `<slot base>-<next serial of the kind>`. */
  async #generate(kind: KeyKind, slotId: SlotId, keyType: KeyType): Promise<ManagedKey> {
    this.#serial[kind] += 1;
    const id = `${slotKeyIdBase(kind, slotId)}-${this.#serial[kind]}`;
    let key: ManagedKey;
    try {
      key = await this.#s.keyManager.generateKey(id, keyType);
    } catch (err) {
      throw caError('ERR_CA_KEY_MANAGER', `cannot generate key ${id}: ${describeError(err)}`, err);
    }
    this.#generated.push({ kind, key });
    return key;
  }

  async #prepareX509(
    slotId: SlotId,
    now: number,
  ): Promise<{ slot: X509Slot; roots: Uint8Array[] }> {
    const key = await this.#generate('x509', slotId, this.#s.caKeyType);
    const subject = {
      ...(this.#s.caSubject.country === undefined
        ? {}
        : { country: [...this.#s.caSubject.country] }),
      ...(this.#s.caSubject.organization === undefined
        ? {}
        : { organization: [...this.#s.caSubject.organization] }),
      ...(this.#s.caSubject.organizationalUnit === undefined
        ? {}
        : { organizationalUnit: [...this.#s.caSubject.organizationalUnit] }),
      ...(this.#s.caSubject.commonName === undefined
        ? {}
        : { commonName: this.#s.caSubject.commonName }),
      ...(this.#s.caSubject.serialNumber === undefined
        ? {}
        : { serialNumber: this.#s.caSubject.serialNumber }),
    };
    let certificate: Uint8Array;
    let upstreamChain: Uint8Array[] = [];
    let roots: Uint8Array[];
    if (this.#s.upstream === undefined) {
      try {
        certificate = await mintX509CaCertificate({
          trustDomain: this.#s.trustDomain,
          subject,
          publicKey: key.publicKeySpki,
          notBefore: new Date(now - NOT_BEFORE_BACKDATE_SECONDS * 1000),
          notAfter: new Date(now + this.#s.caTtlMs),
          signer: guardSigner(key, `CA key ${key.id}`),
          random: this.#s.random,
        });
      } catch (err) {
        if (isSpireEdgeError(err) && err.code.startsWith('ERR_CA_')) throw err;
        throw caError(
          'ERR_CA_MINT_FAILED',
          `cannot mint the CA certificate: ${describeError(err)}`,
          err,
        );
      }
      roots = [certificate];
    } else {
      let resp: Awaited<ReturnType<UpstreamAuthority['mintX509CaIntermediate']>>;
      try {
        resp = await this.#s.upstream.mintX509CaIntermediate({
          publicKey: key.publicKeySpki,
          ttlSeconds: Math.floor(this.#s.caTtlMs / 1000),
          trustDomain: this.#s.trustDomain,
          subject,
        });
      } catch (err) {
        throw caError(
          'ERR_CA_UPSTREAM_FAILED',
          `upstream authority ${this.#s.upstream.name} could not sign the CA: ${describeError(err)}`,
          err,
        );
      }
      checkUpstreamResponse(resp.certChain, resp.upstreamRoots, key, this.#s.trustDomain, now);
      certificate = resp.certChain[0]!;
      upstreamChain = resp.certChain.slice(1);
      roots = [...resp.upstreamRoots];
    }
    const notAfter = parseCertificate(certificate).notAfter.getTime();
    return {
      slot: {
        key,
        entry: {
          slotId,
          issuedAt: now,
          notAfter,
          certificate,
          upstreamChain,
          status: 'prepared',
          keyManagerKeyId: key.id,
        },
      },
      roots,
    };
  }

  #addX509(
    s: State,
    p: { slot: X509Slot; roots: Uint8Array[] },
    position: 'current' | 'next',
    events: CaEvent[],
  ): State {
    const authorities = [...s.x509Authorities];
    for (const r of p.roots) {
      if (!authorities.some((a) => bytesEqual(a.certificate, r))) {
        authorities.push({ certificate: r, notAfter: parseCertificate(r).notAfter.getTime() });
      }
    }
    events.push({
      type: 'x509-ca-prepared',
      slotId: p.slot.entry.slotId,
      notAfter: new Date(p.slot.entry.notAfter),
      selfSigned: this.#s.upstream === undefined,
      keyManagerKeyId: p.slot.key.id,
    });
    return {
      ...s,
      ...(position === 'current' ? { x509Current: p.slot } : { x509Next: p.slot }),
      x509Log: [...s.x509Log, p.slot.entry].slice(-JOURNAL_CAP),
      x509Authorities: authorities,
    };
  }

  /** Makes `next` active; `previous` (when given) becomes old and moves to the next position. */
  #activateX509(
    s: State,
    next: X509Slot,
    previous: X509Slot | undefined,
    events: CaEvent[],
  ): State {
    const active: X509Slot = { key: next.key, entry: { ...next.entry, status: 'active' } };
    const old: X509Slot | undefined =
      previous === undefined
        ? undefined
        : { key: previous.key, entry: { ...previous.entry, status: 'old' } };
    const log = s.x509Log.map((e) =>
      e === next.entry ? active.entry : e === previous?.entry ? old!.entry : e,
    );
    events.push({
      type: 'x509-ca-activated',
      slotId: active.entry.slotId,
      notAfter: new Date(active.entry.notAfter),
    });
    return {
      ...s,
      x509Current: active,
      ...(old === undefined ? {} : { x509Next: old }),
      x509Log: log,
    };
  }

  async #prepareJwt(slotId: SlotId, now: number): Promise<JwtSlot> {
    const key = await this.#generate('jwt', slotId, this.#s.jwtKeyType);
    let kid = '';
    for (let i = 0; i < 32; i++) kid += KID_ALPHABET[this.#s.random.int(0, KID_ALPHABET.length)];
    return {
      key,
      entry: {
        slotId,
        issuedAt: now,
        notAfter: now + this.#s.caTtlMs,
        keyId: kid,
        publicKey: key.publicKeySpki,
        status: 'prepared',
        keyManagerKeyId: key.id,
      },
    };
  }

  #addJwt(s: State, slot: JwtSlot, position: 'current' | 'next', events: CaEvent[]): State {
    events.push({
      type: 'jwt-key-prepared',
      slotId: slot.entry.slotId,
      keyId: slot.entry.keyId,
      notAfter: new Date(slot.entry.notAfter),
      keyManagerKeyId: slot.key.id,
    });
    return {
      ...s,
      ...(position === 'current' ? { jwtCurrent: slot } : { jwtNext: slot }),
      jwtLog: [...s.jwtLog, slot.entry].slice(-JOURNAL_CAP),
      jwtAuthorities: [
        ...s.jwtAuthorities,
        { keyId: slot.entry.keyId, publicKey: slot.entry.publicKey, notAfter: slot.entry.notAfter },
      ],
    };
  }

  #activateJwt(s: State, next: JwtSlot, previous: JwtSlot | undefined, events: CaEvent[]): State {
    const active: JwtSlot = { key: next.key, entry: { ...next.entry, status: 'active' } };
    const old: JwtSlot | undefined =
      previous === undefined
        ? undefined
        : { key: previous.key, entry: { ...previous.entry, status: 'old' } };
    const log = s.jwtLog.map((e) =>
      e === next.entry ? active.entry : e === previous?.entry ? old!.entry : e,
    );
    events.push({
      type: 'jwt-key-activated',
      slotId: active.entry.slotId,
      keyId: active.entry.keyId,
      notAfter: new Date(active.entry.notAfter),
    });
    return {
      ...s,
      jwtCurrent: active,
      ...(old === undefined ? {} : { jwtNext: old }),
      jwtLog: log,
    };
  }

  /** Drops authorities whose notAfter + margin has passed, keeping the live slots' own. */
  #prune(s: State, now: number, events: CaEvent[]): State {
    const inUse = (cert: Uint8Array): boolean =>
      [s.x509Current, s.x509Next].some(
        (slot) =>
          slot !== undefined &&
          slot.entry.status !== 'old' &&
          bytesEqual(slot.entry.certificate, cert),
      );
    const x509Keep = s.x509Authorities.filter(
      (a) => a.notAfter + this.#s.marginMs > now || inUse(a.certificate),
    );
    const liveKids = new Set(
      [s.jwtCurrent, s.jwtNext]
        .filter((j) => j !== undefined && j.entry.status !== 'old')
        .map((j) => j!.entry.keyId),
    );
    const jwtKeep = s.jwtAuthorities.filter(
      (a) => a.notAfter + this.#s.marginMs > now || liveKids.has(a.keyId),
    );
    let next = s;
    if (x509Keep.length !== s.x509Authorities.length) {
      if (x509Keep.length === 0) {
        events.push({
          type: 'prune-skipped',
          reason: 'pruning would remove every X.509 authority',
        });
      } else {
        for (const a of s.x509Authorities) {
          if (!x509Keep.includes(a))
            events.push({ type: 'authority-pruned', kind: 'x509', notAfter: new Date(a.notAfter) });
        }
        next = { ...next, x509Authorities: x509Keep };
      }
    }
    if (jwtKeep.length !== s.jwtAuthorities.length) {
      for (const a of s.jwtAuthorities) {
        if (!jwtKeep.includes(a))
          events.push({ type: 'authority-pruned', kind: 'jwt', notAfter: new Date(a.notAfter) });
      }
      next = { ...next, jwtAuthorities: jwtKeep };
    }
    return next;
  }

  async #save(s: State): Promise<void> {
    const bytes = encodeJournal({
      x509Cas: s.x509Log,
      jwtKeys: s.jwtLog,
      x509Authorities: s.x509Authorities,
      jwtAuthorities: s.jwtAuthorities,
    });
    try {
      await this.#s.journalStore.save(bytes);
    } catch (err) {
      throw caError(
        'ERR_CA_JOURNAL_SAVE_FAILED',
        `cannot save the CA journal: ${describeError(err)}`,
        err,
      );
    }
  }

  #commit(s: State, events: CaEvent[]): void {
    const before = this.#state;
    this.#state = s;
    this.#refreshActive();
    // Entries the journal cap dropped: their keys are no longer named, but still deleted.
    const named = namedKeyIds(s);
    const dropped = (id: string, kind: KeyKind, spki: Uint8Array | undefined, notAfter: number) => {
      if (named.has(id) || this.#settled.has(id) || spki === undefined) return;
      this.#unnamed.set(id, {
        kind,
        spki,
        keepUntil: notAfter + this.#s.marginMs,
        reason: 'retired',
      });
    };
    for (const e of before.x509Log)
      dropped(e.keyManagerKeyId, 'x509', this.#certSpki(e.certificate), e.notAfter);
    for (const e of before.jwtLog) dropped(e.keyManagerKeyId, 'jwt', e.publicKey, e.notAfter);
    const addedX509 = s.x509Authorities
      .filter((a) => !before.x509Authorities.some((b) => bytesEqual(a.certificate, b.certificate)))
      .map((a) => a.certificate);
    const removedX509 = before.x509Authorities
      .filter((b) => !s.x509Authorities.some((a) => bytesEqual(a.certificate, b.certificate)))
      .map((b) => b.certificate);
    const addedJwt = s.jwtAuthorities
      .filter((a) => !before.jwtAuthorities.some((b) => b.keyId === a.keyId))
      .map((a) => a.keyId);
    const removedJwt = before.jwtAuthorities
      .filter((b) => !s.jwtAuthorities.some((a) => a.keyId === b.keyId))
      .map((b) => b.keyId);
    for (const e of events) this.#emit(e);
    if (addedX509.length + removedX509.length + addedJwt.length + removedJwt.length > 0) {
      this.#bundleCache = undefined;
      const bundle = this.bundle;
      const change: BundleChange = { addedX509, removedX509, addedJwt, removedJwt };
      for (const l of this.#bundleListeners) {
        try {
          const r = l(bundle, change);
          if (r instanceof Promise) r.catch((err: unknown) => this.#listenerFailed(err));
        } catch (err) {
          this.#listenerFailed(err);
        }
      }
    }
  }

  #listenerFailed(err: unknown): void {
    this.#emit({
      type: 'rotation-failed',
      error: caError(
        'ERR_CA_BUNDLE_LISTENER',
        `a bundle listener failed: ${describeError(err)}`,
        err,
      ),
    });
  }

  #refreshActive(): void {
    const x = this.#state.x509Current;
    if (x === undefined || x.entry.status !== 'active') {
      this.#activeX509 = undefined;
    } else if (this.#activeX509?.certificate !== x.entry.certificate) {
      this.#activeX509 = {
        slotId: x.entry.slotId,
        keyId: x.key.id,
        certificate: x.entry.certificate,
        upstreamChain: x.entry.upstreamChain,
        selfSigned:
          x.entry.upstreamChain.length === 0 && isSelfIssued(parseCertificate(x.entry.certificate)),
        notAfter: new Date(x.entry.notAfter),
        signer: guardSigner(x.key, `CA key ${x.key.id}`),
      };
    }
    const j = this.#state.jwtCurrent;
    if (j === undefined || j.entry.status !== 'active') {
      this.#activeJwt = undefined;
    } else if (this.#activeJwt?.keyId !== j.entry.keyId) {
      this.#activeJwt = {
        slotId: j.entry.slotId,
        keyId: j.entry.keyId,
        notAfter: new Date(j.entry.notAfter),
        signer: guardSigner(j.key, `JWT key ${j.key.id}`),
      };
    }
  }

  #buildBundle(s: State): CaBundle {
    return {
      trustDomain: this.#s.trustDomain,
      x509Authorities: s.x509Authorities.map((a) => ({
        certificate: a.certificate,
        notAfter: new Date(a.notAfter),
      })),
      jwtAuthorities: s.jwtAuthorities.map((a): CaJwtAuthority => {
        const base = jwtAuthorityFromKey(a.keyId, publicKeyFromSpki(a.publicKey));
        return { ...base, publicKeySpki: a.publicKey, notAfter: new Date(a.notAfter) };
      }),
    };
  }

  #emit(e: CaEvent): void {
    for (const l of this.#eventListeners) {
      try {
        l(e);
      } catch {
        // A failing log hook must not break rotation.
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Scheduling

  /** Arms the timer for the next threshold, prune time or retry. */
  #schedule(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    if (this.#closed) return;
    const now = this.#s.clock.nowMs();
    const s = this.#state;
    const times: number[] = [];
    for (const [cur, next] of [
      [s.x509Current, s.x509Next],
      [s.jwtCurrent, s.jwtNext],
    ] as const) {
      if (cur === undefined) continue;
      if (isEmpty(next)) times.push(prepareAt(cur.entry));
      else if (next?.entry.status === 'prepared') times.push(activateAt(cur.entry));
    }
    for (const a of [...s.x509Authorities, ...s.jwtAuthorities])
      times.push(a.notAfter + this.#s.marginMs);
    // Retired keys go once their authority has gone (or, upstream-signed, at notAfter + margin).
    for (const e of [...s.x509Log, ...s.jwtLog]) {
      if (!this.#settled.has(e.keyManagerKeyId)) times.push(e.notAfter + this.#s.marginMs);
    }
    for (const u of this.#unnamed.values()) times.push(u.keepUntil);
    // Whatever was due has been done by the step that just ran, or failed (then retry), or
    // was skipped on purpose (the last X.509 authority): only future times wake us.
    let wake = Math.min(...times.filter((t) => t > now), now + MAX_SLEEP_MS);
    if (this.#failed) wake = Math.min(wake, now + this.#s.retryMs);
    if (this.#deleteFailures > 0) {
      const backoff = this.#s.retryMs * 2 ** Math.min(this.#deleteFailures - 1, 16);
      wake = Math.min(wake, now + Math.min(backoff, MAX_SLEEP_MS));
    }
    this.#cancelTimer = this.#s.clock.setTimer(Math.max(0, Math.ceil(wake - now)), () => {
      this.#cancelTimer = undefined;
      if (this.#closed) return;
      this.#run(async () => {
        if (this.#closed) return;
        await this.#step();
        this.#schedule();
      }).catch(() => undefined);
    });
  }
}

/** KeyManager ids the journal names (and the live slots hold). */
function namedKeyIds(s: State): Set<string> {
  const ids = new Set([...s.x509Log, ...s.jwtLog].map((e) => e.keyManagerKeyId));
  for (const id of liveKeyIds(s)) ids.add(id);
  return ids;
}

/** KeyManager ids of the slots that are prepared or active: never deleted. */
function liveKeyIds(s: State): Set<string> {
  const ids = new Set<string>();
  for (const slot of [s.x509Current, s.x509Next, s.jwtCurrent, s.jwtNext]) {
    if (slot !== undefined && slot.entry.status !== 'old') ids.add(slot.key.id);
  }
  return ids;
}

function publicKeyFromSpki(spki: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
}

function upstreamInvalid(message: string, cause?: unknown): SpireEdgeError {
  return caError('ERR_CA_UPSTREAM_INVALID', `upstream authority returned ${message}`, cause);
}

/**
 * Checks an UpstreamAuthority's answer before the CA uses it: the first certificate holds
 * the CA key, is a CA for the trust domain and valid now; each certificate is signed by the
 * next; the last is signed by (or is) one of the upstream roots.
 */
function checkUpstreamResponse(
  chain: readonly Uint8Array[],
  roots: readonly Uint8Array[],
  key: ManagedKey,
  td: TrustDomain,
  now: number,
): void {
  if (!Array.isArray(chain) || chain.length === 0)
    throw upstreamInvalid('an empty certificate chain');
  if (!Array.isArray(roots) || roots.length === 0) throw upstreamInvalid('no upstream roots');
  let certs: ParsedCertificate[];
  let rootCerts: ParsedCertificate[];
  try {
    certs = chain.map(parseCertificate);
    rootCerts = roots.map(parseCertificate);
  } catch (err) {
    throw upstreamInvalid(`a certificate that does not parse: ${describeError(err)}`, err);
  }
  const ca = certs[0]!;
  if (!bytesEqual(ca.spkiDer, key.publicKeySpki))
    throw upstreamInvalid('a CA certificate for another key');
  if (ca.extensions.basicConstraints?.ca !== true)
    throw upstreamInvalid('a CA certificate without cA TRUE');
  if (!(ca.extensions.subjectAltName?.uris ?? []).includes(td.idString())) {
    throw upstreamInvalid(`a CA certificate without the URI SAN ${td.idString()}`);
  }
  if (
    ca.notBefore.getTime() > now + NOT_BEFORE_BACKDATE_SECONDS * 1000 ||
    ca.notAfter.getTime() <= now
  ) {
    throw upstreamInvalid('a CA certificate that is not valid now');
  }
  const issuedBy = (child: ParsedCertificate, parent: ParsedCertificate): boolean =>
    bytesEqual(child.issuerDer, parent.subjectDer) &&
    verifyCertificateSignature(child, certificatePublicKey(parent));
  try {
    for (let i = 0; i + 1 < certs.length; i++) {
      if (!issuedBy(certs[i]!, certs[i + 1]!))
        throw upstreamInvalid(`a chain broken at certificate ${i}`);
    }
    const last = certs[certs.length - 1]!;
    if (!rootCerts.some((r) => bytesEqual(r.der, last.der) || issuedBy(last, r))) {
      throw upstreamInvalid('a chain that does not reach the upstream roots');
    }
  } catch (err) {
    if (isSpireEdgeError(err, 'ERR_CA_UPSTREAM_INVALID')) throw err;
    throw upstreamInvalid(`a chain that cannot be verified: ${describeError(err)}`, err);
  }
}
