/**
 * The `pkcs11` UpstreamAuthority: a root CA whose private key — and certificate object —
 * live on a PKCS#11 token signs the server's intermediate CA certificates. The root key
 * never leaves the HSM: every CA certificate is signed on the token (software hash, then
 * CKM_ECDSA / CKM_RSA_PKCS), and there is no software fallback.
 *
 * Settings (`plugin_data`, config.ts): the token settings of the KeyManager, plus
 * `key_label` and/or `key_id` (hex CKA_ID) of the root's private key — or the URI's `object`
 * / `id` — and `certificate_label` (default: the key label; with only an id, the certificate
 * with that CKA_ID). The certificate must be a self-signed CA valid now whose public key is
 * the private key's (checked with a probe signature at open).
 *
 * The key and certificate are found again on every mint (a root renewed on the token is
 * picked up without a restart) and after every reconnection. {@link provisionPkcs11UpstreamRoot}
 * creates such a root on a token (development, tests, first set-up).
 *
 * Errors: `ERR_UPSTREAM_AUTHORITY_INVALID` (no or several matching objects, the certificate
 * is not a usable root, the key does not match it), `ERR_UPSTREAM_AUTHORITY_IO` (the token
 * failed; `cause` is the `ERR_HSM_CKR` / `ERR_HSM_UNAVAILABLE` error and `details.ckr` its
 * CKR name), `ERR_UPSTREAM_AUTHORITY_CLOSED`; opening also fails with the codes of
 * config.ts, module.ts and session-pool.ts.
 */
import { verify } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { cryptoRandom, type RandomSource } from '../../common/random.js';
import { hashForKeyType, type KeyType, type Signer } from '../../common/signer.js';
import type {
  MintX509CaRequest,
  MintX509CaResponse,
  UpstreamAuthority,
  X509CaSubject,
} from '../../server/ca/upstream-authority.js';
import type { TrustDomain } from '../../spiffe/id.js';
import {
  certificatePublicKey,
  isSelfIssued,
  type ParsedCertificate,
  parseCertificate,
  verifyCertificateSignature,
} from '../../spiffe/x509-cert.js';
import { mintX509CaCertificate } from '../../spiffe/x509-mint.js';
import { keyTypeOfPrivateKey } from '../memory.js';
import { type Pkcs11UpstreamAuthoritySettings, resolvePkcs11Token } from './config.js';
import { ckaIdForLabel } from './key-manager.js';
import type { Pkcs11Api } from './module.js';
import {
  destroyObjects,
  findObjects,
  keyPairTemplates,
  readKeyPair,
  signInput,
  signOnSession,
} from './objects.js';
import { type Pkcs11Health, Pkcs11SessionPool } from './session-pool.js';

/** NotBefore backdating of minted CA certificates, as the server CA does (clock skew). */
const BACKDATE_MS = 10_000;

/** Options of {@link openPkcs11UpstreamAuthority}: the plugin settings plus injectables. */
export interface Pkcs11UpstreamAuthorityConfig extends Pkcs11UpstreamAuthoritySettings {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  /** First background reconnection delay (ms). Default 500. */
  readonly retryMinMs?: number;
  /** Longest background reconnection delay (ms). Default 30 000. */
  readonly retryMaxMs?: number;
}

interface RootObjects {
  readonly cert: ParsedCertificate;
  readonly keyType: KeyType;
  readonly keyHandle: Buffer;
}

interface ObjectRef {
  readonly keyLabel: string | undefined;
  readonly keyId: Buffer | undefined;
  readonly certLabel: string | undefined;
}

function invalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_UPSTREAM_AUTHORITY_INVALID',
    `upstream authority pkcs11: ${message}`,
    cause === undefined ? {} : { cause },
  );
}

function tokenFailed(message: string, err: unknown): SpireEdgeError {
  if (err instanceof SpireEdgeError && err.code.startsWith('ERR_UPSTREAM_AUTHORITY_')) return err;
  const ckr =
    err instanceof SpireEdgeError && typeof err.details['ckr'] === 'string'
      ? err.details['ckr']
      : undefined;
  return new SpireEdgeError(
    'ERR_UPSTREAM_AUTHORITY_IO',
    `upstream authority pkcs11: ${message}: ${describeError(err)}`,
    { cause: err, details: ckr === undefined ? {} : { ckr } },
  );
}

