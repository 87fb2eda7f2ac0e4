/**
 * SPIFFE IDs and trust domains, exactly as the SPIFFE ID standard (SPIFFE-ID.md §2) defines
 * them: `spiffe://<trust domain><path>`, a lower-case trust domain of `[a-z0-9.-_]`, path
 * segments of `[a-zA-Z0-9.-_]`, no empty, `.` or `..` segments, no trailing slash, and no
 * query, fragment, port, user info or percent-encoding.
 *
 * Errors: `ERR_SPIFFE_ID_INVALID` (an ID), `ERR_TRUST_DOMAIN_INVALID` (a trust domain).
 */
import { SpireEdgeError } from '../common/errors.js';

const SCHEME = 'spiffe://';
/** The longest SPIFFE ID accepted, in bytes (the standard's minimum to support). */
export const MAX_SPIFFE_ID_LENGTH = 2048;
/** The longest trust domain name accepted (SPIFFE-ID.md §2.1). */
export const MAX_TRUST_DOMAIN_LENGTH = 255;

// Character classes as lookup tables: faster than regexes on the hot path and exact.
const TD_CHARS = new Uint8Array(128);
const PATH_CHARS = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyz0123456789.-_') TD_CHARS[c.charCodeAt(0)] = 1;
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_') {
  PATH_CHARS[c.charCodeAt(0)] = 1;
}

function idError(message: string, input: string): SpireEdgeError {
  return new SpireEdgeError('ERR_SPIFFE_ID_INVALID', message, {
    details: { input: preview(input) },
  });
}

function tdError(message: string, input: string): SpireEdgeError {
  return new SpireEdgeError('ERR_TRUST_DOMAIN_INVALID', message, {
    details: { input: preview(input) },
  });
}

function preview(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Returns a description of what is wrong with a trust domain name, or undefined when valid. */
function trustDomainProblem(name: string): string | undefined {
  if (name.length === 0) return 'trust domain is missing';
  if (name.length > MAX_TRUST_DOMAIN_LENGTH) {
    return `trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} bytes`;
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TD_CHARS[c] !== 1) {
      if (c === 0x3a) return 'trust domain cannot contain a port';
      if (c === 0x40) return 'trust domain cannot contain user info';
      if (c === 0x25) return 'trust domain cannot contain percent-encoded characters';
      return 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores';
    }
  }
  return undefined;
}

/** Returns a description of what is wrong with a path, or undefined when valid. */
function pathProblem(path: string): string | undefined {
  if (path.length === 0) return undefined;
  if (path.charCodeAt(0) !== 0x2f) return 'path must have a leading slash';
  let segStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : 0x2f;
    if (c === 0x2f) {
      const len = i - segStart;
      if (len === 0) {
        return i === path.length
          ? 'path cannot have a trailing slash'
          : 'path cannot contain empty segments';
      }
      if (
        len <= 2 &&
        path.charCodeAt(segStart) === 0x2e &&
        (len === 1 || path.charCodeAt(segStart + 1) === 0x2e)
      ) {
        return 'path cannot contain dot segments';
      }
      segStart = i + 1;
      continue;
    }
    if (c >= 128 || PATH_CHARS[c] !== 1) {
      if (c === 0x3f) return 'path cannot contain a query';
      if (c === 0x23) return 'path cannot contain a fragment';
      if (c === 0x25) return 'path cannot contain percent-encoded characters';
      return 'path segment characters are limited to letters, numbers, dots, dashes, and underscores';
    }
  }
  return undefined;
}

/** A SPIFFE trust domain (the authority part of a SPIFFE ID). Immutable. */
export class TrustDomain {
  /** The trust domain name, e.g. `example.org`. */
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
  }

  /** @internal Builds from a name that has already been validated. */
  static unchecked(name: string): TrustDomain {
    return new TrustDomain(name);
  }

  /** `spiffe://<name>`: the trust domain's own ID string (used as bundle map keys). */
  idString(): string {
    return SCHEME + this.name;
  }

  /** The SPIFFE ID of the trust domain itself (empty path). */
  id(): SpiffeId {
    return SpiffeId.unchecked(this, '');
  }

  equals(other: TrustDomain): boolean {
    return this.name === other.name;
  }

  toString(): string {
    return this.name;
  }

  toJSON(): string {
    return this.name;
  }
}

/** A SPIFFE ID. Immutable; compare with {@link SpiffeId.equals}. */
export class SpiffeId {
  readonly trustDomain: TrustDomain;
  /** The path, with a leading slash, or empty for the trust domain's own ID. */
  readonly path: string;

  private constructor(trustDomain: TrustDomain, path: string) {
    this.trustDomain = trustDomain;
    this.path = path;
  }

