/**
 * When the agent replaces an SVID: at half of its lifetime (SPIRE's rule for the agent SVID,
 * workload X509-SVIDs and JWT-SVIDs), workload X509-SVIDs with ±10 % jitter so that SVIDs
 * minted together are not all rotated in the same second.
 *
 * The lifetime is counted from when the SVID was issued, not from its NotBefore: servers
 * backdate NotBefore by {@link NOT_BEFORE_BACKDATE_MS} for clock skew (SPIRE's
 * NotBeforeCushion), which would otherwise put the half-life of a short-lived SVID in the past
 * at the moment it arrives. The issue time is estimated as NotBefore plus that cushion (at most
 * half the certificate's validity).
 */
import { cryptoRandom, jitter, type RandomSource } from '../../common/random.js';

/** How far SPIRE-compatible servers backdate NotBefore (10 s). */
export const NOT_BEFORE_BACKDATE_MS = 10_000;

/** The jitter of workload X509-SVID rotation: ±10 % of the half-life. */
export const ROTATION_JITTER = 0.1;

/** The estimated issue time of a certificate valid from `notBeforeMs` to `notAfterMs`. */
export function issuedAtEstimate(notBeforeMs: number, notAfterMs: number): number {
  const validity = Math.max(0, notAfterMs - notBeforeMs);
  return notBeforeMs + Math.min(NOT_BEFORE_BACKDATE_MS, validity / 2);
}

/** Half-way between the estimated issue time and `notAfterMs` (no jitter): the agent SVID's renewal time. */
export function halfLifeAt(notBeforeMs: number, notAfterMs: number): number {
  const start = issuedAtEstimate(notBeforeMs, notAfterMs);
  return Math.floor(start + (notAfterMs - start) / 2);
}

/**
 * The rotation time of a workload X509-SVID: the half-life scaled by a random factor in
 * [0.9, 1.1], so always before the SVID expires.
 */
export function rotationAt(
  notBeforeMs: number,
  notAfterMs: number,
  random: RandomSource = cryptoRandom,
): number {
  const start = issuedAtEstimate(notBeforeMs, notAfterMs);
  return Math.floor(start + jitter((notAfterMs - start) / 2, ROTATION_JITTER, random));
}

/** Half-way between a JWT-SVID's `iat` and `exp` (when the cache asks for a fresh one). */
export function jwtRenewAt(issuedAtMs: number, expiresAtMs: number): number {
  return Math.floor(issuedAtMs + Math.max(0, expiresAtMs - issuedAtMs) / 2);
}
