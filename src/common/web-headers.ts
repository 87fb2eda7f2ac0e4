/**
 * A WHATWG Fetch `Headers` (https://fetch.spec.whatwg.org/#headers-class, guard "none"), and
 * {@link installWebHeaders}, which makes it the process's global `Headers` before anything asks
 * Node for its own.
 *
 * Why: connect (the gRPC library) builds a `Headers` for every call and every `ConnectError`.
 * Node 20's global `Headers` is a lazy property that loads Node's whole fetch implementation
 * (undici, ~1 MB of JavaScript that also compiles its WebAssembly HTTP parser) on first use:
 * about 12 MB of resident memory in a bare `node`, ~4 MB of the agent's (docs/performance.md,
 * "Agent"), and ~50 ms of its start. The agent needs none of fetch; it only needs the header
 * map, which this is.
 *
 * Behaviour is the specification's, checked against Node's own `Headers` by a differential
 * property test (test/unit/common/web-headers.test.ts): names are validated as HTTP tokens and
 * stored lower-case; values are normalised (leading and trailing HTTP whitespace removed) and
 * refused with a NUL, CR or LF or a character above U+00FF; `get` joins a name's values with
 * `, `; iteration is sorted by name, with values combined except `set-cookie`, whose values
 * come one by one; `getSetCookie` lists them. Not implemented: the request/response guards
 * (only fetch's own objects have them).
 */

/** What `new Headers(init)` takes (a record, a sequence of pairs, or another Headers). */
export type WebHeadersInit = ConstructorParameters<typeof Headers>[0];
type EntriesIterator = ReturnType<Headers['entries']>;
type KeysIterator = ReturnType<Headers['keys']>;
type ValuesIterator = ReturnType<Headers['values']>;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FORBIDDEN_IN_VALUE = /[\0\n\r]/;
const SET_COOKIE = 'set-cookie';

function headerName(name: unknown): string {
  const s = byteString(name, 'header name');
  if (!TOKEN.test(s)) throw new TypeError(`Headers: invalid header name "${s}"`);
  return s.toLowerCase();
}

function headerValue(value: unknown): string {
  const s = trimHttpWhitespace(byteString(value, 'header value'));
  if (FORBIDDEN_IN_VALUE.test(s)) throw new TypeError('Headers: invalid header value');
  return s;
}

const isHttpWhitespace = (c: number): boolean =>
  c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/** Removes leading and trailing HTTP whitespace (tab, LF, CR, space); linear in the length. */
function trimHttpWhitespace(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isHttpWhitespace(s.charCodeAt(start))) start++;
  while (end > start && isHttpWhitespace(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/** WebIDL ByteString: ToString, then every code unit must be ≤ 0xFF. */
function byteString(v: unknown, what: string): string {
  if (typeof v === 'symbol') throw new TypeError(`Headers: a ${what} cannot be a symbol`);
  const s = String(v);
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0xff) {
      throw new TypeError(`Headers: the ${what} has a character above U+00FF at index ${i}`);
    }
  }
  return s;
}

/** The header map of the Fetch standard (see the module docs). */
export class WebHeaders implements Headers {
  /** Lower-case name → values in the order they were added. */
  readonly #map = new Map<string, string[]>();

  constructor(init?: WebHeadersInit | null) {
    if (init === undefined || init === null) return;
    if (typeof init !== 'object' && typeof init !== 'function') {
      throw new TypeError('Headers: init must be an object, a sequence of pairs or a record');
    }
    const iterator = (init as { [Symbol.iterator]?: unknown })[Symbol.iterator];
    if (iterator !== undefined) {
      if (typeof iterator !== 'function') throw new TypeError('Headers: init is not iterable');
      for (const pair of init as Iterable<unknown>) {
        if (
          pair === null ||
          typeof pair !== 'object' ||
          typeof (pair as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== 'function'
        ) {
          throw new TypeError('Headers: each init entry must be a [name, value] pair');
        }
        const kv = [...(pair as Iterable<unknown>)];
        if (kv.length !== 2) {
          throw new TypeError('Headers: each init entry must have exactly a name and a value');
        }
        this.append(kv[0] as string, kv[1] as string);
      }
      return;
    }
    const record = init as Record<string, unknown>;
    for (const key of Reflect.ownKeys(record)) {
      const d = Reflect.getOwnPropertyDescriptor(record, key);
      if (d === undefined || d.enumerable !== true) continue;
      this.append(key as string, record[key as string] as string);
    }
  }

  append(name: string, value: string): void {
    const n = headerName(name);
    const v = headerValue(value);
    const list = this.#map.get(n);
    if (list === undefined) this.#map.set(n, [v]);
    else list.push(v);
  }

  set(name: string, value: string): void {
    this.#map.set(headerName(name), [headerValue(value)]);
  }

  get(name: string): string | null {
    const list = this.#map.get(headerName(name));
    return list === undefined ? null : list.join(', ');
  }

  has(name: string): boolean {
    return this.#map.has(headerName(name));
  }

  delete(name: string): void {
    this.#map.delete(headerName(name));
  }

  getSetCookie(): string[] {
    return [...(this.#map.get(SET_COOKIE) ?? [])];
  }

  forEach(
    callback: (value: string, key: string, parent: Headers) => void,
    thisArg?: unknown,
  ): void {
    if (typeof callback !== 'function') throw new TypeError('Headers: callback is not a function');
    for (const [k, v] of this.#sorted()) callback.call(thisArg, v, k, this);
  }

  entries(): EntriesIterator {
    return this.#sorted()[Symbol.iterator]() as EntriesIterator;
  }

  keys(): KeysIterator {
    return this.#sorted()
      .map(([k]) => k)
      [Symbol.iterator]() as KeysIterator;
  }

  values(): ValuesIterator {
    return this.#sorted()
      .map(([, v]) => v)
      [Symbol.iterator]() as ValuesIterator;
  }

  [Symbol.iterator](): EntriesIterator {
    return this.entries();
  }

  get [Symbol.toStringTag](): string {
    return 'Headers';
  }

  /** The spec's "sort and combine". */
  #sorted(): [string, string][] {
    const names = [...this.#map.keys()].sort();
    const out: [string, string][] = [];
    for (const n of names) {
      const list = this.#map.get(n)!;
      if (n === SET_COOKIE) for (const v of list) out.push([n, v]);
      else out.push([n, list.join(', ')]);
    }
    return out;
  }
}

/**
 * Makes {@link WebHeaders} the global `Headers`, unless Node's has already been loaded (then
 * nothing changes: two kinds of `Headers` in one process help no one). Returns whether it did.
 * Call it first thing in an entry point, before connect is loaded.
 */
export function installWebHeaders(): boolean {
  const d = Object.getOwnPropertyDescriptor(globalThis, 'Headers');
  // Node defines Headers as a lazy accessor; a data property means it was loaded (or replaced).
  if (d !== undefined && d.get === undefined) return d.value === WebHeaders;
  Object.defineProperty(globalThis, 'Headers', {
    value: WebHeaders,
    writable: true,
    configurable: true,
    enumerable: false,
  });
  return true;
}
