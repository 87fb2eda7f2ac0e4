/**
 * The shared alias rules (alias-plan.ts) and `tpm-enroll -serverAddress` without a TPM or a
 * server: flag rules and where the token comes from (flag, file, environment), what is sent
 * (the raw EK bytes as read), how answers and refusals are printed, and an answer that does
 * not fit the request. The real server and swtpm: test/e2e/tpm-enroll-network.test.ts.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, describe, expect, it } from 'vitest';
import { type CliIo, StringWriter } from '../../../src/common/cli/io.js';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { encodePem } from '../../../src/common/pem.js';
import {
  otherAliasesOf,
  outcomeOf,
  planAliasBinding,
  pubHashSelector,
} from '../../../src/enroll/alias-plan.js';
import { type EnrollTpm, main } from '../../../src/enroll/main.js';
import type { EnrollmentClient } from '../../../src/enroll/network.js';
import { enrollmentv1 } from '../../../src/protocol/index.js';
import { marshalTpm2bPublic, spkiFromTpmtPublic } from '../../../src/tpm/index.js';
import { makeCa, makeEkCert } from '../tpm/support/ek-ca.js';
import { makeEk } from '../tpm/support/soft-tpm.js';

const H1 = '1'.repeat(64);
const H2 = '2'.repeat(64);
const ALIAS = 'spiffe://example.org/gw/1';

describe('planAliasBinding', () => {
  const entry = (id: string, ...hashes: string[]) => ({
    id,
    selectors: [{ type: 'unix', value: 'uid:0' }, ...hashes.map(pubHashSelector)],
  });

  it('creates, keeps, and replaces only the pub_hash selectors when allowed', () => {
    const created = planAliasBinding({
      spiffeId: ALIAS,
      pubHash: H1,
      replace: false,
      existing: [],
    });
    expect(created).toEqual({
      action: 'create',
      selectors: [{ type: 'tpm', value: `pub_hash:${H1}` }],
    });
    expect(outcomeOf(created)).toBe('created');
    const kept = planAliasBinding({
      spiffeId: ALIAS,
      pubHash: H1,
      replace: false,
      existing: [entry('a', H2), entry('b', H1)],
    });
    expect(kept).toEqual({ action: 'keep', entryId: 'b' });
    expect(outcomeOf(kept)).toBe('already-registered');
    const replaced = planAliasBinding({
      spiffeId: ALIAS,
      pubHash: H1,
      replace: true,
      existing: [entry('a', H2)],
    });
    expect(replaced).toEqual({
      action: 'replace',
      entryId: 'a',
      previousPubHashes: [H2],
      selectors: [
        { type: 'unix', value: 'uid:0' },
        { type: 'tpm', value: `pub_hash:${H1}` },
      ],
    });
    expect(outcomeOf(replaced)).toBe('replaced');
  });

  it('refuses a foreign binding without replace and several entries even with it', () => {
    for (const [existing, replace, message] of [
      [
        [entry('a', H2)],
        false,
        `${ALIAS} is already bound to another device (pub_hash ${H2}, entry a): HINT`,
      ],
      [
        [entry('a')],
        false,
        `${ALIAS} is already bound to another device (selectors without a pub_hash, entry a): HINT`,
      ],
      [
        [entry('a', H2), entry('b')],
        true,
        `${ALIAS} has 2 node alias entries: resolve them with spire-server entry show/delete first`,
      ],
    ] as const) {
      try {
        planAliasBinding({ spiffeId: ALIAS, pubHash: H1, replace, existing, replaceHint: 'HINT' });
        expect.unreachable();
      } catch (err) {
        expect(isSpireEdgeError(err, 'ERR_ENROLL_ALIAS_CONFLICT')).toBe(true);
        expect((err as Error).message).toBe(message);
      }
    }
    expect(() =>
      planAliasBinding({ spiffeId: ALIAS, pubHash: 'AB', replace: false, existing: [] }),
    ).toThrow(TypeError);
  });

  it('lists the other aliases of a device, sorted, without the entry itself', () => {
    const list = [
      { ...entry('x', H1), spiffeId: 'spiffe://example.org/z' },
      { ...entry('y', H1), spiffeId: 'spiffe://example.org/a' },
      { ...entry('self', H1), spiffeId: ALIAS },
      { ...entry('w', H2), spiffeId: 'spiffe://example.org/other' },
    ];
    expect(otherAliasesOf(list, 'self', H1)).toEqual([
      'spiffe://example.org/a',
      'spiffe://example.org/z',
    ]);
  });
});

const ek = makeEk('ecc', 'P-256');
const ekPublic = marshalTpm2bPublic(ek.public);
const spki = spkiFromTpmtPublic(ek.public);
const hash = createHash('sha256').update(spki).digest('hex');
const ca = makeCa('Test EK CA', { kind: 'ec' });
const ekCert = new Uint8Array([
  ...makeEkCert(ca, createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })),
  ...new Uint8Array(16).fill(0xff),
]);
const dir = mkdtempSync(join(tmpdir(), 'tpm-enroll-net-'));
const bundlePath = join(dir, 'bundle.pem');
writeFileSync(bundlePath, encodePem('CERTIFICATE', ca.der));
const tokenPath = join(dir, 'token.txt');
const TOKEN = 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG0';
writeFileSync(tokenPath, `${TOKEN}\n`);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tpm: EnrollTpm = {
  ekPublic: async () => ekPublic,
  readEkCertificate: async () => ekCert,
  readPcrs: async (s) => new Map(s.indices.map((i) => [i, new Uint8Array(32)])),
  close: async () => {},
};

interface Call {
  server: { host: string; port: number; trustDomain: string; bundle: readonly Uint8Array[] };
  req: enrollmentv1.EnrollDeviceRequest | undefined;
}

async function run(
  args: string[],
  answer: (req: enrollmentv1.EnrollDeviceRequest) => enrollmentv1.EnrollDeviceResponse = (req) =>
    create(enrollmentv1.EnrollDeviceResponseSchema, {
      spiffeId: req.spiffeId,
      pubHash: hash,
      outcome: enrollmentv1.EnrollOutcome.CREATED,
      entryId: 'e-1',
      otherAliases: ['spiffe://example.org/old'],
    }),
  env: Record<string, string> = {},
) {
  const stdout = new StringWriter();
  const stderr = new StringWriter();
  const io: CliIo = { stdout, stderr, stdin: (async function* () {})(), env };
  const calls: Call[] = [];
  let opened = 0;
  const code = await main(args, io, {
    openTpm: async () => {
      opened++;
      return tpm;
    },
    enrollmentClient: (server) => {
      const call: Call = { server, req: undefined };
      calls.push(call);
      const client: EnrollmentClient = {
        enrollDevice: (async (req: enrollmentv1.EnrollDeviceRequest) => {
          call.req = create(enrollmentv1.EnrollDeviceRequestSchema, req);
          return answer(call.req);
        }) as unknown as EnrollmentClient['enrollDevice'],
      };
      return { client, close: () => {} };
    },
  });
  return { code, out: stdout.text, err: stderr.text, calls, opened };
}

const net = (...extra: string[]) => [
  '-pcrs',
  'none',
  '-serverAddress',
  'spire.example',
  '-trustBundle',
  bundlePath,
  '-spiffeID',
  ALIAS,
  ...extra,
];

describe('tpm-enroll -serverAddress', () => {
  it('sends the token, alias and raw EK bytes over TLS to the trust domain server, and prints the outcome', async () => {
    const r = await run(net('-provisioningToken', TOKEN, '-serverPort', '9443'));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const [call] = r.calls;
    expect(call!.server).toMatchObject({
      host: 'spire.example',
      port: 9443,
      trustDomain: 'example.org',
    });
    expect(call!.server.bundle).toEqual([ca.der]);
    expect(call!.req).toMatchObject({ token: TOKEN, spiffeId: ALIAS });
    expect(call!.req!.ekPublic).toEqual(ekPublic);
    expect(call!.req!.ekCert).toEqual(ekCert);
    expect(r.out).toContain(`\nRegistered ${ALIAS} for tpm:pub_hash:${hash} (entry e-1)\n`);
    expect(r.out).toContain('Note: this device is also bound to spiffe://example.org/old\n');
  });

  it('reads the token from -provisioningTokenFile or the environment, and prints JSON', async () => {
    const fromFile = await run(net('-provisioningTokenFile', tokenPath, '-output', 'json'));
    expect(fromFile.code).toBe(0);
    expect(fromFile.calls[0]!.req!.token).toBe(TOKEN);
    expect(JSON.parse(fromFile.out).registration).toEqual({
      outcome: 'created',
      entry_id: 'e-1',
      spiffe_id: ALIAS,
      previous_pub_hashes: [],
      other_aliases: ['spiffe://example.org/old'],
    });
    const fromEnv = await run(net(), undefined, { SPIRE_EDGE_PROVISIONING_TOKEN: ` ${TOKEN} ` });
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.calls[0]!.req!.token).toBe(TOKEN);
    expect(fromEnv.calls[0]!.server.port).toBe(8081);
  });

  it('prints the server refusal as a gRPC error', async () => {
    const r = await run(net('-provisioningToken', TOKEN), () => {
      throw new ConnectError(
        'provisioning token is unknown, used or expired',
        Code.PermissionDenied,
      );
    });
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      'Error: rpc error: code = PermissionDenied desc = provisioning token is unknown, used or expired\n',
    );
  });

  it('names an untrusted server (certificate chain or SPIFFE ID) instead of a bare gRPC error', async () => {
    for (const [code, message] of [
      ['SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'],
      [
        'ERR_TLS_SERVER_IDENTITY_REJECTED',
        'server certificate is not an X509-SVID for spiffe://example.org/spire/server',
      ],
    ] as const) {
      const r = await run(net('-provisioningToken', TOKEN), () => {
        const cause = Object.assign(new Error(message), { code });
        throw new ConnectError(message, Code.Internal, undefined, undefined, cause);
      });
      expect(r.code).toBe(1);
      expect(r.err).toBe(
        `Error: the server at spire.example:8081 is not trusted (check -trustBundle): ${message}\n`,
      );
    }
  });

  it('refuses an answer for another device or alias', async () => {
    const r = await run(net('-provisioningToken', TOKEN), (req) =>
      create(enrollmentv1.EnrollDeviceResponseSchema, {
        spiffeId: req.spiffeId,
        pubHash: 'f'.repeat(64),
        outcome: enrollmentv1.EnrollOutcome.CREATED,
      }),
    );
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `Error: the server's enrollment answer does not match the request: pub_hash ${'f'.repeat(64)} (this device has ${hash})\n`,
    );
    const none = await run(net('-provisioningToken', TOKEN), (req) =>
      create(enrollmentv1.EnrollDeviceResponseSchema, { spiffeId: req.spiffeId, pubHash: hash }),
    );
    expect(none.err).toBe(
      "Error: the server's enrollment answer does not match the request: no outcome (0)\n",
    );
  });

  for (const [args, env, message] of [
    [
      net(),
      {},
      'Error: -serverAddress needs a provisioning token (-provisioningToken, -provisioningTokenFile or env SPIRE_EDGE_PROVISIONING_TOKEN)\n',
    ],
    [
      ['-serverAddress', 'h', '-spiffeID', ALIAS, '-provisioningToken', TOKEN],
      {},
      "Error: -serverAddress needs -trustBundle (the server's trust bundle PEM file)\n",
    ],
    [
      ['-serverAddress', 'h', '-trustBundle', bundlePath, '-provisioningToken', TOKEN],
      {},
      "Error: -serverAddress needs -spiffeID (the provisioning token's alias)\n",
    ],
    [
      net('-register', '-provisioningToken', TOKEN),
      {},
      'Error: -register and -serverAddress exclude each other\n',
    ],
    [
      net('-replace', '-provisioningToken', TOKEN),
      {},
      'Error: -replace does not apply with -serverAddress: the provisioning token carries it (spire-server enrollment token generate -replace)\n',
    ],
    [
      net('-provisioningToken', TOKEN, '-provisioningTokenFile', tokenPath),
      {},
      'Error: -provisioningToken and -provisioningTokenFile exclude each other\n',
    ],
    [
      net('-provisioningToken', TOKEN, '-serverPort', '70000'),
      {},
      'Error: -serverPort must be in 1..65535\n',
    ],
    [['-provisioningToken', TOKEN], {}, 'Error: -provisioningToken needs -serverAddress\n'],
    [['-trustBundle', bundlePath], {}, 'Error: -trustBundle needs -serverAddress\n'],
    [
      net('-provisioningTokenFile', join(dir, 'missing')),
      {},
      /^Error: -provisioningTokenFile: cannot read .*missing: ENOENT/,
    ],
    [
      net('-provisioningToken', TOKEN, '-trustBundle', tokenPath),
      {},
      /^Error: -trustBundle: cannot read certificates from .*token\.txt: /,
    ],
  ] as const) {
    it(`refuses ${args.slice(-2).join(' ')} before opening the TPM: ${String(message).slice(7, 60)}`, async () => {
      const r = await run([...args], undefined, { ...env });
      expect(r.code).toBe(1);
      if (typeof message === 'string') expect(r.err).toBe(message);
      else expect(r.err).toMatch(message);
      expect(r.opened).toBe(0);
      expect(r.calls).toEqual([]);
    });
  }

  it('documents the network flags in -h', async () => {
    const r = await run(['-h']);
    expect(r.code).toBe(0);
    for (const flag of [
      '-serverAddress',
      '-serverPort',
      '-trustBundle',
      '-provisioningToken',
      '-provisioningTokenFile',
    ]) {
      expect(r.err).toContain(`  ${flag} `);
    }
    expect(r.err).toContain('SPIRE_EDGE_PROVISIONING_TOKEN');
  });
});
