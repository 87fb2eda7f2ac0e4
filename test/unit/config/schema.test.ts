import { describe, expect, expectTypeOf, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import {
  block,
  boolean,
  type ConfigProblem,
  decodeDocument,
  definePlugin,
  duration,
  integer,
  MAX_REPORTED_PROBLEMS,
  optionalBlock,
  PluginRegistry,
  parseGoInt,
  parseHcl,
  parseHclJson,
  pluginsField,
  string,
  stringList,
  suggest,
} from '../../../src/config/index.js';

const schema = {
  fields: {
    server: block(
      {
        name: string({ required: true }),
        mode: string({ default: 'fast', oneOf: ['fast', 'slow'], ignoreCase: true }),
        port: integer({ default: 8081, min: 0, max: 65535 }),
        count: integer(),
        debug: boolean({ default: false }),
        ttl: duration({ default: 3_600_000, positive: true }),
        tags: stringList({ default: [] }),
        note: string(),
        sub: optionalBlock({ a: string({ default: 'x' }) }),
      },
      {
        required: true,
        unsupported: { federation: 'not supported yet' },
        check(v, h) {
          if (v.note === 'forbidden') h.report(`${h.path}.note must not be "forbidden"`, 'note');
        },
      },
    ),
    extra: block({ flag: boolean({ default: true }) }),
  },
};

function decode(text: string) {
  return decodeDocument(parseHcl(text, { filename: 's.conf' }), schema, 's.conf');
}

function problems(text: string, json = false): ConfigProblem[] {
  try {
    const root = json
      ? parseHclJson(text, { filename: 's.conf' })
      : parseHcl(text, { filename: 's.conf' });
    decodeDocument(root, schema, 's.conf');
  } catch (err) {
    if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
    return err.details['problems'] as ConfigProblem[];
  }
  throw new Error('expected problems');
}

function messages(text: string): string[] {
  return problems(text).map((p) => `${String(p.line)}: ${p.message}`);
}

describe('schema decoding', () => {
  it('applies defaults and infers the output type', () => {
    const v = decode('server { name = "n" }');
    expect(v).toEqual({
      server: { name: 'n', mode: 'fast', port: 8081, debug: false, ttl: 3_600_000, tags: [] },
      extra: { flag: true },
    });
    expectTypeOf(v.server.name).toEqualTypeOf<string>();
    expectTypeOf(v.server.port).toEqualTypeOf<number>();
    expectTypeOf(v.server.count).toEqualTypeOf<number | undefined>();
    expectTypeOf(v.server.tags).toEqualTypeOf<readonly string[]>();
    expectTypeOf(v.server.sub).toEqualTypeOf<{ a: string } | undefined>();
  });

  it('coerces values the way HCL v1 decodes them into Go fields', () => {
    const v = decode(
      'server {\n name = 42\n port = "0x1F"\n count = "1_000"\n debug = "TRUE"\n mode = "SLOW"\n tags = ["a", 1, true]\n sub {}\n}',
    );
    expect(v.server).toMatchObject({
      name: '42',
      port: 31,
      count: 1000,
      debug: true,
      mode: 'slow',
      tags: ['a', '1', 'true'],
      sub: { a: 'x' },
    });
  });

  it('treats empty strings as unset (SPIRE merges defaults over zero values)', () => {
    expect(
      decode('server {\n name = "n"\n mode = ""\n ttl = ""\n note = "" }').server,
    ).toMatchObject({
      mode: 'fast',
      ttl: 3_600_000,
    });
    expect(decode('server {\n name = "n"\n note = "" }').server.note).toBeUndefined();
    expect(messages('server { name = "" }')).toEqual(['1: server.name must not be empty']);
  });

  it('reports unknown keys with a did-you-mean suggestion and the line', () => {
    expect(messages('server {\n  name = "n"\n  prot = 1\n}')).toEqual([
      '3: unknown key "prot" in server (did you mean "port"?)',
    ]);
    expect(messages('server { name = "n" }\nsevrer {}')).toEqual([
      '2: unknown key "sevrer" at the top level (did you mean "server"?)',
    ]);
    expect(messages('server { name = "n"\n zzzzzz = 1 }')).toEqual([
      '2: unknown key "zzzzzz" in server',
    ]);
    expect(messages('server { name = "n"\n federation {} }')).toEqual([
      '2: server.federation is not supported: not supported yet',
    ]);
  });

  it('reports wrong types, bad values, missing keys and repeated blocks, all at once', () => {
    const text = [
      'server {', // 1
      '  port = 70000', // 2
      '  count = 1.5', // 3
      '  debug = "maybe"', // 4
      '  mode = "medium"', // 5
      '  ttl = "10x"', // 6
      '  tags = "a"', // 7
      '  note = ["x"]', // 8
      '  sub = 1', // 9
      '}',
      'extra {}',
      'extra {}', // 12
    ].join('\n');
    expect(messages(text)).toEqual([
      '1: missing required key server.name',
      '2: server.port must be between 0 and 65535, not 70000',
      '3: server.count must be an integer, not 1.5',
      '4: server.debug must be true or false, not "maybe"',
      '5: server.mode must be one of fast, slow, not "medium"',
      '6: server.ttl: unknown unit "x" in duration "10x" (use ns, us, ms, s, m or h)',
      '7: server.tags must be a list of strings, not a string',
      '8: server.note must be a string, not a list',
      '9: server.sub must be a block ({ … }), not a number',
      '12: block extra is defined more than once (first at line 11)',
    ]);
  });

  it('rejects bad durations: no unit, negative, zero', () => {
    expect(messages('server { name = "n"\n ttl = "300" }')).toEqual([
      '2: server.ttl: missing unit in duration "300" (write e.g. "300s")',
    ]);
    expect(messages('server { name = "n"\n ttl = 300 }')).toEqual([
      '2: server.ttl: missing unit in duration "300" (write e.g. "300s")',
    ]);
    expect(messages('server { name = "n"\n ttl = "-1h" }')).toEqual([
      '2: server.ttl must be a positive duration, not "-1h"',
    ]);
    expect(messages('server { name = "n"\n ttl = "0s" }')).toEqual([
      '2: server.ttl must be a positive duration, not "0s"',
    ]);
  });

  it('reports a missing required block', () => {
    expect(messages('extra {}')).toEqual(['1: missing required block server']);
  });

  it('runs cross-field checks once the block is otherwise valid', () => {
    expect(messages('server { name = "n"\n note = "forbidden" }')).toEqual([
      '2: server.note must not be "forbidden"',
    ]);
  });

  it('accepts the JSON shapes: object, or a one-item list of objects', () => {
    const a = decodeDocument(parseHclJson('{"server": {"name": "n"}}'), schema, 'x.json');
    const b = decodeDocument(parseHclJson('{"server": [{"name": "n"}]}'), schema, 'x.json');
    expect(a).toEqual(b);
    expect(
      problems('{"server": [{"name": "n"}, {"name": "m"}]}', true).map((p) => p.message),
    ).toEqual(['block server is defined more than once (first at line 1)']);
    expect(problems('{"server": []}', true).map((p) => p.message)).toEqual([
      'server must be a block ({ … }), not an empty list',
    ]);
  });

  it('keeps at most a bounded number of problems and says how many more there were', () => {
    const many = Array.from({ length: 300 }, (_, i) => `k${i} = 1`).join('\n');
    try {
      decode(`server { name = "n"\n${many} }`);
      expect.unreachable();
    } catch (err) {
      if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
      expect((err.details['problems'] as unknown[]).length).toBe(MAX_REPORTED_PROBLEMS);
      expect(err.details['omitted']).toBe(300 - MAX_REPORTED_PROBLEMS);
      expect(err.message).toMatch(/^300 configuration problems:\n/);
      expect(err.message).toMatch(/… and 250 more$/);
    }
  });
});

describe('parseGoInt (Go ParseInt base 0)', () => {
  it.each([
    ['0', 0],
    ['42', 42],
    ['-42', -42],
    ['+7', 7],
    ['0x1f', 31],
    ['0X1F', 31],
    ['0o17', 15],
    ['017', 15],
    ['0b101', 5],
    ['1_000', 1000],
    ['0x_1f', 31],
  ])('%s → %d', (s, n) => {
    expect(parseGoInt(s)).toBe(n);
  });
  it.each(['', ' 1', '1.0', '08', '1__0', '_1', '1_', '0x', 'abc', '99999999999999999999'])(
    'rejects %j',
    (s) => {
      expect(parseGoInt(s)).toBeUndefined();
    },
  );
});

describe('suggest', () => {
  it('suggests close names, case-insensitively, and nothing for distant ones', () => {
    expect(suggest('bind_prot', ['bind_address', 'bind_port'])).toBe('bind_port');
    expect(suggest('keymanager', ['KeyManager', 'DataStore'])).toBe('KeyManager');
    expect(suggest('trust_domian', ['trust_domain'])).toBe('trust_domain');
    expect(suggest('xyz', ['trust_domain'])).toBeUndefined();
    expect(suggest('a'.repeat(200), ['a'])).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------

const fake = definePlugin('KeyManager', 'fake', { path: string({ required: true }) });
const registry = new PluginRegistry(
  [
    { type: 'KeyManager', min: 1, max: 1 },
    { type: 'NodeAttestor', min: 0, max: undefined },
    { type: 'UpstreamAuthority', min: 0, max: 1 },
  ],
  { unsupportedTypes: { Notifier: 'no notifiers here' } },
)
  .register(fake)
  .register(definePlugin('KeyManager', 'memory', {}))
  .register(definePlugin('NodeAttestor', 'join_token', {}))
  .register(definePlugin('NodeAttestor', 'x509pop', { ca: string({ default: 'ca.pem' }) }))
  .register(definePlugin('UpstreamAuthority', 'disk', {}));
const pluginSchema = { fields: { plugins: pluginsField(registry, { required: true }) } };

function decodePlugins(text: string, json = false) {
  const root = json
    ? parseHclJson(text, { filename: 'p.json' })
    : parseHcl(text, { filename: 'p.conf' });
  return decodeDocument(root, pluginSchema, 'p.conf').plugins;
}

function pluginProblems(text: string, json = false): string[] {
  try {
    decodePlugins(text, json);
  } catch (err) {
    if (!isSpireEdgeError(err, 'ERR_CONFIG_INVALID')) throw err;
    return (err.details['problems'] as ConfigProblem[]).map(
      (p) => `${String(p.line)}: ${p.message}`,
    );
  }
  throw new Error('expected problems');
}

describe('plugins section', () => {
  it('accepts labelled, nested and label-chain forms in declaration order', () => {
    const p = decodePlugins(`plugins {
  KeyManager "fake" { plugin_data { path = "/k" } }
  NodeAttestor { join_token {} }
  NodeAttestor "x509pop" plugin_data { ca = "x.pem" }
}`);
    expect(p.enabled.map((c) => [c.type, c.name, c.data, c.pos.line])).toEqual([
      ['KeyManager', 'fake', { path: '/k' }, 2],
      ['NodeAttestor', 'join_token', {}, 3],
      ['NodeAttestor', 'x509pop', { ca: 'x.pem' }, 4],
    ]);
    const km = p.enabled[0]!;
    expect(fake.is(km)).toBe(true);
    if (fake.is(km)) expectTypeOf(km.data.path).toEqualTypeOf<string>();
  });

  it('accepts the JSON list and object shapes', () => {
    const asList = decodePlugins(
      '{"plugins": {"KeyManager": [{"fake": {"plugin_data": {"path": "/k"}}}], "NodeAttestor": [{"join_token": {}}, {"x509pop": [{}]}]}}',
      true,
    );
    const asObject = decodePlugins(
      '{"plugins": {"KeyManager": {"fake": {"plugin_data": {"path": "/k"}}}, "NodeAttestor": {"join_token": {}, "x509pop": {}}}}',
      true,
    );
    const strip = (p: typeof asList) => p.enabled.map((c) => [c.type, c.name, c.data]);
    expect(strip(asList)).toEqual(strip(asObject));
    expect(strip(asList)).toEqual([
      ['KeyManager', 'fake', { path: '/k' }],
      ['NodeAttestor', 'join_token', {}],
      ['NodeAttestor', 'x509pop', { ca: 'ca.pem' }],
    ]);
  });

  it('skips disabled plugins without checking their data or name', () => {
    const p = decodePlugins(`plugins {
  KeyManager "memory" {}
  KeyManager "fake" { enabled = false }
  NodeAttestor "aws_iid" { enabled = "false"
    plugin_data { whatever = 1 } }
}`);
    expect(p.enabled.map((c) => c.name)).toEqual(['memory']);
    expect(p.disabled.map((r) => [r.type, r.name, r.pos.line])).toEqual([
      ['KeyManager', 'fake', 3],
      ['NodeAttestor', 'aws_iid', 4],
    ]);
  });

  it('reports unknown types and names with suggestions, and unsupported types', () => {
    expect(
      pluginProblems(`plugins {
  KeyManger "memory" {}
  KeyManager "memry" {}
  NodeAttestor "aws_iid" {}
  Notifier "k8sbundle" {}
}`),
    ).toEqual([
      '2: unknown plugin type "KeyManger" (did you mean "KeyManager"?); supported types: KeyManager, NodeAttestor, UpstreamAuthority',
      '3: unknown plugin KeyManager "memry" (did you mean "memory"?); supported KeyManager plugins: fake, memory',
      '4: unknown plugin NodeAttestor "aws_iid"; supported NodeAttestor plugins: join_token, x509pop',
      '5: plugin type Notifier is not supported: no notifiers here',
    ]);
  });

  it('enforces multiplicity and uniqueness', () => {
    expect(
      pluginProblems(`plugins {
  KeyManager "memory" {}
  KeyManager "fake" { plugin_data { path = "x" } }
  NodeAttestor "join_token" {}
  NodeAttestor "join_token" {}
  UpstreamAuthority "disk" {}
}`),
    ).toEqual([
      '3: plugins: exactly one KeyManager plugin must be enabled, found 2 (KeyManager "memory" at line 2, KeyManager "fake" at line 3)',
      '5: plugin NodeAttestor "join_token" is declared more than once (first at line 4)',
    ]);
    expect(pluginProblems('plugins {\n  NodeAttestor "join_token" {}\n}')).toEqual([
      '1: plugins: a KeyManager plugin is required',
    ]);
    expect(pluginProblems('a = 1')).toEqual([
      '1: unknown key "a" at the top level',
      '1: missing required block plugins',
    ]);
  });

  it('rejects external plugins, plugin_data_file and stray keys in a plugin block', () => {
    expect(
      pluginProblems(`plugins {
  KeyManager "memory" {
    plugin_cmd = "/usr/bin/km"
    plugin_checksum = "abc"
    plugin_data_file = "x.conf"
    plugin_dat {}
  }
}`),
    ).toEqual([
      '3: plugins.KeyManager "memory".plugin_cmd: external plugins are not supported; spire-edge runs its built-in plugins only',
      '4: plugins.KeyManager "memory".plugin_checksum: external plugins are not supported; spire-edge runs its built-in plugins only',
      '5: plugins.KeyManager "memory".plugin_data_file is not supported: write the settings in plugin_data',
      '6: unknown key "plugin_dat" in plugins.KeyManager "memory" (did you mean "plugin_data"?); a plugin block holds plugin_data and enabled',
    ]);
  });

  it('validates plugin_data with the registered schema, naming the full path', () => {
    expect(
      pluginProblems(`plugins {
  KeyManager "fake" {
    plugin_data { paht = "x" }
  }
}`),
    ).toEqual([
      '3: missing required key plugins.KeyManager "fake".plugin_data.path',
      '3: unknown key "paht" in plugins.KeyManager "fake".plugin_data (did you mean "path"?)',
    ]);
    expect(pluginProblems('plugins {\n  KeyManager "memory" { plugin_data = "raw" }\n}')).toEqual([
      '2: plugins.KeyManager "memory".plugin_data must be a block ({ … }), not a string',
    ]);
    expect(pluginProblems('plugins {\n  KeyManager = "memory"\n}')).toEqual([
      '1: plugins: a KeyManager plugin is required',
      '2: plugins.KeyManager must name its plugins: KeyManager "name" { … }',
    ]);
  });

  it('rejects registry misuse with TypeError', () => {
    expect(() => registry.register(definePlugin('KeyManager', 'memory', {}))).toThrow(TypeError);
    expect(() => registry.register(definePlugin('Nope', 'x', {}))).toThrow(TypeError);
    expect(() => new PluginRegistry([{ type: 'A', min: 2, max: 1 }])).toThrow(TypeError);
    expect(() => definePlugin('', 'x', {})).toThrow(TypeError);
  });
});
