import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_UNIX_SOCKET_PATH_BYTES, parseUnixEndpoint } from '../../../src/common/grpc.js';

describe('parseUnixEndpoint', () => {
  it('accepts absolute paths and the unix: URI forms of SPIFFE_ENDPOINT_SOCKET', () => {
    expect(parseUnixEndpoint('/tmp/spire-agent/public/api.sock')).toBe(
      '/tmp/spire-agent/public/api.sock',
    );
    expect(parseUnixEndpoint('unix:///tmp/spire-agent/public/api.sock')).toBe(
      '/tmp/spire-agent/public/api.sock',
    );
    expect(parseUnixEndpoint('unix:/run/a%20b.sock')).toBe('/run/a b.sock');
  });

  it.each([
    ['relative path', 'api.sock'],
    ['empty', ''],
    ['host in URI', 'unix://host/tmp/x.sock'],
    ['query', 'unix:///tmp/x.sock?a=b'],
    ['fragment', 'unix:///tmp/x.sock#f'],
    ['relative URI path', 'unix:x.sock'],
    ['too long for sun_path', `/${'a'.repeat(MAX_UNIX_SOCKET_PATH_BYTES)}`],
  ])('refuses %s', (_what, endpoint) => {
    expect(() => parseUnixEndpoint(endpoint)).toThrow(
      expect.objectContaining({ code: 'ERR_GRPC_SOCKET_PATH_INVALID' }),
    );
  });

  it('either returns an absolute path that fits sun_path or throws the coded error', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `unix:${s}`),
          fc.string().map((s) => `unix:///${s}`),
        ),
        (s) => {
          try {
            const p = parseUnixEndpoint(s);
            expect(p.startsWith('/')).toBe(true);
            expect(Buffer.byteLength(p)).toBeLessThanOrEqual(MAX_UNIX_SOCKET_PATH_BYTES);
          } catch (err) {
            expect(err).toMatchObject({ code: 'ERR_GRPC_SOCKET_PATH_INVALID' });
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
