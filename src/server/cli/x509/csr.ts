/**
 * The certification request `spire-server x509 mint` sends (as Go's
 * `x509.CreateCertificateRequest` builds it for SPIRE): an empty subject, the public key,
 * and an extension request holding a subjectAltName with the DNS names then the SPIFFE ID
 * URI; signed ECDSA-with-SHA256 by the freshly generated P-256 key (RFC 2986, RFC 5280
 * §4.2.1.6).
 */
import { type KeyObject, sign } from 'node:crypto';
import { goQuote } from '../../../common/cli/go-quote.js';
import {
  ascii,
  bitString,
  octetString,
  oid,
  seq,
  set,
  smallInteger,
  tlv,
} from '../../../common/der.js';
import { cliFailure } from '../util.js';

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

function ia5(value: string): Uint8Array {
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) > 0x7f) {
      throw cliFailure(`x509: ${goQuote(value)} cannot be encoded as an IA5String`);
    }
  }
  return ascii(value);
}

/**
 * A DER CSR for `spiffeId` and `dnsNames`, signed by `privateKey` (an EC P-256 key).
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` for a name that is not IA5 (ASCII).
 */
export function buildSvidCsr(
  spiffeId: string,
  dnsNames: readonly string[],
  privateKey: KeyObject,
  publicKey: KeyObject,
): Uint8Array {
  const names = [...dnsNames.map((d) => tlv(0x82, ia5(d))), tlv(0x86, ia5(spiffeId))];
  const extensions = seq(seq(oid(OID_SUBJECT_ALT_NAME), octetString(seq(...names))));
  const attributes = tlv(0xa0, seq(oid(OID_EXTENSION_REQUEST), set(extensions)));
  const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
  const info = seq(smallInteger(0), seq(), spki, attributes);
  const signature = sign('sha256', info, privateKey);
  return seq(info, seq(oid(OID_ECDSA_WITH_SHA256)), bitString(new Uint8Array(signature)));
}
