/**
 * Helpers for the `spire-server` CLI tests: run `main` with captured streams, a gRPC server on a
 * real Unix socket with fake service handlers (to check requests and exact output), and a real
 * admin server over a real SQLite datastore and CA manager (memory KeyManager).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectRouter } from '@connectrpc/connect';
import { type CliIo, StringWriter } from '../../../../src/common/cli/io.js';
import { systemClock } from '../../../../src/common/clock.js';
import { type GrpcServer, startGrpcServer } from '../../../../src/common/grpc.js';
import { nullLogger } from '../../../../src/common/log.js';
import { cryptoRandom } from '../../../../src/common/random.js';
import { MemoryKeyManager } from '../../../../src/hsm/memory.js';
import { type AdminServer, startAdminServer } from '../../../../src/server/api/admin/index.js';
import { MemoryJournalStore } from '../../../../src/server/ca/journal.js';
import { CaManager } from '../../../../src/server/ca/manager.js';
import { main } from '../../../../src/server/cli/main.js';
import { noMetrics, type ServerContext } from '../../../../src/server/context.js';
import { openDataStore } from '../../../../src/server/datastore/index.js';
import type { DataStore } from '../../../../src/server/datastore/types.js';
import { parseTrustDomain } from '../../../../src/spiffe/id.js';

/** What one CLI invocation printed and returned. */
export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Options of {@link runCli}. */
export interface RunCliOptions {
  readonly stdin?: string;
  readonly env?: Record<string, string>;
  readonly cwd?: string;
}

/** Runs `spire-server <args>` in-process with captured stdout/stderr. */
export async function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const stdout = new StringWriter();
  const stderr = new StringWriter();
  const input = opts.stdin ?? '';
  const io: CliIo = {
    stdout,
    stderr,
    stdin: (async function* () {
      if (input !== '') yield Buffer.from(input);
    })(),
    env: opts.env ?? {},
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
  };
  const code = await main(args, io);
  return { code, out: stdout.text, err: stderr.text };
}

/** A temporary directory removed by `cleanup`. */
export function tempDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A gRPC server with the given (fake) services on a Unix socket in a temp dir. */
export async function startFakeServer(
  routes: (router: ConnectRouter) => void,
): Promise<{ socketPath: string; close(): Promise<void> }> {
  const tmp = tempDir('cli-fake-');
  const socketPath = join(tmp.dir, 'api.sock');
  const server: GrpcServer = await startGrpcServer({
    routes,
    listen: { socketPath },
    shutdownGraceMs: 100,
  });
  return {
    socketPath,
    async close() {
      await server.close();
      tmp.cleanup();
    },
  };
}

/** The trust domain of the real admin fixture. */
export const TD = 'example.org';

/** A real admin server: SQLite datastore, CA manager, the admin API on a Unix socket. */
export interface RealAdmin {
  readonly dir: string;
  readonly socketPath: string;
  readonly dataStore: DataStore;
  close(): Promise<void>;
}

/** Starts {@link RealAdmin} in a fresh temp dir. */
export async function startRealAdmin(): Promise<RealAdmin> {
  const tmp = tempDir('cli-admin-');
  const dataStore = await openDataStore({
    databaseType: 'sqlite3',
    connectionString: join(tmp.dir, 'datastore.sqlite3'),
  });
  const manager = await CaManager.start({
    trustDomain: TD,
    keyManager: new MemoryKeyManager(),
    journalStore: new MemoryJournalStore(),
  });
  const b = manager.bundle;
  await dataStore.appendBundle({
    trustDomain: TD,
    x509Authorities: b.x509Authorities.map((a) => ({ certificateDer: a.certificate })),
    jwtAuthorities: b.jwtAuthorities.map((k) => ({
      keyId: k.keyId,
      publicKeyDer: k.publicKeySpki,
      notAfter: Math.floor(k.notAfter.getTime() / 1000),
    })),
  });
  const context: ServerContext = {
    trustDomain: parseTrustDomain(TD),
    dataStore,
    ca: manager.ca,
    clock: systemClock,
    random: cryptoRandom,
    log: nullLogger,
    metrics: noMetrics,
    defaultX509SvidTtl: 3600,
    defaultJwtSvidTtl: 300,
    agentTtl: 3600,
  };
  const socketPath = join(tmp.dir, 'private', 'api.sock');
  const server: AdminServer = await startAdminServer({
    context,
    socketPath,
    shutdownGraceMs: 200,
  });
  return {
    dir: tmp.dir,
    socketPath,
    dataStore,
    async close() {
      await server.close();
      await manager.close();
      await dataStore.close();
      tmp.cleanup();
    },
  };
}
