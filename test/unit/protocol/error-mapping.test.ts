import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { SpireEdgeError } from '../../../src/common/errors.js';
import {
  GRPC_ERROR_TABLE,
  grpcCodeFor,
  INTERNAL_ERROR_MESSAGE,
  statusOf,
  toConnectError,
} from '../../../src/common/grpc.js';

describe('error → gRPC status table', () => {
  it.each([
    ['ERR_SPIFFE_ID_INVALID', Code.InvalidArgument],
    ['ERR_REQUEST_INVALID_ARGUMENT', Code.InvalidArgument],
    ['ERR_ENTRY_NOT_FOUND', Code.NotFound],
    ['ERR_ENTRY_ALREADY_EXISTS', Code.AlreadyExists],
    ['ERR_WORKLOAD_PERMISSION_DENIED', Code.PermissionDenied],
    ['ERR_ADMIN_UNAUTHORIZED', Code.PermissionDenied],
    ['ERR_AGENT_UNAUTHENTICATED', Code.Unauthenticated],
    ['ERR_DATASTORE_UNAVAILABLE', Code.Unavailable],
    ['ERR_CA_FAILED_PRECONDITION', Code.FailedPrecondition],
    ['ERR_DATASTORE_CONFLICT', Code.FailedPrecondition],
    ['ERR_RATE_RESOURCE_EXHAUSTED', Code.ResourceExhausted],
    ['ERR_TPM_QUOTE_INVALID', Code.InvalidArgument],
    ['ERR_TPM_RC', Code.Internal],
    ['ERR_HSM_CKR', Code.Internal],
    ['ERR_INVALID_THING_X', Code.Internal],
    ['ERR_NOT_FOUNDX', Code.Internal],
  ])('%s → %s', (code, grpc) => {
    expect(grpcCodeFor(code)).toBe(grpc);
  });

  it('lists longer suffixes before the shorter ones they end with', () => {
    const suffixes = GRPC_ERROR_TABLE.map((r) => r.suffix);
    suffixes.forEach((s, i) => {
      for (const earlier of suffixes.slice(0, i)) expect(s.endsWith(earlier)).toBe(false);
    });
    expect(Object.isFrozen(GRPC_ERROR_TABLE)).toBe(true);
  });

  it('keeps a coded message, never the cause, stack or details', () => {
    const cause = new Error('pkcs11 pin 1234 rejected');
    const err = new SpireEdgeError('ERR_ENTRY_NOT_FOUND', 'entry "abc" not found', {
      cause,
      details: { pin: '1234' },
    });
    const ce = toConnectError(err);
    expect(ce.code).toBe(Code.NotFound);
    expect(ce.rawMessage).toBe('entry "abc" not found');
    expect(ce.details).toEqual([]);
    expect([...ce.metadata.keys()]).toEqual([]);
    expect(ce.rawMessage).not.toContain('1234');
    expect(ce.cause).toBe(err); // server-side only
  });

  it('turns anything else into Internal with a fixed message', () => {
    for (const thrown of [
      new Error('/etc/spire/key.pem: EACCES'),
      new TypeError('x is undefined'),
      'str',
      42,
      undefined,
    ]) {
      const ce = toConnectError(thrown);
      expect(ce.code).toBe(Code.Internal);
      expect(ce.rawMessage).toBe(INTERNAL_ERROR_MESSAGE);
    }
  });

  it('passes a ConnectError through unchanged', () => {
    const ce = new ConnectError('deadline', Code.DeadlineExceeded);
    expect(toConnectError(ce)).toBe(ce);
  });

  it('statusOf gives the spire.api.types.Status of a batch item', () => {
    expect(
      statusOf(new SpireEdgeError('ERR_ENTRY_ALREADY_EXISTS', 'similar entry already exists')),
    ).toEqual({
      code: 6,
      message: 'similar entry already exists',
    });
    expect(statusOf(new Error('boom'))).toEqual({ code: 13, message: 'internal error' });
  });
});
