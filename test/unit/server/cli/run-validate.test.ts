/**
 * `spire-server run` / `validate` flags (SPIRE's run flags, shared by validate), their
 * conversion to configuration overrides, and `validate` against the real configuration loader.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlagSet } from '../../../../src/common/cli/flag-set.js';
import { defineServerFlags, toServerFlags } from '../../../../src/server/cli/server-flags.js';
import { runCli, tempDir } from './support.js';

const tmp = tempDir('cli-validate-');
afterAll(() => tmp.cleanup());

function config(dir: string, trustDomain: string): string {
  return `server {
  trust_domain = "${trustDomain}"
  data_dir = "${dir}/data"
  socket_path = "${dir}/api.sock"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${dir}/data/datastore.sqlite3"
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`;
}

describe('run / validate flags', () => {
  it('keeps only the flags that were given, as SPIRE merges them over the file', () => {
    const fs = new FlagSet('run');
    const flags = defineServerFlags(fs);
    expect(toServerFlags(flags)).toEqual({});
    fs.parse([
      '-config',
      'a.conf',
      '-trustDomain=example.org',
      '-dataDir',
      '/d',
      '-logLevel',
      'DEBUG',
      '-logFormat',
      'json',
      '-logFile',
      '/l',
      '-socketPath',
      '/s.sock',
      '-bindAddress',
      '127.0.0.1',
      '-serverPort',
      '8443',
      '-expandEnv',
      '-logSourceLocation',
    ]);
    expect(toServerFlags(flags)).toEqual({
      config: 'a.conf',
      trustDomain: 'example.org',
      dataDir: '/d',
      logLevel: 'DEBUG',
      logFormat: 'json',
      logFile: '/l',
      socketPath: '/s.sock',
      bindAddress: '127.0.0.1',
      serverPort: 8443,
      expandEnv: true,
    });
    expect(flags.logSourceLocation.value).toBe(true);
  });

  it('validates a configuration file and reports the problems of a bad one', async () => {
    const good = join(tmp.dir, 'server.conf');
    writeFileSync(good, config(tmp.dir, 'example.org'));
    expect(await runCli(['validate', '-config', good])).toEqual({
      code: 0,
      out: 'SPIRE server configuration file is valid.\n',
      err: '',
    });
    const bad = join(tmp.dir, 'bad.conf');
    writeFileSync(bad, config(tmp.dir, 'Not A Domain'));
    const r = await runCli(['validate', '-config', bad]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^SPIRE server configuration file is invalid: .*trust_domain/);
    const overridden = await runCli(['validate', '-config', good, '-trustDomain', 'Bad']);
    expect(overridden.code).toBe(1);
    expect(overridden.err).toMatch(/^SPIRE server configuration file is invalid: .*trust/);
    const missing = await runCli(['validate', '-config', join(tmp.dir, 'none.conf')]);
    expect(missing).toEqual({
      code: 1,
      out: '',
      err: `SPIRE server configuration file is invalid: could not find config file ${join(tmp.dir, 'none.conf')}: please use the -config flag\n`,
    });
  });

  it('prints flag errors as SPIRE run/validate do', async () => {
    const run = await runCli(['run', '-bogus']);
    expect(run.code).toBe(1);
    expect(run.err).toMatch(
      /^flag provided but not defined: -bogus\nUsage of run:\n {2}-bindAddress string\n[\s\S]+ {2}-trustDomain string\n {4}\tThe trust domain that this server belongs to\nflag provided but not defined: -bogus\n$/,
    );
    const validate = await runCli(['validate', '-serverPort', 'x']);
    expect(validate.code).toBe(1);
    expect(validate.err).toMatch(
      /^invalid value "x" for flag -serverPort: parse error\nUsage of validate:\n[\s\S]+SPIRE server configuration file is invalid: invalid value "x" for flag -serverPort: parse error\n$/,
    );
    const help = await runCli(['run', '-h']);
    expect(help.code).toBe(0);
    expect(help.err).toMatch(
      /^Usage of run:\n[\s\S]+ {2}-socketPath string\n[\s\S]+flag: help requested\n$/,
    );
  });
});
