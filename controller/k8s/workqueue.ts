// A level-triggered work queue of keys ("namespace/name"), after client-go's workqueue with its
// per-item exponential rate limiter:
//   - a key added many times before a worker takes it is processed once (duplicates merge);
//   - a key is never handled by two workers at once: a key added while it is being processed is
//     marked dirty and queued again when the current run finishes;
//   - addAfter(key, ms) delays a key (the earliest pending time wins);
//   - addRateLimited(key) delays by base * 2^(failures) up to a maximum; forget(key) resets it.
//
// Interface (stable, used by controller/main.ts):
//   new WorkQueue({ baseDelayMs?, maxDelayMs?, clock?, log?, onDepth? })
//   add(key); addAfter(key, ms); addRateLimited(key); forget(key); numRequeues(key); len(); holds(key);
//   run(concurrency, handler: (key) => Promise<{ requeueAfterMs?: number } | void>, signal): Promise<void>
// A handler that throws is retried with backoff; one that returns { requeueAfterMs } is forgotten
// and run again after that delay; one that returns nothing is forgotten.
// This backoff is for failed reconciles only (in memory, per Warmup key). A node's retries up to
// the Warmup's backoffLimit are scheduled by its WarmupRun: see controller/dispatch.ts.
import type { Logger } from '../../proto/common/log.js';

export interface QueueClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: QueueClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export type ReconcileResult = { requeueAfterMs?: number } | void;
export type KeyHandler = (key: string) => Promise<ReconcileResult>;

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  clock?: QueueClock;
  log?: Logger;
  /** Called with the number of queued keys whenever it changes (for a metric). */
  onDepth?: (depth: number) => void;
  /** Called after each handler run with its outcome and seconds (for metrics). */
  onResult?: (outcome: 'success' | 'requeue' | 'error', seconds: number) => void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; timer: unknown }>();
  private readonly waiters: Array<() => void> = [];
  private readonly clock: QueueClock;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private shuttingDown = false;

  constructor(private readonly opts: WorkQueueOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.baseDelayMs = opts.baseDelayMs ?? 500;
    this.maxDelayMs = opts.maxDelayMs ?? 5 * 60_000;
  }

  /** Queues a key now. */
  add(key: string): void {
    if (this.shuttingDown) return;
    const pending = this.delayed.get(key);
    if (pending) {
      this.clock.clearTimeout(pending.timer);
      this.delayed.delete(key);
    }
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return; // re-queued when the current run ends
    this.queue.push(key);
    this.opts.onDepth?.(this.queue.length);
    this.waiters.shift()?.();
  }

  /** Queues a key after `ms`; if it is already due sooner, the sooner time stays. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + ms;
    const pending = this.delayed.get(key);
    if (pending) {
      if (pending.at <= at) return;
      this.clock.clearTimeout(pending.timer);
    }
    const timer = this.clock.setTimeout(() => {
      const cur = this.delayed.get(key);
      if (cur?.timer !== timer) return;
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, timer });
  }

  /** Queues a key after its exponential backoff delay, and counts the failure. */
  addRateLimited(key: string): void {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.addAfter(key, this.backoffFor(n));
  }

  /** The delay addRateLimited would use after `failures` earlier failures. */
  backoffFor(failures: number): number {
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(failures, 40));
  }

  /** Resets the key's failure count. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Whether the queue keeps anything for the key: queued, in progress, delayed or counted failures. */
  holds(key: string): boolean {
    return this.dirty.has(key) || this.processing.has(key) || this.delayed.has(key) || this.failures.has(key);
  }

  /** Keys waiting to be processed now (not delayed, not in progress). */
  len(): number {
    return this.queue.length;
  }

  /** Takes the next key, waiting for one; undefined once shut down. */
  private async get(signal: AbortSignal): Promise<string | undefined> {
    while (!this.queue.length) {
      if (this.shuttingDown || signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.waiters.indexOf(wake);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.waiters.push(wake);
      });
    }
    if (signal.aborted) return undefined;
    const key = this.queue.shift()!;
    this.opts.onDepth?.(this.queue.length);
    this.dirty.delete(key);
    this.processing.add(key);
    return key;
  }

  private done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.queue.push(key);
      this.opts.onDepth?.(this.queue.length);
      this.waiters.shift()?.();
    }
  }

  /**
   * Runs `concurrency` workers until `signal` aborts; resolves when every handler in progress has
   * returned. Keys still queued stay queued, so `run` may be called again later (a new leader term).
   */
  async run(concurrency: number, handler: KeyHandler, signal: AbortSignal): Promise<void> {
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new Error(`work queue concurrency must be a positive integer, got ${String(concurrency)}`);
    }
    const wakeAll = (): void => {
      for (const w of this.waiters.splice(0)) w();
    };
    signal.addEventListener('abort', wakeAll, { once: true });
    const worker = async (): Promise<void> => {
      for (;;) {
        const key = await this.get(signal);
        if (key === undefined) return;
        const started = this.clock.now();
        try {
          const result = await handler(key);
          const after = result && typeof result.requeueAfterMs === 'number' ? result.requeueAfterMs : undefined;
          this.forget(key);
          if (after !== undefined) this.addAfter(key, after);
          this.opts.onResult?.(after !== undefined ? 'requeue' : 'success', (this.clock.now() - started) / 1000);
        } catch (err) {
          this.opts.onResult?.('error', (this.clock.now() - started) / 1000);
          this.opts.log?.warn(
            { key, err: err instanceof Error ? err.message : String(err), retries: this.numRequeues(key) },
            'reconcile failed; retrying with backoff',
          );
          if (!this.shuttingDown) this.addRateLimited(key);
        } finally {
          this.done(key);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: concurrency }, () => worker()));
    } finally {
      signal.removeEventListener('abort', wakeAll);
    }
  }

  /** Drops delayed keys and refuses new ones. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) this.clock.clearTimeout(timer);
    this.delayed.clear();
    for (const w of this.waiters.splice(0)) w();
  }
}
