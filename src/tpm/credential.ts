/**
 * The two outputs of TPM2_MakeCredential / inputs of TPM2_ActivateCredential (TPM 2.0 Part 3
 * §12.5–12.6, Part 2 §11.4.3 and §11.4.5):
 * - TPM2B_ID_OBJECT `credentialBlob` = size || integrityHMAC (TPM2B_DIGEST) || encIdentity
 *   (the CFB-encrypted TPM2B_DIGEST credential; its size field is inside the ciphertext);
 * - TPM2B_ENCRYPTED_SECRET `secret` = size || the seed encrypted to the EK (an RSA-OAEP
 *   ciphertext, or a marshalled TPMS_ECC_POINT for ECC EKs).
 */
import { TPM_LIMITS } from './constants.js';
import { parseWhole } from './reader.js';
import { marshalWith } from './writer.js';

/** TPMS_ID_OBJECT as carried in a TPM2B_ID_OBJECT. */
export interface IdObject {
  /** HMAC over encIdentity || the object's name, keyed from the seed. */
  readonly integrityHmac: Uint8Array;
  /** The encrypted credential (a TPM2B_DIGEST under CFB). */
  readonly encIdentity: Uint8Array;
}

/**
 * Parses a marshalled TPM2B_ID_OBJECT, refusing trailing bytes.
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` naming the field.
 */
export function parseTpm2bIdObject(bytes: Uint8Array): IdObject {
  return parseWhole(bytes, 'TPM2B_ID_OBJECT', (r) =>
    r.sized('credential', TPM_LIMITS.idObject, (s) => {
      const integrityHmac = s.tpm2b('integrityHMAC', TPM_LIMITS.digest);
      const encIdentity = s.bytes('encIdentity', s.remaining);
      if (encIdentity.length < 2) s.fail('encIdentity', 'shorter than its encrypted size field');
      return { integrityHmac, encIdentity };
    }),
  );
}

/** Marshals a TPM2B_ID_OBJECT. */
export function marshalTpm2bIdObject(id: IdObject): Uint8Array {
  return marshalWith((w) =>
    w.sized(
      (x) => x.tpm2b(id.integrityHmac, TPM_LIMITS.digest, 'integrityHMAC').bytes(id.encIdentity),
      TPM_LIMITS.idObject,
      'credential',
    ),
  );
}

/**
 * Parses a marshalled TPM2B_ENCRYPTED_SECRET, refusing trailing bytes; returns the secret.
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` naming the field.
 */
export function parseTpm2bEncryptedSecret(bytes: Uint8Array): Uint8Array {
  return parseWhole(bytes, 'TPM2B_ENCRYPTED_SECRET', (r) =>
    r.tpm2b('secret', TPM_LIMITS.encryptedSecret),
  );
}

/** Marshals a TPM2B_ENCRYPTED_SECRET. */
export function marshalTpm2bEncryptedSecret(secret: Uint8Array): Uint8Array {
  return marshalWith((w) => w.tpm2b(secret, TPM_LIMITS.encryptedSecret, 'secret'), 520);
}
