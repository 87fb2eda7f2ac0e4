/**
 * Faults of the pkcs11 KeyManager and UpstreamAuthority on a real SoftHSM2: a wrong PIN, a
 * missing module, an unknown token, missing PIN sources, and the token vanishing while the
 * server runs (its directory deleted) and coming back (restored from a copy) — errors are
 * coded and name the cause, health turns false, nothing is ever signed by anything but the
 * token, and everything works again without re-creating anything.
 */

import { verify } from 'node:crypto';
import { cp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../src/common/errors.js';
import type { ManagedKey } from '../../src/hsm/key-manager.js';
import { openPkcs11KeyManager } from '../../src/hsm/pkcs11/key-manager.js';
import type { Pkcs11Health } from '../../src/hsm/pkcs11/session-pool.js';
import {
  openPkcs11UpstreamAuthority,
  provisionPkcs11UpstreamRoot,
} from '../../src/hsm/pkcs11/upstream-authority.js';
import { parseSpiffeId } from '../../src/spiffe/id.js';
import { makeTempDir, removeTempDir } from '../harness/common.js';
import { type SoftHsmInstance, startSoftHsm } from '../harness/softhsm.js';

let hsm: SoftHsmInstance;
let scratch: string;
const open: Array<{ close(): Promise<void> }> = [];
const DATA = Buffer.from('fault tests');
const WRONG_PIN = '86420975';

beforeAll(async () => {
  hsm = await startSoftHsm({ label: 'faults', pin: '24680135' });
  process.env['SOFTHSM2_CONF'] = hsm.confPath; // read at C_Initialize; this file's own process
  scratch = await makeTempDir('hsm-pkcs11-faults');
});

afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

afterAll(async () => {
  await hsm?.stop();
  if (scratch !== undefined) await removeTempDir(scratch);
});

async function failure(
  p: Promise<unknown>,
): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(isSpireEdgeError(err), inspect(err)).toBe(true);
  return err as Error & { code: string; details: Record<string, unknown> };
}

