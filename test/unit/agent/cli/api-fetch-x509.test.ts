/**
 * `spire-agent api fetch x509` (and its alias `api fetch`) against a real Workload API server
 * on a Unix socket: SPIRE's pretty layout to the byte, JSON output, `-write` files with their
 * names, contents and modes, `-silent`, SVID verification, and the error paths (no identity,
 * no socket, not ready, deadline, bad flags, unwritable directory) with SPIRE's texts.
 */
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodePem } from '../../../../src/common/pem.js';
import {
  type Domain,
  goUtc,
  makeDomain,
  mintEntry,
  runCli,
  selector,
  startTestWorkloadApi,
  type TestWorkloadApi,
  tempDir,
} from './support.js';

let own: Domain;
let partner: Domain;
let other: Domain;
let api: TestWorkloadApi;
let out: { dir: string; cleanup(): void };
let savedUmask: number;

const RECEIVED = /^Received (\d+) svids? after \d+(\.\d+)?(ns|µs|ms|s)\n/;

beforeAll(async () => {
  own = await makeDomain('example.org', { intermediate: true });
  partner = await makeDomain('partner.example');
  other = await makeDomain('another.example');
  api = await startTestWorkloadApi(own, [partner, other]);
  savedUmask = process.umask(0o022);
});

afterAll(async () => {
  process.umask(savedUmask);
  await api?.close();
});

beforeEach(() => {
  for (const e of api.source.entries()) api.source.remove(e.entryId);
  api.selectors = [selector('test:caller')];
  api.source.setReady(true);
  out = tempDir('agent-cli-write-');
});

afterEach(() => out.cleanup());

const sock = () => ['-socketPath', api.socketPath];

function svidBlock(
  id: string,
  e: { notBefore: Date; notAfter: Date },
  { hint = '', federated = [] as Array<[string, Domain]> } = {},
): string {
  let s = `SPIFFE ID:\t\t${id}\n`;
  if (hint !== '') s += `Hint:\t\t\t${hint}\n`;
  s += `SVID Valid After:\t${goUtc(e.notBefore)}\nSVID Valid Until:\t${goUtc(e.notAfter)}\n`;
  const i = own.intermediate!;
  s += `Intermediate #1 Valid After:\t${goUtc(i.notBefore)}\nIntermediate #1 Valid Until:\t${goUtc(i.notAfter)}\n`;
  s += `CA #1 Valid After:\t${goUtc(own.caNotBefore)}\nCA #1 Valid Until:\t${goUtc(own.caNotAfter)}\n`;
  for (const [label, d] of federated) {
    s += `[${label}] CA #1 Valid After:\t${goUtc(d.caNotBefore)}\n`;
    s += `[${label}] CA #1 Valid Until:\t${goUtc(d.caNotAfter)}\n`;
  }
  return s;
}

