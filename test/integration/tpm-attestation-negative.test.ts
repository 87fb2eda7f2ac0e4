/**
 * The refusals of TPM node attestation the issue lists, each against a real swtpm and a real
 * spire-server (in this process, from a config file, over the agent API with TLS), each with
 * its gRPC code and reason, and nothing issued: a quote over another nonce, a flipped
 * signature byte, an EK certificate from an untrusted CA, an EK certificate whose key is not
 * the EK, an AK that is not restricted (a real non-restricted key made by tpm2-tools), and a
 * truncated quote. (Replayed responses, TPM B's AK with TPM A's EK, changed PCR values,
 * unenrolled EKs and oversized payloads are in tpm-attestation.test.ts.)
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  type TpmAkStore,
  type TpmAttestorClient,
} from '../../src/agent/attestation/tpm.js';
import {
  decodeTpmPayload,
  decodeTpmResponse,
  encodeTpmPayload,
  encodeTpmResponse,
} from '../../src/server/attestation/tpm-wire.js';
import type { RunningServer } from '../../src/server/server.js';
import { openTpm } from '../../src/tpm/device/index.js';
import type { AkBlobs, Tpm } from '../../src/tpm/device/tpm.js';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';
import { freePort, startInProcessServer, TD, writeServerConfig } from './agent-support.js';

const dir = mkdtempSync(join(tmpdir(), 'tpm-negative-'));
const logs: string[] = [];
let tpmA: SwtpmInstance;
let tpmB: SwtpmInstance;
let server: RunningServer;
let untrusting: RunningServer;

async function startTpmServer(name: string, ekCaPath: string): Promise<RunningServer> {
  const port = await freePort();
  const sc = writeServerConfig(join(dir, name), port, {
    extraPlugins: `  NodeAttestor "tpm" {
    plugin_data {
      ek_ca_path = "${ekCaPath}"
    }
  }`,
  });
  return startInProcessServer(sc.path, logs);
}

/** A self-signed CA that signed none of the swtpm EK certificates. */
function otherCaPem(): string {
  const key = join(dir, 'other-ca.key');
  const cert = join(dir, 'other-ca.pem');
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
      key,
      '-out',
      cert,
      '-subj',
      '/CN=Not the TPM manufacturer',
      '-days',
      '30',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return cert;
}

beforeAll(async () => {
  [tpmA, tpmB] = await Promise.all([startSwtpm(), startSwtpm({ uniqueEk: true })]);
  const ekCa = join(dir, 'ek-ca.pem');
  writeFileSync(ekCa, tpmA.ekCaCertPaths.map((p) => readFileSync(p, 'utf8')).join('\n'));
  [server, untrusting] = await Promise.all([
    startTpmServer('server', ekCa),
    startTpmServer('untrusting', otherCaPem()),
  ]);
}, 120_000);

