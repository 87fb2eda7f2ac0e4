/**
 * Object names (TPM 2.0 Part 1 §16): `nameAlg || H_nameAlg(TPMT_PUBLIC)`, the identity the
 * TPM binds to an object. MakeCredential binds the credential to the AK's name, and
 * TPMS_CERTIFY_INFO / TPMS_CREATION_INFO carry names.
 */
import { createHash } from 'node:crypto';
import { TPM_ALG } from './constants.js';
import { tpmError } from './errors.js';
import { algText, tpmHashByAlg } from './hash.js';
import { marshalTpmtPublic, type TpmtPublic } from './public-area.js';

/**
 * The name of an object from its public area (Part 1 §16.3). Computed from the public area
 * the caller holds — never take a name from the device on trust: compute it from the public
 * area whose key you then use.
 *
 * @throws SpireEdgeError `ERR_TPM_UNSUPPORTED` when nameAlg is NULL (the object has no name
 *   of this form) or a hash node:crypto lacks.
 */
export function objectName(pub: TpmtPublic): Uint8Array {
  const h = tpmHashByAlg(pub.nameAlg);
  if (h === undefined || pub.nameAlg === TPM_ALG.NULL) {
    throw tpmError(
      'ERR_TPM_UNSUPPORTED',
      `nameAlg ${algText(pub.nameAlg)}: the object has no digest name`,
    );
  }
  let digest: Buffer;
  try {
    digest = createHash(h.node).update(marshalTpmtPublic(pub)).digest();
  } catch (err) {
    throw tpmError('ERR_TPM_UNSUPPORTED', `nameAlg ${algText(pub.nameAlg)} is not available`, err);
  }
  const out = new Uint8Array(2 + digest.length);
  out[0] = pub.nameAlg >> 8;
  out[1] = pub.nameAlg & 0xff;
  out.set(digest, 2);
  return out;
}
