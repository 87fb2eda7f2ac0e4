/**
 * The `x509pop` node attestor, server side (SPIRE's `pkg/server/plugin/nodeattestor/x509pop`
 * in its default `external_pki` mode): the agent presents an X.509 certificate chain that
 * must verify to the operator's CA bundle (`ca_bundle_path`, parsed by the caller), then
 * proves possession of the leaf's private key by signing a fresh server nonce (wire format
 * in x509pop-wire.ts).
 *
 * Agent ID: `spiffe://<td>/spire/agent` + the rendered `agent_path_template`, by default
 * `/{{ .PluginName }}/{{ .Fingerprint }}` = `/x509pop/<hex SHA-1 of the leaf DER>`.
 * Selectors (type `x509pop`), as SPIRE emits them: `subject:cn:<leaf CN>` (when there is a
 * CN), `ca:fingerprint:<hex SHA-1>` for every certificate above the leaf in every verified
 * chain (intermediates and the root, once each), `serialnumber:<lower-case hex, even
 * length>` of the leaf, and `san:<key>:<value>` for each leaf URI SAN of the form
 * `x509pop://<td>/<key>/<value>`. Re-attestable: the same certificate attests the same node
 * again without eviction.
 *
 * Limits (SPIRE's defaults): 4 intermediates, RSA keys up to 8192 bits. The leaf must carry
 * keyUsage digitalSignature (SPIRE refuses to challenge other certificates) and an ECDSA or
 * RSA key.
 *
 * Not supported: `mode = "spiffe"`, `verify_client_ip`, and template functions (only field
 * references: see {@link X509PopAttestorOptions.agentPathTemplate}).
 *
 * Errors: `ERR_ATTESTATION_INVALID_ARGUMENT` (malformed payload or response, too many
 * intermediates, oversized RSA key), `ERR_ATTESTATION_PERMISSION_DENIED` (chain does not
 * verify, expired certificate, unusable leaf, wrong signature), `ERR_X509POP_CONFIG_INVALID`
 * (bad options, at creation).
 */
import { constants, createHash, type KeyObject, verify } from 'node:crypto';
import type { Clock } from '../../common/clock.js';
import { SpireEdgeError } from '../../common/errors.js';
import type { RandomSource } from '../../common/random.js';
import { spiffeIdFromPath, type TrustDomain, toTrustDomain } from '../../spiffe/id.js';
import {
  certificatePublicKey,
  nameAttributes,
  type ParsedCertificate,
  parseCertificate,
} from '../../spiffe/x509-cert.js';
import type { Selector } from '../datastore/types.js';
import { verifyChainToAnchors } from './internal/x509-chain.js';
import {
  type AttestationResult,
  attestationError,
  type ServerNodeAttestor,
} from './node-attestor.js';
import {
  decodeX509PopPayload,
  decodeX509PopResponse,
  encodeX509PopChallenge,
  X509POP_NONCE_LENGTH,
  x509PopSignedMessage,
} from './x509pop-wire.js';

/** `AttestationData.type` and selector type of x509pop. */
export const X509POP_TYPE = 'x509pop';
/** SPIRE's default `agent_path_template` in `external_pki` mode. */
export const X509POP_DEFAULT_AGENT_PATH_TEMPLATE = '/{{ .PluginName }}/{{ .Fingerprint }}';
/** SPIRE's default `max_intermediates`. */
export const X509POP_DEFAULT_MAX_INTERMEDIATES = 4;
/** SPIRE's default `max_rsa_key_size`. */
export const X509POP_DEFAULT_MAX_RSA_KEY_SIZE = 8192;

/** Options of {@link createX509PopAttestor} (SPIRE's plugin_data, already loaded). */
export interface X509PopAttestorOptions {
  readonly trustDomain: TrustDomain | string;
  /** The trust anchors (`ca_bundle_path` / `ca_bundle_paths` certificates), DER. */
  readonly caBundle: readonly Uint8Array[];
  readonly clock: Clock;
  /** Nonces come from here. */
  readonly random: RandomSource;
  /**
   * `agent_path_template`. Supported references: `{{ .PluginName }}`, `{{ .Fingerprint }}`,
   * `{{ .SerialNumberHex }}`, `{{ .TrustDomain }}`, `{{ .Subject.CommonName }}`,
   * `{{ .SVIDPathTrimmed }}` (always empty here) and `{{ index .URISanSelectors "key" }}`.
   */
  readonly agentPathTemplate?: string;
  /** `max_intermediates`, default 4. */
  readonly maxIntermediates?: number;
  /** `max_rsa_key_size` in bits, default 8192. */
  readonly maxRsaKeySize?: number;
}

