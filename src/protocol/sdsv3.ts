/**
 * Envoy's Secret Discovery Service (API v3) wire types, generated from the minimal protos
 * under proto/envoy and proto/google/rpc (only the messages and fields SDS needs, with the
 * published package, message and field names and numbers). Exposed as the `sdsv3`
 * namespace of src/protocol/index.ts; the names do not repeat across these packages:
 *
 * - `SecretDiscoveryService` — `envoy.service.secret.v3` (`StreamSecrets`, `FetchSecrets`,
 *   `DeltaSecrets`)
 * - `DiscoveryRequest`, `DiscoveryResponse`, `DeltaDiscoveryRequest`,
 *   `DeltaDiscoveryResponse`, `Resource` — `envoy.service.discovery.v3`
 * - `Secret`, `TlsCertificate`, `CertificateValidationContext`, `SPIFFECertValidatorConfig`
 *   — `envoy.extensions.transport_sockets.tls.v3`
 * - `Node`, `BuildVersion`, `DataSource`, `ControlPlane`, `TypedExtensionConfig` —
 *   `envoy.config.core.v3`; `SemanticVersion` — `envoy.type.v3`
 * - `Status` — `google.rpc` (a NACK's `error_detail`)
 *
 * Decoding checks the wire format only: names, PEM and metadata are unverified data.
 */
export * from './gen/envoy/config/core/v3/base_pb.js';
export * from './gen/envoy/config/core/v3/extension_pb.js';
export * from './gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
export * from './gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
export * from './gen/envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config_pb.js';
export * from './gen/envoy/service/discovery/v3/discovery_pb.js';
export * from './gen/envoy/service/secret/v3/sds_pb.js';
export * from './gen/envoy/type/v3/semantic_version_pb.js';
export * from './gen/google/rpc/status_pb.js';

/** The SDS resource type, as `DiscoveryRequest.type_url` and every resource's Any carry it. */
export const SECRET_TYPE_URL =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
