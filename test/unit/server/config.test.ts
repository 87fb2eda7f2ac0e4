// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about literal ${VAR} text
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import type { ConfigProblem } from '../../../src/config/index.js';
import {
  applyServerFlags,
  createServerPluginRegistry,
  DEFAULT_SERVER_SOCKET_PATH,
  detectConfigFormat,
  diskKeyManagerPlugin,
  loadServerConfig,
  type ServerConfig,
  type ServerFlags,
  sqlDataStorePlugin,
  x509popNodeAttestorPlugin,
} from '../../../src/server/config.js';

/** SPIRE's documented sample (doc/spire_server.md "Sample configuration file"). */
const SPIRE_SAMPLE = `server {
    trust_domain = "example.org"

    bind_address = "0.0.0.0"
    bind_port = "8081"
    log_level = "INFO"
    data_dir = "/opt/spire/.data/"
    default_x509_svid_ttl = "6h"
    default_jwt_svid_ttl = "5m"
    ca_ttl = "72h"
    ca_subject {
        country = ["US"]
        organization = ["SPIRE"]
        common_name = ""
    }
}

telemetry {
    Prometheus {
        port = 1234
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "/opt/spire/.data/datastore.sqlite3"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = "/opt/spire/.data/keys.json"
        }
    }
}
`;

/** SPIRE's shipped conf/server/server.conf. */
const SPIRE_DEFAULT_CONF = `server {
    bind_address = "127.0.0.1"
    bind_port = "8081"
    socket_path = "/tmp/spire-server/private/api.sock"
    trust_domain = "example.org"
    data_dir = "./.data"
    log_level = "DEBUG"
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "./.data/datastore.sqlite3"
        }
    }

    NodeAttestor "join_token" {
        plugin_data {
        }
    }

    KeyManager "memory" {
        plugin_data = {}
    }

    UpstreamAuthority "disk" {
        plugin_data {
            key_file_path = "./conf/server/dummy_upstream_ca.key"
            cert_file_path = "./conf/server/dummy_upstream_ca.crt"
        }
    }
}
`;

const MINIMAL = `server {
  trust_domain = "example.org"
  data_dir = "/var/lib/spire-edge"
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" } }
  KeyManager "memory" {}
}
`;

function load(
  text: string,
  flags: ServerFlags = {},
  env: Record<string, string> = {},
): ServerConfig {
  return loadServerConfig({ text, filename: 'server.conf', flags, env });
}

