/**
 * The `disk` UpstreamAuthority (SPIRE's `UpstreamAuthority "disk"`): an upstream CA whose
 * certificate and key are PEM files. It signs the server's CA certificate.
 *
 * Options, as SPIRE's:
 * - `cert_file_path`: the upstream CA certificate first, then any intermediates up to the
 *   roots in `bundle_file_path`. Without `bundle_file_path` it must hold exactly one
 *   self-signed certificate, which is then the root.
 * - `key_file_path`: the upstream CA key, one PEM key (EC as SEC1 or PKCS#8; RSA as PKCS#1
 *   or PKCS#8); `EC PARAMETERS` blocks are ignored.
 * - `bundle_file_path`: the upstream roots (PEM) when joining an existing PKI.
 *
 * The files are loaded and checked (key matches certificate, certificate is a CA valid now,
 * chain reaches the roots, or self-signed) on open, and re-read on every mint so a renewed
 * upstream CA is picked up without a restart; when a re-read fails, the credentials loaded
 * last are used (SPIRE's behaviour: a failing disk does not stop a running server).
 *
 * The minted CA certificate keeps the requested subject, carries the trust domain's SPIFFE
 * ID as URI SAN, and never outlives the upstream certificate.
 *
 * Errors: `ERR_UPSTREAM_AUTHORITY_IO` (a file cannot be read), `ERR_UPSTREAM_AUTHORITY_INVALID`
 * (the files are not a usable CA), `ERR_UPSTREAM_AUTHORITY_CLOSED`.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type Clock, systemClock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { decodePem, encodePem } from '../../common/pem.js';
import { cryptoRandom, type RandomSource } from '../../common/random.js';
import type { Signer } from '../../common/signer.js';
import { softwareSigner } from '../../hsm/memory.js';
import {
  certificatePublicKey,
  isSelfIssued,
  type ParsedCertificate,
  parseCertificate,
  splitCertificates,
  verifyCertificateSignature,
} from '../../spiffe/x509-cert.js';
import { mintX509CaCertificate } from '../../spiffe/x509-mint.js';
import { NOT_BEFORE_BACKDATE_SECONDS } from './server-ca.js';
import type {
  MintX509CaRequest,
  MintX509CaResponse,
  UpstreamAuthority,
} from './upstream-authority.js';

/** Configuration of the disk UpstreamAuthority (SPIRE's `plugin_data`). */
export interface DiskUpstreamAuthorityConfig {
  /** SPIRE's `cert_file_path`. */
  readonly certFilePath: string;
  /** SPIRE's `key_file_path`. */
  readonly keyFilePath: string;
  /** SPIRE's `bundle_file_path`; absent for a self-signed upstream CA. */
  readonly bundleFilePath?: string;
  readonly clock?: Clock;
  readonly random?: RandomSource;
}

interface Credentials {
  readonly caCert: ParsedCertificate;
  readonly signer: Signer;
  /** Certificates to append after the minted CA: the cert file's chain (none when self-signed). */
  readonly chain: Uint8Array[];
  readonly roots: Uint8Array[];
}

const KEY_LABELS = new Set(['PRIVATE KEY', 'EC PRIVATE KEY', 'RSA PRIVATE KEY']);

function invalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_UPSTREAM_AUTHORITY_INVALID',
    `upstream authority disk: ${message}`,
    cause === undefined ? {} : { cause },
  );
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_UPSTREAM_AUTHORITY_IO',
      `upstream authority disk: cannot read ${what} ${path}: ${describeError(err)}`,
      { cause: err, details: { path } },
    );
  }
}

