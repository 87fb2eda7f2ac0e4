/**
 * The tpm wire format (round trips, bounds, versions), property tests of its decoders and of
 * the attestor on untrusted bytes (only coded errors escape), and the `NodeAttestor "tpm"`
 * plugin_data of the server and agent configurations.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../../src/agent/config.js';
import { ManualClock } from '../../../../src/common/clock.js';
import { cryptoRandom } from '../../../../src/common/random.js';
import { createTpmAttestor } from '../../../../src/server/attestation/tpm.js';
import {
  decodeTpmChallenge,
  decodeTpmPayload,
  decodeTpmResponse,
  encodeTpmChallenge,
  encodeTpmPayload,
  encodeTpmResponse,
  TPM_MAX_EVENT_LOG,
  TPM_MAX_RESPONSE,
} from '../../../../src/server/attestation/tpm-wire.js';
import { loadServerConfig } from '../../../../src/server/config.js';

const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);
const enc = new TextEncoder();

const payload = {
  ekCert: bytes(900),
  ekPublic: bytes(314, 2),
  akPublic: bytes(90, 3),
  pcrs: [{ bank: 'sha256' as const, indices: [0, 1, 7] }],
};
const challenge = {
  idObject: bytes(70),
  encryptedSecret: bytes(258),
  nonce: bytes(32, 9),
  pcrs: [{ bank: 'sha256' as const, indices: [0, 7] }],
};
const response = {
  secret: bytes(32, 4),
  quotes: [{ quoted: bytes(145), signature: bytes(72), pcrs: new Map([[7, bytes(32, 5)]]) }],
};

function wireCode(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? `uncoded ${(err as Error).name}`;
  }
}

describe('tpm wire format v1', () => {
  it('round-trips payload, challenge and response', () => {
    expect(decodeTpmPayload(encodeTpmPayload(payload))).toEqual(payload);
    const { ekCert: _, ...noCert } = payload;
    expect(decodeTpmPayload(encodeTpmPayload(noCert))).toEqual(noCert);
    expect(decodeTpmChallenge(encodeTpmChallenge(challenge))).toEqual(challenge);
    expect(decodeTpmResponse(encodeTpmResponse(response))).toEqual(response);
    const withLog = { ...response, eventLog: bytes(50_000, 6) };
    expect(decodeTpmResponse(encodeTpmResponse(withLog))).toEqual(withLog);
  });

  it('bounds the event log: at most TPM_MAX_EVENT_LOG bytes, standard base64', () => {
    const big = { ...response, eventLog: bytes(TPM_MAX_EVENT_LOG + 1) };
    expect(() => decodeTpmResponse(encodeTpmResponse(big))).toThrow(
      /event_log (is longer than|must be 1 to) 1048576 bytes/,
    );
    const max = { ...response, eventLog: bytes(TPM_MAX_EVENT_LOG) };
    expect(decodeTpmResponse(encodeTpmResponse(max)).eventLog).toHaveLength(TPM_MAX_EVENT_LOG);
    const o = JSON.parse(new TextDecoder().decode(encodeTpmResponse(response)));
    const bad = enc.encode(JSON.stringify({ ...o, event_log: 'not base64!' }));
    expect(wireCode(() => decodeTpmResponse(bad))).toBe('ERR_TPM_WIRE_INVALID');
  });

  it('refuses other versions, bad selections, wrong nonce sizes and oversized messages', () => {
    const bad = [
      () => decodeTpmPayload(enc.encode('{"version":2}')),
      () =>
        decodeTpmPayload(
          enc.encode(
            JSON.stringify({
              version: 1,
              ek_public: 'AA==',
              ak_public: 'AA==',
              pcrs: [{ bank: 'md5', indices: [0] }],
            }),
          ),
        ),
      () =>
        decodeTpmPayload(
          enc.encode(
            JSON.stringify({
              version: 1,
              ek_public: 'AA==',
              ak_public: 'AA==',
              pcrs: [{ bank: 'sha256', indices: [3, 1] }],
            }),
          ),
        ),
      () => decodeTpmChallenge(encodeTpmChallenge({ ...challenge, nonce: bytes(31) })),
      () => decodeTpmResponse(new Uint8Array(TPM_MAX_RESPONSE + 1).fill(0x20)),
      () =>
        decodeTpmResponse(
          enc.encode(
            '{"version":1,"secret":"AA==","quotes":[{"quoted":"AA==","signature":"AA==","pcrs":{"24":"AA=="}}]}',
          ),
        ),
      () => decodeTpmResponse(enc.encode('{"version":1,"secret":"A","quotes":[]}')),
    ];
    for (const f of bad) expect(wireCode(f)).toBe('ERR_TPM_WIRE_INVALID');
  });

  it('decoders throw only ERR_TPM_WIRE_INVALID on mutated and random input', () => {
    const seeds = [
      encodeTpmPayload(payload),
      encodeTpmChallenge(challenge),
      encodeTpmResponse(response),
    ];
    const decoders = [decodeTpmPayload, decodeTpmChallenge, decodeTpmResponse];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.oneof(
          fc.uint8Array({ maxLength: 512 }),
          fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([s, at, v]) => {
            const b = new Uint8Array(seeds[s % 3]!);
            b[at % b.length] = v;
            return b;
          }),
          fc.tuple(fc.nat(), fc.nat()).map(([s, cut]) => {
            const b = seeds[s % 3]!;
            return b.subarray(0, cut % b.length);
          }),
        ),
        (which, input) => {
          for (const d of [decoders[which]!]) {
            const code = wireCode(() => d(input));
            if (code !== undefined && code !== 'ERR_TPM_WIRE_INVALID') return false;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the attestor answers untrusted payloads only with coded attestation errors', async () => {
    const attestor = createTpmAttestor({
      trustDomain: 'example.org',
      clock: new ManualClock(),
      random: cryptoRandom,
      requireEkCert: false,
      isEnrolled: async () => true,
    });
    const seed = encodeTpmPayload(payload);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 256 }),
          fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([at, v]) => {
            const b = new Uint8Array(seed);
            b[at % b.length] = v;
            return b;
          }),
        ),
        async (input) => {
          try {
            await attestor.attest(input, async () => new Uint8Array(0), {});
            return false;
          } catch (err) {
            const code = (err as { code?: string }).code;
            return (
              code === 'ERR_ATTESTATION_INVALID_ARGUMENT' ||
              code === 'ERR_ATTESTATION_PERMISSION_DENIED'
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

const SERVER = (pluginData: string) => `server {
  trust_domain = "example.org"
  data_dir = "/tmp/x"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
    }
  }
  KeyManager "memory" {}
  NodeAttestor "tpm" {
    plugin_data {
${pluginData}
    }
  }
}
`;

describe('NodeAttestor "tpm" configuration', () => {
  it('server: defaults, and the rules that name the key', () => {
    const c = loadServerConfig({ text: SERVER('ek_ca_path = "/etc/ek-ca.pem"') });
    const tpm = c.plugins.nodeAttestors.find((p) => p.name === 'tpm')!;
    expect(tpm.data).toMatchObject({
      ek_ca_path: '/etc/ek-ca.pem',
      require_ek_cert: true,
      require_enrollment: false,
      pcr_banks: ['sha256'],
      pcr_indices: ['0', '1', '2', '3', '4', '5', '6', '7'],
      allow_sha1: false,
    });
    const custom = loadServerConfig({
      text: SERVER('require_ek_cert = false\npcr_indices = [0, 7, 14]'),
    });
    expect(custom.plugins.nodeAttestors[0]!.data).toMatchObject({
      require_ek_cert: false,
      pcr_indices: ['0', '7', '14'],
    });
    for (const [data, message] of [
      ['', /ek_ca_path is required/],
      ['ek_ca_path = "/x"\npcr_indices = [24]', /pcr_indices\[0\] must be a PCR index/],
      ['ek_ca_path = "/x"\npcr_banks = ["sha1"]', /sha1 needs allow_sha1/],
      ['ek_ca_path = "/x"\nreattest_interval = "1h"', /reattest_interval/],
      ['ek_ca_path = "/x"\nek_ca_pth = "/y"', /ek_ca_pth/],
    ] as const) {
      expect(() => loadServerConfig({ text: SERVER(data) })).toThrow(message);
    }
  });

  it('agent: tcti and ek_algorithm defaults, unknown algorithms refused', () => {
    const text = (data: string) => `agent {
  trust_domain = "example.org"
  data_dir = "/var/lib/agent"
  server_address = "spire.example.org"
  trust_bundle_path = "/etc/bundle.pem"
}
plugins {
  NodeAttestor "tpm" {
    plugin_data {
${data}
    }
  }
  KeyManager "memory" {}
  WorkloadAttestor "unix" {}
}
`;
    const c = loadAgentConfig({ text: text('') });
    expect(c.plugins.nodeAttestor.data).toMatchObject({
      tcti: 'device:/dev/tpmrm0',
      ek_algorithm: 'rsa',
    });
    const s = loadAgentConfig({
      text: text(
        'tcti = "swtpm:host=127.0.0.1,port=2321"\nek_algorithm = "ecc-p384"\npcr_indices = [10]',
      ),
    });
    expect(s.plugins.nodeAttestor.data).toMatchObject({
      tcti: 'swtpm:host=127.0.0.1,port=2321',
      ek_algorithm: 'ecc-p384',
      pcr_indices: ['10'],
    });
    expect(() => loadAgentConfig({ text: text('ek_algorithm = "ecc-p521"') })).toThrow(
      /ek_algorithm/,
    );
  });
});
