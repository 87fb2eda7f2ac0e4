/**
 * TPM attestation end to end, as an operator drives it, with real processes and a real swtpm:
 *
 * 0. "firmware" measures a boot into the swtpm (tpm2_pcrextend of each event of a TCG event
 *    log with Secure Boot on) and leaves the log where the agent's `event_log_path` points;
 * 1. on the device, `tpm-enroll` prints the enrollment record and writes a firmware policy
 *    from the device's current PCRs (`-writePolicy`) into the server's policy directory;
 * 2. `spire-server entry create -node -spiffeID spiffe://example.org/gw/1 -selector
 *    tpm:pub_hash:<hash>` (the record's own command), a workload entry under it, a node
 *    alias for the firmware policy (`-selector tpm:policy:gw-fw`) and a workload entry under
 *    that;
 * 3. `spire-agent run` with `NodeAttestor "tpm"` attests with the swtpm; a workload gets both
 *    SVIDs; `agent show` lists the TPM selectors (with `tpm:secure_boot:true` from the replayed
 *    event log) and says the policy is satisfied;
 * 4. a PCR is extended and the event logged (a firmware change): at the agent's next SVID
 *    renewal it re-attests
 *    with a fresh quote, loses `tpm:policy:gw-fw`, and the workload's stream drops the
 *    policy-bound SVID while keeping the other; `agent show` says which PCR broke the policy.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEventLog } from '../../src/tpm/index.js';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';
import {
  ALG,
  agileLog,
  agileRecord,
  EV,
  pcr7Events,
} from '../unit/tpm/support/event-log-builder.js';
import {
  agentApiPort,
  ensureBuilt,
  entryIdOf,
  ROOT,
  runCommand,
  type ServiceProcess,
  serverCommand,
  startAgentProcess,
  startServerProcess,
  TPM_ENROLL,
  type WorkloadEvent,
  WorkloadProcess,
  writeAgentConfig,
  writeServerConfig,
} from './support.js';

const TD = 'example.org';
const dir = mkdtempSync(join(tmpdir(), 'e2e-tpm-agent-'));
const policyDir = join(dir, 'policies');
const ekCaPath = join(dir, 'ek-ca.pem');
const eventLogPath = join(dir, 'binary_bios_measurements');
const SPEC = { algorithms: [[ALG.sha256, 32]] as Array<readonly [number, number]> };
let server: ServiceProcess | undefined;
let agent: ServiceProcess | undefined;
let workload: WorkloadProcess | undefined;
let tpm: SwtpmInstance;
let socketPath: string;
let spire: (...args: string[]) => Promise<{ code: number | null; out: string; err: string }>;
let pubHash: string;
let agentId: string;

beforeAll(async () => {
  ensureBuilt(join(ROOT, 'dist', 'enroll', 'main.js'));
  ensureBuilt(join(ROOT, 'dist', 'agent', 'cli', 'main.js'));
  tpm = await startSwtpm({ uniqueEk: true });
  mkdirSync(policyDir, { mode: 0o700 });
  // The boot the firmware measured: S-CRTM version, separators, PCR 7 with Secure Boot on.
  const log = agileLog(SPEC, [
    { pcr: 0, type: EV.S_CRTM_VERSION, data: 'gateway firmware 2026.1' },
    ...[0, 1, 2, 3, 4, 5, 6].map((pcr) => ({ pcr, type: EV.SEPARATOR, data: '\0\0\0\0' })),
    ...pcr7Events(Uint8Array.of(1)),
  ]);
  await measure(log);
  writeFileSync(eventLogPath, log);
  writeFileSync(ekCaPath, tpm.ekCaCertPaths.map((p) => readFileSync(p, 'utf8')).join(''));
  const cfg = writeServerConfig({
    dir,
    trustDomain: TD,
    extraServer: '  agent_ttl = "24s"',
    extraPlugins: `  NodeAttestor "tpm" {
    plugin_data {
      ek_ca_path = "${ekCaPath}"
      firmware_policies_path = "${policyDir}"
    }
  }`,
  });
  socketPath = cfg.socketPath;
  spire = serverCommand(socketPath);
  server = await startServerProcess(cfg.path, socketPath);
}, 240_000);

afterAll(async () => {
  await workload?.kill();
  if (agent !== undefined) await agent.stop();
  if (server !== undefined) expect(await server.stop()).toBe(0);
  await tpm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Extends every measured event of `log` into the swtpm, as firmware would. */
async function measure(log: Uint8Array): Promise<void> {
  for (const e of parseEventLog(log).events) {
    if (e.type === EV.NO_ACTION) continue;
    const digest = Buffer.from(e.digests.get('sha256')!).toString('hex');
    await tpm.tpm2(['pcrextend', `${e.pcrIndex}:sha256=${digest}`]);
  }
}

function svidIds(e: WorkloadEvent): string[] {
  return ((e['svids'] ?? []) as Array<{ id: string }>).map((s) => s.id).sort();
}

async function agentShow(): Promise<string> {
  const r = await spire('agent', 'show', '-spiffeID', agentId);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return r.out;
}

