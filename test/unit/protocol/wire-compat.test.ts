/**
 * The generated descriptors against the published definitions (go-spiffe
 * proto/spiffe/workload/workload.proto, spiffe/spire-api-sdk proto/spire/api/...,
 * grpc health.proto), written here as the proto field lines they publish: a renamed or
 * renumbered field, a lost `repeated` or a changed streaming kind fails this test.
 */
import {
  create,
  type DescField,
  type DescMessage,
  type DescService,
  fromBinary,
  toBinary,
} from '@bufbuild/protobuf';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  agentv1,
  bundlev1,
  entryv1,
  healthv1,
  svidv1,
  trustdomainv1,
  types,
  WORKLOAD_API_HEADER,
  workload,
} from '../../../src/protocol/index.js';

const SCALAR: Record<number, string> = {
  1: 'double',
  2: 'float',
  3: 'int64',
  4: 'uint64',
  5: 'int32',
  8: 'bool',
  9: 'string',
  12: 'bytes',
  13: 'uint32',
};

function typeOf(f: DescField): string {
  switch (f.fieldKind) {
    case 'scalar':
      return SCALAR[f.scalar]!;
    case 'message':
      return f.message.typeName;
    case 'enum':
      return f.enum.typeName;
    case 'list':
      return `repeated ${f.listKind === 'scalar' ? SCALAR[f.scalar] : f.listKind === 'message' ? f.message.typeName : f.enum.typeName}`;
    case 'map': {
      const v =
        f.mapKind === 'scalar'
          ? SCALAR[f.scalar]
          : f.mapKind === 'message'
            ? f.message.typeName
            : f.enum.typeName;
      return `map<${SCALAR[f.mapKey]}, ${v}>`;
    }
  }
}

/** Fields rendered as proto source lines: `repeated bytes crl = 2`. */
function lines(m: DescMessage): string[] {
  return m.fields.map((f) => {
    const opt = f.proto.proto3Optional ? 'optional ' : '';
    return `${opt}${typeOf(f)} ${f.name} = ${f.number}`;
  });
}

/** Methods as `path kind`. */
function methods(s: DescService): string[] {
  return s.methods.map((m) => `/${s.typeName}/${m.name} ${m.methodKind}`);
}

