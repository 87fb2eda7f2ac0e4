/**
 * The pure parts of the SDS service: `sds { … }` settings, the node rules that choose the
 * validation context encoding (SPIRE's supportsSPIFFEAuthExtension and the
 * `disable_spiffe_cert_validation` metadata override), the resources served for each kind
 * of name, and the wire form of a Secret (field numbers of the published Envoy API).
 */
import { create, fromBinary } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveSdsConfig, SDS_DEFAULTS, type SdsConfig } from '../../../src/agent/sds/config.js';
import { supportsSpiffeValidator, useSpiffeValidator } from '../../../src/agent/sds/node.js';
import {
  buildSdsSecrets,
  packSecrets,
  type SdsState,
  SPIFFE_VALIDATOR_NAME,
} from '../../../src/agent/sds/resources.js';
import type { WorkloadIdentity } from '../../../src/agent/workload-api/identity-source.js';
import { SpireEdgeError } from '../../../src/common/errors.js';
import { decodePem } from '../../../src/common/pem.js';
import { sdsv3 } from '../../../src/protocol/index.js';
import { JwtBundle } from '../../../src/spiffe/jwt-bundle.js';
import { X509Bundle } from '../../../src/spiffe/x509-bundle.js';

const der = (...b: number[]) => Uint8Array.from([0x30, b.length, ...b]);
const OWN_CA = der(1, 1);
const OWN_CA2 = der(1, 2);
const PARTNER_CA = der(2, 2);
const ZETA_CA = der(3, 3);
const config = resolveSdsConfig();

function bundles(td: string, ...cas: Uint8Array[]) {
  return { x509: new X509Bundle(td, cas), jwt: new JwtBundle(td) };
}

function identity(id: string, over: Partial<WorkloadIdentity> = {}): WorkloadIdentity {
  return {
    entryId: id,
    entryCreatedAt: 1,
    spiffeId: `spiffe://example.org/${id}`,
    certChain: [der(9, id.charCodeAt(0)), der(8, 8)],
    privateKeyPkcs8: der(7, id.charCodeAt(0)),
    hint: '',
    expiresAt: new Date(Date.UTC(2030, 0, 1)),
    federatesWith: [],
    ...over,
  };
}

function state(over: Partial<SdsState> = {}): SdsState {
  return {
    identities: [identity('a'), identity('b')],
    own: bundles('example.org', OWN_CA, OWN_CA2),
    federated: new Map([
      ['zeta.example', bundles('zeta.example', ZETA_CA)],
      ['partner.example', bundles('partner.example', PARTNER_CA)],
    ]),
    ...over,
  };
}

const pemDers = (bytes: Uint8Array | undefined) =>
  decodePem(Buffer.from(bytes ?? new Uint8Array()).toString('latin1')).map((b) => [
    b.label,
    Buffer.from(b.der).toString('hex'),
  ]);
const hex = (...ders: Uint8Array[]) =>
  ders.map((d) => ['CERTIFICATE', Buffer.from(d).toString('hex')]);

function inlineOf(ds: sdsv3.DataSource | undefined): Uint8Array | undefined {
  return ds?.specifier.case === 'inlineBytes' ? ds.specifier.value : undefined;
}

/** A secret as `[name, kind, details]` for compact assertions. */
function describeSecret(s: sdsv3.Secret): [string, string, unknown] {
  if (s.type.case === 'tlsCertificate') {
    return [
      s.name,
      'tls',
      {
        chain: pemDers(inlineOf(s.type.value.certificateChain)),
        key: pemDers(inlineOf(s.type.value.privateKey)),
      },
    ];
  }
  if (s.type.case === 'validationContext') {
    const v = s.type.value;
    if (v.customValidatorConfig !== undefined) {
      expect(v.trustedCa).toBeUndefined();
      expect(v.customValidatorConfig.name).toBe(SPIFFE_VALIDATOR_NAME);
      const any = v.customValidatorConfig.typedConfig!;
      expect(any.typeUrl).toBe(
        'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig',
      );
      const cfg = anyUnpack(any, sdsv3.SPIFFECertValidatorConfigSchema)!;
      return [
        s.name,
        'spiffe',
        cfg.trustDomains.map((t) => [t.name, pemDers(inlineOf(t.trustBundle))]),
      ];
    }
    return [s.name, 'trusted_ca', pemDers(inlineOf(v.trustedCa))];
  }
  return [s.name, 'other', undefined];
}

