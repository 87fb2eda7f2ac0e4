/**
 * The KeyManager contract suite (the one memory and disk pass) against the pkcs11
 * KeyManager on a real SoftHSM2 token. One SoftHSM configuration for the file; every store
 * is a fresh token in it, so stores never see each other's keys.
 */
import { afterAll, beforeAll } from 'vitest';
import { openPkcs11KeyManager } from '../../src/hsm/pkcs11/key-manager.js';
import { runKeyManagerContract } from '../contract/key-manager.contract.js';
import { type SoftHsmInstance, startSoftHsm } from '../harness/softhsm.js';

let hsm: SoftHsmInstance;
let tokens = 0;

beforeAll(async () => {
  hsm = await startSoftHsm({ label: 'contract-0' });
  // SoftHSM reads SOFTHSM2_CONF at C_Initialize; this file runs in its own process.
  process.env['SOFTHSM2_CONF'] = hsm.confPath;
});

afterAll(async () => {
  await hsm?.stop();
});

runKeyManagerContract('pkcs11', {
  persistent: true,
  async newStore() {
    const label = `contract-${++tokens}`;
    await hsm.initToken(label);
    return {
      open: () =>
        openPkcs11KeyManager({
          modulePath: hsm.modulePath,
          tokenLabel: label,
          pin: hsm.pin,
          sessionPoolSize: 4,
        }),
      dispose: async () => {
        // The token goes with the SoftHSM directory in afterAll.
      },
    };
  },
});