describe('SPIFFE Workload API matches the published workload.proto', () => {
  it('has no package and the published method paths and streaming kinds', () => {
    expect(workload.file_spiffe_workload_workload.proto.package).toBe('');
    expect(methods(workload.SpiffeWorkloadAPI)).toEqual([
      '/SpiffeWorkloadAPI/FetchX509SVID server_streaming',
      '/SpiffeWorkloadAPI/FetchX509Bundles server_streaming',
      '/SpiffeWorkloadAPI/FetchJWTSVID unary',
      '/SpiffeWorkloadAPI/FetchJWTBundles server_streaming',
      '/SpiffeWorkloadAPI/ValidateJWTSVID unary',
      '/SpiffeWorkloadAPI/FetchWITSVID server_streaming',
      '/SpiffeWorkloadAPI/FetchWITBundles server_streaming',
    ]);
    expect(WORKLOAD_API_HEADER).toBe('workload.spiffe.io');
  });

  it('has the published fields', () => {
    const w = workload;
    expect(lines(w.X509SVIDRequestSchema)).toEqual([]);
    expect(lines(w.X509SVIDResponseSchema)).toEqual([
      'repeated X509SVID svids = 1',
      'repeated bytes crl = 2',
      'map<string, bytes> federated_bundles = 3',
    ]);
    expect(lines(w.X509SVIDSchema)).toEqual([
      'string spiffe_id = 1',
      'bytes x509_svid = 2',
      'bytes x509_svid_key = 3',
      'bytes bundle = 4',
      'string hint = 5',
    ]);
    expect(lines(w.X509BundlesRequestSchema)).toEqual([]);
    expect(lines(w.X509BundlesResponseSchema)).toEqual([
      'repeated bytes crl = 1',
      'map<string, bytes> bundles = 2',
    ]);
    expect(lines(w.JWTSVIDRequestSchema)).toEqual([
      'repeated string audience = 1',
      'string spiffe_id = 2',
    ]);
    expect(lines(w.JWTSVIDResponseSchema)).toEqual(['repeated JWTSVID svids = 1']);
    expect(lines(w.JWTSVIDSchema)).toEqual([
      'string spiffe_id = 1',
      'string svid = 2',
      'string hint = 3',
    ]);
    expect(lines(w.JWTBundlesRequestSchema)).toEqual([]);
    expect(lines(w.JWTBundlesResponseSchema)).toEqual(['map<string, bytes> bundles = 1']);
    expect(lines(w.ValidateJWTSVIDRequestSchema)).toEqual([
      'string audience = 1',
      'string svid = 2',
    ]);
    expect(lines(w.ValidateJWTSVIDResponseSchema)).toEqual([
      'string spiffe_id = 1',
      'google.protobuf.Struct claims = 2',
    ]);
    expect(lines(w.WITSVIDSchema)).toEqual([
      'string spiffe_id = 1',
      'string wit_svid = 2',
      'string wit_svid_key = 3',
      'string hint = 4',
    ]);
    expect(lines(w.WITBundlesResponseSchema)).toEqual(['map<string, string> bundles = 1']);
  });

  it('encodes an X509SVIDResponse to the bytes the field numbers imply', () => {
    const msg = create(workload.X509SVIDResponseSchema, {
      svids: [
        {
          spiffeId: 'spiffe://a/b',
          x509Svid: Uint8Array.of(0x30, 0),
          x509SvidKey: Uint8Array.of(0x30, 1),
          bundle: Uint8Array.of(0x30, 2),
          hint: 'h',
        },
      ],
      crl: [Uint8Array.of(0xc1)],
      federatedBundles: { 'spiffe://c': Uint8Array.of(0xfb) },
    });
    const svid = [
      [0x0a, 12, ...Buffer.from('spiffe://a/b')],
      [0x12, 2, 0x30, 0],
      [0x1a, 2, 0x30, 1],
      [0x22, 2, 0x30, 2],
      [0x2a, 1, 0x68],
    ].flat();
    const entry = [
      [0x0a, 10, ...Buffer.from('spiffe://c')],
      [0x12, 1, 0xfb],
    ].flat();
    const expected = [
      [0x0a, svid.length, ...svid],
      [0x12, 1, 0xc1],
      [0x1a, entry.length, ...entry],
    ].flat();
    expect(Buffer.from(toBinary(workload.X509SVIDResponseSchema, msg)).toString('hex')).toBe(
      Buffer.from(expected).toString('hex'),
    );
  });

  it('round-trips arbitrary responses and never hangs or crashes on arbitrary bytes', () => {
    const bytes = fc.uint8Array({ maxLength: 64 });
    const svid = fc.record({
      spiffeId: fc.string(),
      x509Svid: bytes,
      x509SvidKey: bytes,
      bundle: bytes,
      hint: fc.string(),
    });
    fc.assert(
      fc.property(
        fc.array(svid, { maxLength: 4 }),
        fc.array(bytes, { maxLength: 3 }),
        fc.dictionary(fc.string({ maxLength: 20 }), bytes, { maxKeys: 3 }),
        (svids, crl, federatedBundles) => {
          const msg = create(workload.X509SVIDResponseSchema, { svids, crl, federatedBundles });
          const back = fromBinary(
            workload.X509SVIDResponseSchema,
            toBinary(workload.X509SVIDResponseSchema, msg),
          );
          expect(back).toEqual(msg);
        },
      ),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (raw) => {
        try {
          fromBinary(workload.X509SVIDResponseSchema, raw);
          fromBinary(workload.ValidateJWTSVIDResponseSchema, raw);
        } catch (err) {
          // malformed input is an Error, never anything else
          expect(err).toBeInstanceOf(Error);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('SPIRE server API matches spire-api-sdk', () => {
  it('has the published packages, method paths and streaming kinds', () => {
    expect(methods(entryv1.Entry)).toEqual(
      [
        'CountEntries unary',
        'ListEntries unary',
        'GetEntry unary',
        'BatchCreateEntry unary',
        'BatchUpdateEntry unary',
        'BatchDeleteEntry unary',
        'GetAuthorizedEntries unary',
        'SyncAuthorizedEntries bidi_streaming',
      ].map((m) => `/spire.api.server.entry.v1.Entry/${m}`),
    );
    expect(methods(bundlev1.Bundle)).toEqual(
      [
        'CountBundles',
        'GetBundle',
        'AppendBundle',
        'PublishJWTAuthority',
        'PublishWITAuthority',
        'ListFederatedBundles',
        'GetFederatedBundle',
        'BatchCreateFederatedBundle',
        'BatchUpdateFederatedBundle',
        'BatchSetFederatedBundle',
        'BatchDeleteFederatedBundle',
      ].map((m) => `/spire.api.server.bundle.v1.Bundle/${m} unary`),
    );
    expect(methods(agentv1.Agent)).toEqual(
      [
        'CountAgents unary',
        'ListAgents unary',
        'GetAgent unary',
        'DeleteAgent unary',
        'BanAgent unary',
        'AttestAgent bidi_streaming',
        'RenewAgent unary',
        'CreateJoinToken unary',
        'PostStatus unary',
      ].map((m) => `/spire.api.server.agent.v1.Agent/${m}`),
    );
    expect(methods(svidv1.SVID)).toEqual(
      [
        'MintX509SVID',
        'MintJWTSVID',
        'MintWITSVID',
        'BatchNewX509SVID',
        'NewJWTSVID',
        'BatchNewWITSVID',
        'NewDownstreamX509CA',
      ].map((m) => `/spire.api.server.svid.v1.SVID/${m} unary`),
    );
    expect(methods(trustdomainv1.TrustDomain)).toHaveLength(6);
    expect(methods(healthv1.Health)).toEqual([
      '/grpc.health.v1.Health/Check unary',
      '/grpc.health.v1.Health/Watch server_streaming',
    ]);
  });

  it('has the published fields of the core types', () => {
    expect(lines(types.EntrySchema)).toEqual([
      'string id = 1',
      'spire.api.types.SPIFFEID spiffe_id = 2',
      'spire.api.types.SPIFFEID parent_id = 3',
      'repeated spire.api.types.Selector selectors = 4',
      'int32 x509_svid_ttl = 5',
      'repeated string federates_with = 6',
      'bool admin = 7',
      'bool downstream = 8',
      'int64 expires_at = 9',
      'repeated string dns_names = 10',
      'int64 revision_number = 11',
      'bool store_svid = 12',
      'int32 jwt_svid_ttl = 13',
      'string hint = 14',
      'int64 created_at = 15',
      'optional spire.api.types.Entry.AdditionalAttributes additional_attributes = 16',
    ]);
    expect(lines(types.AgentSchema)).toEqual([
      'spire.api.types.SPIFFEID id = 1',
      'string attestation_type = 2',
      'string x509svid_serial_number = 3',
      'int64 x509svid_expires_at = 4',
      'repeated spire.api.types.Selector selectors = 5',
      'bool banned = 6',
      'bool can_reattest = 7',
      'string agent_version = 8',
    ]);
    expect(lines(types.BundleSchema)).toEqual([
      'string trust_domain = 1',
      'repeated spire.api.types.X509Certificate x509_authorities = 2',
      'repeated spire.api.types.JWTKey jwt_authorities = 3',
      'int64 refresh_hint = 4',
      'uint64 sequence_number = 5',
      'repeated spire.api.types.WITKey wit_authorities = 6',
    ]);
    expect(lines(types.X509CertificateSchema)).toEqual(['bytes asn1 = 1', 'bool tainted = 2']);
    expect(lines(types.JWTKeySchema)).toEqual([
      'bytes public_key = 1',
      'string key_id = 2',
      'int64 expires_at = 3',
      'bool tainted = 4',
    ]);
    expect(lines(types.SPIFFEIDSchema)).toEqual(['string trust_domain = 1', 'string path = 2']);
    expect(lines(types.SelectorSchema)).toEqual(['string type = 1', 'string value = 2']);
    expect(lines(types.X509SVIDSchema)).toEqual([
      'repeated bytes cert_chain = 1',
      'spire.api.types.SPIFFEID id = 2',
      'int64 expires_at = 3',
      'string hint = 4',
    ]);
    expect(lines(types.JWTSVIDSchema)).toEqual([
      'string token = 1',
      'spire.api.types.SPIFFEID id = 2',
      'int64 expires_at = 3',
      'int64 issued_at = 4',
      'string hint = 5',
    ]);
    expect(lines(types.StatusSchema)).toEqual(['int32 code = 1', 'string message = 2']);
    expect(lines(types.AttestationDataSchema)).toEqual(['string type = 1', 'bytes payload = 2']);
  });

  it('has the published node attestation stream messages', () => {
    expect(lines(agentv1.AttestAgentRequestSchema)).toEqual([
      'spire.api.server.agent.v1.AttestAgentRequest.Params params = 1',
      'bytes challenge_response = 2',
    ]);
    expect(agentv1.AttestAgentRequestSchema.oneofs.map((o) => o.name)).toEqual(['step']);
    expect(lines(agentv1.AttestAgentRequest_ParamsSchema)).toEqual([
      'spire.api.types.AttestationData data = 1',
      'spire.api.server.agent.v1.AgentX509SVIDParams params = 2',
    ]);
    expect(lines(agentv1.AttestAgentResponseSchema)).toEqual([
      'spire.api.server.agent.v1.AttestAgentResponse.Result result = 1',
      'bytes challenge = 2',
    ]);
    expect(lines(agentv1.AttestAgentResponse_ResultSchema)).toEqual([
      'spire.api.types.X509SVID svid = 1',
      'bool reattestable = 2',
    ]);
    expect(lines(entryv1.ListEntriesRequestSchema)).toEqual([
      'spire.api.server.entry.v1.ListEntriesRequest.Filter filter = 1',
      'spire.api.types.EntryMask output_mask = 2',
      'int32 page_size = 3',
      'string page_token = 4',
    ]);
    expect(lines(entryv1.ListEntriesRequest_FilterSchema)).toEqual([
      'spire.api.types.SPIFFEID by_spiffe_id = 1',
      'spire.api.types.SPIFFEID by_parent_id = 2',
      'spire.api.types.SelectorMatch by_selectors = 3',
      'spire.api.types.FederatesWithMatch by_federates_with = 4',
      'google.protobuf.StringValue by_hint = 5',
      'google.protobuf.BoolValue by_downstream = 6',
    ]);
    expect(lines(svidv1.NewX509SVIDParamsSchema)).toEqual(['string entry_id = 1', 'bytes csr = 2']);
  });
});
