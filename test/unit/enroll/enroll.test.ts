/**
 * `tpm-enroll` without a TPM: the record built from soft EKs and generated EK certificates,
 * the `-pcrs` syntax, flag validation, and registration logic against a fake entry API (the
 * real TPM and admin server are in test/integration/tpm-enroll.test.ts).
 */

import { createHash, createPublicKey } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { type CliIo, StringWriter } from '../../../src/common/cli/io.js';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { type EnrollTpm, main, parsePcrFlag } from '../../../src/enroll/main.js';
import { buildEnrollmentRecord, entryCreateCommand } from '../../../src/enroll/record.js';
import { type EntryClient, registerDevice } from '../../../src/enroll/register.js';
import { entryv1, types } from '../../../src/protocol/index.js';
import { marshalTpm2bPublic, spkiFromTpmtPublic } from '../../../src/tpm/index.js';
import { makeCa, makeEkCert } from '../tpm/support/ek-ca.js';
import { makeEk } from '../tpm/support/soft-tpm.js';

const ek = makeEk('ecc', 'P-256');
const ekPublic = marshalTpm2bPublic(ek.public);
const spki = spkiFromTpmtPublic(ek.public);
const hash = createHash('sha256').update(spki).digest('hex');
const ca = makeCa('Test EK CA');
const ekCert = makeEkCert(
  ca,
  createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }),
);

