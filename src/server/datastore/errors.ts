/**
 * Error codes of the server datastore. Every rejection is a {@link SpireEdgeError} carrying
 * one of these codes; driver errors are chained as `cause`.
 *
 * - `ERR_DATASTORE_INVALID_ARGUMENT`: an input broke a rule (the message names the field).
 * - `ERR_DATASTORE_NOT_FOUND`: the record to update, delete or consume does not exist.
 * - `ERR_DATASTORE_ALREADY_EXISTS`: the ID is taken, or a similar entry exists.
 * - `ERR_DATASTORE_CONFLICT`: the stored state forbids the change (restricted bundle delete,
 *   revision or sequence-number mismatch, revoking an untainted authority).
 * - `ERR_DATASTORE_SCHEMA_UNSUPPORTED`: the database's schema is newer than this code knows.
 * - `ERR_DATASTORE_INTERNAL`: the database failed (I/O, connection, corruption).
 */
import { SpireEdgeError, type SpireEdgeErrorOptions } from '../../common/errors.js';

/** The codes this module rejects with. */
export type DataStoreErrorCode =
  | 'ERR_DATASTORE_INVALID_ARGUMENT'
  | 'ERR_DATASTORE_NOT_FOUND'
  | 'ERR_DATASTORE_ALREADY_EXISTS'
  | 'ERR_DATASTORE_CONFLICT'
  | 'ERR_DATASTORE_SCHEMA_UNSUPPORTED'
  | 'ERR_DATASTORE_INTERNAL';

/** Builds a datastore error. */
export function dsError(
  code: DataStoreErrorCode,
  message: string,
  options: SpireEdgeErrorOptions = {},
): SpireEdgeError<DataStoreErrorCode> {
  return new SpireEdgeError(code, message, options);
}

/** Shorthand for `ERR_DATASTORE_INVALID_ARGUMENT`. */
export function invalidArgument(message: string, cause?: unknown): SpireEdgeError {
  return dsError('ERR_DATASTORE_INVALID_ARGUMENT', message, cause === undefined ? {} : { cause });
}
