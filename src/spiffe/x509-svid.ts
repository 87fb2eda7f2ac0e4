/**
 * X509-SVIDs with their private keys (SPIFFE X509-SVID standard; go-spiffe's x509svid.SVID):
 * parse from PEM or DER, check the leaf's SPIFFE shape and that the key matches, marshal.
 *
 * Errors: `ERR_X509_INVALID` (a certificate that does not parse), `ERR_X509_SVID_INVALID`
 * (the chain breaks an X509-SVID shape rule, or the key is missing, unparsable or not the
 * leaf's).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SpireEdgeError } from '../common/errors.js';
import { decodePem, encodePem, looksLikePem } from '../common/pem.js';
import type { SpiffeId } from './id.js';
import { publicKeyFromSpki, spkiFromKeyObject } from './internal/spki.js';
import { checkLeaf, checkSigning, isViolation } from './internal/svid-rules.js';
import { type ParsedCertificate, parseCertificate, splitCertificates } from './x509-cert.js';

/** What an {@link X509Svid} is built from. */
export interface X509SvidInit {
  readonly id: SpiffeId;
  /** DER certificates, leaf first. */
  readonly certificates: readonly Uint8Array[];
  readonly privateKey: KeyObject;
  /** The leaf's notAfter. */
  readonly expiresAt: Date;
  /** An operator-chosen hint telling SVIDs of one workload apart (Workload API `hint`). */
  readonly hint?: string;
}

/** Options of the parse functions. */
export interface ParseX509SvidOptions {
  /** Sets {@link X509Svid.hint}. */
  readonly hint?: string;
}

/**
 * An X509-SVID: the SPIFFE ID, the certificate chain (leaf first, then intermediates toward
 * a root of the trust domain's bundle) and the leaf's private key.
 *
 * Built by {@link parseX509Svid} / {@link parseX509SvidRaw}, which check the shape; the
 * constructor trusts its arguments. Neither verifies the chain against a bundle: use
 * `verifyX509Svid` for that.
 */
export class X509Svid {
  readonly id: SpiffeId;
  readonly certificates: readonly Uint8Array[];
  readonly privateKey: KeyObject;
  readonly expiresAt: Date;
  readonly hint?: string;

  constructor(init: X509SvidInit) {
    this.id = init.id;
    this.certificates = init.certificates;
    this.privateKey = init.privateKey;
    this.expiresAt = init.expiresAt;
    if (init.hint !== undefined) this.hint = init.hint;
  }

  /** The certificates as concatenated PEM and the key as PKCS#8 PEM (`PRIVATE KEY`). */
  marshal(): { certsPem: string; keyPem: string } {
    return {
      certsPem: this.certificates.map((c) => encodePem('CERTIFICATE', c)).join(''),
      keyPem: this.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    };
  }

  /** The certificates as concatenated DER and the key as PKCS#8 DER (the Workload API form). */
  marshalRaw(): { certsDer: Uint8Array; keyDer: Uint8Array } {
    return {
      certsDer: new Uint8Array(Buffer.concat(this.certificates)),
      keyDer: new Uint8Array(this.privateKey.export({ format: 'der', type: 'pkcs8' })),
    };
  }
}

function svidInvalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError('ERR_X509_SVID_INVALID', message, cause === undefined ? {} : { cause });
}

function asText(data: string | Uint8Array): string | undefined {
  if (typeof data === 'string') return data;
  if (!(data instanceof Uint8Array)) throw new TypeError('input must be a string or a Uint8Array');
  return looksLikePem(data) ? Buffer.from(data).toString('utf8') : undefined;
}

/**
 * Parses an X509-SVID from certificates (PEM `CERTIFICATE` blocks, or concatenated DER) and
 * a PKCS#8 private key (PEM `PRIVATE KEY`, or DER). The two may come from one PEM file:
 * private key blocks among the certificates, and certificate blocks beside the key, are
 * skipped.
 *
 * Checks the leaf against the X509-SVID rules (one URI SAN holding a SPIFFE ID with a
 * non-root path, not a CA, keyUsage digitalSignature without keyCertSign/cRLSign), that
 * every further certificate is a CA with keyCertSign, and that the key is the leaf's. Does
 * NOT verify signatures, validity periods or trust: see `verifyX509Svid`.
 *
 * @throws SpireEdgeError `ERR_X509_INVALID`, `ERR_X509_SVID_INVALID`
 */
