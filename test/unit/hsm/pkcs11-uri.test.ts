/**
 * RFC 7512 PKCS#11 URIs: the RFC's own examples (§3), the rules broken one by one, and
 * property tests (format → parse round trips; arbitrary input yields a URI or the coded
 * error, never anything else; percent-decoding of `id` and `object`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import { formatPkcs11Uri, type Pkcs11Uri, parsePkcs11Uri } from '../../../src/hsm/pkcs11/uri.js';

const hex = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : Buffer.from(b).toString('hex');

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isSpireEdgeError(err) ? err.code : `not coded: ${String(err)}`;
  }
  return undefined;
}

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected an error');
}

describe('RFC 7512 §3 examples', () => {
  it('parses the empty URI', () => {
    expect(parsePkcs11Uri('pkcs11:')).toEqual({ vendorPath: [], vendorQuery: [] });
  });

  it('parses object and type, with a pin-source query', () => {
    expect(parsePkcs11Uri('pkcs11:object=my-pubkey;type=public')).toMatchObject({
      object: 'my-pubkey',
      type: 'public',
    });
    expect(
      parsePkcs11Uri('pkcs11:object=my-key;type=private?pin-source=file:/etc/token'),
    ).toMatchObject({ object: 'my-key', type: 'private', pinSource: 'file:/etc/token' });
  });

  it('percent-decodes token, manufacturer and the binary id; keeps an empty serial', () => {
    const u = parsePkcs11Uri(
      'pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin',
    );
    expect(u.token).toBe('The Software PKCS#11 Softtoken');
    expect(u.manufacturer).toBe('Snake Oil, Inc.');
    expect(u.model).toBe('1.0');
    expect(u.type).toBe('cert');
    expect(hex(u.id)).toBe('69953e5cf4bdec91');
    expect(u.serial).toBe('');
    expect(u.pinSource).toBe('file:/etc/token_pin');
  });

  it('reads module-name, module-path and pin-value from the query', () => {
    expect(
      parsePkcs11Uri('pkcs11:object=my-sign-key;type=private?module-name=mypkcs11').moduleName,
    ).toBe('mypkcs11');
    expect(
      parsePkcs11Uri('pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1')
        .modulePath,
    ).toBe('/mnt/libmypkcs11.so.1');
    expect(
      parsePkcs11Uri(
        'pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin',
      ).pinValue,
    ).toBe('the-pin');
  });

  it('reads slot and library attributes', () => {
    expect(parsePkcs11Uri('pkcs11:slot-description=Sun%20Metaslot').slotDescription).toBe(
      'Sun Metaslot',
    );
    expect(
      parsePkcs11Uri(
        'pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23',
      ),
    ).toMatchObject({
      libraryManufacturer: 'Snake Oil, Inc.',
      libraryDescription: 'Soft Token Library',
      libraryVersion: { major: 1, minor: 23 },
    });
    const joe = parsePkcs11Uri(
      'pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ca%fe%04%05%06',
    );
    expect(joe.token).toBe('My token% created by Joe');
    expect(joe.libraryVersion).toEqual({ major: 3, minor: 0 });
    expect(hex(joe.id)).toBe('010203badd cafe040506'.replace(' ', ''));
    expect(parsePkcs11Uri('pkcs11:slot-id=1812751659').slotId).toBe(1812751659);
  });

  it('decodes ";" and "%" inside values, and UTF-8', () => {
    expect(
      parsePkcs11Uri(
        'pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert',
      ).token,
    ).toBe('A name with a substring %;');
    expect(
      parsePkcs11Uri(
        'pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert',
      ).token,
    ).toBe('Name with a small A with acute: á');
  });

  it('keeps vendor attributes in order', () => {
    const u = parsePkcs11Uri(
      'pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b',
    );
    expect(u.vendorPath).toEqual([['vendor-aaa', 'value-a']]);
    expect(u.vendorQuery).toEqual([['vendor-bbb', 'value-b']]);
  });

  it('allows the reserved characters each component permits unencoded', () => {
    const u = parsePkcs11Uri("pkcs11:token=:[]@!$'()*+,=&?vendor=:[]@!$'()*+,=/?|");
    expect(u.token).toBe(":[]@!$'()*+,=&");
    expect(u.vendorQuery).toEqual([['vendor', ":[]@!$'()*+,=/?|"]]);
  });

  it('accepts the scheme in any case', () => {
    expect(parsePkcs11Uri('PKCS11:token=a').token).toBe('a');
  });
});

describe('rules', () => {
  const bad: Array<[string, RegExp]> = [
    ['pkcs12:token=a', /must start with "pkcs11:"/],
    ['token=a', /must start with "pkcs11:"/],
    ['pkcs11:token=a;token=b', /path attribute token must not appear twice/],
    ['pkcs11:token=a b', /character " " must be percent-encoded/],
    ['pkcs11:token=a/b', /character "\/" must be percent-encoded/],
    ['pkcs11:token=%4', /"%" must be followed by two hexadecimal digits/],
    ['pkcs11:token=%zz', /"%" must be followed by two hexadecimal digits/],
    ['pkcs11:token=%C3%28', /not valid UTF-8/],
    ['pkcs11:object=a;type=secret', /type must be one of/],
    ['pkcs11:slot-id=-1', /slot-id must be decimal digits/],
    ['pkcs11:slot-id=99999999999999999999', /slot-id is too large/],
    ['pkcs11:library-version=1.x', /library-version must be digits/],
    ['pkcs11:token', /must have the form name=value/],
    ['pkcs11:=a', /must have the form name=value/],
    ['pkcs11:token=a;', /must have the form name=value/],
    ['pkcs11:pin-value=1234', /pin-value belongs in the query/],
    ['pkcs11:?token=a', /token belongs in the path/],
    ['pkcs11:?pin-value=1&pin-value=2', /pin-value must not appear twice/],
    ['pkcs11:?pin-value=1&pin-source=/p', /must not both be present/],
    ['pkcs11:?pin-value=a&b', /must have the form name=value/],
    ['pkcs11:?pin-value=a;b', /character ";" must be percent-encoded/],
    ['pkcs11:token=a#frag', /fragment/],
    ['pkcs11:vend.or=1', /not a known attribute or a vendor attribute name/],
  ];
  for (const [uri, re] of bad) {
    it(`rejects ${uri}`, () => {
      expect(code(() => parsePkcs11Uri(uri))).toBe('ERR_HSM_URI_INVALID');
      expect(message(() => parsePkcs11Uri(uri))).toMatch(re);
    });
  }

  it('treats "__proto__" and other Object.prototype names as vendor attributes', () => {
    const u = parsePkcs11Uri('pkcs11:__proto__=x;constructor=y?toString=z');
    expect(u.vendorPath).toEqual([
      ['__proto__', 'x'],
      ['constructor', 'y'],
    ]);
    expect(u.vendorQuery).toEqual([['toString', 'z']]);
    expect(Object.keys(u).sort()).toEqual(['vendorPath', 'vendorQuery']);
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });

  it('throws TypeError for a non-string', () => {
    expect(() => parsePkcs11Uri(42 as unknown as string)).toThrow(TypeError);
  });

  it('never echoes the PIN in an error', () => {
    const secret = 'S3cretPIN';
    for (const uri of [
      `pkcs11:?pin-value=${secret}%G1`,
      `pkcs11:?pin-value=${secret} `,
      `pkcs11:?pin-value=${secret}&pin-value=${secret}`,
      `pkcs11:pin-value=${secret}`,
    ]) {
      expect(message(() => parsePkcs11Uri(uri))).not.toContain(secret);
    }
  });
});

describe('formatPkcs11Uri', () => {
  it('encodes what needs encoding and always encodes id', () => {
    expect(
      formatPkcs11Uri({
        token: 'My token% ;/',
        object: 'spire-edge-x509-CA-A',
        type: 'private',
        id: Uint8Array.of(0x41, 0x00, 0xff),
        slotId: 7,
        modulePath: '/usr/lib/softhsm/libsofthsm2.so',
        pinValue: 'a&b',
        vendorPath: [],
        vendorQuery: [],
      }),
    ).toBe(
      'pkcs11:token=My%20token%25%20%3B%2F;object=spire-edge-x509-CA-A;type=private;id=%41%00%FF;slot-id=7?pin-value=a%26b&module-path=/usr/lib/softhsm/libsofthsm2.so',
    );
  });

  it('refuses values it cannot represent', () => {
    const base = { vendorPath: [], vendorQuery: [] };
    expect(() => formatPkcs11Uri({ ...base, slotId: -1 })).toThrow(TypeError);
    expect(() => formatPkcs11Uri({ ...base, vendorPath: [['bad name', 'x']] })).toThrow(TypeError);
    expect(() => formatPkcs11Uri({ ...base, vendorQuery: [['token', 'x']] })).toThrow(TypeError);
  });
});

describe('properties', () => {
  const text = fc.option(fc.string({ unit: 'grapheme', maxLength: 24 }), { nil: undefined });
  const vendorName = fc
    .stringMatching(/^[A-Za-z0-9_-]{1,12}$/)
    .filter(
      (n) =>
        ![
          'token',
          'manufacturer',
          'serial',
          'model',
          'object',
          'type',
          'id',
          'pin-source',
          'pin-value',
          'module-name',
          'module-path',
          'slot-id',
          'library-version',
          'library-manufacturer',
          'library-description',
          'slot-description',
          'slot-manufacturer',
        ].includes(n),
    );
  const uriArb: fc.Arbitrary<Pkcs11Uri> = fc
    .record({
      token: text,
      manufacturer: text,
      serial: text,
      model: text,
      libraryManufacturer: text,
      libraryDescription: text,
      libraryVersion: fc.option(
        fc.record({
          major: fc.integer({ min: 0, max: 255 }),
          minor: fc.integer({ min: 0, max: 255 }),
        }),
        { nil: undefined },
      ),
      object: text,
      type: fc.option(fc.constantFrom('public', 'private', 'cert', 'secret-key', 'data' as const), {
        nil: undefined,
      }),
      id: fc.option(fc.uint8Array({ maxLength: 20 }), { nil: undefined }),
      slotDescription: text,
      slotManufacturer: text,
      slotId: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
      pinSource: text,
      moduleName: text,
      modulePath: text,
      vendorPath: fc.array(fc.tuple(vendorName, fc.string({ maxLength: 10 })), { maxLength: 3 }),
      vendorQuery: fc.array(fc.tuple(vendorName, fc.string({ maxLength: 10 })), { maxLength: 3 }),
    })
    .map((r) => {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(r)) if (v !== undefined) out[k] = v;
      return out as unknown as Pkcs11Uri;
    });

  it('parse(format(u)) == u', () => {
    fc.assert(
      fc.property(uriArb, (u) => {
        const again = parsePkcs11Uri(formatPkcs11Uri(u));
        expect({ ...again, id: hex(again.id) }).toEqual({ ...u, id: hex(u.id) });
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary input parses or fails with ERR_HSM_URI_INVALID, nothing else', () => {
    const chars = fc.constantFrom(
      ..."pkcs11:;?&=%#/ abzAZ09-._~[]@!$'()*+,|é\u0000".split(''),
      'token=',
      'id=',
      'slot-id=',
      'type=',
      'pin-value=',
      'library-version=',
      '%41',
      '%C3%A1',
      '%ff',
    );
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 40 }), (parts) => {
        const s = `pkcs11:${parts.join('')}`;
        const c = code(() => parsePkcs11Uri(s));
        expect(c === undefined || c === 'ERR_HSM_URI_INVALID').toBe(true);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (s) => {
        const c = code(() => parsePkcs11Uri(s));
        expect(c === undefined || c === 'ERR_HSM_URI_INVALID').toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('percent-decodes any id bytes, in either hex case', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 32 }), fc.boolean(), (bytes, upper) => {
        const enc = [...bytes]
          .map((b) => {
            const h = b.toString(16).padStart(2, '0');
            return `%${upper ? h.toUpperCase() : h}`;
          })
          .join('');
        expect(hex(parsePkcs11Uri(`pkcs11:id=${enc}`).id)).toBe(Buffer.from(bytes).toString('hex'));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes object labels as UTF-8 whether or not safe characters are encoded', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 20 }), (label) => {
        const all = [...Buffer.from(label, 'utf8')]
          .map((b) => `%${b.toString(16).padStart(2, '0')}`)
          .join('');
        expect(parsePkcs11Uri(`pkcs11:object=${all}`).object).toBe(label);
        expect(
          parsePkcs11Uri(formatPkcs11Uri({ object: label, vendorPath: [], vendorQuery: [] }))
            .object,
        ).toBe(label);
      }),
      { numRuns: 300 },
    );
  });
});
