/**
 * `NodeAttestor "tpm"` plugin_data in agent.conf: the sealing keys (`seal_secrets`,
 * `seal_pcrs`) with their defaults and rules, beside the attestation keys; unknown keys stay
 * errors that name the key.
 */
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../src/agent/config.js';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import type { ConfigProblem } from '../../../src/config/index.js';

function conf(pluginData: string): string {
  return `agent {
  trust_domain = "example.org"
  data_dir = "/var/lib/spire-edge/agent"
  server_address = "spire.example.org"
  trust_bundle_path = "/etc/spire-edge/bundle.pem"
}
plugins {
  NodeAttestor "tpm" {
    plugin_data {
${pluginData}
    }
  }
  KeyManager "disk" {
    plugin_data {
      directory = "/var/lib/spire-edge/agent"
    }
  }
  WorkloadAttestor "unix" {}
}
`;
}

function problems(text: string): string[] {
  try {
    loadAgentConfig({ text, filename: 'agent.conf' });
  } catch (err) {
    if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
    return ((err.details['problems'] as ConfigProblem[]) ?? []).map((p) => p.message);
  }
  throw new Error('expected the configuration to be rejected');
}

describe('NodeAttestor "tpm": sealing keys', () => {
  it('seals by default, bound to no PCR', () => {
    const c = loadAgentConfig({ text: conf('') });
    expect(c.plugins.nodeAttestor).toMatchObject({
      name: 'tpm',
      data: { tcti: 'device:/dev/tpmrm0', ek_algorithm: 'rsa', seal_secrets: true },
    });
    expect((c.plugins.nodeAttestor.data as { seal_pcrs?: unknown }).seal_pcrs).toBeUndefined();
  });

  it('takes seal_secrets = false and seal_pcrs as PCR indices (numbers or strings)', () => {
    const off = loadAgentConfig({ text: conf('      seal_secrets = false') });
    expect(off.plugins.nodeAttestor.data).toMatchObject({ seal_secrets: false });
    const bound = loadAgentConfig({ text: conf('      seal_pcrs = [7, "0"]') });
    expect(bound.plugins.nodeAttestor.data).toMatchObject({
      seal_secrets: true,
      seal_pcrs: ['7', '0'],
    });
  });

  it('refuses bad values, seal_pcrs without sealing, and unknown keys, naming them', () => {
    expect(problems(conf('      seal_pcrs = [24]'))).toEqual([
      expect.stringMatching(/seal_pcrs\[0\] must be a PCR index 0 to 23/),
    ]);
    expect(problems(conf('      seal_secrets = "maybe"'))).toEqual([
      expect.stringMatching(/seal_secrets must be true or false/),
    ]);
    expect(problems(conf('      seal_secrets = false\n      seal_pcrs = [7]'))).toEqual([
      expect.stringMatching(/seal_pcrs needs seal_secrets = true/),
    ]);
    expect(problems(conf('      seal_keys = true'))).toEqual([expect.stringMatching(/seal_keys/)]);
  });
});