function build(names: string[], spiffeValidator = true, st = state(), cfg = config) {
  return buildSdsSecrets(st, names, { config: cfg, spiffeValidator }).map(describeSecret);
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof SpireEdgeError) return `${err.code}: ${err.message}`;
    throw err;
  }
  throw new Error('expected a failure');
}

describe('resolveSdsConfig', () => {
  it("has SPIRE's defaults", () => {
    expect(resolveSdsConfig()).toEqual({
      defaultSvidName: 'default',
      defaultBundleName: 'ROOTCA',
      defaultAllBundlesName: 'ALL',
      disableSpiffeCertValidation: false,
    });
    expect(SDS_DEFAULTS).toEqual(resolveSdsConfig({}));
    expect(
      resolveSdsConfig({ defaultBundleName: 'ca', disableSpiffeCertValidation: true }),
    ).toMatchObject({
      defaultBundleName: 'ca',
      defaultSvidName: 'default',
      disableSpiffeCertValidation: true,
    });
  });

  it('rejects empty names and non-boolean flags with TypeError', () => {
    expect(() => resolveSdsConfig({ defaultSvidName: '' })).toThrow(TypeError);
    expect(() => resolveSdsConfig({ defaultAllBundlesName: 5 } as unknown as SdsConfig)).toThrow(
      /defaultAllBundlesName must be a non-empty string/,
    );
    expect(() =>
      resolveSdsConfig({ disableSpiffeCertValidation: 'yes' } as unknown as SdsConfig),
    ).toThrow(/disableSpiffeCertValidation must be a boolean/);
  });
});

describe('node rules', () => {
  const build = (major: number, minor: number) =>
    create(sdsv3.NodeSchema, {
      userAgentName: 'envoy',
      userAgentVersionType: {
        case: 'userAgentBuildVersion',
        value: { version: { majorNumber: major, minorNumber: minor, patch: 3 } },
      },
    });

  it('the SPIFFE validator exists from Envoy 1.18, and is assumed without a structured version', () => {
    expect(supportsSpiffeValidator(undefined)).toBe(true);
    expect(supportsSpiffeValidator(create(sdsv3.NodeSchema, { id: 'n' }))).toBe(true);
    expect(
      supportsSpiffeValidator(
        create(sdsv3.NodeSchema, {
          userAgentVersionType: { case: 'userAgentVersion', value: '1.10.0' },
        }),
      ),
    ).toBe(true);
    expect(supportsSpiffeValidator(build(1, 17))).toBe(false);
    expect(supportsSpiffeValidator(build(1, 18))).toBe(true);
    expect(supportsSpiffeValidator(build(1, 31))).toBe(true);
    expect(supportsSpiffeValidator(build(2, 0))).toBe(true);
    expect(supportsSpiffeValidator(build(0, 99))).toBe(false);
    // a build version without its version reads as 0.0, as in Go
    expect(
      supportsSpiffeValidator(
        create(sdsv3.NodeSchema, {
          userAgentVersionType: { case: 'userAgentBuildVersion', value: {} },
        }),
      ),
    ).toBe(false);
  });

  it('node metadata disable_spiffe_cert_validation overrides the setting (bool or ParseBool string)', () => {
    const withMeta = (v: unknown) =>
      create(sdsv3.NodeSchema, {
        metadata: { disable_spiffe_cert_validation: v } as never,
      });
    const on = { disableSpiffeCertValidation: false };
    const off = { disableSpiffeCertValidation: true };
    expect(useSpiffeValidator(undefined, on)).toBe(true);
    expect(useSpiffeValidator(undefined, off)).toBe(false);
    for (const v of [true, 'true', 'TRUE', 'True', 't', 'T', '1']) {
      expect(useSpiffeValidator(withMeta(v), on), String(v)).toBe(false);
    }
    for (const v of [false, 'false', 'FALSE', 'False', 'f', 'F', '0']) {
      expect(useSpiffeValidator(withMeta(v), off), String(v)).toBe(true);
    }
    // anything else is ignored: the configured setting stands
    for (const v of ['yes', 'on', '', 1, 0, null, ['true'], { a: true }]) {
      expect(useSpiffeValidator(withMeta(v), on), JSON.stringify(v)).toBe(true);
      expect(useSpiffeValidator(withMeta(v), off), JSON.stringify(v)).toBe(false);
    }
    // an Envoy too old for the validator never gets it, whatever the metadata says
    const old = build(1, 17);
    old.metadata = { disable_spiffe_cert_validation: false };
    expect(useSpiffeValidator(old, on)).toBe(false);
  });
});

