import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { createX509PopAttestorClient } from '../../../../src/agent/attestation/x509pop.js';
import { systemClock } from '../../../../src/common/clock.js';
import { isSpireEdgeError } from '../../../../src/common/errors.js';
import { cryptoRandom, seededRandom } from '../../../../src/common/random.js';
import type {
  AttestationChallenge,
  ServerNodeAttestor,
} from '../../../../src/server/attestation/node-attestor.js';
import {
  createX509PopAttestor,
  serialNumberHex,
} from '../../../../src/server/attestation/x509pop.js';
import {
  decodeX509PopChallenge,
  encodeX509PopPayload,
  encodeX509PopResponse,
  x509PopSignedMessage,
} from '../../../../src/server/attestation/x509pop-wire.js';
import { makeCa, makeLeaf, type TestCa, type TestLeaf } from './x509pop-support.js';

const TD = 'example.org';
const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

let root: TestCa;
let inter: TestCa;
let leaf: TestLeaf;
let rogueRoot: TestCa;

beforeAll(async () => {
  root = await makeCa('x509pop root');
  inter = await makeCa('x509pop intermediate', { issuer: root });
  leaf = await makeLeaf(inter, {
    cn: 'node-1',
    uris: [
      'x509pop://example.org/role/gateway',
      'x509pop://other.org/zone/x',
      'spiffe://example.org/x',
    ],
    serialHex: '0a1b',
  });
  rogueRoot = await makeCa('rogue root');
});

function attestor(extra: Partial<Parameters<typeof createX509PopAttestor>[0]> = {}) {
  return createX509PopAttestor({
    trustDomain: TD,
    caBundle: [root.der],
    clock: systemClock,
    random: cryptoRandom,
    ...extra,
  });
}

async function run(
  server: ServerNodeAttestor,
  certificates: Uint8Array[],
  answer: (client: ReturnType<typeof createX509PopAttestorClient>) => AttestationChallenge,
  privateKey = leaf.privateKey,
) {
  const client = createX509PopAttestorClient({ certificates, privateKey });
  return server.attest(await client.payload(), answer(client), {});
}

async function expectCode(p: Promise<unknown>, code: string, message?: RegExp) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isSpireEdgeError(err), `expected ${code}, got ${String(err)}`).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  if (message !== undefined) expect((err as Error).message).toMatch(message);
}