type TemplateData = {
  readonly fingerprint: string;
  readonly serialHex: string;
  readonly commonName: string;
  readonly sans: ReadonlyMap<string, string>;
};
type TemplatePart = string | ((d: TemplateData) => string);

function configError(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_X509POP_CONFIG_INVALID', message);
}

function compileTemplate(template: string, td: TrustDomain): TemplatePart[] {
  const parts: TemplatePart[] = [];
  const re = /\{\{-?\s*(.*?)\s*-?\}\}/g;
  let last = 0;
  for (const m of template.matchAll(re)) {
    parts.push(template.slice(last, m.index));
    last = m.index + m[0].length;
    const expr = m[1]!;
    const index = /^index\s+\.URISanSelectors\s+"([^"\\]*)"$/.exec(expr);
    if (index !== null) {
      const key = index[1]!;
      parts.push((d) => d.sans.get(key) ?? '');
      continue;
    }
    switch (expr) {
      case '.PluginName':
        parts.push(X509POP_TYPE);
        break;
      case '.Fingerprint':
        parts.push((d) => d.fingerprint);
        break;
      case '.SerialNumberHex':
        parts.push((d) => d.serialHex);
        break;
      case '.TrustDomain':
        parts.push(td.name);
        break;
      case '.Subject.CommonName':
        parts.push((d) => d.commonName);
        break;
      case '.SVIDPathTrimmed':
        parts.push('');
        break;
      default:
        throw configError(
          `agent_path_template: unsupported template expression ${JSON.stringify(expr)}`,
        );
    }
  }
  parts.push(template.slice(last));
  if (
    template.slice(last).includes('{{') ||
    parts.some((p) => typeof p === 'string' && p.includes('}}'))
  ) {
    throw configError('agent_path_template: unbalanced template braces');
  }
  return parts;
}

/** Hex SHA-1 of a certificate's DER (SPIRE's `Fingerprint`). */
export function certificateFingerprint(der: Uint8Array): string {
  return createHash('sha1').update(der).digest('hex');
}

/**
 * A serial number as SPIRE's `SerialNumberHex`: Go's `%x` of the big integer, with a
 * leading 0 added when the length is odd.
 */
export function serialNumberHex(serialContents: Uint8Array): string {
  let v = 0n;
  for (const b of serialContents) v = (v << 8n) | BigInt(b);
  const negative = serialContents.length > 0 && (serialContents[0]! & 0x80) !== 0;
  if (negative) v -= 1n << BigInt(serialContents.length * 8);
  const s = negative ? `-${(-v).toString(16)}` : v.toString(16);
  return s.length % 2 === 1 ? `0${s}` : s;
}

function commonNameOf(cert: ParsedCertificate): string {
  let cn = '';
  try {
    for (const a of nameAttributes(cert.subjectDer)) if (a.oid === '2.5.4.3') cn = a.value;
  } catch {
    cn = '';
  }
  return cn;
}

function uriSanSelectors(cert: ParsedCertificate, td: TrustDomain): Map<string, string> {
  const out = new Map<string, string>();
  const prefix = `x509pop://${td.name}/`;
  for (const uri of cert.extensions.subjectAltName?.uris ?? []) {
    if (!uri.startsWith(prefix)) continue;
    let path: string;
    try {
      path = decodeURIComponent(new URL(uri).pathname);
    } catch {
      continue;
    }
    const trimmed = path.replace(/^\/+|\/+$/g, '');
    const slash = trimmed.indexOf('/');
    if (slash < 0) continue;
    out.set(trimmed.slice(0, slash), trimmed.slice(slash + 1));
  }
  return out;
}

const CURVE_SIZES: Readonly<Record<string, number>> = {
  prime256v1: 32,
  secp384r1: 48,
  secp521r1: 66,
};

