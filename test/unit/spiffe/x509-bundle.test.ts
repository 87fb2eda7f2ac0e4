import { describe, expect, it } from 'vitest';
import { decodePem, encodePem } from '../../../src/common/pem.js';
import { parseTrustDomain } from '../../../src/spiffe/id.js';
import {
  parseX509Bundle,
  splitDerCertificates,
  X509Bundle,
} from '../../../src/spiffe/x509-bundle.js';
import { listCorpus, readCorpus } from '../../support/corpus.js';

// Real CA certificates from the corpus (manufacturer EK roots) serve as bundle contents.
const pems = listCorpus('ek-roots')
  .filter((f) => f.endsWith('.pem') && f.startsWith('keylime__NUVO'))
  .map((f) => readCorpus('ek-roots', f).toString('utf8'));
const ders = pems.flatMap((p) => decodePem(p).map((b) => b.der));

describe('X509Bundle', () => {
  it('parses PEM and concatenated DER to the same authorities', () => {
    expect(ders.length).toBeGreaterThanOrEqual(3);
    const fromPem = parseX509Bundle('example.org', pems.join('\n'));
    const fromDer = parseX509Bundle(parseTrustDomain('example.org'), Buffer.concat(ders));
    expect(fromPem.x509Authorities).toHaveLength(ders.length);
    expect(fromPem.equals(fromDer)).toBe(true);
    expect(splitDerCertificates(fromPem.marshalDer())).toHaveLength(ders.length);
    expect(parseX509Bundle('example.org', fromPem.marshalPem()).equals(fromPem)).toBe(true);
  });

  it('is a source only for its own trust domain', () => {
    const b = new X509Bundle('example.org', ders);
    expect(b.getX509Authorities(parseTrustDomain('example.org'))).toHaveLength(ders.length);
    expect(b.getX509Authorities(parseTrustDomain('other.org'))).toBeUndefined();
  });

  it('deduplicates and removes authorities', () => {
    const b = new X509Bundle('example.org', [ders[0]!, ders[0]!]);
    expect(b.x509Authorities).toHaveLength(1);
    b.addAuthority(ders[1]!);
    b.removeAuthority(ders[0]!);
    expect(b.x509Authorities).toEqual([ders[1]]);
  });

  it.each([
    ['a non-certificate PEM block', encodePem('PRIVATE KEY', Uint8Array.of(0x30, 0))],
    ['text with no PEM block', 'not a bundle'],
    ['truncated DER', Buffer.from(ders[0]!.subarray(0, 100))],
    ['garbage DER', Uint8Array.of(0x30, 0x85, 1, 2, 3, 4, 5)],
  ])('rejects %s with ERR_BUNDLE_INVALID', (_n, data) => {
    expect(() => parseX509Bundle('example.org', data as string | Uint8Array)).toThrow(
      expect.objectContaining({ code: 'ERR_BUNDLE_INVALID' }),
    );
  });
});
