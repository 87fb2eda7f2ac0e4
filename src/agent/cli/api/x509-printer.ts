/**
 * SPIRE's pretty layout of X509-SVIDs (`cmd/spire-agent/cli/api/printer.go`), shared by
 * `api fetch x509` and `api watch`:
 *
 * ```text
 * Received 1 svid after 2.345ms
 *
 * SPIFFE ID:		spiffe://example.org/web
 * Hint:			internal
 * SVID Valid After:	2026-01-01 12:00:00 +0000 UTC
 * SVID Valid Until:	2026-01-01 13:00:00 +0000 UTC
 * Intermediate #1 Valid After:	…
 * Intermediate #1 Valid Until:	…
 * CA #1 Valid After:	…
 * CA #1 Valid Until:	…
 * [spiffe://partner.example] CA #1 Valid After:	…
 * [spiffe://partner.example] CA #1 Valid Until:	…
 *
 * ```
 *
 * Times are Go's `time.Time.String()` of the certificate's (UTC) validity bounds; the
 * duration is Go's `time.Duration.String()`. SPIRE prints federated bundles in Go map order
 * (random); we sort them byte-wise by label so output is stable.
 */
import { compareBytes } from '../../../common/cli/flag-set.js';
import { formatGoTime } from '../../../common/cli/go-time.js';
import { formatGoDuration } from '../../../common/cli/go-value.js';

/** The validity period of one certificate. */
export interface CertificateValidity {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** One SVID as printed. */
export interface PrintableX509Svid {
  readonly spiffeId: string;
  /** '' prints no `Hint:` line. */
  readonly hint: string;
  /** The SVID's chain, leaf first (at least one). */
  readonly certificates: readonly CertificateValidity[];
  /** The authorities of the SVID's own trust domain. */
  readonly bundle: readonly CertificateValidity[];
  /** Federated bundles by label (`spiffe://td` for `fetch`, `td` for `watch`), any order. */
  readonly federatedBundles: ReadonlyArray<readonly [string, readonly CertificateValidity[]]>;
}

function goTime(d: Date): string {
  return formatGoTime(Math.floor(d.getTime() / 1000));
}

function formatSvid(svid: PrintableX509Svid): string {
  let out = `SPIFFE ID:\t\t${svid.spiffeId}\n`;
  if (svid.hint !== '') out += `Hint:\t\t\t${svid.hint}\n`;
  const [leaf, ...intermediates] = svid.certificates;
  if (leaf !== undefined) {
    out += `SVID Valid After:\t${goTime(leaf.notBefore)}\n`;
    out += `SVID Valid Until:\t${goTime(leaf.notAfter)}\n`;
  }
  intermediates.forEach((c, i) => {
    out += `Intermediate #${i + 1} Valid After:\t${goTime(c.notBefore)}\n`;
    out += `Intermediate #${i + 1} Valid Until:\t${goTime(c.notAfter)}\n`;
  });
  svid.bundle.forEach((c, i) => {
    out += `CA #${i + 1} Valid After:\t${goTime(c.notBefore)}\n`;
    out += `CA #${i + 1} Valid Until:\t${goTime(c.notAfter)}\n`;
  });
  const federated = [...svid.federatedBundles].sort(([a], [b]) => compareBytes(a, b));
  for (const [label, cas] of federated) {
    cas.forEach((c, i) => {
      out += `[${label}] CA #${i + 1} Valid After:\t${goTime(c.notBefore)}\n`;
      out += `[${label}] CA #${i + 1} Valid Until:\t${goTime(c.notAfter)}\n`;
    });
  }
  return out;
}

/**
 * SPIRE's `printX509SVIDResponse`: the count and elapsed time, each SVID after a blank line,
 * and a final blank line.
 */
export function formatX509SvidResponse(
  svids: readonly PrintableX509Svid[],
  elapsedNs: bigint,
): string {
  let out = `Received ${svids.length} svid${svids.length === 1 ? '' : 's'} after ${formatGoDuration(elapsedNs)}\n`;
  for (const svid of svids) out += `\n${formatSvid(svid)}`;
  return `${out}\n`;
}
