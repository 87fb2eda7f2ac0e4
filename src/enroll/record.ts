/**
 * The enrollment record `tpm-enroll` prints for a device: the EK's `pub_hash` (the ID and
 * selector the `tpm` NodeAttestor gives the device), its public key and certificate, the TPM
 * manufacturer/model/version from the certificate, current PCR values, and the
 * `spire-server entry create -node …` command that binds a SPIFFE ID to it.
 *
 * Pure: built from what the caller read from the TPM. The record describes what the device
 * *reported*; nothing in it is verified here beyond parsing — the EK certificate's chain is
 * checked by the server at attestation, not by this tool (an operator enrolling a device
 * trusts the device in front of them).
 */
import { encodePem } from '../common/pem.js';
import { nameAttributes } from '../spiffe/x509-cert.js';
import { ekCertMatchesPublic, parseEkCertificate } from '../tpm/ek-certificate.js';
import { parseTpm2bPublic } from '../tpm/public-area.js';
import { pubHash, spkiFromTpmtPublic } from '../tpm/public-key.js';
import { TPM_SELECTOR_TYPE } from './alias-plan.js';

export { TPM_SELECTOR_TYPE } from './alias-plan.js';

/** The SPIFFE ID path of the server, the parent of node alias entries (SPIRE's). */
export const SERVER_ID_PATH = '/spire/server';

/** What {@link buildEnrollmentRecord} takes (raw, as read from the TPM). */
export interface EnrollmentInput {
  /** `rsa`, `ecc-p256` or `ecc-p384`. */
  readonly ekAlgorithm: string;
  /** The EK's marshalled TPM2B_PUBLIC. */
  readonly ekPublic: Uint8Array;
  /** The EK certificate as read from NV (DER, padding allowed), when there is one. */
  readonly ekCertificate?: Uint8Array | undefined;
  /** PCR values read: bank → index → digest. */
  readonly pcrs?: ReadonlyMap<string, ReadonlyMap<number, Uint8Array>>;
  /** The alias SPIFFE ID to bind (`spiffe://td/gw/1`), when known. */
  readonly spiffeId?: string | undefined;
  /** The trust domain (to print the agent ID and a placeholder alias), when known. */
  readonly trustDomain?: string | undefined;
}

/** An enrollment record; field names are those of the JSON output. */
export interface EnrollmentRecord {
  /** Lower-case hex SHA-256 of the EK public key's SubjectPublicKeyInfo DER. */
  readonly pub_hash: string;
  readonly ek_algorithm: string;
  /** The EK public key, `PUBLIC KEY` PEM (from the EK public area). */
  readonly ek_public_pem: string;
  /** The EK certificate PEM (NV padding removed), or absent. */
  readonly ek_certificate_pem?: string;
  /** From the EK certificate SAN (TCG EK Credential Profile), when present. */
  readonly manufacturer?: string;
  readonly model?: string;
  readonly version?: string;
  /** The EK certificate issuer's common name, when present. */
  readonly ek_issuer_cn?: string;
  /** PCR values: bank → index (decimal text) → lower-case hex. */
  readonly pcrs: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** The agent ID the `tpm` attestor assigns: `spiffe://<td>/spire/agent/tpm/<pub_hash>`. */
  readonly agent_id: string;
  /** The selector to put on the node alias entry. */
  readonly selector: string;
  /** The command that binds the alias SPIFFE ID to this device. */
  readonly entry_create_command: string;
  /** Things the operator should know (a certificate for another key, an unparsable one). */
  readonly warnings: readonly string[];
}

const TD_PLACEHOLDER = '<trust-domain>';
const ALIAS_PLACEHOLDER = `spiffe://${TD_PLACEHOLDER}/<path>`;

/** `spire-server entry create -node -spiffeID <id> -selector tpm:pub_hash:<hash>`. */
export function entryCreateCommand(spiffeId: string | undefined, hash: string): string {
  const id = spiffeId ?? ALIAS_PLACEHOLDER;
  const quoted = /^[A-Za-z0-9:/._~%@+=,-]+$/.test(id) ? id : `'${id.replaceAll("'", "'\\''")}'`;
  return `spire-server entry create -node -spiffeID ${quoted} -selector ${TPM_SELECTOR_TYPE}:pub_hash:${hash}`;
}

