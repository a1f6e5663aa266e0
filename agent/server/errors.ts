// Errors the agent's gRPC API answers with: a ServerError carries a gRPC status, a sentence that
// names the bad value and (where one fits) a Stoker ErrorCode. toStatus is the one place that turns
// any thrown value into what a caller sees: unknown exceptions become INTERNAL without their text
// (it may hold runtime or registry internals), aborts become CANCELLED.
import { Metadata, status } from '@grpc/grpc-js';
import type { StatusObject } from '@grpc/grpc-js';
import { ERROR_CODE_TRAILER, type StokerErrorCode } from '../../proto/errors.js';

export { ERROR_CODE_TRAILER };

export class ServerError extends Error {
  override readonly name = 'ServerError';
  constructor(
    readonly status: status,
    message: string,
    readonly errorCode?: StokerErrorCode,
  ) {
    super(message);
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR');
}

/** The status object a caller receives for a thrown value. */
export function toStatus(err: unknown): StatusObject {
  const metadata = new Metadata();
  if (err instanceof ServerError) {
    if (err.errorCode) metadata.set(ERROR_CODE_TRAILER, err.errorCode);
    return { code: err.status, details: err.message, metadata };
  }
  if (isAbort(err)) {
    metadata.set(ERROR_CODE_TRAILER, 'CANCELLED');
    return { code: status.CANCELLED, details: 'the call was cancelled', metadata };
  }
  metadata.set(ERROR_CODE_TRAILER, 'INTERNAL');
  return { code: status.INTERNAL, details: 'internal error in the Stoker agent (see its log)', metadata };
}

/** Whether a thrown value is one the agent did not expect (and should log as an error). */
export function isUnexpected(err: unknown): boolean {
  return !(err instanceof ServerError) && !isAbort(err);
}
