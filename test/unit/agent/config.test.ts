// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about literal ${VAR} text
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AgentConfig,
  type AgentFlags,
  agentDiskKeyManagerPlugin,
  agentX509popPlugin,
  createAgentPluginRegistry,
  DEFAULT_AGENT_SOCKET_PATH,
  dockerWorkloadAttestorPlugin,
  loadAgentConfig,
  unixWorkloadAttestorPlugin,
} from '../../../src/agent/config.js';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { type ConfigProblem, definePlugin, string } from '../../../src/config/index.js';

/** SPIRE's shipped conf/agent/agent.conf. */
const SPIRE_DEFAULT_CONF = `agent {
    data_dir = "./.data"
    log_level = "DEBUG"
    server_address = "127.0.0.1"
    server_port = "8081"
    socket_path ="/tmp/spire-agent/public/api.sock"
    trust_bundle_path = "./conf/agent/dummy_root_ca.crt"
    trust_domain = "example.org"
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {
        }
    }
    KeyManager "disk" {
        plugin_data {
            directory = "./.data"
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {
        }
    }
}
`;

/** SPIRE's documented sample (doc/spire_agent.md "Sample configuration file"). */
const SPIRE_SAMPLE = `agent {
    trust_domain = "example.org"
    trust_bundle_path = "/opt/spire/conf/initial_bundle.crt"

    data_dir = "/opt/spire/.data"
    log_level = "DEBUG"
    server_address = "spire-server"
    server_port = "8081"
    socket_path ="/tmp/spire-agent/public/api.sock"
}

telemetry {
    Prometheus {
        port = 1234
    }
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {
        }
    }
    KeyManager "disk" {
        plugin_data {
            directory = "/opt/spire/.data"
        }
    }
    WorkloadAttestor "k8s" {
        plugin_data {
            kubelet_read_only_port = "10255"
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {
        }
    }
}
`;

const MINIMAL = `agent {
  trust_domain = "example.org"
  data_dir = "/var/lib/spire-edge/agent"
  server_address = "spire.example.org"
  trust_bundle_path = "/etc/spire-edge/bundle.pem"
}
plugins {
  NodeAttestor "join_token" {}
  KeyManager "memory" {}
  WorkloadAttestor "unix" {}
}
`;

/** Every supported key, none at its default. */
const EVERY_KEY = `agent {
  data_dir = "/data"
  server_address = "[2001:db8::1]"
  server_port = 9443
  socket_path = "/run/spire-edge/api.sock"
  trust_domain = "spiffe://edge.example"
  trust_bundle_url = "https://bundles.example/edge.json"
  trust_bundle_format = "spiffe"
  join_token = "4f1c2e0a"
  log_level = "warn"
  log_format = "JSON"
  log_file = "/var/log/spire-edge/agent.log"
  sync_interval = "30s"
  x509_svid_cache_max_size = 5000
  jwt_svid_cache_max_size = "200"
  workload_x509_svid_key_type = "ec-p256"
  allow_unauthenticated_verifiers = true
}
health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = "8088"
  live_path = "/healthz"
  ready_path = "/readyz"
}
telemetry {
  Prometheus {
    host = "0.0.0.0"
    port = 9988
  }
}
plugins {
  NodeAttestor "x509pop" {
    plugin_data {
      private_key_path = "/etc/pki/agent.key"
      certificate_path = "/etc/pki/agent.crt"
      intermediates_path = "/etc/pki/intermediates.pem"
    }
  }
  KeyManager "disk" { plugin_data { directory = "/data/keys" } }
  WorkloadAttestor "unix" {
    plugin_data {
      discover_workload_path = true
      workload_size_limit = -1
    }
  }
  WorkloadAttestor "systemd" {}
  WorkloadAttestor "docker" {
    plugin_data {
      docker_socket_path = "unix:///run/docker.sock"
      docker_version = "1.43"
      use_new_container_locator = true
    }
  }
}
`;

function load(text: string, flags: AgentFlags = {}, env: Record<string, string> = {}): AgentConfig {
  return loadAgentConfig({ text, filename: 'agent.conf', flags, env });
}

