import { randomBytes, randomInt } from 'node:crypto';

/**
 * Randomness injected into stateful services (nonces, serial numbers, jitter), so tests can
 * make it deterministic. Secrets always come from the system CSPRNG in production.
 */
export interface RandomSource {
  /** `n` random bytes. */
  bytes(n: number): Uint8Array;
  /** A uniformly random float in [0, 1). */
  float(): number;
  /** A uniformly random integer in [min, max). */
  int(min: number, max: number): number;
}

/** The system CSPRNG. */
export const cryptoRandom: RandomSource = {
  bytes: (n) => new Uint8Array(randomBytes(n)),
  float: () => Buffer.from(randomBytes(6)).readUIntBE(0, 6) / 2 ** 48,
  int: (min, max) => randomInt(min, max),
};

/**
 * A deterministic generator (xorshift128+ seeded from `seed`) for tests only: never use it
 * for secrets.
 */
export function seededRandom(seed: number): RandomSource {
  let s0 = BigInt.asUintN(64, BigInt(seed) * 0x9e3779b97f4a7c15n + 1n);
  let s1 = BigInt.asUintN(64, s0 * 0xbf58476d1ce4e5b9n + 7n);
  const next = (): bigint => {
    let x = s0;
    const y = s1;
    s0 = y;
    x = BigInt.asUintN(64, x ^ (x << 23n));
    s1 = BigInt.asUintN(64, x ^ y ^ (x >> 17n) ^ (y >> 26n));
    return BigInt.asUintN(64, s1 + y);
  };
  const float = (): number => Number(next() >> 11n) / 2 ** 53;
  return {
    bytes(n) {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(next() & 0xffn);
      return out;
    },
    float,
    int: (min, max) => min + Math.floor(float() * (max - min)),
  };
}

/**
 * `base` scaled by a uniform factor in [1 - fraction, 1 + fraction] (SPIRE rotates SVIDs at
 * half-life ± 10 %).
 */
export function jitter(
  base: number,
  fraction: number,
  random: RandomSource = cryptoRandom,
): number {
  return base * (1 - fraction + 2 * fraction * random.float());
}