describe('pretty output', () => {
  it("prints SPIRE's layout: count, SPIFFE ID, hint, validity of leaf, intermediate, CA and federated CAs", async () => {
    const web = await mintEntry(own, 'web', ['test:caller'], {
      hint: 'internal',
      federatesWith: ['partner.example', 'another.example'],
    });
    api.source.upsert(web);
    const r = await runCli(['api', 'fetch', 'x509', ...sock()]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(RECEIVED);
    expect(r.out.replace(RECEIVED, '')).toBe(
      `\n${svidBlock('spiffe://example.org/web', web, {
        hint: 'internal',
        federated: [
          ['spiffe://another.example', other],
          ['spiffe://partner.example', partner],
        ],
      })}\n`,
    );
  });

  it('prints every SVID (plural count), no Hint line without a hint; `api fetch` is the same command', async () => {
    const a = await mintEntry(own, 'a', ['test:caller']);
    const b = await mintEntry(own, 'b', ['test:caller', 'test:extra']);
    api.source.upsert(a);
    api.source.upsert(b);
    api.selectors = [selector('test:caller'), selector('test:extra')];
    const r = await runCli(['api', 'fetch', ...sock()]);
    expect(r.code).toBe(0);
    expect(RECEIVED.exec(r.out)?.[1]).toBe('2');
    expect(r.out.replace(RECEIVED, '')).toBe(
      `\n${svidBlock('spiffe://example.org/a', a)}\n${svidBlock('spiffe://example.org/b', b)}\n`,
    );
  });

  it('-silent prints nothing (and is still successful)', async () => {
    api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
    const r = await runCli(['api', 'fetch', 'x509', '-silent', ...sock()]);
    expect(r).toEqual({ code: 0, out: '', err: '' });
  });

  it('refuses an SVID that does not chain to its bundle, naming it as SPIRE does', async () => {
    // Same trust domain name, another CA: the chain does not reach the served bundle.
    const impostor = await makeDomain('example.org');
    api.source.upsert(await mintEntry(impostor, 'forged', ['test:caller']));
    const r = await runCli(['api', 'fetch', 'x509', ...sock()]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(
      /^"spiffe:\/\/example\.org\/forged" SVID failed verification against bundle: .+\n$/,
    );
  });
});

describe('-output json', () => {
  it('prints the response as SPIRE does: proto names, base64 bytes, one line', async () => {
    const web = await mintEntry(own, 'web', ['test:caller'], {
      hint: 'h',
      federatesWith: ['partner.example'],
    });
    api.source.upsert(web);
    const r = await runCli(['api', 'fetch', 'x509', '-output', 'json', ...sock()]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.endsWith('}\n')).toBe(true);
    expect(r.out.trimEnd()).not.toContain('\n');
    const json = JSON.parse(r.out) as {
      crl: unknown[];
      federated_bundles: Record<string, string>;
      svids: Array<Record<string, string>>;
    };
    expect(Object.keys(json)).toEqual(['crl', 'federated_bundles', 'svids']);
    expect(json.crl).toEqual([]);
    expect(Object.keys(json.federated_bundles)).toEqual(['spiffe://partner.example']);
    expect(Buffer.from(json.federated_bundles['spiffe://partner.example']!, 'base64')).toEqual(
      Buffer.from(partner.caDer),
    );
    const s = json.svids[0]!;
    expect(Object.keys(s)).toEqual(['bundle', 'hint', 'spiffe_id', 'x509_svid', 'x509_svid_key']);
    expect(s['spiffe_id']).toBe('spiffe://example.org/web');
    expect(s['hint']).toBe('h');
    expect(Buffer.from(s['x509_svid']!, 'base64')).toEqual(Buffer.concat(web.certChain));
    expect(Buffer.from(s['x509_svid_key']!, 'base64')).toEqual(Buffer.from(web.privateKeyPkcs8));
    expect(Buffer.from(s['bundle']!, 'base64')).toEqual(Buffer.from(own.caDer));
  });

  it('ignores -write and -silent, as SPIRE does (only pretty output writes files)', async () => {
    api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
    const r = await runCli([
      'api',
      'fetch',
      '-output',
      'json',
      '-silent',
      '-write',
      out.dir,
      ...sock(),
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).svids).toHaveLength(1);
    expect(existsSync(join(out.dir, 'svid.0.pem'))).toBe(false);
  });
});

describe('-write DIR', () => {
  it("writes SPIRE's files with SPIRE's messages: chain, key (0600), bundle, federated bundles sorted by trust domain", async () => {
    const web = await mintEntry(own, 'web', ['test:caller'], {
      federatesWith: ['partner.example', 'another.example'],
    });
    api.source.upsert(web);
    const r = await runCli(['api', 'fetch', 'x509', '-silent', '-write', out.dir, ...sock()]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const d = out.dir;
    expect(r.out).toBe(
      `Writing SVID #0 to file ${d}/svid.0.pem.\n` +
        `Writing key #0 to file ${d}/svid.0.key.\n` +
        `Writing bundle #0 to file ${d}/bundle.0.pem.\n` +
        `Writing federated bundle #0 for trust domain spiffe://another.example to file ${d}/federated_bundle.0.0.pem.\n` +
        `Writing federated bundle #1 for trust domain spiffe://partner.example to file ${d}/federated_bundle.0.1.pem.\n`,
    );
    const read = (f: string) => readFileSync(join(d, f), 'utf8');
    const mode = (f: string) => statSync(join(d, f)).mode & 0o777;
    expect(read('svid.0.pem')).toBe(web.certChain.map((c) => encodePem('CERTIFICATE', c)).join(''));
    expect(read('bundle.0.pem')).toBe(encodePem('CERTIFICATE', own.caDer));
    expect(read('federated_bundle.0.0.pem')).toBe(encodePem('CERTIFICATE', other.caDer));
    expect(read('federated_bundle.0.1.pem')).toBe(encodePem('CERTIFICATE', partner.caDer));
    expect(read('svid.0.key')).toMatch(
      /^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/,
    );
    // the key belongs to the certificate
    const leaf = new X509Certificate(read('svid.0.pem'));
    const pub = createPublicKey(createPrivateKey(read('svid.0.key')));
    expect(pub.export({ format: 'der', type: 'spki' })).toEqual(
      leaf.publicKey.export({ format: 'der', type: 'spki' }),
    );
    expect(mode('svid.0.key')).toBe(0o600);
    for (const f of ['svid.0.pem', 'bundle.0.pem', 'federated_bundle.0.0.pem']) {
      expect(mode(f)).toBe(0o644);
    }
  });

  it('prints the SVIDs and then the Writing lines without -silent; relative DIR is relative to the working directory', async () => {
    api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
    mkdirSync(join(out.dir, 'certs'));
    const r = await runCli(['api', 'fetch', 'x509', '-write', 'certs', ...sock()], {
      cwd: out.dir,
    });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(RECEIVED);
    expect(r.out).toMatch(
      /\n\nWriting SVID #0 to file certs\/svid\.0\.pem\.\nWriting key #0 to file certs\/svid\.0\.key\.\nWriting bundle #0 to file certs\/bundle\.0\.pem\.\n$/,
    );
    expect(existsSync(join(out.dir, 'certs', 'svid.0.key'))).toBe(true);
  });

  it('replaces existing files and narrows an existing key file to 0600', async () => {
    api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
    writeFileSync(join(out.dir, 'svid.0.key'), 'old key, longer than nothing\n'.repeat(200));
    chmodSync(join(out.dir, 'svid.0.key'), 0o644);
    writeFileSync(join(out.dir, 'svid.0.pem'), 'x'.repeat(10_000));
    const r = await runCli(['api', 'fetch', '-silent', '-write', out.dir, ...sock()]);
    expect(r.code).toBe(0);
    expect(statSync(join(out.dir, 'svid.0.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(out.dir, 'svid.0.key'), 'utf8')).toMatch(
      /^-----BEGIN PRIVATE KEY-----/,
    );
    expect(readFileSync(join(out.dir, 'svid.0.pem'), 'utf8')).toMatch(
      /^-----BEGIN CERTIFICATE-----[\s\S]*-----END CERTIFICATE-----\n$/,
    );
  });

  it("fails with Go's path error when the directory does not exist (exit 1)", async () => {
    api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
    const missing = join(out.dir, 'missing');
    const r = await runCli(['api', 'fetch', '-silent', '-write', missing, ...sock()]);
    expect(r.code).toBe(1);
    expect(r.out).toBe(`Writing SVID #0 to file ${missing}/svid.0.pem.\n`);
    expect(r.err).toBe(`open ${missing}/svid.0.pem: no such file or directory\n`);
  });
});

describe('errors', () => {
  it('no identity: PermissionDenied as grpc-go prints it, exit 1', async () => {
    api.selectors = [selector('test:stranger')];
    api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
    const r = await runCli(['api', 'fetch', 'x509', ...sock()]);
    expect(r).toEqual({
      code: 1,
      out: '',
      err: 'rpc error: code = PermissionDenied desc = no identity issued\n',
    });
  });

  it('agent not ready: Unavailable', async () => {
    api.source.setReady(false);
    const r = await runCli(['api', 'fetch', 'x509', ...sock()]);
    expect(r.code).toBe(1);
    expect(r.err).toBe('rpc error: code = Unavailable desc = workload api is not ready\n');
  });

  it('no socket: the dial error grpc-go gives', async () => {
    const path = join(out.dir, 'nothing.sock');
    const r = await runCli(['api', 'fetch', 'x509', '-socketPath', path]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix ${path}: connect: no such file or directory"\n`,
    );
  });

  it('-timeout bounds the call: DeadlineExceeded "context deadline exceeded"', async () => {
    const silent = join(out.dir, 'silent.sock');
    const sockets = new Set<net.Socket>();
    const srv = net.createServer((s) => sockets.add(s));
    await new Promise<void>((r) => srv.listen(silent, r));
    try {
      const t0 = Date.now();
      const r = await runCli(['api', 'fetch', 'x509', '-timeout', '300ms', '-socketPath', silent]);
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(r).toEqual({
        code: 1,
        out: '',
        err: 'rpc error: code = DeadlineExceeded desc = context deadline exceeded\n',
      });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => srv.close(r));
    }
  });

  it("bad flags: Go's message and usage, then the message again (exit 1)", async () => {
    const r = await runCli(['api', 'fetch', 'x509', '-bogus']);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toBe(
      'flag provided but not defined: -bogus\n' +
        'Usage of fetch x509:\n' +
        '  -instance string\n' +
        '    \tInstance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).\n' +
        '  -output value\n' +
        '    \tDesired output format (pretty, json); default: pretty.\n' +
        '  -silent\n' +
        '    \tSuppress stdout\n' +
        '  -socketPath string\n' +
        '    \tPath to the SPIRE Agent API Unix domain socket (default "/tmp/spire-agent/public/api.sock")\n' +
        '  -timeout value\n' +
        '    \tTime to wait for a response (default 5s)\n' +
        '  -write string\n' +
        '    \tWrite SVID data to the specified path (optional; only available for pretty output format)\n' +
        'flag provided but not defined: -bogus\n',
    );
    const t = await runCli(['api', 'fetch', 'x509', '-timeout', '5']);
    expect(t.err.split('\n')[0]).toBe(
      'invalid value "5" for flag -timeout: time: missing unit in duration "5"',
    );
    const o = await runCli(['api', 'fetch', 'x509', '-output', 'yaml']);
    expect(o.err.split('\n')[0]).toBe(
      'invalid value "yaml" for flag -output: bad formatter flag: unknown format option: "yaml"',
    );
  });
});
