/**
 * Helpers shared by the `spire-server` commands (SPIRE's `cmd/spire-server/util` and the
 * small functions of its `entry` package): selector and SPIFFE ID parsing with SPIRE's error
 * texts, the pluralizer, and the failure type commands throw.
 */
import { create } from '@bufbuild/protobuf';
import { SpireEdgeError } from '../../common/errors.js';
import { types } from '../../protocol/index.js';
import { parseSpiffeId, parseTrustDomain } from '../../spiffe/id.js';

/** SPIRE's default server API socket. */
export const DEFAULT_SOCKET_PATH = '/tmp/spire-server/private/api.sock';

/**
 * A command failure: the adapter prints `Error: <message>` on stderr and exits 1. Messages are
 * SPIRE's texts (lower-case, as Go errors).
 */
export function cliFailure(message: string, cause?: unknown): SpireEdgeError {
  return new SpireEdgeError(
    'ERR_CLI_COMMAND_FAILED',
    message,
    cause === undefined ? {} : { cause },
  );
}

/**
 * SPIRE's `util.ParseSelector`: `type:value`, split at the first colon (the value may hold
 * more colons, e.g. `unix:uid:1000`).
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` (`selector "x" must be formatted as
 * type:value`).
 */
export function parseSelector(s: string): types.Selector {
  const i = s.indexOf(':');
  if (i < 0) throw cliFailure(`selector "${s}" must be formatted as type:value`);
  return create(types.SelectorSchema, { type: s.slice(0, i), value: s.slice(i + 1) });
}

/**
 * A SPIFFE ID string as the API's `SPIFFEID` message, validated as go-spiffe's
 * `spiffeid.FromString` does (same rule texts).
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` naming the broken rule.
 */
export function idStringToProto(id: string): types.SPIFFEID {
  if (id === '') throw cliFailure('cannot be empty');
  try {
    const parsed = parseSpiffeId(id);
    return create(types.SPIFFEIDSchema, {
      trustDomain: parsed.trustDomain.name,
      path: parsed.path,
    });
  } catch (err) {
    throw cliFailure((err as Error).message, err);
  }
}

/**
 * A trust domain name from a name or a SPIFFE ID (go-spiffe `TrustDomainFromString`: text
 * holding `:/` is parsed as an ID and its trust domain is taken).
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` naming the broken rule.
 */
export function trustDomainName(idOrName: string): string {
  if (idOrName === '') throw cliFailure('trust domain is missing');
  try {
    if (idOrName.includes(':/')) return parseSpiffeId(idOrName).trustDomain.name;
    return parseTrustDomain(idOrName).name;
  } catch (err) {
    throw cliFailure((err as Error).message, err);
  }
}

/** `spiffe://<td><path>`, or '' for a missing ID (SPIRE's `protoToIDString`). */
export function protoToIdString(id: types.SPIFFEID | undefined): string {
  return id === undefined ? '' : `spiffe://${id.trustDomain}${id.path}`;
}

/** SPIRE's `util.Pluralizer`: `msg` + singular when `n` is 1, else + plural. */
export function pluralize(msg: string, singular: string, plural: string, n: number): string {
  return msg + (n === 1 ? singular : plural);
}

/**
 * SPIRE's `util.CheckedCast[int32]` of a flag value: the number, or a failure with Go's
 * `overflow converting int(<v>) to int32` text.
 */
export function toInt32(v: bigint, from = 'int'): number {
  if (v < -2147483648n || v > 2147483647n) {
    throw cliFailure(`overflow converting ${from}(${String(v)}) to int32`);
  }
  return Number(v);
}
