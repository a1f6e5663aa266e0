// Per-call options for @kubernetes/client-node that let an AbortSignal cancel the HTTP request.
//
//   await core.listNode({}, abortable(AbortSignal.timeout(5000)));
//
// The client's generated APIs take middleware, not a signal; this middleware hands the signal to the
// request the client is about to send (its fetch honours it), so a call to an API server that
// accepts the connection but never answers (etcd down behind it) ends when the caller says so.
import { Observable, type ConfigurationOptions, type RequestContext, type ResponseContext } from '@kubernetes/client-node';

export function abortable(signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (request: RequestContext) => {
          request.setSignal(signal);
          return new Observable(Promise.resolve(request));
        },
        post: (response: ResponseContext) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}
