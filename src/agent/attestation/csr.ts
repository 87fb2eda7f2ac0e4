/**
 * PKCS#10 certification requests (RFC 2986) for the agent's own key: what AttestAgent,
 * RenewAgent and BatchNewX509SVID take. Like SPIRE's agent, the request carries only the
 * public key and an empty subject: the server decides the SPIFFE ID, names and lifetime.
 */
import { createPublicKey, type KeyObject, sign } from 'node:crypto';
import { bitString, DER_NULL, oid, seq, smallInteger } from '../../common/der.js';

const EMPTY_NAME = seq();
const NO_ATTRIBUTES = Uint8Array.of(0xa0, 0x00);

function signatureAlgorithm(key: KeyObject): { alg: Uint8Array; hash: string | null } {
  const kt = key.asymmetricKeyType;
  if (kt === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { alg: seq(oid('1.2.840.10045.4.3.2')), hash: 'sha256' };
    if (curve === 'secp384r1') return { alg: seq(oid('1.2.840.10045.4.3.3')), hash: 'sha384' };
    if (curve === 'secp521r1') return { alg: seq(oid('1.2.840.10045.4.3.4')), hash: 'sha512' };
    throw new TypeError(`unsupported EC curve ${curve ?? 'unknown'}`);
  }
  if (kt === 'rsa') return { alg: seq(oid('1.2.840.113549.1.1.11'), DER_NULL), hash: 'sha256' };
  if (kt === 'ed25519') return { alg: seq(oid('1.3.101.112')), hash: null };
  throw new TypeError(`unsupported private key type ${kt ?? 'unknown'}`);
}

/**
 * A DER PKCS#10 request for `privateKey` (ECDSA P-256/P-384/P-521 with SHA-256/384/512,
 * RSA with SHA-256, or Ed25519), signed by it, with an empty subject and no attributes.
 *
 * @throws TypeError for a public key or an unsupported key type.
 */
export function createCsr(privateKey: KeyObject): Uint8Array {
  if (privateKey?.type !== 'private') throw new TypeError('createCsr needs a private KeyObject');
  const { alg, hash } = signatureAlgorithm(privateKey);
  const spki = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }));
  const info = seq(smallInteger(0), EMPTY_NAME, spki, NO_ATTRIBUTES);
  const signature = new Uint8Array(sign(hash, info, privateKey));
  return seq(info, alg, bitString(signature));
}
