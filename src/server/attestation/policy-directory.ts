/**
 * The server's firmware policy directory (`NodeAttestor "tpm" { firmware_policies_path }`):
 * every `*.json` file in it is a firmware policy (firmware-policies/README.md). Read at start
 * (an invalid policy is a configuration error then), and again when the directory changes
 * (a file added, removed or rewritten: the directory's or a file's mtime, size or inode
 * moved) — checked at most once a second, on the next attestation. An invalid set found on
 * a re-read is logged and the previous set stays in force, so a half-copied file never
 * withdraws every policy from a fleet.
 *
 * Errors: `ERR_POLICY_INVALID` (a policy breaks a rule, or names a SHA-1 bank while
 * `allow_sha1` is off), `ERR_CONFIG_INVALID` (the directory cannot be read).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../../common/clock.js';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { type FirmwarePolicy, loadFirmwarePolicies } from '../../policy/firmware-policy.js';

/** How often, at most, the directory is checked for changes. */
export const POLICY_RECHECK_MS = 1000;

/** Options of {@link openPolicyDirectory}. */
export interface PolicyDirectoryOptions {
  readonly path: string;
  /** SHA-1 banks are refused in policies unless the attestor allows SHA-1. */
  readonly allowSha1: boolean;
  readonly clock: Clock;
  readonly log: Logger;
}

/** The policies in force. */
export interface PolicyDirectory {
  /** The current policies (re-read first if the directory changed). Never rejects. */
  current(): Promise<readonly FirmwarePolicy[]>;
}

async function fingerprint(path: string): Promise<{ stamp: string; files: string[] }> {
  let names: string[];
  let dirStat: Awaited<ReturnType<typeof stat>>;
  try {
    dirStat = await stat(path);
    names = (await readdir(path)).filter((n) => n.endsWith('.json')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { stamp: 'missing', files: [] };
    throw new SpireEdgeError(
      'ERR_CONFIG_INVALID',
      `firmware_policies_path ${path} cannot be read: ${describeError(err)}`,
      { cause: err },
    );
  }
  const parts = [`${dirStat.mtimeMs}`];
  for (const n of names) {
    try {
      const s = await stat(join(path, n));
      parts.push(`${n}:${s.ino}:${s.size}:${s.mtimeMs}`);
    } catch {
      parts.push(`${n}:gone`);
    }
  }
  return { stamp: parts.join('|'), files: names };
}

async function readPolicies(
  path: string,
  files: readonly string[],
  allowSha1: boolean,
): Promise<FirmwarePolicy[]> {
  const texts = await Promise.all(
    files.map(async (name) => ({ name, text: await readFile(join(path, name), 'utf8') })),
  );
  const policies = loadFirmwarePolicies(texts);
  if (!allowSha1) {
    for (const p of policies) {
      if (p.pcrs.has('sha1')) {
        throw new SpireEdgeError(
          'ERR_POLICY_INVALID',
          `firmware policy ${p.source}: pcrs.sha1: SHA-1 PCRs are not quoted unless allow_sha1 = true`,
        );
      }
    }
  }
  return policies;
}

/**
 * Reads the policy directory once (a missing directory means no policies) and returns the
 * source the `tpm` attestor asks per attestation.
 *
 * @throws SpireEdgeError `ERR_POLICY_INVALID` or `ERR_CONFIG_INVALID` at start.
 */
export async function openPolicyDirectory(
  options: PolicyDirectoryOptions,
): Promise<PolicyDirectory> {
  const { path, allowSha1, clock, log } = options;
  const first = await fingerprint(path);
  let stamp = first.stamp;
  let policies: readonly FirmwarePolicy[] = await readPolicies(path, first.files, allowSha1);
  let checkedAt = clock.nowMs();
  let pending: Promise<void> | undefined;
  log.info('firmware policies loaded', {
    path,
    policies: policies.map((p) => p.name).join(','),
  });

  const recheck = async (): Promise<void> => {
    try {
      const next = await fingerprint(path);
      if (next.stamp === stamp) return;
      // Remember the state even if it is invalid: it is reported once, not every second.
      stamp = next.stamp;
      policies = await readPolicies(path, next.files, allowSha1);
      log.info('firmware policies reloaded', {
        path,
        policies: policies.map((p) => p.name).join(','),
      });
    } catch (err) {
      log.error('firmware policies not reloaded: the previous set stays in force', {
        path,
        error: describeError(err),
      });
    }
  };

  return {
    async current() {
      const now = clock.nowMs();
      if (now - checkedAt >= POLICY_RECHECK_MS) {
        checkedAt = now;
        pending ??= recheck().finally(() => {
          pending = undefined;
        });
      }
      if (pending !== undefined) await pending;
      return policies;
    },
  };
}
