import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  installWebHeaders,
  WebHeaders,
  type WebHeadersInit,
} from '../../../src/common/web-headers.js';

/** Node's own Headers (undici): the reference the differential test compares with. */
const NodeHeaders = globalThis.Headers;

type Op =
  | { op: 'append' | 'set'; name: string; value: string }
  | { op: 'delete' | 'get' | 'has'; name: string };

/** What a sequence of operations leaves and answers, or the error kind of the first failure. */
function run(H: typeof Headers, init: WebHeadersInit | undefined, ops: Op[]): unknown {
  const out: unknown[] = [];
  let h: Headers;
  try {
    h = new H(init);
  } catch (err) {
    return { initError: (err as Error).constructor.name };
  }
  for (const o of ops) {
    try {
      if (o.op === 'append' || o.op === 'set') h[o.op](o.name, o.value);
      else out.push(h[o.op](o.name));
    } catch (err) {
      out.push({ error: (err as Error).constructor.name });
    }
  }
  const each: [string, string][] = [];
  h.forEach((v, k) => {
    each.push([k, v]);
  });
  return {
    out,
    entries: [...h],
    keys: [...h.keys()],
    values: [...h.values()],
    each,
    setCookie: h.getSetCookie(),
  };
}

// Names: mostly valid tokens in mixed case (so that case-folding collides), some invalid.
const nameArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'a',
      'A',
      'x-b',
      'X-B',
      'set-cookie',
      'Set-Cookie',
      'grpc-status',
      'te',
    ),
  },
  { weight: 2, arbitrary: fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,8}$/) },
  { weight: 1, arbitrary: fc.constantFrom('', 'a b', 'a:b', 'é', '\u0100', 'a\n', '(x)') },
);
// Values: plain, with HTTP whitespace to trim, inner whitespace, and forbidden characters.
const valueArb = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 2, arbitrary: fc.constantFrom(' v ', '\tv\t', '\r\n v', 'a  b', '', ' ', 'x,y') },
  { weight: 1, arbitrary: fc.constantFrom('a\0b', 'a\nb', 'a\rb', '\u00ff', '\u0100', '☃') },
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constantFrom('append' as const, 'set' as const),
    name: nameArb,
    value: valueArb,
  }),
  fc.record({
    op: fc.constantFrom('delete' as const, 'get' as const, 'has' as const),
    name: nameArb,
  }),
);
const initArb: fc.Arbitrary<WebHeadersInit | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.array(fc.tuple(nameArb, valueArb), { maxLength: 5 }),
  fc.dictionary(nameArb, valueArb, { maxKeys: 5 }),
);

describe('WebHeaders', () => {
  it('behaves as Node’s own Headers for any sequence of operations (differential)', () => {
    expect(NodeHeaders).not.toBe(WebHeaders);
    fc.assert(
      fc.property(initArb, fc.array(opArb, { maxLength: 25 }), (init, ops) => {
        expect(run(WebHeaders, init, ops)).toEqual(run(NodeHeaders, init, ops));
      }),
      { numRuns: 600 },
    );
  });

  it('takes another Headers, itself or Node’s, as init', () => {
    const src = new NodeHeaders([
      ['B', '2'],
      ['a', '1'],
      ['set-cookie', 'x=1'],
      ['set-cookie', 'y=2'],
    ]);
    const h = new WebHeaders(src);
    expect([...h]).toEqual([
      ['a', '1'],
      ['b', '2'],
      ['set-cookie', 'x=1'],
      ['set-cookie', 'y=2'],
    ]);
    expect([...new WebHeaders(h)]).toEqual([...h]);
    expect([...new NodeHeaders(h)]).toEqual([...h]);
  });

  it('refuses malformed init as Node does', () => {
    for (const bad of [[['a']], [['a', 'b', 'c']], ['ab'], [1], 5, 'x']) {
      expect(() => new WebHeaders(bad as never)).toThrow(TypeError);
      expect(() => new NodeHeaders(bad as never)).toThrow(TypeError);
    }
  });

  it('names what is wrong in its errors', () => {
    const h = new WebHeaders();
    expect(() => h.set('a b', 'v')).toThrow(/invalid header name "a b"/);
    expect(() => h.set('a', 'x\ny')).toThrow(/invalid header value/);
    expect(() => h.set('a', '☃')).toThrow(/character above U\+00FF at index 0/);
    expect(() => h.forEach(5 as never)).toThrow(/callback is not a function/);
    expect(Object.prototype.toString.call(h)).toBe('[object Headers]');
  });

  it('trims a long run of whitespace in linear time', () => {
    const v = `a${' '.repeat(200_000)}b${' '.repeat(200_000)}`;
    const t0 = performance.now();
    const h = new WebHeaders({ k: v });
    // a quadratic trim takes seconds here; this bound only catches that
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(h.get('k')).toBe(`a${' '.repeat(200_000)}b`);
  });

  it('installs itself as the global Headers only while Node’s is not loaded', () => {
    // In this process Node's Headers has been loaded (above): installing changes nothing.
    expect(installWebHeaders()).toBe(false);
    expect(globalThis.Headers).toBe(NodeHeaders);
    // In a fresh process it installs, connect's header code works with it, and Node's fetch
    // implementation is never loaded.
    const module = join(import.meta.dirname, '../../../src/common/web-headers.ts');
    const script = `
      const { installWebHeaders, WebHeaders } = await import(${JSON.stringify(module)});
      const installed = installWebHeaders();
      const h = new Headers({ 'Content-Type': 'application/grpc' });
      h.append('grpc-status', '0');
      const undici = process.moduleLoadList.filter((m) => m.includes('undici'));
      console.log(JSON.stringify({ installed, ours: globalThis.Headers === WebHeaders, entries: [...h], undici }));
    `;
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
      },
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      installed: true,
      ours: true,
      entries: [
        ['content-type', 'application/grpc'],
        ['grpc-status', '0'],
      ],
      undici: [],
    });
  });
});
