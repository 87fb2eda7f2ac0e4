/**
 * Firmware policies: a named set of allowed PCR values. A device satisfies a policy when, for
 * every PCR the policy lists, the device's *quoted* value is one of the digests allowed for it.
 * The `tpm` NodeAttestor evaluates them after quote verification and emits the selector
 * `tpm:policy:<name>` for each policy satisfied (docs/tpm-enroll.md, firmware-policies/README.md).
 *
 * A policy file is JSON:
 * `{ "name": "gw-fw-2026.1", "description": "…", "pcrs": { "sha256": { "0": ["<hex>", …] } } }`.
 * Parsing is strict: unknown keys, unknown banks, indices outside 0..23, digests of the wrong
 * length for the bank, empty lists and duplicates are `ERR_POLICY_INVALID` naming the field.
 * Digests are compared in lower case.
 *
 * Pure: the caller reads the files (the attestor reads `firmware-policies/*.json`).
 */
import { SpireEdgeError } from '../common/errors.js';
import { tpmHashByBank } from '../tpm/hash.js';

/** Error codes of this module. */
export type PolicyErrorCode = 'ERR_POLICY_INVALID';

/** PCR banks a policy may name (the banks a TPM 2.0 quote can select here). */
export const POLICY_BANKS = ['sha1', 'sha256', 'sha384', 'sha512'] as const;

/** A PCR bank a policy may name. */
export type PolicyBank = (typeof POLICY_BANKS)[number];

/** The highest PCR index (PC Client platforms have 24 PCRs: 0..23). */
export const MAX_PCR_INDEX = 23;

/** Limits that keep a hostile policy file from costing much. */
export const POLICY_LIMITS = {
  /** Largest policy text in bytes (UTF-16 code units as read). */
  maxTextLength: 1024 * 1024,
  /** Longest policy name. */
  maxNameLength: 128,
  /** Most allowed digests for one PCR. */
  maxDigestsPerPcr: 256,
  /** Longest description. */
  maxDescriptionLength: 1024,
} as const;

/** Policy names: safe in a selector value and a file name. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const INDEX_RE = /^(?:0|[1-9][0-9]?)$/;
const HEX_RE = /^[0-9A-Fa-f]*$/;

/**
 * True when `name` is a valid policy name (1..128 characters of `A-Z a-z 0-9 . _ -`, starting
 * with a letter or digit): safe as the selector value `tpm:policy:<name>` and as a file name.
 */
export function isValidPolicyName(name: string): boolean {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    name.length <= POLICY_LIMITS.maxNameLength &&
    NAME_RE.test(name)
  );
}

/** A parsed, validated firmware policy. */
export interface FirmwarePolicy {
  /** The policy name, as in the selector `tpm:policy:<name>`. */
  readonly name: string;
  /** Free text for operators; not used in evaluation. */
  readonly description?: string;
  /** Where the policy came from (a file name), for messages. */
  readonly source: string;
  /**
   * Allowed values: bank → PCR index → the set of allowed lower-case hex digests. Every bank
   * has at least one index, every index at least one digest.
   */
  readonly pcrs: ReadonlyMap<PolicyBank, ReadonlyMap<number, ReadonlySet<string>>>;
}

/** PCR values of a device: bank → index → hex digest (any case). */
export type PcrValueMap = ReadonlyMap<string, ReadonlyMap<number, string>>;

