/**
 * Device registration over the network, as an operator and a device run it, all real
 * processes: `./bin/spire-server run` with `NodeAttestor "tpm"` (ek_ca_path = the swtpm
 * harness's EK CA), `spire-server enrollment token generate`, two swtpms, and
 * `./bin/tpm-enroll -serverAddress … -provisioningToken …` on the server's agent API port.
 *
 * Checks: the node alias entry appears (`entry show`: parent spire/server, selector
 * tpm:pub_hash:<hash>); the same token again is refused as used; another device on the same
 * alias is refused naming the conflict, and rebinds with a `-replace` token; an expired token
 * is refused with the same message; the wrong trust bundle fails the TLS handshake before the
 * token is sent; the token never appears in the server's log or in `enrollment token list`.
 * The token reaches tpm-enroll through the environment, a file, and the flag.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';
import {
  agentApiPort,
  ensureBuilt,
  entryIdOf,
  ROOT,
  runCommand,
  type ServiceProcess,
  serverCommand,
  startServerProcess,
  TPM_ENROLL,
  writeServerConfig,
} from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'e2e-tpm-enroll-net-'));
const ALIAS = 'spiffe://example.org/gw/1';
let server: ServiceProcess;
let tpmA: SwtpmInstance;
let tpmB: SwtpmInstance;
let spire: ReturnType<typeof serverCommand>;
let port: number;
const bundlePath = join(dir, 'bundle.pem');

beforeAll(async () => {
  ensureBuilt(join(ROOT, 'dist', 'enroll', 'main.js'));
  [tpmA, tpmB] = await Promise.all([startSwtpm(), startSwtpm({ uniqueEk: true })]);
  writeFileSync(
    join(dir, 'ek-ca.pem'),
    tpmA.ekCaCertPaths.map((p) => readFileSync(p, 'utf8')).join('\n'),
  );
  const { path, socketPath } = writeServerConfig({
    dir,
    extraPlugins: `  NodeAttestor "tpm" {
    plugin_data {
      ek_ca_path = "${join(dir, 'ek-ca.pem')}"
    }
  }`,
  });
  server = await startServerProcess(path, socketPath);
  spire = serverCommand(socketPath);
  port = agentApiPort(server);
  const b = await spire('bundle', 'show');
  expect(b.code).toBe(0);
  writeFileSync(bundlePath, b.out);
}, 240_000);

afterAll(async () => {
  await Promise.all([tpmA?.stop(), tpmB?.stop()]);
  expect(await server?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

async function generate(...extra: string[]): Promise<string> {
  const r = await spire('enrollment', 'token', 'generate', '-spiffeID', ALIAS, ...extra);
  const token = /^Token: (\S+)$/m.exec(r.out)?.[1];
  if (r.code !== 0 || token === undefined) {
    throw new Error(`enrollment token generate failed (${String(r.code)}): ${r.out}${r.err}`);
  }
  return token;
}

/** `./bin/tpm-enroll … -serverAddress` with the token in the environment (out of `ps`). */
function enroll(tpm: SwtpmInstance, token: string, ...extra: string[]) {
  return runCommand(
    TPM_ENROLL,
    [
      '-tcti',
      tpm.tcti,
      '-pcrs',
      'none',
      '-serverAddress',
      '127.0.0.1',
      '-serverPort',
      String(port),
      '-trustBundle',
      bundlePath,
      '-spiffeID',
      ALIAS,
      ...extra,
    ],
    { env: { SPIRE_EDGE_PROVISIONING_TOKEN: token } },
  );
}