function leftPad(b: Uint8Array, size: number): Uint8Array | undefined {
  let start = 0;
  while (start < b.length - 1 && b[start] === 0) start++;
  const m = b.subarray(start);
  if (m.length > size) return undefined;
  const out = new Uint8Array(size);
  out.set(m, size - m.length);
  return out;
}

function verifyResponse(
  key: KeyObject,
  kind: 'ecdsa' | 'rsa',
  challengeNonce: Uint8Array,
  responseBytes: Uint8Array,
): void {
  let response: ReturnType<typeof decodeX509PopResponse>;
  try {
    response = decodeX509PopResponse(responseBytes);
  } catch (err) {
    throw attestationError(
      'ERR_ATTESTATION_INVALID_ARGUMENT',
      `unable to unmarshal challenge response: ${(err as Error).message}`,
      err,
    );
  }
  const denied = (why: string) =>
    attestationError(
      'ERR_ATTESTATION_PERMISSION_DENIED',
      `challenge response verification failed: ${why}`,
    );
  if (response.kind !== kind)
    throw denied(`expecting ${kind === 'rsa' ? 'RSA' : 'ECDSA'} response`);
  if (response.nonce.length !== X509POP_NONCE_LENGTH) throw denied('invalid response nonce');
  const message = x509PopSignedMessage(challengeNonce, response.nonce);
  let ok = false;
  try {
    if (response.kind === 'rsa') {
      ok = verify(
        'sha256',
        message,
        {
          key,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_AUTO,
        },
        response.signature,
      );
    } else {
      const size = CURVE_SIZES[key.asymmetricKeyDetails?.namedCurve ?? ''];
      const r = size === undefined ? undefined : leftPad(response.r, size);
      const s = size === undefined ? undefined : leftPad(response.s, size);
      if (r !== undefined && s !== undefined) {
        ok = verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
      }
    }
  } catch {
    ok = false;
  }
  if (!ok) throw denied(`${kind === 'rsa' ? 'RSA' : 'ECDSA'} signature verify failed`);
}

function parseOne(der: Uint8Array, what: string): ParsedCertificate {
  try {
    return parseCertificate(der);
  } catch (err) {
    throw attestationError(
      'ERR_ATTESTATION_INVALID_ARGUMENT',
      `unable to parse ${what}: ${(err as Error).message}`,
      err,
    );
  }
}

