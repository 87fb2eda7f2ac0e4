import { describe, expect, it } from 'vitest';
import { createLogger, parseLogLevel } from '../../../src/common/log.js';

function capture(format: 'text' | 'json', level: 'debug' | 'info' | 'warn' | 'error' = 'info') {
  const lines: string[] = [];
  const log = createLogger({ format, level, write: (l) => lines.push(l), now: () => new Date(0) });
  return { log, lines };
}

describe('logger', () => {
  it('filters by level and writes text lines with fields', () => {
    const { log, lines } = capture('text', 'warn');
    log.info('hidden');
    log.warn('agent attested', { agent_id: 'spiffe://td/spire/agent/x', count: 2 });
    expect(lines).toEqual([
      'time=1970-01-01T00:00:00.000Z level=warn msg="agent attested" agent_id=spiffe://td/spire/agent/x count=2\n',
    ]);
  });

  it('writes JSON lines and carries base fields', () => {
    const { log, lines } = capture('json', 'debug');
    log.with({ subsystem_name: 'ca' }).debug('prepared', { slot: 'A' });
    expect(JSON.parse(lines[0]!)).toEqual({
      time: '1970-01-01T00:00:00.000Z',
      level: 'debug',
      msg: 'prepared',
      subsystem_name: 'ca',
      slot: 'A',
    });
  });

  it('redacts secret-looking fields but keeps ids, paths and hashes', () => {
    const { log, lines } = capture('json');
    log.info('x', {
      join_token: 'abc',
      token: 'abc',
      private_key: 'pem',
      pin: '1234',
      key_id: 'x509-CA-A',
      keys_path: '/d/keys.json',
      token_hash: 'ff',
    });
    const o = JSON.parse(lines[0]!);
    expect(o.join_token).toBe('[redacted]');
    expect(o.token).toBe('[redacted]');
    expect(o.private_key).toBe('[redacted]');
    expect(o.pin).toBe('[redacted]');
    expect(o.key_id).toBe('x509-CA-A');
    expect(o.keys_path).toBe('/d/keys.json');
    expect(o.token_hash).toBe('ff');
    expect(lines[0]).not.toContain('1234');
  });

  it('parses SPIRE log levels case-insensitively', () => {
    expect(parseLogLevel('DEBUG')).toBe('debug');
    expect(parseLogLevel('Warning')).toBe('warn');
    expect(parseLogLevel('trace')).toBeUndefined();
  });
});
