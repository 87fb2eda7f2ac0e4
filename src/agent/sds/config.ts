/**
 * The agent's SDS settings: SPIRE's `sds { … }` block of agent.conf (doc/spire_agent.md,
 * "SDS Configuration"), with SPIRE's defaults.
 *
 * | agent.conf key | field | default |
 * |---|---|---|
 * | `default_svid_name` | `defaultSvidName` | `default` |
 * | `default_bundle_name` | `defaultBundleName` | `ROOTCA` |
 * | `default_all_bundles_name` | `defaultAllBundlesName` | `ALL` |
 * | `disable_spiffe_cert_validation` | `disableSpiffeCertValidation` | `false` |
 */

/** SDS settings; every field optional (SPIRE's defaults in {@link SDS_DEFAULTS}). */
export interface SdsConfig {
  /** The TlsCertificate resource name of the caller's default (first) X509-SVID. */
  readonly defaultSvidName?: string;
  /** The validation context resource name of the agent's own trust domain bundle. */
  readonly defaultBundleName?: string;
  /** The validation context resource name of all bundles (own and federated). */
  readonly defaultAllBundlesName?: string;
  /**
   * Answer bundles as plain `trusted_ca` instead of the `envoy.tls.cert_validator.spiffe`
   * validator. An Envoy overrides it per node with the node metadata key
   * `disable_spiffe_cert_validation` (a bool, or a string such as `"true"`).
   */
  readonly disableSpiffeCertValidation?: boolean;
}

/** {@link SdsConfig} with every field set. */
export type ResolvedSdsConfig = Required<SdsConfig>;

/** SPIRE's defaults. */
export const SDS_DEFAULTS: ResolvedSdsConfig = Object.freeze({
  defaultSvidName: 'default',
  defaultBundleName: 'ROOTCA',
  defaultAllBundlesName: 'ALL',
  disableSpiffeCertValidation: false,
});

/**
 * `config` over {@link SDS_DEFAULTS}. Throws TypeError for a name that is not a non-empty
 * string or a flag that is not a boolean (the agent config parser reports bad files with
 * coded errors before this is reached).
 */
export function resolveSdsConfig(config: SdsConfig = {}): ResolvedSdsConfig {
  if (typeof config !== 'object' || config === null)
    throw new TypeError('config must be an object');
  const out = { ...SDS_DEFAULTS };
  for (const key of ['defaultSvidName', 'defaultBundleName', 'defaultAllBundlesName'] as const) {
    const v = config[key];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v === '') throw new TypeError(`${key} must be a non-empty string`);
    out[key] = v;
  }
  const d = config.disableSpiffeCertValidation;
  if (d !== undefined) {
    if (typeof d !== 'boolean')
      throw new TypeError('disableSpiffeCertValidation must be a boolean');
    out.disableSpiffeCertValidation = d;
  }
  return Object.freeze(out);
}
