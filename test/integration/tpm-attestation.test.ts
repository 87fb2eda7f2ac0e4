/**
 * TPM node attestation end to end with real parts: a manufactured swtpm (EK certificate from
 * the harness's local CA), a spire-server started in this process from a config file with
 * `NodeAttestor "tpm"`, and the agent's tpm attestor over the native TPM adapter driving a real
 * AttestAgent stream. Checks the agent ID against tpm2_createek's key, the stored node
 * selectors against tpm2_pcrread, re-attestation with the same AK, and refusals (changed PCR
 * value, replayed response, unenrolled EK when enrollment is required) with nothing issued.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attestAgent } from '../../src/agent/attestation/attest-agent.js';
import { createCsr } from '../../src/agent/attestation/csr.js';
import type { AgentNodeAttestor } from '../../src/agent/attestation/node-attestor.js';
import { createAgentApiTransport } from '../../src/agent/attestation/server-transport.js';
import {
  createTpmAttestorClient,
  fileAkStore,
  type TpmAttestorClient,
} from '../../src/agent/attestation/tpm.js';
import { decodePem } from '../../src/common/pem.js';
import type { RunningServer } from '../../src/server/server.js';
import { openTpm } from '../../src/tpm/device/index.js';
import type { Tpm } from '../../src/tpm/device/tpm.js';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';
import { Admin, freePort, startInProcessServer, TD, writeServerConfig } from './agent-support.js';

const dir = mkdtempSync(join(tmpdir(), 'tpm-attestation-'));
const logs: string[] = [];
let swtpm: SwtpmInstance;
let server: RunningServer;
let strict: RunningServer;
let admin: Admin;
let bundle: Uint8Array[];
let pubHashHex: string;
const pcr7 = randomBytes(32).toString('hex');

async function startTpmServer(name: string, extra: string): Promise<RunningServer> {
  const port = await freePort();
  const sc = writeServerConfig(join(dir, name), port, {
    extraPlugins: `  NodeAttestor "tpm" {
    plugin_data {
      ek_ca_path = "${join(dir, 'ek-ca.pem')}"
${extra}    }
  }`,
  });
  return startInProcessServer(sc.path, logs);
}

beforeAll(async () => {
  swtpm = await startSwtpm();
  // tpm2-tools (an independent implementation) gives the expected pub_hash.
  await swtpm.tpm2([
    'createek',
    '-c',
    join(dir, 'ek.ctx'),
    '-G',
    'rsa',
    '-f',
    'pem',
    '-u',
    join(dir, 'ek.pem'),
  ]);
  await swtpm.tpm2(['flushcontext', '-t']);
  const [block] = decodePem(readFileSync(join(dir, 'ek.pem'), 'utf8'));
  pubHashHex = createHash('sha256').update(block!.der).digest('hex');
  // Firmware "measurement" in PCR 7.
  await swtpm.tpm2(['pcrextend', `7:sha256=${pcr7}`]);
  writeFileSync(
    join(dir, 'ek-ca.pem'),
    swtpm.ekCaCertPaths.map((p) => readFileSync(p, 'utf8')).join('\n'),
  );
  server = await startTpmServer('server', '');
  strict = await startTpmServer('strict', '      require_enrollment = true\n');
  admin = new Admin(join(dir, 'server', 'private', 'api.sock'));
  bundle = (await admin.bundle.getBundle({})).x509Authorities.map((a) => new Uint8Array(a.asn1));
}, 60_000);

afterAll(async () => {
  admin?.close();
  await server?.close();
  await strict?.close();
  await swtpm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function transportTo(s: RunningServer, roots: Uint8Array[] = bundle) {
  return createAgentApiTransport({
    host: '127.0.0.1',
    port: s.agentApiAddress.port,
    trustDomain: TD,
    bundle: roots,
  });
}

function client(wrap?: (tpm: Tpm) => Tpm): TpmAttestorClient {
  return createTpmAttestorClient({
    openTpm: async () => {
      const tpm = await openTpm({ tcti: swtpm.tcti });
      return wrap === undefined ? tpm : wrap(tpm);
    },
    akStore: fileAkStore(join(dir, 'agent', 'tpm-ak.json')),
  });
}

const csr = () => createCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);

async function grpcCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err instanceof ConnectError ? String(err.code) : (err as Error).message;
  }
}

describe('tpm node attestation (swtpm + in-process server)', () => {
  const agentId = () => `spiffe://${TD}/spire/agent/tpm/${pubHashHex}`;

  it('attests: agent ID tpm/<pub_hash of tpm2_createek>, selectors stored with the node', async () => {
    const transport = transportTo(server);
    const t0 = performance.now();
    const r = await attestAgent(transport, client(), { csr: csr() });
    const ms = performance.now() - t0;
    expect(r.svid.id).toBe(agentId());
    expect(r.reattestable).toBe(true);
    expect(statSync(join(dir, 'agent', 'tpm-ak.json')).mode & 0o777).toBe(0o600);

    const selectors = (await server.context.dataStore.getNodeSelectors(agentId())).map(
      (s) => `${s.type}:${s.value}`,
    );
    expect(selectors).toContain(`tpm:pub_hash:${pubHashHex}`);
    expect(selectors.some((s) => /^tpm:ek_manufacturer:id:[0-9A-F]{8}$/.test(s))).toBe(true);
    expect(selectors.some((s) => s.startsWith('tpm:ek_model:'))).toBe(true);
    expect(selectors.some((s) => s.startsWith('tpm:ek_version:'))).toBe(true);
    expect(selectors).toContain('tpm:ek_issuer_cn:swtpm-localca');
    // PCR 7 = SHA-256(zeros ‖ pcr7), as tpm2_pcrextend made it.
    const expected7 = createHash('sha256')
      .update(Buffer.alloc(32))
      .update(Buffer.from(pcr7, 'hex'))
      .digest('hex');
    expect(selectors).toContain(`tpm:pcr:sha256:7:${expected7}`);
    expect(selectors).toContain(`tpm:pcr:sha256:0:${'0'.repeat(64)}`);
    expect(selectors.filter((s) => s.startsWith('tpm:pcr:'))).toHaveLength(8);

    const node = await server.context.dataStore.getAttestedNode(agentId());
    expect(node?.attestationDataType).toBe('tpm');
    expect(node?.canReattest).toBe(true);
    const evidence = JSON.parse(node!.evidence) as Record<string, unknown>;
    expect(evidence.pubHash).toBe(pubHashHex);
    expect(evidence.clockInfo).toMatchObject({ safe: expect.any(Boolean) });
    // The admin API shows it too.
    const shown = await admin.agent.getAgent({
      id: { trustDomain: TD, path: new URL(agentId()).pathname },
    });
    expect(shown.selectors.map((s) => `${s.type}:${s.value}`)).toContain(
      `tpm:pub_hash:${pubHashHex}`,
    );
    console.log(
      `agent-side + server attestation over swtpm: ${ms.toFixed(0)} ms (first, AK created)`,
    );
    transport.close();
  });

  it('re-attests with the same AK (blobs reused) and a fresh quote', async () => {
    const before = readFileSync(join(dir, 'agent', 'tpm-ak.json'), 'utf8');
    const transport = transportTo(server);
    const t0 = performance.now();
    const r = await attestAgent(transport, client(), { csr: csr() });
    const ms = performance.now() - t0;
    expect(r.svid.id).toBe(agentId());
    expect(readFileSync(join(dir, 'agent', 'tpm-ak.json'), 'utf8')).toBe(before);
    console.log(`re-attestation over swtpm: ${ms.toFixed(0)} ms`);
    transport.close();
  });

  it('a changed PCR value is refused and nothing is issued', async () => {
    const node = await server.context.dataStore.getAttestedNode(agentId());
    const transport = transportTo(server);
    // The device reports PCR 7 as all zeros: the quote (signed by the TPM) disagrees.
    const lying = client(
      (tpm) =>
        new Proxy(tpm, {
          get(target, key) {
            if (key === 'readPcrs') {
              return async (sel: Parameters<Tpm['readPcrs']>[0]) => {
                const m = new Map(await target.readPcrs(sel));
                m.set(7, new Uint8Array(32));
                return m;
              };
            }
            const v = Reflect.get(target, key) as unknown;
            return typeof v === 'function' ? v.bind(target) : v;
          },
        }),
    );
    expect(await grpcCode(attestAgent(transport, lying, { csr: csr() }))).toBe('7'); // PermissionDenied
    const after = await server.context.dataStore.getAttestedNode(agentId());
    expect(after?.certSerialNumber).toBe(node?.certSerialNumber);
    transport.close();
  });

  it('a replayed response from an earlier stream is refused', async () => {
    const transport = transportTo(server);
    const real = client();
    let old: Uint8Array | undefined;
    const recording: AgentNodeAttestor = {
      type: 'tpm',
      payload: () => real.payload(),
      respond: async (c, s) => {
        old = await real.respond(c, s);
        return old;
      },
    };
    await attestAgent(transport, recording, { csr: csr() });
    const replaying: AgentNodeAttestor = {
      type: 'tpm',
      payload: async () => {
        const p = await real.payload();
        await real.close();
        return p;
      },
      respond: async () => old!,
    };
    expect(await grpcCode(attestAgent(transport, replaying, { csr: csr() }))).toBe('7');
    transport.close();
  });

  it("TPM B's AK presented with TPM A's EK: B's TPM cannot activate, nothing is issued", async () => {
    const b = await startSwtpm({ uniqueEk: true });
    try {
      const a = client();
      const onB = createTpmAttestorClient({
        openTpm: () => openTpm({ tcti: b.tcti }),
        akStore: fileAkStore(join(dir, 'agent-b', 'tpm-ak.json')),
      });
      const mixed: AgentNodeAttestor = {
        type: 'tpm',
        payload: async () => {
          const pa = JSON.parse(Buffer.from(await a.payload()).toString('utf8'));
          await a.close();
          const pb = JSON.parse(Buffer.from(await onB.payload()).toString('utf8'));
          return new TextEncoder().encode(JSON.stringify({ ...pa, ak_public: pb.ak_public }));
        },
        respond: (c, sig) => onB.respond(c, sig),
      };
      const nodes = await server.context.dataStore.countAttestedNodes();
      const transport = transportTo(server);
      const err = await attestAgent(transport, mixed, { csr: csr() }).catch((e: unknown) => e);
      // The TPM itself refuses: the credential was made for A's EK (TPM_RC_INTEGRITY class).
      expect((err as { code?: string }).code).toBe('ERR_TPM_RC');
      expect(await server.context.dataStore.countAttestedNodes()).toBe(nodes);
      transport.close();
    } finally {
      await b.stop();
    }
  });

  it('truncated and oversized payloads are InvalidArgument over the wire', async () => {
    const transport = transportTo(server);
    for (const bytes of [
      new TextEncoder().encode('{"version":1,"ek_pub'),
      new Uint8Array(20_000).fill(0x20),
    ]) {
      const bad: AgentNodeAttestor = {
        type: 'tpm',
        payload: async () => bytes,
        respond: async () => new Uint8Array(0),
      };
      expect(await grpcCode(attestAgent(transport, bad, { csr: csr() }))).toBe('3');
    }
    transport.close();
  });

  it('an unenrolled EK is refused when enrollment is required, and accepted once enrolled', async () => {
    const strictAdmin = new Admin(join(dir, 'strict', 'private', 'api.sock'));
    const strictBundle = (await strictAdmin.bundle.getBundle({})).x509Authorities.map(
      (a) => new Uint8Array(a.asn1),
    );
    const transport = transportTo(strict, strictBundle);
    expect(await grpcCode(attestAgent(transport, client(), { csr: csr() }))).toBe('7');
    expect(await strict.context.dataStore.getAttestedNode(agentId())).toBeUndefined();
    await strictAdmin.createEntry('/gw/1', `spiffe://${TD}/spire/server`, [
      `tpm:pub_hash:${pubHashHex}`,
    ]);
    const r = await attestAgent(transport, client(), { csr: csr() });
    expect(r.svid.id).toBe(agentId());
    strictAdmin.close();
    transport.close();
  });
});