function describeRef(ref: ObjectRef): string {
  const parts: string[] = [];
  if (ref.keyLabel !== undefined) parts.push(`label ${JSON.stringify(ref.keyLabel)}`);
  if (ref.keyId !== undefined) parts.push(`id ${ref.keyId.toString('hex')}`);
  return parts.join(' and ');
}

function keyTemplate(ref: ObjectRef, cls: number, label: string | undefined): pkcs11js.Template {
  const t: pkcs11js.Template = [{ type: pkcs11js.CKA_CLASS, value: cls }];
  if (label !== undefined) t.push({ type: pkcs11js.CKA_LABEL, value: label });
  if (ref.keyId !== undefined) t.push({ type: pkcs11js.CKA_ID, value: ref.keyId });
  return t;
}

const PROBE = Buffer.from('spire-edge pkcs11 upstream authority probe');

/** Finds and checks the root key and certificate on the token. */
function loadRoot(p11: Pkcs11Api, session: Buffer, ref: ObjectRef, nowMs: number): RootObjects {
  const keys = findObjects(p11, session, keyTemplate(ref, pkcs11js.CKO_PRIVATE_KEY, ref.keyLabel));
  if (keys.length !== 1) {
    throw invalid(
      keys.length === 0
        ? `no private key with ${describeRef(ref)} on the token`
        : `${keys.length} private keys with ${describeRef(ref)} on the token; name one (key_id)`,
    );
  }
  const certLabel = ref.certLabel ?? ref.keyLabel;
  const certs = findObjects(p11, session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
    ...(certLabel === undefined ? [] : [{ type: pkcs11js.CKA_LABEL, value: certLabel }]),
    ...(certLabel === undefined && ref.keyId !== undefined
      ? [{ type: pkcs11js.CKA_ID, value: ref.keyId }]
      : []),
  ]);
  const certWhat =
    certLabel === undefined
      ? `id ${ref.keyId?.toString('hex')}`
      : `label ${JSON.stringify(certLabel)}`;
  if (certs.length !== 1) {
    throw invalid(
      certs.length === 0
        ? `no certificate object with ${certWhat} on the token`
        : `${certs.length} certificate objects with ${certWhat}; set certificate_label`,
    );
  }
  const [value] = p11.C_GetAttributeValue(session, certs[0]!, [{ type: pkcs11js.CKA_VALUE }]);
  if (!Buffer.isBuffer(value?.value)) throw invalid(`certificate ${certWhat} has no CKA_VALUE`);
  let cert: ParsedCertificate;
  try {
    cert = parseCertificate(new Uint8Array(value.value));
  } catch (err) {
    throw invalid(`certificate ${certWhat} does not parse: ${describeError(err)}`, err);
  }
  if (cert.extensions.basicConstraints?.ca !== true) {
    throw invalid(`certificate ${certWhat} is not a CA (basicConstraints cA)`);
  }
  if (cert.extensions.keyUsage !== undefined && !cert.extensions.keyUsage.keyCertSign) {
    throw invalid(`certificate ${certWhat} may not sign certificates (keyUsage)`);
  }
  if (cert.notBefore.getTime() > nowMs || cert.notAfter.getTime() <= nowMs) {
    throw invalid(
      `certificate ${certWhat} is not valid now (valid ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()})`,
    );
  }
  const publicKey = certificatePublicKey(cert);
  if (!isSelfIssued(cert) || !verifyCertificateSignature(cert, publicKey)) {
    throw invalid(
      `certificate ${certWhat} is not self-signed: the pkcs11 authority must be a root`,
    );
  }
  const keyType = keyTypeOfPrivateKey(publicKey);
  if (keyType === undefined) {
    throw invalid(`certificate ${certWhat} has a key that is not EC P-256/P-384 or RSA 2048/4096`);
  }
  const sig = signOnSession(
    p11,
    session,
    keys[0]!,
    keyType,
    signInput(keyType, PROBE),
    true,
  ) as Buffer;
  const hash = hashForKeyType(keyType);
  const ok = keyType.startsWith('ec-')
    ? verify(hash, PROBE, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig)
    : verify(hash, PROBE, publicKey, sig);
  if (!ok)
    throw invalid(
      `the private key with ${describeRef(ref)} does not match certificate ${certWhat}`,
    );
  return { cert, keyType, keyHandle: keys[0]! };
}

