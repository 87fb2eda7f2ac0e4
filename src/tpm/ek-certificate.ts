/**
 * EK certificates under the TCG EK Credential Profile for TPM Family 2.0 (§3.2): an X.509 v3
 * certificate for the Endorsement Key whose subjectAltName carries a directoryName with the
 * TPM manufacturer (2.23.133.2.1, e.g. `id:4E544300`), model (2.23.133.2.2) and version
 * (2.23.133.2.3); the subject is usually empty, and then the SAN is critical.
 *
 * Parsing uses src/spiffe/x509-cert.ts's strict parser, wrapped for what the profile and
 * real TPMs do that a generic parser refuses:
 * - NV padding: certificates read from NV indices (0x01C00002…) are often followed by the
 *   rest of the index, 0xFF or 0x00 bytes. A uniform 0x00/0xFF tail after the DER is removed
 *   (`paddingBytes` says how much); any other trailing byte is an error.
 * - id-RSAES-OAEP (1.2.840.113549.1.1.7) as the SubjectPublicKeyInfo algorithm, which some
 *   vendors use for RSA EKs: the key is read as the plain RSA key it is.
 * - The TPM attributes in any order: one multi-valued RDN (a SET in any order, DER sorting
 *   or not) or one RDN per attribute, as vendors variously encode them.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import {
  bitString,
  children,
  DER_NULL,
  decodeBitStringBytes,
  decodeOid,
  oid as encodeOid,
  readTlv,
  readWhole,
  seq,
  TAG,
} from '../common/der.js';
import { SpireEdgeError } from '../common/errors.js';
import { decodePem } from '../common/pem.js';
import {
  certificatePublicKey,
  nameAttributes,
  type ParsedCertificate,
  parseCertificate,
} from '../spiffe/x509-cert.js';
import { tpmError } from './errors.js';
import type { TpmtPublic } from './public-area.js';
import { pubHash, rememberPublicKey, spkiFromKeyObject, spkiFromTpmtPublic } from './public-key.js';

/** OIDs of the TCG EK Credential Profile. */
export const TCG_OID = {
  tpmManufacturer: '2.23.133.2.1',
  tpmModel: '2.23.133.2.2',
  tpmVersion: '2.23.133.2.3',
  /** tcg-kp-EKCertificate (extKeyUsage). */
  ekCertificate: '2.23.133.8.1',
} as const;

const OID_RSA = '1.2.840.113549.1.1.1';
const OID_RSAES_OAEP = '1.2.840.113549.1.1.7';

/** A parsed EK certificate. */
export interface EkCertificate {
  /** The certificate (with the DER stripped of NV padding). */
  readonly cert: ParsedCertificate;
  /** Bytes of NV padding removed after the DER. */
  readonly paddingBytes: number;
  /** TPM manufacturer from the SAN (e.g. `id:4E544300`); absent only if not required. */
  readonly manufacturer?: string;
  /** TPM model from the SAN. */
  readonly model?: string;
  /** TPM firmware version from the SAN (e.g. `id:00010002`). */
  readonly version?: string;
  /** The certified EK public key. */
  readonly publicKey: KeyObject;
  /** `pub_hash` of the certified key (see public-key.ts). */
  readonly pubHash: string;
}

/** Options of {@link parseEkCertificate}. */
export interface ParseEkCertificateOptions {
  /**
   * Require the SAN directoryName with manufacturer, model and version (default true). Some
   * cloud vTPM certificates (Google's newer "EK/AK CA" hierarchy) carry none.
   */
  readonly requireTpmAttributes?: boolean;
}

function invalid(message: string, cause?: unknown): never {
  throw tpmError('ERR_TPM_EK_CERT_INVALID', message, cause);
}

/** Splits the DER certificate from NV padding. */
function stripPadding(data: Uint8Array): { der: Uint8Array; padding: number } {
  let end: number;
  try {
    end = readTlv(data, 0, data.length).end;
  } catch (err) {
    return invalid(`EK certificate is not DER: ${(err as Error).message}`, err);
  }
  const tail = data.subarray(end);
  if (tail.length > 0) {
    const fill = tail[0]!;
    if ((fill !== 0x00 && fill !== 0xff) || tail.some((b) => b !== fill)) {
      invalid(
        `EK certificate is followed by ${tail.length} bytes that are not NV padding (0x00 or 0xff)`,
      );
    }
  }
  return { der: data.subarray(0, end), padding: tail.length };
}

/** The SPKI with id-RSAES-OAEP rewritten to rsaEncryption, or undefined if not OAEP. */
function oaepSpkiAsRsa(spki: Uint8Array): Uint8Array | undefined {
  const t = readWhole(spki, 'subjectPublicKeyInfo');
  const [alg, key] = children(t);
  if (alg === undefined || key === undefined || alg.tag !== TAG.SEQUENCE) return undefined;
  const algOid = children(alg)[0];
  if (algOid === undefined || decodeOid(algOid) !== OID_RSAES_OAEP) return undefined;
  return seq(seq(encodeOid(OID_RSA), DER_NULL), bitString(decodeBitStringBytes(key)));
}

interface TpmAttributes {
  manufacturer?: string;
  model?: string;
  version?: string;
}

function tpmAttributes(cert: ParsedCertificate): TpmAttributes | undefined {
  const san = cert.extensions.subjectAltName;
  if (san === undefined) return undefined;
  let found: TpmAttributes | undefined;
  for (const dn of san.directoryNames) {
    const attrs: TpmAttributes = {};
    let any = false;
    for (const a of nameAttributes(dn)) {
      const key =
        a.oid === TCG_OID.tpmManufacturer
          ? 'manufacturer'
          : a.oid === TCG_OID.tpmModel
            ? 'model'
            : a.oid === TCG_OID.tpmVersion
              ? 'version'
              : undefined;
      if (key === undefined) continue;
      if (attrs[key] !== undefined) invalid(`EK certificate SAN repeats the TPM ${key} attribute`);
      attrs[key] = a.value;
      any = true;
    }
    if (!any) continue;
    if (found !== undefined) invalid('EK certificate SAN has more than one TPM directoryName');
    found = attrs;
  }
  return found;
}

