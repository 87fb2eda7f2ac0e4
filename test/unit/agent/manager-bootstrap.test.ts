/**
 * Trust bootstrap sources (`trust_bundle_path`, `trust_bundle_url`, with the `pem` and `spiffe`
 * formats) and the conversions of server answers: a bundle must name the right trust domain and
 * hold at least one X.509 authority; entries must carry valid IDs and selectors. Errors are
 * asserted by code.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBootstrapBundle, parseBootstrapBundle } from '../../../src/agent/manager/bootstrap.js';
import {
  bundleFromProto,
  bundleRecordsEqual,
  entryFromProto,
  trustDomainBundlesOf,
} from '../../../src/agent/manager/convert.js';
import { ManualClock } from '../../../src/common/clock.js';
import { encodePem } from '../../../src/common/pem.js';
import { types } from '../../../src/protocol/index.js';
import { marshalSpiffeBundle, SpiffeBundle } from '../../../src/spiffe/spiffe-bundle.js';
import { FakeServer, START, TD } from './manager-support.js';

let dir: string;
let server: FakeServer;
const server0 = { host: '127.0.0.1', port: 1 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'agent-boot-'));
  server = await FakeServer.create(new ManualClock(START));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('bootstrap bundles', () => {
  it('reads a PEM bundle file', async () => {
    const path = join(dir, 'bundle.pem');
    await writeFile(path, encodePem('CERTIFICATE', server.caDer));
    const b = await loadBootstrapBundle(
      { kind: 'path', path, format: 'pem' },
      { trustDomain: TD, server: server0 },
    );
    expect(b).toMatchObject({ trustDomain: 'example.org', jwtAuthorities: [] });
    expect(b.x509Authorities).toEqual([server.caDer]);
  });

  it('reads a SPIFFE bundle document with X.509 and JWT authorities', async () => {
    const sb = new SpiffeBundle(TD, { x509Authorities: [server.caDer], sequenceNumber: 3 });
    sb.addJwtAuthority('k1', server.jwtSigner.publicKey);
    const path = join(dir, 'bundle.json');
    await writeFile(path, marshalSpiffeBundle(sb));
    const b = await loadBootstrapBundle(
      { kind: 'path', path, format: 'spiffe' },
      { trustDomain: TD, server: server0 },
    );
    expect(b.x509Authorities).toEqual([server.caDer]);
    expect(b.sequenceNumber).toBe(3);
    expect(b.jwtAuthorities.map((k) => k.keyId)).toEqual(['k1']);
    expect(Buffer.from(b.jwtAuthorities[0]!.publicKey)).toEqual(
      Buffer.from(server.jwtSigner.publicKeySpki),
    );
    expect([...trustDomainBundlesOf(b).jwt.jwtAuthorities.keys()]).toEqual(['k1']);
  });

  it('refuses files that are missing, not bundles, or hold no X.509 authority', async () => {
    await expect(
      loadBootstrapBundle(
        { kind: 'path', path: join(dir, 'nope.pem'), format: 'pem' },
        { trustDomain: TD, server: server0 },
      ),
    ).rejects.toMatchObject({ code: 'ERR_AGENT_BOOTSTRAP_UNAVAILABLE' });
    expect(() => parseBootstrapBundle(new TextEncoder().encode('garbage'), 'pem', TD, 'x')).toThrow(
      expect.objectContaining({ code: 'ERR_AGENT_BOOTSTRAP_BUNDLE_INVALID' }),
    );
    expect(() => parseBootstrapBundle(new TextEncoder().encode(''), 'pem', TD, 'x')).toThrow(
      expect.objectContaining({ code: 'ERR_AGENT_BOOTSTRAP_BUNDLE_INVALID' }),
    );
    expect(() =>
      parseBootstrapBundle(new TextEncoder().encode('{"keys":[]}'), 'spiffe', TD, 'x'),
    ).toThrow(expect.objectContaining({ code: 'ERR_AGENT_BOOTSTRAP_BUNDLE_INVALID' }));
  });

  it('downloads from a URL; a failed download is retryable, a bad body is not', async () => {
    const pem = encodePem('CERTIFICATE', server.caDer);
    const ok = (async () => new Response(pem, { status: 200 })) as typeof fetch;
    const b = await loadBootstrapBundle(
      { kind: 'url', url: 'https://bundle.example/', format: 'pem' },
      { trustDomain: TD, server: server0, fetch: ok },
    );
    expect(b.x509Authorities).toEqual([server.caDer]);
    const notFound = (async () => new Response('no', { status: 404 })) as typeof fetch;
    await expect(
      loadBootstrapBundle(
        { kind: 'url', url: 'https://bundle.example/', format: 'pem' },
        { trustDomain: TD, server: server0, fetch: notFound },
      ),
    ).rejects.toMatchObject({ code: 'ERR_AGENT_BOOTSTRAP_UNAVAILABLE' });
    const junk = (async () => new Response('junk', { status: 200 })) as typeof fetch;
    await expect(
      loadBootstrapBundle(
        { kind: 'url', url: 'https://bundle.example/', format: 'pem' },
        { trustDomain: TD, server: server0, fetch: junk },
      ),
    ).rejects.toMatchObject({ code: 'ERR_AGENT_BOOTSTRAP_BUNDLE_INVALID' });
  });
});

describe('server answers', () => {
  it('a bundle must be for our trust domain and hold parseable authorities', () => {
    const proto = create(types.BundleSchema, {
      trustDomain: 'example.org',
      x509Authorities: [{ asn1: server.caDer }],
      jwtAuthorities: [{ keyId: 'k', publicKey: server.jwtSigner.publicKeySpki, expiresAt: 5n }],
      refreshHint: 300n,
      sequenceNumber: 2n,
    });
    const rec = bundleFromProto(proto, TD);
    expect(rec).toMatchObject({ trustDomain: 'example.org', refreshHint: 300, sequenceNumber: 2 });
    expect(bundleRecordsEqual(rec, bundleFromProto(proto, TD))).toBe(true);
    expect(bundleRecordsEqual(rec, { ...rec, sequenceNumber: 3 })).toBe(false);
    expect(() => bundleFromProto({ ...proto, trustDomain: 'evil.example' }, TD)).toThrow(
      expect.objectContaining({ code: 'ERR_AGENT_SERVER_RESPONSE_INVALID' }),
    );
    expect(() =>
      bundleFromProto(
        {
          ...proto,
          x509Authorities: [{ ...proto.x509Authorities[0]!, asn1: new Uint8Array([1, 2]) }],
        },
        TD,
      ),
    ).toThrow(expect.objectContaining({ code: 'ERR_AGENT_SERVER_RESPONSE_INVALID' }));
  });

  it('an entry must carry valid IDs and selectors', () => {
    const proto = create(types.EntrySchema, {
      id: 'e1',
      spiffeId: { trustDomain: 'example.org', path: '/w' },
      parentId: { trustDomain: 'example.org', path: '/spire/agent/x' },
      selectors: [{ type: 'unix', value: 'uid:0' }],
      federatesWith: ['spiffe://partner.example'],
      revisionNumber: 4n,
      createdAt: 10n,
    });
    expect(entryFromProto(proto)).toMatchObject({
      id: 'e1',
      spiffeId: 'spiffe://example.org/w',
      federatesWith: ['partner.example'],
      revisionNumber: 4,
    });
    const bad = (patch: Partial<types.Entry>) => () => entryFromProto({ ...proto, ...patch });
    const code = expect.objectContaining({ code: 'ERR_AGENT_SERVER_RESPONSE_INVALID' });
    expect(bad({ id: '' })).toThrow(code);
    expect(bad({ spiffeId: { ...proto.spiffeId!, path: 'no-slash' } })).toThrow(code);
    expect(bad({ selectors: [{ ...proto.selectors[0]!, type: '' }] })).toThrow(code);
    expect(bad({ revisionNumber: -1n })).toThrow(code);
  });
});
