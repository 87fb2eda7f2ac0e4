/**
 * The admin methods of `spire.api.server.entry.v1.Entry`: CountEntries, ListEntries,
 * GetEntry, BatchCreateEntry, BatchUpdateEntry, BatchDeleteEntry — SPIRE's semantics
 * (pkg/server/api/entry/v1). GetAuthorizedEntries and SyncAuthorizedEntries are the agent
 * API's and are not implemented here (the transport answers Unimplemented).
 *
 * What it trusts: the caller is an admin (the admin socket's {@link adminAuthorizer} checks
 * it before any handler runs; a server that mounts these on another transport must do its
 * own check). Every request field is validated (src/server/api/convert.ts).
 *
 * Batch methods answer one `types.Status` per item and keep going after a failed item;
 * each item is written on its own (no all-or-nothing across items, as in SPIRE).
 */

import { create } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { isSpireEdgeError } from '../../../common/errors.js';
import { entryv1, type types } from '../../../protocol/index.js';
import type { ServerContext } from '../../context.js';
import type {
  EntryUpdate,
  NewRegistrationEntry,
  RegistrationEntry,
} from '../../datastore/types.js';
import {
  apiError,
  entryFromProto,
  entryIdFromProto,
  errorStatus,
  fromDataStoreError,
  okStatus,
  pageSizeFromProto,
  protoFromEntry,
} from '../convert.js';
import { entryFilterFromProto } from '../filters.js';
import { callerFields } from './authorize.js';

/** Entry IDs listed in one audit log line at most (the count of the rest follows). */
const MAX_LOGGED_IDS = 50;

/** The methods of the Entry service this module implements. */
export type EntryAdminService = Pick<
  ServiceImpl<typeof entryv1.Entry>,
  | 'countEntries'
  | 'listEntries'
  | 'getEntry'
  | 'batchCreateEntry'
  | 'batchUpdateEntry'
  | 'batchDeleteEntry'
>;

/**
 * Builds the Entry admin service over `context` (trust domain, datastore, logger).
 * Mount with `router.service(entryv1.Entry, createEntryAdminService(context))`.
 */
