// The HTTP status of a failed Kubernetes API call, whichever client made it: @kubernetes/client-node
// puts it in `code` (ApiException), the agent's own Lease client and watch errors in `statusCode`.

/** The HTTP status carried by a Kubernetes client error, or undefined when it carries none. */
export function kubeErrorStatus(err: unknown): number | undefined {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; statusCode?: unknown };
    if (typeof e.code === 'number') return e.code;
    if (typeof e.statusCode === 'number') return e.statusCode;
  }
  return undefined;
}
