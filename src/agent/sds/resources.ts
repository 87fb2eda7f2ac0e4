/**
 * The SDS resources a caller gets for a list of resource names (SPIRE's sdsv3
 * `buildResponse`), as `envoy.extensions.transport_sockets.tls.v3.Secret` messages:
 *
 * - an identity's SPIFFE ID → a `tls_certificate` with that SVID's chain and PKCS#8 key
 *   (PEM, inline bytes);
 * - `defaultSvidName` (`default`) → the same for the caller's first identity (by entry ID);
 * - `spiffe://<own td>` and `defaultBundleName` (`ROOTCA`) → the own trust domain's bundle,
 *   `spiffe://<federated td>` → that bundle (for trust domains the caller's entries
 *   federate with);
 * - `defaultAllBundlesName` (`ALL`) → every one of those bundles in one validation context
 *   (needs the SPIFFE validator);
 * - no names at all → every identity under its SPIFFE ID and every bundle under its trust
 *   domain ID (not the default or special names).
 *
 * Bundles go out either as a SPIFFE certificate validator (`custom_validator_config`
 * `envoy.tls.cert_validator.spiffe` with a `SPIFFECertValidatorConfig`: one trust domain,
 * or all of them sorted by name for the all-bundles name) or, when that is off, as
 * `trusted_ca` PEM. Empty names are ignored. Any name left unserved fails the whole answer
 * with `ERR_SDS_RESOURCE_NAMES_INVALID` (SPIRE's InvalidArgument), so a workload cannot
 * probe for identities it does not hold.
 *
 * Two deliberate differences from SPIRE, both only where SPIRE fails or sends something
 * Envoy cannot use: several special names in one request are all served (SPIRE serves the
 * first of own-ID / bundle name / all-bundles name and rejects the others, and likewise the
 * default SVID name when the first identity's SPIFFE ID is also asked for); and two entries
 * with the same SPIFFE ID yield one resource (the lower entry ID), not two with one name.
 *
 * Pure: the caller supplies the state (already filtered to unexpired identities) and
 * decides whether the validator is used (see node.ts).
 */
import { create } from '@bufbuild/protobuf';
import { anyPack } from '@bufbuild/protobuf/wkt';
import { encodePem } from '../../common/pem.js';
import { sdsv3 } from '../../protocol/index.js';
import type { X509Bundle } from '../../spiffe/x509-bundle.js';
import type { TrustDomainBundles, WorkloadIdentity } from '../workload-api/identity-source.js';
import type { ResolvedSdsConfig } from './config.js';
import { resourcesNotAuthorized, spiffeValidatorUnsupported } from './errors.js';

/** The `custom_validator_config` name of Envoy's SPIFFE certificate validator. */
export const SPIFFE_VALIDATOR_NAME = 'envoy.tls.cert_validator.spiffe';

/** What one caller may receive, at one instant. */
export interface SdsState {
  /** The caller's identities, unexpired, ordered by entry ID (the first is the default). */
  readonly identities: readonly WorkloadIdentity[];
  /** The agent's own trust domain bundles. */
  readonly own: TrustDomainBundles;
  /** Bundles of the trust domains the caller's entries federate with, by trust domain name. */
  readonly federated: ReadonlyMap<string, TrustDomainBundles>;
}

/** Options of {@link buildSdsSecrets}. */
export interface BuildSdsSecretsOptions {
  readonly config: ResolvedSdsConfig;
  /** Bundles as the SPIFFE validator (true) or as `trusted_ca` (false). */
  readonly spiffeValidator: boolean;
}

const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

function inline(bytes: Uint8Array) {
  return { specifier: { case: 'inlineBytes' as const, value: bytes } };
}

function tlsCertificate(name: string, identity: WorkloadIdentity): sdsv3.Secret {
  const chain = identity.certChain.map((der) => encodePem('CERTIFICATE', der)).join('');
  return create(sdsv3.SecretSchema, {
    name,
    type: {
      case: 'tlsCertificate',
      value: {
        certificateChain: inline(ascii(chain)),
        privateKey: inline(ascii(encodePem('PRIVATE KEY', identity.privateKeyPkcs8))),
      },
    },
  });
}

