/**
 * Which socket the client commands use: SPIRE's precedence (`-socketPath` unless it is the
 * default, `-instance` with `SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE`, `SPIRE_AGENT_PUBLIC_SOCKET`),
 * then spire-edge's `SPIFFE_ENDPOINT_SOCKET`, then the default; SPIRE's error texts; and one
 * real call through each environment variable. Also the `-timeout` parser's Go error texts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goDurationError } from '../../../../src/agent/cli/api/timeout-flag.js';
import { resolveAgentSocket } from '../../../../src/agent/cli/socket.js';
import { SpireEdgeError } from '../../../../src/common/errors.js';
import {
  type Domain,
  makeDomain,
  mintEntry,
  runCli,
  startTestWorkloadApi,
  type TestWorkloadApi,
} from './support.js';

const DEFAULT = '/tmp/spire-agent/public/api.sock';
const resolve = (socketPath: string, instance: string, env: Record<string, string> = {}) =>
  resolveAgentSocket({ socketPath, instance }, env, '/work/dir');

function errorOf(fn: () => unknown): SpireEdgeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SpireEdgeError) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

describe('resolveAgentSocket', () => {
  const env = {
    SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE: '/run/spire-%i/api.sock',
    SPIRE_AGENT_PUBLIC_SOCKET: '/run/spire/public.sock',
    SPIFFE_ENDPOINT_SOCKET: 'unix:///run/spiffe/endpoint.sock',
  };

  it("follows SPIRE's precedence, then SPIFFE_ENDPOINT_SOCKET, then the default", () => {
    expect(resolve('/explicit.sock', 'a', env)).toBe('/explicit.sock');
    expect(resolve(DEFAULT, 'a', env)).toBe('/run/spire-a/api.sock');
    expect(resolve(DEFAULT, '', env)).toBe('/run/spire/public.sock');
    expect(resolve(DEFAULT, '', { SPIFFE_ENDPOINT_SOCKET: env.SPIFFE_ENDPOINT_SOCKET })).toBe(
      '/run/spiffe/endpoint.sock',
    );
    expect(resolve(DEFAULT, '', { SPIFFE_ENDPOINT_SOCKET: '/plain/path.sock' })).toBe(
      '/plain/path.sock',
    );
    expect(resolve(DEFAULT, '', {})).toBe(DEFAULT);
  });

  it('treats an explicit default -socketPath like no flag, as SPIRE compares with the default', () => {
    expect(resolve(DEFAULT, '', { SPIRE_AGENT_PUBLIC_SOCKET: '/x.sock' })).toBe('/x.sock');
  });

  it('resolves relative paths against the working directory and accepts unix:// URIs', () => {
    expect(resolve('sock/api.sock', '')).toBe('/work/dir/sock/api.sock');
    expect(resolve('unix:///abs/api.sock', '')).toBe('/abs/api.sock');
    expect(resolve(DEFAULT, '', { SPIRE_AGENT_PUBLIC_SOCKET: 'rel.sock' })).toBe(
      '/work/dir/rel.sock',
    );
  });

  it("refuses -instance without a usable template with SPIRE's texts", () => {
    const missing = errorOf(() => resolve(DEFAULT, 'a'));
    expect(missing.code).toBe('ERR_CLI_COMMAND_FAILED');
    expect(missing.message).toBe(
      ' SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE environment variable must be defined when using the instance flag',
    );
    const noI = errorOf(() =>
      resolve(DEFAULT, 'a', { SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE: '/run/api.sock' }),
    );
    expect(noI.message).toBe('failed to find %i in SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE');
  });

  it('refuses a malformed endpoint URI', () => {
    const e = errorOf(() => resolve(DEFAULT, '', { SPIFFE_ENDPOINT_SOCKET: 'unix://host/x' }));
    expect(e.code).toBe('ERR_CLI_COMMAND_FAILED');
    expect(e.message).toContain('unix:///absolute/path');
  });
});

describe('the environment reaches the commands', () => {
  let own: Domain;
  let api: TestWorkloadApi;

  beforeAll(async () => {
    own = await makeDomain('example.org');
    api = await startTestWorkloadApi(own);
    api.source.upsert(await mintEntry(own, 'web', ['test:caller']));
  });
  afterAll(async () => {
    await api?.close();
  });

  it('SPIFFE_ENDPOINT_SOCKET, SPIRE_AGENT_PUBLIC_SOCKET and -instance select the socket', async () => {
    for (const [args, env] of [
      [[], { SPIFFE_ENDPOINT_SOCKET: `unix://${api.socketPath}` }],
      [[], { SPIRE_AGENT_PUBLIC_SOCKET: api.socketPath, SPIFFE_ENDPOINT_SOCKET: 'unix:///nope' }],
      [
        ['-instance', 'api'],
        { SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE: api.socketPath.replace(/api\.sock$/, '%i.sock') },
      ],
    ] as Array<[string[], Record<string, string>]>) {
      const r = await runCli(['api', 'fetch', 'x509', '-silent', ...args], { env });
      expect(r).toEqual({ code: 0, out: '', err: '' });
    }
  });

  it('a bad -instance fails before connecting, printing the bare error (exit 1)', async () => {
    expect(await runCli(['api', 'fetch', 'jwt', '-audience', 'a', '-instance', 'x'])).toEqual({
      code: 1,
      out: '',
      err: ' SPIRE_AGENT_PUBLIC_SOCKET_TEMPLATE environment variable must be defined when using the instance flag\n',
    });
  });
});

describe('goDurationError', () => {
  it("gives time.ParseDuration's texts", () => {
    expect(goDurationError('x')).toBe('time: invalid duration "x"');
    expect(goDurationError('')).toBe('time: invalid duration ""');
    expect(goDurationError('5')).toBe('time: missing unit in duration "5"');
    expect(goDurationError('1d')).toBe('time: unknown unit "d" in duration "1d"');
    expect(goDurationError('1s2')).toBe('time: missing unit in duration "1s2"');
    expect(goDurationError('-.s')).toBe('time: invalid duration "-.s"');
  });
});