function problems(text: string, flags: AgentFlags = {}, filename = 'agent.conf'): string[] {
  try {
    loadAgentConfig({ text, filename, flags });
  } catch (err) {
    if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
    const list = err.details['problems'] as ConfigProblem[] | undefined;
    return list === undefined
      ? [err.message]
      : list.map((p) =>
          p.line === undefined
            ? `${p.file}: ${p.message}`
            : `${p.file}:${String(p.line)}: ${p.message}`,
        );
  }
  throw new Error('expected the configuration to be rejected');
}

function lineOf(text: string, needle: string): number {
  return text.split('\n').findIndex((l) => l.includes(needle)) + 1;
}

function withAgent(extra: string, text = MINIMAL): string {
  return text.replace('agent {\n', `agent {\n${extra}\n`);
}

function withoutKey(key: string, text = MINIMAL): string {
  return text
    .split('\n')
    .filter((l) => !l.trim().startsWith(`${key} =`))
    .join('\n');
}

describe('loadAgentConfig: SPIRE files', () => {
  it("loads SPIRE's shipped conf/agent/agent.conf", () => {
    const c = load(SPIRE_DEFAULT_CONF);
    expect(c.format).toBe('hcl');
    expect(c.agent).toEqual({
      dataDir: './.data',
      serverAddress: '127.0.0.1',
      serverPort: 8081,
      socketPath: '/tmp/spire-agent/public/api.sock',
      trustDomain: expect.objectContaining({ name: 'example.org' }),
      trustBundle: { kind: 'path', path: './conf/agent/dummy_root_ca.crt', format: 'pem' },
      logLevel: 'DEBUG',
      logFormat: 'text',
      syncIntervalMs: 5000,
      x509SvidCacheMaxSize: 1000,
      jwtSvidCacheMaxSize: 1000,
      workloadX509SvidKeyType: 'ec-p256',
      allowUnauthenticatedVerifiers: false,
      sds: {
        defaultSvidName: 'default',
        defaultBundleName: 'ROOTCA',
        defaultAllBundlesName: 'ALL',
        disableSpiffeCertValidation: false,
      },
    });
    expect(c.plugins.nodeAttestor).toMatchObject({ type: 'NodeAttestor', name: 'join_token' });
    expect(agentDiskKeyManagerPlugin.is(c.plugins.keyManager)).toBe(true);
    expect(c.plugins.keyManager.data).toEqual({ directory: './.data' });
    expect(c.plugins.workloadAttestors).toHaveLength(1);
    expect(c.plugins.workloadAttestors[0]!.data).toEqual({
      discover_workload_path: false,
      workload_size_limit: 0,
    });
    expect(c.healthChecks).toEqual({
      listenerEnabled: false,
      bindAddress: 'localhost',
      bindPort: 80,
      livePath: '/live',
      readyPath: '/ready',
    });
    expect(c.telemetry).toEqual({});
    expect(c.warnings).toEqual([]);
  });

  it("rejects only the k8s attestor of SPIRE's documented sample, and loads the rest", () => {
    expect(problems(SPIRE_SAMPLE)).toEqual([
      `agent.conf:${String(lineOf(SPIRE_SAMPLE, '"k8s"'))}: unknown plugin WorkloadAttestor "k8s"; supported WorkloadAttestor plugins: unix, systemd, docker`,
    ]);
    const without = SPIRE_SAMPLE.replace(/ {4}WorkloadAttestor "k8s" \{[^}]*\}[^}]*\}\n/, '');
    const c = load(without);
    expect(c.agent.serverAddress).toBe('spire-server');
    expect(c.agent.serverPort).toBe(8081);
    expect(c.agent.trustBundle).toEqual({
      kind: 'path',
      path: '/opt/spire/conf/initial_bundle.crt',
      format: 'pem',
    });
    expect(c.telemetry).toEqual({ prometheus: { host: 'localhost', port: 1234 } });
    expect(c.plugins.all.map((p) => `${p.type}/${p.name}`)).toEqual([
      'NodeAttestor/join_token',
      'KeyManager/disk',
      'WorkloadAttestor/unix',
    ]);
  });
});

