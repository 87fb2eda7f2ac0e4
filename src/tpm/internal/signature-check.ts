/**
 * Checks a TPMT_SIGNATURE over a message with an RSA or ECC public area, returning why it
 * fails (or undefined when it verifies), so callers can raise their own coded errors.
 */
import { constants, verify } from 'node:crypto';
import { TPM_ALG } from '../constants.js';
import { algText, tpmHashByAlg } from '../hash.js';
import type { TpmtPublic } from '../public-area.js';
import { publicKeyFromTpmtPublic } from '../public-key.js';
import type { TpmtSignature } from '../signature.js';
import { leftPad } from './bytes.js';
import { curveById } from './curves.js';

/** Options of signature checks. */
export interface SignatureCheckOptions {
  /** Accept SHA-1 signatures (needed for some TPMs' AKs; refused by default). */
  readonly allowSha1?: boolean;
}

/**
 * Why `sig` is not a valid signature by `pub` over `message`, or undefined when it is. The
 * scheme must be RSASSA or RSAPSS for an RSA key, ECDSA for an ECC key; when the key has a
 * scheme, the signature must use that scheme and hash (a restricted key signs with nothing
 * else). The signed digest uses the signature's hash.
 */
export function signatureProblem(
  pub: TpmtPublic,
  message: Uint8Array,
  sig: TpmtSignature,
  options: SignatureCheckOptions = {},
): string | undefined {
  if (sig.kind === 'null') return 'the signature is NULL (unsigned)';
  if (sig.kind === 'hmac') return 'HMAC signatures cannot be checked with a public key';
  if (pub.type !== TPM_ALG.RSA && pub.type !== TPM_ALG.ECC)
    return 'the key is not an RSA or ECC key';
  const keyScheme = pub.parameters.scheme;
  if (keyScheme.scheme !== TPM_ALG.NULL) {
    if (keyScheme.scheme !== sig.sigAlg) {
      return `signature scheme ${algText(sig.sigAlg)} differs from the key's scheme ${algText(keyScheme.scheme)}`;
    }
    if (keyScheme.hashAlg !== sig.hash) {
      return `signature hash ${algText(sig.hash)} differs from the key's scheme hash ${algText(keyScheme.hashAlg ?? 0)}`;
    }
  }
  const hash = tpmHashByAlg(sig.hash);
  if (hash === undefined) return `unknown hash ${algText(sig.hash)}`;
  if (hash.alg === TPM_ALG.SHA1 && options.allowSha1 !== true) {
    return 'SHA-1 signatures are not accepted (allowSha1 is off)';
  }
  const key = publicKeyFromTpmtPublic(pub);
  try {
    if (sig.kind === 'rsa') {
      if (pub.type !== TPM_ALG.RSA) return `an ${algText(sig.sigAlg)} signature needs an RSA key`;
      if (sig.sig.length !== pub.unique.length) {
        return `RSA signature is ${sig.sig.length} bytes, the modulus ${pub.unique.length}`;
      }
      const ok =
        sig.sigAlg === TPM_ALG.RSASSA
          ? verify(hash.node, message, key, sig.sig)
          : verify(
              hash.node,
              message,
              {
                key,
                padding: constants.RSA_PKCS1_PSS_PADDING,
                // TPMs use the largest salt or the digest size depending on the spec revision.
                saltLength: constants.RSA_PSS_SALTLEN_AUTO,
              },
              sig.sig,
            );
      return ok ? undefined : 'the signature does not verify with the key';
    }
    if (pub.type !== TPM_ALG.ECC) return `an ${algText(sig.sigAlg)} signature needs an ECC key`;
    if (sig.sigAlg !== TPM_ALG.ECDSA) return `${algText(sig.sigAlg)} signatures are not supported`;
    const curve = curveById(pub.parameters.curveId);
    if (curve === undefined) return 'the key curve is not supported';
    const r = leftPad(sig.r, curve.size);
    const s = leftPad(sig.s, curve.size);
    if (r === undefined || s === undefined) return `ECDSA r or s longer than ${curve.jwk} allows`;
    const p1363 = new Uint8Array(2 * curve.size);
    p1363.set(r, 0);
    p1363.set(s, curve.size);
    const ok = verify(hash.node, message, { key, dsaEncoding: 'ieee-p1363' }, p1363);
    return ok ? undefined : 'the signature does not verify with the key';
  } catch (err) {
    return `the signature cannot be checked (${(err as Error).message})`;
  }
}
