/**
 * Fixtures for the admin API tests: a real SQLite datastore in a temp dir, a real CA manager
 * (memory KeyManager) whose bundle is written to the datastore as the server does, a
 * ServerContext that records logs and metrics, handler contexts for calling service methods
 * directly, and CSRs built with an independent encoder (@peculiar/x509).
 */
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  DescMessage,
  DescMethod,
  DescService,
  MessageInitShape,
  MessageShape,
} from '@bufbuild/protobuf';
import {
  createContextValues,
  createHandlerContext,
  type HandlerContext,
} from '@connectrpc/connect';
import { expect } from 'vitest';
import { systemClock } from '../../../../src/common/clock.js';
import { createLogger } from '../../../../src/common/log.js';
import { cryptoRandom } from '../../../../src/common/random.js';
import { MemoryKeyManager } from '../../../../src/hsm/memory.js';
import { type AdminCaller, kAdminCaller } from '../../../../src/server/api/admin/authorize.js';
import { MemoryJournalStore } from '../../../../src/server/ca/journal.js';
import { CaManager } from '../../../../src/server/ca/manager.js';
import type { ServerContext, ServerMetrics } from '../../../../src/server/context.js';
import { openDataStore } from '../../../../src/server/datastore/index.js';
import type { DataStore } from '../../../../src/server/datastore/types.js';
import { parseTrustDomain } from '../../../../src/spiffe/id.js';
import { px } from '../../spiffe/x509-support.js';

export const TD = 'example.org';

/** The plain-object initializer of a message (without the full-message alternative). */
export type Init<D extends DescMessage> = Exclude<MessageInitShape<D>, MessageShape<D>>;

/**
 * A List…Request filter initializer reused for the matching Count…Request (the two filter
 * messages have the same fields; only their type names differ).
 */
export function sameFilter<T>(filter: unknown): T {
  return filter as T;
}

/** What the metrics saw. */
export interface RecordedMetrics {
  svids: Array<{ type: 'x509' | 'jwt'; caller: 'agent' | 'admin'; count: number }>;
}

/** A running fixture: context, datastore, CA manager, captured log lines. */
export interface AdminFixture {
  readonly dir: string;
  readonly context: ServerContext;
  readonly ds: DataStore;
  readonly manager: CaManager;
  readonly logs: string[];
  readonly metrics: RecordedMetrics;
  close(): Promise<void>;
}

/**
 * Opens a datastore under a fresh temp dir, starts a CA manager and stores its authorities
 * as the trust domain's bundle (what the server's wiring does on every bundle change).
 */
export async function startAdminFixture(): Promise<AdminFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'admin-api-'));
  const ds = await openDataStore({
    databaseType: 'sqlite3',
    connectionString: join(dir, 'datastore.sqlite3'),
  });
  const manager = await CaManager.start({
    trustDomain: TD,
    keyManager: new MemoryKeyManager(),
    journalStore: new MemoryJournalStore(),
  });
  const b = manager.bundle;
  await ds.appendBundle({
    trustDomain: TD,
    x509Authorities: b.x509Authorities.map((a) => ({ certificateDer: a.certificate })),
    jwtAuthorities: b.jwtAuthorities.map((k) => ({
      keyId: k.keyId,
      publicKeyDer: k.publicKeySpki,
      notAfter: Math.floor(k.notAfter.getTime() / 1000),
    })),
  });
  const logs: string[] = [];
  const metrics: RecordedMetrics = { svids: [] };
  const recording: ServerMetrics = {
    svidIssued: (type, caller, count = 1) => metrics.svids.push({ type, caller, count }),
    attestation() {},
    datastoreLatency() {},
    authorizedEntriesCacheSize() {},
    caRotation() {},
  };
  const context: ServerContext = {
    trustDomain: parseTrustDomain(TD),
    dataStore: ds,
    ca: manager.ca,
    clock: systemClock,
    random: cryptoRandom,
    log: createLogger({ level: 'debug', format: 'json', write: (l) => logs.push(l) }),
    metrics: recording,
    defaultX509SvidTtl: 3600,
    defaultJwtSvidTtl: 300,
    agentTtl: 3600,
  };
  return {
    dir,
    context,
    ds,
    manager,
    logs,
    metrics,
    async close() {
      await manager.close();
      await ds.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The caller the unit tests pretend to be (what the admin socket's authorizer records). */
export const ROOT_CALLER: AdminCaller = { kind: 'unix', uid: 0, gid: 0, pid: 4242 };

/** A handler context for calling `service.method` directly, as `caller`. */
export function handlerContext(
  service: DescService,
  method: string,
  caller: AdminCaller | undefined = ROOT_CALLER,
): HandlerContext {
  const m: DescMethod | undefined = service.methods.find((x) => x.localName === method);
  if (m === undefined) throw new TypeError(`no method ${method} on ${service.typeName}`);
  const values = createContextValues();
  if (caller !== undefined) values.set(kAdminCaller, caller);
  return createHandlerContext({
    service,
    method: m,
    protocolName: 'grpc',
    requestMethod: 'POST',
    url: `http://localhost/${service.typeName}/${m.name}`,
    contextValues: values,
  });
}

/** Runs `fn` and returns the coded error it throws (fails the test if it does not throw). */
export async function rejection(fn: () => unknown): Promise<{ code: string; message: string }> {
  try {
    await fn();
  } catch (err) {
    return err as { code: string; message: string };
  }
  expect.fail('expected a rejection');
}

/** Options of {@link makeCsr}. */
export interface CsrOptions {
  uris?: string[];
  dnsNames?: string[];
  subject?: string;
}

/** A PKCS#10 request (DER) signed by a fresh P-256 key, with the given SANs. */
export async function makeCsr(opts: CsrOptions = {}): Promise<Uint8Array> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const names = [
    ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  const csr = await px.Pkcs10CertificateRequestGenerator.create({
    name: opts.subject ?? 'CN=test',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: names.length === 0 ? [] : [new px.SubjectAlternativeNameExtension(names)],
  });
  return new Uint8Array(csr.rawData);
}

/** Every log line as parsed JSON. */
export function parsedLogs(logs: readonly string[]): Array<Record<string, unknown>> {
  return logs.map((l) => JSON.parse(l) as Record<string, unknown>);
}