describe('TPM-attested agent (swtpm, real processes)', () => {
  it('tpm-enroll → node entry → workload entry → SVID; a firmware policy entry follows the PCRs', async () => {
    // 1. On the device: the enrollment record, and a policy from its current PCRs.
    const enroll = await runCommand(TPM_ENROLL, [
      '-tcti',
      tpm.tcti,
      '-spiffeID',
      `spiffe://${TD}/gw/1`,
      '-pcrs',
      'sha256:0,1,2,3,4,5,6,7',
      '-writePolicy',
      join(policyDir, 'gw-fw.json'),
      '-policyName',
      'gw-fw',
      '-output',
      'json',
    ]);
    expect(enroll.err).toBe('');
    expect(enroll.code).toBe(0);
    const record = JSON.parse(enroll.out) as { pub_hash: string; entry_create_command: string };
    pubHash = record.pub_hash;
    agentId = `spiffe://${TD}/spire/agent/tpm/${pubHash}`;

    // 2. On the server: the record's own command, then the entries.
    const [, ...createArgs] = record.entry_create_command.split(' ');
    const node = await spire(...createArgs);
    expect(node.err).toBe('');
    expect(node.out).toMatch(new RegExp(`^Selector\\s+: tpm:pub_hash:${pubHash}$`, 'm'));
    const uid = String(process.getuid!());
    for (const args of [
      ['-parentID', `spiffe://${TD}/gw/1`, '-spiffeID', `spiffe://${TD}/telemetry`],
      ['-node', '-spiffeID', `spiffe://${TD}/fw/gw-fw`, '-selector', 'tpm:policy:gw-fw'],
      ['-parentID', `spiffe://${TD}/fw/gw-fw`, '-spiffeID', `spiffe://${TD}/firmware-updater`],
    ]) {
      const sel = args.includes('-node') ? [] : ['-selector', `unix:uid:${uid}`];
      const r = await spire('entry', 'create', ...args, ...sel);
      expect(r.err).toBe('');
      expect(entryIdOf(r.out)).not.toBe('');
    }

    // 3. The agent attests with the TPM; the workload gets both SVIDs.
    const bundle = await spire('bundle', 'show');
    expect(bundle.code).toBe(0);
    const bundlePath = join(dir, 'bundle.pem');
    writeFileSync(bundlePath, bundle.out);
    const agentCfg = writeAgentConfig({
      dir: join(dir, 'agent'),
      serverPort: agentApiPort(server!),
      bundlePath,
      trustDomain: TD,
      nodeAttestor: `NodeAttestor "tpm" {
    plugin_data {
      tcti = "${tpm.tcti}"
      event_log_path = "${eventLogPath}"
    }
  }`,
    });
    agent = await startAgentProcess(agentCfg.path);
    workload = new WorkloadProcess(['watch', '--retry'], { socketPath: agentCfg.socketPath });
    let e = await workload.next(60_000);
    while (svidIds(e).length < 2) e = await workload.next(60_000);
    expect(svidIds(e)).toEqual([`spiffe://${TD}/firmware-updater`, `spiffe://${TD}/telemetry`]);

    const shown = await agentShow();
    expect(shown).toMatch(new RegExp(`^Selectors\\s+: tpm:pub_hash:${pubHash}$`, 'm'));
    expect(shown).toMatch(/^Selectors\s+: tpm:policy:gw-fw$/m);
    expect(shown).toMatch(/^Selectors\s+: tpm:secure_boot:true$/m);
    expect(shown).toMatch(
      /^Event log\s+: crypto-agile, \d+ events, replay matches the quote for sha256 0-7, Secure Boot on$/m,
    );
    const pcr7Before = /^Selectors\s+: tpm:pcr:sha256:7:([0-9a-f]{64})$/m.exec(shown)?.[1];
    expect(pcr7Before).toBeDefined();
    expect(shown).toMatch(/^Firmware policy\s+: gw-fw: satisfied$/m);
    expect(shown).toMatch(/^TPM EK\s+: pub_hash [0-9a-f]{64}, manufacturer id:/m);

    // 4. A firmware change: a new db certificate measured into PCR 7 and logged. The next
    // renewal re-attests (the log still replays) and loses the policy.
    const change = agileRecord(SPEC.algorithms, {
      pcr: 7,
      type: EV.EFI_VARIABLE_AUTHORITY,
      data: 'db: new signing certificate',
    });
    const log2 = new Uint8Array(Buffer.concat([readFileSync(eventLogPath), change]));
    await measure(new Uint8Array(Buffer.concat([agileLog(SPEC, []), change])));
    writeFileSync(eventLogPath, log2);
    const changedAt = Date.now();
    for (;;) {
      e = await workload.next(60_000);
      if (svidIds(e).length === 1) break;
    }
    expect(svidIds(e)).toEqual([`spiffe://${TD}/telemetry`]);
    // Within about one agent SVID half-life (agent_ttl 24 s) plus a sync.
    expect(Date.now() - changedAt).toBeLessThan(45_000);

    const after = await agentShow();
    expect(after).not.toMatch(/tpm:policy:gw-fw/);
    expect(after).toMatch(/^Selectors\s+: tpm:pcr:sha256:7:[0-9a-f]{64}$/m);
    expect(after).not.toContain(`tpm:pcr:sha256:7:${pcr7Before}`);
    expect(after).toMatch(/^Selectors\s+: tpm:secure_boot:true$/m);
    expect(after).toMatch(
      /^Firmware policy\s+: gw-fw: sha256 PCR 7 is [0-9a-f]{64}, not the digest the policy allows$/m,
    );
    expect(agent!.output()).toMatch(/re-?attest/i);
  }, 180_000);
});
