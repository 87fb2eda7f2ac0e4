/**
 * The attestation evidence summary of `spire-server agent show` (spire-edge's addition to
 * SPIRE's layout): what the node attestor recorded at the node's last successful attestation,
 * and why its last attempt failed if it did. The admin API sends the summary in the GetAgent
 * response header `spire-edge-attestation-evidence-bin` (src/server/api/admin/agent.ts).
 *
 * Pretty lines use SPIRE's padded-label style (`Label             : value`); unknown
 * evidence shapes are printed as compact JSON so nothing the server recorded is hidden.
 */

const LABEL_WIDTH = 18;

function line(label: string, value: string): string {
  return `${label.padEnd(LABEL_WIDTH)}: ${value}\n`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `0-7,10` from ascending indices. */
function ranges(indices: readonly number[]): string {
  const out: string[] = [];
  let i = 0;
  while (i < indices.length) {
    let j = i;
    while (j + 1 < indices.length && indices[j + 1] === indices[j]! + 1) j++;
    out.push(i === j ? `${indices[i]}` : `${indices[i]}-${indices[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

function tpmLines(e: Record<string, unknown>): string {
  let out = '';
  const ek: string[] = [];
  if (typeof e.pubHash === 'string') ek.push(`pub_hash ${e.pubHash}`);
  if (typeof e.ekManufacturer === 'string') ek.push(`manufacturer ${e.ekManufacturer}`);
  if (typeof e.ekModel === 'string') ek.push(`model ${e.ekModel}`);
  if (typeof e.ekVersion === 'string') ek.push(`version ${e.ekVersion}`);
  ek.push(e.ekCertificate === true ? 'EK certificate verified' : 'enrolled EK (no certificate)');
  out += line('TPM EK', ek.join(', '));
  if (isObject(e.pcrs)) {
    const banks = Object.entries(e.pcrs)
      .filter(([, v]) => isObject(v))
      .map(([bank, v]) => {
        const idx = Object.keys(v as object)
          .map(Number)
          .filter(Number.isInteger)
          .sort((a, b) => a - b);
        return `${bank} ${ranges(idx)}`;
      });
    if (banks.length > 0) out += line('Quoted PCRs', banks.join('; '));
  }
  if (isObject(e.clockInfo)) {
    const c = e.clockInfo;
    out += line(
      'TPM clock',
      `resetCount ${String(c.resetCount)}, restartCount ${String(c.restartCount)}, safe ${String(c.safe)}`,
    );
  }
  if (isObject(e.eventLog)) {
    const l = e.eventLog;
    const verified = isObject(l.verifiedPcrs)
      ? Object.entries(l.verifiedPcrs)
          .filter(([, v]) => Array.isArray(v) && v.length > 0)
          .map(([bank, v]) => `${bank} ${ranges(v as number[])}`)
      : [];
    out += line(
      'Event log',
      `${String(l.format)}, ${String(l.events)} events, replay matches the quote for ${
        verified.length === 0 ? 'no quoted PCR' : verified.join('; ')
      }${typeof l.secureBoot === 'boolean' ? `, Secure Boot ${l.secureBoot ? 'on' : 'off'}` : ''}`,
    );
  }
  if (isObject(e.policies)) {
    for (const [name, outcome] of Object.entries(e.policies)) {
      out += line('Firmware policy', `${name}: ${String(outcome)}`);
    }
  }
  return out;
}

function compact(v: unknown): string {
  return JSON.stringify(v);
}

/**
 * The pretty lines for an evidence summary (JSON text). Empty for no evidence; a summary
 * that is not JSON is printed as it is under `Evidence`.
 */
export function formatEvidence(evidence: string | undefined): string {
  if (evidence === undefined || evidence === '' || evidence === '{}') return '';
  let e: unknown;
  try {
    e = JSON.parse(evidence);
  } catch {
    return line('Evidence', evidence);
  }
  if (!isObject(e)) return line('Evidence', evidence);
  let out = '';
  const { lastFailure, ...rest } = e;
  if (rest.type === 'tpm') out += tpmLines(rest);
  else if (Object.keys(rest).length > 0) out += line('Evidence', compact(rest));
  if (isObject(lastFailure)) {
    out += line('Last failure', `${String(lastFailure.at)}: ${String(lastFailure.reason)}`);
  }
  return out;
}

/** The evidence summary as a JSON value for `-output json` (undefined when there is none). */
export function evidenceJson(evidence: string | undefined): unknown {
  if (evidence === undefined || evidence === '') return undefined;
  try {
    return JSON.parse(evidence) as unknown;
  } catch {
    return evidence;
  }
}
