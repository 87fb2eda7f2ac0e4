/**
 * Bundle printing and parsing shared by the `spire-server bundle` commands, as SPIRE does it:
 *
 * - `-format pem` (default): each X.509 authority as a `CERTIFICATE` PEM block (64-column).
 * - `-format spiffe`: the SPIFFE bundle document (JWKS: X.509 authorities with `x5c`, then JWT
 *   authorities with `kid`; then `spiffe_sequence` and `spiffe_refresh_hint` when positive),
 *   indented by 4 spaces, members in go-jose's order (`use`, `kty`, `kid`, `crv`, `x`, `y`,
 *   `n`, `e`, `x5c`).
 * - `bundle list` puts a `****` banner naming the trust domain above each bundle.
 *
 * Bundle data read by `bundle set` is untrusted: certificates and SPIFFE bundles are fully
 * parsed and validated (src/spiffe) before anything is sent.
 */
import { createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { goJsonIndent, type JsonValue } from '../../../common/cli/go-json.js';
import { goQuote } from '../../../common/cli/go-quote.js';
import { encodePem } from '../../../common/pem.js';
import { types } from '../../../protocol/index.js';
import { jwtAuthorityPublicKey } from '../../../spiffe/jwt-bundle.js';
import { parseSpiffeBundle } from '../../../spiffe/spiffe-bundle.js';
import { parseCertificates, splitCertificates } from '../../../spiffe/x509-cert.js';
import { cliFailure, trustDomainName } from '../util.js';

/** The bundle formats of `-format`. */
export type BundleFormat = 'pem' | 'spiffe';

/** Usage text of `-format` for `bundle show` / `bundle list`. */
export function formatFlagUsage(what: 'show the bundle' | 'list federated bundles'): string {
  return `The format to ${what} (only pretty output format supports this flag). Either "pem" or "spiffe".`;
}

/**
 * SPIRE's `validateFormat`: '' means pem; the name is case-insensitive.
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` (`invalid format: "x"`).
 */
export function validateFormat(format: string): BundleFormat {
  const f = (format === '' ? 'pem' : format).toLowerCase();
  if (f !== 'pem' && f !== 'spiffe') throw cliFailure(`invalid format: ${goQuote(f)}`);
  return f;
}

const HEADER_LINE = '****************************************';

function b64(der: Uint8Array): string {
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
}

/** A public key as go-jose writes it: `use`, `kty`, `kid`, `crv`, `x`, `y`, `n`, `e`, `x5c`. */
function jwk(
  key: KeyObject,
  use: string,
  kid: string | undefined,
  x5c: string | undefined,
): JsonValue {
  const j = key.export({ format: 'jwk' }) as Record<string, string>;
  const out: Record<string, JsonValue> = { use, kty: j['kty'] ?? '' };
  if (kid !== undefined && kid !== '') out['kid'] = kid;
  for (const name of ['crv', 'x', 'y', 'n', 'e']) {
    if (j[name] !== undefined) out[name] = j[name];
  }
  if (x5c !== undefined) out['x5c'] = [x5c];
  return out;
}

/** The PEM text of a bundle's X.509 authorities (each may hold several DER certificates). */
export function formatX509Authorities(certs: readonly types.X509Certificate[]): string {
  let out = '';
  for (const cert of certs) {
    let ders: Uint8Array[];
    try {
      parseCertificates(cert.asn1);
      ders = splitCertificates(cert.asn1);
    } catch (err) {
      throw cliFailure(
        `unable to parse certificates ASN.1 DER data: ${(err as Error).message}`,
        err,
      );
    }
    for (const der of ders) out += encodePem('CERTIFICATE', der);
  }
  return out;
}

/** The SPIFFE bundle document SPIRE prints for `-format spiffe`, with its trailing newline. */
export function formatSpiffeBundle(bundle: types.Bundle): string {
  trustDomainName(bundle.trustDomain);
  const keys: JsonValue[] = [];
  bundle.x509Authorities.forEach((auth, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(Buffer.from(auth.asn1));
    } catch (err) {
      throw cliFailure(`unable to parse root CA ${i}: ${(err as Error).message}`, err);
    }
    keys.push(jwk(cert.publicKey, 'x509-svid', undefined, b64(auth.asn1)));
  });
  for (const auth of bundle.jwtAuthorities) {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: Buffer.from(auth.publicKey), format: 'der', type: 'spki' });
    } catch (err) {
      throw cliFailure(
        `failed to parse public key ${goQuote(auth.keyId)}: ${(err as Error).message}`,
        err,
      );
    }
    keys.push(jwk(key, 'jwt-svid', auth.keyId, undefined));
  }
  const doc: Record<string, JsonValue> = { keys: keys.length === 0 ? null : keys };
  if (bundle.sequenceNumber > 0n) doc['spiffe_sequence'] = Number(bundle.sequenceNumber);
  if (bundle.refreshHint > 0n) doc['spiffe_refresh_hint'] = Number(bundle.refreshHint);
  return `${goJsonIndent(doc, '    ')}\n`;
}

/**
 * SPIRE's `printBundleWithFormat`: the bundle in `format`, with the `****` banner naming the
 * trust domain when `header`.
 */
export function formatBundle(bundle: types.Bundle, format: string, header: boolean): string {
  const f = validateFormat(format);
  let out = header ? `${HEADER_LINE}\n* ${bundle.trustDomain}\n${HEADER_LINE}\n` : '';
  out += f === 'pem' ? formatX509Authorities(bundle.x509Authorities) : formatSpiffeBundle(bundle);
  return out;
}

/**
 * SPIRE's `util.ParseBundle`: bundle data given to `bundle set`. For `pem` the trust domain is
 * sent as given in `-id` (the server validates it); for `spiffe` it is parsed first.
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` with SPIRE's texts.
 */
export function parseBundleData(data: Uint8Array, format: BundleFormat, id: string): types.Bundle {
  if (format === 'pem') {
    let ders: Uint8Array[];
    try {
      ders = parseCertificates(Buffer.from(data).toString('utf8')).map((c) => c.der);
    } catch (err) {
      throw cliFailure(`unable to parse bundle data: ${(err as Error).message}`, err);
    }
    return create(types.BundleSchema, {
      trustDomain: id,
      x509Authorities: ders.map((asn1) => create(types.X509CertificateSchema, { asn1 })),
    });
  }
  const td = trustDomainName(id);
  let parsed: ReturnType<typeof parseSpiffeBundle>;
  try {
    parsed = parseSpiffeBundle(td, data);
  } catch (err) {
    throw cliFailure(`unable to parse to spiffe bundle: ${(err as Error).message}`, err);
  }
  return create(types.BundleSchema, {
    trustDomain: parsed.trustDomain.name,
    x509Authorities: parsed.x509Authorities.map((asn1) =>
      create(types.X509CertificateSchema, { asn1: Uint8Array.from(asn1) }),
    ),
    jwtAuthorities: [...parsed.jwtAuthorities.values()].map((a) =>
      create(types.JWTKeySchema, {
        keyId: a.keyId,
        publicKey: Uint8Array.from(
          jwtAuthorityPublicKey(a).export({ format: 'der', type: 'spki' }) as Buffer,
        ),
      }),
    ),
    refreshHint: BigInt(parsed.refreshHint ?? 0),
    sequenceNumber: BigInt(parsed.sequenceNumber ?? 0),
  });
}
