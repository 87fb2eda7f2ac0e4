/**
 * `spire.api.server.entry.v1.Entry`, the methods agents call (SPIRE's
 * `pkg/server/api/entry/v1/service.go`), answered from the authorized-entries cache:
 *
 * - **GetAuthorizedEntries**: every entry the calling agent is authorized for, masked by
 *   `output_mask`.
 * - **SyncAuthorizedEntries** (bidi stream): the agent sends one request with the output
 *   mask (no IDs; `revision_number` may not be masked). If the agent has at most
 *   `entryPageSize` (500) entries, the server sends them all in one response and ends.
 *   Otherwise it pages `entry_revisions {id, revision_number, created_at}` with `more` set
 *   on all but the last page; the agent compares them with what it holds and sends
 *   requests with the `ids` it needs in full; for each request the server pages back those
 *   entries (unknown IDs skipped), `more` on all but the last page, until the agent closes
 *   its side.
 */
import { create } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import { SpireEdgeError } from '../../../common/errors.js';
import { entryv1, type types } from '../../../protocol/index.js';
import type { RegistrationEntry } from '../../datastore/types.js';
import { agentCaller } from './caller.js';
import { entryToProto, maskEntry } from './convert.js';
import type { AgentApiDeps } from './deps.js';

function invalidArgument(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_AGENT_API_INVALID_ARGUMENT', message);
}

/** The agent-facing methods of the Entry service. */
export function createEntryService(deps: AgentApiDeps): Partial<ServiceImpl<typeof entryv1.Entry>> {
  const pageSize = deps.entryPageSize;
  return {
    async getAuthorizedEntries(req, ctx) {
      const caller = agentCaller(ctx);
      const entries = deps.entries.getAuthorizedEntries(caller.id);
      return { entries: entries.map((e) => maskEntry(entryToProto(e), req.outputMask)) };
    },

    async *syncAuthorizedEntries(requests, ctx) {
      const caller = agentCaller(ctx);
      const entries = deps.entries.getAuthorizedEntries(caller.id);
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done === true) return;
      const req = first.value;
      if (req.ids.length > 0) {
        throw invalidArgument('specifying IDs on initial request is not supported');
      }
      const mask: types.EntryMask | undefined = req.outputMask;
      if (mask !== undefined && !mask.revisionNumber) {
        throw invalidArgument('revision number cannot be masked');
      }
      if (entries.length <= pageSize) {
        yield create(entryv1.SyncAuthorizedEntriesResponseSchema, {
          entries: entries.map((e) => maskEntry(entryToProto(e), mask)),
        });
        return;
      }
      for (let i = 0; i < entries.length; i += pageSize) {
        const page = entries.slice(i, i + pageSize);
        yield create(entryv1.SyncAuthorizedEntriesResponseSchema, {
          entryRevisions: page.map((e) => ({
            id: e.id,
            revisionNumber: BigInt(e.revisionNumber),
            createdAt: BigInt(e.createdAt),
          })),
          more: i + pageSize < entries.length,
        });
      }
      const byId = new Map<string, RegistrationEntry>(entries.map((e) => [e.id, e]));
      for (;;) {
        const r = await it.next();
        if (r.done === true) return;
        const wanted = [...new Set(r.value.ids)].sort();
        let batch: types.Entry[] = [];
        for (const id of wanted) {
          const e = byId.get(id);
          if (e === undefined) continue;
          if (batch.length === pageSize) {
            yield create(entryv1.SyncAuthorizedEntriesResponseSchema, {
              entries: batch,
              more: true,
            });
            batch = [];
          }
          batch.push(maskEntry(entryToProto(e), mask));
        }
        yield create(entryv1.SyncAuthorizedEntriesResponseSchema, { entries: batch, more: false });
      }
    },
  };
}