describe('buildEnrollmentRecord', () => {
  it('derives pub_hash, PEMs, TPM attributes, PCRs and the bind command', () => {
    const padded = new Uint8Array([...ekCert, ...new Uint8Array(40).fill(0xff)]);
    const r = buildEnrollmentRecord({
      ekAlgorithm: 'ecc-p256',
      ekPublic,
      ekCertificate: padded,
      pcrs: new Map([
        [
          'sha256',
          new Map([
            [7, new Uint8Array(32).fill(0xab)],
            [0, new Uint8Array(32)],
          ]),
        ],
      ]),
      spiffeId: 'spiffe://example.org/gw/1',
    });
    expect(r.pub_hash).toBe(hash);
    expect(r.ek_public_pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(r.ek_certificate_pem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(r.manufacturer).toMatch(/^id:/);
    expect(r.ek_issuer_cn).toBe('Test EK CA');
    expect(Object.keys(r.pcrs['sha256']!)).toEqual(['0', '7']);
    expect(r.pcrs['sha256']!['7']).toBe('ab'.repeat(32));
    expect(r.agent_id).toBe(`spiffe://example.org/spire/agent/tpm/${hash}`);
    expect(r.entry_create_command).toBe(
      `spire-server entry create -node -spiffeID spiffe://example.org/gw/1 -selector tpm:pub_hash:${hash}`,
    );
    expect(r.warnings).toEqual([]);
  });

  it('warns (without failing) about a missing, unparsable or foreign EK certificate', () => {
    const other = makeEk('ecc', 'P-256');
    const otherSpki = spkiFromTpmtPublic(other.public);
    const foreign = makeEkCert(
      ca,
      createPublicKey({ key: Buffer.from(otherSpki), format: 'der', type: 'spki' }),
    );
    const base = { ekAlgorithm: 'ecc-p256', ekPublic };
    expect(buildEnrollmentRecord(base).warnings[0]).toMatch(/^no ecc-p256 EK certificate in NV/);
    expect(
      buildEnrollmentRecord({ ...base, ekCertificate: new Uint8Array([1, 2]) }).warnings[0],
    ).toMatch(/^the EK certificate in NV could not be parsed: /);
    expect(buildEnrollmentRecord({ ...base, ekCertificate: foreign }).warnings[0]).toMatch(
      /certifies another key than the ecc-p256 EK/,
    );
  });

  it('refuses an EK public area that does not parse with the TPM parse code', () => {
    try {
      buildEnrollmentRecord({ ekAlgorithm: 'rsa', ekPublic: new Uint8Array([0, 4, 1, 2, 3, 4]) });
      expect.unreachable();
    } catch (err) {
      expect(isSpireEdgeError(err, 'ERR_TPM_PARSE')).toBe(true);
    }
  });

  it('quotes a placeholder alias for the shell', () => {
    expect(entryCreateCommand(undefined, hash)).toBe(
      `spire-server entry create -node -spiffeID 'spiffe://<trust-domain>/<path>' -selector tpm:pub_hash:${hash}`,
    );
  });
});

describe('parsePcrFlag', () => {
  it('parses tpm2-tools-style selections', () => {
    expect(parsePcrFlag('sha256:7,0+sha1:1')).toEqual([
      { bank: 'sha256', indices: [0, 7] },
      { bank: 'sha1', indices: [1] },
    ]);
    expect(parsePcrFlag('none')).toEqual([]);
  });
  for (const [text, message] of [
    ['md5:0', /unknown bank "md5"/],
    ['sha256:24', /PCR index "24" is not 0..23/],
    ['sha256:01', /PCR index "01"/],
    ['sha256', /PCR index ""/],
    ['sha256:1,1', /repeated/],
    ['sha256:1+sha256:2', /given twice/],
  ] as const) {
    it(`refuses ${text}`, () => {
      try {
        parsePcrFlag(text);
        expect.unreachable();
      } catch (err) {
        expect(isSpireEdgeError(err, 'ERR_ENROLL_USAGE')).toBe(true);
        expect((err as Error).message).toMatch(message);
      }
    });
  }
});

function fakeTpm(log: string[]): EnrollTpm {
  return {
    async ekPublic(alg) {
      log.push(`ekPublic ${alg}`);
      return ekPublic;
    },
    async readEkCertificate() {
      return ekCert;
    },
    async readPcrs(s) {
      log.push(`readPcrs ${s.bank}:${s.indices.join(',')}`);
      return new Map(s.indices.map((i) => [i, new Uint8Array(32)]));
    },
    async close() {
      log.push('close');
    },
  };
}

async function run(args: string[], client?: EntryClient) {
  const stdout = new StringWriter();
  const stderr = new StringWriter();
  const io: CliIo = { stdout, stderr, stdin: (async function* () {})(), env: {} };
  const log: string[] = [];
  const code = await main(args, io, {
    openTpm: async (tcti) => {
      log.push(`open ${tcti}`);
      return fakeTpm(log);
    },
    ...(client === undefined ? {} : { entryClient: () => ({ client, close: () => {} }) }),
  });
  return { code, out: stdout.text, err: stderr.text, log };
}

describe('tpm-enroll main', () => {
  it('reads the default TCTI, EK and PCRs and closes the TPM', async () => {
    const r = await run([]);
    expect(r.code).toBe(0);
    expect(r.log).toEqual([
      'open device:/dev/tpmrm0',
      'ekPublic rsa',
      'readPcrs sha256:0,1,2,3,4,5,6,7',
      'close',
    ]);
    expect(r.out).toContain(`pub_hash         : ${hash}\n`);
  });

  it('composes -spiffeID /path with -trustDomain', async () => {
    const r = await run(['-trustDomain', 'example.org', '-spiffeID', '/gw/2', '-output', 'json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).entry_create_command).toContain(
      '-spiffeID spiffe://example.org/gw/2 ',
    );
  });

  for (const [args, message] of [
    [['-ekAlgorithm', 'dsa'], 'Error: -ekAlgorithm: "dsa" is not one of rsa, ecc-p256, ecc-p384\n'],
    [['-register'], 'Error: -register needs -spiffeID (the node alias to create)\n'],
    [['-replace'], 'Error: -replace needs -register\n'],
    [['-spiffeID', '/gw/1'], 'Error: -spiffeID: a path needs -trustDomain\n'],
    [['-spiffeID', 'spiffe://example.org'], 'Error: -spiffeID: the alias ID needs a path\n'],
    [
      ['-trustDomain', 'a.org', '-spiffeID', 'spiffe://b.org/x'],
      'Error: -spiffeID: spiffe://b.org/x is not in trust domain a.org\n',
    ],
    [['extra'], 'Error: unexpected argument "extra"\n'],
    [['-writePolicy', 'p.json'], 'Error: -writePolicy and -policyName go together\n'],
    [
      ['-writePolicy', 'p.json', '-policyName', 'a b'],
      'Error: -policyName: "a b" must be 1..128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit\n',
    ],
  ] as const) {
    it(`refuses ${args.join(' ')} before opening the TPM`, async () => {
      const r = await run([...args]);
      expect(r.code).toBe(1);
      expect(r.err).toBe(message);
      expect(r.log).toEqual([]);
    });
  }

  it('prints the usage for -h (exit 0) and for an unknown flag (exit 1)', async () => {
    const h = await run(['-h']);
    expect(h.code).toBe(0);
    expect(h.err).toMatch(/^Usage of tpm-enroll:\n/);
    const bad = await run(['-nope']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^flag provided but not defined: -nope\n/);
  });
});

describe('registerDevice', () => {
  const alias = 'spiffe://example.org/gw/1';
  function entry(id: string, pubHash: string): types.Entry {
    return create(types.EntrySchema, {
      id,
      spiffeId: { trustDomain: 'example.org', path: '/gw/1' },
      parentId: { trustDomain: 'example.org', path: '/spire/server' },
      selectors: [{ type: 'tpm', value: `pub_hash:${pubHash}` }],
    });
  }
  function client(entries: types.Entry[]): EntryClient & { calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      listEntries: (async () => {
        calls.push('list');
        return create(entryv1.ListEntriesResponseSchema, { entries });
      }) as EntryClient['listEntries'],
      batchCreateEntry: (async () => {
        calls.push('create');
        return create(entryv1.BatchCreateEntryResponseSchema, {
          results: [{ status: { code: 6, message: 'similar entry already exists' } }],
        });
      }) as EntryClient['batchCreateEntry'],
      batchUpdateEntry: (async () => {
        calls.push('update');
        return create(entryv1.BatchUpdateEntryResponseSchema, {});
      }) as EntryClient['batchUpdateEntry'],
    };
  }

  it('reports an API refusal of the create as ERR_ENROLL_REGISTER_FAILED', async () => {
    const c = client([]);
    await expect(
      registerDevice({ client: c, spiffeId: alias, pubHash: hash }),
    ).rejects.toMatchObject({
      code: 'ERR_ENROLL_REGISTER_FAILED',
      message: 'could not create the alias entry: similar entry already exists',
    });
  });

  it('refuses an alias with several entries even with replace, and an update with no result', async () => {
    const two = client([entry('a', 'f'.repeat(64)), entry('b', 'e'.repeat(64))]);
    await expect(
      registerDevice({ client: two, spiffeId: alias, pubHash: hash, replace: true }),
    ).rejects.toMatchObject({
      code: 'ERR_ENROLL_ALIAS_CONFLICT',
      message: expect.stringMatching(/has 2 node alias entries/),
    });
    expect(two.calls).toEqual(['list']);
    const one = client([entry('a', 'f'.repeat(64))]);
    await expect(
      registerDevice({ client: one, spiffeId: alias, pubHash: hash, replace: true }),
    ).rejects.toMatchObject({ code: 'ERR_ENROLL_REGISTER_FAILED' });
    expect(one.calls).toEqual(['list', 'update']);
  });

  it('finds this device among several alias entries without writing', async () => {
    const c = client([entry('a', 'f'.repeat(64)), entry('b', hash)]);
    expect(await registerDevice({ client: c, spiffeId: alias, pubHash: hash })).toEqual({
      outcome: 'already-registered',
      entryId: 'b',
      previousPubHashes: [hash],
      otherAliases: [],
    });
    expect(c.calls).toEqual(['list', 'list']);
  });

  it('rejects malformed arguments with TypeError', async () => {
    await expect(
      registerDevice({ client: client([]), spiffeId: 'x', pubHash: hash }),
    ).rejects.toThrow(TypeError);
    await expect(
      registerDevice({ client: client([]), spiffeId: alias, pubHash: 'AB' }),
    ).rejects.toThrow(TypeError);
  });
});
