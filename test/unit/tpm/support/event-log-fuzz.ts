/**
 * Fuzz targets for the TCG event log code, appended to fuzz-targets.ts's list (so both
 * test/unit/tpm/fuzz.test.ts and bench/tpm-fuzz.ts run them): parse + replay + Secure Boot
 * extraction on corpus logs, and parse + comparison against the real signed quote of the GCE
 * COS 85 capture.
 */
import {
  checkEventLogAgainstPcrs,
  eventLogSummary,
  type PcrBank,
  parseEventLog,
  replayEventLog,
  secureBootState,
  verifyQuote,
} from '../../../../src/tpm/index.js';
import { readCorpus } from '../../../support/corpus.js';
import type { FuzzTarget } from './fuzz-targets.js';
import { GCE_COS_85_CAPTURES, loadAttestation } from './gotpmtools-attestation.js';

/** The event log targets; the GCE quotes are verified once, here. */
export function eventLogFuzzTargets(): FuzzTarget[] {
  const logs = [
    'goattest__short_no_action_eventlog',
    'tpm2tools__event-sd-boot-fedora37.bin',
    'tpm2tools__event-uefi-sha1-log.bin',
    'goattest__sb_cert_eventlog',
  ].map((f) => new Uint8Array(readCorpus('eventlogs', f)));

  const { file, nonce } = GCE_COS_85_CAPTURES[0];
  const gce = loadAttestation(file);
  const quoted = new Map<PcrBank, ReadonlyMap<number, Uint8Array>>();
  for (const q of gce.quotes) {
    const v = verifyQuote({
      akPublic: gce.akPub,
      quoted: q.quote,
      signature: q.rawSig,
      pcrs: new Map([[q.bank, q.pcrs]]),
      expectedNonce: nonce,
      allowSha1: true,
    });
    quoted.set(q.bank, v.pcrs.get(q.bank)!);
  }

  return [
    {
      name: 'event log: parse, replay, Secure Boot',
      seeds: logs,
      codes: ['ERR_TPM_EVENT_LOG_INVALID'],
      run: (b) => {
        const log = parseEventLog(b);
        const replayed = replayEventLog(log);
        // Fuzzing only: trusts the log's own replay to exercise the extraction.
        secureBootState(log, new Map([...replayed].map(([bank, m]) => [bank, [...m.keys()]])));
        return undefined;
      },
    },
    {
      name: 'event log vs GCE signed quote',
      seeds: [gce.eventLog],
      codes: ['ERR_TPM_EVENT_LOG_INVALID', 'ERR_TPM_EVENT_LOG_MISMATCH'],
      run: (b) => {
        const log = parseEventLog(b);
        const { verified } = checkEventLogAgainstPcrs(log, quoted);
        eventLogSummary(log, verified);
        return undefined;
      },
    },
  ];
}
