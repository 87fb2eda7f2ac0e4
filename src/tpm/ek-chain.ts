/**
 * EK certificate chain validation (RFC 5280 §6.1, as the TCG EK Credential Profile expects
 * vendors' hierarchies to be checked) against a configured set of manufacturer roots, with
 * the manufacturers' intermediate CAs as path-building helpers.
 *
 * Checks per chain: each certificate (anchor included) valid at `now`; each issuer's subject
 * matches the child's issuer (byte-equal, or equal after RFC 5280 §7.1 case and space
 * folding — some vendors re-encode names) and its key verifies the child's signature; every
 * issuer below the anchor is a CA (basicConstraints cA, keyCertSign when keyUsage is
 * present) whose pathLenConstraint holds; the EK certificate is not a CA and carries no
 * critical extension this code does not process. Not checked: revocation (vendors publish
 * no usable CRLs for EKs), name constraints (refused if critical), certificate policies,
 * extended key usage (Google's vTPM certificates have none).
 *
 * SHA-1 signatures: refused unless `allowSha1`. Older vendor hierarchies sign with
 * sha1WithRSAEncryption — the Infineon "IFX TPM EK Intermediate CA 01…21" and "IFX TPM EK
 * Root CA", and Nuvoton's "NTC TPM EK Root CA 01/02" in the corpus — so fleets with such
 * TPMs must turn it on.
 */
import type { KeyObject } from 'node:crypto';
import { readTlv } from '../common/der.js';
import { SpireEdgeError } from '../common/errors.js';
import { looksLikePem } from '../common/pem.js';
import {
  certificatePublicKey,
  formatName,
  isSelfIssued,
  nameAttributes,
  type ParsedCertificate,
  parseCertificates,
  verifyCertificateSignature,
} from '../spiffe/x509-cert.js';
import type { EkCertificate } from './ek-certificate.js';
import { tpmError } from './errors.js';
import { bytesEqual } from './internal/bytes.js';

/** Options of {@link EkCaPool.verify}. */
export interface VerifyEkChainOptions {
  /** The time at which every certificate must be valid. */
  readonly now: Date;
  /** Accept SHA-1 certificate signatures (see the module comment). Default false. */
  readonly allowSha1?: boolean;
  /** Maximum number of CA certificates above the EK certificate (default 6). */
  readonly maxDepth?: number;
}

/** Certificates for the pool: parsed, DER, or PEM text holding any number of certificates. */
export type CertificateInput = ParsedCertificate | Uint8Array | string;

const MAX_SIGNATURE_CHECKS = 64;

function fold(s: string): string {
  return s.trim().replace(/\s+/g, ' ').toLowerCase();
}

/** A comparison key for a Name DER following RFC 5280 §7.1 (case and space folding). */
function nameKey(der: Uint8Array): string {
  try {
    return nameAttributes(der)
      .map((a) => `${a.oid}=${fold(a.value)}`)
      .join('/');
  } catch {
    return `raw:${Buffer.from(der).toString('hex')}`;
  }
}

function toParsed(input: CertificateInput): ParsedCertificate[] {
  if (typeof input === 'string') return parseCertificates(input);
  if (input instanceof Uint8Array) {
    if (looksLikePem(input)) return parseCertificates(Buffer.from(input).toString('latin1'));
    // A DER file often ends with a newline: tolerate whitespace after the last certificate
    // (and only there: a certificate's own last bytes may well be 0x0a or 0x20).
    let end = 0;
    try {
      while (end < input.length && !input.subarray(end).every((b) => WHITESPACE.has(b))) {
        end = readTlv(input, end).end;
      }
    } catch {
      end = input.length; // let the certificate parser name the problem
    }
    return parseCertificates(input.subarray(0, end));
  }
  return [input];
}

const WHITESPACE = new Set([0x0a, 0x0d, 0x20, 0x09]);

