// The agent's HTTP routes: /healthz (the process is alive), /readyz (the runtime answers
// Version), /status (JSON for people and scripts) and /metrics (Prometheus).
//
// The listener has no authentication (kubelet probes and Prometheus scrape it from the pod
// network), so /status tells a caller from another address only what /readyz and /metrics tell
// anyone. The allowed roots and the ids of running tasks go to loopback callers only: from inside
// the agent's network namespace, which is where `kubectl port-forward` and `kubectl exec` arrive.
// The address is the TCP peer's; forwarding headers are not trusted.
import type { HttpRoute } from '../proto/common/http-server.js';
import { STOKER_VERSION } from '../proto/common/version.js';
import type { AgentMetrics } from './metrics.js';
import type { RuntimeProbe } from './server/runtime.js';
import type { TaskRegistry } from './server/tasks.js';

export interface HttpContext {
  readonly nodeName: string;
  readonly criEndpoint: string;
  readonly allowedRoots: readonly string[];
  readonly probe: RuntimeProbe;
  readonly tasks: TaskRegistry;
  readonly metrics: AgentMetrics;
  /** True once shutdown began: /readyz answers 503 from then on. */
  readonly stopping: () => boolean;
}

/** The agent's routes, for listenHttp (proto/common/http-server.ts). */
export function agentRoutes(ctx: HttpContext): Record<string, HttpRoute> {
  return {
    '/healthz': () => ({ body: { status: 'ok' } }),

    '/readyz': async () => {
      if (ctx.stopping()) {
        return { status: 503, body: { ready: false, reason: `the agent on node "${ctx.nodeName}" is shutting down` } };
      }
      const state = await ctx.probe.check();
      if (!state.ready) return { status: 503, body: { ready: false, criEndpoint: ctx.criEndpoint, reason: state.reason } };
      return { body: { ready: true, criEndpoint: ctx.criEndpoint, runtimeName: state.runtimeName, runtimeVersion: state.runtimeVersion } };
    },

    '/status': (req) => {
      const state = ctx.probe.state;
      if (!isLoopback(req.socket.remoteAddress)) {
        return {
          body: {
            nodeName: ctx.nodeName,
            agentVersion: STOKER_VERSION,
            runtimeReady: state.ready,
            tasksInFlight: ctx.tasks.inFlight,
            detail: 'allowed roots and tasks are shown to loopback callers only (kubectl port-forward)',
          },
        };
      }
      return {
        body: {
          nodeName: ctx.nodeName,
          agentVersion: STOKER_VERSION,
          criEndpoint: ctx.criEndpoint,
          runtimeReady: state.ready,
          runtimeName: state.runtimeName,
          runtimeVersion: state.runtimeVersion,
          runtimeReason: state.reason,
          allowedRoots: ctx.allowedRoots,
          tasksInFlight: ctx.tasks.inFlight,
          tasks: ctx.tasks.summaries(),
        },
      };
    },

    '/metrics': async () => ({ body: await ctx.metrics.registry.metrics(), contentType: ctx.metrics.registry.contentType }),
  };
}

/** True for an IPv4 loopback address (127.0.0.0/8, also IPv4-mapped) or ::1. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4) || address === '::1';
}
