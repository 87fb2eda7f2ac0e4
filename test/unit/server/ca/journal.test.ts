import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../../src/common/errors.js';
import {
  decodeJournal,
  encodeJournal,
  JOURNAL_CAP,
  JOURNAL_VERSION,
  type JournalData,
  MemoryJournalStore,
  type X509CaJournalEntry,
} from '../../../../src/server/ca/journal.js';

const T0 = Date.UTC(2026, 0, 1);

function sample(n = 1): JournalData {
  const x509Cas: X509CaJournalEntry[] = Array.from({ length: n }, (_, i) => ({
    slotId: i % 2 === 0 ? 'A' : 'B',
    issuedAt: T0 + i * 1000,
    notAfter: T0 + i * 1000 + 86_400_000,
    certificate: Uint8Array.of(0x30, 0x01, i),
    upstreamChain: i % 2 === 0 ? [] : [Uint8Array.of(1, 2, 3)],
    status: i === n - 1 ? 'active' : 'old',
    keyManagerKeyId: `x509-CA-${i % 2 === 0 ? 'A' : 'B'}-${i + 1}`,
  }));
  return {
    x509Cas,
    jwtKeys: [
      {
        slotId: 'A',
        issuedAt: T0,
        notAfter: T0 + 86_400_000,
        keyId: 'kid-1',
        publicKey: Uint8Array.of(9, 9),
        status: 'prepared',
        keyManagerKeyId: 'JWT-Signer-A-1',
      },
    ],
    x509Authorities: [{ certificate: Uint8Array.of(0x30, 0x00), notAfter: T0 + 5 }],
    jwtAuthorities: [{ keyId: 'kid-1', publicKey: Uint8Array.of(9, 9), notAfter: T0 + 7 }],
  };
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return isSpireEdgeError(err) ? err.code : String(err);
  }
}

