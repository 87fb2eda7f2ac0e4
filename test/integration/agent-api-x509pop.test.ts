/**
 * x509pop end to end over real TLS: key and chain loaded from PEM files by the agent-side
 * attestor, node selectors stored, node-alias entries resolved through them, re-attestation
 * in place, refusals; and the server's own SVID rotating at half-life.
 */
import { createHash, sign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attestAgent, renewAgent } from '../../src/agent/attestation/attest-agent.js';
import { createCsr } from '../../src/agent/attestation/csr.js';
import type { AgentNodeAttestor } from '../../src/agent/attestation/node-attestor.js';
import {
  createX509PopAttestorClient,
  loadX509PopAttestorClient,
} from '../../src/agent/attestation/x509pop.js';
import { encodePem } from '../../src/common/pem.js';
import { entryv1, svidv1, types } from '../../src/protocol/index.js';
import { createX509PopAttestor } from '../../src/server/attestation/x509pop.js';
import {
  decodeX509PopChallenge,
  encodeX509PopPayload,
  encodeX509PopResponse,
  x509PopSignedMessage,
} from '../../src/server/attestation/x509pop-wire.js';
import { parseCertificate } from '../../src/spiffe/x509-cert.js';
import {
  makeCa,
  makeLeaf,
  type TestCa,
  type TestLeaf,
} from '../unit/server/attestation/x509pop-support.js';
import { type Harness, newKey, startHarness, TD } from './agent-api-support.js';

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

let h: Harness;
let root: TestCa;
let inter: TestCa;
let leaf: TestLeaf;
let dir: string;
let agentId: string;

beforeAll(async () => {
  root = await makeCa('fleet root');
  inter = await makeCa('fleet intermediate', { issuer: root });
  leaf = await makeLeaf(inter, {
    cn: 'gw-17',
    uris: ['x509pop://example.org/role/gateway'],
    serialHex: '11aa',
  });
  agentId = `spiffe://example.org/spire/agent/x509pop/${sha1(leaf.der)}`;
  dir = await mkdtemp(join(tmpdir(), 'x509pop-e2e-'));
  await writeFile(join(dir, 'leaf.pem'), encodePem('CERTIFICATE', leaf.der));
  await writeFile(join(dir, 'intermediates.pem'), encodePem('CERTIFICATE', inter.der));
  await writeFile(
    join(dir, 'leaf-key.pem'),
    leaf.privateKey.export({ format: 'pem', type: 'sec1' }) as string,
  );
  h = await startHarness({
    attestors: (ctx) => [
      createX509PopAttestor({
        trustDomain: TD,
        caBundle: [root.der],
        clock: ctx.clock,
        random: ctx.random,
      }),
    ],
  });
});