function rootCaContext(name: string, bundle: X509Bundle): sdsv3.Secret {
  return create(sdsv3.SecretSchema, {
    name,
    type: {
      case: 'validationContext',
      value: { trustedCa: inline(ascii(bundle.marshalPem())) },
    },
  });
}

function spiffeContext(name: string, bundles: readonly X509Bundle[]): sdsv3.Secret {
  const config = create(sdsv3.SPIFFECertValidatorConfigSchema, {
    trustDomains: bundles.map((b) => ({
      name: b.trustDomain.name,
      trustBundle: inline(ascii(b.marshalPem())),
    })),
  });
  return create(sdsv3.SecretSchema, {
    name,
    type: {
      case: 'validationContext',
      value: {
        customValidatorConfig: {
          name: SPIFFE_VALIDATOR_NAME,
          typedConfig: anyPack(sdsv3.SPIFFECertValidatorConfigSchema, config),
        },
      },
    },
  });
}

/**
 * The secrets `names` ask for (all of them when `names` has no non-empty name), in SPIRE's
 * order: own bundle, default bundle, all bundles, federated bundles by trust domain,
 * identities by entry ID (the default SVID right after the first identity). Throws
 * `ERR_SDS_RESOURCE_NAMES_INVALID` naming what could not be served,
 * `ERR_SDS_SPIFFE_VALIDATOR_UNSUPPORTED` for the all-bundles name without the validator.
 */
export function buildSdsSecrets(
  state: SdsState,
  names: readonly string[],
  options: BuildSdsSecretsOptions,
): sdsv3.Secret[] {
  const { config, spiffeValidator } = options;
  const wanted = new Set(names.filter((n) => n !== ''));
  const all = wanted.size === 0;
  const served = new Set<string>();
  const out: sdsv3.Secret[] = [];
  const own = state.own.x509;
  const ownId = `spiffe://${own.trustDomain.name}`;
  const federated = [...state.federated.entries()]
    .filter(([td]) => td !== own.trustDomain.name)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, b]) => b.x509);
  const context = (name: string, bundle: X509Bundle) =>
    spiffeValidator ? spiffeContext(name, [bundle]) : rootCaContext(name, bundle);
  const serve = (name: string, secret: () => sdsv3.Secret) => {
    out.push(secret());
    served.add(name);
  };

  if (all || wanted.has(ownId)) serve(ownId, () => context(ownId, own));
  if (wanted.has(config.defaultBundleName)) {
    serve(config.defaultBundleName, () => context(config.defaultBundleName, own));
  }
  if (wanted.has(config.defaultAllBundlesName)) {
    if (!spiffeValidator) throw spiffeValidatorUnsupported();
    const everyBundle = [own, ...federated].sort((a, b) =>
      a.trustDomain.name < b.trustDomain.name
        ? -1
        : a.trustDomain.name > b.trustDomain.name
          ? 1
          : 0,
    );
    serve(config.defaultAllBundlesName, () =>
      spiffeContext(config.defaultAllBundlesName, everyBundle),
    );
  }
  for (const b of federated) {
    const id = `spiffe://${b.trustDomain.name}`;
    if (all || wanted.has(id)) serve(id, () => context(id, b));
  }
  state.identities.forEach((identity, i) => {
    const id = identity.spiffeId;
    if ((all || wanted.has(id)) && !served.has(id)) serve(id, () => tlsCertificate(id, identity));
    if (i === 0 && wanted.has(config.defaultSvidName)) {
      serve(config.defaultSvidName, () => tlsCertificate(config.defaultSvidName, identity));
    }
  });

  const missing = [...wanted].filter((n) => !served.has(n)).sort();
  if (missing.length > 0) throw resourcesNotAuthorized(missing);
  return out;
}

/** The secrets as the `resources` of a DiscoveryResponse (Any, Secret type URL). */
export function packSecrets(secrets: readonly sdsv3.Secret[]) {
  return secrets.map((s) => anyPack(sdsv3.SecretSchema, s));
}