describe('loadAgentConfig: every key', () => {
  it('reads every supported key', () => {
    const c = load(EVERY_KEY);
    expect(c.agent).toEqual({
      dataDir: '/data',
      serverAddress: '2001:db8::1',
      serverPort: 9443,
      socketPath: '/run/spire-edge/api.sock',
      trustDomain: expect.objectContaining({ name: 'edge.example' }),
      trustBundle: { kind: 'url', url: 'https://bundles.example/edge.json', format: 'spiffe' },
      joinToken: '4f1c2e0a',
      logLevel: 'WARN',
      logFormat: 'json',
      logFile: '/var/log/spire-edge/agent.log',
      syncIntervalMs: 30_000,
      x509SvidCacheMaxSize: 5000,
      jwtSvidCacheMaxSize: 200,
      workloadX509SvidKeyType: 'ec-p256',
      allowUnauthenticatedVerifiers: true,
      sds: {
        defaultSvidName: 'default',
        defaultBundleName: 'ROOTCA',
        defaultAllBundlesName: 'ALL',
        disableSpiffeCertValidation: false,
      },
    });
    expect(c.healthChecks).toEqual({
      listenerEnabled: true,
      bindAddress: '127.0.0.1',
      bindPort: 8088,
      livePath: '/healthz',
      readyPath: '/readyz',
    });
    expect(c.telemetry).toEqual({ prometheus: { host: '0.0.0.0', port: 9988 } });
    expect(agentX509popPlugin.is(c.plugins.nodeAttestor)).toBe(true);
    expect(c.plugins.nodeAttestor.data).toEqual({
      private_key_path: '/etc/pki/agent.key',
      certificate_path: '/etc/pki/agent.crt',
      intermediates_path: '/etc/pki/intermediates.pem',
    });
    expect(c.plugins.keyManager.data).toEqual({ directory: '/data/keys' });
    const [unix, systemd, docker] = c.plugins.workloadAttestors;
    expect(unixWorkloadAttestorPlugin.is(unix!)).toBe(true);
    expect(unix!.data).toEqual({ discover_workload_path: true, workload_size_limit: -1 });
    expect(systemd).toMatchObject({ name: 'systemd', data: {} });
    expect(dockerWorkloadAttestorPlugin.is(docker!)).toBe(true);
    expect(docker!.data).toEqual({
      docker_socket_path: 'unix:///run/docker.sock',
      docker_version: '1.43',
      use_new_container_locator: true,
    });
  });

  it('applies the defaults and warns loudly about insecure_bootstrap', () => {
    const c = load(MINIMAL);
    expect(c.agent.serverPort).toBe(8081);
    expect(c.agent.socketPath).toBe(DEFAULT_AGENT_SOCKET_PATH);
    expect(c.agent.joinToken).toBeUndefined();
    const docker = load(
      MINIMAL.replace('WorkloadAttestor "unix" {}', 'WorkloadAttestor "docker" {}'),
    );
    expect(docker.plugins.workloadAttestors[0]!.data).toEqual({
      docker_socket_path: 'unix:///var/run/docker.sock',
      use_new_container_locator: true,
    });
    const insecure = load(
      withAgent('  insecure_bootstrap = true', withoutKey('trust_bundle_path')),
    );
    expect(insecure.agent.trustBundle).toEqual({ kind: 'insecure' });
    expect(insecure.warnings).toEqual([
      expect.stringMatching(
        /^insecure_bootstrap is set: the agent does not authenticate the server/,
      ),
    ]);
  });

  it("takes SPIRE's experimental.sync_interval, and rejects both spellings at once", () => {
    expect(load(withAgent('  experimental { sync_interval = "1m" }')).agent.syncIntervalMs).toBe(
      60_000,
    );
    expect(
      problems(withAgent('  sync_interval = "1s"\n  experimental { sync_interval = "2s" }')),
    ).toEqual([
      'agent.conf:1: only one of agent.sync_interval or agent.experimental.sync_interval can be set',
    ]);
    expect(problems(withAgent('  experimental { use_sync_authorized_entries = false }'))).toEqual([
      'agent.conf:2: agent.experimental.use_sync_authorized_entries is not supported: spire-edge always syncs with SyncAuthorizedEntries',
    ]);
    expect(problems(withAgent('  sync_interval = "0s"'))).toEqual([
      'agent.conf:2: agent.sync_interval must be a positive duration, not "0s"',
    ]);
    expect(problems(withAgent('  sync_interval = "5"'))).toEqual([
      'agent.conf:2: agent.sync_interval: missing unit in duration "5" (write e.g. "5s")',
    ]);
  });

  it('treats a zero cache size as the default, as SPIRE does, and rejects negative ones', () => {
    expect(load(withAgent('  x509_svid_cache_max_size = 0')).agent.x509SvidCacheMaxSize).toBe(1000);
    expect(problems(withAgent('  jwt_svid_cache_max_size = -1'))).toEqual([
      'agent.conf:2: agent.jwt_svid_cache_max_size must be at least 0, not -1',
    ]);
  });

  it('reads the JSON form, with plugins as lists or objects, to the same config', () => {
    const hcl = load(MINIMAL);
    const doc = {
      agent: {
        trust_domain: 'example.org',
        data_dir: '/var/lib/spire-edge/agent',
        server_address: 'spire.example.org',
        trust_bundle_path: '/etc/spire-edge/bundle.pem',
      },
      plugins: {
        NodeAttestor: [{ join_token: {} }],
        KeyManager: { memory: { plugin_data: {} } },
        WorkloadAttestor: [{ unix: { plugin_data: { discover_workload_path: false } } }],
      },
    };
    const json = loadAgentConfig({ text: JSON.stringify(doc, null, 2), filename: 'agent.json' });
    expect(json.format).toBe('json');
    expect(json.agent).toEqual(hcl.agent);
    expect(json.plugins.all.map((p) => [p.type, p.name, p.data])).toEqual(
      hcl.plugins.all.map((p) => [p.type, p.name, p.data]),
    );
    // Detected by content too.
    expect(loadAgentConfig({ text: JSON.stringify(doc) }).format).toBe('json');
    const bad = JSON.stringify({ ...doc, agent: { ...doc.agent, server_adress: 'x' } }, null, 2);
    expect(problems(bad, {}, 'agent.json')).toEqual([
      `agent.json:${String(lineOf(bad, 'server_adress'))}: unknown key "server_adress" in agent (did you mean "server_address"?)`,
    ]);
  });
});

