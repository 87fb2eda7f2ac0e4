/**
 * What the `spire-server agent` commands share, as SPIRE has it: the filter flags of `list`
 * and `count` (`-selector`, `-matchSelectorsOn` (default superset), `-attestationType`,
 * `-banned` / `-canReattest` (`true`, `false`, anything else: no filter), `-expiresBefore`
 * (`2006-01-02 15:04:05 -0700 -07`)) and the agent layout (`SPIFFE ID         : …`, expiry
 * in the local time zone as Go's `time.Time.String()`).
 */
import { create } from '@bufbuild/protobuf';
import type { Flag, FlagSet } from '../../../common/cli/flag-set.js';
import { goQuote } from '../../../common/cli/go-quote.js';
import { formatGoTime, localZone } from '../../../common/cli/go-time.js';
import { types } from '../../../protocol/index.js';
import {
  cliFailure,
  idStringToProto,
  parseSelector,
  protoToIdString,
  trustDomainName,
} from '../util.js';

/** SPIRE's three-state filter flag: true, false, or (any other value) no filter. */
function triStateFlag(fs: FlagSet, name: string, usage: string): Flag<boolean | undefined> {
  let v: boolean | undefined;
  return fs.define(
    name,
    usage,
    {
      set(raw) {
        v = raw === 'true' ? true : raw === 'false' ? false : undefined;
      },
      text: () => '',
      zeroText: '',
      typeName: 'value',
    },
    () => v,
  );
}

/** The filter flags of `agent list` and `agent count`. */
export function defineAgentFilterFlags(fs: FlagSet) {
  return {
    selector: fs.strings(
      'selector',
      'A colon-delimited type:value selector. Can be used more than once',
    ),
    attestationType: fs.string(
      'attestationType',
      '',
      'Filter by attestation type, like join_token or x509pop.',
    ),
    canReattest: triStateFlag(
      fs,
      'canReattest',
      "Filter based on string received, 'true': agents that can reattest, 'false': agents that can't reattest, other value will return all.",
    ),
    banned: triStateFlag(
      fs,
      'banned',
      "Filter based on string received, 'true': banned agents, 'false': not banned agents, other value will return all.",
    ),
    expiresBefore: fs.string(
      'expiresBefore',
      '',
      'Filter by expiration time (format: "2006-01-02 15:04:05 -0700 -07")',
    ),
    matchSelectorsOn: fs.string(
      'matchSelectorsOn',
      'superset',
      'The match mode used when filtering by selectors. Options: exact, any, superset and subset',
    ),
  };
}

/** The flags {@link defineAgentFilterFlags} returns. */
export type AgentFilterFlags = ReturnType<typeof defineAgentFilterFlags>;

const EXPIRES_LAYOUT = '2006-01-02 15:04:05 -0700 -07';
const EXPIRES_FORMAT =
  /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d+)? [+-]\d{4} [+-]\d{2}$/;

/** Checks a `-expiresBefore` value as Go's `time.Parse` with SPIRE's layout would. */
function checkExpiresBefore(value: string): void {
  const m = EXPIRES_FORMAT.exec(value);
  const ok =
    m !== null &&
    (() => {
      const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [
        number,
        number,
        number,
        number,
        number,
        number,
      ];
      const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
      return mo >= 1 && mo <= 12 && d >= 1 && d <= days && h < 24 && mi < 60 && s < 60;
    })();
  if (!ok) {
    throw cliFailure(
      `date is not valid: parsing time ${goQuote(value)} as ${goQuote(EXPIRES_LAYOUT)}: cannot parse ${goQuote(value)} as ${goQuote(EXPIRES_LAYOUT)}`,
    );
  }
}

/** The API filter shared by ListAgents and CountAgents. */
export interface AgentFilter {
  byAttestationType: string;
  bySelectorMatch?: types.SelectorMatch;
  byBanned?: boolean;
  byCanReattest?: boolean;
  byExpiresBefore: string;
}

const MATCH: Readonly<Record<string, types.SelectorMatch_MatchBehavior>> = {
  exact: types.SelectorMatch_MatchBehavior.MATCH_EXACT,
  any: types.SelectorMatch_MatchBehavior.MATCH_ANY,
  superset: types.SelectorMatch_MatchBehavior.MATCH_SUPERSET,
  subset: types.SelectorMatch_MatchBehavior.MATCH_SUBSET,
};

/**
 * The filter SPIRE builds from the flags.
 *
 * @throws SpireEdgeError `ERR_CLI_COMMAND_FAILED` with SPIRE's texts.
 */
export function buildAgentFilter(f: AgentFilterFlags): AgentFilter {
  const filter: AgentFilter = { byAttestationType: f.attestationType.value, byExpiresBefore: '' };
  if (f.selector.value.length > 0) {
    const match = MATCH[f.matchSelectorsOn.value];
    if (match === undefined) throw cliFailure('unsupported match behavior');
    const selectors = f.selector.value.map((s) => {
      try {
        return parseSelector(s);
      } catch (err) {
        throw cliFailure(`error parsing selector ${goQuote(s)}: ${(err as Error).message}`);
      }
    });
    filter.bySelectorMatch = create(types.SelectorMatchSchema, { selectors, match });
  }
  if (f.expiresBefore.value !== '') {
    checkExpiresBefore(f.expiresBefore.value);
    filter.byExpiresBefore = f.expiresBefore.value;
  }
  if (f.canReattest.value !== undefined) filter.byCanReattest = f.canReattest.value;
  if (f.banned.value !== undefined) filter.byBanned = f.banned.value;
  return filter;
}

function line(label: string, value: string): string {
  return `${label.padEnd(18)}: ${value}\n`;
}

/** SPIRE's `printAgents` for one agent, ending with a blank line. */
export function formatAgent(agent: types.Agent): string {
  // SPIRE's idutil.IDFromProto: the trust domain, then the whole ID, must be valid.
  trustDomainName(agent.id?.trustDomain ?? '');
  const id = protoToIdString(agent.id);
  idStringToProto(id);
  let out = line('SPIFFE ID', id);
  out += line('Attestation type', agent.attestationType);
  out += line(
    'Expiration time',
    formatGoTime(agent.x509svidExpiresAt, localZone(agent.x509svidExpiresAt)),
  );
  out += agent.banned ? line('Banned', 'true') : line('Serial number', agent.x509svidSerialNumber);
  out += line('Can re-attest', String(agent.canReattest));
  if (agent.agentVersion !== '') out += line('Agent version', agent.agentVersion);
  return `${out}\n`;
}

/** The `-spiffeID` flag of show/evict/ban as the API message, validated. */
export function agentIdArg(spiffeID: string): types.SPIFFEID {
  if (spiffeID === '') throw cliFailure('a SPIFFE ID is required');
  return idStringToProto(spiffeID);
}