function problems(text: string, flags: ServerFlags = {}, filename = 'server.conf'): string[] {
  try {
    loadServerConfig({ text, filename, flags });
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

function withServer(extra: string): string {
  return MINIMAL.replace(
    'data_dir = "/var/lib/spire-edge"',
    `data_dir = "/var/lib/spire-edge"\n${extra}`,
  );
}

function withPlugins(extra: string): string {
  return MINIMAL.replace('KeyManager "memory" {}', `KeyManager "memory" {}\n${extra}`);
}

describe('loadServerConfig: SPIRE files', () => {
  it("loads SPIRE's documented sample server.conf", () => {
    const c = load(SPIRE_SAMPLE);
    expect(c.format).toBe('hcl');
    expect(c.server).toEqual({
      bindAddress: '0.0.0.0',
      bindPort: 8081,
      socketPath: DEFAULT_SERVER_SOCKET_PATH,
      trustDomain: expect.objectContaining({ name: 'example.org' }),
      dataDir: '/opt/spire/.data/',
      logLevel: 'INFO',
      logFormat: 'text',
      caTtlMs: 72 * 3_600_000,
      defaultX509SvidTtlMs: 6 * 3_600_000,
      defaultJwtSvidTtlMs: 5 * 60_000,
      agentTtlMs: 6 * 3_600_000,
      caKeyType: 'ec-p256',
      jwtKeyType: 'ec-p256',
      caSubject: { country: ['US'], organization: ['SPIRE'], commonName: '' },
      auditLogEnabled: false,
    });
    expect(c.telemetry).toEqual({ prometheus: { host: 'localhost', port: 1234 } });
    expect(c.healthChecks).toEqual({
      listenerEnabled: false,
      bindAddress: 'localhost',
      bindPort: 80,
      livePath: '/live',
      readyPath: '/ready',
    });
    expect(c.plugins.dataStore.data).toEqual({
      database_type: 'sqlite3',
      connection_string: '/opt/spire/.data/datastore.sqlite3',
      disable_migration: false,
    });
    expect(diskKeyManagerPlugin.is(c.plugins.keyManager)).toBe(true);
    expect(c.plugins.keyManager.data).toEqual({ keys_path: '/opt/spire/.data/keys.json' });
    expect(c.plugins.nodeAttestors.map((p) => p.name)).toEqual(['join_token']);
    expect(c.plugins.upstreamAuthority).toBeUndefined();
    expect(c.plugins.all.map((p) => `${p.type}/${p.name}`)).toEqual([
      'DataStore/sql',
      'NodeAttestor/join_token',
      'KeyManager/disk',
    ]);
    // 6h x509 TTL vs 72h CA: 72h/6 = 12h, fine.
    expect(c.warnings).toEqual([]);
  });

  it("loads SPIRE's shipped conf/server/server.conf", () => {
    const c = load(SPIRE_DEFAULT_CONF);
    expect(c.server.bindAddress).toBe('127.0.0.1');
    expect(c.server.logLevel).toBe('DEBUG');
    expect(c.server.dataDir).toBe('./.data');
    expect(c.plugins.keyManager.name).toBe('memory');
    expect(c.plugins.upstreamAuthority).toMatchObject({
      type: 'UpstreamAuthority',
      name: 'disk',
      data: {
        key_file_path: './conf/server/dummy_upstream_ca.key',
        cert_file_path: './conf/server/dummy_upstream_ca.crt',
      },
    });
  });

  it('applies SPIRE defaults to a minimal file', () => {
    const c = load(MINIMAL);
    expect(c.server).toMatchObject({
      bindAddress: '0.0.0.0',
      bindPort: 8081,
      socketPath: '/tmp/spire-server/private/api.sock',
      logLevel: 'INFO',
      logFormat: 'text',
      caTtlMs: 86_400_000,
      defaultX509SvidTtlMs: 3_600_000,
      defaultJwtSvidTtlMs: 300_000,
      agentTtlMs: 3_600_000,
      caKeyType: 'ec-p256',
      jwtKeyType: 'ec-p256',
      caSubject: { country: ['US'], organization: ['SPIFFE'], commonName: '' },
      auditLogEnabled: false,
    });
    expect(c.server.logFile).toBeUndefined();
    expect(c.server.jwtIssuer).toBeUndefined();
    expect(c.telemetry).toEqual({});
    expect(c.plugins.dataStore.data.connection_string).toBe(
      '/var/lib/spire-edge/datastore.sqlite3',
    );
    expect(c.plugins.connectionStringDerived).toBe(true);
    expect(load(SPIRE_SAMPLE).plugins.connectionStringDerived).toBe(false);
    expect(c.plugins.nodeAttestors).toEqual([]);
  });

  it('follows SPIRE: jwt_key_type defaults to ca_key_type, agent_ttl to default_x509_svid_ttl', () => {
    const c = load(withServer('ca_key_type = "RSA-2048"\ndefault_x509_svid_ttl = "2h"'));
    expect(c.server.caKeyType).toBe('rsa-2048');
    expect(c.server.jwtKeyType).toBe('rsa-2048');
    expect(c.server.agentTtlMs).toBe(7_200_000);
    const d = load(
      withServer(
        'ca_key_type = "ec-p384"\njwt_key_type = "ec-p256"\nagent_ttl = "72h"\nca_ttl = "720h"',
      ),
    );
    expect(d.server.caKeyType).toBe('ec-p384');
    expect(d.server.jwtKeyType).toBe('ec-p256');
    expect(d.server.agentTtlMs).toBe(72 * 3_600_000);
    expect(d.warnings).toEqual([]);
  });

  it('normalises log level and format case, trims IPv6 brackets, reads optional keys', () => {
    const c = load(
      withServer(
        'log_level = "warn"\nlog_format = "JSON"\nlog_file = "/var/log/s.log"\nbind_address = "[::1]"\njwt_issuer = "https://oidc.example.org"\naudit_log_enabled = true',
      ),
    );
    expect(c.server).toMatchObject({
      logLevel: 'WARN',
      logFormat: 'json',
      logFile: '/var/log/s.log',
      bindAddress: '::1',
      jwtIssuer: 'https://oidc.example.org',
      auditLogEnabled: true,
    });
  });

  it('reads health_checks with a string or number port', () => {
    const text = `${MINIMAL}health_checks {\n  listener_enabled = true\n  bind_address = "127.0.0.1"\n  bind_port = "8080"\n  live_path = "/alive"\n}`;
    expect(load(text).healthChecks).toEqual({
      listenerEnabled: true,
      bindAddress: '127.0.0.1',
      bindPort: 8080,
      livePath: '/alive',
      readyPath: '/ready',
    });
    expect(load(`${MINIMAL}health_checks { bind_port = 9090 }`).healthChecks.bindPort).toBe(9090);
  });

  it('warns as SPIRE does about TTLs a CA rotation can cut short and an empty ca_subject', () => {
    const c = load(withServer('ca_ttl = "12h"\ndefault_x509_svid_ttl = "4h"\nca_subject {}'));
    expect(c.warnings).toEqual([
      'ca_subject is set but empty; the default subject (C=US, O=SPIFFE) is used',
      'default_x509_svid_ttl (4h0m0s) is too high for ca_ttl (12h0m0s): SVIDs may be issued with shorter lifetimes; set default_x509_svid_ttl to 2h0m0s or less, or ca_ttl to 24h0m0s or more',
    ]);
    expect(c.server.caSubject).toEqual({
      country: ['US'],
      organization: ['SPIFFE'],
      commonName: '',
    });
  });

  it('keeps disabled plugins out of the enabled set', () => {
    const c = load(withPlugins('UpstreamAuthority "disk" {\n  enabled = false\n}'));
    expect(c.plugins.upstreamAuthority).toBeUndefined();
    expect(c.plugins.disabled.map((r) => `${r.type}/${r.name}`)).toEqual([
      'UpstreamAuthority/disk',
    ]);
  });

  it('accepts x509pop and postgres data stores', () => {
    const c = load(
      MINIMAL.replace(
        'database_type = "sqlite3"',
        'database_type = "postgres"\nconnection_string = "dbname=spire host=db"\nmax_open_conns = 10\nconn_max_lifetime = "1h"',
      ).replace(
        'KeyManager "memory" {}',
        'KeyManager "memory" {}\nNodeAttestor "x509pop" { plugin_data { ca_bundle_paths = ["/a.pem", "/b.pem"] } }',
      ),
    );
    expect(c.plugins.dataStore.data).toEqual({
      database_type: 'postgres',
      connection_string: 'dbname=spire host=db',
      max_open_conns: 10,
      conn_max_lifetime: 3_600_000,
      disable_migration: false,
    });
    const x = c.plugins.nodeAttestors[0]!;
    expect(x509popNodeAttestorPlugin.is(x)).toBe(true);
    expect(x.data).toEqual({
      mode: 'external_pki',
      ca_bundle_paths: ['/a.pem', '/b.pem'],
      max_intermediates: 4,
      max_rsa_key_size: 8192,
    });
    expect(sqlDataStorePlugin.is(c.plugins.dataStore)).toBe(true);
  });
});

describe('loadServerConfig: JSON form', () => {
  const json = {
    server: {
      trust_domain: 'example.org',
      bind_address: '0.0.0.0',
      bind_port: '8081',
      log_level: 'INFO',
      data_dir: '/opt/spire/.data/',
      default_x509_svid_ttl: '6h',
      default_jwt_svid_ttl: '5m',
      ca_ttl: '72h',
      ca_subject: { country: ['US'], organization: ['SPIRE'], common_name: '' },
    },
    telemetry: { Prometheus: { port: 1234 } },
  };

  function comparable(c: ServerConfig): unknown {
    return {
      ...c,
      format: undefined,
      source: undefined,
      plugins: c.plugins.all.map((p) => [p.type, p.name, p.data]),
    };
  }

  it('equals the HCL form with plugins as lists (SPIRE/HCL v1 JSON shape)', () => {
    const text = JSON.stringify(
      {
        ...json,
        plugins: {
          DataStore: [
            {
              sql: {
                plugin_data: {
                  database_type: 'sqlite3',
                  connection_string: '/opt/spire/.data/datastore.sqlite3',
                },
              },
            },
          ],
          NodeAttestor: [{ join_token: { plugin_data: {} } }],
          KeyManager: [{ disk: { plugin_data: { keys_path: '/opt/spire/.data/keys.json' } } }],
        },
      },
      null,
      2,
    );
    const c = loadServerConfig({ text, filename: 'server.json' });
    expect(c.format).toBe('json');
    expect(comparable(c)).toEqual(comparable(load(SPIRE_SAMPLE)));
  });

  it('equals the HCL form with plugins as objects, detected by content', () => {
    const text = JSON.stringify({
      ...json,
      plugins: {
        DataStore: {
          sql: {
            plugin_data: {
              database_type: 'sqlite3',
              connection_string: '/opt/spire/.data/datastore.sqlite3',
            },
          },
        },
        NodeAttestor: { join_token: { plugin_data: {} } },
        KeyManager: { disk: { plugin_data: { keys_path: '/opt/spire/.data/keys.json' } } },
      },
    });
    const c = loadServerConfig({ text: `\n  ${text}`, filename: 'server.conf' });
    expect(c.format).toBe('json');
    expect(comparable(c)).toEqual(comparable(load(SPIRE_SAMPLE)));
  });

  it('reports JSON problems with lines too', () => {
    const text =
      '{\n  "server": {\n    "trust_domain": "example.org",\n    "data_dir": "/d",\n    "bind_prot": 1\n  },\n  "plugins": {}\n}';
    expect(problems(text, {}, 'server.json')).toEqual([
      'server.json:5: unknown key "bind_prot" in server (did you mean "bind_port"?)',
      'server.json:7: plugins: a DataStore plugin is required',
      'server.json:7: plugins: a KeyManager plugin is required',
    ]);
  });

  it('detects the format like HCL v1', () => {
    expect(detectConfigFormat('  {"a": 1}')).toBe('json');
    expect(detectConfigFormat('a = 1', 'x.JSON')).toBe('json');
    expect(detectConfigFormat('# {\nserver {}')).toBe('hcl');
  });
});

describe('loadServerConfig: problems are reported with file, line and key', () => {
  it('names an unknown key and suggests the right one', () => {
    const text = withServer('bind_prot = 8081');
    const line = text.split('\n').findIndex((l) => l.startsWith('bind_prot')) + 1;
    expect(problems(text)).toEqual([
      `server.conf:${String(line)}: unknown key "bind_prot" in server (did you mean "bind_port"?)`,
    ]);
    try {
      load(text);
    } catch (err) {
      if (!isSpireEdgeError(err)) throw err;
      expect(err.message).toBe(
        `server.conf:${String(line)}: unknown key "bind_prot" in server (did you mean "bind_port"?)`,
      );
    }
  });

  it('reports wrong types and bad values', () => {
    expect(
      problems(
        withServer(
          'bind_port = "http"\nlog_level = "LOUD"\nca_key_type = "ed25519"\naudit_log_enabled = "yes"\nlog_format = 1',
        ),
      ),
    ).toEqual([
      'server.conf:4: server.bind_port must be an integer, not "http"',
      'server.conf:5: server.log_level must be one of DEBUG, INFO, WARN, ERROR, not "LOUD"',
      'server.conf:6: server.ca_key_type must be one of ec-p256, ec-p384, rsa-2048, rsa-4096, not "ed25519"',
      'server.conf:7: server.audit_log_enabled must be true or false, not "yes"',
      'server.conf:8: server.log_format must be one of text, json, not "1"',
    ]);
  });

  it('rejects bad durations and negative or zero TTLs', () => {
    expect(
      problems(
        withServer(
          'ca_ttl = "1d"\ndefault_x509_svid_ttl = "-1h"\ndefault_jwt_svid_ttl = "0s"\nagent_ttl = 3600',
        ),
      ),
    ).toEqual([
      'server.conf:4: server.ca_ttl: unknown unit "d" in duration "1d" (use ns, us, ms, s, m or h)',
      'server.conf:5: server.default_x509_svid_ttl must be a positive duration, not "-1h"',
      'server.conf:6: server.default_jwt_svid_ttl must be a positive duration, not "0s"',
      'server.conf:7: server.agent_ttl: missing unit in duration "3600" (write e.g. "3600s")',
    ]);
  });

  it('rejects a bad trust domain', () => {
    expect(problems(MINIMAL.replace('"example.org"', '"Example.ORG"'))).toEqual([
      'server.conf:2: server.trust_domain is not a valid trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ]);
    expect(problems(MINIMAL.replace('"example.org"', '"spiffe://example.org/path"'))).toEqual([
      'server.conf:2: server.trust_domain is not a valid trust domain: trust domain cannot have a path',
    ]);
    expect(
      load(MINIMAL.replace('"example.org"', '"spiffe://example.org"')).server.trustDomain.name,
    ).toBe('example.org');
  });

  it('reports missing required keys and sections', () => {
    expect(
      problems(
        'server {\n  bind_port = 1\n}\nplugins {\n  DataStore "sql" { plugin_data { database_type = "sqlite3" } }\n  KeyManager "memory" {}\n}',
      ),
    ).toEqual([
      'server.conf:1: missing required key server.trust_domain (or the -trustDomain flag)',
      'server.conf:1: missing required key server.data_dir (or the -dataDir flag)',
    ]);
    expect(problems('')).toEqual([
      'server.conf:1: missing required block server',
      'server.conf:1: missing required block plugins',
    ]);
    expect(
      problems(MINIMAL.replace('database_type = "sqlite3"', 'database_type = "postgres"')),
    ).toEqual([
      'server.conf:6: plugins.DataStore "sql".plugin_data.connection_string is required when database_type is postgres',
    ]);
    expect(problems(MINIMAL.replace('KeyManager "memory" {}', 'KeyManager "disk" {}'))).toEqual([
      'server.conf:7: missing required key plugins.KeyManager "disk".plugin_data.keys_path',
    ]);
  });

  it('rejects two KeyManagers, two UpstreamAuthorities and a duplicate NodeAttestor', () => {
    expect(problems(withPlugins('KeyManager "disk" { plugin_data { keys_path = "/k" } }'))).toEqual(
      [
        'server.conf:8: plugins: exactly one KeyManager plugin must be enabled, found 2 (KeyManager "memory" at line 7, KeyManager "disk" at line 8)',
      ],
    );
    const ua =
      'UpstreamAuthority "disk" { plugin_data {\n cert_file_path = "c"\n key_file_path = "k" } }';
    expect(problems(withPlugins(`${ua}\n${ua.replace('"disk"', 'disk')}`))).toEqual([
      'server.conf:11: plugin UpstreamAuthority "disk" is declared more than once (first at line 8)',
    ]);
    expect(
      problems(withPlugins('NodeAttestor "join_token" {}\nNodeAttestor "join_token" {}')),
    ).toEqual([
      'server.conf:9: plugin NodeAttestor "join_token" is declared more than once (first at line 8)',
    ]);
  });

  it('rejects unknown plugins with the supported list, unsupported types and external plugins', () => {
    expect(
      problems(
        withPlugins(
          'NodeAttestor "aws_iid" {}\nNodeAttestor "x509_pop" {}\nNotifier "k8sbundle" {}\nNodeAttestor "tpm" { plugin_cmd = "/bin/tpm" }',
        ),
      ),
    ).toEqual([
      'server.conf:8: unknown plugin NodeAttestor "aws_iid"; supported NodeAttestor plugins: join_token, x509pop, tpm',
      'server.conf:9: unknown plugin NodeAttestor "x509_pop" (did you mean "x509pop"?); supported NodeAttestor plugins: join_token, x509pop, tpm',
      'server.conf:10: plugin type Notifier is not supported: spire-edge has no notifier plugins',
      'server.conf:11: plugins.NodeAttestor "tpm".plugin_cmd: external plugins are not supported; spire-edge runs its built-in plugins only',
    ]);
  });

  it('names SPIRE keys that spire-edge does not support', () => {
    expect(
      problems(withServer('federation {\n}\nadmin_ids = ["spiffe://example.org/admin"]')),
    ).toEqual([
      'server.conf:4: server.federation is not supported: not supported by spire-edge yet (federation is planned)',
      'server.conf:6: server.admin_ids is not supported: not supported by spire-edge yet',
    ]);
    expect(
      problems(
        `${MINIMAL}telemetry {\n  Prometheus { port = 9988 }\n  DogStatsd = [{ address = "localhost:8125" }]\n}`,
      ),
    ).toEqual([
      'server.conf:11: telemetry.DogStatsd is not supported: only the Prometheus sink is supported',
    ]);
    expect(problems(`${MINIMAL}telemetry {\n  Prometheus {\n    host = "0.0.0.0"\n  }\n}`)).toEqual(
      ['server.conf:10: missing required key telemetry.Prometheus.port'],
    );
  });

  it('checks x509pop settings', () => {
    expect(problems(withPlugins('NodeAttestor "x509pop" {}'))).toEqual([
      'server.conf:8: one of plugins.NodeAttestor "x509pop".plugin_data.ca_bundle_path or ca_bundle_paths must be set',
    ]);
    expect(
      problems(
        withPlugins(
          'NodeAttestor "x509pop" { plugin_data {\n ca_bundle_path = "/a"\n ca_bundle_paths = ["/b"] } }',
        ),
      ),
    ).toEqual([
      'server.conf:10: only one of plugins.NodeAttestor "x509pop".plugin_data.ca_bundle_path or ca_bundle_paths can be set',
    ]);
    expect(
      problems(withPlugins('NodeAttestor "x509pop" { plugin_data {\n mode = "spiffe" } }')),
    ).toEqual([
      'server.conf:9: plugins.NodeAttestor "x509pop".plugin_data.mode "spiffe" is not supported yet; use "external_pki"',
    ]);
  });

  it('reports syntax errors with line and column', () => {
    expect(problems('server {\n  trust_domain = "example.org\n}')).toEqual([
      'server.conf:2:18: unterminated string: a quoted string must end on the line it starts',
    ]);
  });

  it('throws TypeError for bad arguments', () => {
    expect(() => loadServerConfig({ text: 1 as unknown as string })).toThrow(TypeError);
    expect(() => load(MINIMAL, { trustDomain: 5 as unknown as string })).toThrow(TypeError);
  });
});

describe('loadServerConfig: -expandEnv', () => {
  const templated = `server {
  trust_domain = "$TRUST_DOMAIN"
  data_dir = "\${DATA_DIR}/server"
}
plugins {
  DataStore "sql" { plugin_data {
    database_type = "postgres"
    connection_string = "dbname=spire password=\${DB_PASSWORD}"
  } }
  KeyManager "memory" {}
}`;

  it('expands $VAR and ${VAR} before parsing when the flag is set', () => {
    const c = load(
      templated,
      { expandEnv: true },
      { TRUST_DOMAIN: 'edge.example', DATA_DIR: '/srv', DB_PASSWORD: 's3cr$t' },
    );
    expect(c.server.trustDomain.name).toBe('edge.example');
    expect(c.server.dataDir).toBe('/srv/server');
    expect(c.plugins.dataStore.data.connection_string).toBe('dbname=spire password=s3cr$t');
  });

  it('leaves the text alone without the flag', () => {
    expect(problems(templated)).toEqual([
      'server.conf:2: server.trust_domain is not a valid trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
    ]);
  });

  it('expands unset variables to nothing, as SPIRE does', () => {
    expect(problems(templated, { expandEnv: true })).toEqual([
      'server.conf:1: missing required key server.trust_domain (or the -trustDomain flag)',
    ]);
  });
});

describe('flag overrides', () => {
  it('flags take precedence over the file and may supply required keys', () => {
    const c = load(withServer('log_level = "DEBUG"\nbind_port = 9000'), {
      logLevel: 'error',
      serverPort: '7000',
      bindAddress: '127.0.0.1',
      socketPath: '/run/spire/api.sock',
      logFormat: 'json',
      logFile: '/tmp/s.log',
    });
    expect(c.server).toMatchObject({
      logLevel: 'ERROR',
      bindPort: 7000,
      bindAddress: '127.0.0.1',
      socketPath: '/run/spire/api.sock',
      logFormat: 'json',
      logFile: '/tmp/s.log',
    });
    const text =
      'server {}\nplugins {\n  DataStore "sql" { plugin_data { database_type = "sqlite3" } }\n  KeyManager "memory" {}\n}';
    const d = load(text, { trustDomain: 'flag.example', dataDir: '/flag/dir' });
    expect(d.server.trustDomain.name).toBe('flag.example');
    expect(d.plugins.dataStore.data.connection_string).toBe('/flag/dir/datastore.sqlite3');
  });

  it('treats empty flags as unset', () => {
    expect(
      load(withServer('log_level = "DEBUG"'), { logLevel: '', trustDomain: '' }).server.logLevel,
    ).toBe('DEBUG');
  });

  it('validates flags like the keys they replace, naming the flag', () => {
    expect(problems(MINIMAL, { logLevel: 'LOUD', serverPort: 70000, trustDomain: 'A B' })).toEqual([
      'command line: -trustDomain is not a valid trust domain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
      'command line: -logLevel must be one of DEBUG, INFO, WARN, ERROR, not "LOUD"',
      'command line: -serverPort must be between 0 and 65535, not 70000',
    ]);
    try {
      load(MINIMAL, { serverPort: 1.5 });
      expect.unreachable();
    } catch (err) {
      if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
      expect(err.message).toBe('command line: -serverPort must be an integer, not 1.5');
    }
  });

  it('applyServerFlags overrides a loaded config and moves a derived SQLite path with -dataDir', () => {
    const base = load(MINIMAL);
    const c = applyServerFlags(base, {
      dataDir: '/other',
      trustDomain: 'spiffe://other.org',
      serverPort: 0,
    });
    expect(c.server.dataDir).toBe('/other');
    expect(c.server.trustDomain.name).toBe('other.org');
    expect(c.server.bindPort).toBe(0);
    expect(c.plugins.dataStore.data.connection_string).toBe('/other/datastore.sqlite3');
    expect(c.plugins.all[0]).toBe(c.plugins.dataStore);
    expect(base.server.dataDir).toBe('/var/lib/spire-edge');
    // An explicit connection string stays.
    const explicit = load(SPIRE_SAMPLE);
    expect(
      applyServerFlags(explicit, { dataDir: '/other' }).plugins.dataStore.data.connection_string,
    ).toBe('/opt/spire/.data/datastore.sqlite3');
    expect(() => applyServerFlags(base, { logFormat: 'xml' })).toThrow(
      expect.objectContaining({
        code: 'ERR_CONFIG_INVALID',
        message: 'command line: -logFormat must be one of text, json, not "xml"',
      }),
    );
  });
});

describe('loadServerConfig properties', () => {
  it('mutated configurations never throw anything but ERR_CONFIG_INVALID', () => {
    const registry = createServerPluginRegistry();
    const mutation = fc.record({
      at: fc.nat(),
      cut: fc.nat({ max: 6 }),
      insert: fc.oneof(
        fc.string({ maxLength: 4 }),
        fc.constantFrom('"', '{', '}', '=', '\n', '0', 'x', '[', ']', '-1', '"1h"'),
      ),
    });
    fc.assert(
      fc.property(
        fc.constantFrom(SPIRE_SAMPLE, SPIRE_DEFAULT_CONF, MINIMAL),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (base, mutations) => {
          let text = base;
          for (const m of mutations) {
            const at = m.at % (text.length + 1);
            text = text.slice(0, at) + m.insert + text.slice(at + m.cut);
          }
          try {
            loadServerConfig({ text, registry });
          } catch (err) {
            if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
