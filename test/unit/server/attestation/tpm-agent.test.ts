/**
 * The agent's tpm attestor (src/agent/attestation/tpm.ts) over a software `Tpm` built on the
 * soft TPM of the codec tests, against the server attestor: the full exchange, the AK kept
 * and reused through the AK file (mode 0600), an AK that no longer loads replaced, the TPM
 * closed after each attestation, and malformed or out-of-order challenges refused.
 */
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createTpmAttestorClient,
  fileAkStore,
  fileEventLogReader,
  tpmAkPath,
} from '../../../../src/agent/attestation/tpm.js';
import { ManualClock } from '../../../../src/common/clock.js';
import { SpireEdgeError } from '../../../../src/common/errors.js';
import { cryptoRandom } from '../../../../src/common/random.js';
import { createTpmAttestor } from '../../../../src/server/attestation/tpm.js';
import {
  decodeTpmResponse,
  TPM_MAX_EVENT_LOG,
} from '../../../../src/server/attestation/tpm-wire.js';
import type { AkBlobs, LoadedAk, Tpm } from '../../../../src/tpm/device/tpm.js';
import {
  EkCaPool,
  marshalTpm2bPublic,
  objectName,
  pcrSelection,
} from '../../../../src/tpm/index.js';
import { makeCa, makeEkCert } from '../../tpm/support/ek-ca.js';
import {
  makeAk,
  makeEk,
  type SoftKey,
  softActivateCredential,
  softQuote,
} from '../../tpm/support/soft-tpm.js';