export function createEntryAdminService(context: ServerContext): EntryAdminService {
  const td = context.trustDomain;
  const ds = context.dataStore;
  const log = context.log.with({ subsystem_name: 'api', service: 'entry' });

  async function createOne(
    e: types.Entry,
    outputMask: types.EntryMask | undefined,
  ): Promise<entryv1.BatchCreateEntryResponse_Result> {
    let created: RegistrationEntry;
    let requestedId: string | undefined;
    try {
      const { id, fields } = entryFromProto(td, e);
      requestedId = id;
      const entry: NewRegistrationEntry = {
        ...(fields as Required<typeof fields>),
        ...(id === undefined ? {} : { id }),
      };
      created = await ds.createEntry(entry);
    } catch (err) {
      if (isSpireEdgeError(err, 'ERR_DATASTORE_ALREADY_EXISTS')) {
        // The datastore names the entry in the way: the requested ID itself (ID taken) or
        // a similar entry, which SPIRE returns with AlreadyExists.
        const existingId = err.details.existingEntryId;
        const similar = typeof existingId === 'string' && existingId !== requestedId;
        const existing = similar ? await ds.getEntry(existingId) : undefined;
        return create(entryv1.BatchCreateEntryResponse_ResultSchema, {
          status: errorStatus(
            apiError(
              'ERR_API_ALREADY_EXISTS',
              similar ? 'similar entry already exists' : 'entry ID already exists',
              err,
            ),
          ),
          ...(existing === undefined ? {} : { entry: protoFromEntry(existing, outputMask) }),
        });
      }
      return create(entryv1.BatchCreateEntryResponse_ResultSchema, {
        status: errorStatus(fromDataStoreError(err, 'create entry')),
      });
    }
    return create(entryv1.BatchCreateEntryResponse_ResultSchema, {
      status: okStatus(),
      entry: protoFromEntry(created, outputMask),
    });
  }

  async function updateOne(
    e: types.Entry,
    inputMask: types.EntryMask | undefined,
    outputMask: types.EntryMask | undefined,
  ): Promise<entryv1.BatchUpdateEntryResponse_Result> {
    try {
      const id = entryIdFromProto(e.id);
      const { fields, mask } = entryFromProto(td, e, inputMask);
      const update: EntryUpdate = { id, set: fields, mask };
      const updated = await ds.updateEntry(update);
      return create(entryv1.BatchUpdateEntryResponse_ResultSchema, {
        status: okStatus(),
        entry: protoFromEntry(updated, outputMask),
      });
    } catch (err) {
      return create(entryv1.BatchUpdateEntryResponse_ResultSchema, {
        status: errorStatus(fromDataStoreError(err, 'update entry', 'entry not found')),
      });
    }
  }

  async function deleteOne(id: string): Promise<entryv1.BatchDeleteEntryResponse_Result> {
    try {
      await ds.deleteEntry(entryIdFromProto(id, 'ids'));
      return create(entryv1.BatchDeleteEntryResponse_ResultSchema, { id, status: okStatus() });
    } catch (err) {
      return create(entryv1.BatchDeleteEntryResponse_ResultSchema, {
        id,
        status: errorStatus(fromDataStoreError(err, 'delete entry', 'entry not found')),
      });
    }
  }

  /** One log line per mutating call: method, caller, how many items succeeded and failed. */
  function logBatch(
    ctx: HandlerContext,
    method: string,
    results: ReadonlyArray<{ status?: types.Status | undefined; id?: string }>,
    ids: readonly string[],
  ): void {
    const failed = results.filter((r) => (r.status?.code ?? 0) !== 0).length;
    log.info('entries changed', {
      method,
      ...callerFields(ctx),
      ok: results.length - failed,
      failed,
      entry_ids: ids.slice(0, MAX_LOGGED_IDS).join(','),
      ...(ids.length > MAX_LOGGED_IDS ? { entry_ids_omitted: ids.length - MAX_LOGGED_IDS } : {}),
    });
  }

  return {
    async countEntries(req) {
      const filter = entryFilterFromProto(td, req.filter);
      try {
        const count = await ds.countEntries(filter);
        return { count };
      } catch (err) {
        throw fromDataStoreError(err, 'count entries');
      }
    },

    async listEntries(req) {
      const filter = entryFilterFromProto(td, req.filter);
      const pageSize = pageSizeFromProto(req.pageSize);
      let page: Awaited<ReturnType<typeof ds.listEntries>>;
      try {
        page = await ds.listEntries({
          ...filter,
          ...(pageSize === undefined ? {} : { pagination: { pageSize, pageToken: req.pageToken } }),
        });
      } catch (err) {
        if (isSpireEdgeError(err, 'ERR_DATASTORE_INVALID_ARGUMENT') && /token/.test(err.message)) {
          throw apiError('ERR_API_INVALID_ARGUMENT', `invalid page_token: ${err.message}`, err);
        }
        throw fromDataStoreError(err, 'list entries');
      }
      return {
        entries: page.items.map((e) => protoFromEntry(e, req.outputMask)),
        nextPageToken: page.nextPageToken ?? '',
      };
    },

    async getEntry(req) {
      const id = entryIdFromProto(req.id);
      let entry: RegistrationEntry | undefined;
      try {
        entry = await ds.getEntry(id);
      } catch (err) {
        throw fromDataStoreError(err, 'fetch entry');
      }
      if (entry === undefined) throw apiError('ERR_API_NOT_FOUND', 'entry not found');
      return protoFromEntry(entry, req.outputMask);
    },

    async batchCreateEntry(req, ctx) {
      const results: entryv1.BatchCreateEntryResponse_Result[] = [];
      for (const e of req.entries) results.push(await createOne(e, req.outputMask));
      logBatch(
        ctx,
        'BatchCreateEntry',
        results,
        results.flatMap((r) => (r.status?.code === 0 && r.entry ? [r.entry.id] : [])),
      );
      return { results };
    },

    async batchUpdateEntry(req, ctx) {
      const results: entryv1.BatchUpdateEntryResponse_Result[] = [];
      for (const e of req.entries) {
        results.push(await updateOne(e, req.inputMask, req.outputMask));
      }
      logBatch(
        ctx,
        'BatchUpdateEntry',
        results,
        results.flatMap((r) => (r.status?.code === 0 && r.entry ? [r.entry.id] : [])),
      );
      return { results };
    },

    async batchDeleteEntry(req, ctx) {
      const results: entryv1.BatchDeleteEntryResponse_Result[] = [];
      for (const id of req.ids) results.push(await deleteOne(id));
      logBatch(
        ctx,
        'BatchDeleteEntry',
        results,
        results.flatMap((r) => (r.status?.code === 0 ? [r.id] : [])),
      );
      return { results };
    },
  };
}