describe('loadAgentConfig: problems', () => {
  it('names an unknown key with its line and a suggestion, and unsupported SPIRE keys', () => {
    const text = withAgent(
      '  server_adress = "x"\n  admin_socket_path = "/tmp/admin.sock"\n  sds { default_svid_nam = "d" }',
    );
    expect(problems(text)).toEqual([
      'agent.conf:2: unknown key "server_adress" in agent (did you mean "server_address"?)',
      'agent.conf:3: agent.admin_socket_path is not supported: not supported by spire-edge yet (the agent admin API: Debug and Delegated Identity)',
      'agent.conf:4: unknown key "default_svid_nam" in agent.sds (did you mean "default_svid_name"?)',
    ]);
  });

  it('reads the sds block and disable_sds_api as SPIRE does', () => {
    expect(load(MINIMAL).agent.sds).toEqual({
      defaultSvidName: 'default',
      defaultBundleName: 'ROOTCA',
      defaultAllBundlesName: 'ALL',
      disableSpiffeCertValidation: false,
    });
    const custom = load(
      withAgent(
        '  sds {\n    default_svid_name = "mine"\n    disable_spiffe_cert_validation = true\n  }',
      ),
    );
    expect(custom.agent.sds).toMatchObject({
      defaultSvidName: 'mine',
      disableSpiffeCertValidation: true,
    });
    expect(load(withAgent('  disable_sds_api = true')).agent.sds).toBe(false);
    expect(problems(`${MINIMAL}\nhealth_check { listener_enabled = true }\n`)).toEqual([
      `agent.conf:${String(lineOf(`${MINIMAL}\nhealth_check`, 'health_check'))}: unknown key "health_check" at the top level (did you mean "health_checks"?)`,
    ]);
  });

  it('reports missing required keys and sections', () => {
    expect(problems('plugins {}\n')).toEqual([
      'agent.conf:1: missing required block agent',
      'agent.conf:1: plugins: a NodeAttestor plugin is required',
      'agent.conf:1: plugins: a KeyManager plugin is required',
      'agent.conf:1: plugins: at least 1 WorkloadAttestor plugin(s) must be enabled, found 0',
    ]);
    const bare =
      'agent {\n}\nplugins {\n  NodeAttestor "join_token" {}\n  KeyManager "memory" {}\n  WorkloadAttestor "unix" {}\n}\n';
    expect(problems(bare)).toEqual([
      'agent.conf:1: missing required key agent.data_dir (or the -dataDir flag)',
      'agent.conf:1: missing required key agent.server_address (or the -serverAddress flag)',
      'agent.conf:1: missing required key agent.trust_domain (or the -trustDomain flag)',
      'agent.conf:1: trust_bundle_path or trust_bundle_url must be configured unless insecure_bootstrap is set',
    ]);
  });

  it("enforces SPIRE's exactly-one rule for the bootstrap bundle, with SPIRE's messages", () => {
    const url = '  trust_bundle_url = "https://b.example/bundle.pem"';
    const insecure = '  insecure_bootstrap = true';
    expect(problems(withoutKey('trust_bundle_path'))).toEqual([
      'agent.conf:1: trust_bundle_path or trust_bundle_url must be configured unless insecure_bootstrap is set',
    ]);
    expect(problems(withAgent(url))).toEqual([
      'agent.conf:1: only one of trust_bundle_url or trust_bundle_path can be specified, not both',
    ]);
    expect(problems(withAgent(insecure))).toEqual([
      'agent.conf:1: only one of insecure_bootstrap or trust_bundle_path can be specified, not both',
    ]);
    expect(problems(withAgent(`${insecure}\n${url}`, withoutKey('trust_bundle_path')))).toEqual([
      'agent.conf:1: only one of insecure_bootstrap or trust_bundle_url can be specified, not both',
    ]);
    expect(problems(withAgent(`${insecure}\n${url}`))).toEqual([
      'agent.conf:1: only one of insecure_bootstrap, trust_bundle_url, or trust_bundle_path can be specified, not the three options',
    ]);
    expect(
      problems(
        withAgent('  trust_bundle_url = "http://b.example/x"', withoutKey('trust_bundle_path')),
      ),
    ).toEqual(['agent.conf:2: agent.trust_bundle_url must start with https://']);
    expect(problems(withAgent('  trust_bundle_format = "der"'))).toEqual([
      'agent.conf:2: agent.trust_bundle_format must be one of pem, spiffe, not "der"',
    ]);
    // The URL source with its format.
    expect(
      load(withAgent(`${url}\n  trust_bundle_format = "pem"`, withoutKey('trust_bundle_path')))
        .agent.trustBundle,
    ).toEqual({ kind: 'url', url: 'https://b.example/bundle.pem', format: 'pem' });
  });

  it('enforces one NodeAttestor, one KeyManager and at least one WorkloadAttestor', () => {
    const two = MINIMAL.replace(
      'NodeAttestor "join_token" {}',
      'NodeAttestor "join_token" {}\n  NodeAttestor "x509pop" { plugin_data { private_key_path = "k"\n certificate_path = "c" } }',
    );
    expect(problems(two)).toEqual([
      `agent.conf:${String(lineOf(two, '"x509pop"'))}: plugins: exactly one NodeAttestor plugin must be enabled, found 2 (NodeAttestor "join_token" at line ${String(lineOf(two, '"join_token"'))}, NodeAttestor "x509pop" at line ${String(lineOf(two, '"x509pop"'))})`,
    ]);
    const noKm = MINIMAL.replace('  KeyManager "memory" {}\n', '');
    expect(problems(noKm)).toEqual([
      `agent.conf:${String(lineOf(noKm, 'plugins'))}: plugins: a KeyManager plugin is required`,
    ]);
    const noWa = MINIMAL.replace('  WorkloadAttestor "unix" {}\n', '');
    expect(problems(noWa)).toEqual([
      `agent.conf:${String(lineOf(noWa, 'plugins'))}: plugins: at least 1 WorkloadAttestor plugin(s) must be enabled, found 0`,
    ]);
    // Disabled plugins do not count.
    const disabled = MINIMAL.replace(
      'WorkloadAttestor "unix" {}',
      'WorkloadAttestor "unix" { enabled = false }\n  WorkloadAttestor "systemd" {}',
    );
    expect(load(disabled).plugins.disabled.map((p) => p.name)).toEqual(['unix']);
    const svidStore = MINIMAL.replace(
      'KeyManager "memory" {}',
      'KeyManager "memory" {}\n  SVIDStore "aws_secretsmanager" {}',
    );
    expect(problems(svidStore)).toEqual([
      `agent.conf:${String(lineOf(svidStore, 'SVIDStore'))}: plugin type SVIDStore is not supported: spire-edge has no SVIDStore plugins`,
    ]);
    const typo = MINIMAL.replace('WorkloadAttestor "unix"', 'WorkloadAttestor "unx"');
    expect(problems(typo)).toEqual([
      `agent.conf:${String(lineOf(typo, '"unx"'))}: unknown plugin WorkloadAttestor "unx" (did you mean "unix"?); supported WorkloadAttestor plugins: unix, systemd, docker`,
    ]);
  });

  it('checks plugin_data of x509pop, disk, unix and docker', () => {
    const x509pop = MINIMAL.replace('NodeAttestor "join_token" {}', 'NodeAttestor "x509pop" {}');
    expect(problems(x509pop)).toEqual([
      `agent.conf:${String(lineOf(x509pop, 'x509pop'))}: missing required key plugins.NodeAttestor "x509pop".plugin_data.private_key_path`,
      `agent.conf:${String(lineOf(x509pop, 'x509pop'))}: missing required key plugins.NodeAttestor "x509pop".plugin_data.certificate_path`,
    ]);
    const disk = MINIMAL.replace(
      'KeyManager "memory" {}',
      'KeyManager "disk" { plugin_data { directroy = "/x" } }',
    );
    expect(problems(disk).map((p) => p.replace(/^agent\.conf:\d+: /, ''))).toEqual([
      'missing required key plugins.KeyManager "disk".plugin_data.directory',
      'unknown key "directroy" in plugins.KeyManager "disk".plugin_data (did you mean "directory"?)',
    ]);
    const unix = MINIMAL.replace(
      'WorkloadAttestor "unix" {}',
      'WorkloadAttestor "unix" { plugin_data { discover_workload_path = "maybe" } }',
    );
    expect(problems(unix)).toEqual([
      `agent.conf:${String(lineOf(unix, 'maybe'))}: plugins.WorkloadAttestor "unix".plugin_data.discover_workload_path must be true or false, not "maybe"`,
    ]);
    const docker = MINIMAL.replace(
      'WorkloadAttestor "unix" {}',
      'WorkloadAttestor "docker" {\n plugin_data {\n docker_socket_path = "tcp://1.2.3.4:2375"\n podman_socket_path = "x"\n }\n }',
    );
    expect(problems(docker).map((p) => p.replace(/^agent\.conf:\d+: /, ''))).toEqual([
      'plugins.WorkloadAttestor "docker".plugin_data.docker_socket_path must be unix:///absolute/path or an absolute path (only Unix sockets are supported)',
      'plugins.WorkloadAttestor "docker".plugin_data.podman_socket_path is not supported: not supported by spire-edge yet (Podman)',
    ]);
    const oldLocator = MINIMAL.replace(
      'WorkloadAttestor "unix" {}',
      'WorkloadAttestor "docker" { plugin_data { use_new_container_locator = false } }',
    );
    expect(problems(oldLocator)).toEqual([
      `agent.conf:${String(lineOf(oldLocator, 'use_new'))}: plugins.WorkloadAttestor "docker".plugin_data.use_new_container_locator = false is not supported: spire-edge has only the cgroup v1/v2 locator`,
    ]);
  });

  it('checks agent values: trust domain, port, key type, join token exclusivity', () => {
    expect(problems(MINIMAL.replace('"example.org"', '"Example.org"'))).toEqual([
      'agent.conf:2: agent.trust_domain is not a valid trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ]);
    expect(problems(withAgent('  server_port = 0'))).toEqual([
      'agent.conf:2: agent.server_port must be between 1 and 65535, not 0',
    ]);
    expect(problems(withAgent('  workload_x509_svid_key_type = "rsa-2048"'))).toEqual([
      'agent.conf:2: agent.workload_x509_svid_key_type "rsa-2048" is not supported yet; use "ec-p256"',
    ]);
    expect(problems(withAgent('  join_token = "a"\n  join_token_file = "/t"'))).toEqual([
      'agent.conf:1: only one of join_token or join_token_file can be specified, not both',
    ]);
    expect(load(withAgent('  join_token_file = "/run/token"')).agent.joinTokenFile).toBe(
      '/run/token',
    );
    expect(problems(withAgent('  log_level = "TRACE"'))).toEqual([
      'agent.conf:2: agent.log_level must be one of DEBUG, INFO, WARN, ERROR, not "TRACE"',
    ]);
  });

  it('reports syntax errors with line and column, and TypeError for bad arguments', () => {
    expect(() => load('agent {\n  data_dir = \n}')).toThrow(/^agent\.conf:3:1: /);
    expect(() => loadAgentConfig(null as never)).toThrow(TypeError);
    expect(() => loadAgentConfig({ text: 5 as never })).toThrow('text must be a string');
    expect(() => load(MINIMAL, { serverPort: true as never })).toThrow(
      'flag -serverPort must be a number or string',
    );
    expect(() => load(MINIMAL, { insecureBootstrap: 'yes' as never })).toThrow(
      'flag -insecureBootstrap must be a boolean',
    );
  });
});

describe('loadAgentConfig: flags and environment', () => {
  it('flags take precedence over the file and may supply required keys', () => {
    const bare = `agent {}\nplugins {\n  NodeAttestor "join_token" {}\n  KeyManager "memory" {}\n  WorkloadAttestor "unix" {}\n}\n`;
    const c = load(bare, {
      dataDir: '/d',
      serverAddress: 'srv',
      serverPort: '9090',
      socketPath: '/s.sock',
      trustDomain: 'flags.example',
      trustBundle: '/b.pem',
      trustBundleFormat: 'spiffe',
      joinToken: 'tok',
      logLevel: 'debug',
      logFormat: 'json',
      logFile: '/l.log',
      allowUnauthenticatedVerifiers: true,
    });
    expect(c.agent).toMatchObject({
      dataDir: '/d',
      serverAddress: 'srv',
      serverPort: 9090,
      socketPath: '/s.sock',
      trustDomain: expect.objectContaining({ name: 'flags.example' }),
      trustBundle: { kind: 'path', path: '/b.pem', format: 'spiffe' },
      joinToken: 'tok',
      logLevel: 'DEBUG',
      logFormat: 'json',
      logFile: '/l.log',
      allowUnauthenticatedVerifiers: true,
    });
    const over = load(MINIMAL, { trustBundle: '/other.pem', serverPort: 7000, dataDir: '' });
    expect(over.agent.trustBundle).toEqual({ kind: 'path', path: '/other.pem', format: 'pem' });
    expect(over.agent.serverPort).toBe(7000);
    expect(over.agent.dataDir).toBe('/var/lib/spire-edge/agent');
  });

  it('merges flags before the exclusivity rules, as SPIRE does', () => {
    expect(problems(MINIMAL, { trustBundleUrl: 'https://b.example/x' })).toEqual([
      'agent.conf:1: only one of trust_bundle_url or trust_bundle_path can be specified, not both',
    ]);
    expect(problems(MINIMAL, { insecureBootstrap: true })).toEqual([
      'agent.conf:1: only one of insecure_bootstrap or trust_bundle_path can be specified, not both',
    ]);
    expect(problems(withAgent('  join_token_file = "/t"'), { joinToken: 'x' })).toEqual([
      'agent.conf:1: only one of join_token or join_token_file can be specified, not both',
    ]);
    // A false boolean flag leaves the file alone.
    const insecure = withAgent('  insecure_bootstrap = true', withoutKey('trust_bundle_path'));
    expect(load(insecure, { insecureBootstrap: false }).agent.trustBundle).toEqual({
      kind: 'insecure',
    });
  });

  it('validates flags like the keys they replace, naming the flag', () => {
    expect(
      problems(MINIMAL, {
        serverPort: 70000,
        trustDomain: 'Bad.Domain',
        logLevel: 'loud',
        trustBundleUrl: 'ftp://x',
      }),
    ).toEqual([
      'command line: -logLevel must be one of DEBUG, INFO, WARN, ERROR, not "loud"',
      'command line: -serverPort must be between 1 and 65535, not 70000',
      'command line: -trustBundleUrl must start with https://',
      'command line: -trustDomain is not a valid trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ]);
  });

  it('expands $VAR and ${VAR} before parsing with -expandEnv, as SPIRE does', () => {
    const text = MINIMAL.replace('"example.org"', '"${TD}"').replace(
      'server_address = "spire.example.org"',
      'server_address = "$SERVER"\n  join_token = "${TOKEN}"',
    );
    const c = load(
      text,
      { expandEnv: true },
      { TD: 'env.example', SERVER: '10.0.0.1', TOKEN: 't0k' },
    );
    expect(c.agent.trustDomain.name).toBe('env.example');
    expect(c.agent.serverAddress).toBe('10.0.0.1');
    expect(c.agent.joinToken).toBe('t0k');
    // Without the flag, the text is taken as written.
    expect(problems(text)[0]).toMatch(/agent\.trust_domain is not a valid trust domain/);
  });

  it('lets a later issue register a plugin (here a made-up NodeAttestor "aws_iid")', () => {
    const registry = createAgentPluginRegistry().register(
      definePlugin('NodeAttestor', 'aws_iid', { region: string({ default: 'eu-west-1' }) }),
    );
    const text = MINIMAL.replace('NodeAttestor "join_token" {}', 'NodeAttestor "aws_iid" {}');
    expect(problems(text)[0]).toMatch(/unknown plugin NodeAttestor "aws_iid"/);
    const c = loadAgentConfig({ text, registry });
    expect(c.plugins.nodeAttestor).toMatchObject({
      name: 'aws_iid',
      data: { region: 'eu-west-1' },
    });
  });

  it('registers NodeAttestor "tpm" with its defaults', () => {
    const text = MINIMAL.replace('NodeAttestor "join_token" {}', 'NodeAttestor "tpm" {}');
    const c = loadAgentConfig({ text });
    expect(c.plugins.nodeAttestor).toMatchObject({
      name: 'tpm',
      data: { tcti: 'device:/dev/tpmrm0' },
    });
  });
});

describe('loadAgentConfig: robustness', () => {
  it('mutated configurations never throw anything but ERR_CONFIG_INVALID', () => {
    const registry = createAgentPluginRegistry();
    const mutation = fc.record({
      at: fc.nat(),
      cut: fc.nat({ max: 6 }),
      insert: fc.oneof(
        fc.string({ maxLength: 4 }),
        fc.constantFrom('"', '{', '}', '=', '\n', '0', 'x', '[', ']', '-1', '"1h"', 'true', '${'),
      ),
    });
    fc.assert(
      fc.property(
        fc.constantFrom(SPIRE_DEFAULT_CONF, SPIRE_SAMPLE, MINIMAL, EVERY_KEY),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        (base, mutations, expand) => {
          let text = base;
          for (const m of mutations) {
            const at = m.at % (text.length + 1);
            text = text.slice(0, at) + m.insert + text.slice(at + m.cut);
          }
          try {
            loadAgentConfig({ text, registry, flags: { expandEnv: expand }, env: { X: '1' } });
          } catch (err) {
            if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
