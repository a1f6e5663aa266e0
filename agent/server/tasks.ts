// The task registry: warm tasks keyed by the caller's task id. A second call with the id of a
// running task joins it (it gets the latest progress of every item, then the events from then on);
// a call with the id of a task that finished recently gets its result without doing the work
// again. A caller that goes away only detaches: the task runs on for the others. cancel(id) aborts
// one task (the Cancel call): every caller attached to it gets its result, with the items that had
// not finished marked CANCELLED, and the result is remembered like any other. Closing the
// registry (agent shutdown) aborts every task. The registry holds no request and no credential:
// the function that runs a task keeps them, and drops them when it returns.
import type { WarmEvent, WarmResult } from '../../proto/agent.js';

export interface TaskListener {
  /** Progress events (image or file), in order; never the result. */
  event(event: WarmEvent): void;
  /** The task's result, exactly once, last. */
  result(result: WarmResult): void;
}

/** Runs one task: reports progress through emit, resolves with the result, honours signal. */
export type TaskRun = (signal: AbortSignal, emit: (event: WarmEvent) => void) => Promise<WarmResult>;

export type Attachment =
  | { readonly kind: 'started' | 'joined' | 'finished'; detach(): void };

export interface TaskSummary {
  readonly taskId: string;
  readonly startedAt: string;
  readonly subscribers: number;
  readonly items: number;
}

export interface TaskRegistryOptions {
  retentionMs: number;
  retentionCount: number;
  maxRunning: number;
  /** Called with a result a run threw instead of returning (maps the error to a failure). */
  onRunError: (taskId: string, err: unknown, signal: AbortSignal) => WarmResult;
  /** Minimum time between two progress events of one item (state changes always pass). */
  progressIntervalMs?: number;
  now?: () => number;
}

export class TaskCapacityError extends Error {
  override readonly name = 'TaskCapacityError';
}

export class RegistryClosedError extends Error {
  override readonly name = 'RegistryClosedError';
}

/** The abort reason of a task stopped by cancel(): runs tell it apart from a shutdown. */
export class TaskCancelledError extends Error {
  override readonly name = 'TaskCancelledError';
}

/**
 * What cancel() found: `cancelled` the task was running and has ended; `stopping` it was running
 * and had not ended within the wait; `finished` it had ended before (its result is untouched);
 * `unknown` no task with that id is running or remembered.
 */
export type CancelOutcome = 'cancelled' | 'stopping' | 'finished' | 'unknown';

interface ItemThrottle {
  lastEmit: number;
  lastState: string;
  timer: NodeJS.Timeout | undefined;
}

class RunningTask {
  readonly listeners = new Set<TaskListener>();
  /** Latest event per item, replayed to a caller that joins. */
  readonly snapshot = new Map<string, WarmEvent>();
  readonly throttles = new Map<string, ItemThrottle>();
  readonly controller = new AbortController();
  done: Promise<void> = Promise.resolve();
  constructor(
    readonly taskId: string,
    readonly startedAt: number,
  ) {}
}

interface FinishedTask {
  readonly result: WarmResult;
  readonly finishedAt: number;
}

function itemKey(event: WarmEvent): string | undefined {
  if (event.image) return `image:${event.image.image ?? ''}`;
  if (event.file) return `file:${event.file.path ?? ''}`;
  return undefined;
}

function itemState(event: WarmEvent): string {
  return String(event.image?.state ?? event.file?.state ?? '');
}

export class TaskRegistry {
  private readonly running = new Map<string, RunningTask>();
  private readonly finished = new Map<string, FinishedTask>();
  private readonly closing = new AbortController();
  private readonly now: () => number;
  private readonly progressIntervalMs: number;

  constructor(private readonly opts: TaskRegistryOptions) {
    this.now = opts.now ?? Date.now;
    this.progressIntervalMs = opts.progressIntervalMs ?? 250;
  }

  /** Tasks running now. */
  get inFlight(): number {
    return this.running.size;
  }

  get closed(): boolean {
    return this.closing.signal.aborted;
  }

  summaries(): TaskSummary[] {
    return [...this.running.values()].map((t) => ({
      taskId: t.taskId,
      startedAt: new Date(t.startedAt).toISOString(),
      subscribers: t.listeners.size,
      items: t.snapshot.size,
    }));
  }

  /** The result of a task that finished and is still remembered. */
  result(taskId: string): WarmResult | undefined {
    this.prune();
    return this.finished.get(taskId)?.result;
  }