function parseKey(pem: string, path: string): Signer {
  let blocks: ReturnType<typeof decodePem>;
  try {
    blocks = decodePem(pem);
  } catch (err) {
    throw invalid(`key_file_path ${path}: ${describeError(err)}`, err);
  }
  const keys = blocks.filter((b) => b.label !== 'EC PARAMETERS');
  if (keys.length !== 1 || !KEY_LABELS.has(keys[0]!.label)) {
    throw invalid(`key_file_path ${path} must hold exactly one PEM private key (EC or RSA)`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(encodePem(keys[0]!.label, keys[0]!.der));
  } catch (err) {
    throw invalid(`key_file_path ${path}: not a usable private key: ${describeError(err)}`, err);
  }
  try {
    return softwareSigner(key);
  } catch (err) {
    throw invalid(`key_file_path ${path}: ${describeError(err)}`, err);
  }
}

function parseCerts(pem: string, path: string, what: string): ParsedCertificate[] {
  try {
    return splitCertificates(pem).map(parseCertificate);
  } catch (err) {
    throw invalid(`${what} ${path}: ${describeError(err)}`, err);
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function issuedBy(child: ParsedCertificate, parent: ParsedCertificate): boolean {
  try {
    return (
      bytesEqual(child.issuerDer, parent.subjectDer) &&
      verifyCertificateSignature(child, certificatePublicKey(parent))
    );
  } catch {
    return false;
  }
}

async function loadCredentials(
  config: DiskUpstreamAuthorityConfig,
  now: number,
): Promise<Credentials> {
  const signer = parseKey(await readText(config.keyFilePath, 'key_file_path'), config.keyFilePath);
  const certs = parseCerts(
    await readText(config.certFilePath, 'cert_file_path'),
    config.certFilePath,
    'cert_file_path',
  );
  const caCert = certs[0]!;
  if (!bytesEqual(caCert.spkiDer, signer.publicKeySpki)) {
    throw invalid('the certificate in cert_file_path does not match the key in key_file_path');
  }
  if (caCert.extensions.basicConstraints?.ca !== true) {
    throw invalid('the certificate in cert_file_path is not a CA (basicConstraints cA)');
  }
  if (caCert.extensions.keyUsage !== undefined && !caCert.extensions.keyUsage.keyCertSign) {
    throw invalid('the certificate in cert_file_path may not sign certificates (keyUsage)');
  }
  if (caCert.notBefore.getTime() > now || caCert.notAfter.getTime() <= now) {
    throw invalid(
      `the certificate in cert_file_path is not valid now (valid ${caCert.notBefore.toISOString()} to ${caCert.notAfter.toISOString()})`,
    );
  }

  if (config.bundleFilePath === undefined) {
    if (certs.length !== 1) {
      throw invalid('with no bundle_file_path configured only self-signed CAs are supported');
    }
    if (!isSelfIssued(caCert) || !issuedBy(caCert, caCert)) {
      throw invalid(
        'the certificate in cert_file_path is not self-signed; set bundle_file_path to its roots',
      );
    }
    return { caCert, signer, chain: [], roots: [caCert.der] };
  }

  const roots = parseCerts(
    await readText(config.bundleFilePath, 'bundle_file_path'),
    config.bundleFilePath,
    'bundle_file_path',
  );
  for (let i = 0; i + 1 < certs.length; i++) {
    if (!issuedBy(certs[i]!, certs[i + 1]!)) {
      throw invalid(`cert_file_path certificate ${i} is not signed by certificate ${i + 1}`);
    }
  }
  const last = certs[certs.length - 1]!;
  if (!roots.some((r) => bytesEqual(r.der, last.der) || issuedBy(last, r))) {
    throw invalid(
      'the certificates in cert_file_path do not chain to the roots in bundle_file_path',
    );
  }
  return {
    caCert,
    signer,
    chain: certs.filter((c) => !roots.some((r) => bytesEqual(r.der, c.der))).map((c) => c.der),
    roots: roots.map((r) => r.der),
  };
}

/** The disk UpstreamAuthority. Open it with {@link openDiskUpstreamAuthority}. */
export class DiskUpstreamAuthority implements UpstreamAuthority {
  readonly name = 'disk';
  readonly #config: DiskUpstreamAuthorityConfig;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  #creds: Credentials;
  #closed = false;

  constructor(config: DiskUpstreamAuthorityConfig, creds: Credentials) {
    this.#config = config;
    this.#clock = config.clock ?? systemClock;
    this.#random = config.random ?? cryptoRandom;
    this.#creds = creds;
  }

  /**
   * Signs a CA certificate for `request.publicKey`: subject as requested, URI SAN
   * `spiffe://<trust domain>`, NotBefore now − 10 s, NotAfter now + TTL capped at the
   * upstream certificate's notAfter.
   *
   * @throws SpireEdgeError `ERR_UPSTREAM_AUTHORITY_INVALID` when the TTL left is not
   *   positive, `ERR_UPSTREAM_AUTHORITY_CLOSED`.
   */
  async mintX509CaIntermediate(request: MintX509CaRequest): Promise<MintX509CaResponse> {
    if (this.#closed) {
      throw new SpireEdgeError(
        'ERR_UPSTREAM_AUTHORITY_CLOSED',
        'upstream authority disk is closed',
      );
    }
    if (!Number.isSafeInteger(request.ttlSeconds) || request.ttlSeconds <= 0) {
      throw new TypeError('ttlSeconds must be a positive whole number');
    }
    const now = this.#clock.nowMs();
    try {
      this.#creds = await loadCredentials(this.#config, now);
    } catch {
      // Keep the credentials loaded last (SPIRE's behaviour).
    }
    const { caCert, signer, chain, roots } = this.#creds;
    const notAfter = Math.min(now + request.ttlSeconds * 1000, caCert.notAfter.getTime());
    const notBefore = now - NOT_BEFORE_BACKDATE_SECONDS * 1000;
    if (notAfter <= now) throw invalid('the upstream CA certificate has expired');
    const s = request.subject;
    const der = await mintX509CaCertificate({
      trustDomain: request.trustDomain,
      subject: {
        ...(s.country === undefined ? {} : { country: [...s.country] }),
        ...(s.organization === undefined ? {} : { organization: [...s.organization] }),
        ...(s.organizationalUnit === undefined
          ? {}
          : { organizationalUnit: [...s.organizationalUnit] }),
        ...(s.commonName === undefined ? {} : { commonName: s.commonName }),
        ...(s.serialNumber === undefined ? {} : { serialNumber: s.serialNumber }),
      },
      publicKey: request.publicKey,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      signer,
      issuerCertDer: caCert.der,
      random: this.#random,
    });
    return { certChain: [der, ...chain], upstreamRoots: [...roots] };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

/**
 * Opens the disk UpstreamAuthority: loads and checks the files.
 *
 * @throws TypeError when a path option is missing or empty.
 * @throws SpireEdgeError `ERR_UPSTREAM_AUTHORITY_IO`, `ERR_UPSTREAM_AUTHORITY_INVALID`.
 */
export async function openDiskUpstreamAuthority(
  config: DiskUpstreamAuthorityConfig,
): Promise<DiskUpstreamAuthority> {
  if (config === null || typeof config !== 'object') throw new TypeError('config is required');
  for (const k of ['certFilePath', 'keyFilePath'] as const) {
    if (typeof config[k] !== 'string' || config[k] === '') {
      throw new TypeError(
        `${k === 'certFilePath' ? 'cert_file_path' : 'key_file_path'} is required`,
      );
    }
  }
  if (
    config.bundleFilePath !== undefined &&
    (typeof config.bundleFilePath !== 'string' || config.bundleFilePath === '')
  ) {
    throw new TypeError('bundle_file_path must be a non-empty string when set');
  }
  const now = (config.clock ?? systemClock).nowMs();
  return new DiskUpstreamAuthority(config, await loadCredentials(config, now));
}
