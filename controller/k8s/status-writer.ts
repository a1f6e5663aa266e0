// Writes a custom resource's status subresource at a bounded rate.
//
// The reconciler calls `schedule(namespace, name, compute)` as often as it likes (on every
// progress event); the writer keeps only the latest `compute` per object and writes at most once
// per `minIntervalMs` (default 1 s) per object. At write time it reads the object fresh from the
// API server, runs `compute(current)` on it, and replaces the status with the resource version it
// read; a 409 conflict re-reads and recomputes. `compute` returning undefined, or a status equal
// to the current one, writes nothing. `flush` writes the pending update at once (completion).
//
// Interface (stable, used by controller/reconcile.ts):
//   new StatusWriter<Warmup, WarmupStatus>({ kc, group, version, plural, log, minIntervalMs?, clock? })
//   schedule(namespace, name, compute: (current: Warmup) => WarmupStatus | undefined): void
//   flush(namespace, name): Promise<void>   (rejects if the write fails)
//   forget(namespace, name): void           (object deleted: drop what is pending)
//   holds(namespace, name): boolean         (anything kept for the object: pending, in flight, timing)
//   writes: number                          (successful status writes, for metrics and benchmarks)
//   conflicts: number; cancelPending(): void; stop(): Promise<void>
import { isDeepStrictEqual } from 'node:util';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../proto/common/log.js';
import { realClock, type QueueClock } from './workqueue.js';
import { kubeErrorStatus } from '../../proto/common/kube-errors.js';

export interface StatusObject<S> {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; generation?: number; uid?: string };
  status?: S;
}

/** The two calls the writer makes; the default uses CustomObjectsApi. Tests pass a fake. */
export interface StatusApi<T> {
  get(namespace: string, name: string): Promise<T>;
  replaceStatus(namespace: string, name: string, body: T): Promise<T>;
}

export interface StatusWriterOptions<T> {
  kc?: KubeConfig;
  group?: string;
  version?: string;
  plural?: string;
  api?: StatusApi<T>;
  log: Logger;
  /** At most one write per object per this many milliseconds. Default 1000. */
  minIntervalMs?: number;
  clock?: QueueClock;
  /** Called after every successful write (for a metric). */
  onWrite?: () => void;
}

type Compute<T, S> = (current: T) => S | undefined;

interface Slot<T, S> {
  compute: Compute<T, S> | undefined;
  lastWriteAt: number;
  timer: unknown;
  inFlight: Promise<void> | undefined;
  failures: number;
}

const MAX_CONFLICT_RETRIES = 8;


/** Equal as the API server would store them (undefined fields dropped, key order ignored). */
function sameJson(a: unknown, b: unknown): boolean {
  const norm = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
  return isDeepStrictEqual(norm(a), norm(b));
}

export function customObjectStatusApi<T>(kc: KubeConfig, group: string, version: string, plural: string): StatusApi<T> {
  const api = kc.makeApiClient(CustomObjectsApi);
  return {
    get: async (namespace, name) => (await api.getNamespacedCustomObject({ group, version, plural, namespace, name })) as T,
    replaceStatus: async (namespace, name, body) =>
      (await api.replaceNamespacedCustomObjectStatus({ group, version, plural, namespace, name, body: body as object })) as T,
  };
}

export class StatusWriter<T extends StatusObject<S>, S = NonNullable<T['status']>> {
  /** Successful status writes since start. */
  writes = 0;
  /** Conflicts met (each one re-read and retried). */
  conflicts = 0;
  private readonly slots = new Map<string, Slot<T, S>>();
  private readonly api: StatusApi<T>;
  private readonly clock: QueueClock;
  private readonly minIntervalMs: number;
  private stopped = false;

  constructor(private readonly opts: StatusWriterOptions<T>) {
    if (opts.api) this.api = opts.api;
    else if (opts.kc && opts.group && opts.version && opts.plural) {
      this.api = customObjectStatusApi<T>(opts.kc, opts.group, opts.version, opts.plural);
    } else throw new Error('StatusWriter needs either api or kc, group, version and plural');
    this.clock = opts.clock ?? realClock;
    this.minIntervalMs = opts.minIntervalMs ?? 1000;
  }

  /** Remembers the latest status computation for the object; it is written within the interval. */
  schedule(namespace: string, name: string, compute: Compute<T, S>): void {
    if (this.stopped) return;
    const slot = this.slot(namespace, name);
    slot.compute = compute;
    this.arm(namespace, name, slot);
  }