function subjectOf(s: X509CaSubject) {
  return {
    ...(s.country === undefined ? {} : { country: [...s.country] }),
    ...(s.organization === undefined ? {} : { organization: [...s.organization] }),
    ...(s.organizationalUnit === undefined
      ? {}
      : { organizationalUnit: [...s.organizationalUnit] }),
    ...(s.commonName === undefined ? {} : { commonName: s.commonName }),
    ...(s.serialNumber === undefined ? {} : { serialNumber: s.serialNumber }),
  };
}

/** A {@link Signer} over a private key object on the pool's token (asynchronous C_Sign). */
function tokenSigner(
  pool: Pkcs11SessionPool,
  keyType: KeyType,
  cert: ParsedCertificate,
  keyHandle: () => Buffer,
): Signer {
  return {
    keyType,
    publicKey: certificatePublicKey(cert),
    publicKeySpki: cert.spkiDer,
    sign: (data) => {
      const input = signInput(keyType, data);
      return pool.withSession(
        'C_Sign',
        (p11, session) => signOnSession(p11, session, keyHandle(), keyType, input),
        { retry: true },
      );
    },
  };
}

/** The pkcs11 UpstreamAuthority. Open it with {@link openPkcs11UpstreamAuthority}. */
export class Pkcs11UpstreamAuthority implements UpstreamAuthority {
  readonly name = 'pkcs11';
  readonly #ref: ObjectRef;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  #pool!: Pkcs11SessionPool;
  #root: RootObjects | undefined;
  #closed = false;

  /** @internal Use {@link openPkcs11UpstreamAuthority}. */
  constructor(ref: ObjectRef, clock: Clock, random: RandomSource) {
    this.#ref = ref;
    this.#clock = clock;
    this.#random = random;
  }

  /** @internal */
  attach(pool: Pkcs11SessionPool): void {
    this.#pool = pool;
  }

  /** @internal The session pool's onConnect: finds the root again (handles may change). */
  onConnect(p11: Pkcs11Api, session: Buffer): void {
    this.#root = loadRoot(p11, session, this.#ref, this.#clock.nowMs());
  }

  /** The root certificate (DER) as last read from the token. */
  get rootCertificate(): Uint8Array {
    if (this.#root === undefined) throw new TypeError('the authority is not open');
    return this.#root.cert.der;
  }

  /**
   * Signs a CA certificate for `request.publicKey` with the root key on the token: subject
   * as requested, URI SAN `spiffe://<trust domain>`, NotBefore now − 10 s, NotAfter now +
   * TTL capped at the root's notAfter. The root is read from the token first.
   *
   * @throws TypeError when `ttlSeconds` is not a positive whole number.
   * @throws SpireEdgeError `ERR_UPSTREAM_AUTHORITY_CLOSED`, `ERR_UPSTREAM_AUTHORITY_INVALID`,
   *   `ERR_UPSTREAM_AUTHORITY_IO`.
   */
  async mintX509CaIntermediate(request: MintX509CaRequest): Promise<MintX509CaResponse> {
    if (this.#closed) {
      throw new SpireEdgeError(
        'ERR_UPSTREAM_AUTHORITY_CLOSED',
        'upstream authority pkcs11 is closed',
      );
    }
    if (!Number.isSafeInteger(request.ttlSeconds) || request.ttlSeconds <= 0) {
      throw new TypeError('ttlSeconds must be a positive whole number');
    }
    const now = this.#clock.nowMs();
    try {
      this.#root = await this.#pool.withSession(
        'C_FindObjects',
        (p11, s) => loadRoot(p11, s, this.#ref, now),
        { retry: true },
      );
    } catch (err) {
      throw tokenFailed('cannot read the root from the token', err);
    }
    const root = this.#root;
    const notAfter = Math.min(now + request.ttlSeconds * 1000, root.cert.notAfter.getTime());
    if (notAfter <= now) throw invalid('the root certificate has expired');
    const signer = tokenSigner(this.#pool, root.keyType, root.cert, () => {
      const cur = this.#root;
      if (cur === undefined || Buffer.compare(cur.cert.der, root.cert.der) !== 0) {
        throw invalid('the root changed on the token while signing');
      }
      return cur.keyHandle;
    });
    let der: Uint8Array;
    try {
      der = await mintX509CaCertificate({
        trustDomain: request.trustDomain,
        subject: subjectOf(request.subject),
        publicKey: request.publicKey,
        notBefore: new Date(now - BACKDATE_MS),
        notAfter: new Date(notAfter),
        signer,
        issuerCertDer: root.cert.der,
        random: this.#random,
      });
    } catch (err) {
      if (err instanceof TypeError) throw err;
      throw tokenFailed('the root key could not sign', err);
    }
    return { certChain: [der], upstreamRoots: [root.cert.der] };
  }