export function parseX509Svid(
  certs: string | Uint8Array,
  key: string | Uint8Array,
  options: ParseX509SvidOptions = {},
): X509Svid {
  const certText = asText(certs);
  let certDers: Uint8Array[];
  if (certText === undefined) {
    certDers = splitCertificates(certs as Uint8Array);
  } else {
    let blocks: ReturnType<typeof decodePem>;
    try {
      blocks = decodePem(certText);
    } catch (err) {
      throw new SpireEdgeError(
        'ERR_X509_INVALID',
        `cannot decode certificates: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    certDers = [];
    for (const b of blocks) {
      if (b.label === 'CERTIFICATE') certDers.push(b.der);
      else if (b.label !== 'PRIVATE KEY') {
        throw new SpireEdgeError(
          'ERR_X509_INVALID',
          `unexpected PEM block ${b.label} among certificates`,
        );
      }
    }
  }
  const keyText = asText(key);
  let keyDer: Uint8Array;
  if (keyText === undefined) {
    keyDer = key as Uint8Array;
  } else {
    let blocks: ReturnType<typeof decodePem>;
    try {
      blocks = decodePem(keyText);
    } catch (err) {
      throw svidInvalid(`cannot decode private key: ${(err as Error).message}`, err);
    }
    const keys = blocks.filter((b) => b.label !== 'CERTIFICATE');
    if (keys.length !== 1) throw svidInvalid('expected exactly one PEM private key block');
    if (keys[0]!.label !== 'PRIVATE KEY') {
      throw svidInvalid(`private key must be PKCS#8 (PEM PRIVATE KEY), found ${keys[0]!.label}`);
    }
    keyDer = keys[0]!.der;
  }
  return newSvid(certDers, keyDer, options);
}

/**
 * Parses an X509-SVID from concatenated DER certificates (leaf first) and a PKCS#8 DER
 * private key: the Workload API's `x509_svid` and `x509_svid_key` fields. Checks as
 * {@link parseX509Svid} does.
 *
 * @throws SpireEdgeError `ERR_X509_INVALID`, `ERR_X509_SVID_INVALID`
 */
export function parseX509SvidRaw(
  chainDer: Uint8Array,
  keyDer: Uint8Array,
  options: ParseX509SvidOptions = {},
): X509Svid {
  if (!(chainDer instanceof Uint8Array)) throw new TypeError('chainDer must be a Uint8Array');
  if (!(keyDer instanceof Uint8Array)) throw new TypeError('keyDer must be a Uint8Array');
  return newSvid(splitCertificates(chainDer), keyDer, options);
}

function newSvid(
  certDers: readonly Uint8Array[],
  keyDer: Uint8Array,
  options: ParseX509SvidOptions,
): X509Svid {
  if (certDers.length === 0) throw new SpireEdgeError('ERR_X509_INVALID', 'no certificates found');
  const certs: ParsedCertificate[] = certDers.map((d, i) => {
    try {
      return parseCertificate(d);
    } catch (err) {
      throw new SpireEdgeError('ERR_X509_INVALID', `certificate ${i}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  });
  const leaf = certs[0]!;
  const id = checkLeaf(leaf);
  if (isViolation(id)) {
    throw svidInvalid(`certificate validation failed: ${id.message}`, id.cause);
  }
  for (const c of certs.slice(1)) {
    const v = checkSigning(c, 'signing');
    if (v !== undefined) throw svidInvalid(`certificate validation failed: ${v.message}`, v.cause);
  }

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: Buffer.from(keyDer), format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw svidInvalid(`cannot parse PKCS#8 private key: ${(err as Error).message}`, err);
  }
  if (!keyMatchesLeaf(privateKey, leaf)) {
    throw svidInvalid('private key validation failed: leaf certificate does not match private key');
  }
  const init: { -readonly [K in keyof X509SvidInit]: X509SvidInit[K] } = {
    id,
    certificates: certs.map((c) => c.der),
    privateKey,
    expiresAt: leaf.notAfter,
  };
  if (options.hint !== undefined) init.hint = options.hint;
  return new X509Svid(init);
}

function keyMatchesLeaf(privateKey: KeyObject, leaf: ParsedCertificate): boolean {
  try {
    const spki = spkiFromKeyObject(privateKey);
    if (spki.length === leaf.spkiDer.length && Buffer.compare(spki, leaf.spkiDer) === 0)
      return true;
    return createPublicKey(privateKey).equals(publicKeyFromSpki(leaf.spkiDer));
  } catch {
    return false;
  }
}
