/**
 * Where an agent with an empty store gets its first trust bundle, the roots it authenticates the
 * server with (SPIRE's `trust_bundle_path`, `trust_bundle_url`, `insecure_bootstrap`):
 *
 * - a file, PEM or a SPIFFE bundle document (`trust_bundle_format`), read at start;
 * - an https URL (verified with the system trust store), same formats;
 * - insecure: the server's own GetBundle answer over TLS WITHOUT authenticating the server. A
 *   man in the middle on first contact can hand the agent its own roots and take over every
 *   identity the agent serves; the caller must log that loudly. (After this first answer the
 *   agent authenticates the server against the bundle, as always.)
 *
 * A stored bundle, kept current by syncing, always takes precedence (the caller checks).
 *
 * Errors: `ERR_AGENT_BOOTSTRAP_BUNDLE_INVALID` (a bundle that does not parse, or holds no X.509
 * authority: a fatal configuration problem), `ERR_AGENT_BOOTSTRAP_UNAVAILABLE` (the file, URL or
 * server could not be read: worth retrying for a URL or the server).
 */
import { readFile } from 'node:fs/promises';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import * as bundlev1 from '../../protocol/gen/spire/api/server/bundle/v1/bundle_pb.js';
import type * as types from '../../protocol/gen/spire/api/types/index.js';
import type { TrustDomain } from '../../spiffe/id.js';
import { parseSpiffeBundle } from '../../spiffe/spiffe-bundle.js';
import { parseX509Bundle } from '../../spiffe/x509-bundle.js';
import type { TrustBundleFormat, TrustBundleSource } from '../config.js';
import type { BundleRecord } from '../storage/records.js';
import { bundleFromProto, bundleFromSpiffeBundle } from './convert.js';

/** Largest bootstrap bundle accepted, bytes. */
const MAX_BUNDLE_BYTES = 1 << 20;

function invalid(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_BOOTSTRAP_BUNDLE_INVALID',
    message,
    cause === undefined ? {} : { cause },
  );
}

function unavailable(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_AGENT_BOOTSTRAP_UNAVAILABLE',
    message,
    cause === undefined ? {} : { cause },
  );
}

/**
 * Parses a bootstrap bundle (PEM certificates, or a SPIFFE bundle document) for `trustDomain`.
 *
 * @throws SpireEdgeError `ERR_AGENT_BOOTSTRAP_BUNDLE_INVALID` naming `where`.
 */
export function parseBootstrapBundle(
  data: Uint8Array,
  format: TrustBundleFormat,
  trustDomain: TrustDomain,
  where: string,
): BundleRecord {
  if (data.length > MAX_BUNDLE_BYTES) {
    throw invalid(`${where}: the bundle is larger than ${String(MAX_BUNDLE_BYTES)} bytes`);
  }
  let record: BundleRecord;
  try {
    if (format === 'spiffe') {
      record = bundleFromSpiffeBundle(parseSpiffeBundle(trustDomain, data));
    } else {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(data);
      const b = parseX509Bundle(trustDomain, text);
      record = {
        trustDomain: trustDomain.name,
        x509Authorities: [...b.x509Authorities],
        jwtAuthorities: [],
        refreshHint: 0,
        sequenceNumber: 0,
      };
    }
  } catch (err) {
    throw invalid(`${where}: not a ${format} trust bundle: ${describeError(err)}`, err);
  }
  if (record.x509Authorities.length === 0) {
    throw invalid(`${where}: the trust bundle holds no X.509 authority`);
  }
  return record;
}

/** Options of {@link loadBootstrapBundle}. */
export interface LoadBootstrapBundleOptions {
  readonly trustDomain: TrustDomain;
  /** The agent API, for `insecure` bootstrap. */
  readonly server: { readonly host: string; readonly port: number };
  /** Deadline of a download or an insecure GetBundle, ms (default 30 000). */
  readonly timeoutMs?: number;
  /** Replaces the global `fetch` (tests). */
  readonly fetch?: typeof fetch;
}

/**
 * Loads the bootstrap bundle from its configured source (see the module docs).
 *
 * @throws SpireEdgeError `ERR_AGENT_BOOTSTRAP_BUNDLE_INVALID`, `ERR_AGENT_BOOTSTRAP_UNAVAILABLE`.
 */
export async function loadBootstrapBundle(
  source: TrustBundleSource,
  options: LoadBootstrapBundleOptions,
): Promise<BundleRecord> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  switch (source.kind) {
    case 'path': {
      let data: Buffer;
      try {
        data = await readFile(source.path);
      } catch (err) {
        throw unavailable(
          `could not read trust_bundle_path ${source.path}: ${describeError(err)}`,
          err,
        );
      }
      return parseBootstrapBundle(data, source.format, options.trustDomain, source.path);
    }
    case 'url': {
      const doFetch = options.fetch ?? fetch;
      let data: Uint8Array;
      try {
        const res = await doFetch(source.url, {
          signal: AbortSignal.timeout(timeoutMs),
          redirect: 'error',
        });
        if (res.status !== 200) {
          throw new Error(`the server answered HTTP ${String(res.status)}`);
        }
        data = new Uint8Array(await res.arrayBuffer());
      } catch (err) {
        throw unavailable(
          `could not download trust_bundle_url ${source.url}: ${describeError(err)}`,
          err,
        );
      }
      return parseBootstrapBundle(data, source.format, options.trustDomain, source.url);
    }
    case 'insecure':
      return fetchBundleInsecurely(options.server, options.trustDomain, timeoutMs);
  }
}

/**
 * GetBundle over TLS without authenticating the server (`insecure_bootstrap`): the answer is
 * whatever the peer says. Only the shape is checked.
 *
 * @throws SpireEdgeError `ERR_AGENT_BOOTSTRAP_UNAVAILABLE`, `ERR_AGENT_BOOTSTRAP_BUNDLE_INVALID`.
 */
export async function fetchBundleInsecurely(
  server: { readonly host: string; readonly port: number },
  trustDomain: TrustDomain,
  timeoutMs = 30_000,
): Promise<BundleRecord> {
  const host = server.host.includes(':') ? `[${server.host}]` : server.host;
  const baseUrl = `https://${host}:${String(server.port)}`;
  const nodeOptions = { rejectUnauthorized: false, minVersion: 'TLSv1.2' as const };
  const sessionManager = new Http2SessionManager(baseUrl, {}, nodeOptions);
  const transport = createGrpcTransport({ baseUrl, sessionManager, nodeOptions });
  let answer: types.Bundle;
  try {
    answer = await createClient(bundlev1.Bundle, transport).getBundle({}, { timeoutMs });
  } catch (err) {
    throw unavailable(`could not get the bundle from ${baseUrl}: ${describeError(err)}`, err);
  } finally {
    sessionManager.abort();
  }
  let record: BundleRecord;
  try {
    record = bundleFromProto(answer, trustDomain);
  } catch (err) {
    throw invalid(`the bundle from ${baseUrl} is not usable: ${describeError(err)}`, err);
  }
  if (record.x509Authorities.length === 0) {
    throw invalid(`the bundle from ${baseUrl} holds no X.509 authority`);
  }
  return record;
}