function invalid(source: string, message: string, cause?: unknown): never {
  throw new SpireEdgeError<PolicyErrorCode>(
    'ERR_POLICY_INVALID',
    `firmware policy ${source}: ${message}`,
    cause === undefined ? { details: { source } } : { cause, details: { source } },
  );
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function ownKeys(o: Record<string, unknown>): string[] {
  return Object.keys(o);
}

function parseDigests(source: string, field: string, size: number, v: unknown): Set<string> {
  if (!Array.isArray(v)) invalid(source, `${field} must be an array of hex digests`);
  if (v.length === 0) invalid(source, `${field} must list at least one digest`);
  if (v.length > POLICY_LIMITS.maxDigestsPerPcr) {
    invalid(source, `${field} lists more than ${POLICY_LIMITS.maxDigestsPerPcr} digests`);
  }
  const out = new Set<string>();
  v.forEach((d: unknown, i: number) => {
    const f = `${field}[${i}]`;
    if (typeof d !== 'string') invalid(source, `${f} must be a hex string`);
    if (!HEX_RE.test(d)) invalid(source, `${f} is not hexadecimal`);
    if (d.length !== size * 2) {
      invalid(source, `${f} has ${d.length} hex digits, the bank's digest has ${size * 2}`);
    }
    const lower = d.toLowerCase();
    if (out.has(lower)) invalid(source, `${f} repeats digest ${lower}`);
    out.add(lower);
  });
  return out;
}

function parsePcrs(
  source: string,
  v: unknown,
): Map<PolicyBank, ReadonlyMap<number, ReadonlySet<string>>> {
  if (!isPlainObject(v)) invalid(source, 'pcrs must be an object of banks');
  const banks = new Map<PolicyBank, ReadonlyMap<number, ReadonlySet<string>>>();
  for (const bank of ownKeys(v)) {
    if (!(POLICY_BANKS as readonly string[]).includes(bank)) {
      invalid(source, `pcrs.${bank}: unknown bank (one of ${POLICY_BANKS.join(', ')})`);
    }
    const size = tpmHashByBank(bank)!.size;
    const byIndex = v[bank];
    if (!isPlainObject(byIndex)) invalid(source, `pcrs.${bank} must be an object of PCR indices`);
    const indices = new Map<number, ReadonlySet<string>>();
    for (const key of ownKeys(byIndex)) {
      if (!INDEX_RE.test(key) || Number(key) > MAX_PCR_INDEX) {
        invalid(source, `pcrs.${bank}.${key}: PCR index must be a decimal 0..${MAX_PCR_INDEX}`);
      }
      indices.set(Number(key), parseDigests(source, `pcrs.${bank}.${key}`, size, byIndex[key]));
    }
    if (indices.size === 0) invalid(source, `pcrs.${bank} must list at least one PCR`);
    banks.set(bank as PolicyBank, new Map([...indices].sort((a, b) => a[0] - b[0])));
  }
  if (banks.size === 0) invalid(source, 'pcrs must list at least one bank');
  return banks;
}

/**
 * Parses and validates one firmware policy from its JSON text. `source` names it in errors
 * (a file name). Trusts nothing in `text`.
 *
 * @throws SpireEdgeError `ERR_POLICY_INVALID` naming the field and the rule broken (the
 *   JSON syntax error as `cause`); never anything else for any string.
 * @throws TypeError when `text` or `source` is not a string.
 */
export function parseFirmwarePolicy(text: string, source: string): FirmwarePolicy {
  if (typeof text !== 'string') throw new TypeError('policy text must be a string');
  if (typeof source !== 'string') throw new TypeError('policy source must be a string');
  if (text.length > POLICY_LIMITS.maxTextLength) {
    invalid(source, `is larger than ${POLICY_LIMITS.maxTextLength} bytes`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    invalid(source, `is not valid JSON (${(err as Error).message})`, err);
  }
  return firmwarePolicyFromJson(doc, source);
}

/**
 * Validates an already-decoded policy document (see {@link parseFirmwarePolicy}).
 *
 * @throws SpireEdgeError `ERR_POLICY_INVALID`.
 */
export function firmwarePolicyFromJson(doc: unknown, source: string): FirmwarePolicy {
  if (!isPlainObject(doc)) invalid(source, 'must be a JSON object');
  for (const key of ownKeys(doc)) {
    if (key !== 'name' && key !== 'description' && key !== 'pcrs') {
      invalid(source, `${key}: unknown field (name, description, pcrs are allowed)`);
    }
  }
  const name = doc['name'];
  if (typeof name !== 'string') invalid(source, 'name must be a string');
  if (!isValidPolicyName(name)) {
    invalid(
      source,
      `name must be 1..${POLICY_LIMITS.maxNameLength} characters of A-Z a-z 0-9 . _ - starting with a letter or digit`,
    );
  }
  const description = doc['description'];
  if (description !== undefined) {
    if (typeof description !== 'string') invalid(source, 'description must be a string');
    if (description.length > POLICY_LIMITS.maxDescriptionLength) {
      invalid(source, `description is longer than ${POLICY_LIMITS.maxDescriptionLength}`);
    }
  }
  if (!('pcrs' in doc)) invalid(source, 'pcrs is required');
  const pcrs = parsePcrs(source, doc['pcrs']);
  return description === undefined ? { name, source, pcrs } : { name, description, source, pcrs };
}

/**
 * Parses a set of policy files (the caller reads them, e.g. every `*.json` in
 * `firmware-policies/`). `name` is the file name (used in errors), `text` its content.
 *
 * @throws SpireEdgeError `ERR_POLICY_INVALID` for the first invalid file, or when two files
 *   define the same policy name.
 */
export function loadFirmwarePolicies(
  files: ReadonlyArray<{ readonly name: string; readonly text: string }>,
): FirmwarePolicy[] {
  if (!Array.isArray(files)) throw new TypeError('files must be an array');
  const out: FirmwarePolicy[] = [];
  const seen = new Map<string, string>();
  for (const f of files) {
    const p = parseFirmwarePolicy(f.text, f.name);
    const other = seen.get(p.name);
    if (other !== undefined) {
      invalid(f.name, `name: policy ${p.name} is already defined by ${other}`);
    }
    seen.set(p.name, f.name);
    out.push(p);
  }
  return out;
}

/**
 * True when `pcrs` satisfies `policy`: every PCR the policy lists has a value in `pcrs` and
 * that value is one of the allowed digests. A PCR missing from `pcrs` fails the policy.
 *
 * Trusts `pcrs` to be the values of a *verified* quote (the caller verifies the quote and
 * passes only the PCRs of its signed selection).
 */
export function satisfiesPolicy(policy: FirmwarePolicy, pcrs: PcrValueMap): boolean {
  return policyMismatch(policy, pcrs) === undefined;
}

/**
 * Why `pcrs` does not satisfy `policy`, or undefined when it does: the first PCR (in bank,
 * then index order) that was not quoted or whose value is not allowed, as an operator-facing
 * sentence (`sha256 PCR 7 is 5f3c…, not one of the 2 digests the policy allows`). What
 * `spire-server agent show` prints for a policy a device lost. Same trust as
 * {@link satisfiesPolicy}.
 */
export function policyMismatch(policy: FirmwarePolicy, pcrs: PcrValueMap): string | undefined {
  for (const [bank, indices] of policy.pcrs) {
    const values = pcrs.get(bank);
    for (const [index, allowed] of indices) {
      const v = values?.get(index);
      if (typeof v !== 'string') return `${bank} PCR ${index} was not quoted`;
      const lower = v.toLowerCase();
      if (!allowed.has(lower)) {
        const n = allowed.size;
        return `${bank} PCR ${index} is ${lower}, not ${n === 1 ? 'the digest' : `one of the ${n} digests`} the policy allows`;
      }
    }
  }
  return undefined;
}

/**
 * The names of the policies `pcrs` satisfies, in the order given: each becomes the selector
 * `tpm:policy:<name>`. See {@link satisfiesPolicy} for what is trusted.
 */
export function evaluatePolicies(policies: readonly FirmwarePolicy[], pcrs: PcrValueMap): string[] {
  return policies.filter((p) => satisfiesPolicy(p, pcrs)).map((p) => p.name);
}

/**
 * The PCRs a set of policies reads, bank → ascending indices: what the attestor must have
 * quoted for every policy to be decidable.
 */
export function policyPcrSelection(policies: readonly FirmwarePolicy[]): Map<PolicyBank, number[]> {
  const acc = new Map<PolicyBank, Set<number>>();
  for (const p of policies) {
    for (const [bank, indices] of p.pcrs) {
      const s = acc.get(bank) ?? new Set<number>();
      for (const i of indices.keys()) s.add(i);
      acc.set(bank, s);
    }
  }
  return new Map([...acc].map(([b, s]) => [b, [...s].sort((x, y) => x - y)]));
}

/**
 * A policy as JSON text in the file format (the inverse of {@link parseFirmwarePolicy}):
 * what `tpm-enroll -writePolicy` writes from a device's current PCR values.
 */
export function formatFirmwarePolicy(policy: Omit<FirmwarePolicy, 'source'>): string {
  const pcrs: Record<string, Record<string, string[]>> = {};
  for (const [bank, indices] of policy.pcrs) {
    const o: Record<string, string[]> = {};
    for (const [i, allowed] of indices) o[String(i)] = [...allowed];
    pcrs[bank] = o;
  }
  const doc =
    policy.description === undefined
      ? { name: policy.name, pcrs }
      : { name: policy.name, description: policy.description, pcrs };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