describe('buildSdsSecrets', () => {
  it('no names: every bundle under its trust domain ID, every identity under its SPIFFE ID', () => {
    expect(build([])).toEqual([
      ['spiffe://example.org', 'spiffe', [['example.org', hex(OWN_CA, OWN_CA2)]]],
      ['spiffe://partner.example', 'spiffe', [['partner.example', hex(PARTNER_CA)]]],
      ['spiffe://zeta.example', 'spiffe', [['zeta.example', hex(ZETA_CA)]]],
      [
        'spiffe://example.org/a',
        'tls',
        {
          chain: hex(der(9, 97), der(8, 8)),
          key: [['PRIVATE KEY', Buffer.from(der(7, 97)).toString('hex')]],
        },
      ],
      [
        'spiffe://example.org/b',
        'tls',
        {
          chain: hex(der(9, 98), der(8, 8)),
          key: [['PRIVATE KEY', Buffer.from(der(7, 98)).toString('hex')]],
        },
      ],
    ]);
    // empty names are ignored, so [''] is "no names" too
    expect(build([''])).toEqual(build([]));
  });

  it('without the validator, bundles are trusted_ca PEM', () => {
    expect(build(['ROOTCA', 'spiffe://partner.example'], false)).toEqual([
      ['ROOTCA', 'trusted_ca', hex(OWN_CA, OWN_CA2)],
      ['spiffe://partner.example', 'trusted_ca', hex(PARTNER_CA)],
    ]);
    expect(build([], false).slice(0, 3)).toEqual([
      ['spiffe://example.org', 'trusted_ca', hex(OWN_CA, OWN_CA2)],
      ['spiffe://partner.example', 'trusted_ca', hex(PARTNER_CA)],
      ['spiffe://zeta.example', 'trusted_ca', hex(ZETA_CA)],
    ]);
  });

  it('ROOTCA is the own trust domain, ALL every trust domain sorted by name, default the first identity', () => {
    expect(build(['default', 'ALL', 'ROOTCA'])).toEqual([
      ['ROOTCA', 'spiffe', [['example.org', hex(OWN_CA, OWN_CA2)]]],
      [
        'ALL',
        'spiffe',
        [
          ['example.org', hex(OWN_CA, OWN_CA2)],
          ['partner.example', hex(PARTNER_CA)],
          ['zeta.example', hex(ZETA_CA)],
        ],
      ],
      ['default', 'tls', expect.objectContaining({ chain: hex(der(9, 97), der(8, 8)) })],
    ]);
    // the first identity is by entry order of the state (the handler sorts by entry ID)
    const st = state({ identities: [identity('b'), identity('a')] });
    expect(build(['default'], true, st)[0]?.[2]).toMatchObject({
      chain: hex(der(9, 98), der(8, 8)),
    });
  });

  it('serves the own trust domain ID, the bundle name and the SVID both by ID and as default in one request', () => {
    expect(
      build(['spiffe://example.org', 'ROOTCA', 'spiffe://example.org/a', 'default']).map(
        ([n, k]) => [n, k],
      ),
    ).toEqual([
      ['spiffe://example.org', 'spiffe'],
      ['ROOTCA', 'spiffe'],
      ['spiffe://example.org/a', 'tls'],
      ['default', 'tls'],
    ]);
  });

  it('configured names replace the defaults', () => {
    const cfg = resolveSdsConfig({
      defaultSvidName: 'mine',
      defaultBundleName: 'ca',
      defaultAllBundlesName: 'everything',
    });
    expect(build(['mine', 'ca', 'everything'], true, state(), cfg).map(([n]) => n)).toEqual([
      'ca',
      'everything',
      'mine',
    ]);
    expect(codeOf(() => build(['ROOTCA'], true, state(), cfg))).toBe(
      'ERR_SDS_RESOURCE_NAMES_INVALID: workload is not authorized for the requested identities ["ROOTCA"]',
    );
  });

  it('ALL needs the SPIFFE validator (SPIRE: Internal, "Envoy below 1.17")', () => {
    expect(codeOf(() => build(['ALL'], false))).toBe(
      'ERR_SDS_SPIFFE_VALIDATOR_UNSUPPORTED: unable to use "SPIFFE validator" on Envoy below 1.17',
    );
  });

  it('names the caller does not hold fail the whole answer, sorted and quoted as Go does', () => {
    expect(
      codeOf(() =>
        build(['spiffe://example.org/a', 'spiffe://example.org/c', 'spiffe://other.td', 'ROOTCA']),
      ),
    ).toBe(
      'ERR_SDS_RESOURCE_NAMES_INVALID: workload is not authorized for the requested identities ["spiffe://example.org/c" "spiffe://other.td"]',
    );
    // without identities, default is not served; bundles still are (as SPIRE)
    const none = state({ identities: [] });
    expect(codeOf(() => build(['default'], true, none))).toMatch(/\["default"\]$/);
    expect(build([], true, none).map(([n]) => n)).toEqual([
      'spiffe://example.org',
      'spiffe://partner.example',
      'spiffe://zeta.example',
    ]);
  });

  it('quotes at most 16 names of at most 256 characters', () => {
    const names = Array.from({ length: 40 }, (_, i) => `x${i}`.padEnd(300, 'y'));
    const msg = codeOf(() => build(names));
    expect(msg.length).toBeLessThan(16 * 270 + 200);
    expect(msg).toMatch(/…\(24 more\)\]$/);
    expect(msg).toContain(`"${'x0'.padEnd(256, 'y')}…"`);
  });

  it('two entries with one SPIFFE ID give one resource, from the first entry', () => {
    const st = state({
      identities: [identity('a'), identity('b', { spiffeId: 'spiffe://example.org/a' })],
    });
    const out = build(['spiffe://example.org/a'], true, st);
    expect(out).toHaveLength(1);
    expect(out[0]?.[2]).toMatchObject({ chain: hex(der(9, 97), der(8, 8)) });
    expect(build([], true, st).filter(([n]) => n === 'spiffe://example.org/a')).toHaveLength(1);
  });

  it('never serves the own trust domain twice when the source lists it as federated', () => {
    const st = state({
      federated: new Map([['example.org', bundles('example.org', ZETA_CA)]]),
    });
    expect(build([]).length).toBe(5);
    expect(build([], true, st).map(([n]) => n)).toEqual([
      'spiffe://example.org',
      'spiffe://example.org/a',
      'spiffe://example.org/b',
    ]);
    expect(build(['ALL'], true, st)[0]?.[2]).toEqual([['example.org', hex(OWN_CA, OWN_CA2)]]);
  });

  it('property: the answer is exactly the requested names, or ERR_SDS_RESOURCE_NAMES_INVALID naming the unknown ones', () => {
    const known = [
      'spiffe://example.org',
      'spiffe://partner.example',
      'spiffe://zeta.example',
      'spiffe://example.org/a',
      'spiffe://example.org/b',
      'ROOTCA',
      'ALL',
      'default',
    ];
    const name = fc.oneof(fc.constantFrom(...known), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(name, { maxLength: 8 }), fc.boolean(), (names, validator) => {
        const requested = new Set(names.filter((n) => n !== ''));
        const unknown = [...requested].filter((n) => !known.includes(n)).sort();
        let out: sdsv3.Secret[];
        try {
          out = buildSdsSecrets(state(), names, { config, spiffeValidator: validator });
        } catch (err) {
          if (!(err instanceof SpireEdgeError)) throw err;
          if (err.code === 'ERR_SDS_SPIFFE_VALIDATOR_UNSUPPORTED') {
            expect(validator).toBe(false);
            expect(requested.has('ALL')).toBe(true);
            return;
          }
          expect(err.code).toBe('ERR_SDS_RESOURCE_NAMES_INVALID');
          expect(unknown.length).toBeGreaterThan(0);
          expect(err.message).toBe(
            `workload is not authorized for the requested identities [${unknown.map((n) => JSON.stringify(n)).join(' ')}]`,
          );
          return;
        }
        expect(unknown).toEqual([]);
        const served = out.map((s) => s.name);
        expect(new Set(served).size).toBe(served.length);
        if (requested.size === 0) expect(served).toHaveLength(5);
        else expect(new Set(served)).toEqual(requested);
      }),
      { numRuns: 300 },
    );
  });
});