function checkRsaSize(cert: ParsedCertificate, max: number, what: string): void {
  let key: KeyObject;
  try {
    key = certificatePublicKey(cert);
  } catch (err) {
    throw attestationError(
      'ERR_ATTESTATION_INVALID_ARGUMENT',
      `${what} public key cannot be read: ${(err as Error).message}`,
      err,
    );
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (
    (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') &&
    bits !== undefined &&
    bits > max
  ) {
    throw attestationError('ERR_ATTESTATION_INVALID_ARGUMENT', `${what} key size too large`);
  }
}

/**
 * Creates the x509pop attestor.
 *
 * Trusts: `caBundle` (operator configuration). Verifies everything the agent sends.
 * @throws SpireEdgeError `ERR_X509POP_CONFIG_INVALID` for an empty or malformed CA bundle
 *   or an unsupported template.
 */
export function createX509PopAttestor(options: X509PopAttestorOptions): ServerNodeAttestor {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('createX509PopAttestor options are required');
  }
  const td = toTrustDomain(options.trustDomain);
  if (!Array.isArray(options.caBundle) || options.caBundle.length === 0) {
    throw configError('ca_bundle_path must name at least one CA certificate');
  }
  const anchors = options.caBundle.map((d, i) => {
    try {
      return parseCertificate(d);
    } catch (err) {
      throw configError(
        `ca_bundle_path certificate ${i} cannot be parsed: ${(err as Error).message}`,
      );
    }
  });
  const maxIntermediates = options.maxIntermediates ?? X509POP_DEFAULT_MAX_INTERMEDIATES;
  if (!Number.isSafeInteger(maxIntermediates) || maxIntermediates <= 0) {
    throw configError('max_intermediates must be greater than 0');
  }
  const maxRsa = options.maxRsaKeySize ?? X509POP_DEFAULT_MAX_RSA_KEY_SIZE;
  if (!Number.isSafeInteger(maxRsa) || maxRsa <= 0) {
    throw configError('max_rsa_key_size must be greater than 0');
  }
  const template = compileTemplate(
    options.agentPathTemplate ?? X509POP_DEFAULT_AGENT_PATH_TEMPLATE,
    td,
  );
  const { clock, random } = options;

  return {
    type: X509POP_TYPE,
    async attest(payload, challenge): Promise<AttestationResult> {
      let ders: Uint8Array[];
      try {
        ders = decodeX509PopPayload(payload, maxIntermediates + 1 + 1);
      } catch (err) {
        throw attestationError(
          'ERR_ATTESTATION_INVALID_ARGUMENT',
          `failed to unmarshal data: ${(err as Error).message}`,
          err,
        );
      }
      if (ders.length - 1 > maxIntermediates) {
        throw attestationError(
          'ERR_ATTESTATION_INVALID_ARGUMENT',
          'too many intermediate certificates',
        );
      }
      const leaf = parseOne(ders[0]!, 'leaf certificate');
      checkRsaSize(leaf, maxRsa, 'leaf certificate');
      const intermediates = ders.slice(1).map((d, i) => {
        const c = parseOne(d, `intermediate certificate ${i}`);
        checkRsaSize(c, maxRsa, `intermediate certificate ${i}`);
        return c;
      });

      let chains: ParsedCertificate[][];
      try {
        chains = verifyChainToAnchors(
          leaf,
          intermediates,
          anchors,
          clock.now(),
          maxIntermediates + 1,
        );
      } catch (err) {
        throw attestationError(
          'ERR_ATTESTATION_PERMISSION_DENIED',
          `certificate verification failed: ${(err as Error).message}`,
          err,
        );
      }

      if (leaf.extensions.keyUsage?.digitalSignature !== true) {
        throw attestationError(
          'ERR_ATTESTATION_PERMISSION_DENIED',
          'certificate not intended for digital signature use',
        );
      }
      const key = certificatePublicKey(leaf);
      const kt = key.asymmetricKeyType;
      const kind = kt === 'ec' ? 'ecdsa' : kt === 'rsa' || kt === 'rsa-pss' ? 'rsa' : undefined;
      if (kind === undefined) {
        throw attestationError(
          'ERR_ATTESTATION_PERMISSION_DENIED',
          `unsupported public key type ${kt ?? 'unknown'}`,
        );
      }
      const nonce = random.bytes(X509POP_NONCE_LENGTH);
      const responseBytes = await challenge(encodeX509PopChallenge({ kind, nonce }));
      verifyResponse(key, kind, nonce, responseBytes);

      const fingerprint = certificateFingerprint(leaf.der);
      const serialHex = serialNumberHex(leaf.serial);
      const commonName = commonNameOf(leaf);
      const sans = uriSanSelectors(leaf, td);
      const path = template
        .map((p) => (typeof p === 'string' ? p : p({ fingerprint, serialHex, commonName, sans })))
        .join('');
      let agentId: string;
      try {
        agentId = spiffeIdFromPath(td, `/spire/agent${path}`).toString();
      } catch (err) {
        throw attestationError(
          'ERR_ATTESTATION_PERMISSION_DENIED',
          `agent_path_template produced an invalid agent path: ${(err as Error).message}`,
          err,
        );
      }

      const values: string[] = [];
      if (commonName !== '') values.push(`subject:cn:${commonName}`);
      const caFingerprints: string[] = [];
      for (const chain of chains) {
        for (const c of chain.slice(1)) {
          const fp = certificateFingerprint(c.der);
          if (!caFingerprints.includes(fp)) caFingerprints.push(fp);
        }
      }
      for (const fp of caFingerprints) values.push(`ca:fingerprint:${fp}`);
      values.push(`serialnumber:${serialHex}`);
      for (const [k, v] of sans) values.push(`san:${k}:${v}`);
      const selectors: Selector[] = values.map((value) => ({ type: X509POP_TYPE, value }));

      return {
        agentId,
        selectors,
        canReattest: true,
        evidence: {
          type: X509POP_TYPE,
          fingerprint,
          serialNumber: serialHex,
          subjectCommonName: commonName,
          notAfter: Math.floor(leaf.notAfter.getTime() / 1000),
          caFingerprints,
        },
      };
    },
  };
}