function verifies(key: ManagedKey, sig: Uint8Array): boolean {
  return verify('sha256', DATA, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
}

describe('opening fails with a message naming the cause', () => {
  it('wrong PIN: ERR_HSM_CKR with CKR_PIN_INCORRECT, never showing the PIN', async () => {
    const err = await failure(
      openPkcs11KeyManager({ modulePath: hsm.modulePath, tokenLabel: 'faults', pin: WRONG_PIN }),
    );
    expect(err.code).toBe('ERR_HSM_CKR');
    expect(err.details).toMatchObject({ ckr: 'CKR_PIN_INCORRECT', operation: 'C_Login' });
    expect(err.message).toMatch(
      /login to token "faults".*CKR_PIN_INCORRECT: the configured PIN is incorrect/,
    );
    // Neither the message nor anything chained to it carries the PIN.
    expect(inspect(err, { depth: 10 })).not.toContain(WRONG_PIN);
    expect(inspect(err, { depth: 10 })).not.toContain(hsm.pin);
  });

  it('missing module: ERR_HSM_MODULE_LOAD naming the path', async () => {
    const err = await failure(
      openPkcs11KeyManager({
        modulePath: '/nonexistent/libpkcs11.so',
        tokenLabel: 'faults',
        pin: hsm.pin,
      }),
    );
    expect(err.code).toBe('ERR_HSM_MODULE_LOAD');
    expect(err.message).toContain('/nonexistent/libpkcs11.so');
  });

  it('a file that is not a PKCS#11 library: ERR_HSM_MODULE_LOAD', async () => {
    const fake = join(scratch, 'not-a-module.so');
    await writeFile(fake, 'not an ELF file');
    const err = await failure(
      openPkcs11KeyManager({ modulePath: fake, tokenLabel: 'faults', pin: hsm.pin }),
    );
    expect(err.code).toBe('ERR_HSM_MODULE_LOAD');
    expect(err.message).toMatch(/not-a-module\.so is not a loadable PKCS#11 library/);
  });

  it('unknown token: ERR_HSM_TOKEN_NOT_FOUND naming the label and the tokens present', async () => {
    const err = await failure(
      openPkcs11KeyManager({
        modulePath: hsm.modulePath,
        tokenLabel: 'no-such-token',
        pin: hsm.pin,
      }),
    );
    expect(err.code).toBe('ERR_HSM_TOKEN_NOT_FOUND');
    expect(err.message).toContain('no token with label "no-such-token"');
    expect(err.message).toContain('"faults"');
    const bySerial = await failure(
      openPkcs11KeyManager({ modulePath: hsm.modulePath, tokenSerial: '0000', pin: hsm.pin }),
    );
    expect(bySerial.code).toBe('ERR_HSM_TOKEN_NOT_FOUND');
  });

  it('PIN sources: unset pin_env, unreadable pin_file, two sources', async () => {
    const base = { modulePath: hsm.modulePath, tokenLabel: 'faults' };
    const env = await failure(
      openPkcs11KeyManager({ ...base, pinEnv: 'SPIRE_EDGE_NO_SUCH_PIN', env: {} }),
    );
    expect(env.code).toBe('ERR_HSM_PIN_SOURCE');
    expect(env.message).toContain('SPIRE_EDGE_NO_SUCH_PIN');
    const file = await failure(
      openPkcs11KeyManager({ ...base, pinFile: join(scratch, 'absent-pin') }),
    );
    expect(file.code).toBe('ERR_HSM_PIN_SOURCE');
    expect(file.message).toContain('absent-pin');
    const two = await failure(openPkcs11KeyManager({ ...base, pin: hsm.pin, pinEnv: 'X' }));
    expect(two.code).toBe('ERR_HSM_CONFIG_INVALID');
    expect(two.message).toContain('exactly one PIN source');
    expect(two.message).not.toContain(hsm.pin);
    // The environment variable works when set.
    const km = await openPkcs11KeyManager({
      ...base,
      pinEnv: 'SPIRE_EDGE_PIN',
      env: { SPIRE_EDGE_PIN: hsm.pin },
    });
    open.push(km);
    expect((await km.health()).ok).toBe(true);
  });
});

describe('the token vanishes while running and comes back', () => {
  it('fails with coded errors and unhealthy status, then recovers without re-creating anything', async () => {
    const base = { modulePath: hsm.modulePath, tokenLabel: 'faults', pin: hsm.pin };
    const kmSync = await openPkcs11KeyManager({
      ...base,
      keyLabelPrefix: 'sync-',
      signingMode: 'sync',
    });
    open.push(kmSync);
    const kmAsync = await openPkcs11KeyManager({
      ...base,
      keyLabelPrefix: 'async-',
      signingMode: 'async',
    });
    open.push(kmAsync);
    const kmWorker = await openPkcs11KeyManager({
      ...base,
      keyLabelPrefix: 'worker-',
      signingMode: 'worker',
    });
    open.push(kmWorker);
    await provisionPkcs11UpstreamRoot({
      ...base,
      keyLabel: 'fault-root',
      keyType: 'ec-p256',
      trustDomain: 'example.org',
      subject: { commonName: 'root' },
      ttlSeconds: 86_400,
    });
    const ua = await openPkcs11UpstreamAuthority({ ...base, keyLabel: 'fault-root' });
    open.push(ua);
    const keySync = await kmSync.generateKey('x509-CA-A', 'ec-p256');
    const keyAsync = await kmAsync.generateKey('x509-CA-A', 'ec-p256');
    const keyWorker = await kmWorker.generateKey('x509-CA-A', 'ec-p256');
    expect(verifies(keySync, await keySync.sign(DATA))).toBe(true);
    expect(verifies(keyAsync, await keyAsync.sign(DATA))).toBe(true);
    expect(verifies(keyWorker, await keyWorker.sign(DATA))).toBe(true);
    const transitions: Pkcs11Health[] = [];
    kmSync.onHealthChange((h) => transitions.push(h));

    const backup = join(scratch, 'tokens-backup');
    await cp(hsm.tokenDir, backup, { recursive: true });
    await rm(hsm.tokenDir, { recursive: true });

    // Signing fails, coded, with the PKCS#11 cause; no signature from anywhere else.
    for (const key of [keySync, keyAsync, keyWorker]) {
      const err = await failure(key.sign(DATA));
      expect(err.code).toBe('ERR_KEY_MANAGER_SIGN_FAILED');
      expect(String(err.details?.['ckr'])).toMatch(/^CKR_/);
      expect((err.cause as { code?: string }).code).toMatch(/^ERR_HSM_(CKR|UNAVAILABLE)$/);
    }
    const health = await kmSync.health();
    expect(health.ok).toBe(false);
    expect(health.reason).toMatch(/CKR_/);
    expect(kmSync.status().ok).toBe(false);
    expect((await kmAsync.health()).ok).toBe(false);
    expect((await kmWorker.health()).ok).toBe(false);
    expect(transitions.map((t) => t.ok)).toEqual([false]);
    // A missing token is not a missing key: getKey fails instead of answering "no key".
    expect((await failure(kmSync.getKey('x509-CA-A'))).code).toBe('ERR_KEY_MANAGER_STORE_IO');
    expect((await failure(kmSync.listKeys())).code).toBe('ERR_KEY_MANAGER_STORE_IO');
    expect((await failure(kmSync.generateKey('x509-CA-B', 'ec-p256'))).code).toBe(
      'ERR_KEY_MANAGER_GENERATE_FAILED',
    );
    const mint = await failure(
      ua.mintX509CaIntermediate({
        publicKey: keySync.publicKey,
        ttlSeconds: 3600,
        trustDomain: parseSpiffeId('spiffe://example.org/x').trustDomain,
        subject: {},
      }),
    );
    expect(mint.code).toBe('ERR_UPSTREAM_AUTHORITY_IO');
    expect((await ua.health()).ok).toBe(false);

    // The token comes back (restored from the copy): same managers, same handles.
    await cp(backup, hsm.tokenDir, { recursive: true });
    expect((await kmSync.health()).ok).toBe(true);
    expect((await kmAsync.health()).ok).toBe(true);
    expect((await kmWorker.health()).ok).toBe(true);
    expect(transitions.map((t) => t.ok)).toEqual([false, true]);
    expect(verifies(keySync, await keySync.sign(DATA))).toBe(true);
    expect(verifies(keyAsync, await keyAsync.sign(DATA))).toBe(true);
    const many = await Promise.all(Array.from({ length: 40 }, () => keyWorker.sign(DATA)));
    for (const sig of many) expect(verifies(keyWorker, sig)).toBe(true);
    expect(kmWorker.signingMode.path).toBe('worker');
    expect((await kmSync.getKey('x509-CA-A'))?.fingerprint).toBe(keySync.fingerprint);
    const minted = await ua.mintX509CaIntermediate({
      publicKey: keySync.publicKey,
      ttlSeconds: 3600,
      trustDomain: parseSpiffeId('spiffe://example.org/x').trustDomain,
      subject: {},
    });
    expect(minted.certChain).toHaveLength(1);
  });

  it('reconnects in the background when the token returns, without any call', async () => {
    const km = await openPkcs11KeyManager({
      modulePath: hsm.modulePath,
      tokenLabel: 'faults',
      pin: hsm.pin,
      keyLabelPrefix: 'bg-',
      signingMode: 'async',
      retryMinMs: 50,
      retryMaxMs: 200,
    });
    open.push(km);
    const key = await km.generateKey('k', 'ec-p256');
    const backup = join(scratch, 'tokens-backup-2');
    await cp(hsm.tokenDir, backup, { recursive: true });
    const healthy = new Promise<void>((resolve) => {
      km.onHealthChange((h) => {
        if (h.ok) resolve();
      });
    });
    await rm(hsm.tokenDir, { recursive: true });
    expect((await failure(key.sign(DATA))).code).toBe('ERR_KEY_MANAGER_SIGN_FAILED');
    expect(km.status().ok).toBe(false);
    await new Promise((r) => setTimeout(r, 300)); // a few failed background attempts
    expect(km.status().ok).toBe(false);
    await cp(backup, hsm.tokenDir, { recursive: true });
    await healthy; // no health() or sign() call in between
    expect(km.status().ok).toBe(true);
    expect(verifies(key, await key.sign(DATA))).toBe(true);
  });
});
