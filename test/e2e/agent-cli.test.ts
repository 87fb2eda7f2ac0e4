/**
 * `./bin/spire-agent` as real processes (bin/launch.js loading dist/agent/cli/main.js), as a
 * workload's operator runs it, against a Workload API server in this test process with the
 * real `unix` attestor (the child's SO_PEERCRED uid selects its entry): `api fetch x509 -write
 * DIR` writes files that `openssl verify` accepts against the written bundle, with the key
 * matching the certificate and SPIRE's modes; `SPIFFE_ENDPOINT_SOCKET`; `healthcheck`; and
 * the exit code and text of a caller without an identity.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryIdentitySource } from '../../src/agent/workload-api/memory-identity-source.js';
import {
  startWorkloadApiServer,
  type WorkloadApiServer,
} from '../../src/agent/workload-api/server.js';
import { combineWorkloadAttestors } from '../../src/agent/workload-attestors/combine.js';
import { createUnixWorkloadAttestor } from '../../src/agent/workload-attestors/unix.js';
import { type Domain, makeDomain, mintEntry } from '../unit/agent/cli/support.js';
import { ensureBuilt, ROOT, runCommand, SPIRE_AGENT } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'e2e-agent-cli-'));
chmodSync(dir, 0o755);
const socketPath = join(dir, 'public', 'api.sock');
const UID = process.geteuid!();

let own: Domain;
let partner: Domain;
let source: MemoryIdentitySource;
let server: WorkloadApiServer;

const spireAgent = (args: string[], env: Record<string, string> = {}) =>
  runCommand(SPIRE_AGENT, args, { env });

function openssl(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error !== undefined) {
    throw new Error(`openssl is not available (run scripts/setup.sh): ${r.error.message}`);
  }
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

beforeAll(async () => {
  ensureBuilt(join(ROOT, 'dist', 'agent', 'cli', 'main.js'));
  own = await makeDomain('example.org');
  partner = await makeDomain('partner.example');
  source = new MemoryIdentitySource({ bundle: own.bundles });
  source.setFederatedBundle(partner.bundles);
  source.upsert(
    await mintEntry(own, 'workload', [`unix:uid:${UID}`], { federatesWith: ['partner.example'] }),
  );
  server = await startWorkloadApiServer({
    socketPath,
    source,
    attestor: combineWorkloadAttestors([createUnixWorkloadAttestor()]),
  });
}, 240_000);

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('./bin/spire-agent as a process', () => {
  it('api fetch x509 -write DIR: files openssl verifies, key matching the certificate, SPIRE modes', async () => {
    const out = join(dir, 'out');
    mkdirSync(out);
    const r = await spireAgent(['api', 'fetch', 'x509', '-write', out, '-socketPath', socketPath]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^Received 1 svid after \d+(\.\d+)?(µs|ms|s)\n\nSPIFFE ID:\t\tspiffe:\/\/example\.org\/workload\n/,
    );
    expect(r.out).toContain(`Writing SVID #0 to file ${out}/svid.0.pem.\n`);
    expect(r.out).toContain(
      `Writing federated bundle #0 for trust domain spiffe://partner.example to file ${out}/federated_bundle.0.0.pem.\n`,
    );
    expect(readdirSync(out).sort()).toEqual([
      'bundle.0.pem',
      'federated_bundle.0.0.pem',
      'svid.0.key',
      'svid.0.pem',
    ]);

    const verified = openssl([
      'verify',
      '-CAfile',
      join(out, 'bundle.0.pem'),
      join(out, 'svid.0.pem'),
    ]);
    expect(verified.out.trim()).toBe(`${join(out, 'svid.0.pem')}: OK`);
    expect(verified.code).toBe(0);
    // the federated bundle is another trust domain's CA: it must not verify this SVID
    const foreign = openssl([
      'verify',
      '-CAfile',
      join(out, 'federated_bundle.0.0.pem'),
      join(out, 'svid.0.pem'),
    ]);
    expect(foreign.code).not.toBe(0);

    const certKey = openssl(['x509', '-noout', '-pubkey', '-in', join(out, 'svid.0.pem')]);
    const keyPub = openssl(['pkey', '-pubout', '-in', join(out, 'svid.0.key')]);
    expect(certKey.code).toBe(0);
    expect(keyPub.code).toBe(0);
    expect(keyPub.out).toBe(certKey.out);
    const san = openssl([
      'x509',
      '-noout',
      '-ext',
      'subjectAltName',
      '-in',
      join(out, 'svid.0.pem'),
    ]);
    expect(san.out).toContain('URI:spiffe://example.org/workload');

    expect(statSync(join(out, 'svid.0.key')).mode & 0o777).toBe(0o600);
    // 0644 less the umask of the child (inherited from this process)
    const umask = process.umask();
    expect(statSync(join(out, 'svid.0.pem')).mode & 0o777).toBe(0o644 & ~umask);
  });

  it('honours SPIFFE_ENDPOINT_SOCKET and prints JSON', async () => {
    const r = await spireAgent(['api', 'fetch', 'x509', '-output', 'json'], {
      SPIFFE_ENDPOINT_SOCKET: `unix://${socketPath}`,
    });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out) as { svids: Array<{ spiffe_id: string }> };
    expect(json.svids.map((s) => s.spiffe_id)).toEqual(['spiffe://example.org/workload']);
  });

  it('healthcheck: healthy with a socket, unhealthy (exit 1) without', async () => {
    expect(await spireAgent(['healthcheck', '-socketPath', socketPath])).toEqual({
      code: 0,
      out: 'Agent is healthy.\n',
      err: '',
    });
    expect(await spireAgent(['healthcheck', '-socketPath', join(dir, 'none.sock')])).toEqual({
      code: 1,
      out: '',
      err: 'Agent is unhealthy: unable to determine health\n',
    });
  });

  it('a caller without an identity gets PermissionDenied and exit 1', async () => {
    const saved = source.entries();
    for (const e of saved) source.remove(e.entryId);
    try {
      expect(
        await spireAgent(['api', 'fetch', 'jwt', '-audience', 'x', '-socketPath', socketPath]),
      ).toEqual({
        code: 1,
        out: '',
        err: 'rpc error: code = PermissionDenied desc = no identity issued\n',
      });
    } finally {
      for (const e of saved) source.upsert(e);
    }
  });
});
