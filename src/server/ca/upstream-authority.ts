/**
 * The UpstreamAuthority: an outside CA that signs the server's X.509 CA, so the trust domain
 * joins an existing PKI instead of being its own root (SPIRE's server `UpstreamAuthority`
 * plugin type, `MintX509CAAndSubscribe`; implementations here: `disk`, later `pkcs11` and
 * `spire`).
 *
 * Unlike SPIRE's plugin, the request carries the CA's public key rather than a CSR: the CA
 * manager and the upstream authority run in one process and the key comes straight from
 * the KeyManager. JWT key publishing (SPIRE's `PublishJWTKey`) is not part of it: JWT keys
 * always go to the local bundle, as SPIRE does when the plugin answers Unimplemented.
 */
import type { KeyObject } from 'node:crypto';
import type { TrustDomain } from '../../spiffe/id.js';

/** The subject of a CA certificate (SPIRE's `ca_subject`). */
export interface X509CaSubject {
  readonly country?: readonly string[];
  readonly organization?: readonly string[];
  readonly organizationalUnit?: readonly string[];
  readonly commonName?: string;
  readonly serialNumber?: string;
}

/** What the CA manager asks the upstream authority to sign. */
export interface MintX509CaRequest {
  /** The CA's public key (a KeyObject or SubjectPublicKeyInfo DER). */
  readonly publicKey: KeyObject | Uint8Array;
  /** The preferred lifetime (SPIRE's `ca_ttl`); the authority may shorten it. */
  readonly ttlSeconds: number;
  /** The trust domain: the CA certificate's URI SAN is `spiffe://<trust domain>`. */
  readonly trustDomain: TrustDomain;
  /** The CA certificate's subject. */
  readonly subject: X509CaSubject;
}

/** The signed CA and what a relying party needs to trust it. */
export interface MintX509CaResponse {
  /**
   * The CA certificate first, then the upstream intermediates needed to reach a root;
   * never a root itself unless the upstream CA is its own root and nothing else is needed.
   */
  readonly certChain: Uint8Array[];
  /** The upstream roots (DER) that belong in the trust bundle. */
  readonly upstreamRoots: Uint8Array[];
}

/**
 * An upstream CA. The CA manager checks what comes back (the first certificate carries its
 * key and chains to `upstreamRoots`) before using it.
 */
export interface UpstreamAuthority {
  /** The implementation's name as configured (`disk`, …). */
  readonly name: string;
  /** Signs an intermediate CA certificate for the server's CA key. */
  mintX509CaIntermediate(request: MintX509CaRequest): Promise<MintX509CaResponse>;
  /** Releases resources. Idempotent. */
  close(): Promise<void>;
}
