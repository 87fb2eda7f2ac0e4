/**
 * parseEventLog: every corpus log (format and banks checked against PROVENANCE.md's
 * descriptions, event counts against an independent count), hand-built logs for every rule
 * and error, and property tests (random bytes, flips, truncations, length-field mutations,
 * 4 MiB hostile inputs).
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSpireEdgeError } from '../../../src/common/errors.js';
import {
  EVENT_LOG_LIMITS,
  type EventLog,
  type PcrBank,
  parseEventLog,
  replayEventLog,
} from '../../../src/tpm/index.js';
import { listCorpus, readCorpus } from '../../support/corpus.js';
import {
  ALG,
  agileLog,
  agileRecord,
  concat,
  EV,
  legacyLog,
  legacyRecord,
  SHA1_256,
  startupLocality,
} from './support/event-log-builder.js';

const LOGS = listCorpus('eventlogs');

function load(file: string): Uint8Array {
  return new Uint8Array(readCorpus('eventlogs', file));
}

/** The error of `f`, asserting it is ERR_TPM_EVENT_LOG_INVALID. */
function invalidError(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    if (isSpireEdgeError(e, 'ERR_TPM_EVENT_LOG_INVALID')) return e;
    throw new Error(`expected ERR_TPM_EVENT_LOG_INVALID, got ${String(e)}`);
  }
  throw new Error('expected ERR_TPM_EVENT_LOG_INVALID, nothing was thrown');
}

