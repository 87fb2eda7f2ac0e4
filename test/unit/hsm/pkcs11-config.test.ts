/**
 * pkcs11 settings: merging the URI with separate keys, exactly one PIN source, plugin_data
 * key checks, and the signing-mode selector.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  pkcs11KeyManagerSettingsFromPluginData,
  pkcs11UpstreamAuthoritySettingsFromPluginData,
  resolvePkcs11Token,
} from '../../../src/hsm/pkcs11/config.js';
import { SigningModeSelector } from '../../../src/hsm/pkcs11/signing-mode.js';

let dir: string;
const MODULE = '/usr/lib/softhsm/libsofthsm2.so';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pkcs11-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e as { code?: string; message: string },
  );
}

describe('resolvePkcs11Token', () => {
  it('takes separate keys', async () => {
    const r = await resolvePkcs11Token({
      modulePath: MODULE,
      tokenLabel: 'ca',
      pin: '1234',
      sessionPoolSize: 8,
    });
    expect(r).toEqual({
      modulePath: MODULE,
      token: { label: 'ca' },
      pin: '1234',
      sessionPoolSize: 8,
    });
  });

  it('takes everything from one URI, including object and id', async () => {
    const r = await resolvePkcs11Token({
      uri: `pkcs11:token=ca;serial=abc;slot-id=5;object=root;id=%01%ff?module-path=${MODULE}&pin-value=12%2634`,
    });
    expect(r.modulePath).toBe(MODULE);
    expect(r.token).toEqual({ label: 'ca', serial: 'abc', slotId: 5 });
    expect(r.pin).toBe('12&34');
    expect(r.objectLabel).toBe('root');
    expect(Buffer.from(r.objectId!).toString('hex')).toBe('01ff');
  });

  it('reads pin_file (one trailing newline removed), pin_env and the uri pin-source', async () => {
    const file = join(dir, 'pin');
    await writeFile(file, '5678\n');
    expect((await resolvePkcs11Token({ modulePath: MODULE, slotId: 1, pinFile: file })).pin).toBe(
      '5678',
    );
    expect(
      (await resolvePkcs11Token({ modulePath: MODULE, slotId: 1, pinEnv: 'P' }, { P: '99' })).pin,
    ).toBe('99');
    expect(
      (
        await resolvePkcs11Token({
          uri: `pkcs11:slot-id=1?module-path=${MODULE}&pin-source=file:${file}`,
        })
      ).pin,
    ).toBe('5678');
    expect(
      (
        await resolvePkcs11Token({
          uri: `pkcs11:slot-id=1?module-path=${MODULE}&pin-source=${file}`,
        })
      ).pin,
    ).toBe('5678');
  });

  it('rejects contradictions and gaps with ERR_HSM_CONFIG_INVALID naming the key', async () => {
    const cases: Array<[Parameters<typeof resolvePkcs11Token>[0], RegExp]> = [
      [{ tokenLabel: 'a', pin: '1' }, /module_path is required/],
      [{ modulePath: MODULE, pin: '1' }, /one of token_label, token_serial or slot_id/],
      [{ modulePath: MODULE, tokenLabel: 'a' }, /a PIN is required/],
      [
        { modulePath: MODULE, tokenLabel: 'a', pin: '1', pinFile: '/x' },
        /exactly one PIN source \(found pin and pin_file\)/,
      ],
      [
        { modulePath: MODULE, uri: 'pkcs11:token=b?pin-value=1', tokenLabel: 'a' },
        /token_label is given twice/,
      ],
      [
        { uri: `pkcs11:token=a?module-path=${MODULE}&pin-value=1`, modulePath: MODULE },
        /module_path is given twice/,
      ],
      [{ uri: 'pkcs11:token=a?module-name=softhsm2&pin-value=1' }, /module-name only/],
      [
        { uri: `pkcs11:token=a?module-path=${MODULE}&pin-source=|/bin/pinentry` },
        /programs are not run/,
      ],
      [{ modulePath: MODULE, tokenLabel: 'a', pin: '1', sessionPoolSize: 0 }, /session_pool_size/],
      [{ modulePath: MODULE, slotId: -1, pin: '1' }, /slot_id must be a non-negative whole number/],
      [{ modulePath: '', tokenLabel: 'a', pin: '1' }, /module_path must be a non-empty string/],
    ];
    for (const [cfg, re] of cases) {
      const err = await rejection(resolvePkcs11Token(cfg, {}));
      expect(err.code, JSON.stringify(cfg)).toBe('ERR_HSM_CONFIG_INVALID');
      expect(err.message).toMatch(re);
    }
  });

  it('reports PIN sources that cannot be read with ERR_HSM_PIN_SOURCE', async () => {
    const empty = join(dir, 'empty');
    await writeFile(empty, '\n');
    for (const cfg of [
      { modulePath: MODULE, tokenLabel: 'a', pinFile: join(dir, 'missing') },
      { modulePath: MODULE, tokenLabel: 'a', pinFile: empty },
      { modulePath: MODULE, tokenLabel: 'a', pinEnv: 'UNSET_PIN' },
    ]) {
      expect((await rejection(resolvePkcs11Token(cfg, {}))).code).toBe('ERR_HSM_PIN_SOURCE');
    }
  });

  it('passes URI syntax errors through as ERR_HSM_URI_INVALID', async () => {
    expect((await rejection(resolvePkcs11Token({ uri: 'pkcs11:token=a b' }))).code).toBe(
      'ERR_HSM_URI_INVALID',
    );
  });
});

describe('plugin_data', () => {
  it('maps the KeyManager keys and refuses unknown ones', () => {
    expect(
      pkcs11KeyManagerSettingsFromPluginData({
        module_path: MODULE,
        token_label: 'ca',
        pin_env: 'PIN',
        key_label_prefix: 'spire-',
        key_type: 'ec-p384',
        signing_mode: 'async',
        key_id_length: 2,
        session_pool_size: 2,
      }),
    ).toEqual({
      modulePath: MODULE,
      tokenLabel: 'ca',
      pinEnv: 'PIN',
      keyLabelPrefix: 'spire-',
      keyType: 'ec-p384',
      signingMode: 'async',
      keyIdLength: 2,
      sessionPoolSize: 2,
    });
    expect(() => pkcs11KeyManagerSettingsFromPluginData({ key_id_length: 0 })).toThrow(
      /key_id_length must be a whole number from 1 to 32/,
    );
    expect(() =>
      pkcs11KeyManagerSettingsFromPluginData({ module_path: MODULE, pin_file_path: '/x' }),
    ).toThrow(/unknown key pin_file_path/);
    expect(() => pkcs11KeyManagerSettingsFromPluginData({ key_type: 'rsa-3072' })).toThrow(
      /key_type must be one of/,
    );
    expect(() => pkcs11KeyManagerSettingsFromPluginData({ signing_mode: 'fast' })).toThrow(
      /signing_mode must be one of/,
    );
    expect(() => pkcs11KeyManagerSettingsFromPluginData({ slot_id: '3' })).toThrow(
      /slot_id must be/,
    );
  });

  it('maps the UpstreamAuthority keys', () => {
    expect(
      pkcs11UpstreamAuthoritySettingsFromPluginData({
        uri: 'pkcs11:token=ca',
        pin: '1',
        key_label: 'root',
        key_id: 'A1b2',
        certificate_label: 'root-cert',
      }),
    ).toEqual({
      uri: 'pkcs11:token=ca',
      pin: '1',
      keyLabel: 'root',
      keyId: 'A1b2',
      certificateLabel: 'root-cert',
    });
    expect(() => pkcs11UpstreamAuthoritySettingsFromPluginData({ key_id: 'abc' })).toThrow(
      /key_id must be/,
    );
    expect(() => pkcs11UpstreamAuthoritySettingsFromPluginData({ key_label_prefix: 'x' })).toThrow(
      /unknown key/,
    );
  });
});

describe('SigningModeSelector', () => {
  it('auto picks the signing thread when the median lone signature is fast', () => {
    const s = new SigningModeSelector('auto', { samples: 3, fastMs: 1 });
    expect(s.path).toBe('async');
    expect(s.decided).toBe(false);
    s.recordAsync(0.2);
    s.recordAsync(5); // one slow outlier does not decide
    expect(s.decided).toBe(false);
    s.recordAsync(0.3);
    expect(s.path).toBe('worker');
    expect(s.decided).toBe(true);
    expect(s.reason).toMatch(/0\.300 ms \(median of 3\): batched on a signing thread/);
    s.recordAsync(50); // decided: later samples change nothing
    expect(s.path).toBe('worker');
    s.abandonWorker('cannot start');
    expect(s.path).toBe('async');
    expect(s.reason).toMatch(/signing thread unavailable \(cannot start\)/);
  });

  it('auto stays asynchronous for slow tokens', () => {
    const s = new SigningModeSelector('auto', { samples: 2 });
    s.recordAsync(40);
    s.recordAsync(60);
    expect(s.path).toBe('async');
    expect(s.decided).toBe(true);
    expect(s.reason).toMatch(/asynchronous, one session per signature/);
  });

  it('explicit modes never change by measurement', () => {
    for (const mode of ['sync', 'async', 'worker'] as const) {
      const s = new SigningModeSelector(mode, { samples: 1 });
      s.recordAsync(mode === 'async' ? 0.01 : 100);
      expect(s.path).toBe(mode);
      expect(s.reason).toBe(`signing_mode ${mode}`);
    }
    expect(() => new SigningModeSelector('fast' as 'sync')).toThrow(TypeError);
  });
});
