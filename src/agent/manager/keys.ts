/**
 * Key generation for the agent's own SVID and for workload X509-SVIDs: EC P-256 (SPIRE's
 * default `workload_x509_svid_key_type`), generated on the agent by the system CSPRNG, off the
 * main thread (libuv's pool), so minting 1,000 SVIDs never stalls the Workload API.
 */
import { createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';

/** Generates one private key. */
export type KeyGenerator = () => Promise<KeyObject>;

/** A new EC P-256 private key. */
export const generateEcP256Key: KeyGenerator = () =>
  new Promise((resolve, reject) => {
    generateKeyPair('ec', { namedCurve: 'P-256' }, (err, _pub, priv) => {
      if (err === null) resolve(priv);
      else reject(err);
    });
  });

/** The SubjectPublicKeyInfo DER of a key (of its public half for a private key). */
export function spkiOf(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ format: 'der', type: 'spki' }));
}

/** True when two byte strings are equal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}