afterAll(async () => {
  await server?.close();
  await untrusting?.close();
  await tpmA?.stop();
  await tpmB?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function memoryAkStore(): TpmAkStore {
  let blobs: AkBlobs | undefined;
  return {
    load: async () => blobs,
    save: async (b) => {
      blobs = b;
    },
  };
}

const stores = new Map<string, TpmAkStore>();

function client(tpm: SwtpmInstance, wrap?: (t: Tpm) => Partial<Tpm>): TpmAttestorClient {
  let store = stores.get(tpm.tcti);
  if (store === undefined) {
    store = memoryAkStore();
    stores.set(tpm.tcti, store);
  }
  return createTpmAttestorClient({
    openTpm: async () => {
      const t = await openTpm({ tcti: tpm.tcti });
      if (wrap === undefined) return t;
      const over = wrap(t);
      return new Proxy(t, {
        get(target, key) {
          if (key in over) return (over as Record<string | symbol, unknown>)[key];
          const v = Reflect.get(target, key) as unknown;
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
    },
    akStore: store,
  });
}

/** Wraps an attestor's payload and response bytes. */
function tampered(
  real: TpmAttestorClient,
  o: {
    payload?: (p: ReturnType<typeof decodeTpmPayload>) => ReturnType<typeof decodeTpmPayload>;
    response?: (r: ReturnType<typeof decodeTpmResponse>) => ReturnType<typeof decodeTpmResponse>;
  },
): AgentNodeAttestor & { close(): Promise<void> } {
  return {
    type: 'tpm',
    close: () => real.close(),
    payload: async () => {
      const p = await real.payload();
      return o.payload === undefined ? p : encodeTpmPayload(o.payload(decodeTpmPayload(p)));
    },
    respond: async (c, s) => {
      const r = await real.respond(c, s);
      return o.response === undefined ? r : encodeTpmResponse(o.response(decodeTpmResponse(r)));
    },
  };
}

function transportTo(s: RunningServer) {
  return createAgentApiTransport({
    host: '127.0.0.1',
    port: s.agentApiAddress.port,
    trustDomain: TD,
    bundle: s.context.ca.getX509Authorities(),
  });
}

const csr = () => createCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);

/** Attests through `s`; returns the gRPC code and message, and checks nothing was issued. */
async function refusal(
  s: RunningServer,
  attestor: AgentNodeAttestor & { close?(): Promise<void> },
): Promise<{ code: string; message: string }> {
  const before = await s.context.dataStore.countAttestedNodes();
  const transport = transportTo(s);
  try {
    await attestAgent(transport, attestor, { csr: csr() });
    return { code: 'none', message: 'attestation succeeded' };
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    return { code: String(err.code), message: err.rawMessage };
  } finally {
    await attestor.close?.();
    transport.close();
    expect(await s.context.dataStore.countAttestedNodes()).toBe(before);
  }
}

describe('tpm node attestation refusals (real swtpm, real server)', () => {
  it('the honest device attests (the baseline the refusals differ from)', async () => {
    const transport = transportTo(server);
    const r = await attestAgent(transport, client(tpmA), { csr: csr() });
    expect(r.svid.id).toMatch(new RegExp(`^spiffe://${TD}/spire/agent/tpm/[0-9a-f]{64}$`));
    transport.close();
  });

  it('a quote over another nonce is PermissionDenied', async () => {
    const lying = client(tpmA, (t) => ({
      quote: (ak, _nonce, sel) => t.quote(ak, new Uint8Array(randomBytes(32)), sel),
    }));
    const r = await refusal(server, lying);
    expect(r.code).toBe('7');
    expect(r.message).toMatch(/quotes\[0\] does not verify: .*nonce/i);
  });

  it('a flipped signature byte is PermissionDenied', async () => {
    const r = await refusal(
      server,
      tampered(client(tpmA), {
        response: (resp) => ({
          ...resp,
          quotes: resp.quotes.map((q) => {
            const sig = new Uint8Array(q.signature);
            sig[sig.length - 5]! ^= 0x01;
            return { ...q, signature: sig };
          }),
        }),
      }),
    );
    expect(r.code).toBe('7');
    expect(r.message).toMatch(/quotes\[0\] does not verify: .*signature/i);
  });

  it('an EK certificate from an untrusted CA is PermissionDenied before any challenge', async () => {
    let challenged = false;
    const real = client(tpmA);
    const r = await refusal(untrusting, {
      type: 'tpm',
      close: () => real.close(),
      payload: () => real.payload(),
      respond: async (c, s) => {
        challenged = true;
        return real.respond(c, s);
      },
    });
    expect(r.code).toBe('7');
    expect(r.message).toMatch(/EK certificate does not chain to a configured EK CA/);
    expect(challenged).toBe(false);
  });

  it('an EK certificate whose key is not the EK (TPM B’s certificate with TPM A’s EK) is PermissionDenied', async () => {
    const b = client(tpmB);
    const bPayload = decodeTpmPayload(await b.payload());
    await b.close();
    expect(bPayload.ekCert).toBeDefined();
    const r = await refusal(
      server,
      tampered(client(tpmA), { payload: (p) => ({ ...p, ekCert: bPayload.ekCert! }) }),
    );
    expect(r.code).toBe('7');
    expect(r.message).toMatch(/EK certificate does not certify the EK public area/);
  });

  it('an AK that is not restricted (a real non-restricted key from tpm2_create) is PermissionDenied', async () => {
    const prim = join(dir, 'primary.ctx');
    const pub = join(dir, 'signing.pub');
    await tpmA.tpm2(['createprimary', '-C', 'o', '-g', 'sha256', '-G', 'ecc', '-c', prim]);
    await tpmA.tpm2([
      'create',
      '-C',
      prim,
      '-G',
      'ecc256:ecdsa-sha256',
      '-a',
      'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign',
      '-u',
      pub,
      '-r',
      join(dir, 'signing.priv'),
    ]);
    await tpmA.tpm2(['flushcontext', '-t']);
    const signingPublic = new Uint8Array(readFileSync(pub));
    const r = await refusal(
      server,
      tampered(client(tpmA), { payload: (p) => ({ ...p, akPublic: signingPublic }) }),
    );
    expect(r.code).toBe('7');
    expect(r.message).toMatch(/AK is not a TPM-resident restricted signing key: .*restricted/);
  });

  it('a truncated quote is InvalidArgument', async () => {
    const r = await refusal(
      server,
      tampered(client(tpmA), {
        response: (resp) => ({
          ...resp,
          quotes: resp.quotes.map((q) => ({ ...q, quoted: q.quoted.subarray(0, 40) })),
        }),
      }),
    );
    expect(r.code).toBe('3');
    expect(r.message).toMatch(/quotes\[0\] is malformed/);
  });
});
