// The two halves of the TPM stack together: what the device adapter reads from a real swtpm
// is parsed and verified by the pure code in src/tpm (the server's side), and credentials
// made by src/tpm's MakeCredential are recovered by the TPM through the adapter.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../src/common/errors.js';
import {
  type AkAlgorithm,
  type EkAlgorithm,
  hasTpmRc,
  openTpm,
  TPM_RC,
  type Tpm,
} from '../../src/tpm/device/index.js';
import {
  checkAkAttributes,
  ekCertMatchesPublic,
  makeCredential,
  objectName,
  parseEkCertificate,
  parseTpm2bPublic,
  pubHash,
  verifyQuote,
} from '../../src/tpm/index.js';
import { type SwtpmInstance, startSwtpm } from '../harness/swtpm.js';

let swtpm: SwtpmInstance;
let tpm: Tpm;

beforeAll(async () => {
  swtpm = await startSwtpm();
  // "Firmware" measured into PCR 0 before anything reads it.
  await swtpm.tpm2(['pcrextend', `0:sha256=${createHash('sha256').update('fw').digest('hex')}`]);
  tpm = await openTpm({ tcti: swtpm.tcti });
});

afterAll(async () => {
  await tpm?.close();
  await swtpm?.stop();
});

describe('device adapter with the src/tpm codecs and verifiers', () => {
  for (const ek of ['rsa', 'ecc-p384'] as const satisfies readonly EkAlgorithm[]) {
    it(`the ${ek} EK certificate parses under the TCG profile and certifies the EK public area`, async () => {
      const der = await tpm.readEkCertificate(ek);
      expect(der).toBeDefined();
      const cert = parseEkCertificate(der!);
      const ekPublic = parseTpm2bPublic(await tpm.ekPublic(ek));
      expect(ekCertMatchesPublic(cert, ekPublic)).toBe(true);
      expect(cert.pubHash).toBe(pubHash(ekPublic));
      expect(cert.manufacturer).toMatch(/^id:/);
      const other = parseTpm2bPublic(await tpm.ekPublic(ek === 'rsa' ? 'ecc-p384' : 'rsa'));
      expect(ekCertMatchesPublic(cert, other)).toBe(false);
    });

    it(`recovers a src/tpm MakeCredential for the ${ek} EK, only for the AK it names`, async () => {
      const ekPublic = parseTpm2bPublic(await tpm.ekPublic(ek));
      const blobs = await tpm.createAk('ecc-p256', { ek });
      const ak = await tpm.loadAk(blobs);
      try {
        const name = objectName(parseTpm2bPublic(blobs.public));
        expect(Buffer.from(name).equals(Buffer.from(ak.name))).toBe(true);
        const secret = new Uint8Array(createHash('sha256').update(`secret-${ek}`).digest());
        const cred = makeCredential({ ekPublic, objectName: name, credential: secret });
        expect(
          Buffer.from(await tpm.activateCredential(ak, cred)).equals(Buffer.from(secret)),
        ).toBe(true);
        const wrongName = new Uint8Array(name);
        wrongName[wrongName.length - 1]! ^= 1;
        const forOther = makeCredential({ ekPublic, objectName: wrongName, credential: secret });
        const err = await tpm.activateCredential(ak, forOther).catch((e: unknown) => e);
        expect(hasTpmRc(err, TPM_RC.INTEGRITY)).toBe(true);
        // A credential whose TPM2B size does not match its bytes never reaches the TPM.
        const cut = { ...cred, idObject: cred.idObject.subarray(0, cred.idObject.length - 1) };
        const blobErr = await tpm.activateCredential(ak, cut).catch((e: unknown) => e);
        expect(isSpireEdgeError(blobErr, 'ERR_TPM_BLOB_INVALID')).toBe(true);
      } finally {
        await tpm.flushAk(ak);
      }
    });
  }

  for (const alg of ['ecc-p256', 'rsa-2048'] as const satisfies readonly AkAlgorithm[]) {
    it(`a ${alg} AK passes the AK attribute checks and its quotes pass verifyQuote`, async () => {
      const blobs = await tpm.createAk(alg);
      const akPublic = parseTpm2bPublic(blobs.public);
      expect(() => checkAkAttributes(akPublic)).not.toThrow();
      const ak = await tpm.loadAk(blobs);
      try {
        const selection = { bank: 'sha256', indices: [0, 1, 2, 3, 4, 5, 6, 7] } as const;
        const nonce = new Uint8Array(createHash('sha256').update(`quote-${alg}`).digest());
        const quote = await tpm.quote(ak, nonce, selection);
        const values = await tpm.readPcrs(selection);
        const pcrs = new Map([['sha256' as const, values]]);
        const ok = verifyQuote({ akPublic, ...quote, pcrs, expectedNonce: nonce });
        expect(ok.pcrSelection.get('sha256')).toEqual(selection.indices);
        expect(ok.pcrs.get('sha256')?.get(0)).toEqual(values.get(0));

        const otherNonce = new Uint8Array(nonce);
        otherNonce[0]! ^= 1;
        expect(() => verifyQuote({ akPublic, ...quote, pcrs, expectedNonce: otherNonce })).toThrow(
          expect.objectContaining({ code: 'ERR_TPM_QUOTE_INVALID' }),
        );
        const changed = new Map(values);
        const pcr0 = new Uint8Array(values.get(0)!);
        pcr0[0]! ^= 1;
        changed.set(0, pcr0);
        expect(() =>
          verifyQuote({
            akPublic,
            ...quote,
            pcrs: new Map([['sha256' as const, changed]]),
            expectedNonce: nonce,
          }),
        ).toThrow(expect.objectContaining({ code: 'ERR_TPM_QUOTE_INVALID' }));
      } finally {
        await tpm.flushAk(ak);
      }
    });
  }
});
