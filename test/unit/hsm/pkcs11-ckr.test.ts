/**
 * CK_RV → CKR name table and the coded errors built from it. pkcs11js's own constants are
 * the independent reference for the numbers.
 */
import pkcs11js from 'pkcs11js';
import { describe, expect, it } from 'vitest';
import {
  CKR_NAMES,
  ckrCode,
  ckrName,
  hsmCkrError,
  isConnectionLoss,
  isPermanentLoginFailure,
  rvOfPkcs11Error,
} from '../../../src/hsm/pkcs11/ckr.js';

const pkcs11Constants = Object.entries(pkcs11js as unknown as Record<string, unknown>).filter(
  (e): e is [string, number] => e[0].startsWith('CKR_') && typeof e[1] === 'number',
);

describe('CKR names', () => {
  it('agrees with every CKR_ constant pkcs11js defines', () => {
    expect(pkcs11Constants.length).toBeGreaterThan(80);
    for (const [name, value] of pkcs11Constants) {
      expect(ckrName(value), name).toBe(name);
      expect(ckrCode(name), name).toBe(value);
    }
  });

  it('knows the PKCS#11 v2.40 / v3.0 additions', () => {
    expect(ckrName(0x1b)).toBe('CKR_ACTION_PROHIBITED');
    expect(ckrName(0x140)).toBe('CKR_CURVE_NOT_SUPPORTED');
    expect(ckrName(0x201)).toBe('CKR_TOKEN_RESOURCE_EXCEEDED');
  });

  it('is a bijection', () => {
    const names = [...CKR_NAMES.values()];
    expect(new Set(names).size).toBe(names.length);
    for (const [code, name] of CKR_NAMES) expect(ckrCode(name)).toBe(code);
  });

  it('names vendor and unknown values without inventing standard names', () => {
    expect(ckrName(0x80000000)).toBe('CKR_VENDOR_DEFINED+0x0');
    expect(ckrName(0x80000123)).toBe('CKR_VENDOR_DEFINED+0x123');
    expect(ckrName(0x4)).toBe('CKR_0x4');
    expect(ckrCode('CKR_NOT_A_THING')).toBeUndefined();
    expect(() => ckrName(-1)).toThrow(TypeError);
    expect(() => ckrName(1.5)).toThrow(TypeError);
  });
});

describe('hsmCkrError', () => {
  it('carries the CKR name, number and operation, with a hint for PIN problems', () => {
    const cause = new Error('native');
    const err = hsmCkrError('C_Login', 0xa0, { context: 'login to token "ca"', cause });
    expect(err.code).toBe('ERR_HSM_CKR');
    expect(err.details).toEqual({ ckr: 'CKR_PIN_INCORRECT', rv: 0xa0, operation: 'C_Login' });
    expect(err.message).toBe(
      'pkcs11 C_Login (login to token "ca") failed: CKR_PIN_INCORRECT: the configured PIN is incorrect',
    );
    expect(err.cause).toBe(cause);
    expect(hsmCkrError('C_Sign', 0x82).message).toBe(
      'pkcs11 C_Sign failed: CKR_OBJECT_HANDLE_INVALID',
    );
  });
});

describe('classification', () => {
  it('treats lost tokens, sessions, logins and handles as connection loss', () => {
    for (const n of [
      'CKR_DEVICE_REMOVED',
      'CKR_TOKEN_NOT_PRESENT',
      'CKR_SESSION_HANDLE_INVALID',
      'CKR_USER_NOT_LOGGED_IN',
      'CKR_CRYPTOKI_NOT_INITIALIZED',
      'CKR_OBJECT_HANDLE_INVALID',
      'CKR_GENERAL_ERROR',
    ]) {
      expect(isConnectionLoss(n), n).toBe(true);
    }
    for (const n of ['CKR_PIN_INCORRECT', 'CKR_MECHANISM_INVALID', 'CKR_DATA_LEN_RANGE']) {
      expect(isConnectionLoss(n), n).toBe(false);
    }
  });

  it('never retries credential failures', () => {
    expect(isPermanentLoginFailure('CKR_PIN_INCORRECT')).toBe(true);
    expect(isPermanentLoginFailure('CKR_PIN_LOCKED')).toBe(true);
    expect(isPermanentLoginFailure('CKR_DEVICE_REMOVED')).toBe(false);
  });
});

describe('rvOfPkcs11Error', () => {
  it('reads the code of pkcs11js errors only', () => {
    const e = new pkcs11js.Pkcs11Error('CKR_PIN_INCORRECT:160', 0xa0, 'C_Login');
    expect(rvOfPkcs11Error(e)).toBe(0xa0);
    expect(rvOfPkcs11Error({ name: 'Pkcs11Error', message: 'CKR_SESSION_CLOSED' })).toBe(0xb0);
    expect(rvOfPkcs11Error(new Error('CKR_PIN_INCORRECT'))).toBeUndefined();
    expect(rvOfPkcs11Error(new pkcs11js.NativeError('dlopen failed'))).toBeUndefined();
    expect(rvOfPkcs11Error(undefined)).toBeUndefined();
  });
});