/** Format and banks as PROVENANCE.md describes each log, parsed from its table. */
function provenance(): Map<string, { format: 'sha1' | 'crypto-agile'; banks: PcrBank[] }> {
  const text = readCorpus('PROVENANCE.md').toString('utf8');
  const out = new Map<string, { format: 'sha1' | 'crypto-agile'; banks: PcrBank[] }>();
  for (const line of text.split('\n')) {
    const m = /^\| `([^`]+)` \|/.exec(line);
    if (m === null || !LOGS.includes(m[1]!)) continue;
    const desc = line.split('|').at(-2)!;
    const agile = desc.indexOf('crypto-agile');
    if (agile < 0) {
      if (!/legacy/i.test(desc)) throw new Error(`no format in PROVENANCE.md for ${m[1]}`);
      out.set(m[1]!, { format: 'sha1', banks: ['sha1'] });
      continue;
    }
    const banks = /SHA\d+(?:\+SHA\d+)*/.exec(desc.slice(agile))![0];
    out.set(m[1]!, {
      format: 'crypto-agile',
      banks: banks.split('+').map((b) => b.toLowerCase() as PcrBank),
    });
  }
  return out;
}

/**
 * Event counts (records after the Spec ID header), from an independent walk of the files (a
 * separate Python script following the PFP layout) and tpm2_eventlog's EventNum where it
 * parses the log. StartupLocality where the log has one.
 */
const EXPECTED: Record<string, { events: number; locality?: number }> = {
  goattest__coreos_36_shielded_vm_no_secure_boot_eventlog: { events: 75 },
  goattest__crypto_agile_eventlog: { events: 26 },
  goattest__ebs_event_missing_eventlog: { events: 38 },
  goattest__option_rom_eventlog: { events: 61 },
  goattest__sb_cert_eventlog: { events: 14 },
  goattest__short_no_action_eventlog: { events: 1, locality: 3 },
  goattest__ubuntu_2104_shielded_vm_no_secure_boot_eventlog: { events: 105 },
  'goeventlog__arch-linux-workstation.bin': { events: 24 },
  'goeventlog__cos-101-amd-sev.bin': { events: 48 },
  'goeventlog__cos-85-amd-sev.bin': { events: 45 },
  'goeventlog__cos-93-amd-sev.bin': { events: 45 },
  'goeventlog__debian-10.bin': { events: 25 },
  'goeventlog__glinux-alex.bin': { events: 28, locality: 3 },
  'goeventlog__rhel8-uefi.bin': { events: 82 },
  'goeventlog__ubuntu-1804-amd-sev.bin': { events: 87 },
  'goeventlog__ubuntu-2104-no-dbx.bin': { events: 111 },
  'goeventlog__ubuntu-2104-no-secure-boot.bin': { events: 105 },
  'gotpmtools__confidential-gke-debug-251000_eventlog.bin': { events: 54 },
  'gotpmtools__eventlogwithsp800155.bin': { events: 53 },
  'gotpmtools__gdc-host.bin': { events: 158, locality: 3 },
  'gotpmtools__ubuntu-2404-amd-sevsnp.bin': { events: 116 },
  keylime__binary_bios_measurements: { events: 120, locality: 3 },
  'keylime__binary_bios_measurements-secureboot': { events: 98 },
  'keylime__mb_log.bin': { events: 101 },
  'tpm2tools__event-arch-linux.bin': { events: 24 },
  'tpm2tools__event-bootorder.bin': { events: 103 },
  'tpm2tools__event-moklisttrusted.bin': { events: 96 },
  'tpm2tools__event-postcode.bin': { events: 58 },
  'tpm2tools__event-sd-boot-fedora37.bin': { events: 27 },
  'tpm2tools__event-uefi-sha1-log.bin': { events: 17 },
};

describe('parseEventLog: the corpus', () => {
  const prov = provenance();

  it('knows every corpus log (no file left unchecked)', () => {
    expect(LOGS.length).toBe(30);
    expect(Object.keys(EXPECTED).sort()).toEqual(LOGS);
    expect([...prov.keys()].sort()).toEqual(LOGS);
  });

  it.each(LOGS)('%s parses as PROVENANCE.md describes it', (file) => {
    const bytes = load(file);
    const log = parseEventLog(bytes);
    const want = prov.get(file)!;
    expect(log.format).toBe(want.format);
    expect(log.banks).toEqual(want.banks);
    expect(log.events.length).toBe(EXPECTED[file]!.events);
    expect(log.startupLocality).toBe(EXPECTED[file]!.locality);
    if (log.format === 'crypto-agile') {
      expect(log.specId!.signature).toBe('Spec ID Event03');
      expect(log.specId!.algorithms.map((a) => a.bank)).toEqual(want.banks);
      expect(log.events[0]!.index).toBe(1);
    } else {
      expect(log.specId).toBeUndefined();
      expect(log.events[0]!.index).toBe(0);
    }
    // Records tile the file: consecutive numbers, increasing offsets, every byte used.
    log.events.forEach((e, i) => {
      expect(e.index).toBe(log.events[0]!.index + i);
      expect(e.typeName).toMatch(/^EV_/);
      expect([...e.digests.keys()]).toEqual(log.banks);
    });
    const last = log.events.at(-1)!;
    expect(last.data.byteOffset + last.data.length).toBe(bytes.length);
  });

  it('reads the 49-byte short_no_action log as one legacy StartupLocality event', () => {
    const log = parseEventLog(load('goattest__short_no_action_eventlog'));
    expect(log.format).toBe('sha1');
    expect(log.events).toHaveLength(1);
    const [e] = log.events;
    expect(e!.typeName).toBe('EV_NO_ACTION');
    expect(e!.pcrIndex).toBe(0);
    expect(Buffer.from(e!.data).toString('latin1')).toBe('StartupLocality\0\x03');
    expect(log.startupLocality).toBe(3);
    // Nothing was extended: the replay has the sha1 bank and no PCR.
    expect(replayEventLog(log)).toEqual(new Map([['sha1', new Map()]]));
  });

  it('accepts Windows EV_NO_ACTION events at PCR 0xffffffff (option_rom log, last event)', () => {
    const log = parseEventLog(load('goattest__option_rom_eventlog'));
    const e = log.events.at(-1)!;
    expect(e.pcrIndex).toBe(0xffffffff);
    expect(e.typeName).toBe('EV_NO_ACTION');
  });

  it('names every event type with its PFP name', () => {
    const log = parseEventLog(load('gotpmtools__gdc-host.bin'));
    const names = new Set(log.events.map((e) => e.typeName));
    for (const n of [
      'EV_S_CRTM_VERSION',
      'EV_EFI_HANDOFF_TABLES',
      'EV_TABLE_OF_DEVICES',
      'EV_IPL',
    ]) {
      expect(names).toContain(n);
    }
  });

  it.each(LOGS.filter((f) => f !== 'goattest__short_no_action_eventlog'))(
    '%s truncated by one byte, and cut inside its last header, is refused naming the record',
    (file) => {
      const bytes = load(file);
      const log = parseEventLog(bytes);
      const last = log.events.at(-1)!;
      let err = invalidError(() => parseEventLog(bytes.subarray(0, bytes.length - 1)));
      expect(err.message).toContain(`record ${last.index} at offset ${last.offset}`);
      err = invalidError(() => parseEventLog(bytes.subarray(0, last.offset + 6)));
      expect(err.message).toContain(`record ${last.index} at offset ${last.offset}`);
    },
  );

  it('does not alias the input: changing it after parsing changes nothing', () => {
    const bytes = load('tpm2tools__event-sd-boot-fedora37.bin');
    const log = parseEventLog(bytes);
    const before = Buffer.from(log.events[0]!.digests.get('sha256')!).toString('hex');
    bytes.fill(0);
    expect(Buffer.from(log.events[0]!.digests.get('sha256')!).toString('hex')).toBe(before);
  });
});

describe('parseEventLog: rules (hand-built logs)', () => {
  const post = { pcr: 0, type: EV.POST_CODE, data: 'post' };

  it('parses a built crypto-agile log with its digests and data', () => {
    const log = parseEventLog(
      agileLog({ algorithms: SHA1_256, vendorInfo: Uint8Array.of(9, 9) }, [post]),
    );
    expect(log.format).toBe('crypto-agile');
    expect(log.specId!.vendorInfo).toEqual(Uint8Array.of(9, 9));
    expect(log.specId!.uintnSize).toBe(2);
    expect(log.events[0]!.digests.get('sha256')).toHaveLength(32);
    expect(Buffer.from(log.events[0]!.data).toString()).toBe('post');
    // Spec ID data: 16 + 4 + 4 + 4 + 2 × 4 + 1 + 2 = 39 bytes after the 32-byte header.
    expect(log.events[0]!.offset).toBe(32 + 39);
  });

  it('refuses unknown event types, naming the type in hex', () => {
    for (const type of [0x14, 0x7fffffff, 0x80000000, 0x8000000e, 0x800000e5, 0xffffffff]) {
      const err = invalidError(() =>
        parseEventLog(
          agileLog({ algorithms: SHA1_256 }, [post, { pcr: 1, type, data: 'x' }, post]),
        ),
      );
      expect(err.message).toContain(`record 2 at offset`);
      expect(err.message).toContain(`eventType: 0x${type.toString(16).padStart(8, '0')}`);
      expect(err.message).toContain('unknown types are refused');
    }
    const legacy = invalidError(() =>
      parseEventLog(legacyLog([post, { pcr: 0, type: 0x99, data: '' }])),
    );
    expect(legacy.message).toContain('record 1 at offset 36: eventType: 0x00000099');
  });

  it('accepts every PFP type, including EV_POST_CODE2, EV_EFI_HCRTM_EVENT and the SPDM types', () => {
    const types = [0x0, 0x12, 0x13, 0x80000010, 0x8000000d, 0x800000e0, 0x800000e4];
    const log = parseEventLog(
      agileLog(
        { algorithms: SHA1_256 },
        types.map((type) => ({ pcr: 2, type, data: 'x' })),
      ),
    );
    expect(log.events.map((e) => e.typeName)).toEqual([
      'EV_PREBOOT_CERT',
      'EV_OMIT_BOOT_DEVICE_EVENTS',
      'EV_POST_CODE2',
      'EV_EFI_HCRTM_EVENT',
      'EV_EFI_GPT_EVENT2',
      'EV_EFI_VARIABLE_AUTHORITY',
      'EV_EFI_SPDM_DEVICE_AUTHORITY',
    ]);
  });

  it('checks PCR indices: 0–23, and 0xffffffff only for EV_NO_ACTION', () => {
    let err = invalidError(() =>
      parseEventLog(agileLog({ algorithms: SHA1_256 }, [{ ...post, pcr: 24 }])),
    );
    expect(err.message).toContain('record 1 at offset 69: pcrIndex: 24 is not a PCR');
    err = invalidError(() =>
      parseEventLog(legacyLog([{ pcr: 0xffffffff, type: EV.SEPARATOR, data: '\0\0\0\0' }])),
    );
    expect(err.message).toContain('pcrIndex: 4294967295');
    const ok = parseEventLog(
      agileLog({ algorithms: SHA1_256 }, [{ pcr: 0xffffffff, type: EV.NO_ACTION, data: 'w' }]),
    );
    expect(ok.events[0]!.pcrIndex).toBe(0xffffffff);
  });

  it('bounds the event size by the bytes that remain', () => {
    const log = agileLog({ algorithms: SHA1_256 }, [post]);
    const dv = new DataView(log.buffer);
    const sizeAt = log.length - 4 - 4;
    dv.setUint32(sizeAt, 5, true);
    const err = invalidError(() => parseEventLog(log));
    expect(err.message).toBe(
      'event log record 1 at offset 69: eventSize: 5 exceeds the remaining 4 bytes',
    );
    dv.setUint32(sizeAt, 0xffffffff, true);
    expect(invalidError(() => parseEventLog(log)).message).toContain(
      'eventSize: 4294967295 exceeds',
    );
    // Legacy format and the first record too.
    const legacy = legacyLog([post]);
    new DataView(legacy.buffer).setUint32(28, 1000, true);
    expect(invalidError(() => parseEventLog(legacy)).message).toBe(
      'event log record 0 at offset 0: eventSize: 1000 exceeds the remaining 4 bytes',
    );
  });

  it('requires exactly one digest per Spec ID algorithm', () => {
    let err = invalidError(() =>
      parseEventLog(agileLog({ algorithms: SHA1_256 }, [{ ...post, count: 1 }])),
    );
    expect(err.message).toContain('digests.count: 1 but the Spec ID event declares 2 algorithms');
    err = invalidError(() =>
      parseEventLog(agileLog({ algorithms: SHA1_256 }, [{ ...post, count: 0xffffffff }])),
    );
    expect(err.message).toContain('digests.count: 4294967295');
    // A digest of an algorithm the header did not declare.
    const good = agileLog({ algorithms: SHA1_256 }, [post]);
    const bad = good.slice();
    new DataView(bad.buffer).setUint16(69 + 12 + 2 + 20, ALG.sha384, true);
    err = invalidError(() => parseEventLog(bad));
    expect(err.message).toContain('digests[1].hashAlg: 0x000c (sha384) is not declared');
    // The same algorithm twice.
    new DataView(bad.buffer).setUint16(69 + 12 + 2 + 20, ALG.sha1, true);
    expect(invalidError(() => parseEventLog(bad)).message).toContain(
      'digests[1].hashAlg: 0x0004 (sha1) appears twice',
    );
  });

  it('reads digests in any order, with the sizes the header declares', () => {
    const rec = agileRecord(
      [
        [ALG.sha256, 32],
        [ALG.sha1, 20],
      ],
      post,
    );
    const log = parseEventLog(
      concat(
        legacyRecord(0, 3, agileLog({ algorithms: SHA1_256 }, []).subarray(32), new Uint8Array(20)),
        rec,
      ),
    );
    expect(log.events[0]!.digests.get('sha1')).toHaveLength(20);
    expect(log.events[0]!.digests.get('sha256')).toHaveLength(32);
  });

  it('checks the Spec ID event', () => {
    const cases: Array<[Parameters<typeof agileLog>[0], string]> = [
      [
        { algorithms: [[ALG.sha256, 20]] },
        'digestSizes[0].digestSize: 20 is not the 32-byte size of sha256',
      ],
      [{ algorithms: [] }, 'numberOfAlgorithms: 0 is not between 1 and 16'],
      [{ algorithms: SHA1_256, numberOfAlgorithms: 3 }, 'needs 2 bytes'],
      [{ algorithms: SHA1_256, numberOfAlgorithms: 0x10000 }, 'numberOfAlgorithms: 65536'],
      [
        {
          algorithms: [
            [ALG.sha1, 20],
            [ALG.sha1, 20],
          ],
        },
        'digestSizes[1]: algorithm 0x0004 (sha1) is declared twice',
      ],
      [{ algorithms: [[0x0099, 0]] }, 'digestSize: 0 is not between 1 and 64'],
      [{ algorithms: [[0x0099, 65]] }, 'digestSize: 65 is not between 1 and 64'],
      [
        { algorithms: SHA1_256, specVersionMajor: 1, specVersionMinor: 2 },
        'specVersion: 1.2 is not 2.0',
      ],
      [{ algorithms: SHA1_256, uintnSize: 3 }, 'uintnSize: 3 is neither'],
      [{ algorithms: SHA1_256, vendorInfoSize: 4 }, 'vendorInfoSize: 4 but 0 bytes follow it'],
      [{ algorithms: SHA1_256, pcrIndex: 1 }, 'pcrIndex: 1 is not 0 for the Spec ID event'],
    ];
    for (const [spec, message] of cases) {
      const err = invalidError(() => parseEventLog(agileLog(spec, [post])));
      expect(err.message).toContain('record 0 at offset 0');
      expect(err.message).toContain(message);
    }
    const nonZero = agileLog({ algorithms: SHA1_256 }, [post]);
    nonZero[8] = 1;
    expect(invalidError(() => parseEventLog(nonZero)).message).toContain(
      'digest: is not zero for the Spec ID event',
    );
  });

  it('skips but records an algorithm it does not know (its declared size is read)', () => {
    const algorithms: ReadonlyArray<readonly [number, number]> = [
      [ALG.sha1, 20],
      [0x00b0, 40],
      [ALG.sha256, 32],
    ];
    const log = parseEventLog(
      agileLog({ algorithms }, [post, { pcr: 7, type: EV.SEPARATOR, data: '\0\0\0\0' }]),
    );
    expect(log.specId!.algorithms).toEqual([
      { algorithmId: ALG.sha1, digestSize: 20, bank: 'sha1' },
      { algorithmId: 0x00b0, digestSize: 40, bank: undefined },
      { algorithmId: ALG.sha256, digestSize: 32, bank: 'sha256' },
    ]);
    expect(log.banks).toEqual(['sha1', 'sha256']);
    expect([...log.events[1]!.digests.keys()]).toEqual(['sha1', 'sha256']);
    expect(Buffer.from(log.events[1]!.data)).toEqual(Buffer.alloc(4));
    expect([...replayEventLog(log).keys()]).toEqual(['sha1', 'sha256']);
  });

  it('treats a first EV_NO_ACTION that is not Spec ID Event03 as a legacy event', () => {
    const log = parseEventLog(
      legacyLog([{ pcr: 0, type: EV.NO_ACTION, data: 'Spec ID Event02\0rest' }, post]),
    );
    expect(log.format).toBe('sha1');
    expect(log.events).toHaveLength(2);
  });

  it('checks the StartupLocality event', () => {
    const loc = (l: number, pcr = 0) => ({ pcr, type: EV.NO_ACTION, data: startupLocality(l) });
    for (const l of [0, 3, 4]) {
      expect(
        parseEventLog(agileLog({ algorithms: SHA1_256 }, [loc(l), post])).startupLocality,
      ).toBe(l);
    }
    const cases: Array<[Parameters<typeof agileLog>[1], string]> = [
      [[loc(2)], 'StartupLocality: locality 2 is not 0, 3 or 4'],
      [[loc(3, 1)], 'StartupLocality: logged for PCR 1, not PCR 0'],
      [[loc(3), loc(3)], 'StartupLocality: logged more than once'],
      [[post, loc(3)], 'StartupLocality: logged after a measurement into PCR 0'],
      [
        [{ pcr: 0, type: EV.NO_ACTION, data: concat(startupLocality(3), Uint8Array.of(0)) }],
        'StartupLocality: event is 18 bytes, not 17',
      ],
    ];
    for (const [events, message] of cases) {
      expect(
        invalidError(() => parseEventLog(agileLog({ algorithms: SHA1_256 }, events))).message,
      ).toContain(message);
    }
    // A measurement into another PCR before it is fine.
    expect(
      parseEventLog(agileLog({ algorithms: SHA1_256 }, [{ ...post, pcr: 1 }, loc(4)]))
        .startupLocality,
    ).toBe(4);
  });

  it('refuses empty and oversized logs, and caps the record count', () => {
    expect(invalidError(() => parseEventLog(new Uint8Array(0))).message).toContain('log: is empty');
    expect(
      invalidError(() => parseEventLog(new Uint8Array(EVENT_LOG_LIMITS.maxBytes + 1))).message,
    ).toContain(`exceed the ${EVENT_LOG_LIMITS.maxBytes}-byte limit`);
    const five = legacyLog(Array.from({ length: 5 }, () => post));
    expect(parseEventLog(five, { maxEvents: 5 }).events).toHaveLength(5);
    expect(invalidError(() => parseEventLog(five, { maxEvents: 4 })).message).toBe(
      'event log record 4 at offset 144: log: has more than 4 records',
    );
  });

  it('throws TypeError for bad arguments', () => {
    expect(() => parseEventLog('x' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => parseEventLog(new Uint8Array(40), { maxEvents: 0 })).toThrow(TypeError);
    expect(() => parseEventLog(new Uint8Array(40), { maxEvents: 1.5 })).toThrow(TypeError);
  });

  it('carries the record, offset and field in details', () => {
    try {
      parseEventLog(legacyLog([post, { pcr: 30, type: EV.POST_CODE, data: '' }]));
      expect.unreachable();
    } catch (e) {
      expect(isSpireEdgeError(e, 'ERR_TPM_EVENT_LOG_INVALID')).toBe(true);
      expect((e as { details: unknown }).details).toEqual({
        record: 1,
        offset: 36,
        field: 'pcrIndex',
      });
    }
  });
});

/** Runs the parser (and the replay of what parses); anything but the coded error fails. */
function parsesOrInvalid(bytes: Uint8Array): EventLog | undefined {
  try {
    const log = parseEventLog(bytes);
    replayEventLog(log);
    return log;
  } catch (e) {
    if (isSpireEdgeError(e, 'ERR_TPM_EVENT_LOG_INVALID')) return undefined;
    throw e;
  }
}

describe('parseEventLog: properties', () => {
  const seeds = [
    'tpm2tools__event-sd-boot-fedora37.bin',
    'goattest__sb_cert_eventlog',
    'tpm2tools__event-uefi-sha1-log.bin',
    'goattest__short_no_action_eventlog',
  ].map(load);
  // Offsets of every length/count field of every record of the seeds (little-endian u32s).
  const fields = seeds.map((bytes) => {
    const log = parseEventLog(bytes);
    const at: number[] = [];
    if (log.format === 'crypto-agile') at.push(28, 32 + 24); // Spec ID eventSize, numberOfAlgorithms
    for (const e of log.events) {
      at.push(e.data.byteOffset - 4); // eventSize
      if (log.format === 'crypto-agile') at.push(e.offset + 8); // digests.count
    }
    return at;
  });

  it('random bytes give a log or ERR_TPM_EVENT_LOG_INVALID', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (b) => {
        parsesOrInvalid(b);
      }),
      { numRuns: 300 },
    );
  });

  it('byte flips and truncations of corpus logs give a log or ERR_TPM_EVENT_LOG_INVALID', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: seeds.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
        fc.option(fc.nat()),
        (s, flips, cut) => {
          let b = seeds[s]!.slice();
          for (const [at, mask] of flips) b[at % b.length]! ^= mask;
          if (cut !== null) b = b.subarray(0, cut % (b.length + 1));
          parsesOrInvalid(b);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('length-field mutations give a log or ERR_TPM_EVENT_LOG_INVALID', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: seeds.length - 1 }),
        fc.nat(),
        fc.oneof(
          fc.constantFrom(0, 1, 2, 3, 16, 0x7fffffff, 0x80000000, 0xffffffff),
          fc.nat({ max: 0xffffffff }),
          fc.integer({ min: 0, max: 64 }),
        ),
        (s, which, value) => {
          const b = seeds[s]!.slice();
          const at = fields[s]![which % fields[s]!.length]!;
          new DataView(b.buffer).setUint32(at, value >>> 0, true);
          const log = parsesOrInvalid(b);
          // A changed size that still parses moved the boundaries: never more records than bytes.
          if (log !== undefined) expect(log.events.length).toBeLessThanOrEqual(b.length / 12);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fails fast on 4 MiB hostile inputs', () => {
    const MiB4 = EVENT_LOG_LIMITS.maxBytes;
    const timings: Array<[string, number]> = [];
    const time = (name: string, f: () => void) => {
      const t0 = performance.now();
      f();
      timings.push([name, performance.now() - t0]);
    };
    // Random bytes.
    const random = new Uint8Array(randomBytes(MiB4));
    time('random', () => invalidError(() => parseEventLog(random)));
    // 4 MiB of valid minimal legacy records: stopped at the record cap.
    const rec = legacyRecord(0, EV.POST_CODE, '');
    const many = new Uint8Array(MiB4);
    for (let i = 0; i + rec.length <= many.length; i += rec.length) many.set(rec, i);
    time('records', () =>
      expect(invalidError(() => parseEventLog(many)).message).toContain(
        `has more than ${EVENT_LOG_LIMITS.maxEvents} records`,
      ),
    );
    // A crypto-agile header claiming one huge event.
    const huge = new Uint8Array(MiB4);
    const head = agileLog({ algorithms: SHA1_256 }, [post0()]);
    huge.set(head);
    new DataView(huge.buffer).setUint32(head.length - 4 - 4, 0xfffffff0, true);
    time('huge event', () => invalidError(() => parseEventLog(huge)));
    // One byte over the limit.
    time('oversized', () => invalidError(() => parseEventLog(new Uint8Array(MiB4 + 1))));
    for (const [name, ms] of timings) expect(ms, `${name}: ${ms.toFixed(1)} ms`).toBeLessThan(1000);
  });
});

function post0() {
  return { pcr: 0, type: EV.POST_CODE, data: 'post' };
}
