// One unary gRPC call as a promise, with its own deadline (or none) and an AbortSignal that
// cancels the call on the wire.
import * as grpc from '@grpc/grpc-js';

/** Starts the call: `(md, opts, cb) => client.someMethod(request, md, opts, cb)`. */
export type UnaryInvoker<Res> = (
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: grpc.requestCallback<Res>,
) => grpc.ClientUnaryCall;

export interface CallOptions {
  /** Milliseconds until the call is abandoned with DEADLINE_EXCEEDED; undefined for none. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  metadata?: grpc.Metadata;
}

/** A CANCELLED gRPC status, for a call the signal aborted before it started. */
function cancelledError(): grpc.ServiceError {
  return Object.assign(new Error('1 CANCELLED: call cancelled by the caller'), {
    code: grpc.status.CANCELLED,
    details: 'call cancelled by the caller',
    metadata: new grpc.Metadata(),
  });
}

export function unary<Res>(invoke: UnaryInvoker<Res>, opts: CallOptions = {}): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(cancelledError());
      return;
    }
    const options: grpc.CallOptions = {};
    if (opts.timeoutMs !== undefined) options.deadline = new Date(Date.now() + opts.timeoutMs);
    const onAbort = (): void => call.cancel();
    const call = invoke(opts.metadata ?? new grpc.Metadata(), options, (err, response) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else if (response === undefined) reject(new Error('empty response from the container runtime'));
      else resolve(response);
    });
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