  /** Writes what is pending for the object now, waiting for a write already under way. */
  async flush(namespace: string, name: string): Promise<void> {
    const key = `${namespace}/${name}`;
    const slot = this.slots.get(key);
    if (!slot) return;
    if (slot.inFlight) await slot.inFlight.catch(() => undefined);
    if (!slot.compute) return;
    if (slot.timer !== undefined) {
      this.clock.clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    await this.write(namespace, name, slot, true);
  }

  /** Drops anything pending for the object (it was deleted). */
  forget(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const slot = this.slots.get(key);
    if (slot?.timer !== undefined) this.clock.clearTimeout(slot.timer);
    this.slots.delete(key);
  }

  /** Whether anything is kept for the object: a pending update, a write in flight, its write timing. */
  holds(namespace: string, name: string): boolean {
    return this.slots.has(`${namespace}/${name}`);
  }

  /** Drops every pending update (this replica stopped leading; the new leader owns status now). */
  cancelPending(): void {
    for (const slot of this.slots.values()) {
      if (slot.timer !== undefined) this.clock.clearTimeout(slot.timer);
      slot.timer = undefined;
      slot.compute = undefined;
    }
  }

  /** Writes everything pending once, then refuses new work. */
  async stop(): Promise<void> {
    this.stopped = true;
    const pending = [...this.slots.entries()];
    for (const [, slot] of pending) {
      if (slot.timer !== undefined) this.clock.clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    await Promise.all(
      pending.map(async ([key, slot]) => {
        const i = key.indexOf('/');
        if (slot.inFlight) await slot.inFlight.catch(() => undefined);
        if (slot.compute) await this.write(key.slice(0, i), key.slice(i + 1), slot, true).catch(() => undefined);
      }),
    );
    this.slots.clear();
  }

  private slot(namespace: string, name: string): Slot<T, S> {
    const key = `${namespace}/${name}`;
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { compute: undefined, lastWriteAt: -Infinity, timer: undefined, inFlight: undefined, failures: 0 };
      this.slots.set(key, slot);
    }
    return slot;
  }

  /** Sets a timer for the next allowed write, unless one is set or a write is under way. */
  private arm(namespace: string, name: string, slot: Slot<T, S>): void {
    if (slot.timer !== undefined || slot.inFlight || this.stopped) return;
    // Capped low: once an API server that was away answers again, progress shows within seconds.
    const backoff = slot.failures ? Math.min(5_000, this.minIntervalMs * 2 ** (slot.failures - 1)) : 0;
    const wait = Math.max(0, slot.lastWriteAt + this.minIntervalMs - this.clock.now(), backoff);
    slot.timer = this.clock.setTimeout(() => {
      slot.timer = undefined;
      // A failed timed write has already been logged and is retried by write() itself.
      this.write(namespace, name, slot, false).catch(() => undefined);
    }, wait);
  }

  private write(namespace: string, name: string, slot: Slot<T, S>, forced: boolean): Promise<void> {
    const compute = slot.compute;
    slot.compute = undefined;
    if (!compute) return Promise.resolve();
    const run = this.writeNow(namespace, name, compute).then(
      () => {
        slot.failures = 0;
      },
      (err: unknown) => {
        if (kubeErrorStatus(err) === 404) {
          this.forget(namespace, name);
          return;
        }
        slot.failures++;
        // Keep the newest computation: a newer schedule() wins over the one that failed.
        slot.compute ??= compute;
        this.opts.log.warn(
          { namespace, name, code: kubeErrorStatus(err), err: err instanceof Error ? err.message : String(err), failures: slot.failures },
          'status write failed; retrying',
        );
        if (forced) throw err;
      },
    );
    slot.inFlight = run.finally(() => {
      slot.inFlight = undefined;
      slot.lastWriteAt = this.clock.now();
      if (slot.compute && this.slots.get(`${namespace}/${name}`) === slot) this.arm(namespace, name, slot);
    });
    return slot.inFlight;
  }

  private async writeNow(namespace: string, name: string, compute: Compute<T, S>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.api.get(namespace, name);
      const status = compute(current);
      if (status === undefined || sameJson(status, current.status)) return;
      try {
        await this.api.replaceStatus(namespace, name, { ...current, status });
        this.writes++;
        this.opts.onWrite?.();
        return;
      } catch (err) {
        if (kubeErrorStatus(err) !== 409 || attempt >= MAX_CONFLICT_RETRIES) throw err;
        this.conflicts++;
      }
    }
  }
}
