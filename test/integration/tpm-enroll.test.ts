/**
 * `tpm-enroll` against a real software TPM (swtpm) and a real admin server (SQLite datastore,
 * admin API on a Unix socket), in-process through `main(argv, io)`:
 * - the printed pub_hash equals SHA-256 of the SPKI DER of `tpm2_createek -f pem`'s key
 *   (converted by `openssl pkey -pubin -outform der`): two independent implementations;
 * - JSON fields (EK public PEM, EK certificate with manufacturer/model/version, PCR values
 *   that follow `tpm2_pcrextend`), and the printed `spire-server entry create` command;
 * - `-register`: creates the node alias entry, a second run is idempotent, another device
 *   with the same alias is refused, `-replace` rebinds it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliIo, StringWriter } from '../../src/common/cli/io.js';
import { main } from '../../src/enroll/main.js';
import type { EnrollmentRecord } from '../../src/enroll/record.js';
import { evaluatePolicies, loadFirmwarePolicies } from '../../src/policy/index.js';
import { makeTempDir, removeTempDir } from '../harness/common.js';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';
import { type RealAdmin, startRealAdmin } from '../unit/server/cli/support.js';

let tpmA: SwtpmInstance;
let tpmB: SwtpmInstance;
let admin: RealAdmin;
let dir: string;

async function enroll(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new StringWriter();
  const stderr = new StringWriter();
  const io: CliIo = { stdout, stderr, stdin: (async function* () {})(), env: {} };
  const code = await main(args, io);
  return { code, out: stdout.text, err: stderr.text };
}

async function enrollJson(args: string[]): Promise<EnrollmentRecord & Record<string, unknown>> {
  const r = await enroll([...args, '-output', 'json']);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as EnrollmentRecord & Record<string, unknown>;
}

beforeAll(async () => {
  dir = await makeTempDir('tpm-enroll-');
  [tpmA, tpmB, admin] = await Promise.all([
    startSwtpm(),
    startSwtpm({ uniqueEk: true }),
    startRealAdmin(),
  ]);
});

afterAll(async () => {
  await Promise.all([tpmA?.stop(), tpmB?.stop(), admin?.close()]);
  if (dir !== undefined) await removeTempDir(dir);
});

function opensslSpkiHash(pemPath: string): string {
  const r = spawnSync('openssl', ['pkey', '-pubin', '-in', pemPath, '-outform', 'der']);
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(`openssl pkey failed (run scripts/setup.sh): ${r.error?.message ?? r.stderr}`);
  }
  return createHash('sha256').update(r.stdout).digest('hex');
}

describe('tpm-enroll on a swtpm', () => {
  it('prints the pub_hash that tpm2_createek + openssl compute, for RSA and ECC P-384 EKs', async () => {
    for (const [alg, toolAlg] of [
      ['rsa', 'rsa'],
      ['ecc-p384', 'ecc384'],
    ] as const) {
      const pem = join(dir, `ek-${alg}.pem`);
      await tpmA.tpm2([
        'createek',
        '-c',
        join(dir, `ek-${alg}.ctx`),
        '-G',
        toolAlg,
        '-f',
        'pem',
        '-u',
        pem,
      ]);
      await tpmA.tpm2(['flushcontext', '-t']);
      const record = await enrollJson(['-tcti', tpmA.tcti, '-ekAlgorithm', alg]);
      expect(record.pub_hash).toBe(opensslSpkiHash(pem));
      expect(record.ek_algorithm).toBe(alg);
      // swtpm stores certificates for both EKs: each parses and certifies that EK.
      expect(record.warnings).toEqual([]);
      expect(record.ek_certificate_pem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
      // The EK public PEM printed is that same key.
      expect(record.ek_public_pem.replace(/\s/g, '')).toBe(
        (await readFile(pem, 'utf8')).replace(/\s/g, ''),
      );
    }
  });

  it('warns when the EK has no certificate in NV (swtpm has none for the P-256 EK)', async () => {
    const record = await enrollJson([
      '-tcti',
      tpmA.tcti,
      '-ekAlgorithm',
      'ecc-p256',
      '-pcrs',
      'none',
    ]);
    expect(record.ek_certificate_pem).toBeUndefined();
    expect(record.manufacturer).toBeUndefined();
    expect(record.pcrs).toEqual({});
    expect(record.warnings).toEqual([
      'no ecc-p256 EK certificate in NV: the server must enroll this pub_hash (require_ek_cert = false)',
    ]);
  });

  it('prints the EK certificate, TPM attributes, PCR values and the entry-create command', async () => {
    await tpmA.tpm2(['pcrextend', `7:sha256=${'11'.repeat(32)}`]);
    const record = await enrollJson([
      '-tcti',
      tpmA.tcti,
      '-pcrs',
      'sha256:0,7',
      '-spiffeID',
      'spiffe://example.org/gw/1',
    ]);
    expect(record.ek_certificate_pem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(record.manufacturer).toMatch(/^id:[0-9A-F]{8}$/);
    expect(record.model).toBeTruthy();
    expect(record.version).toBeTruthy();
    expect(record.ek_issuer_cn).toBe('swtpm-localca');
    expect(record.warnings).toEqual([]);
    const pcr7 = createHash('sha256')
      .update(Buffer.alloc(32))
      .update(Buffer.alloc(32, 0x11))
      .digest('hex');
    expect(record.pcrs).toEqual({ sha256: { '0': '00'.repeat(32), '7': pcr7 } });
    expect(record.agent_id).toBe(`spiffe://example.org/spire/agent/tpm/${record.pub_hash}`);
    expect(record.selector).toBe(`tpm:pub_hash:${record.pub_hash}`);
    expect(record.entry_create_command).toBe(
      `spire-server entry create -node -spiffeID spiffe://example.org/gw/1 -selector tpm:pub_hash:${record.pub_hash}`,
    );
    // The pretty layout carries the same facts.
    const pretty = await enroll(['-tcti', tpmA.tcti, '-pcrs', 'sha256:7']);
    expect(pretty.code).toBe(0);
    expect(pretty.out).toContain(`pub_hash         : ${record.pub_hash}\n`);
    expect(pretty.out).toContain(`PCR sha256:7     : ${pcr7}\n`);
    expect(pretty.out).toContain(
      `spire-server entry create -node -spiffeID 'spiffe://<trust-domain>/<path>' -selector tpm:pub_hash:${record.pub_hash}`,
    );
  });

  it('writes a firmware policy from the PCRs read, which stops matching once a PCR is extended', async () => {
    const file = join(dir, 'gw-fw.json');
    const first = await enrollJson([
      '-tcti',
      tpmA.tcti,
      '-pcrs',
      'sha256:0,1,2,3,4,5,6,7',
      '-writePolicy',
      file,
      '-policyName',
      'gw-fw-2026.1',
    ]);
    const policies = loadFirmwarePolicies([
      { name: 'gw-fw.json', text: await readFile(file, 'utf8') },
    ]);
    const asMap = (r: EnrollmentRecord) =>
      new Map(
        Object.entries(r.pcrs).map(([bank, v]) => [
          bank,
          new Map(Object.entries(v).map(([i, d]) => [Number(i), d])),
        ]),
      );
    expect(evaluatePolicies(policies, asMap(first))).toEqual(['gw-fw-2026.1']);
    await tpmA.tpm2(['pcrextend', `4:sha256=${'22'.repeat(32)}`]);
    const after = await enrollJson(['-tcti', tpmA.tcti]);
    expect(after.pcrs['sha256']!['4']).not.toBe(first.pcrs['sha256']!['4']);
    expect(evaluatePolicies(policies, asMap(after))).toEqual([]);
    // An existing policy file is never overwritten.
    const again = await enroll(['-tcti', tpmA.tcti, '-writePolicy', file, '-policyName', 'x']);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/^Error: EEXIST/);
  });

  it('fails with a precise error for a bank the TPM has not activated', async () => {
    const r = await enroll(['-tcti', tpmA.tcti, '-pcrs', 'sha384:0']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^Error: could not read sha384 pcrs: .*pcr bank not active/);
  });
});

describe('tpm-enroll -register against a real admin server', () => {
  const alias = 'spiffe://example.org/gw/1';
  const reg = (tpm: SwtpmInstance, ...extra: string[]) => [
    '-tcti',
    tpm.tcti,
    '-pcrs',
    'none',
    '-register',
    '-socketPath',
    admin.socketPath,
    '-spiffeID',
    alias,
    ...extra,
  ];

  async function aliasEntries() {
    const { items } = await admin.dataStore.listEntries({});
    return items.filter((e) => e.spiffeId === alias);
  }

  it('creates the alias entry, is idempotent, refuses another device, and rebinds with -replace', async () => {
    const first = await enrollJson(reg(tpmA));
    const hashA = first.pub_hash;
    expect(first['registration']).toMatchObject({ outcome: 'created', spiffe_id: alias });
    let entries = await aliasEntries();
    expect(entries).toHaveLength(1);
    expect(entries[0]!.parentId).toBe('spiffe://example.org/spire/server');
    expect(entries[0]!.selectors).toEqual([{ type: 'tpm', value: `pub_hash:${hashA}` }]);

    const again = await enroll(reg(tpmA));
    expect(again.code).toBe(0);
    expect(again.out).toContain(`Already registered: ${alias} is bound to tpm:pub_hash:${hashA}`);
    expect(await aliasEntries()).toHaveLength(1);

    const other = await enroll(reg(tpmB));
    expect(other.code).toBe(1);
    expect(other.err).toMatch(
      new RegExp(
        `^Error: ${alias} is already bound to another device \\(pub_hash ${hashA}, entry `,
      ),
    );
    expect(other.err).toContain('use -replace to rebind it');
    entries = await aliasEntries();
    expect(entries[0]!.selectors).toEqual([{ type: 'tpm', value: `pub_hash:${hashA}` }]);

    const replaced = await enrollJson(reg(tpmB, '-replace'));
    expect(replaced.pub_hash).not.toBe(hashA);
    expect(replaced['registration']).toMatchObject({
      outcome: 'replaced',
      previous_pub_hashes: [hashA],
      entry_id: entries[0]!.id,
    });
    entries = await aliasEntries();
    expect(entries).toHaveLength(1);
    expect(entries[0]!.selectors).toEqual([
      { type: 'tpm', value: `pub_hash:${replaced.pub_hash}` },
    ]);

    // The same device under a second alias: created, with a note naming the first.
    const second = await enroll(
      reg(tpmB).map((a) => (a === alias ? 'spiffe://example.org/gw/2' : a)),
    );
    expect(second.code).toBe(0);
    expect(second.out).toContain('Registered spiffe://example.org/gw/2 for tpm:pub_hash:');
    expect(second.out).toContain(`Note: this device is also bound to ${alias}\n`);
    // Registering the first device again says nothing of other aliases.
    const rebindA = await enroll(reg(tpmA, '-replace'));
    expect(rebindA.code).toBe(0);
    expect(rebindA.out).not.toContain('Note:');
  });

  it('fails with the socket error when no server listens', async () => {
    const r = await enroll([
      ...reg(tpmA).filter((a) => a !== admin.socketPath && a !== '-socketPath'),
      '-socketPath',
      join(dir, 'missing.sock'),
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^Error: could not list entries for spiffe:\/\/example\.org\/gw\/1: /);
  });
});