  /** @internal Builds from parts that have already been validated. */
  static unchecked(trustDomain: TrustDomain, path: string): SpiffeId {
    return new SpiffeId(trustDomain, path);
  }

  /** True when this ID belongs to `td`. */
  memberOf(td: TrustDomain | string): boolean {
    return this.trustDomain.name === (typeof td === 'string' ? parseTrustDomain(td).name : td.name);
  }

  /** The path segments (empty for a trust domain ID). */
  segments(): string[] {
    return this.path === '' ? [] : this.path.slice(1).split('/');
  }

  equals(other: SpiffeId): boolean {
    return this.trustDomain.name === other.trustDomain.name && this.path === other.path;
  }

  toString(): string {
    return SCHEME + this.trustDomain.name + this.path;
  }

  toJSON(): string {
    return this.toString();
  }
}

/**
 * Parses a trust domain name. Accepts a bare name (`example.org`) or a trust domain SPIFFE ID
 * (`spiffe://example.org`, no path), as go-spiffe does.
 *
 * @throws SpireEdgeError `ERR_TRUST_DOMAIN_INVALID`, naming the broken rule.
 */
export function parseTrustDomain(input: string): TrustDomain {
  if (typeof input !== 'string') throw new TypeError('trust domain must be a string');
  if (input.includes('://')) {
    let id: SpiffeId;
    try {
      id = parseSpiffeId(input);
    } catch (err) {
      throw tdError((err as Error).message, input);
    }
    if (id.path !== '') throw tdError('trust domain cannot have a path', input);
    return id.trustDomain;
  }
  const problem = trustDomainProblem(input);
  if (problem !== undefined) throw tdError(problem, input);
  return TrustDomain.unchecked(input);
}

/** Accepts a trust domain argument as a string or an already parsed {@link TrustDomain}. */
export function toTrustDomain(td: TrustDomain | string): TrustDomain {
  return typeof td === 'string' ? parseTrustDomain(td) : td;
}

/**
 * Parses a SPIFFE ID string.
 *
 * @throws SpireEdgeError `ERR_SPIFFE_ID_INVALID`, naming the broken rule.
 */
export function parseSpiffeId(input: string): SpiffeId {
  if (typeof input !== 'string') throw new TypeError('SPIFFE ID must be a string');
  if (input.length === 0) throw idError('SPIFFE ID cannot be empty', input);
  if (Buffer.byteLength(input, 'utf8') > MAX_SPIFFE_ID_LENGTH) {
    throw idError(`SPIFFE ID is longer than ${MAX_SPIFFE_ID_LENGTH} bytes`, input);
  }
  if (!input.startsWith(SCHEME)) throw idError('scheme is missing or invalid', input);
  const rest = input.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const tdName = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  const tdProblem = trustDomainProblem(tdName);
  if (tdProblem !== undefined) throw idError(tdProblem, input);
  const pProblem = pathProblem(path);
  if (pProblem !== undefined) throw idError(pProblem, input);
  return SpiffeId.unchecked(TrustDomain.unchecked(tdName), path);
}

/** Accepts a SPIFFE ID argument as a string or an already parsed {@link SpiffeId}. */
export function toSpiffeId(id: SpiffeId | string): SpiffeId {
  return typeof id === 'string' ? parseSpiffeId(id) : id;
}

/**
 * Builds a SPIFFE ID from a trust domain and a path (`/a/b`, validated).
 *
 * @throws SpireEdgeError `ERR_SPIFFE_ID_INVALID`
 */
export function spiffeIdFromPath(td: TrustDomain | string, path: string): SpiffeId {
  const t = toTrustDomain(td);
  const problem = pathProblem(path);
  if (problem !== undefined) throw idError(problem, path);
  const id = SpiffeId.unchecked(t, path);
  if (Buffer.byteLength(id.toString(), 'utf8') > MAX_SPIFFE_ID_LENGTH) {
    throw idError(`SPIFFE ID is longer than ${MAX_SPIFFE_ID_LENGTH} bytes`, id.toString());
  }
  return id;
}

/** Builds a SPIFFE ID from a trust domain and path segments (each validated). */
export function spiffeIdFromSegments(td: TrustDomain | string, ...segments: string[]): SpiffeId {
  for (const s of segments) {
    if (s.includes('/')) throw idError('path segment cannot contain a slash', s);
  }
  return spiffeIdFromPath(td, segments.map((s) => `/${s}`).join(''));
}

/** True when `input` is a valid SPIFFE ID. */
export function isValidSpiffeId(input: string): boolean {
  try {
    parseSpiffeId(input);
    return true;
  } catch {
    return false;
  }
}