/** A message's fields as [number, wire type, bytes] (varints as their value's bytes). */
function fields(buf: Uint8Array): Array<[number, number, Uint8Array]> {
  const out: Array<[number, number, Uint8Array]> = [];
  let i = 0;
  const varint = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) return v;
    }
  };
  while (i < buf.length) {
    const key = varint();
    const wt = key & 7;
    if (wt === 2) {
      const n = varint();
      out.push([key >>> 3, wt, buf.subarray(i, i + n)]);
      i += n;
    } else if (wt === 0) {
      out.push([key >>> 3, wt, Uint8Array.from([varint()])]);
    } else {
      throw new Error(`unexpected wire type ${wt}`);
    }
  }
  return out;
}

describe('wire form (published Envoy field numbers)', () => {
  it('a Secret packs as Any with the Secret type URL; fields encode with the published tags', () => {
    const [any] = packSecrets(
      buildSdsSecrets(state({ identities: [identity('a')] }), ['default'], {
        config,
        spiffeValidator: true,
      }),
    );
    expect(any?.typeUrl).toBe(sdsv3.SECRET_TYPE_URL);
    expect(sdsv3.SECRET_TYPE_URL).toBe(
      'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
    );
    // Secret.name = 1, Secret.tls_certificate = 2 { certificate_chain = 1, private_key = 2 },
    // each DataSource.inline_bytes = 2
    const secret = fields(any!.value);
    expect(secret.map(([n, wt]) => [n, wt])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    expect(Buffer.from(secret[0]![2]).toString()).toBe('default');
    const tls = fields(secret[1]![2]);
    expect(tls.map(([n]) => n)).toEqual([1, 2]);
    const chain = fields(tls[0]![2]);
    const key = fields(tls[1]![2]);
    expect(chain.map(([n]) => n)).toEqual([2]);
    expect(key.map(([n]) => n)).toEqual([2]);
    expect(pemDers(chain[0]![2])).toEqual(hex(der(9, 97), der(8, 8)));
    expect(Buffer.from(key[0]![2]).toString()).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    // and the generated decoder agrees
    expect(fromBinary(sdsv3.SecretSchema, any!.value).type.case).toBe('tlsCertificate');
  });

  it('a DiscoveryRequest decodes from hand-built bytes with the published numbers', () => {
    const ld = (n: number, b: Uint8Array | string) => {
      const data = typeof b === 'string' ? Buffer.from(b) : Buffer.from(b);
      return Buffer.concat([Buffer.from([(n << 3) | 2, data.length]), data]);
    };
    const semver = Buffer.from([0x08, 1, 0x10, 30, 0x18, 2]);
    const node = Buffer.concat([ld(1, 'envoy-1'), ld(6, 'envoy'), ld(8, ld(1, semver))]);
    const status = Buffer.concat([Buffer.from([0x08, 13]), ld(2, 'bad')]);
    const req = Buffer.concat([
      ld(1, '3'),
      ld(2, node),
      ld(3, 'ROOTCA'),
      ld(3, 'default'),
      ld(4, sdsv3.SECRET_TYPE_URL),
      ld(5, 'abcd'),
      ld(6, status),
    ]);
    const m = fromBinary(sdsv3.DiscoveryRequestSchema, req);
    expect(m.versionInfo).toBe('3');
    expect(m.resourceNames).toEqual(['ROOTCA', 'default']);
    expect(m.typeUrl).toBe(sdsv3.SECRET_TYPE_URL);
    expect(m.responseNonce).toBe('abcd');
    expect([m.errorDetail?.code, m.errorDetail?.message]).toEqual([13, 'bad']);
    expect(m.node?.id).toBe('envoy-1');
    expect(m.node?.userAgentName).toBe('envoy');
    expect(m.node?.userAgentVersionType).toMatchObject({
      case: 'userAgentBuildVersion',
      value: { version: { majorNumber: 1, minorNumber: 30, patch: 2 } },
    });
    expect(supportsSpiffeValidator(m.node)).toBe(true);
  });
});