/**
 * Parses an EK certificate (DER as read from NV, padding allowed, or PEM text) under the TCG
 * EK Credential Profile: a well-formed X.509 v3 certificate (strict DER, see x509-cert.ts)
 * whose SAN holds one directoryName with the TPM manufacturer, model and version, that SAN
 * critical when the subject is empty, and an RSA or EC public key.
 *
 * Trusts nothing and verifies no signature: chain it with {@link EkCaPool.verify} and check
 * that it certifies the EK you use with {@link ekCertMatchesPublic}.
 *
 * @throws SpireEdgeError `ERR_TPM_EK_CERT_INVALID` naming the problem (the X.509 or DER error
 *   as `cause`).
 */
export function parseEkCertificate(
  data: Uint8Array | string,
  options: ParseEkCertificateOptions = {},
): EkCertificate {
  let bytes: Uint8Array;
  if (typeof data === 'string') {
    let blocks: ReturnType<typeof decodePem>;
    try {
      blocks = decodePem(data);
    } catch (err) {
      return invalid(`EK certificate PEM: ${(err as Error).message}`, err);
    }
    if (blocks.length !== 1 || blocks[0]!.label !== 'CERTIFICATE') {
      invalid('EK certificate PEM must hold exactly one CERTIFICATE block');
    }
    bytes = blocks[0]!.der;
  } else if (data instanceof Uint8Array) {
    bytes = data;
  } else {
    throw new TypeError('EK certificate must be DER bytes or PEM text');
  }
  const { der, padding } = stripPadding(bytes);
  let cert: ParsedCertificate;
  try {
    cert = parseCertificate(der);
  } catch (err) {
    return invalid(`EK certificate: ${(err as Error).message}`, err);
  }
  if (cert.version !== 3)
    invalid(`EK certificate is X.509 v${cert.version}, the profile requires v3`);

  let attrs: TpmAttributes | undefined;
  try {
    attrs = tpmAttributes(cert);
  } catch (err) {
    if (err instanceof SpireEdgeError && err.code === 'ERR_TPM_EK_CERT_INVALID') throw err;
    return invalid(`EK certificate SAN directoryName: ${(err as Error).message}`, err);
  }
  const emptySubject = children(readWhole(cert.subjectDer, 'subject')).length === 0;
  const san = cert.extensions.subjectAltName;
  if (emptySubject && san !== undefined && !san.critical) {
    invalid(
      'EK certificate has an empty subject and a non-critical subjectAltName (RFC 5280 §4.2.1.6)',
    );
  }
  if (emptySubject && san === undefined) {
    invalid('EK certificate has an empty subject and no subjectAltName');
  }
  if (options.requireTpmAttributes !== false) {
    if (attrs === undefined) {
      invalid(
        san === undefined
          ? 'EK certificate has no subjectAltName with the TPM manufacturer, model and version'
          : 'EK certificate subjectAltName has no directoryName with the TPM manufacturer, model and version',
      );
    }
    for (const k of ['manufacturer', 'model', 'version'] as const) {
      if (attrs[k] === undefined)
        invalid(
          `EK certificate SAN directoryName has no TPM ${k} (2.23.133.2.${k === 'manufacturer' ? 1 : k === 'model' ? 2 : 3})`,
        );
    }
  }

  let publicKey: KeyObject;
  try {
    const oaep = oaepSpkiAsRsa(cert.spkiDer);
    publicKey =
      oaep === undefined
        ? certificatePublicKey(cert)
        : createPublicKey({ key: Buffer.from(oaep), format: 'der', type: 'spki' });
  } catch (err) {
    return invalid(`EK certificate public key: ${(err as Error).message}`, err);
  }
  const kt = publicKey.asymmetricKeyType;
  if (kt !== 'rsa' && kt !== 'ec') invalid(`EK certificate key type ${kt} is not RSA or EC`);
  const out: EkCertificate = {
    cert,
    paddingBytes: padding,
    publicKey,
    pubHash: pubHash(publicKey),
    ...(attrs?.manufacturer === undefined ? {} : { manufacturer: attrs.manufacturer }),
    ...(attrs?.model === undefined ? {} : { model: attrs.model }),
    ...(attrs?.version === undefined ? {} : { version: attrs.version }),
  };
  return out;
}

/**
 * True when the EK certificate certifies exactly the key of `ekPublic` (same RSA modulus and
 * exponent, or same curve and point: the two SubjectPublicKeyInfo encodings are equal). The
 * attestor must check this before it encrypts a credential to `ekPublic`, otherwise a
 * genuine certificate could vouch for another key.
 *
 * @throws SpireEdgeError `ERR_TPM_UNSUPPORTED` / `ERR_TPM_PARSE` when `ekPublic` has no
 *   usable key.
 */
export function ekCertMatchesPublic(cert: EkCertificate, ekPublic: TpmtPublic): boolean {
  const a = spkiFromKeyObject(cert.publicKey);
  const b = spkiFromTpmtPublic(ekPublic);
  const same = a.length === b.length && Buffer.compare(a, b) === 0;
  // The certificate's key (already imported and checked) is the EK's: MakeCredential can
  // use it instead of importing the public area again.
  if (same) rememberPublicKey(ekPublic, cert.publicKey);
  return same;
}
