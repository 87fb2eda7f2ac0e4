/**
 * Attestation key (AK) checks on a public area, before any quote signed by it is trusted.
 *
 * Why each rule (TPM 2.0 Part 1 §25.2 / §27.2 on restricted keys; TCG EK Credential Profile
 * on AKs):
 * - `restricted` + `sign`: the TPM refuses to sign, with a restricted signing key, data that
 *   starts with TPM_GENERATED_VALUE unless the TPM produced it, so a quote cannot be forged
 *   by the key's holder. Without it a "quote" is just bytes the agent chose.
 * - not `decrypt`: a restricted signing key is not a storage key.
 * - `fixedTPM` + `fixedParent` + `sensitiveDataOrigin`: the private key was generated inside
 *   this TPM and can never leave it or be re-parented, so the credential activation that
 *   binds it to the EK binds it to this device.
 * - no reserved TPMA_OBJECT bit, an RSA (≥ 2048 bits) or NIST-curve ECC key with a signing
 *   scheme, and a nameAlg (the name is what MakeCredential binds).
 */
import { TPM_ALG, TPMA_OBJECT, TPMA_OBJECT_RESERVED } from './constants.js';
import { tpmError } from './errors.js';
import { algText, tpmHashByAlg } from './hash.js';
import { curveById } from './internal/curves.js';
import type { TpmtPublic } from './public-area.js';

const REQUIRED: ReadonlyArray<[keyof typeof TPMA_OBJECT, number]> = [
  ['restricted', TPMA_OBJECT.restricted],
  ['signEncrypt', TPMA_OBJECT.signEncrypt],
  ['fixedTPM', TPMA_OBJECT.fixedTPM],
  ['fixedParent', TPMA_OBJECT.fixedParent],
  ['sensitiveDataOrigin', TPMA_OBJECT.sensitiveDataOrigin],
];

/**
 * Checks that `pub` is the public area of a TPM-resident restricted signing key (see the
 * module comment for each rule). Returns nothing; the caller must still bind the AK to the
 * EK (credential activation with the AK's name) before trusting its quotes.
 *
 * @throws SpireEdgeError `ERR_TPM_AK_INVALID` listing every rule the key breaks, e.g.
 *   `AK objectAttributes 0x00020072: restricted is not set, sign is not set, decrypt is set`.
 */
export function checkAkAttributes(pub: TpmtPublic): void {
  const problems: string[] = [];
  const attrs = pub.objectAttributes >>> 0;
  for (const [name, bit] of REQUIRED) {
    if ((attrs & bit) === 0) problems.push(`${name === 'signEncrypt' ? 'sign' : name} is not set`);
  }
  if (attrs & TPMA_OBJECT.decrypt) problems.push('decrypt is set');
  if (attrs & TPMA_OBJECT_RESERVED) {
    problems.push(`reserved bits 0x${(attrs & TPMA_OBJECT_RESERVED).toString(16)} are set`);
  }
  const hex = `0x${attrs.toString(16).padStart(8, '0')}`;
  if (problems.length > 0) {
    throw tpmError('ERR_TPM_AK_INVALID', `AK objectAttributes ${hex}: ${problems.join(', ')}`);
  }
  if (pub.nameAlg === TPM_ALG.NULL || tpmHashByAlg(pub.nameAlg) === undefined) {
    throw tpmError('ERR_TPM_AK_INVALID', `AK nameAlg ${algText(pub.nameAlg)} is not a hash`);
  }
  if (pub.type === TPM_ALG.RSA) {
    const s = pub.parameters.scheme.scheme;
    if (s !== TPM_ALG.RSASSA && s !== TPM_ALG.RSAPSS) {
      throw tpmError('ERR_TPM_AK_INVALID', `AK scheme ${algText(s)} is not RSASSA or RSAPSS`);
    }
    if (pub.parameters.keyBits < 2048) {
      throw tpmError(
        'ERR_TPM_AK_INVALID',
        `AK RSA key of ${pub.parameters.keyBits} bits is below 2048`,
      );
    }
  } else if (pub.type === TPM_ALG.ECC) {
    const s = pub.parameters.scheme.scheme;
    if (s !== TPM_ALG.ECDSA) {
      throw tpmError('ERR_TPM_AK_INVALID', `AK scheme ${algText(s)} is not ECDSA`);
    }
    if (curveById(pub.parameters.curveId) === undefined) {
      throw tpmError(
        'ERR_TPM_AK_INVALID',
        `AK curve 0x${pub.parameters.curveId.toString(16).padStart(4, '0')} is not NIST P-256, P-384 or P-521`,
      );
    }
  } else {
    throw tpmError('ERR_TPM_AK_INVALID', `AK type ${algText(pub.type)} is not RSA or ECC`);
  }
  if (pub.parameters.symmetric.algorithm !== TPM_ALG.NULL) {
    throw tpmError(
      'ERR_TPM_AK_INVALID',
      'AK has a symmetric algorithm: it is a storage key, not a signing key',
    );
  }
}
