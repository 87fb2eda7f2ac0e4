/**
 * Reads the one field of an X.509 certificate the datastore needs: its notAfter (RFC 5280
 * §4.1.2.5), so bundles can be pruned by expiry. Does not verify the certificate.
 */
import { children, decodeTime, derError, readWhole, TAG } from '../../common/der.js';

/**
 * The certificate's notAfter in whole seconds since the epoch.
 *
 * Trusts: nothing (the DER is untrusted); returns unverified data.
 *
 * @throws SpireEdgeError `ERR_DER_INVALID` when `der` is not a certificate structure.
 */
export function certificateNotAfter(der: Uint8Array): number {
  const cert = readWhole(der, 'certificate');
  if (cert.tag !== TAG.SEQUENCE) throw derError('certificate: expected a SEQUENCE');
  const parts = children(cert);
  if (parts.length !== 3)
    throw derError('certificate: expected tbsCertificate, algorithm, signature');
  const tbs = parts[0]!;
  if (tbs.tag !== TAG.SEQUENCE) throw derError('tbsCertificate: expected a SEQUENCE');
  const fields = children(tbs);
  // version [0] EXPLICIT is optional; validity follows serialNumber, signature and issuer.
  const first = fields[0];
  const skip = first !== undefined && first.tag === 0xa0 ? 1 : 0;
  const validity = fields[skip + 3];
  if (validity === undefined || validity.tag !== TAG.SEQUENCE) {
    throw derError('tbsCertificate: validity is missing');
  }
  const times = children(validity);
  if (times.length !== 2) throw derError('validity: expected notBefore and notAfter');
  return Math.floor(decodeTime(times[1]!).getTime() / 1000);
}
