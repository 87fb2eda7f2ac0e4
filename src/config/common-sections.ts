/**
 * The configuration sections the server and the agent share, with SPIRE's names and defaults:
 * `health_checks { … }` and `telemetry { Prometheus { … } }`, plus small value checks both use.
 * Pure: schema definitions and their typed results.
 */
import { type BlockValue, block, boolean, integer, optionalBlock, string } from './schema.js';

/** The reason given for SPIRE keys spire-edge does not implement yet. */
export const NOT_SUPPORTED_YET = 'not supported by spire-edge yet';

/** A value check: an HTTP path must start with `/`. */
export function pathProblem(value: string): string | undefined {
  return value.startsWith('/') ? undefined : 'must start with "/"';
}

/** `[::1]` → `::1`: the brackets of an IPv6 literal, as written in SPIRE configs, removed. */
export function trimBrackets(address: string): string {
  return address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
}

const healthChecksFields = {
  listener_enabled: boolean({ default: false }),
  bind_address: string({ default: 'localhost' }),
  bind_port: integer({ default: 80, min: 0, max: 65535 }),
  live_path: string({ default: '/live', check: pathProblem }),
  ready_path: string({ default: '/ready', check: pathProblem }),
} as const;

const prometheusFields = {
  host: string({ default: 'localhost' }),
  port: integer({ required: true, min: 0, max: 65535 }),
} as const;

const SINK = 'only the Prometheus sink is supported';
const telemetryFields = {
  Prometheus: optionalBlock(prometheusFields, {
    unsupported: { tls: 'TLS for the metrics endpoint is not supported yet' },
  }),
} as const;
const telemetryUnsupported: Readonly<Record<string, string>> = {
  DogStatsd: SINK,
  Statsd: SINK,
  M3: SINK,
  InMem: SINK,
  MetricPrefix: NOT_SUPPORTED_YET,
  EnableTrustDomainLabel: NOT_SUPPORTED_YET,
  EnableHostnameLabel: NOT_SUPPORTED_YET,
  AllowedPrefixes: NOT_SUPPORTED_YET,
  BlockedPrefixes: NOT_SUPPORTED_YET,
  AllowedLabels: NOT_SUPPORTED_YET,
  BlockedLabels: NOT_SUPPORTED_YET,
};

/** The `health_checks` block field. */
export const healthChecksSection = block(healthChecksFields);
/** The `telemetry` block field (only the Prometheus sink). */
export const telemetrySection = block(telemetryFields, { unsupported: telemetryUnsupported });

/** `health_checks { … }`, typed. */
export interface HealthChecksConfig {
  readonly listenerEnabled: boolean;
  readonly bindAddress: string;
  readonly bindPort: number;
  readonly livePath: string;
  readonly readyPath: string;
}

/** `telemetry { … }`, typed: only the Prometheus sink. */
export interface TelemetryConfig {
  readonly prometheus?: { readonly host: string; readonly port: number };
}

/** The typed `health_checks` section from its decoded value. */
export function toHealthChecksConfig(
  hc: BlockValue<typeof healthChecksFields>,
): HealthChecksConfig {
  return {
    listenerEnabled: hc.listener_enabled,
    bindAddress: trimBrackets(hc.bind_address),
    bindPort: hc.bind_port,
    livePath: hc.live_path,
    readyPath: hc.ready_path,
  };
}

/** The typed `telemetry` section from its decoded value. */
export function toTelemetryConfig(t: BlockValue<typeof telemetryFields>): TelemetryConfig {
  const p = t.Prometheus;
  return p === undefined ? {} : { prometheus: { host: p.host, port: p.port } };
}
