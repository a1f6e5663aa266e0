// The controller's Prometheus metrics: a registry of its own, `stoker_` prefix, units in names,
// low-cardinality labels only (a phase, an outcome; never a Warmup, node or image name).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type WarmupPhaseLabel = 'Pending' | 'Running' | 'Succeeded' | 'Failed';
export type NodeTaskOutcome = 'succeeded' | 'failed' | 'retried' | 'cancelled';

export interface ControllerMetrics {
  readonly registry: Registry;
  /** Warmups by phase, counted from the informer's cache at scrape time. */
  readonly warmupsByPhase: Gauge<'phase'>;
  /** Node tasks finished, by outcome. */
  readonly nodeTasks: Counter<'outcome'>;
  /** From dispatching a node task to its first answer from the agent. */
  readonly dispatchLatency: Histogram;
  /** Reconciles that threw (retried with backoff). */
  readonly reconcileErrors: Counter;
  readonly reconcileDuration: Histogram<'outcome'>;
  readonly statusWrites: Counter;
  readonly events: Counter<'type'>;
  readonly workqueueDepth: Gauge;
  readonly informerRestarts: Counter<'informer' | 'reason'>;
  readonly isLeader: Gauge;
  readonly liveAgents: Gauge;
  /** Each Warmup's phase, 1 for the phase it is in, read at scrape time. */
  readonly warmupPhase: Gauge<'warmup_namespace' | 'warmup' | 'phase'>;
  /** keepWarm Warmups: 1 while every target node is warm (condition Warm True), else 0. */
  readonly warmupWarm: Gauge<'warmup_namespace' | 'warmup'>;
}

/** One Warmup as the per-Warmup gauges see it. */
export interface WarmupSample {
  namespace: string;
  name: string;
  phase: WarmupPhaseLabel;
  /** keepWarm only: whether its Warm condition is True; undefined for a Warmup without keepWarm. */
  warm?: boolean;
}

export interface ControllerMetricsOptions {
  /** Node.js process metrics (memory, CPU, event loop). Default on. */
  processMetrics?: boolean;
  /** Reads the phase counts at scrape time. */
  phaseCounts?: () => Partial<Record<WarmupPhaseLabel, number>>;
  /** Reads the number of live agents at scrape time. */
  liveAgentCount?: () => number;
  /** Reads every Warmup at scrape time, for the per-Warmup gauges. A Warmup is one series per phase:
   * as few as there are Warmups, which are written by people, not per request. */
  warmups?: () => Iterable<WarmupSample>;
}

const PHASES: readonly WarmupPhaseLabel[] = ['Pending', 'Running', 'Succeeded', 'Failed'];

export function createControllerMetrics(opts: ControllerMetricsOptions = {}): ControllerMetrics {
  const registry = new Registry();
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'stoker_controller_' });
  const phaseCounts = opts.phaseCounts;
  const liveAgentCount = opts.liveAgentCount;
  const warmups = opts.warmups;
  return {
    registry,
    warmupsByPhase: new Gauge({
      name: 'stoker_warmups',
      help: 'Warmups by phase (Pending, Running, Succeeded, Failed).',
      labelNames: ['phase'] as const,
      registers: [registry],
      collect() {
        if (!phaseCounts) return;
        const counts = phaseCounts();
        for (const phase of PHASES) this.set({ phase }, counts[phase] ?? 0);
      },
    }),
    nodeTasks: new Counter({
      name: 'stoker_node_tasks_total',
      help: 'Node tasks finished, by outcome (succeeded, failed, retried, cancelled).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    dispatchLatency: new Histogram({
      name: 'stoker_dispatch_latency_seconds',
      help: 'Time from dispatching a node task to the agent accepting it.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: 'stoker_reconcile_errors_total',
      help: 'Reconciles that failed and were retried with backoff.',
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: 'stoker_reconcile_duration_seconds',
      help: 'Time one reconcile took, by outcome (success, requeue, error).',
      labelNames: ['outcome'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    statusWrites: new Counter({
      name: 'stoker_status_writes_total',
      help: 'Warmup status subresource writes.',
      registers: [registry],
    }),
    events: new Counter({
      name: 'stoker_events_total',
      help: 'Kubernetes Events written, by type (Normal, Warning).',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    workqueueDepth: new Gauge({
      name: 'stoker_workqueue_depth',
      help: 'Warmup keys waiting to be reconciled.',
      registers: [registry],
    }),
    informerRestarts: new Counter({
      name: 'stoker_informer_restarts_total',
      help: 'Watch restarts and relists, by informer and reason (error, closed, watchdog, gone, relist).',
      labelNames: ['informer', 'reason'] as const,
      registers: [registry],
    }),
    isLeader: new Gauge({
      name: 'stoker_controller_leader',
      help: '1 while this controller replica holds the leader Lease.',
      registers: [registry],
    }),
    liveAgents: new Gauge({
      name: 'stoker_live_agents',
      help: "Agents with a ready endpoint in the agents' EndpointSlices.",
      registers: [registry],
      collect() {
        if (liveAgentCount) this.set(liveAgentCount());
      },
    }),
    // Labelled warmup_namespace, not namespace: the scrape target's own namespace label would
    // otherwise rename it to exported_namespace.
    warmupPhase: new Gauge({
      name: 'stoker_warmup_phase',
      help: 'Each Warmup by phase: 1 for the phase it is in, 0 for the others.',
      labelNames: ['warmup_namespace', 'warmup', 'phase'] as const,
      registers: [registry],
      collect() {
        if (!warmups) return;
        this.reset();
        for (const w of warmups()) {
          for (const phase of PHASES) this.set({ warmup_namespace: w.namespace, warmup: w.name, phase }, w.phase === phase ? 1 : 0);
        }
      },
    }),
    warmupWarm: new Gauge({
      name: 'stoker_warmup_warm',
      help: 'keepWarm Warmups: 1 while every target node is warm (condition Warm is True), else 0.',
      labelNames: ['warmup_namespace', 'warmup'] as const,
      registers: [registry],
      collect() {
        if (!warmups) return;
        this.reset();
        for (const w of warmups()) {
          if (w.warm !== undefined) this.set({ warmup_namespace: w.namespace, warmup: w.name }, w.warm ? 1 : 0);
        }
      },
    }),
  };
}
