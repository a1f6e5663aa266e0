// The agent's HTTP side (fastify): /healthz (the process is alive), /readyz (the runtime answers
// Version), /status (JSON for people and scripts) and /metrics (Prometheus).
//
// The listener has no authentication (kubelet probes and Prometheus scrape it from the pod
// network), so /status tells a caller from another address only what /readyz and /metrics tell
// anyone. The allowed roots and the ids of running tasks go to loopback callers only: from inside
// the agent's network namespace, which is where `kubectl port-forward` and `kubectl exec` arrive.
// The address is the TCP peer's; forwarding headers are not trusted.
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyInstance, type RawServerDefault } from 'fastify';
import type { Logger } from '../proto/common/log.js';
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
  readonly log: Logger;
  /** True once shutdown began: /readyz answers 503 from then on. */
  readonly stopping: () => boolean;
}

export function createHttpServer(ctx: HttpContext): FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger> {
  const app = Fastify({
    loggerInstance: ctx.log,
    // Probes and scrapes come every few seconds: no log line per request.
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: true,
  });

  app.get('/healthz', (_req, reply) => reply.send({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    if (ctx.stopping()) {
      return reply.code(503).send({ ready: false, reason: `the agent on node "${ctx.nodeName}" is shutting down` });
    }
    const state = await ctx.probe.check();
    if (!state.ready) return reply.code(503).send({ ready: false, criEndpoint: ctx.criEndpoint, reason: state.reason });
    return { ready: true, criEndpoint: ctx.criEndpoint, runtimeName: state.runtimeName, runtimeVersion: state.runtimeVersion };
  });

  app.get('/status', (req, reply) => {
    const state = ctx.probe.state;
    if (!isLoopback(req.socket.remoteAddress)) {
      return reply.send({
        nodeName: ctx.nodeName,
        agentVersion: STOKER_VERSION,
        runtimeReady: state.ready,
        tasksInFlight: ctx.tasks.inFlight,
        detail: 'allowed roots and tasks are shown to loopback callers only (kubectl port-forward)',
      });
    }
    return reply.send({
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
    });
  });

  app.get('/metrics', async (_req, reply) => {
    const body = await ctx.metrics.registry.metrics();
    return reply.type(ctx.metrics.registry.contentType).send(body);
  });

  return app;
}

/** True for an IPv4 loopback address (127.0.0.0/8, also IPv4-mapped) or ::1. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4) || address === '::1';
}