describe('CA journal encoding', () => {
  it('round-trips every field', () => {
    const data = sample(3);
    expect(decodeJournal(encodeJournal(data))).toEqual(data);
  });

  it(`keeps only the newest ${JOURNAL_CAP} entries per kind, as SPIRE's journalCap`, () => {
    const data = sample(JOURNAL_CAP + 3);
    const back = decodeJournal(encodeJournal(data));
    expect(back.x509Cas).toHaveLength(JOURNAL_CAP);
    expect(back.x509Cas[0]!.issuedAt).toBe(T0 + 3000);
    expect(back.x509Cas.at(-1)!.status).toBe('active');
  });

  const bad: Array<[string, (doc: Record<string, unknown>) => unknown]> = [
    ['another format', (d) => ({ ...d, format: 'x' })],
    ['a newer version', (d) => ({ ...d, version: JOURNAL_VERSION + 1 })],
    ['version 0', (d) => ({ ...d, version: 0 })],
    [
      'a missing key manager key id',
      (d) => ({
        ...d,
        x509CAs: [{ ...(d['x509CAs'] as object[])[0], keyManagerKeyId: undefined }],
      }),
    ],
    [
      'a key manager key id breaking the key id rules',
      (d) => ({ ...d, jwtKeys: [{ ...(d['jwtKeys'] as object[])[0], keyManagerKeyId: 'a/b' }] }),
    ],
    [
      'an over-long key manager key id',
      (d) => ({
        ...d,
        jwtKeys: [{ ...(d['jwtKeys'] as object[])[0], keyManagerKeyId: 'k'.repeat(129) }],
      }),
    ],
    ['a missing list', (d) => ({ ...d, jwtKeys: undefined })],
    [
      'a bad slot id',
      (d) => ({ ...d, x509CAs: [{ ...(d['x509CAs'] as object[])[0], slotId: 'C' }] }),
    ],
    [
      'a bad status',
      (d) => ({ ...d, x509CAs: [{ ...(d['x509CAs'] as object[])[0], status: 'retired' }] }),
    ],
    [
      'a bad time',
      (d) => ({ ...d, x509CAs: [{ ...(d['x509CAs'] as object[])[0], notAfter: '2026-13-01' }] }),
    ],
    [
      'bad base64',
      (d) => ({ ...d, x509CAs: [{ ...(d['x509CAs'] as object[])[0], certificate: '!!' }] }),
    ],
    [
      'an empty kid',
      (d) => ({
        ...d,
        jwtAuthorities: [{ keyId: '', publicKey: 'AAAA', notAfter: '2026-01-01T00:00:00.000Z' }],
      }),
    ],
  ];
  for (const [what, mutate] of bad) {
    it(`rejects ${what} with ERR_CA_JOURNAL_CORRUPT`, () => {
      const doc = JSON.parse(Buffer.from(encodeJournal(sample(1))).toString()) as Record<
        string,
        unknown
      >;
      const bytes = Buffer.from(JSON.stringify(mutate(doc)));
      expect(code(() => decodeJournal(bytes))).toBe('ERR_CA_JOURNAL_CORRUPT');
    });
  }

  it(`writes version ${JOURNAL_VERSION} naming each entry's KeyManager key`, () => {
    const doc = JSON.parse(Buffer.from(encodeJournal(sample(2))).toString()) as {
      version: number;
      x509CAs: Array<{ keyManagerKeyId: string }>;
      jwtKeys: Array<{ keyManagerKeyId: string }>;
    };
    expect(doc.version).toBe(2);
    expect(doc.x509CAs.map((e) => e.keyManagerKeyId)).toEqual(['x509-CA-A-1', 'x509-CA-B-2']);
    expect(doc.jwtKeys.map((e) => e.keyManagerKeyId)).toEqual(['JWT-Signer-A-1']);
  });

  it("reads a version 1 journal, giving every entry its slot's fixed key id", () => {
    // Version 1 as it was written: no keyManagerKeyId, the key id followed from the slot.
    const v2 = JSON.parse(Buffer.from(encodeJournal(sample(3))).toString()) as Record<
      string,
      unknown
    >;
    const strip = (entries: unknown) =>
      (entries as Array<Record<string, unknown>>).map(({ keyManagerKeyId: _, ...e }) => e);
    const v1 = {
      ...v2,
      version: 1,
      x509CAs: strip(v2['x509CAs']),
      jwtKeys: strip(v2['jwtKeys']),
    };
    expect(JSON.stringify(v1)).not.toContain('keyManagerKeyId');
    const back = decodeJournal(Buffer.from(JSON.stringify(v1)));
    expect(back.x509Cas.map((e) => [e.slotId, e.keyManagerKeyId])).toEqual([
      ['A', 'x509-CA-A'],
      ['B', 'x509-CA-B'],
      ['A', 'x509-CA-A'],
    ]);
    expect(back.jwtKeys.map((e) => e.keyManagerKeyId)).toEqual(['JWT-Signer-A']);
    // Everything else survives, and re-encoding writes version 2 with those ids.
    const { x509Cas, jwtKeys, ...rest } = sample(3);
    expect(rest).toEqual({
      x509Authorities: back.x509Authorities,
      jwtAuthorities: back.jwtAuthorities,
    });
    expect(back.x509Cas.map(({ keyManagerKeyId: _, ...e }) => e)).toEqual(
      x509Cas.map(({ keyManagerKeyId: _, ...e }) => e),
    );
    expect(back.jwtKeys[0]!.keyId).toBe(jwtKeys[0]!.keyId);
    const again = decodeJournal(encodeJournal(back));
    expect(again).toEqual(back);
    expect(JSON.parse(Buffer.from(encodeJournal(back)).toString()).version).toBe(2);
  });

  it('rejects torn bytes with ERR_CA_JOURNAL_CORRUPT', () => {
    const bytes = encodeJournal(sample(2));
    expect(code(() => decodeJournal(bytes.subarray(0, bytes.length - 5)))).toBe(
      'ERR_CA_JOURNAL_CORRUPT',
    );
  });

  it('decodes arbitrary bytes only into data or ERR_CA_JOURNAL_CORRUPT', () => {
    const valid = Buffer.from(encodeJournal(sample(2))).toString();
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v))),
      // Single-character mutations of a valid journal.
      fc
        .tuple(fc.nat(valid.length - 1), fc.string({ minLength: 1, maxLength: 1 }))
        .map(([i, c]) => Buffer.from(valid.slice(0, i) + c + valid.slice(i + 1))),
    );
    fc.assert(
      fc.property(arb, (bytes) => {
        try {
          decodeJournal(bytes);
        } catch (err) {
          expect(isSpireEdgeError(err, 'ERR_CA_JOURNAL_CORRUPT')).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('MemoryJournalStore keeps a copy of what was saved', async () => {
    const store = new MemoryJournalStore();
    expect(await store.load()).toBeUndefined();
    const b = Uint8Array.of(1, 2, 3);
    await store.save(b);
    b[0] = 9;
    expect(await store.load()).toEqual(Uint8Array.of(1, 2, 3));
    expect(store.saves).toBe(1);
  });
});
