/**
 * `spire-agent api watch` against a real Workload API server: the first update at once, one
 * more per change, in SPIRE's watcher layout (federated bundles by trust domain name, no
 * Hint line); stream failures printed and retried until the caller gets an identity; stopped
 * by its signal with exit 0; SPIRE's flags and help.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { watchCommand } from '../../../../src/agent/cli/api/watch.js';
import { StringWriter } from '../../../../src/common/cli/io.js';
import {
  type Domain,
  goUtc,
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
});

afterAll(async () => {
  await api?.close();
});

beforeEach(() => {
  for (const e of api.source.entries()) api.source.remove(e.entryId);
  api.selectors = [selector('test:caller')];
});

/** Waits until `w` holds `n` occurrences of `needle`. */
async function until(w: StringWriter, needle: string, n = 1, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (w.text.split(needle).length - 1 < n) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${needle}:\n${w.text}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Starts a watch with captured output; `stop()` ends it and resolves to the exit code. */
function startWatch(args: string[], env: Record<string, string> = {}) {
  const ac = new AbortController();
  const out = new StringWriter();
  const err = new StringWriter();
  const done = watchCommand({ signal: ac.signal, backoff: { initialMs: 20, maxMs: 50 } }).run(
    args,
    { stdout: out, stderr: err, stdin: (async function* () {})(), env },
  );
  return {
    out,
    err,
    stop: () => {
      ac.abort();
      return done;
    },
  };
}

const RECEIVED = /Received (\d+) svids? after \d+(\.\d+)?(ns|µs|ms|s)\n/g;

describe('api watch', () => {
  it('prints the current SVIDs at once, then again on every change; stops on its signal with exit 0', async () => {
    const web = await mintEntry(own, 'web', ['test:caller'], {
      hint: 'internal',
      federatesWith: ['partner.example'],
    });
    api.source.upsert(web);
    const w = startWatch(['-socketPath', api.socketPath]);
    await until(w.out, 'Received 1 svid after');
    const db = await mintEntry(own, 'db', ['test:caller']);
    api.source.upsert(db);
    await until(w.out, 'Received 2 svids after');
    expect(await w.stop()).toBe(0);
    expect(w.err.text).toBe('');
    const stdout = w.out;
    expect([...stdout.text.matchAll(RECEIVED)].map((m) => m[1])).toEqual(['1', '2']);
    const block = (id: string, e: { notBefore: Date; notAfter: Date }) =>
      `SPIFFE ID:\t\t${id}\n` +
      `SVID Valid After:\t${goUtc(e.notBefore)}\nSVID Valid Until:\t${goUtc(e.notAfter)}\n` +
      `CA #1 Valid After:\t${goUtc(own.caNotBefore)}\nCA #1 Valid Until:\t${goUtc(own.caNotAfter)}\n` +
      `[partner.example] CA #1 Valid After:\t${goUtc(partner.caNotBefore)}\n` +
      `[partner.example] CA #1 Valid Until:\t${goUtc(partner.caNotAfter)}\n`;
    const parts = stdout.text.split(RECEIVED).filter((_, i) => i % 4 === 0);
    expect(parts).toEqual([
      '',
      `\n${block('spiffe://example.org/web', web)}\n`,
      `\n${block('spiffe://example.org/db', db)}\n${block('spiffe://example.org/web', web)}\n`,
    ]);
    // the server ends the stream and unsubscribes once the client went away
    const deadline = Date.now() + 5000;
    while (api.source.listenerCount !== 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(api.source.listenerCount).toBe(0);
  });

  it('prints each failure (no identity) and keeps retrying until the caller has one', async () => {
    api.selectors = [];
    api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
    const w = startWatch(['-socketPath', api.socketPath]);
    const { out, err } = w;
    await until(err, 'rpc error: code = PermissionDenied desc = no identity issued\n', 2);
    expect(out.text).toBe('');
    api.selectors = [selector('test:caller')];
    await until(out, 'SPIFFE ID:\t\tspiffe://example.org/web\n');
    expect(await w.stop()).toBe(0);
    expect(err.text).toMatch(/^(rpc error: code = PermissionDenied desc = no identity issued\n)+$/);
  });

  it('uses SPIFFE_ENDPOINT_SOCKET when no -socketPath is given', async () => {
    api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
    const w = startWatch([], { SPIFFE_ENDPOINT_SOCKET: `unix://${api.socketPath}` });
    const { out } = w;
    await until(out, 'SPIFFE ID:\t\tspiffe://example.org/web\n');
    expect(await w.stop()).toBe(0);
    expect(w.err.text).toBe('');
  });

  it("has SPIRE's flags (no -timeout) and help", async () => {
    const usage =
      'Usage of watch:\n' +
      '  -instance string\n' +
      '    \tInstance name to substitute into socket templates (env SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE).\n' +
      '  -socketPath string\n' +
      '    \tPath to the SPIRE Agent API Unix domain socket (default "/tmp/spire-agent/public/api.sock")\n';
    expect(await runCli(['api', 'watch', '-h'])).toEqual({
      code: 0,
      out: '',
      err: `${usage}flag: help requested\n`,
    });
    expect(await runCli(['api', 'watch', '-timeout', '1s'])).toEqual({
      code: 1,
      out: '',
      err: `flag provided but not defined: -timeout\n${usage}flag provided but not defined: -timeout\n`,
    });
  });
});