const dir = mkdtempSync(join(tmpdir(), 'tpm-agent-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const root = makeCa('EK root');
const ek = makeEk('rsa');
const ekCert = makeEkCert(root, createPublicKey(ek.privateKey));
const pcrs = new Map<number, Uint8Array>(
  Array.from({ length: 24 }, (_, i) => [i, new Uint8Array(32).fill(i)]),
);

/** A software TPM device: one EK, AKs made on demand, counts of what was called. */
class SoftDevice {
  readonly aks = new Map<string, SoftKey>();
  created = 0;
  opened = 0;
  closed = 0;
  failLoad = false;

  open(): Tpm {
    this.opened++;
    const dev = this;
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const tpm: Partial<Tpm> = {
      readEkCertificate: async () => ekCert,
      ekPublic: async () => marshalTpm2bPublic(ek.public),
      async createAk(alg, o) {
        dev.created++;
        const ak = makeAk('ecc');
        const name = objectName(ak.public);
        dev.aks.set(hex(name), ak);
        return {
          ek: o?.ek ?? 'rsa',
          alg,
          private: new Uint8Array(8),
          public: marshalTpm2bPublic(ak.public),
          name,
        } satisfies AkBlobs;
      },
      async loadAk(b) {
        if (dev.failLoad || !dev.aks.has(hex(b.name))) {
          throw new SpireEdgeError('ERR_TPM_BLOB_INVALID', 'no such AK in this TPM');
        }
        return { handle: 1, ek: b.ek, alg: b.alg, public: b.public, name: b.name };
      },
      async activateCredential(ak: LoadedAk, c) {
        return softActivateCredential(ek, ak.name, c.idObject, c.encryptedSecret);
      },
      async quote(ak, nonce, sel) {
        const soft = dev.aks.get(hex(ak.name))!;
        return softQuote(soft, {
          nonce,
          selection: [pcrSelection(sel.bank, sel.indices)],
          pcrs: new Map([[sel.bank, pcrs]]),
        });
      },
      async readPcrs(sel) {
        return new Map(sel.indices.map((i) => [i, pcrs.get(i)!]));
      },
      close: async () => {
        dev.closed++;
      },
    };
    return tpm as Tpm;
  }
}

const server = createTpmAttestor({
  trustDomain: 'example.org',
  clock: new ManualClock(Date.UTC(2026, 5, 1)),
  random: cryptoRandom,
  ekCaPool: EkCaPool.from({ roots: [root.der] }),
});

describe('agent tpm attestor', () => {
  const device = new SoftDevice();
  const akStore = fileAkStore(tpmAkPath(join(dir, 'data')));
  const client = createTpmAttestorClient({
    openTpm: async () => device.open(),
    akStore,
    pcrs: [{ bank: 'sha256', indices: [10] }],
  });

  it('attests against the server attestor; the AK is created once and kept in a 0600 file', async () => {
    const r = await server.attest(await client.payload(), (c) => client.respond(c), {});
    expect(r.agentId).toMatch(/^spiffe:\/\/example\.org\/spire\/agent\/tpm\/[0-9a-f]{64}$/);
    // The server's PCRs 0..7 and the agent's own PCR 10.
    const pcrSelectors = r.selectors.filter((s) => s.value.startsWith('pcr:'));
    expect(pcrSelectors.map((s) => s.value.split(':')[2])).toEqual([
      '0',
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
      '10',
    ]);
    expect(statSync(tpmAkPath(join(dir, 'data'))).mode & 0o777).toBe(0o600);
    expect(device.created).toBe(1);
    expect(device.closed).toBe(device.opened);

    const again = await server.attest(await client.payload(), (c) => client.respond(c), {});
    expect(again.agentId).toBe(r.agentId);
    expect(device.created).toBe(1);
    expect(device.closed).toBe(device.opened);
  });

  it('an AK that no longer loads is replaced by a new one', async () => {
    device.failLoad = true;
    const before = (await akStore.load())!.name;
    // loadAk fails for the stored AK; the new AK's load fails too while failLoad is set.
    await expect(client.payload()).rejects.toMatchObject({ code: 'ERR_TPM_BLOB_INVALID' });
    expect(device.closed).toBe(device.opened);
    device.failLoad = false;
    const r = await server.attest(await client.payload(), (c) => client.respond(c), {});
    expect(r.canReattest).toBe(true);
    expect(Buffer.from((await akStore.load())!.name)).not.toEqual(Buffer.from(before));
  });

  it('refuses a malformed challenge and a challenge without a payload', async () => {
    await expect(client.respond(new TextEncoder().encode('{"version":1}'))).rejects.toMatchObject({
      code: 'ERR_AGENT_ATTESTATION_INVALID',
    });
    let challenge: Uint8Array | undefined;
    await server
      .attest(
        await client.payload(),
        async (c) => {
          challenge = c;
          throw new Error('agent went away');
        },
        {},
      )
      .catch(() => undefined);
    await client.close();
    expect(device.closed).toBe(device.opened);
    await expect(client.respond(challenge!)).rejects.toMatchObject({
      code: 'ERR_AGENT_ATTESTATION_INVALID',
    });
  });
});

describe('agent tpm attestor: the TCG event log', () => {
  it('sends the log read after the quotes, and none when the reader has none', async () => {
    const device = new SoftDevice();
    let reads = 0;
    let log: Uint8Array | undefined = new Uint8Array([1, 2, 3]);
    const client = createTpmAttestorClient({
      openTpm: async () => device.open(),
      akStore: fileAkStore(join(dir, 'log-ak.json')),
      readEventLog: async () => {
        reads++;
        return log;
      },
    });
    await client.payload();
    expect(reads).toBe(0);
    // The server attestor would refuse these bytes as a log: only the wire is checked here.
    let challenge: Uint8Array | undefined;
    await server
      .attest(
        await client.payload(),
        async (c) => {
          challenge = c;
          throw new Error('stop after the challenge');
        },
        {},
      )
      .catch(() => {});
    await client.payload();
    const sent = decodeTpmResponse(await client.respond(challenge!)).eventLog;
    expect(reads).toBe(1);
    expect(sent).toEqual(new Uint8Array([1, 2, 3]));
    log = undefined;
    await client.payload();
    expect(decodeTpmResponse(await client.respond(challenge!)).eventLog).toBeUndefined();
  });

  it('fileEventLogReader: missing is no log; unreadable or oversized is reported once and not sent', async () => {
    const problems: string[] = [];
    expect(await fileEventLogReader(join(dir, 'absent'), (m) => problems.push(m))()).toBe(
      undefined,
    );
    expect(problems).toEqual([]);
    const path = join(dir, 'log.bin');
    writeFileSync(path, Buffer.from([9, 8, 7]));
    expect(await fileEventLogReader(path)()).toEqual(new Uint8Array([9, 8, 7]));
    // A directory stands in for an unreadable file (the tests run as root).
    const unreadable = fileEventLogReader(dir, (m) => problems.push(m));
    expect(await unreadable()).toBeUndefined();
    expect(await unreadable()).toBeUndefined();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/cannot be read .*attesting without it/);
    const big = join(dir, 'big.bin');
    writeFileSync(big, Buffer.alloc(TPM_MAX_EVENT_LOG + 1));
    expect(await fileEventLogReader(big, (m) => problems.push(m))()).toBeUndefined();
    expect(problems[1]).toMatch(/more than the 1048576 the server accepts/);
  });
});