describe('x509pop attestor', () => {
  it('attests a chain to the CA bundle with proof of possession, as SPIRE names it', async () => {
    const server = attestor();
    const challenges: Uint8Array[] = [];
    const result = await run(server, [leaf.der, inter.der], (c) => async (challenge) => {
      challenges.push(challenge);
      return c.respond(challenge);
    });
    expect(result.agentId).toBe(`spiffe://example.org/spire/agent/x509pop/${sha1(leaf.der)}`);
    expect(result.canReattest).toBe(true);
    expect(result.selectors).toEqual([
      { type: 'x509pop', value: 'subject:cn:node-1' },
      { type: 'x509pop', value: `ca:fingerprint:${sha1(inter.der)}` },
      { type: 'x509pop', value: `ca:fingerprint:${sha1(root.der)}` },
      { type: 'x509pop', value: 'serialnumber:0a1b' },
      { type: 'x509pop', value: 'san:role:gateway' },
    ]);
    expect(result.evidence).toMatchObject({ fingerprint: sha1(leaf.der), serialNumber: '0a1b' });
    // one challenge, in SPIRE's JSON shape
    expect(challenges).toHaveLength(1);
    const text = Buffer.from(challenges[0]!).toString('utf8');
    expect(text).toMatch(
      /^\{"rsa_signature":null,"ecdsa_signature":\{"nonce":"[A-Za-z0-9+/]{43}="\}\}$/,
    );
  });

  it('uses fresh nonces from the injected randomness', async () => {
    const server = attestor({ random: seededRandom(7) });
    const expected = seededRandom(7).bytes(32);
    let seen: Uint8Array | undefined;
    await run(server, [leaf.der, inter.der], (c) => async (challenge) => {
      seen = decodeX509PopChallenge(challenge).nonce;
      return c.respond(challenge);
    });
    expect(Buffer.from(seen!).equals(Buffer.from(expected))).toBe(true);
  });

  it('attests an RSA leaf (RSA-PSS response)', async () => {
    const rsaLeaf = await makeLeaf(inter, { cn: 'rsa-node', rsa: true });
    const r = await run(
      attestor(),
      [rsaLeaf.der, inter.der],
      (c) => (ch) => c.respond(ch),
      rsaLeaf.privateKey,
    );
    expect(r.selectors[0]).toEqual({ type: 'x509pop', value: 'subject:cn:rsa-node' });
  });

  it('renders a custom agent_path_template and refuses unsupported expressions', async () => {
    const r = await run(
      attestor({
        agentPathTemplate: '/x509pop/{{ .Subject.CommonName }}/{{ index .URISanSelectors "role" }}',
      }),
      [leaf.der, inter.der],
      (c) => (ch) => c.respond(ch),
    );
    expect(r.agentId).toBe('spiffe://example.org/spire/agent/x509pop/node-1/gateway');
    expect(() => attestor({ agentPathTemplate: '/{{ .Subject.Organization }}' })).toThrow(
      expect.objectContaining({ code: 'ERR_X509POP_CONFIG_INVALID' }),
    );
    expect(() => attestor({ caBundle: [] })).toThrow(
      expect.objectContaining({ code: 'ERR_X509POP_CONFIG_INVALID' }),
    );
  });

  it('refuses a chain from another CA', async () => {
    const rogueLeaf = await makeLeaf(rogueRoot, { cn: 'node-1' });
    await expectCode(
      run(attestor(), [rogueLeaf.der], (c) => (ch) => c.respond(ch), rogueLeaf.privateKey),
      'ERR_ATTESTATION_PERMISSION_DENIED',
      /certificate verification failed/,
    );
    // and a good leaf without the intermediate that links it to the root
    await expectCode(
      run(attestor(), [leaf.der], (c) => (ch) => c.respond(ch)),
      'ERR_ATTESTATION_PERMISSION_DENIED',
    );
  });

  it('refuses expired certificates and intermediates that are not CAs', async () => {
    const past = {
      notBefore: new Date(Date.now() - 7200_000),
      notAfter: new Date(Date.now() - 3600_000),
    };
    const expired = await makeLeaf(inter, { cn: 'old', ...past });
    await expectCode(
      run(attestor(), [expired.der, inter.der], (c) => (ch) => c.respond(ch), expired.privateKey),
      'ERR_ATTESTATION_PERMISSION_DENIED',
      /expired/,
    );
    const expiredInter = await makeCa('old intermediate', { issuer: root, ...past });
    const underExpired = await makeLeaf(expiredInter, { cn: 'n' });
    await expectCode(
      run(
        attestor(),
        [underExpired.der, expiredInter.der],
        (c) => (ch) => c.respond(ch),
        underExpired.privateKey,
      ),
      'ERR_ATTESTATION_PERMISSION_DENIED',
    );
    const notCa = await makeCa('not a ca', { issuer: root, isCa: false });
    const underNotCa = await makeLeaf(notCa, { cn: 'n' });
    await expectCode(
      run(
        attestor(),
        [underNotCa.der, notCa.der],
        (c) => (ch) => c.respond(ch),
        underNotCa.privateKey,
      ),
      'ERR_ATTESTATION_PERMISSION_DENIED',
      /not a CA/,
    );
  });

  it('refuses a leaf not meant for digital signatures before challenging', async () => {
    const encOnly = await makeLeaf(inter, {
      cn: 'n',
      keyUsage: x509.KeyUsageFlags.keyEncipherment,
    });
    let challenged = false;
    await expectCode(
      run(
        attestor(),
        [encOnly.der, inter.der],
        () => async () => {
          challenged = true;
          return new Uint8Array();
        },
        encOnly.privateKey,
      ),
      'ERR_ATTESTATION_PERMISSION_DENIED',
      /digital signature/,
    );
    expect(challenged).toBe(false);
  });

  it('refuses wrong challenge responses', async () => {
    const server = attestor();
    // signed over the right message, but with a key other than the leaf's
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    await expectCode(
      run(server, [leaf.der, inter.der], () => async (ch) => {
        const nonce = new Uint8Array(32).fill(7);
        const msg = x509PopSignedMessage(decodeX509PopChallenge(ch).nonce, nonce);
        const sig = sign('sha256', msg, { key: other, dsaEncoding: 'ieee-p1363' });
        return encodeX509PopResponse({
          kind: 'ecdsa',
          nonce,
          r: sig.subarray(0, 32),
          s: sig.subarray(32),
        });
      }),
      'ERR_ATTESTATION_PERMISSION_DENIED',
      /ECDSA signature verify failed/,
    );
    // the leaf's own signature with one bit flipped
    await expectCode(
      run(server, [leaf.der, inter.der], (c) => async (ch) => {
        const good = JSON.parse(Buffer.from(await c.respond(ch)).toString()) as {
          ecdsa_signature: { nonce: string; r: string; s: string };
        };
        const sBytes = Buffer.from(good.ecdsa_signature.s, 'base64');
        sBytes[sBytes.length - 1]! ^= 1;
        good.ecdsa_signature.s = sBytes.toString('base64');
        return new TextEncoder().encode(JSON.stringify(good));
      }),
      'ERR_ATTESTATION_PERMISSION_DENIED',
    );
    // a short responder nonce
    await expectCode(
      run(
        server,
        [leaf.der, inter.der],
        () => async () =>
          encodeX509PopResponse({
            kind: 'ecdsa',
            nonce: new Uint8Array(8),
            r: new Uint8Array([1]),
            s: new Uint8Array([1]),
          }),
      ),
      'ERR_ATTESTATION_PERMISSION_DENIED',
      /invalid response nonce/,
    );
    // an RSA answer to an ECDSA challenge
    await expectCode(
      run(
        server,
        [leaf.der, inter.der],
        () => async () =>
          encodeX509PopResponse({
            kind: 'rsa',
            nonce: new Uint8Array(32),
            signature: new Uint8Array(256),
          }),
      ),
      'ERR_ATTESTATION_PERMISSION_DENIED',
      /expecting ECDSA response/,
    );
    // not JSON
    await expectCode(
      run(server, [leaf.der, inter.der], () => async () => new TextEncoder().encode('nope')),
      'ERR_ATTESTATION_INVALID_ARGUMENT',
    );
  });

  it('refuses malformed payloads and too many intermediates', async () => {
    const server = attestor();
    const never: AttestationChallenge = async () => {
      throw new Error('must not challenge');
    };
    for (const bad of ['', '{}', '{"certificates":[]}', '{"certificates":["!!"]}', '[1]']) {
      await expectCode(
        server.attest(new TextEncoder().encode(bad), never, {}),
        'ERR_ATTESTATION_INVALID_ARGUMENT',
      );
    }
    await expectCode(
      server.attest(encodeX509PopPayload([new Uint8Array([0x30, 0x00])]), never, {}),
      'ERR_ATTESTATION_INVALID_ARGUMENT',
      /unable to parse leaf certificate/,
    );
    const chain = [leaf.der, inter.der, inter.der, inter.der, inter.der, inter.der];
    await expectCode(
      server.attest(encodeX509PopPayload(chain), never, {}),
      'ERR_ATTESTATION_INVALID_ARGUMENT',
      /too many intermediate certificates/,
    );
  });

  it('formats serial numbers as SPIRE does', () => {
    expect(serialNumberHex(Uint8Array.of(0x0a))).toBe('0a');
    expect(serialNumberHex(Uint8Array.of(0x00, 0x80))).toBe('80');
    expect(serialNumberHex(Uint8Array.of(0x01, 0x00, 0x00))).toBe('010000');
    expect(serialNumberHex(Uint8Array.of(0x00))).toBe('00');
    expect(serialNumberHex(Uint8Array.of(0xff))).toBe('-1');
    expect(serialNumberHex(Uint8Array.of(0xff, 0x80))).toBe('0-80');
  });
});
