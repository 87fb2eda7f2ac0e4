import { createHash, createPublicKey, verify } from 'node:crypto';
import { existsSync } from 'node:fs';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SoftHsmInstance, startSoftHsm } from '../harness/softhsm.js';

let hsm: SoftHsmInstance;
let p11: pkcs11js.PKCS11 | undefined;

beforeAll(async () => {
  hsm = await startSoftHsm({ label: 'harness', pin: '4321', soPin: '8765' });
  // SoftHSM reads SOFTHSM2_CONF at C_Initialize: set it first (this file has its own process).
  process.env['SOFTHSM2_CONF'] = hsm.confPath;
  p11 = new pkcs11js.PKCS11();
  p11.load(hsm.modulePath);
  p11.C_Initialize();
});

afterAll(async () => {
  if (p11 !== undefined) {
    p11.C_Finalize();
    p11.close();
  }
  await hsm?.stop();
});

function slotByLabel(label: string): Buffer {
  for (const slot of p11!.C_GetSlotList(true)) {
    if (p11!.C_GetTokenInfo(slot).label.trim() === label) return slot;
  }
  throw new Error(`no token labelled ${label}`);
}

function findOne(session: Buffer, template: pkcs11js.Template): Buffer {
  p11!.C_FindObjectsInit(session, template);
  try {
    const found = p11!.C_FindObjects(session, 2);
    expect(found).toHaveLength(1);
    return found[0]!;
  } finally {
    p11!.C_FindObjectsFinal(session);
  }
}

/** DER of an EC point (CKA_EC_POINT is an OCTET STRING wrapping 04||x||y) → P-256 JWK. */
function p256Jwk(ecPoint: Buffer): { kty: 'EC'; crv: 'P-256'; x: string; y: string } {
  expect(ecPoint[0]).toBe(0x04); // OCTET STRING
  expect(ecPoint[1]).toBe(65);
  const point = ecPoint.subarray(2);
  expect(point[0]).toBe(0x04); // uncompressed
  return {
    kty: 'EC',
    crv: 'P-256',
    x: point.subarray(1, 33).toString('base64url'),
    y: point.subarray(33, 65).toString('base64url'),
  };
}

describe('softhsm harness', () => {
  it('initialises a token whose slot id is the one SoftHSM reports', async () => {
    expect(hsm.env).toEqual({ SOFTHSM2_CONF: hsm.confPath });
    const slots = await hsm.pkcs11Tool(['--list-slots']);
    expect(slots.stdout).toContain(`(0x${hsm.slotId.toString(16)})`);
    expect(slots.stdout).toMatch(/token label\s*:\s*harness/);
    const slot = slotByLabel('harness');
    expect(Number(slot.readBigUInt64LE(0))).toBe(hsm.slotId);
  });

  it('generates an EC P-256 key with pkcs11-tool and signs in-process; the signature verifies', async () => {
    await hsm.pkcs11Tool([
      '--token-label',
      hsm.label,
      '--login',
      '--pin',
      hsm.pin,
      '--keypairgen',
      '--key-type',
      'EC:prime256v1',
      '--label',
      'ca-key',
      '--id',
      '01',
    ]);
    const session = p11!.C_OpenSession(slotByLabel(hsm.label), pkcs11js.CKF_SERIAL_SESSION);
    try {
      p11!.C_Login(session, pkcs11js.CKU_USER, hsm.pin);
      const priv = findOne(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_LABEL, value: 'ca-key' },
      ]);
      const pub = findOne(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
        { type: pkcs11js.CKA_LABEL, value: 'ca-key' },
      ]);
      const [point] = p11!.C_GetAttributeValue(session, pub, [{ type: pkcs11js.CKA_EC_POINT }]);
      const publicKey = createPublicKey({ key: p256Jwk(point!.value as Buffer), format: 'jwk' });

      const message = Buffer.from('spire-edge harness');
      const digest = createHash('sha256').update(message).digest();
      p11!.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, priv);
      const signature = p11!.C_Sign(session, digest, Buffer.alloc(64));
      expect(signature).toHaveLength(64); // raw r||s
      const key = { key: publicKey, dsaEncoding: 'ieee-p1363' as const };
      expect(verify('sha256', message, key, signature)).toBe(true);
      expect(verify('sha256', Buffer.from('something else'), key, signature)).toBe(false);
    } finally {
      p11!.C_CloseSession(session);
    }
  });

  it('refuses a wrong PIN (CKR_PIN_INCORRECT), in-process and through pkcs11-tool', async () => {
    const session = p11!.C_OpenSession(slotByLabel(hsm.label), pkcs11js.CKF_SERIAL_SESSION);
    try {
      expect(() => p11!.C_Login(session, pkcs11js.CKU_USER, '0000')).toThrow(
        expect.objectContaining({ code: pkcs11js.CKR_PIN_INCORRECT }),
      );
    } finally {
      p11!.C_CloseSession(session);
    }
    const r = await hsm.pkcs11Tool(
      ['--token-label', hsm.label, '--login', '--pin', '0000', '--list-objects'],
      { allowFailure: true },
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('CKR_PIN_INCORRECT');
  });

  it('initToken adds a second token with its own slot', async () => {
    const slotId = await hsm.initToken('second');
    expect(slotId).not.toBe(hsm.slotId);
    const slots = await hsm.pkcs11Tool(['--list-slots']);
    expect(slots.stdout).toContain(`(0x${slotId.toString(16)})`);
    expect(slots.stdout).toMatch(/token label\s*:\s*second/);
  });

  it('stop() removes the token directory and is idempotent', async () => {
    const other = await startSoftHsm();
    expect(existsSync(other.tokenDir)).toBe(true);
    await Promise.all([other.stop(), other.stop()]);
    expect(existsSync(other.confPath)).toBe(false);
    expect(existsSync(other.tokenDir)).toBe(false);
  });
});
