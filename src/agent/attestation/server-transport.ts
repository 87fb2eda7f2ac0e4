/**
 * The agent's gRPC transport to the server's agent API: TLS on TCP, the server
 * authenticated as `spiffe://<td>/spire/server` by an X509-SVID that chains to the agent's
 * trust bundle, and the agent's own SVID as the client certificate once it has one (none
 * for AttestAgent).
 *
 * Trusts: `bundle` (the agent's trust bundle or SPIRE's `trust_bundle_path`).
 */
import type { KeyObject } from 'node:crypto';
import type { Interceptor } from '@connectrpc/connect';
import {
  createTlsTransport,
  type GrpcClientOptions,
  type GrpcClientTransport,
} from '../../common/grpc.js';
import { encodePem } from '../../common/pem.js';
import { type TrustDomain, toTrustDomain } from '../../spiffe/id.js';
import { parseCertificate } from '../../spiffe/x509-cert.js';

/** Options of {@link createAgentApiTransport}. */
export interface AgentApiTransportOptions extends GrpcClientOptions {
  readonly host: string;
  readonly port: number;
  readonly trustDomain: TrustDomain | string;
  /** Roots (DER) the server's SVID must chain to. */
  readonly bundle: readonly Uint8Array[];
  /** The agent SVID (leaf first) and its key, for every call but AttestAgent. */
  readonly svid?: { readonly certChain: readonly Uint8Array[]; readonly privateKey: KeyObject };
  /**
   * Let the server gzip responses (default false: certificate chains barely compress and
   * gzip costs the server more CPU than signing; SPIRE's agents do not ask for it either).
   */
  readonly compression?: boolean;
}

/** Stops advertising `grpc-accept-encoding`, so the server answers uncompressed. */
const noCompression: Interceptor = (next) => (req) => {
  req.header.delete('grpc-accept-encoding');
  return next(req);
};

/** A TLS transport that accepts only the trust domain's server. */
export function createAgentApiTransport(options: AgentApiTransportOptions): GrpcClientTransport {
  const td = toTrustDomain(options.trustDomain);
  const serverId = `${td.idString()}/spire/server`;
  if (options.bundle.length === 0) throw new TypeError('bundle must hold at least one root');
  return createTlsTransport({
    ...options,
    interceptors:
      options.compression === true
        ? (options.interceptors ?? [])
        : [noCompression, ...(options.interceptors ?? [])],
    ca: options.bundle.map((d) => encodePem('CERTIFICATE', d)),
    ...(options.svid === undefined
      ? {}
      : {
          cert: options.svid.certChain.map((d) => encodePem('CERTIFICATE', d)).join(''),
          key: options.svid.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
        }),
    checkServerIdentity: (_host, cert) => {
      let uris: readonly string[];
      try {
        uris = parseCertificate(new Uint8Array(cert.raw)).extensions.subjectAltName?.uris ?? [];
      } catch (err) {
        return new Error(`server certificate cannot be parsed: ${(err as Error).message}`);
      }
      if (uris.length !== 1 || uris[0] !== serverId) {
        return new Error(`server certificate is not an X509-SVID for ${serverId}`);
      }
      return undefined;
    },
  });
}