/**
 * Critical extensions a chain may carry that this code handles: certificatePolicies — with
 * any policy acceptable and no explicit policy required (RFC 5280 §6.1 with
 * user-initial-policy-set = {anyPolicy}, initial-explicit-policy unset) the extension cannot
 * make a path fail, so it counts as processed (STMicroelectronics marks it critical).
 * policyConstraints and nameConstraints are not processed, so a critical one is refused.
 */
const PROCESSED_CRITICAL: ReadonlySet<string> = new Set(['2.5.29.32']);

function unprocessedCritical(c: ParsedCertificate): string | undefined {
  return c.extensions.unknownCritical.find((o) => !PROCESSED_CRITICAL.has(o));
}

function validAt(c: ParsedCertificate, now: Date): boolean {
  const t = now.getTime();
  return t >= c.notBefore.getTime() && t <= c.notAfter.getTime();
}

function describe(c: ParsedCertificate): string {
  const s = formatName(c.subjectDer);
  return s === '' ? '(empty subject)' : `"${s}"`;
}

interface Candidate {
  readonly cert: ParsedCertificate;
  readonly anchor: boolean;
}

/**
 * The trusted EK CAs: `roots` are trust anchors (paths end at any of them, self-signed or
 * not), `intermediates` only help build paths. Build it once from configuration and reuse
 * it: issuer keys are imported once and the signatures between pool certificates are
 * checked once.
 */
