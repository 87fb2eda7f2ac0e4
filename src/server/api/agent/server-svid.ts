/**
 * The server's own X509-SVID for the agent API's TLS listener: `spiffe://<td>/spire/server`,
 * a P-256 key generated in memory (never stored), signed through the ServerCa with
 * `default_x509_svid_ttl`, rotated at half its lifetime (SPIRE's server SVID rotator). The
 * TLS options also carry the trust domain's X.509 authorities as the roots for client
 * certificates; they are refreshed when the authorities change (CA rotation).
 *
 * Trusts: the ServerCa. Timers use the injected clock.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describeError } from '../../../common/errors.js';
import type { GrpcServerTlsOptions } from '../../../common/grpc.js';
import type { Logger } from '../../../common/log.js';
import { encodePem } from '../../../common/pem.js';
import type { ServerContext } from '../../context.js';

/** The current server SVID. */
export interface ServerSvidState {
  readonly certChain: readonly Uint8Array[];
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}

/** Keeps the server SVID and the client-certificate roots current. */
export class ServerSvid {
  readonly #context: ServerContext;
  readonly #log: Logger;
  readonly #checkMs: number;
  #state: ServerSvidState | undefined;
  #keyPem = '';
  #authorities: readonly Uint8Array[] = [];
  #cancel: (() => void) | undefined;
  #onChange: ((tls: GrpcServerTlsOptions) => void) | undefined;
  #closed = false;

  constructor(context: ServerContext, log: Logger, checkIntervalMs = 30_000) {
    this.#context = context;
    this.#log = log;
    this.#checkMs = checkIntervalMs;
  }

  /** The serving SVID, after {@link ServerSvid.rotate}. */
  get current(): ServerSvidState | undefined {
    return this.#state;
  }

  /** The server's SPIFFE ID. */
  get id(): string {
    return `${this.#context.trustDomain.idString()}/spire/server`;
  }

  /** Mints a new key and SVID now. */
  async rotate(): Promise<void> {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const signed = await this.#context.ca.signX509Svid({
      spiffeId: this.id,
      publicKey,
      ttlSeconds: this.#context.defaultX509SvidTtl,
    });
    this.#keyPem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    this.#state = {
      certChain: signed.certChain,
      issuedAtMs: this.#context.clock.nowMs(),
      expiresAtMs: signed.expiresAt.getTime(),
    };
    this.#authorities = this.#context.ca.getX509Authorities();
  }

  /** TLS options for the listener: the SVID, its key, the client roots, client certs requested. */
  tlsOptions(): GrpcServerTlsOptions {
    const s = this.#state;
    if (s === undefined) throw new TypeError('ServerSvid.rotate() must run before tlsOptions()');
    return {
      cert: s.certChain.map((d) => encodePem('CERTIFICATE', d)).join(''),
      key: this.#keyPem,
      ca: this.#authorities.map((d) => encodePem('CERTIFICATE', d)),
      requestCert: true,
      rejectUnauthorized: false,
    };
  }

  /** Starts checking every `checkIntervalMs`; `onChange` receives new TLS options. */
  start(onChange: (tls: GrpcServerTlsOptions) => void): void {
    this.#onChange = onChange;
    this.#arm();
  }

  /** Runs one check now (what the timer does). */
  async check(): Promise<boolean> {
    const s = this.#state;
    if (s === undefined) return false;
    const now = this.#context.clock.nowMs();
    const authorities = this.#context.ca.getX509Authorities();
    const rootsChanged =
      authorities.length !== this.#authorities.length ||
      authorities.some((a, i) => a !== this.#authorities[i]);
    if (now >= s.issuedAtMs + (s.expiresAtMs - s.issuedAtMs) / 2) {
      await this.rotate();
    } else if (rootsChanged) {
      this.#authorities = authorities;
    } else {
      return false;
    }
    this.#onChange?.(this.tlsOptions());
    return true;
  }

  stop(): void {
    this.#closed = true;
    this.#cancel?.();
    this.#cancel = undefined;
  }

  #arm(): void {
    if (this.#closed) return;
    const s = this.#state;
    const untilHalf =
      s === undefined
        ? this.#checkMs
        : s.issuedAtMs + (s.expiresAtMs - s.issuedAtMs) / 2 - this.#context.clock.nowMs();
    // Never spin: after a failed rotation untilHalf stays in the past.
    const floor = Math.min(1_000, this.#checkMs);
    this.#cancel = this.#context.clock.setTimer(
      Math.max(floor, Math.min(this.#checkMs, untilHalf)),
      () => {
        this.#cancel = undefined;
        this.check()
          .catch((err: unknown) =>
            this.#log.error('failed to rotate the server SVID', { error: describeError(err) }),
          )
          .finally(() => this.#arm());
      },
    );
  }
}
