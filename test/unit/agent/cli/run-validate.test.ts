/**
 * `spire-agent validate` and `spire-agent run`: SPIRE's flags and texts, flags merged over the
 * file, unsupported flags refused, and a real agent started in-process from a config file
 * (server unreachable, so it serves `Unavailable` until it attests) and stopped by its signal.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../../../src/agent/cli/run.js';
import { encodePem } from '../../../../src/common/pem.js';
import { type CliResult, makeDomain, runCli, runCommandObject, tempDir } from './support.js';

let tmp: { dir: string; cleanup(): void };
let conf: string;

beforeAll(async () => {
  tmp = tempDir('agent-cli-run-');
  const own = await makeDomain('example.org');
  writeFileSync(join(tmp.dir, 'bundle.pem'), encodePem('CERTIFICATE', own.caDer));
  conf = join(tmp.dir, 'agent.conf');
  writeFileSync(
    conf,
    `agent {
  data_dir = "${tmp.dir}/data"
  server_address = "127.0.0.1"
  server_port = "1"
  socket_path = "${tmp.dir}/public/api.sock"
  trust_bundle_path = "${tmp.dir}/bundle.pem"
  trust_domain = "example.org"
  log_level = "DEBUG"
}

plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
  );
});

afterAll(() => tmp?.cleanup());

const VALID = 'SPIRE agent configuration file is valid.\n';
const INVALID = 'SPIRE agent configuration file is invalid: ';

describe('validate', () => {
  it('accepts a valid file (stdout, exit 0)', async () => {
    expect(await runCli(['validate', '-config', conf])).toEqual({ code: 0, out: VALID, err: '' });
  });

  it('merges flags over the file and checks them like the file', async () => {
    expect((await runCli(['validate', '-config', conf, '-serverPort', '8443'])).code).toBe(0);
    const r = await runCli(['validate', '-config', conf, '-logLevel', 'loud']);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err.startsWith(INVALID)).toBe(true);
    expect(r.err).toContain('loud');
    // a -trustBundleUrl beside the file's trust_bundle_path breaks SPIRE's one-source rule
    const both = await runCli([
      'validate',
      '-config',
      conf,
      '-trustBundleUrl',
      'https://example.org/bundle',
    ]);
    expect(both.code).toBe(1);
    expect(both.err).toContain('only one of trust_bundle_url or trust_bundle_path');
  });

  it('reports a missing file with the absolute path, as SPIRE does; -config is relative to the working directory', async () => {
    const r = await runCli(['validate', '-config', 'nope.conf'], { cwd: tmp.dir });
    expect(r).toEqual({
      code: 1,
      out: '',
      err: `${INVALID}could not find config file ${tmp.dir}/nope.conf: please use the -config flag\n`,
    });
    expect(await runCli(['validate', '-config', 'agent.conf'], { cwd: tmp.dir })).toEqual({
      code: 0,
      out: VALID,
      err: '',
    });
  });

  it('defaults -config to conf/agent/agent.conf', async () => {
    const r = await runCli(['validate'], { cwd: tmp.dir });
    expect(r.err).toBe(
      `${INVALID}could not find config file ${tmp.dir}/conf/agent/agent.conf: please use the -config flag\n`,
    );
  });

  it('reports unknown keys naming them', async () => {
    const bad = join(tmp.dir, 'bad.conf');
    writeFileSync(bad, 'agent {\n  trust_domian = "x"\n}\n');
    const r = await runCli(['validate', '-config', bad]);
    expect(r.code).toBe(1);
    expect(r.err.startsWith(INVALID)).toBe(true);
    expect(r.err).toContain('trust_domian');
  });

  it('refuses flags asking for what spire-edge does not have', async () => {
    for (const [flags, text] of [
      [['-disableWorkloadAPI'], '-disableWorkloadAPI is not supported'],
      [['-logSourceLocation'], '-logSourceLocation is not supported'],
      [['-rebootstrapMode', 'auto'], '-rebootstrapMode "auto" is not supported'],
      [['-rebootstrapDelay', '10s'], '-rebootstrapDelay is not supported'],
    ] as Array<[string[], string]>) {
      const r = await runCli(['validate', '-config', conf, ...flags]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`${INVALID}${text}`);
    }
    // accepted: what is already true here
    for (const flags of [['-disableSDSAPI'], ['-rebootstrapMode', 'never']]) {
      expect(await runCli(['validate', '-config', conf, ...flags])).toEqual({
        code: 0,
        out: VALID,
        err: '',
      });
    }
  });

  it("a bad flag prints Go's message and usage, then the invalid line", async () => {
    const r = await runCli(['validate', '-serverPort', 'x']);
    expect(r.code).toBe(1);
    const lines = r.err.split('\n');
    expect(lines[0]).toBe('invalid value "x" for flag -serverPort: parse error');
    expect(lines[1]).toBe('Usage of validate:');
    expect(r.err.endsWith(`${INVALID}invalid value "x" for flag -serverPort: parse error\n`)).toBe(
      true,
    );
  });

  it("has SPIRE's run flags in its help", async () => {
    const r = await runCli(['validate', '-h']);
    expect(r.code).toBe(0);
    expect(r.err).toContain(
      '  -config string\n    \tPath to a SPIRE config file (default "conf/agent/agent.conf")\n',
    );
    expect(r.err).toContain(
      '  -socketPath string\n    \tPath to bind the SPIRE Agent API socket to\n',
    );
    expect(r.err).toContain('  -serverPort int\n    \tPort number of the SPIRE server\n');
    expect(r.err.endsWith('flag: help requested\n')).toBe(true);
  });
});

describe('run', () => {
  it('a flag error prints the message and usage, then the message again (exit 1)', async () => {
    const r = await runCli(['run', '-bogus']);
    expect(r.code).toBe(1);
    expect(r.err.startsWith('flag provided but not defined: -bogus\nUsage of run:\n')).toBe(true);
    expect(r.err.endsWith('\nflag provided but not defined: -bogus\n')).toBe(true);
  });

  it("a missing config file fails with SPIRE's text (exit 1)", async () => {
    const r = await runCli(['run', '-config', join(tmp.dir, 'missing.conf')]);
    expect(r).toEqual({
      code: 1,
      out: '',
      err: `could not find config file ${tmp.dir}/missing.conf: please use the -config flag\n`,
    });
  });

  it('starts the agent from the file and flags, serves its socket, and stops cleanly on its signal', async () => {
    const stop = new AbortController();
    let health: CliResult | undefined;
    const r = await runCommandObject(
      runCommand({
        signal: stop.signal,
        onReady: () => {
          void runCli(['healthcheck', '-socketPath', join(tmp.dir, 'public', 'api.sock')])
            .then((h) => {
              health = h;
            })
            .finally(() => stop.abort());
        },
      }),
      ['-config', conf, '-joinToken', 'not-a-real-token', '-logFormat', 'json'],
    );
    expect(r.code).toBe(0);
    expect(r.out).toBe('');
    // -logFormat json was applied over the file
    const logLines = r.err.trim().split('\n');
    expect(logLines.length).toBeGreaterThan(0);
    for (const line of logLines) expect(() => JSON.parse(line)).not.toThrow();
    // not attested (the server is unreachable): the Workload API answers, but not ready
    expect(health).toEqual({
      code: 1,
      out: '',
      err: 'Agent is unhealthy: agent returned status "NOT_SERVING"\n',
    });
  }, 30_000);
});
