/**
 * The ServerCa: the narrow signing interface the server's APIs see (SPIRE's `ca.ServerCA`).
 * It signs X509-SVIDs and JWT-SVIDs with whatever X.509 CA and JWT key the CA manager has
 * activated, and reports the trust-domain authorities. Rotation, the journal and the
 * KeyManager stay behind it, in manager.ts.
 *
 * Trust: the ServerCa signs what it is asked to sign. The caller (the SVID and agent APIs)
 * must already have authorised the SPIFFE ID, the DNS names and the key; the ServerCa only
 * checks that the ID belongs to the trust domain and that the request is well formed.
 *
 * Not provided: `signX509CaSvid` (intermediate CAs for SPIRE's `-downstream` entries).
 *
 * Errors: `ERR_CA_NOT_READY` (no active CA or JWT key), `ERR_CA_SPIFFE_ID_NOT_MEMBER` (an
 * ID of another trust domain), `ERR_CA_SIGN_FAILED` (the KeyManager could not sign; the
 * KeyManager's coded error is the `cause`), `ERR_CSR_INVALID` (from
 * {@link ServerCa.signX509SvidFromCsr}), `ERR_SPIFFE_ID_INVALID` (a malformed ID string).
 * Bad argument types and TTLs throw `TypeError`.
 */
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { Clock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import type { RandomSource } from '../../common/random.js';
import type { Signer } from '../../common/signer.js';
import { loadNativeAddon, type NativeEcdsaItem } from '../../native/addon.js';
import type { JwtAuthority } from '../../spiffe/bundle-source.js';
import type { EcdsaVerifier, EcdsaVerifyRequest } from '../../spiffe/csr.js';
import { type SpiffeId, type TrustDomain, toSpiffeId } from '../../spiffe/id.js';
import { mintJwtSvid } from '../../spiffe/jwt-svid.js';
import {
  type MintX509SvidFromCsrOptions,
  type MintX509SvidOptions,
  mintX509SvidFromCsr,
  X509SvidMinter,
} from '../../spiffe/x509-mint.js';

/** How far NotBefore is backdated for clock skew (SPIRE's NotBeforeCushion). */
export const NOT_BEFORE_BACKDATE_SECONDS = 10;

/** An X.509 authority (root certificate) of the trust domain. */
export interface CaX509Authority {
  /** The certificate (DER). */
  readonly certificate: Uint8Array;
  readonly notAfter: Date;
}

/** A JWT authority of the trust domain: {@link JwtAuthority} plus its expiry and SPKI. */
export interface CaJwtAuthority extends JwtAuthority {
  /** The public key as SubjectPublicKeyInfo DER. */
  readonly publicKeySpki: Uint8Array;
  /** When the key stops signing; JWT-SVIDs it signed expire by then. */
  readonly notAfter: Date;
}

/**
 * The authorities the CA manager contributes to the trust bundle: every root and JWT key
 * still needed to verify an SVID this server may have signed (including prepared ones,
 * published before they sign anything).
 */
export interface CaBundle {
  readonly trustDomain: TrustDomain;
  readonly x509Authorities: readonly CaX509Authority[];
  readonly jwtAuthorities: readonly CaJwtAuthority[];
}

/** The active X.509 CA. */
export interface ActiveX509Ca {
  /** `A` or `B`. */
  readonly slotId: string;
  /** The KeyManager id of the CA key (`x509-CA-A-1`, …: slot, then a serial per preparation). */
  readonly keyId: string;
  /** The CA certificate (DER). */
  readonly certificate: Uint8Array;
  /**
   * Upstream intermediates above the CA certificate, excluding roots; empty when the CA is
   * self-signed (then the CA certificate is itself the root).
   */
  readonly upstreamChain: readonly Uint8Array[];
  /** True when the CA certificate is its own root (no UpstreamAuthority). */
  readonly selfSigned: boolean;
  readonly notAfter: Date;
  /** Signs with the CA key; errors are `ERR_CA_SIGN_FAILED` with the KeyManager's cause. */
  readonly signer: Signer;
}

/** The active JWT signing key. */
export interface ActiveJwtKey {
  readonly slotId: string;
  /** The `kid` in JWT headers and the bundle. */
  readonly keyId: string;
  readonly notAfter: Date;
  readonly signer: Signer;
}

/** A signed X509-SVID. */
export interface SignedX509Svid {
  /** The leaf, then the CA chain up to but excluding the root. */
  readonly certChain: Uint8Array[];
  /** The leaf's notAfter. */
  readonly expiresAt: Date;
}

/** A signed JWT-SVID. */
export interface SignedJwtSvid {
  readonly token: string;
  readonly expiresAt: Date;
  /** The `kid` it was signed with. */
  readonly keyId: string;
}

/** Parameters of {@link ServerCa.signX509Svid}. */
export interface SignX509SvidParams {
  readonly spiffeId: SpiffeId | string;
  /** The SVID's public key (KeyObject or SubjectPublicKeyInfo DER). */
  readonly publicKey: KeyObject | Uint8Array;
  /** Requested lifetime; `default_x509_svid_ttl` when absent or 0; capped by the CA. */
  readonly ttlSeconds?: number;
  readonly dnsNames?: readonly string[];
}

/** Parameters of {@link ServerCa.signX509SvidFromCsr}. */
export interface SignX509SvidFromCsrParams {
  readonly spiffeId: SpiffeId | string;
  readonly ttlSeconds?: number;
  readonly dnsNames?: readonly string[];
}

/** Parameters of {@link ServerCa.signJwtSvid}. */
export interface SignJwtSvidParams {
  readonly spiffeId: SpiffeId | string;
  readonly audience: readonly string[];
  /** Requested lifetime; `default_jwt_svid_ttl` (5 min) when absent or 0; capped by the key. */
  readonly ttlSeconds?: number;
}

/** What the server's APIs may do with the CA. */
export interface ServerCa {
  /**
   * Signs an X509-SVID. NotBefore is now − 10 s; NotAfter is now + TTL, capped by the CA's
   * notAfter (an SVID never outlives its CA).
   */
  signX509Svid(params: SignX509SvidParams): Promise<SignedX509Svid>;
  /** Signs an X509-SVID for the key of a PKCS#10 request (its signature is checked). */
  signX509SvidFromCsr(
    csrDer: Uint8Array,
    params: SignX509SvidFromCsrParams,
  ): Promise<SignedX509Svid>;
  /** Signs a JWT-SVID with the active JWT key; `exp` is capped by the key's notAfter. */
  signJwtSvid(params: SignJwtSvidParams): Promise<SignedJwtSvid>;
  /** The X.509 authorities (root certificates, DER) of the trust domain. */
  getX509Authorities(): Uint8Array[];
  /** The JWT authorities of the trust domain. */
  getJwtAuthorities(): CaJwtAuthority[];
  /** The active X.509 CA (for the server's own TLS SVID), or undefined before the first. */
  getCurrentX509Ca(): ActiveX509Ca | undefined;
}

/** What a {@link LocalServerCa} reads its CA state from (the CA manager). */
export interface CaStateSource {
  activeX509Ca(): ActiveX509Ca | undefined;
  activeJwtKey(): ActiveJwtKey | undefined;
  bundle(): CaBundle;
}

/** Settings of a {@link LocalServerCa}. */
export interface LocalServerCaOptions {
  readonly trustDomain: TrustDomain;
  readonly clock: Clock;
  readonly random: RandomSource;
  /** SPIRE's `default_x509_svid_ttl`. */
  readonly defaultX509SvidTtlSeconds: number;
  /** SPIRE's `default_jwt_svid_ttl`. */
  readonly defaultJwtSvidTtlSeconds: number;
  /** The `iss` claim of JWT-SVIDs (SPIRE's `jwt_issuer`), when set. */
  readonly jwtIssuer?: string;
  /**
   * How CSR self-signatures are verified: `'native'` (the default) through the native
   * addon's ECDSA verifier when the addon is built with it ({@link nativeEcdsaVerifier}),
   * node:crypto otherwise; `'node'` always through node:crypto. Both accept and refuse the
   * same requests with the same errors; the native path skips the per-request key import.
   */
  readonly csrVerification?: 'native' | 'node';
}

/** How many parsed SPIFFE IDs a LocalServerCa keeps. */
const SPIFFE_ID_CACHE_SIZE = 4096;

/** Most signatures one native thread-pool task verifies (a batch is spread over threads). */
const NATIVE_VERIFY_MAX_CHUNK = 16;
const CURVE_INDEX = { 'P-256': 0, 'P-384': 1, 'P-521': 2 } as const;
const HASH_INDEX = { sha256: 0, sha384: 1, sha512: 2 } as const;

let nativeVerifier: EcdsaVerifier | null | undefined;

/**
 * The native addon's ECDSA verifier (native/ecdsa-verify.cc, `ecdsaVerifyBatch`), for
 * `parseCsrAsync`'s `verifyEcdsa`; undefined when the addon is not built or predates it.
 * Requests made in the same turn of the event loop (a BatchNewX509SVID's CSRs) are
 * verified together: one thread-pool task per chunk of up to 16, spread over the cores.
 * Any failure of the addon resolves false, which sends the request down node:crypto's
 * path (the parser re-decides every false).
 */
export function nativeEcdsaVerifier(): EcdsaVerifier | undefined {
  if (nativeVerifier !== undefined) return nativeVerifier ?? undefined;
  nativeVerifier = null;
  let batch: ((items: readonly NativeEcdsaItem[]) => Promise<Int8Array>) | undefined;
  try {
    const addon = loadNativeAddon();
    const many = addon.ecdsaVerifyMany;
    if (typeof many === 'function') {
      // The flat form: one block of bytes, no property or element reads per item in the
      // addon (a few µs per CSR less on the event loop).
      batch = (items) => {
        const kinds = new Uint8Array(items.length);
        const ends = new Uint32Array(items.length * 3);
        let size = 0;
        for (const it of items) size += it.point.length + it.data.length + it.signature.length;
        const blob = Buffer.allocUnsafe(size);
        let o = 0;
        for (let i = 0; i < items.length; i++) {
          const it = items[i]!;
          kinds[i] = CURVE_INDEX[it.curve] * 3 + HASH_INDEX[it.hash];
          blob.set(it.point, o);
          ends[3 * i] = o += it.point.length;
          blob.set(it.data, o);
          ends[3 * i + 1] = o += it.data.length;
          blob.set(it.signature, o);
          ends[3 * i + 2] = o += it.signature.length;
        }
        return many.call(addon, kinds, blob, ends);
      };
    } else if (typeof addon.ecdsaVerifyBatch === 'function') {
      batch = addon.ecdsaVerifyBatch.bind(addon);
    }
  } catch {
    // ERR_NATIVE_UNAVAILABLE: node:crypto it is.
  }
  if (batch === undefined) return undefined;
  const verifyBatch = batch;
  const cores = Math.max(1, availableParallelism());
  let pending: { request: EcdsaVerifyRequest; resolve: (ok: boolean) => void }[] = [];
  const run = (chunk: typeof pending): void => {
    let result: Promise<Int8Array>;
    try {
      result = verifyBatch(chunk.map((p) => p.request));
    } catch {
      for (const p of chunk) p.resolve(false);
      return;
    }
    result.then(
      (r) => {
        for (let i = 0; i < chunk.length; i++) chunk[i]!.resolve(r[i] === 1);
      },
      () => {
        for (const p of chunk) p.resolve(false);
      },
    );
  };
  const flush = (): void => {
    const all = pending;
    pending = [];
    const size = Math.min(NATIVE_VERIFY_MAX_CHUNK, Math.ceil(all.length / cores));
    for (let i = 0; i < all.length; i += size) run(all.slice(i, i + size));
  };
  nativeVerifier = (request) =>
    new Promise<boolean>((resolve) => {
      if (pending.length === 0) queueMicrotask(flush);
      pending.push({ request, resolve });
    });
  return nativeVerifier;
}

/**
 * Wraps a signer so that its failures become `ERR_CA_SIGN_FAILED` (the cause keeps the
 * KeyManager's code), keeping the synchronous path when the key has one.
 */
export function guardSigner(signer: Signer, what: string): Signer {
  const wrap = (err: unknown): SpireEdgeError =>
    new SpireEdgeError('ERR_CA_SIGN_FAILED', `${what} could not sign: ${describeError(err)}`, {
      cause: err,
    });
  const guarded: Signer = {
    keyType: signer.keyType,
    publicKey: signer.publicKey,
    publicKeySpki: signer.publicKeySpki,
    sign: async (data) => {
      try {
        return await signer.sign(data);
      } catch (err) {
        throw wrap(err);
      }
    },
  };
  const sync = signer.signSync;
  if (sync !== undefined) {
    (guarded as { signSync: (d: Uint8Array) => Uint8Array }).signSync = (data) => {
      try {
        return sync.call(signer, data);
      } catch (err) {
        throw wrap(err);
      }
    };
  }
  return guarded;
}

function ttlOf(ttl: number | undefined, fallback: number, what: string): number {
  if (ttl === undefined || ttl === 0) return fallback;
  if (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 0) {
    throw new TypeError(`${what} must be a non-negative whole number of seconds`);
  }
  return ttl;
}

const floorSeconds = (ms: number): number => Math.floor(ms / 1000) * 1000;

/** The {@link ServerCa} over the CA manager's active CA and JWT key. */
export class LocalServerCa implements ServerCa {
  readonly #source: CaStateSource;
  readonly #opts: LocalServerCaOptions;
  readonly #minters = new WeakMap<ActiveX509Ca, X509SvidMinter>();
  readonly #verifyEcdsa: EcdsaVerifier | undefined;
  /** Parsed SPIFFE IDs by string (bounded: cleared when full). */
  readonly #ids = new Map<string, SpiffeId>();

  constructor(source: CaStateSource, options: LocalServerCaOptions) {
    this.#source = source;
    this.#opts = options;
    this.#verifyEcdsa = options.csrVerification === 'node' ? undefined : nativeEcdsaVerifier();
  }

  /** True when CSR signatures go through the native verifier. */
  get nativeCsrVerification(): boolean {
    return this.#verifyEcdsa !== undefined;
  }

  #x509Ca(): ActiveX509Ca {
    const ca = this.#source.activeX509Ca();
    if (ca === undefined) throw new SpireEdgeError('ERR_CA_NOT_READY', 'no X.509 CA is active');
    return ca;
  }

  #minter(ca: ActiveX509Ca): X509SvidMinter {
    let m = this.#minters.get(ca);
    if (m === undefined) {
      m = new X509SvidMinter({
        issuerCertDer: ca.certificate,
        signer: ca.signer,
        random: this.#opts.random,
      });
      this.#minters.set(ca, m);
    }
    return m;
  }

  #member(spiffeId: SpiffeId | string): SpiffeId {
    let id: SpiffeId;
    if (typeof spiffeId === 'string') {
      // The agent API signs for the same entries all day: parse each ID once (bounded).
      const cached = this.#ids.get(spiffeId);
      if (cached === undefined) {
        id = toSpiffeId(spiffeId);
        if (this.#ids.size >= SPIFFE_ID_CACHE_SIZE) this.#ids.clear();
        this.#ids.set(spiffeId, id);
      } else {
        id = cached;
      }
    } else {
      id = toSpiffeId(spiffeId);
    }
    if (!id.memberOf(this.#opts.trustDomain)) {
      throw new SpireEdgeError(
        'ERR_CA_SPIFFE_ID_NOT_MEMBER',
        `SPIFFE ID ${id.toString()} is not a member of trust domain ${this.#opts.trustDomain.name}`,
      );
    }
    return id;
  }

  /** The validity of an X509-SVID, whole seconds as the certificate encodes them. */
  #x509Validity(
    ca: ActiveX509Ca,
    ttlSeconds: number | undefined,
  ): { notBefore: Date; notAfter: Date } {
    const ttl = ttlOf(ttlSeconds, this.#opts.defaultX509SvidTtlSeconds, 'ttlSeconds');
    const now = this.#opts.clock.nowMs();
    const notBefore = floorSeconds(now - NOT_BEFORE_BACKDATE_SECONDS * 1000);
    const notAfter = floorSeconds(Math.min(now + ttl * 1000, ca.notAfter.getTime()));
    if (notAfter <= now) {
      throw new SpireEdgeError('ERR_CA_NOT_READY', 'the active X.509 CA has expired');
    }
    return { notBefore: new Date(notBefore), notAfter: new Date(notAfter) };
  }

  #chain(ca: ActiveX509Ca, leaf: Uint8Array): Uint8Array[] {
    return ca.selfSigned ? [leaf] : [leaf, ca.certificate, ...ca.upstreamChain];
  }

  async signX509Svid(params: SignX509SvidParams): Promise<SignedX509Svid> {
    if (params === null || typeof params !== 'object') throw new TypeError('params are required');
    const ca = this.#x509Ca();
    const id = this.#member(params.spiffeId);
    const { notBefore, notAfter } = this.#x509Validity(ca, params.ttlSeconds);
    const opts: MintX509SvidOptions = {
      spiffeId: id,
      publicKey: params.publicKey,
      notBefore,
      notAfter,
    };
    if (params.dnsNames !== undefined) opts.dnsNames = params.dnsNames;
    const minter = this.#minter(ca);
    const leaf = minter.canMintSync ? minter.mintSync(opts) : await minter.mint(opts);
    return { certChain: this.#chain(ca, leaf), expiresAt: notAfter };
  }

  async signX509SvidFromCsr(
    csrDer: Uint8Array,
    params: SignX509SvidFromCsrParams,
  ): Promise<SignedX509Svid> {
    if (params === null || typeof params !== 'object') throw new TypeError('params are required');
    const ca = this.#x509Ca();
    const id = this.#member(params.spiffeId);
    const { notBefore, notAfter } = this.#x509Validity(ca, params.ttlSeconds);
    const opts: MintX509SvidFromCsrOptions = { spiffeId: id, notBefore, notAfter };
    if (params.dnsNames !== undefined) opts.dnsNames = params.dnsNames;
    if (this.#verifyEcdsa !== undefined) opts.verifyEcdsa = this.#verifyEcdsa;
    const leaf = await mintX509SvidFromCsr(this.#minter(ca), csrDer, opts);
    return { certChain: this.#chain(ca, leaf), expiresAt: notAfter };
  }

  async signJwtSvid(params: SignJwtSvidParams): Promise<SignedJwtSvid> {
    if (params === null || typeof params !== 'object') throw new TypeError('params are required');
    const key = this.#source.activeJwtKey();
    if (key === undefined) throw new SpireEdgeError('ERR_CA_NOT_READY', 'no JWT key is active');
    const id = this.#member(params.spiffeId);
    const ttl = ttlOf(params.ttlSeconds, this.#opts.defaultJwtSvidTtlSeconds, 'ttlSeconds');
    const now = this.#opts.clock.nowMs();
    const expiresAt = floorSeconds(Math.min(now + ttl * 1000, key.notAfter.getTime()));
    if (expiresAt - floorSeconds(now) < 1000) {
      throw new SpireEdgeError('ERR_CA_NOT_READY', 'the active JWT key has expired');
    }
    const token = await mintJwtSvid({
      signer: key.signer,
      keyId: key.keyId,
      spiffeId: id,
      audience: [...params.audience],
      expiresAt: new Date(expiresAt),
      issuedAt: new Date(now),
      ...(this.#opts.jwtIssuer === undefined ? {} : { issuer: this.#opts.jwtIssuer }),
    });
    return { token, expiresAt: new Date(expiresAt), keyId: key.keyId };
  }

  getX509Authorities(): Uint8Array[] {
    return this.#source.bundle().x509Authorities.map((a) => a.certificate);
  }

  getJwtAuthorities(): CaJwtAuthority[] {
    return [...this.#source.bundle().jwtAuthorities];
  }

  getCurrentX509Ca(): ActiveX509Ca | undefined {
    return this.#source.activeX509Ca();
  }
}