  /**
   * Attaches a listener to the task with this id, starting it with `run` if it is neither running
   * nor remembered. Throws TaskCapacityError when too many tasks run, RegistryClosedError after
   * close(). A remembered result is delivered before attach returns.
   */
  attach(taskId: string, run: TaskRun, listener: TaskListener): Attachment {
    if (this.closed) throw new RegistryClosedError('the agent is shutting down');
    const existing = this.running.get(taskId);
    if (existing) {
      for (const event of existing.snapshot.values()) listener.event(event);
      existing.listeners.add(listener);
      return { kind: 'joined', detach: () => existing.listeners.delete(listener) };
    }
    const done = this.result(taskId);
    if (done) {
      listener.result(done);
      return { kind: 'finished', detach: () => undefined };
    }
    if (this.running.size >= this.opts.maxRunning) {
      throw new TaskCapacityError(`${this.running.size} tasks are running, the most this agent runs at once`);
    }
    const task = new RunningTask(taskId, this.now());
    task.listeners.add(listener);
    this.running.set(taskId, task);
    const onClose = () => task.controller.abort(this.closing.signal.reason);
    this.closing.signal.addEventListener('abort', onClose, { once: true });
    task.done = this.execute(task, run).finally(() => this.closing.signal.removeEventListener('abort', onClose));
    return { kind: 'started', detach: () => task.listeners.delete(listener) };
  }

  /**
   * Aborts the running task with this id, then waits up to `waitMs` for it to end. Idempotent: a
   * task that already finished (cancelled before or not) is left as it is.
   */
  async cancel(taskId: string, waitMs: number): Promise<CancelOutcome> {
    const task = this.running.get(taskId);
    if (!task) return this.result(taskId) ? 'finished' : 'unknown';
    task.controller.abort(new TaskCancelledError(`task "${taskId}" was cancelled`));
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      task.done.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), waitMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    return ended ? 'cancelled' : 'stopping';
  }

  private async execute(task: RunningTask, run: TaskRun): Promise<void> {
    let result: WarmResult;
    try {
      // Let attach() return before the run reports anything.
      await Promise.resolve();
      result = await run(task.controller.signal, (event) => this.progress(task, event));
    } catch (err) {
      result = this.opts.onRunError(task.taskId, err, task.controller.signal);
    }
    for (const t of task.throttles.values()) clearTimeout(t.timer);
    this.running.delete(task.taskId);
    this.finished.delete(task.taskId);
    this.finished.set(task.taskId, { result, finishedAt: this.now() });
    this.prune();
    for (const listener of [...task.listeners]) {
      try {
        listener.result(result);
      } catch {
        // A listener's failure (a closed stream) must not keep the result from the others.
      }
    }
    task.listeners.clear();
  }

  private progress(task: RunningTask, event: WarmEvent): void {
    const key = itemKey(event);
    if (key === undefined || !this.running.has(task.taskId)) return;
    task.snapshot.set(key, event);
    let throttle = task.throttles.get(key);
    if (!throttle) {
      throttle = { lastEmit: -Infinity, lastState: '', timer: undefined };
      task.throttles.set(key, throttle);
    }
    const state = itemState(event);
    const now = this.now();
    if (state !== throttle.lastState || now - throttle.lastEmit >= this.progressIntervalMs) {
      clearTimeout(throttle.timer);
      throttle.timer = undefined;
      this.deliver(task, key, throttle, state, now);
    } else if (!throttle.timer) {
      const t = throttle;
      t.timer = setTimeout(() => {
        t.timer = undefined;
        if (this.running.get(task.taskId) === task) this.deliver(task, key, t, itemState(task.snapshot.get(key) ?? {}), this.now());
      }, this.progressIntervalMs - (now - throttle.lastEmit));
      t.timer.unref();
    }
  }

  private deliver(task: RunningTask, key: string, throttle: ItemThrottle, state: string, now: number): void {
    const latest = task.snapshot.get(key);
    if (!latest) return;
    throttle.lastEmit = now;
    throttle.lastState = state;
    for (const listener of [...task.listeners]) {
      try {
        listener.event(latest);
      } catch {
        task.listeners.delete(listener);
      }
    }
  }

  private prune(): void {
    const oldest = this.now() - this.opts.retentionMs;
    for (const [id, t] of this.finished) {
      if (this.finished.size > this.opts.retentionCount || t.finishedAt < oldest) this.finished.delete(id);
      else break;
    }
  }

  /**
   * Refuses new tasks, aborts every running one, and resolves when all have finished or after
   * `timeoutMs`, whichever is first.
   */
  async close(reason: unknown, timeoutMs: number): Promise<void> {
    this.closing.abort(reason);
    const all = Promise.allSettled([...this.running.values()].map((t) => t.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
}
