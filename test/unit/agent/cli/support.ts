/**
 * Helpers for the `spire-agent` CLI tests: run `main` with captured streams, and a real
 * Workload API server (`startWorkloadApiServer` on a Unix socket in a temp dir, real
 * SO_PEERCRED + pidfd) over a `MemoryIdentitySource` holding SVIDs minted under a CA made here,
 * with an attestor that answers the selectors the test sets.
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../../src/agent/cli/main.js';
import {
  type MemoryIdentityEntry,
  MemoryIdentitySource,
} from '../../../../src/agent/workload-api/memory-identity-source.js';
import {
  startWorkloadApiServer,
  type WorkloadApiServer,
} from '../../../../src/agent/workload-api/server.js';
import type { Selector } from '../../../../src/agent/workload-attestors/selector.js';
import type { WorkloadAttestor } from '../../../../src/agent/workload-attestors/workload-attestor.js';
import type { CliCommand } from '../../../../src/common/cli/command-tree.js';
import { type CliIo, StringWriter } from '../../../../src/common/cli/io.js';
import type { Signer } from '../../../../src/common/signer.js';
import { JwtBundle } from '../../../../src/spiffe/jwt-bundle.js';
import { mintJwtSvid } from '../../../../src/spiffe/jwt-svid.js';
import { X509Bundle } from '../../../../src/spiffe/x509-bundle.js';
import { mintX509CaCertificate, X509SvidMinter } from '../../../../src/spiffe/x509-mint.js';
import { memorySigner } from '../../spiffe/x509-support.js';

export const HOUR = 3600_000;

/** What one CLI invocation printed and returned. */
export interface CliResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Options of {@link runCli}. */
export interface RunCliOptions {
  readonly env?: Record<string, string>;
  readonly cwd?: string;
}

function captureIo(opts: RunCliOptions) {
  const stdout = new StringWriter();
  const stderr = new StringWriter();
  const io: CliIo = {
    stdout,
    stderr,
    stdin: (async function* () {})(),
    env: opts.env ?? {},
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
  };
  return { io, stdout, stderr };
}

/** Runs `spire-agent <args>` in-process with captured stdout/stderr. */
export async function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const { io, stdout, stderr } = captureIo(opts);
  const code = await main(args, io);
  return { code, out: stdout.text, err: stderr.text };
}

/** Runs one command object (for options `main` cannot pass, such as a stop signal). */
export async function runCommandObject(
  command: CliCommand,
  args: string[],
  opts: RunCliOptions = {},
): Promise<CliResult & { stdout: StringWriter; stderr: StringWriter }> {
  const { io, stdout, stderr } = captureIo(opts);
  const code = await command.run(args, io);
  return { code, out: stdout.text, err: stderr.text, stdout, stderr };
}

/** A temporary directory removed by `cleanup`. */
export function tempDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A trust domain with a CA made by the library and a JWT signing key. */
export interface Domain {
  readonly name: string;
  readonly minter: X509SvidMinter;
  /** The root CA (the bundle's only authority). */
  readonly caDer: Uint8Array;
  readonly caNotBefore: Date;
  readonly caNotAfter: Date;
  /** The intermediate CA that signs SVIDs, when made with `{ intermediate: true }`. */
  readonly intermediate?: { der: Uint8Array; notBefore: Date; notAfter: Date };
  readonly jwtSigner: Signer;
  readonly bundles: { x509: X509Bundle; jwt: JwtBundle };
}

/** Whole seconds (certificates hold no finer time). */
export const seconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

/** Go's `time.Time.String()` of a UTC instant, computed independently of the code under test. */
export const goUtc = (d: Date) => `${d.toISOString().replace('T', ' ').slice(0, 19)} +0000 UTC`;