describe('tpm-enroll -serverAddress against spire-server run', () => {
  let hashA: string;
  let entryId: string;

  it('registers the device: entry show lists the node alias entry with its pub_hash', async () => {
    const token = await generate();
    const r = await enroll(tpmA, token, '-output', 'json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out) as {
      pub_hash: string;
      registration: { outcome: string; entry_id: string; spiffe_id: string };
    };
    hashA = doc.pub_hash;
    expect(doc.registration).toMatchObject({ outcome: 'created', spiffe_id: ALIAS });
    const show = await spire('entry', 'show', '-spiffeID', ALIAS);
    expect(show.code).toBe(0);
    expect(show.out).toMatch(/^Found 1 entry\n/);
    entryId = entryIdOf(show.out);
    expect(entryId).toBe(doc.registration.entry_id);
    expect(show.out).toMatch(/^Parent ID\s+: spiffe:\/\/example\.org\/spire\/server$/m);
    expect(show.out).toMatch(new RegExp(`^Selector\\s+: tpm:pub_hash:${hashA}$`, 'm'));

    // The same token a second time: used.
    const again = await enroll(tpmA, token);
    expect(again.code).toBe(1);
    expect(again.err).toBe(
      'Error: rpc error: code = PermissionDenied desc = provisioning token is unknown, used or expired\n',
    );
    // The server logged the enrollment, never the token.
    expect(server.output()).toMatch(
      new RegExp(
        `msg="device enrolled".*spiffe_id=${ALIAS.replaceAll('/', '\\/')}.*pub_hash=${hashA}.*outcome=created.*peer_address=127\\.0\\.0\\.1`,
      ),
    );
    expect(server.output()).not.toContain(token);
  });

  it('is idempotent for the same device with a new token (token from a file)', async () => {
    const file = join(dir, 'token-again');
    writeFileSync(file, `${await generate()}\n`, { mode: 0o600 });
    const r = await enroll(tpmA, '', '-provisioningTokenFile', file);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      `Already registered: ${ALIAS} is bound to tpm:pub_hash:${hashA} (entry ${entryId}); nothing changed`,
    );
  });

  it('refuses another device on the alias, naming the conflict, then rebinds it with a -replace token', async () => {
    const r = await enroll(tpmB, await generate());
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `Error: rpc error: code = FailedPrecondition desc = ${ALIAS} is already bound to another device (pub_hash ${hashA}, entry ${entryId}): generate a provisioning token with -replace to rebind it (this token is now used)\n`,
    );
    const list = await spire('enrollment', 'token', 'list');
    expect(list.out).toBe('Found 0 provisioning tokens\n');

    const replace = await generate('-replace');
    const listed = await spire('enrollment', 'token', 'list', '-output', 'json');
    expect(listed.out).toContain('"replace":true');
    expect(listed.out).not.toContain(replace);
    const ok = await enroll(tpmB, replace, '-output', 'json');
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    const doc = JSON.parse(ok.out) as {
      pub_hash: string;
      registration: { outcome: string; entry_id: string; previous_pub_hashes: string[] };
    };
    expect(doc.pub_hash).not.toBe(hashA);
    expect(doc.registration).toEqual(
      expect.objectContaining({
        outcome: 'replaced',
        entry_id: entryId,
        previous_pub_hashes: [hashA],
      }),
    );
    const show = await spire('entry', 'show', '-spiffeID', ALIAS);
    expect(show.out).toMatch(new RegExp(`^Selector\\s+: tpm:pub_hash:${doc.pub_hash}$`, 'm'));
    expect(show.out).not.toContain(hashA);
  });

  it('refuses an expired token with the same message', async () => {
    const token = await generate('-ttl', '1');
    await new Promise((r) => setTimeout(r, 2_100));
    const r = await enroll(tpmB, token);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      'Error: rpc error: code = PermissionDenied desc = provisioning token is unknown, used or expired\n',
    );
  });

  it('refuses a server that does not chain to -trustBundle (TLS), spending no token', async () => {
    const wrong = join(dir, 'wrong-bundle.pem');
    writeFileSync(wrong, readFileSync(tpmA.ekCaCertPaths[0], 'utf8'));
    const token = await generate();
    const r = await runCommand(TPM_ENROLL, [
      '-tcti',
      tpmA.tcti,
      '-pcrs',
      'none',
      '-serverAddress',
      '127.0.0.1',
      '-serverPort',
      String(port),
      '-trustBundle',
      wrong,
      '-spiffeID',
      ALIAS,
      '-provisioningToken',
      token,
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `Error: the server at 127.0.0.1:${port} is not trusted (check -trustBundle): self-signed certificate in certificate chain\n`,
    );
    // The token never reached the server: it still works with the right bundle.
    const ok = await enroll(tpmB, token);
    expect(ok.err).toBe('');
    expect(ok.out).toContain(`Already registered: ${ALIAS}`);
  });
});
