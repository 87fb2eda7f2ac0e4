import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CONFIG_SIZE } from '../../../src/config/index.js';
import { loadServerConfigFile } from '../../../src/server/config.js';

const CONF = `server {
  trust_domain = "$TD"
  data_dir = "./data"
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" } }
  KeyManager "memory" {}
}
`;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spire-edge-config-'));
  await writeFile(join(dir, 'server.conf'), CONF);
  await writeFile(
    join(dir, 'server.json'),
    JSON.stringify({
      server: { trust_domain: 'json.example', data_dir: '/d' },
      plugins: {
        DataStore: { sql: { plugin_data: { database_type: 'sqlite3' } } },
        KeyManager: { memory: {} },
      },
    }),
  );
  await writeFile(
    join(dir, 'latin1.conf'),
    Buffer.from([0x61, 0x20, 0x3d, 0x20, 0x22, 0xe9, 0x22]),
  );
  await writeFile(join(dir, 'huge.conf'), `# ${'x'.repeat(MAX_CONFIG_SIZE)}\n`);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadServerConfigFile', () => {
  it('reads the file, expands the environment when asked and keeps relative paths as given', async () => {
    const path = join(dir, 'server.conf');
    const c = await loadServerConfigFile(path, { expandEnv: true }, { TD: 'file.example' });
    expect(c.source).toBe(path);
    expect(c.server.trustDomain.name).toBe('file.example');
    expect(c.server.dataDir).toBe('./data');
    expect(c.plugins.dataStore.data.connection_string).toBe('data/datastore.sqlite3');
  });

  it('takes the path from -config when no path is given, and reads JSON by extension', async () => {
    const c = await loadServerConfigFile(undefined, { config: join(dir, 'server.json') }, {});
    expect(c.format).toBe('json');
    expect(c.server.trustDomain.name).toBe('json.example');
  });

  it('reports problems with the path as given', async () => {
    const path = join(dir, 'server.conf');
    await expect(loadServerConfigFile(path, {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      message: `${path}:2: server.trust_domain is not a valid trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores`,
    });
  });

  it('says to use -config when the file is missing', async () => {
    await expect(loadServerConfigFile('no/such/server.conf', {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_NOT_FOUND',
      message: `could not find config file ${resolve('no/such/server.conf')}: please use the -config flag`,
    });
  });

  it('reports unreadable paths, non-UTF-8 text and oversized files', async () => {
    await expect(loadServerConfigFile(dir, {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_READ',
    });
    await expect(loadServerConfigFile(join(dir, 'latin1.conf'), {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      message: `${join(dir, 'latin1.conf')}: configuration is not valid UTF-8`,
    });
    await expect(loadServerConfigFile(join(dir, 'huge.conf'), {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      message: `${join(dir, 'huge.conf')}: configuration is larger than ${MAX_CONFIG_SIZE} bytes`,
    });
  });
});