export async function makeDomain(
  name: string,
  { intermediate = false }: { intermediate?: boolean } = {},
): Promise<Domain> {
  const caSigner = memorySigner('ec-p256');
  const now = Date.now();
  const caNotBefore = seconds(now - HOUR);
  const caNotAfter = seconds(now + 48 * HOUR);
  const caDer = await mintX509CaCertificate({
    trustDomain: name,
    subject: { country: ['US'], organization: ['SPIFFE'] },
    publicKey: caSigner.publicKey,
    notBefore: caNotBefore,
    notAfter: caNotAfter,
    signer: caSigner,
  });
  const jwtSigner = memorySigner('ec-p256');
  const jwt = new JwtBundle(name);
  jwt.addJwtAuthority(`${name}-jwt`, jwtSigner.publicKey);
  const bundles = { x509: new X509Bundle(name, [caDer]), jwt };
  if (!intermediate) {
    return {
      name,
      minter: new X509SvidMinter({ issuerCertDer: caDer, signer: caSigner }),
      caDer,
      caNotBefore,
      caNotAfter,
      jwtSigner,
      bundles,
    };
  }
  const interSigner = memorySigner('ec-p256');
  const notBefore = seconds(now - HOUR / 2);
  const notAfter = seconds(now + 24 * HOUR);
  const der = await mintX509CaCertificate({
    trustDomain: name,
    subject: { country: ['US'], organization: ['SPIFFE'], commonName: 'intermediate' },
    publicKey: interSigner.publicKey,
    notBefore,
    notAfter,
    signer: caSigner,
    issuerCertDer: caDer,
  });
  return {
    name,
    minter: new X509SvidMinter({ issuerCertDer: der, signer: interSigner }),
    caDer,
    caNotBefore,
    caNotAfter,
    intermediate: { der, notBefore, notAfter },
    jwtSigner,
    bundles,
  };
}

/** Parses `type:value` (split at the first colon). */
export function selector(s: string): Selector {
  const i = s.indexOf(':');
  return { type: s.slice(0, i), value: s.slice(i + 1) };
}

/** An entry with a freshly minted X509-SVID of `domain`. */
export async function mintEntry(
  domain: Domain,
  id: string,
  selectors: string[],
  over: Partial<MemoryIdentityEntry> & { notBefore?: Date; notAfter?: Date } = {},
): Promise<MemoryIdentityEntry & { notBefore: Date; notAfter: Date }> {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = Date.now();
  const notBefore = over.notBefore ?? seconds(now - 10_000);
  const notAfter = over.notAfter ?? seconds(now + HOUR);
  const spiffeId = over.spiffeId ?? `spiffe://${domain.name}/${id}`;
  const cert = await domain.minter.mint({
    spiffeId,
    publicKey: key.publicKey,
    notBefore,
    notAfter,
  });
  const { notBefore: _a, notAfter: _b, ...rest } = over;
  return {
    entryId: id,
    entryCreatedAt: 1,
    spiffeId,
    certChain: domain.intermediate === undefined ? [cert] : [cert, domain.intermediate.der],
    privateKeyPkcs8: new Uint8Array(key.privateKey.export({ format: 'der', type: 'pkcs8' })),
    hint: '',
    expiresAt: notAfter,
    federatesWith: [],
    selectors: selectors.map(selector),
    ...rest,
    notBefore,
    notAfter,
  };
}

/** A running Workload API with a settable caller identity. */
export interface TestWorkloadApi {
  readonly socketPath: string;
  readonly dir: string;
  readonly source: MemoryIdentitySource;
  readonly server: WorkloadApiServer;
  /** The selectors every caller is attested to (default `test:caller`). */
  selectors: Selector[];
  close(): Promise<void>;
}

/** Starts the Workload API for `own` (and `federated` bundles) on a socket in a temp dir. */
export async function startTestWorkloadApi(
  own: Domain,
  federated: readonly Domain[] = [],
): Promise<TestWorkloadApi> {
  const tmp = tempDir('agent-cli-');
  chmodSync(tmp.dir, 0o755);
  const socketPath = join(tmp.dir, 'api.sock');
  const source = new MemoryIdentitySource({
    bundle: own.bundles,
    mintJwtSvid: async (identity, audience) => {
      const expiresAt = seconds(Date.now() + 5 * 60_000);
      const token = await mintJwtSvid({
        signer: own.jwtSigner,
        keyId: `${own.name}-jwt`,
        spiffeId: identity.spiffeId,
        audience,
        expiresAt,
      });
      return { token, expiresAt };
    },
  });
  for (const d of federated) source.setFederatedBundle(d.bundles);
  const api: TestWorkloadApi = {
    socketPath,
    dir: tmp.dir,
    source,
    selectors: [selector('test:caller')],
    server: undefined as unknown as WorkloadApiServer,
    async close() {
      await server.close();
      tmp.cleanup();
    },
  };
  const attestor: WorkloadAttestor = {
    name: 'test',
    attest: async () => api.selectors,
  };
  const server = await startWorkloadApiServer({
    socketPath,
    source,
    attestor,
    attestationCacheMs: 0,
    shutdownGraceMs: 100,
  });
  (api as { server: WorkloadApiServer }).server = server;
  return api;
}
