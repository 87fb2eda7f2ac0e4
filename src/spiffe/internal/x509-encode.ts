/**
 * DER encoding pieces shared by the certificate minters: extensions, signature algorithm
 * identifiers per signer key type, and turning a Signer's output into a signatureValue.
 */
import { DER_NULL, DER_TRUE, octetString, oid, p1363ToDer, seq } from '../../common/der.js';
import type { KeyType } from '../../common/signer.js';
import { OID } from './x509-oids.js';

/** `Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }`. */
export function extension(extnId: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical
    ? seq(oid(extnId), DER_TRUE, octetString(value))
    : seq(oid(extnId), octetString(value));
}

/** The pre-encoded signature AlgorithmIdentifier a signer of `keyType` produces. */
export function signatureAlgorithmFor(keyType: KeyType): Uint8Array {
  switch (keyType) {
    case 'ec-p256':
      return seq(oid(OID.ecdsaWithSha256));
    case 'ec-p384':
      return seq(oid(OID.ecdsaWithSha384));
    case 'rsa-2048':
    case 'rsa-4096':
      return seq(oid(OID.sha256WithRsa), DER_NULL);
    default:
      throw new TypeError(`unsupported signer key type ${String(keyType)}`);
  }
}

/** The X.509 signatureValue bytes from a Signer's output (P1363 → DER for ECDSA). */
export function x509SignatureBytes(keyType: KeyType, sig: Uint8Array): Uint8Array {
  return keyType === 'ec-p256' || keyType === 'ec-p384' ? p1363ToDer(sig) : sig;
}

/** `[0] EXPLICIT INTEGER 2`: the v3 version field. */
export const VERSION_V3: Uint8Array = Uint8Array.of(0xa0, 0x03, 0x02, 0x01, 0x02);
