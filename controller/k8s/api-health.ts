// Whether the API server, and the etcd behind it, has been answering, and since when.
//
// An informer's watch does not notice every outage: with etcd gone, the API server keeps the watch
// open and simply sends nothing, which looks exactly like a quiet cluster. So every `intervalMs` a
// small consistent read (`probe`, e.g. a list with limit=1, which needs etcd) must come back within
// `timeoutMs`. `healthySince()` is when the current unbroken run of answered probes began; it is
// undefined from a failed probe until the next one succeeds. The agent directory
// (controller/k8s/agents.ts) judges an agent gone only after the API server has been healthy for a
// whole Lease duration: before that, a Lease that was not renewed proves nothing.
//
//   const health = new ApiHealth({ probe: (signal) => api.list({ limit: 1 }, abortable(signal)), log });
//   health.start();  health.healthySince();  health.stop();
import type { Logger } from '../../proto/common/log.js';
import { realTimers, type InformerTimers } from './informer.js';

export interface ApiHealthOptions {
  /** One small consistent read; rejects (or is aborted by `signal`) when the API server cannot answer. */
  probe: (signal: AbortSignal) => Promise<unknown>;
  /** Between the end of one probe and the start of the next. Default 1 s. */
  intervalMs?: number;
  /** A probe unanswered for this long has failed. Default 3 s. */
  timeoutMs?: number;
  log?: Logger;
  timers?: InformerTimers;
}

export class ApiHealth {
  private readonly timers: InformerTimers;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private since: number | undefined;
  private running = false;
  private timer: unknown;
  private inFlight: AbortController | undefined;
  private failures = 0;

  constructor(private readonly opts: ApiHealthOptions) {
    this.timers = opts.timers ?? realTimers;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.timeoutMs = opts.timeoutMs ?? 3000;
  }

  /** Start (timers' clock) of the current unbroken run of answered probes; undefined while failing or before the first. */
  healthySince(): number | undefined {
    return this.since;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.probeOnce();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.abort();
    this.since = undefined;
  }

  private async probeOnce(): Promise<void> {
    const startedAt = this.timers.now();
    const abort = new AbortController();
    this.inFlight = abort;
    let deadline: unknown;
    const timedOut = new Promise<never>((_, reject) => {
      deadline = this.timers.setTimeout(() => {
        abort.abort();
        reject(new Error(`no answer within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
    });
    try {
      await Promise.race([this.opts.probe(abort.signal), timedOut]);
      if (!this.running) return;
      if (this.since === undefined) {
        this.since = startedAt;
        if (this.failures > 0) this.opts.log?.info({ failures: this.failures }, 'API server answers again');
      }
      this.failures = 0;
    } catch (err) {
      if (!this.running) return;
      if (this.failures === 0) this.opts.log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'API server does not answer');
      this.failures++;
      this.since = undefined;
    } finally {
      this.timers.clearTimeout(deadline);
      abort.abort();
      if (this.inFlight === abort) this.inFlight = undefined;
    }
    if (this.running) this.timer = this.timers.setTimeout(() => void this.probeOnce(), this.intervalMs);
  }
}