export class EkCaPool {
  readonly #bySubject = new Map<string, Candidate[]>();
  /** Signature check results between pool certificates, without and with SHA-1. */
  readonly #linkMemo = [
    new Map<ParsedCertificate, Map<ParsedCertificate, string | undefined>>(),
    new Map<ParsedCertificate, Map<ParsedCertificate, string | undefined>>(),
  ] as const;
  /** The trust anchors. */
  readonly roots: readonly ParsedCertificate[];
  /** The path-building helpers. */
  readonly intermediates: readonly ParsedCertificate[];

  private constructor(roots: ParsedCertificate[], intermediates: ParsedCertificate[]) {
    this.roots = roots;
    this.intermediates = intermediates;
    const add = (cert: ParsedCertificate, anchor: boolean): void => {
      const k = nameKey(cert.subjectDer);
      const list = this.#bySubject.get(k) ?? [];
      if (!list.some((c) => bytesEqual(c.cert.der, cert.der) && c.anchor === anchor)) {
        list.push({ cert, anchor });
      }
      this.#bySubject.set(k, list);
    };
    for (const r of roots) add(r, true);
    for (const i of intermediates) add(i, false);
  }

  /**
   * Builds a pool. Certificates that are not parseable X.509 fail the whole pool (a
   * configuration error should be loud).
   *
   * @throws SpireEdgeError `ERR_X509_INVALID` for an unparseable certificate.
   */
  static from(config: {
    readonly roots: readonly CertificateInput[];
    readonly intermediates?: readonly CertificateInput[];
  }): EkCaPool {
    const roots = config.roots.flatMap(toParsed);
    const intermediates = (config.intermediates ?? []).flatMap(toParsed);
    if (roots.length === 0) throw new TypeError('an EK CA pool needs at least one root');
    return new EkCaPool(roots, intermediates);
  }

  /**
   * Finds and checks a chain from the EK certificate to a root (see the module comment).
   * Returns the first chain that verifies, `[ekCert, …, root]`.
   *
   * @throws SpireEdgeError `ERR_TPM_EK_CERT_INVALID` with the reason found on the most
   *   promising path when no chain verifies.
   */
  verify(
    ek: EkCertificate | ParsedCertificate,
    options: VerifyEkChainOptions,
  ): ParsedCertificate[] {
    const leaf = 'cert' in ek ? ek.cert : ek;
    const { now } = options;
    if (!(now instanceof Date) || Number.isNaN(now.getTime()))
      throw new TypeError('now must be a valid Date');
    const maxDepth = options.maxDepth ?? 6;
    const allowSha1 = options.allowSha1 === true;
    const fail = (m: string): never => {
      throw tpmError('ERR_TPM_EK_CERT_INVALID', m);
    };
    if (!validAt(leaf, now)) {
      fail(
        `EK certificate is not valid at ${now.toISOString()} (valid ${leaf.notBefore.toISOString()} to ${leaf.notAfter.toISOString()})`,
      );
    }
    const leafCritical = unprocessedCritical(leaf);
    if (leafCritical !== undefined) {
      fail(`EK certificate has unprocessed critical extension ${leafCritical}`);
    }
    if (leaf.extensions.basicConstraints?.ca === true) fail('EK certificate is a CA certificate');
    return this.#build(leaf, now, allowSha1, maxDepth, 'EK certificate chain');
  }

  /**
   * Checks that a CA certificate (typically one of the pool's intermediates) chains to a root
   * at `now`: a configuration diagnostic ("this vendor intermediate is expired / has no root
   * here"). The certificate must be a CA; the chain rules are those of {@link verify}.
   *
   * @throws SpireEdgeError `ERR_TPM_EK_CERT_INVALID` naming why it does not chain.
   */
  verifyCaCertificate(cert: ParsedCertificate, options: VerifyEkChainOptions): ParsedCertificate[] {
    const { now } = options;
    if (!(now instanceof Date) || Number.isNaN(now.getTime()))
      throw new TypeError('now must be a valid Date');
    const fail = (m: string): never => {
      throw tpmError('ERR_TPM_EK_CERT_INVALID', m);
    };
    if (!validAt(cert, now)) {
      fail(
        `CA certificate ${describe(cert)} is not valid at ${now.toISOString()} (valid ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()})`,
      );
    }
    if (this.roots.some((r) => bytesEqual(r.der, cert.der))) return [cert];
    const problem = caConstraintProblem(cert, 0) ?? unprocessedCriticalProblem(cert);
    if (problem !== undefined) fail(problem);
    return this.#build(
      cert,
      now,
      options.allowSha1 === true,
      options.maxDepth ?? 6,
      'CA certificate chain',
    );
  }

  #build(
    leaf: ParsedCertificate,
    now: Date,
    allowSha1: boolean,
    maxDepth: number,
    what: string,
  ): ParsedCertificate[] {
    const fail = (m: string): never => {
      throw tpmError('ERR_TPM_EK_CERT_INVALID', m);
    };
    if (this.roots.some((r) => bytesEqual(r.der, leaf.der))) return [leaf];

    let reason = `no issuer of ${describe(leaf)} (issuer "${formatName(leaf.issuerDer)}") among the configured EK roots and intermediates`;
    let bestDepth = -1;
    let checks = 0;
    const walk = (
      chain: ParsedCertificate[],
      pathLenUsed: number,
    ): ParsedCertificate[] | undefined => {
      const child = chain[chain.length - 1]!;
      const candidates = this.#issuersOf(child);
      for (const cand of candidates) {
        const c = cand.cert;
        if (chain.includes(c)) continue;
        const problem = this.#linkProblem(child, c, allowSha1, () => ++checks);
        const depth = chain.length;
        const note = (m: string): void => {
          if (depth >= bestDepth) {
            bestDepth = depth;
            reason = m;
          }
        };
        if (problem !== undefined) {
          note(problem);
          continue;
        }
        if (!validAt(c, now)) {
          note(
            `CA certificate ${describe(c)} is not valid at ${now.toISOString()} (valid ${c.notBefore.toISOString()} to ${c.notAfter.toISOString()})`,
          );
          continue;
        }
        if (cand.anchor) return [...chain, c];
        // Issuers below the anchor must be CAs allowed to sign certificates.
        const caProblem = caConstraintProblem(c, pathLenUsed);
        if (caProblem !== undefined) {
          note(caProblem);
          continue;
        }
        if (depth >= maxDepth) {
          note(`chain of ${describe(leaf)} is longer than ${maxDepth} CA certificates`);
          continue;
        }
        const critical = unprocessedCriticalProblem(c);
        if (critical !== undefined) {
          note(critical);
          continue;
        }
        const next = walk([...chain, c], isSelfIssued(c) ? pathLenUsed : pathLenUsed + 1);
        if (next !== undefined) return next;
      }
      return undefined;
    };
    const chain = walk([leaf], 0);
    if (chain === undefined) fail(`${what}: ${reason}`);
    return chain!;
  }

  #issuersOf(child: ParsedCertificate): Candidate[] {
    const list = this.#bySubject.get(nameKey(child.issuerDer)) ?? [];
    const aki = child.extensions.authorityKeyId;
    if (aki === undefined || list.length < 2) return list;
    // Try the issuer whose subjectKeyIdentifier matches first (it is only a hint).
    return [...list].sort((a, b) => {
      const am =
        a.cert.extensions.subjectKeyId !== undefined &&
        bytesEqual(a.cert.extensions.subjectKeyId, aki);
      const bm =
        b.cert.extensions.subjectKeyId !== undefined &&
        bytesEqual(b.cert.extensions.subjectKeyId, aki);
      return Number(bm) - Number(am);
    });
  }

  /** Why `issuer`'s key does not verify `child`'s signature, or undefined when it does. */
  #linkProblem(
    child: ParsedCertificate,
    issuer: ParsedCertificate,
    allowSha1: boolean,
    count: () => number,
  ): string | undefined {
    const memo = this.#linkMemo[allowSha1 ? 1 : 0];
    const known = memo.get(child);
    if (known?.has(issuer) === true) return known.get(issuer);
    if (count() > MAX_SIGNATURE_CHECKS) return 'too many candidate issuers (path building gave up)';
    let problem: string | undefined;
    let key: KeyObject | undefined;
    try {
      key = certificatePublicKey(issuer);
    } catch (err) {
      problem = `CA certificate ${describe(issuer)} has an unusable key: ${(err as Error).message}`;
    }
    if (key !== undefined) {
      try {
        if (!verifyCertificateSignature(child, key, { allowSha1 })) {
          problem = `signature of ${describe(child)} does not verify with the key of ${describe(issuer)}`;
        }
      } catch (err) {
        problem =
          err instanceof SpireEdgeError && /SHA-1/.test(err.message)
            ? `signature of ${describe(child)} by ${describe(issuer)} uses SHA-1 (allowSha1 is off)`
            : `signature of ${describe(child)} cannot be checked: ${(err as Error).message}`;
      }
    }
    // Memoize only links between pool certificates (the pool is immutable); EK certificates
    // are new on every attestation.
    if (this.#isPoolCert(child)) {
      const m = known ?? new Map<ParsedCertificate, string | undefined>();
      m.set(issuer, problem);
      memo.set(child, m);
    }
    return problem;
  }

  #isPoolCert(c: ParsedCertificate): boolean {
    return this.roots.includes(c) || this.intermediates.includes(c);
  }
}

function unprocessedCriticalProblem(c: ParsedCertificate): string | undefined {
  const o = unprocessedCritical(c);
  return o === undefined
    ? undefined
    : `CA certificate ${describe(c)} has unprocessed critical extension ${o}`;
}

function caConstraintProblem(c: ParsedCertificate, pathLenUsed: number): string | undefined {
  const bc = c.extensions.basicConstraints;
  if (bc?.ca !== true)
    return `CA certificate ${describe(c)} is not a CA (basicConstraints cA is not set)`;
  const ku = c.extensions.keyUsage;
  if (ku !== undefined && !ku.keyCertSign) {
    return `CA certificate ${describe(c)} keyUsage lacks keyCertSign`;
  }
  if (bc.pathLen !== undefined && pathLenUsed > bc.pathLen) {
    return `CA certificate ${describe(c)} pathLenConstraint ${bc.pathLen} is exceeded`;
  }
  return undefined;
}