afterAll(async () => {
  await h?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the call to fail').toBeInstanceOf(ConnectError);
  return err as ConnectError;
}

const fileAttestor = () =>
  loadX509PopAttestorClient({
    privateKeyPath: join(dir, 'leaf-key.pem'),
    certificatePath: join(dir, 'leaf.pem'),
    intermediatesPath: join(dir, 'intermediates.pem'),
  });

describe('agent API: x509pop', () => {
  it('attests, stores node selectors and serves node-alias entries', async () => {
    const key = newKey();
    const r = await attestAgent(h.anonymous(), await fileAttestor(), { csr: createCsr(key) });
    expect(r.svid.id).toBe(agentId);
    expect(r.reattestable).toBe(true);
    const node = await h.ds.getAttestedNode(agentId);
    expect(node?.attestationDataType).toBe('x509pop');
    expect(node?.canReattest).toBe(true);
    expect(node?.selectors.map((s) => `${s.type}:${s.value}`).sort()).toEqual(
      [
        `x509pop:ca:fingerprint:${sha1(inter.der)}`,
        `x509pop:ca:fingerprint:${sha1(root.der)}`,
        'x509pop:san:role:gateway',
        'x509pop:serialnumber:11aa',
        'x509pop:subject:cn:gw-17',
      ].sort(),
    );
    expect(JSON.parse(node!.evidence)).toMatchObject({
      type: 'x509pop',
      fingerprint: sha1(leaf.der),
    });

    await h.ds.createEntry({
      id: 'alias-gateways',
      spiffeId: 'spiffe://example.org/node/gateways',
      parentId: 'spiffe://example.org/spire/server',
      selectors: [{ type: 'x509pop', value: 'san:role:gateway' }],
    });
    await h.ds.createEntry({
      id: 'mqtt-bridge',
      spiffeId: 'spiffe://example.org/gw/mqtt-bridge',
      parentId: 'spiffe://example.org/node/gateways',
      selectors: [{ type: 'systemd', value: 'id:mqtt-bridge.service' }],
    });
    await h.ds.createEntry({
      id: 'other-fleet',
      spiffeId: 'spiffe://example.org/node/cameras',
      parentId: 'spiffe://example.org/spire/server',
      selectors: [{ type: 'x509pop', value: 'san:role:camera' }],
    });
    await h.entries.poll();
    const t = h.as(r.svid, key);
    const entries = await createClient(entryv1.Entry, t).getAuthorizedEntries({});
    expect(entries.entries.map((e) => e.id)).toEqual(['mqtt-bridge']);
    const signed = await createClient(svidv1.SVID, t).batchNewX509SVID({
      params: [{ entryId: 'mqtt-bridge', csr: createCsr(newKey()) }],
    });
    expect(signed.results[0]?.status?.code).toBe(0);
    expect(
      parseCertificate(signed.results[0]!.svid!.certChain[0]!).extensions.subjectAltName?.uris,
    ).toEqual(['spiffe://example.org/gw/mqtt-bridge']);
  });

  it('re-attests the same node in place and must not renew', async () => {
    const before = await h.ds.getAttestedNode(agentId);
    const key1 = newKey();
    const first = await attestAgent(h.anonymous(), await fileAttestor(), { csr: createCsr(key1) });
    const key2 = newKey();
    const second = await attestAgent(h.anonymous(), await fileAttestor(), { csr: createCsr(key2) });
    expect(second.svid.id).toBe(agentId);
    const after = await h.ds.getAttestedNode(agentId);
    expect(after?.createdAt).toBe(before?.createdAt);
    expect(after?.certSerialNumber).not.toBe(before?.certSerialNumber);
    // the newest SVID works, the superseded one does not
    await createClient(entryv1.Entry, h.as(second.svid, key2)).getAuthorizedEntries({});
    const old = await rejection(
      createClient(entryv1.Entry, h.as(first.svid, key1)).getAuthorizedEntries({}),
    );
    expect(old.code).toBe(Code.PermissionDenied);
    const renew = await rejection(
      renewAgent(h.as(second.svid, key2), { csr: createCsr(newKey()) }),
    );
    expect(renew.code).toBe(Code.PermissionDenied);
    expect(renew.findDetails(types.PermissionDeniedDetailsSchema)[0]?.reason).toBe(
      types.PermissionDeniedDetails_Reason.AGENT_MUST_REATTEST,
    );
  });

  it('refuses a chain from another CA and a wrong proof of possession', async () => {
    const rogueRoot = await makeCa('rogue');
    const rogueLeaf = await makeLeaf(rogueRoot, { cn: 'gw-17' });
    const rogue = createX509PopAttestorClient({
      certificates: [rogueLeaf.der],
      privateKey: rogueLeaf.privateKey,
    });
    const e1 = await rejection(attestAgent(h.anonymous(), rogue, { csr: createCsr(newKey()) }));
    expect(e1.code).toBe(Code.PermissionDenied);
    expect(e1.rawMessage).toMatch(/certificate verification failed/);

    // presents the real chain but signs with a key it happens to hold
    const thief: AgentNodeAttestor = {
      type: 'x509pop',
      payload: async () => encodeX509PopPayload([leaf.der, inter.der]),
      respond: async (challenge) => {
        const nonce = new Uint8Array(32).fill(9);
        const sig = sign(
          'sha256',
          x509PopSignedMessage(decodeX509PopChallenge(challenge).nonce, nonce),
          {
            key: newKey(),
            dsaEncoding: 'ieee-p1363',
          },
        );
        return encodeX509PopResponse({
          kind: 'ecdsa',
          nonce,
          r: sig.subarray(0, 32),
          s: sig.subarray(32),
        });
      },
    };
    const e2 = await rejection(attestAgent(h.anonymous(), thief, { csr: createCsr(newKey()) }));
    expect(e2.code).toBe(Code.PermissionDenied);
    expect(e2.rawMessage).toMatch(/challenge response verification failed/);
    expect(h.metrics.attestations).toContainEqual(['x509pop', 'error']);
  });

  it('refuses a banned node that attests again', async () => {
    const bannedLeaf = await makeLeaf(inter, { cn: 'gw-banned' });
    const client = () =>
      createX509PopAttestorClient({
        certificates: [bannedLeaf.der, inter.der],
        privateKey: bannedLeaf.privateKey,
      });
    const r = await attestAgent(h.anonymous(), client(), { csr: createCsr(newKey()) });
    await h.ds.updateAttestedNode({ spiffeId: r.svid.id, set: { banned: true } });
    const err = await rejection(attestAgent(h.anonymous(), client(), { csr: createCsr(newKey()) }));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toBe('failed to attest: agent is banned');
  });
});

describe('agent API: server SVID', () => {
  function serverCertificate(port: number, bundle: Uint8Array[]): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        ca: bundle.map((d) => encodePem('CERTIFICATE', d)),
        ALPNProtocols: ['h2'],
        checkServerIdentity: () => undefined,
      });
      s.once('secureConnect', () => {
        const raw = new Uint8Array(s.getPeerCertificate().raw);
        s.destroy();
        resolve(raw);
      });
      s.once('error', reject);
    });
  }

  it('serves spiffe://<td>/spire/server and rotates it at half-life', async () => {
    const h2 = await startHarness({
      context: { defaultX509SvidTtl: 4 },
      server: { svidCheckIntervalMs: 200 },
    });
    try {
      const first = parseCertificate(await serverCertificate(h2.port, h2.bundle()));
      expect(first.extensions.subjectAltName?.uris).toEqual(['spiffe://example.org/spire/server']);
      await new Promise((r) => setTimeout(r, 2600));
      const second = parseCertificate(await serverCertificate(h2.port, h2.bundle()));
      expect(Buffer.from(second.serial).equals(Buffer.from(first.serial))).toBe(false);
      expect(second.extensions.subjectAltName?.uris).toEqual(['spiffe://example.org/spire/server']);
      expect(h2.server.serverSvid.current?.certChain[0]).toEqual(second.der);
    } finally {
      await h2.close();
    }
  });
});
