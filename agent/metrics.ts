// The agent's Prometheus metrics: a registry of its own (several agents may share one process),
// `stoker_` prefix, units in names, and only low-cardinality labels (never an image name or digest).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ImageResult, PathResult } from '../proto/agent.js';

export type PullOutcome = 'pulled' | 'present' | 'failed' | 'cancelled';

export interface AgentMetrics {
  readonly registry: Registry;
  /** Records one finished image item. */
  recordImage(result: ImageResult): void;
  /** Records one finished path item. */
  recordPath(result: PathResult): void;
  recordTask(succeeded: boolean): void;
  setRuntimeReady(ready: boolean): void;
}

export interface MetricsOptions {
  /** Reads the number of tasks running now, at scrape time. */
  tasksInFlight: () => number;
  /** Reads the number of distinct image pulls running now, at scrape time. */
  pullsInFlight?: () => number;
  /** Node.js process metrics (memory, CPU, event loop); off for agents sharing a process. */
  processMetrics?: boolean;
}

/** Pull durations range from a cached layer (sub-second) to a multi-GB model image (an hour). */
const PULL_BUCKETS = [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600];

export function createAgentMetrics(opts: MetricsOptions): AgentMetrics {
  const registry = new Registry();
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'stoker_' });

  const pulls = new Counter({
    name: 'stoker_image_pulls_total',
    help: 'Images handled by warm tasks, by outcome (pulled, present, failed, cancelled).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const pullFailures = new Counter({
    name: 'stoker_image_pull_failures_total',
    help: 'Failed image items by Stoker error code.',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const pullDuration = new Histogram({
    name: 'stoker_image_pull_duration_seconds',
    help: 'Time to pull one image that was not already present.',
    buckets: PULL_BUCKETS,
    registers: [registry],
  });
  const pulledBytes = new Counter({
    name: 'stoker_image_pulled_bytes_total',
    help: 'Size of the images pulled (as the runtime reports them).',
    registers: [registry],
  });
  const fileBytes = new Counter({
    name: 'stoker_file_bytes_read_total',
    help: 'Bytes read into the page cache by file warming.',
    registers: [registry],
  });
  const files = new Counter({
    name: 'stoker_files_read_total',
    help: 'Files read into the page cache by file warming.',
    registers: [registry],
  });
  const paths = new Counter({
    name: 'stoker_paths_warmed_total',
    help: 'Paths handled by warm tasks, by outcome (done, failed, cancelled).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const pathDuration = new Histogram({
    name: 'stoker_path_warm_duration_seconds',
    help: 'Time to read one path (a file or a tree) into the page cache.',
    buckets: PULL_BUCKETS,
    registers: [registry],
  });
  const tasks = new Counter({
    name: 'stoker_tasks_total',
    help: 'Warm tasks finished, by outcome (succeeded, failed).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'stoker_tasks_in_flight',
    help: 'Warm tasks running now.',
    registers: [registry],
    collect() {
      this.set(opts.tasksInFlight());
    },
  });
  const pullsInFlight = opts.pullsInFlight;
  new Gauge({
    name: 'stoker_image_pulls_in_flight',
    help: 'Image pulls running now (one per image, however many tasks wait for it).',
    registers: [registry],
    collect() {
      if (pullsInFlight) this.set(pullsInFlight());
    },
  });
  const runtimeReady = new Gauge({
    name: 'stoker_runtime_ready',
    help: '1 when the container runtime answered its last Version probe, else 0.',
    registers: [registry],
  });

  return {
    registry,
    recordImage(result) {
      const code = result.failure?.code;
      const outcome: PullOutcome =
        result.state === 'PRESENT'
          ? 'present'
          : result.state === 'DONE'
            ? 'pulled'
            : code === 'CANCELLED'
              ? 'cancelled'
              : 'failed';
      pulls.inc({ outcome });
      if (outcome === 'failed') pullFailures.inc({ code: typeof code === 'string' ? code : 'INTERNAL' });
      if (outcome === 'pulled') {
        pullDuration.observe(Number(result.seconds ?? 0));
        pulledBytes.inc(Number(result.sizeBytes ?? 0));
      }
    },
    recordPath(result) {
      const outcome = result.state === 'DONE' ? 'done' : result.failure?.code === 'CANCELLED' ? 'cancelled' : 'failed';
      paths.inc({ outcome });
      files.inc(Number(result.files ?? 0));
      fileBytes.inc(Number(result.bytes ?? 0));
      if (outcome === 'done') pathDuration.observe(Number(result.seconds ?? 0));
    },
    recordTask(succeeded) {
      tasks.inc({ outcome: succeeded ? 'succeeded' : 'failed' });
    },
    setRuntimeReady(ready) {
      runtimeReady.set(ready ? 1 : 0);
    },
  };
}
