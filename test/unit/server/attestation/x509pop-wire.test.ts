import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../../src/common/errors.js';
import {
  decodeX509PopChallenge,
  decodeX509PopPayload,
  decodeX509PopResponse,
  encodeX509PopChallenge,
  encodeX509PopPayload,
  encodeX509PopResponse,
} from '../../../../src/server/attestation/x509pop-wire.js';

const te = new TextEncoder();
const b = (s: string) => te.encode(s);

function onlyWireErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(isSpireEdgeError(err, 'ERR_X509POP_WIRE_INVALID'), String(err)).toBe(true);
  }
}

describe('x509pop wire format', () => {
  it('encodes exactly as Go encoding/json does for SPIRE’s structs', () => {
    const nonce = new Uint8Array(32).fill(1);
    expect(Buffer.from(encodeX509PopChallenge({ kind: 'ecdsa', nonce })).toString()).toBe(
      `{"rsa_signature":null,"ecdsa_signature":{"nonce":"${Buffer.from(nonce).toString('base64')}"}}`,
    );
    expect(Buffer.from(encodeX509PopChallenge({ kind: 'rsa', nonce })).toString()).toBe(
      `{"rsa_signature":{"nonce":"${Buffer.from(nonce).toString('base64')}"},"ecdsa_signature":null}`,
    );
    expect(
      Buffer.from(
        encodeX509PopResponse({
          kind: 'ecdsa',
          nonce,
          r: Uint8Array.of(1),
          s: Uint8Array.of(2, 3),
        }),
      ).toString(),
    ).toBe(
      `{"rsa_signature":null,"ecdsa_signature":{"nonce":"${Buffer.from(nonce).toString('base64')}","r":"AQ==","s":"AgM="}}`,
    );
    expect(Buffer.from(encodeX509PopPayload([Uint8Array.of(0x30, 0)])).toString()).toBe(
      '{"certificates":["MAA="]}',
    );
  });

  it('round-trips payloads, challenges and responses', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 5 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 66 }),
        fc.boolean(),
        (certs, nonce, sig, rsa) => {
          expect(decodeX509PopPayload(encodeX509PopPayload(certs))).toEqual(certs);
          const kind = rsa ? 'rsa' : 'ecdsa';
          expect(decodeX509PopChallenge(encodeX509PopChallenge({ kind, nonce }))).toEqual({
            kind,
            nonce,
          });
          const resp = rsa
            ? ({ kind: 'rsa', nonce, signature: sig } as const)
            : ({ kind: 'ecdsa', nonce, r: sig, s: nonce } as const);
          expect(decodeX509PopResponse(encodeX509PopResponse(resp))).toEqual(resp);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses malformed input with ERR_X509POP_WIRE_INVALID only', () => {
    for (const bad of [
      '',
      'null',
      '[]',
      '{"certificates":"MAA="}',
      '{"certificates":[1]}',
      '{"certificates":["MA"]}',
      '{"certificates":["M A="]}',
    ]) {
      expect(() => decodeX509PopPayload(b(bad))).toThrow(
        expect.objectContaining({ code: 'ERR_X509POP_WIRE_INVALID' }),
      );
    }
    const n = Buffer.alloc(32).toString('base64');
    for (const bad of [
      '{}',
      `{"rsa_signature":{"nonce":"${n}"},"ecdsa_signature":{"nonce":"${n}"}}`,
      '{"ecdsa_signature":{"nonce":"AAAA"}}',
      '{"ecdsa_signature":7}',
    ]) {
      expect(() => decodeX509PopChallenge(b(bad))).toThrow(
        expect.objectContaining({ code: 'ERR_X509POP_WIRE_INVALID' }),
      );
    }
    expect(() =>
      decodeX509PopPayload(encodeX509PopPayload([Uint8Array.of(1), Uint8Array.of(2)]), 1),
    ).toThrow(/too many certificates/);
  });

  it('never throws anything but its coded error on arbitrary bytes or JSON', () => {
    const jsonish = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.json().map((s) => te.encode(s)),
      fc
        .record({
          rsa_signature: fc.oneof(fc.constant(null), fc.dictionary(fc.string(), fc.json())),
          ecdsa_signature: fc.oneof(fc.constant(null), fc.dictionary(fc.string(), fc.string())),
          certificates: fc.array(fc.oneof(fc.string(), fc.base64String())),
        })
        .map((o) => te.encode(JSON.stringify(o))),
    );
    fc.assert(
      fc.property(jsonish, (bytes) => {
        onlyWireErrors(() => decodeX509PopPayload(bytes));
        onlyWireErrors(() => decodeX509PopChallenge(bytes));
        onlyWireErrors(() => decodeX509PopResponse(bytes));
      }),
      { numRuns: 400 },
    );
  });
});