function commonName(der: Uint8Array): string | undefined {
  try {
    return nameAttributes(der).find((a) => a.oid === '2.5.4.3')?.value;
  } catch {
    return undefined;
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/**
 * Builds the record. The EK public area must parse (it defines `pub_hash`); a certificate
 * that does not parse or certifies another key is reported in `warnings` rather than fatal
 * (the device can still be enrolled by `pub_hash`).
 *
 * @throws SpireEdgeError `ERR_TPM_PARSE` / `ERR_TPM_UNSUPPORTED` for an EK public area that
 *   is not an RSA or ECC key.
 */
export function buildEnrollmentRecord(input: EnrollmentInput): EnrollmentRecord {
  const ek = parseTpm2bPublic(input.ekPublic);
  const hash = pubHash(ek);
  const warnings: string[] = [];
  const cert: {
    ek_certificate_pem?: string;
    manufacturer?: string;
    model?: string;
    version?: string;
    ek_issuer_cn?: string;
  } = {};
  if (input.ekCertificate !== undefined) {
    try {
      const c = parseEkCertificate(input.ekCertificate, { requireTpmAttributes: false });
      cert.ek_certificate_pem = encodePem('CERTIFICATE', c.cert.der);
      if (c.manufacturer !== undefined) cert.manufacturer = c.manufacturer;
      if (c.model !== undefined) cert.model = c.model;
      if (c.version !== undefined) cert.version = c.version;
      const cn = commonName(c.cert.issuerDer);
      if (cn !== undefined) cert.ek_issuer_cn = cn;
      if (!ekCertMatchesPublic(c, ek)) {
        warnings.push(
          `the EK certificate in NV certifies another key than the ${input.ekAlgorithm} EK: the server will refuse it`,
        );
      }
    } catch (err) {
      warnings.push(`the EK certificate in NV could not be parsed: ${(err as Error).message}`);
    }
  } else {
    warnings.push(
      `no ${input.ekAlgorithm} EK certificate in NV: the server must enroll this pub_hash (require_ek_cert = false)`,
    );
  }
  const pcrs: Record<string, Record<string, string>> = {};
  for (const [bank, values] of input.pcrs ?? new Map()) {
    const o: Record<string, string> = {};
    for (const [i, d] of [...values].sort((a, b) => a[0] - b[0])) o[String(i)] = hex(d);
    pcrs[bank] = o;
  }
  const td = input.trustDomain ?? trustDomainOf(input.spiffeId) ?? TD_PLACEHOLDER;
  return {
    pub_hash: hash,
    ek_algorithm: input.ekAlgorithm,
    ek_public_pem: encodePem('PUBLIC KEY', spkiFromTpmtPublic(ek)),
    ...cert,
    pcrs,
    agent_id: `spiffe://${td}/spire/agent/tpm/${hash}`,
    selector: `${TPM_SELECTOR_TYPE}:pub_hash:${hash}`,
    entry_create_command: entryCreateCommand(
      input.spiffeId ?? (input.trustDomain === undefined ? undefined : `spiffe://${td}/<path>`),
      hash,
    ),
    warnings,
  };
}

function trustDomainOf(id: string | undefined): string | undefined {
  if (id === undefined) return undefined;
  const m = /^spiffe:\/\/([^/]+)/.exec(id);
  return m?.[1];
}

/** The record in `tpm-enroll`'s pretty layout (labels padded, PEM blocks after). */
export function formatEnrollmentRecord(r: EnrollmentRecord): string {
  const rows: Array<[string, string | undefined]> = [
    ['pub_hash', r.pub_hash],
    ['EK algorithm', r.ek_algorithm],
    ['Manufacturer', r.manufacturer],
    ['Model', r.model],
    ['Version', r.version],
    ['EK issuer CN', r.ek_issuer_cn],
    ['Agent ID', r.agent_id],
    ['Selector', r.selector],
  ];
  let out = '';
  for (const [label, value] of rows) {
    if (value !== undefined) out += `${label.padEnd(16)} : ${value}\n`;
  }
  for (const [bank, values] of Object.entries(r.pcrs)) {
    for (const [i, d] of Object.entries(values)) {
      out += `${`PCR ${bank}:${i}`.padEnd(16)} : ${d}\n`;
    }
  }
  out += `\nEK public key:\n${r.ek_public_pem}`;
  if (r.ek_certificate_pem !== undefined) out += `\nEK certificate:\n${r.ek_certificate_pem}`;
  for (const w of r.warnings) out += `\nWarning: ${w}\n`;
  out += `\nTo bind a SPIFFE ID to this device, run on the server:\n  ${r.entry_create_command}\n`;
  return out;
}
