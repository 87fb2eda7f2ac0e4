import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createAgentPluginRegistry,
  loadAgentConfigFile,
  resolveJoinTokenFile,
} from '../../../src/agent/config.js';
import { definePlugin, MAX_CONFIG_SIZE } from '../../../src/config/index.js';

const PLUGINS = `plugins {
  NodeAttestor "join_token" {}
  KeyManager "memory" {}
  WorkloadAttestor "unix" {}
}
`;

const CONF = `agent {
  trust_domain = "$TD"
  data_dir = "./data"
  server_address = "127.0.0.1"
  insecure_bootstrap = true
}
${PLUGINS}`;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spire-edge-agent-config-'));
  await writeFile(join(dir, 'agent.conf'), CONF);
  await writeFile(
    join(dir, 'agent.json'),
    JSON.stringify({
      agent: {
        trust_domain: 'json.example',
        data_dir: '/d',
        server_address: 's',
        trust_bundle_path: '/b.pem',
      },
      plugins: {
        NodeAttestor: { join_token: {} },
        KeyManager: { memory: {} },
        WorkloadAttestor: [{ unix: {} }, { systemd: {} }],
      },
    }),
  );
  await writeFile(join(dir, 'token'), '  3b6c1a2d-join\n');
  await writeFile(join(dir, 'empty-token'), '\n  \n');
  await writeFile(
    join(dir, 'token.conf'),
    CONF.replace(
      'insecure_bootstrap = true',
      `insecure_bootstrap = true\n  join_token_file = "${join(dir, 'token')}"`,
    ),
  );
  await writeFile(
    join(dir, 'empty-token.conf'),
    CONF.replace(
      'insecure_bootstrap = true',
      `insecure_bootstrap = true\n  join_token_file = "${join(dir, 'empty-token')}"`,
    ),
  );
  await writeFile(
    join(dir, 'latin1.conf'),
    Buffer.from([0x61, 0x20, 0x3d, 0x20, 0x22, 0xe9, 0x22]),
  );
  await writeFile(join(dir, 'huge.conf'), `# ${'x'.repeat(MAX_CONFIG_SIZE)}\n`);
  await writeFile(
    join(dir, 'aws-iid.conf'),
    CONF.replace('$TD', 'example.org').replace(
      'NodeAttestor "join_token" {}',
      'NodeAttestor "aws_iid" {}',
    ),
  );
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadAgentConfigFile', () => {
  it('reads the file, expands the environment when asked and keeps relative paths as given', async () => {
    const path = join(dir, 'agent.conf');
    const c = await loadAgentConfigFile(path, { expandEnv: true }, { TD: 'file.example' });
    expect(c.source).toBe(path);
    expect(c.agent.trustDomain.name).toBe('file.example');
    expect(c.agent.dataDir).toBe('./data');
    expect(c.agent.trustBundle).toEqual({ kind: 'insecure' });
    expect(c.warnings).toHaveLength(1);
  });

  it('takes the path from -config when no path is given, and reads JSON by extension', async () => {
    const c = await loadAgentConfigFile(undefined, { config: join(dir, 'agent.json') }, {});
    expect(c.format).toBe('json');
    expect(c.agent.trustDomain.name).toBe('json.example');
    expect(c.plugins.workloadAttestors.map((p) => p.name)).toEqual(['unix', 'systemd']);
  });

  it('reads join_token_file into the join token, trimmed, as SPIRE does', async () => {
    const c = await loadAgentConfigFile(
      join(dir, 'token.conf'),
      { expandEnv: true },
      { TD: 'a.b' },
    );
    expect(c.agent.joinToken).toBe('3b6c1a2d-join');
    expect(c.agent.joinTokenFile).toBe(join(dir, 'token'));
    await expect(
      loadAgentConfigFile(join(dir, 'empty-token.conf'), { expandEnv: true }, { TD: 'a.b' }),
    ).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      message: `join token file ${join(dir, 'empty-token')} is empty`,
    });
    await expect(
      loadAgentConfigFile(
        join(dir, 'agent.conf'),
        {
          expandEnv: true,
          joinTokenFile: join(dir, 'no-such-token'),
        },
        { TD: 'a.b' },
      ),
    ).rejects.toMatchObject({
      code: 'ERR_CONFIG_READ',
      message: expect.stringMatching(/^unable to read join token file ".*no-such-token": /),
    });
    // Without a token file the config is returned as is.
    const plain = await loadAgentConfigFile(
      join(dir, 'agent.conf'),
      { expandEnv: true },
      { TD: 'a.b' },
    );
    expect(await resolveJoinTokenFile(plain)).toBe(plain);
  });

  it('reports problems with the path as given', async () => {
    const path = join(dir, 'agent.conf');
    await expect(loadAgentConfigFile(path, {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      message: `${path}:2: agent.trust_domain is not a valid trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores`,
    });
  });

  it('says to use -config when the file is missing', async () => {
    await expect(loadAgentConfigFile('no/such/agent.conf', {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_NOT_FOUND',
      message: `could not find config file ${resolve('no/such/agent.conf')}: please use the -config flag`,
    });
    await expect(loadAgentConfigFile(undefined, {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_NOT_FOUND',
      message: `could not find config file ${resolve('conf/agent/agent.conf')}: please use the -config flag`,
    });
  });

  it('reports unreadable paths, non-UTF-8 text and oversized files', async () => {
    await expect(loadAgentConfigFile(dir, {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_READ',
    });
    await expect(loadAgentConfigFile(join(dir, 'latin1.conf'), {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      message: `${join(dir, 'latin1.conf')}: configuration is not valid UTF-8`,
    });
    await expect(loadAgentConfigFile(join(dir, 'huge.conf'), {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      message: `${join(dir, 'huge.conf')}: configuration is larger than ${MAX_CONFIG_SIZE} bytes`,
    });
  });

  it('takes a plugin registry extended by another issue', async () => {
    const path = join(dir, 'aws-iid.conf');
    await expect(loadAgentConfigFile(path, {}, {})).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
    });
    const registry = createAgentPluginRegistry().register(
      definePlugin('NodeAttestor', 'aws_iid', {}),
    );
    const c = await loadAgentConfigFile(path, {}, {}, { registry });
    expect(c.plugins.nodeAttestor.name).toBe('aws_iid');
  });
});
