/**
 * `spire-agent api fetch jwt` and `api validate jwt` against a real Workload API server:
 * SPIRE's `token(…)` / `hint(…)` / `bundle(…)` layout, `-spiffeID`, comma-separated
 * audiences, `-output json` (and the deprecated `-format`), `SVID is valid.` with the
 * claims as protojson prints a Struct, and the failures with SPIRE's texts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseJwtBundle } from '../../../../src/spiffe/jwt-bundle.js';
import { mintJwtSvid, validateJwtSvid } from '../../../../src/spiffe/jwt-svid.js';
import {
  type Domain,
  makeDomain,
  mintEntry,
  runCli,
  selector,
  startTestWorkloadApi,
  type TestWorkloadApi,
} from './support.js';

let own: Domain;
let partner: Domain;
let api: TestWorkloadApi;

beforeAll(async () => {
  own = await makeDomain('example.org');
  partner = await makeDomain('partner.example');
  api = await startTestWorkloadApi(own, [partner]);
  api.source.upsert(
    await mintEntry(own, 'web', ['test:caller'], {
      hint: 'internal',
      federatesWith: ['partner.example'],
    }),
  );
  api.source.upsert(await mintEntry(own, 'worker', ['test:caller']));
});

afterAll(async () => {
  await api?.close();
});

beforeEach(() => {
  api.selectors = [selector('test:caller')];
});

const sock = () => ['-socketPath', api.socketPath];
const TOKEN = /^[\w-]+\.[\w-]+\.[\w-]+$/;

async function tokenFor(spiffeId: string, audience: string): Promise<string> {
  const r = await runCli([
    'api',
    'fetch',
    'jwt',
    '-audience',
    audience,
    '-spiffeID',
    spiffeId,
    '-output',
    'json',
    ...sock(),
  ]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.out) as [{ svids: [{ svid: string }] }])[0].svids[0].svid;
}

describe('api fetch jwt', () => {
  it("prints every identity's token (with its hint) and every bundle, in SPIRE's layout", async () => {
    const r = await runCli(['api', 'fetch', 'jwt', '-audience', 'spire-test', ...sock()]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines).toHaveLength(11);
    expect(lines[0]).toBe('token(spiffe://example.org/web):');
    expect(lines[1]).toMatch(/^\t/);
    expect(lines[2]).toBe('hint(spiffe://example.org/web):');
    expect(lines[3]).toBe('\tinternal');
    expect(lines[4]).toBe('token(spiffe://example.org/worker):');
    expect(lines[6]).toBe('bundle(spiffe://example.org):');
    expect(lines[8]).toBe('bundle(spiffe://partner.example):');
    expect(lines[10]).toBe('');
    // the tokens are real JWT-SVIDs for the audience, signed by the trust domain's key
    for (const [i, id] of [
      [1, 'spiffe://example.org/web'],
      [5, 'spiffe://example.org/worker'],
    ] as const) {
      const token = lines[i]!.slice(1);
      expect(token).toMatch(TOKEN);
      const svid = await validateJwtSvid(token, own.bundles.jwt, ['spire-test']);
      expect(svid.id.toString()).toBe(id);
    }
    // the bundles are the served JWKS documents
    expect(lines[7]).toBe(`\t${own.bundles.jwt.marshal()}`);
    expect(parseJwtBundle('partner.example', lines[9]!.slice(1)).equals(partner.bundles.jwt)).toBe(
      true,
    );
  });

  it('-spiffeID picks one identity; -audience takes a comma-separated list', async () => {
    const r = await runCli([
      'api',
      'fetch',
      'jwt',
      '-audience',
      'a,b',
      '-spiffeID',
      'spiffe://example.org/worker',
      ...sock(),
    ]);
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('token(spiffe://example.org/worker):');
    expect(lines[2]).toBe('bundle(spiffe://example.org):');
    const svid = await validateJwtSvid(lines[1]!.slice(1), own.bundles.jwt, ['b']);
    expect(svid.audience).toEqual(['a', 'b']);
  });

  it('-output json (and the deprecated -format) prints [JWTSVIDResponse,JWTBundlesResponse]', async () => {
    for (const flag of ['-output', '-format']) {
      const r = await runCli([
        'api',
        'fetch',
        'jwt',
        '-audience',
        'x',
        '-spiffeID',
        'spiffe://example.org/web',
        flag,
        'json',
        ...sock(),
      ]);
      expect(r.code).toBe(0);
      expect(r.out.trimEnd()).not.toContain('\n');
      const [svids, bundles] = JSON.parse(r.out) as [
        { svids: Array<Record<string, string>> },
        { bundles: Record<string, string> },
      ];
      expect(svids.svids).toHaveLength(1);
      expect(Object.keys(svids.svids[0]!)).toEqual(['hint', 'spiffe_id', 'svid']);
      expect(svids.svids[0]).toMatchObject({
        hint: 'internal',
        spiffe_id: 'spiffe://example.org/web',
      });
      expect(svids.svids[0]!['svid']).toMatch(TOKEN);
      expect(Object.keys(bundles.bundles)).toEqual([
        'spiffe://example.org',
        'spiffe://partner.example',
      ]);
      expect(Buffer.from(bundles.bundles['spiffe://example.org']!, 'base64').toString()).toBe(
        own.bundles.jwt.marshal(),
      );
    }
  });

  it('fails without -audience, and with PermissionDenied for a caller with no identity', async () => {
    expect(await runCli(['api', 'fetch', 'jwt', ...sock()])).toEqual({
      code: 1,
      out: '',
      err: 'audience must be specified\n',
    });
    api.selectors = [];
    expect(await runCli(['api', 'fetch', 'jwt', '-audience', 'a', ...sock()])).toEqual({
      code: 1,
      out: '',
      err: 'rpc error: code = PermissionDenied desc = no identity issued\n',
    });
  });

  it('an unknown -spiffeID is refused by the agent', async () => {
    const r = await runCli([
      'api',
      'fetch',
      'jwt',
      '-audience',
      'a',
      '-spiffeID',
      'spiffe://example.org/nobody',
      ...sock(),
    ]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^rpc error: code = PermissionDenied desc = .+\n$/);
  });

  it('-format and -output share one value: two different formats are refused', async () => {
    const r = await runCli(['api', 'fetch', 'jwt', '-output', 'json', '-format', 'pretty']);
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toBe(
      'invalid value "pretty" for flag -format: the output format has already been set to "json"',
    );
  });

  it("has SPIRE's usage (with -format)", async () => {
    const r = await runCli(['api', 'fetch', 'jwt', '-h']);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      'Usage of fetch jwt:\n' +
        '  -audience value\n' +
        '    \tcomma separated list of audience values\n' +
        '  -format value\n' +
        '    \tdeprecated; use -output\n' +
        '  -instance string\n' +
        '    \tInstance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).\n' +
        '  -output value\n' +
        '    \tDesired output format (pretty, json); default: pretty.\n' +
        '  -socketPath string\n' +
        '    \tPath to the SPIRE Agent API Unix domain socket (default "/tmp/spire-agent/public/api.sock")\n' +
        '  -spiffeID string\n' +
        '    \tSPIFFE ID subject (optional)\n' +
        '  -timeout value\n' +
        '    \tTime to wait for a response (default 5s)\n' +
        '\n',
    );
  });
});

describe('api validate jwt', () => {
  it('prints SVID is valid., the SPIFFE ID and the claims (sorted, compact)', async () => {
    const token = await tokenFor('spiffe://example.org/web', 'spire-test');
    const claims = (await validateJwtSvid(token, own.bundles.jwt, ['spire-test'])).claims;
    const r = await runCli([
      'api',
      'validate',
      'jwt',
      '-audience',
      'spire-test',
      '-svid',
      token,
      ...sock(),
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      'SVID is valid.\n' +
        'SPIFFE ID : spiffe://example.org/web\n' +
        `Claims    : {"aud":["spire-test"],"exp":${String(claims['exp'])},"iat":${String(claims['iat'])},"sub":"spiffe://example.org/web"}\n`,
    );
  });

  it('-output json prints the response message', async () => {
    const token = await tokenFor('spiffe://example.org/worker', 'aud1');
    const r = await runCli([
      'api',
      'validate',
      'jwt',
      '-audience',
      'aud1',
      '-svid',
      token,
      '-output',
      'json',
      ...sock(),
    ]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out) as { claims: Record<string, unknown>; spiffe_id: string };
    expect(Object.keys(json)).toEqual(['claims', 'spiffe_id']);
    expect(json.spiffe_id).toBe('spiffe://example.org/worker');
    expect(json.claims['aud']).toEqual(['aud1']);
    expect(json.claims['sub']).toBe('spiffe://example.org/worker');
  });

  it('a refused token: "SVID is not valid: <reason>" (wrong audience, garbage, foreign signer)', async () => {
    const token = await tokenFor('spiffe://example.org/web', 'a');
    const wrongAud = await runCli([
      'api',
      'validate',
      'jwt',
      '-audience',
      'b',
      '-svid',
      token,
      ...sock(),
    ]);
    expect(wrongAud.code).toBe(1);
    expect(wrongAud.out).toBe('');
    expect(wrongAud.err).toMatch(/^SVID is not valid: .*aud.*\n$/);

    const garbage = await runCli([
      'api',
      'validate',
      'jwt',
      '-audience',
      'a',
      '-svid',
      'not.a.jwt',
      ...sock(),
    ]);
    expect(garbage.code).toBe(1);
    expect(garbage.err).toMatch(/^SVID is not valid: .+\n$/);

    const forged = await mintJwtSvid({
      signer: partner.jwtSigner,
      keyId: `${own.name}-jwt`,
      spiffeId: 'spiffe://example.org/web',
      audience: ['a'],
      expiresAt: new Date(Date.now() + 60_000),
    });
    const bad = await runCli([
      'api',
      'validate',
      'jwt',
      '-audience',
      'a',
      '-svid',
      forged,
      ...sock(),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^SVID is not valid: .+\n$/);
  });

  it('requires -audience and -svid; other failures are "unable to validate JWT SVID: …"', async () => {
    expect(await runCli(['api', 'validate', 'jwt', '-svid', 'x', ...sock()])).toEqual({
      code: 1,
      out: '',
      err: 'audience must be specified\n',
    });
    expect(await runCli(['api', 'validate', 'jwt', '-audience', 'a', ...sock()])).toEqual({
      code: 1,
      out: '',
      err: 'svid must be specified\n',
    });
    const token = await tokenFor('spiffe://example.org/web', 'a');
    api.source.setReady(false);
    try {
      expect(
        await runCli(['api', 'validate', 'jwt', '-audience', 'a', '-svid', token, ...sock()]),
      ).toEqual({
        code: 1,
        out: '',
        err: 'unable to validate JWT SVID: rpc error: code = Unavailable desc = workload api is not ready\n',
      });
    } finally {
      api.source.setReady(true);
    }
  });
});
