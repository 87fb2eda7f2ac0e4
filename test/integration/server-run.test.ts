/**
 * `runServer` as `spire-server run` uses it: a configuration file in, a working server out
 * (admin socket, agent API, health, metrics), a clean stop, and a restart that keeps its CA.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { afterAll, describe, expect, it } from 'vitest';
import { attestAgent } from '../../src/agent/attestation/attest-agent.js';
import { createCsr } from '../../src/agent/attestation/csr.js';
import { createJoinTokenAttestorClient } from '../../src/agent/attestation/join-token.js';
import { createAgentApiTransport } from '../../src/agent/attestation/server-transport.js';
import { createUdsTransport } from '../../src/common/grpc.js';
import { agentv1, bundlev1 } from '../../src/protocol/index.js';
import { type RunningServer, runServer, validateServerConfig } from '../../src/server/server.js';
import { X509Bundle } from '../../src/spiffe/x509-bundle.js';
import { verifyX509Svid } from '../../src/spiffe/x509-verify.js';

const dir = mkdtempSync(join(tmpdir(), 'server-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const io = {
  stdout: { write: () => true },
  stderr: { write: (s: string) => logs.push(s) },
  env: { DATA: join(dir, 'data') },
};
const logs: string[] = [];

function writeConfig(extraPlugins = ''): string {
  const path = join(dir, 'server.conf');
  writeFileSync(
    path,
    `
server {
  bind_address = "127.0.0.1"
  bind_port = 0
  socket_path = "${join(dir, 'private', 'api.sock')}"
  trust_domain = "example.org"
  data_dir = "$DATA"
  log_level = "DEBUG"
  ca_ttl = "2h"
  default_x509_svid_ttl = "10m"
}
health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = "0"
}
telemetry {
  Prometheus {
    host = "127.0.0.1"
    port = 0
  }
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
    }
  }
  KeyManager "disk" {
    plugin_data {
      keys_path = "$DATA/keys.json"
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
${extraPlugins}
}
`,
  );
  return path;
}

async function start(): Promise<{ server: RunningServer; stop: () => Promise<number> }> {
  const config = writeConfig();
  const abort = new AbortController();
  let server: RunningServer | undefined;
  const done = runServer({
    flags: { config, expandEnv: true },
    io,
    signal: abort.signal,
    onReady: (s) => {
      server = s;
    },
  });
  for (let i = 0; i < 200 && server === undefined; i++) {
    await Promise.race([done, new Promise((r) => setTimeout(r, 25))]);
  }
  if (server === undefined) throw new Error(`server did not start:\n${logs.join('')}`);
  return {
    server,
    stop: () => {
      abort.abort();
      return done;
    },
  };
}

describe('spire-server run', () => {
  let firstRoots: Uint8Array[] = [];

  it('serves the admin and agent APIs, health and metrics, then stops cleanly', async () => {
    const { server, stop } = await start();
    const socketPath = server.adminServer.socketPath;
    expect(statSync(join(dir, 'private')).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'data', 'datastore.sqlite3')).mode & 0o777).toBe(0o600);

    const admin = createUdsTransport(socketPath);
    const bundle = await createClient(bundlev1.Bundle, admin).getBundle({});
    firstRoots = bundle.x509Authorities.map((a) => new Uint8Array(a.asn1));
    expect(firstRoots.length).toBeGreaterThanOrEqual(1);
    const { value: token } = await createClient(agentv1.Agent, admin).createJoinToken({ ttl: 600 });
    expect(token).toMatch(/^[0-9a-f-]{36}$/);

    // An agent attests over mutual TLS with the join token and gets an SVID that verifies.
    const agentKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const transport = createAgentApiTransport({
      host: '127.0.0.1',
      port: server.agentApiAddress.port,
      trustDomain: 'example.org',
      bundle: firstRoots,
    });
    const result = await attestAgent(transport, createJoinTokenAttestorClient(token), {
      csr: createCsr(agentKey.privateKey),
    });
    expect(result.svid.id).toBe(`spiffe://example.org/spire/agent/join_token/${token}`);
    const verified = verifyX509Svid(
      result.svid.certChain,
      new X509Bundle('example.org', firstRoots),
    );
    expect(verified.id.toString()).toBe(result.svid.id);
    // The token was single use.
    await expect(
      attestAgent(transport, createJoinTokenAttestorClient(token), {
        csr: createCsr(agentKey.privateKey),
      }),
    ).rejects.toThrow();

    const health = server.healthAddress!;
    const live = await fetch(`http://127.0.0.1:${health.port}/live`);
    expect(live.status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${health.port}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true });
    expect((await fetch(`http://127.0.0.1:${health.port}/nope`)).status).toBe(404);

    const metrics = await (
      await fetch(`http://127.0.0.1:${server.metricsAddress!.port}/metrics`)
    ).text();
    expect(metrics).toMatch(
      /spire_edge_server_node_attestations_total\{attestor="join_token",result="ok"\} 1/,
    );
    expect(metrics).toMatch(/spire_edge_server_svids_issued_total\{type="x509",caller="agent"\} 1/);
    expect(metrics).toContain('spire_edge_server_datastore_latency_seconds_bucket');

    // Logs carry the token only inside the (consumed, now useless) agent ID, as SPIRE's do.
    const text = logs.join('');
    expect(text.split(token).length - 1).toBe(text.split(`join_token/${token}`).length - 1);

    await transport.close?.();
    await admin.close?.();
    expect(await stop()).toBe(0);
    expect(existsSync(socketPath)).toBe(false);
  });

  it('a restart on the same data_dir keeps the CA (same roots, no new key)', async () => {
    const { server, stop } = await start();
    const admin = createUdsTransport(server.adminServer.socketPath);
    const bundle = await createClient(bundlev1.Bundle, admin).getBundle({});
    const roots = bundle.x509Authorities.map((a) => Buffer.from(a.asn1).toString('hex'));
    expect(roots).toEqual(firstRoots.map((r) => Buffer.from(r).toString('hex')));
    await admin.close?.();
    expect(await stop()).toBe(0);
  });

  it('validate names a bad key with its line, and a missing x509pop bundle file', async () => {
    const bad = join(dir, 'bad.conf');
    writeFileSync(
      bad,
      'server {\n  trust_domain = "example.org"\n  data_dir = "/tmp/x"\n  bind_prot = 1\n}\n',
    );
    await expect(validateServerConfig({ flags: { config: bad }, io })).rejects.toThrow(
      /bad\.conf:4.*bind_prot/,
    );
    const path = writeConfig(
      'NodeAttestor "x509pop" {\n  plugin_data {\n    ca_bundle_path = "/nonexistent/ca.pem"\n  }\n}\n',
    );
    await expect(
      validateServerConfig({ flags: { config: path, expandEnv: true }, io }),
    ).rejects.toThrow(/x509pop.*\/nonexistent\/ca\.pem/);
    // SPIRE's usual ca_bundle_path is PEM: it loads.
    const caPem = join(dir, 'x509pop-ca.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, 'x509pop-ca.key'),
        '-out',
        caPem,
        '-subj',
        '/CN=x509pop CA',
        '-days',
        '1',
      ],
      { stdio: 'ignore' },
    );
    const ok = writeConfig(
      `NodeAttestor "x509pop" {\n  plugin_data {\n    ca_bundle_path = "${caPem}"\n  }\n}\n`,
    );
    const cfg = await validateServerConfig({ flags: { config: ok, expandEnv: true }, io });
    expect(cfg.plugins.nodeAttestors.map((n) => n.name)).toContain('x509pop');
  });
});
