/**
 * Where EKs and their certificates live, per the TCG EK Credential Profile 2.x (§2.2.1.4 NV
 * indices, Annex B templates) and the TCG TPM v2.0 Provisioning Guidance (persistent handles).
 */
import type { EkAlgorithm } from './tpm.js';

/** Where one EK type lives. */
export interface EkLocation {
  /** The template in the EK Credential Profile's naming (L = low range, H = high range). */
  readonly template: 'L-1' | 'L-2' | 'H-3';
  /** NV index of the EK certificate (DER). */
  readonly certNvIndex: number;
  /**
   * Persistent handle where a provisioned EK usually lives. The adapter uses the key there only
   * when its public area matches the template (everything but the key itself); otherwise, or
   * when there is none, it re-derives the EK from the template (slow for RSA on real TPMs).
   */
  readonly persistentHandle: number;
}

/** EK locations by {@link EkAlgorithm}. */
export const EK_LOCATIONS: Readonly<Record<EkAlgorithm, EkLocation>> = {
  rsa: { template: 'L-1', certNvIndex: 0x01c00002, persistentHandle: 0x81010001 },
  'ecc-p256': { template: 'L-2', certNvIndex: 0x01c0000a, persistentHandle: 0x81010002 },
  // The profile reserves no persistent handle for H-3; swtpm_setup persists it here.
  'ecc-p384': { template: 'H-3', certNvIndex: 0x01c00016, persistentHandle: 0x81010016 },
};

/**
 * Every EK certificate NV index the profile defines (low range and high range
 * 0x01C00012–0x01C0001E), with the template whose key the certificate describes. Only
 * `rsa`, `ecc-p256` and `ecc-p384` keys can be derived by this adapter; the others are listed
 * so that tools can report certificates they find.
 */
export const EK_CERT_NV_INDICES: readonly { readonly index: number; readonly template: string }[] =
  [
    { index: 0x01c00002, template: 'L-1 RSA 2048' },
    { index: 0x01c0000a, template: 'L-2 ECC NIST P-256' },
    { index: 0x01c00012, template: 'H-1 RSA 2048' },
    { index: 0x01c00014, template: 'H-2 ECC NIST P-256' },
    { index: 0x01c00016, template: 'H-3 ECC NIST P-384' },
    { index: 0x01c00018, template: 'H-4 ECC NIST P-521' },
    { index: 0x01c0001a, template: 'H-5 ECC SM2 P-256' },
    { index: 0x01c0001c, template: 'H-6 RSA 3072' },
    { index: 0x01c0001e, template: 'H-7 RSA 4096' },
  ];