  /** Probes the token; a broken connection tries to reconnect first. Never throws. */
  async health(): Promise<Pkcs11Health> {
    if (this.#closed)
      return { ok: false, reason: 'upstream authority pkcs11 is closed', since: new Date() };
    return this.#pool.health();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.close();
  }
}

function objectRef(
  config: Pkcs11UpstreamAuthoritySettings,
  uriLabel: string | undefined,
  uriId: Uint8Array | undefined,
): ObjectRef {
  if (config.keyLabel !== undefined && uriLabel !== undefined) {
    throw new SpireEdgeError(
      'ERR_HSM_CONFIG_INVALID',
      "pkcs11 configuration: key_label is given twice (as key_label and as the uri's object)",
    );
  }
  if (config.keyId !== undefined && uriId !== undefined) {
    throw new SpireEdgeError(
      'ERR_HSM_CONFIG_INVALID',
      "pkcs11 configuration: key_id is given twice (as key_id and as the uri's id)",
    );
  }
  if (config.keyId !== undefined && !/^(?:[0-9a-fA-F]{2})+$/.test(config.keyId)) {
    throw new SpireEdgeError(
      'ERR_HSM_CONFIG_INVALID',
      'pkcs11 configuration: key_id must be an even number of hexadecimal digits',
    );
  }
  const keyLabel = config.keyLabel ?? uriLabel;
  const keyId =
    config.keyId !== undefined
      ? Buffer.from(config.keyId, 'hex')
      : uriId === undefined
        ? undefined
        : Buffer.from(uriId);
  if (keyLabel === undefined && keyId === undefined) {
    throw new SpireEdgeError(
      'ERR_HSM_CONFIG_INVALID',
      "pkcs11 configuration: key_label or key_id (or the uri's object or id) is required",
    );
  }
  return { keyLabel, keyId, certLabel: config.certificateLabel };
}

/**
 * Opens the pkcs11 UpstreamAuthority: logs in to the token and finds and checks the root key
 * and certificate.
 *
 * @throws SpireEdgeError `ERR_HSM_CONFIG_INVALID`, `ERR_HSM_URI_INVALID`,
 *   `ERR_HSM_PIN_SOURCE`, `ERR_HSM_MODULE_LOAD`, `ERR_HSM_TOKEN_NOT_FOUND`, `ERR_HSM_CKR`,
 *   `ERR_UPSTREAM_AUTHORITY_INVALID`.
 */
export async function openPkcs11UpstreamAuthority(
  config: Pkcs11UpstreamAuthorityConfig,
): Promise<Pkcs11UpstreamAuthority> {
  if (config === null || typeof config !== 'object') throw new TypeError('config is required');
  const resolved = await resolvePkcs11Token(config, config.env);
  const ref = objectRef(config, resolved.objectLabel, resolved.objectId);
  const ua = new Pkcs11UpstreamAuthority(
    ref,
    config.clock ?? systemClock,
    config.random ?? cryptoRandom,
  );
  const pool = await Pkcs11SessionPool.open({
    modulePath: resolved.modulePath,
    token: resolved.token,
    pin: resolved.pin,
    size: resolved.sessionPoolSize ?? 2,
    owner: 'upstream authority pkcs11',
    onConnect: (p11, session) => ua.onConnect(p11, session),
    ...(config.clock === undefined ? {} : { clock: config.clock }),
    ...(config.retryMinMs === undefined ? {} : { retryMinMs: config.retryMinMs }),
    ...(config.retryMaxMs === undefined ? {} : { retryMaxMs: config.retryMaxMs }),
  });
  ua.attach(pool);
  return ua;
}

/** Options of {@link provisionPkcs11UpstreamRoot}. */
export interface ProvisionPkcs11RootOptions extends Pkcs11UpstreamAuthoritySettings {
  readonly keyType: KeyType;
  /** The root's trust domain (its certificate carries `spiffe://<td>` as URI SAN). */
  readonly trustDomain: TrustDomain | string;
  readonly subject: X509CaSubject;
  readonly ttlSeconds: number;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly clock?: Clock;
  readonly random?: RandomSource;
}

/**
 * Creates a root CA on a token for the pkcs11 UpstreamAuthority: generates the key pair on
 * the token (`key_label`, CKA_ID `key_id` or one derived from the label; private, sensitive,
 * not extractable, sign only), self-signs the root certificate with it (on the token) and
 * stores the certificate as a CKO_CERTIFICATE object (`certificate_label`, default the key
 * label, same CKA_ID). Refuses to touch a token that already has objects with those labels.
 *
 * @returns the root certificate DER.
 * @throws SpireEdgeError `ERR_UPSTREAM_AUTHORITY_INVALID` when the labels are taken,
 *   `ERR_UPSTREAM_AUTHORITY_IO` when the token fails, and the opening codes.
 */
export async function provisionPkcs11UpstreamRoot(
  options: ProvisionPkcs11RootOptions,
): Promise<Uint8Array> {
  if (options === null || typeof options !== 'object') throw new TypeError('options are required');
  if (!Number.isSafeInteger(options.ttlSeconds) || options.ttlSeconds <= 0) {
    throw new TypeError('ttlSeconds must be a positive whole number');
  }
  const resolved = await resolvePkcs11Token(options, options.env);
  const ref = objectRef(options, resolved.objectLabel, resolved.objectId);
  if (ref.keyLabel === undefined) {
    throw new SpireEdgeError(
      'ERR_HSM_CONFIG_INVALID',
      'pkcs11 configuration: provisioning a root needs key_label',
    );
  }
  const keyLabel = ref.keyLabel;
  const certLabel = ref.certLabel ?? keyLabel;
  const ckaId = ref.keyId ?? ckaIdForLabel(keyLabel);
  const clock = options.clock ?? systemClock;
  const pool = await Pkcs11SessionPool.open({
    modulePath: resolved.modulePath,
    token: resolved.token,
    pin: resolved.pin,
    size: 1,
    owner: 'pkcs11 root provisioning',
  });
  try {
    const pair = await pool
      .withSession('C_GenerateKeyPair', async (p11, s) => {
        for (const label of new Set([keyLabel, certLabel])) {
          if (findObjects(p11, s, [{ type: pkcs11js.CKA_LABEL, value: label }]).length > 0) {
            throw invalid(`the token already has objects labelled ${JSON.stringify(label)}`);
          }
        }
        const t = keyPairTemplates(options.keyType, keyLabel, ckaId);
        const kp = await p11.C_GenerateKeyPairAsync(s, t.mechanism, t.pub, t.priv);
        try {
          return readKeyPair(p11, s, kp.privateKey, [kp.publicKey]);
        } catch (err) {
          destroyObjects(p11, s, [kp.privateKey, kp.publicKey]);
          throw err;
        }
      })
      .catch((err: unknown) => {
        throw tokenFailed('cannot generate the root key', err);
      });
    const signer: Signer = {
      keyType: pair.keyType,
      publicKey: pair.publicKey,
      publicKeySpki: pair.spki,
      sign: (data) => {
        const input = signInput(pair.keyType, data);
        return pool.withSession('C_Sign', (p11, s) =>
          signOnSession(p11, s, pair.privateHandle, pair.keyType, input),
        );
      },
    };
    const now = clock.nowMs();
    const der = await mintX509CaCertificate({
      trustDomain: options.trustDomain,
      subject: subjectOf(options.subject),
      publicKey: pair.publicKey,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + options.ttlSeconds * 1000),
      signer,
      random: options.random ?? cryptoRandom,
    });
    const cert = parseCertificate(der);
    await pool
      .withSession('C_CreateObject', (p11, s) => {
        p11.C_CreateObject(s, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
          { type: pkcs11js.CKA_CERTIFICATE_TYPE, value: pkcs11js.CKC_X_509 },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: false },
          { type: pkcs11js.CKA_LABEL, value: certLabel },
          { type: pkcs11js.CKA_ID, value: ckaId },
          { type: pkcs11js.CKA_SUBJECT, value: Buffer.from(cert.subjectDer) },
          { type: pkcs11js.CKA_ISSUER, value: Buffer.from(cert.issuerDer) },
          {
            type: pkcs11js.CKA_SERIAL_NUMBER,
            value: Buffer.concat([Buffer.from([0x02, cert.serial.length]), cert.serial]),
          },
          { type: pkcs11js.CKA_VALUE, value: Buffer.from(der) },
        ]);
      })
      .catch((err: unknown) => {
        throw tokenFailed('cannot store the root certificate', err);
      });
    return der;
  } finally {
    await pool.close();
  }
}
