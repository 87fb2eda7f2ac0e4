import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../../src/common/errors.js';
import {
  decodeJournal,
  encodeJournal,
  JOURNAL_CAP,
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
    ['a newer version', (d) => ({ ...d, version: 2 })],
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
