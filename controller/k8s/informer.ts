// A list-and-watch cache that does not stall.
//
// @kubernetes/client-node's own informer relists after a 410 but stays stopped after any other
// watch error, and a connection that silently stops delivering is never noticed. This one:
//   - restarts after every watch error or close, with exponential backoff and jitter;
//   - relists when the server says the resource version is too old (410) and, periodically,
//     on a jittered interval, so a missed event cannot live forever in the cache;
//   - asks for bookmarks, so a quiet but healthy watch keeps proving it is alive, and ends each
//     watch after a bounded server-side timeout; a watchdog restarts a watch that has been
//     silent (no event, no bookmark) for longer than `watchdogMs`.
//
// Interface (stable, used by controller/main.ts and controller/reconcile.ts):
//   startInformer<T>({ kc, path, list, name, log, relistIntervalMs?, watchdogMs?, labelSelector?,
//                      fieldSelector?, deserialize?, timers? }) -> Informer<T>
//   Informer<T>: list(): T[]; get(key): T | undefined  (key = "namespace/name", or "name" when
//   cluster-scoped); on('add'|'update'|'delete', fn); off(...); start(); stop();
//   synced: Promise<void> (resolves after the first successful list).
//
// Objects are stored as the API server sent them. A watch delivers plain JSON (timestamps are
// strings); pass `deserialize` to turn both list items and watch objects into the same shape.
import { EventEmitter } from 'node:events';
import { Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../proto/common/log.js';
import { kubeErrorStatus } from '../../proto/common/kube-errors.js';

export type InformerEvent = 'add' | 'update' | 'delete';

export interface ListResult<T> {
  items: T[];
  metadata?: { resourceVersion?: string | undefined } | undefined;
}

/** Timers, injectable so tests can drive time. */
export interface InformerTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export const realTimers: InformerTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  now: () => Date.now(),
};

/** What starts one watch; the default uses @kubernetes/client-node's `Watch`. */
export type WatchFn = (
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  onEvent: (type: string, obj: unknown) => void,
  onDone: (err: unknown) => void,
) => Promise<{ abort(): void }>;

export interface InformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** Watch path, e.g. "/api/v1/nodes" or "/apis/stoker.io/v1alpha1/warmups". */
  path: string;
  /** Lists the resource; called at start, after a 410 and on every periodic relist. */
  list: () => Promise<ListResult<T>>;
  /** Name for logs and metrics ("warmups", "nodes", "agent-leases"). */
  name: string;
  log: Logger;
  /** Full relist at this interval (with ±20% jitter). Default 5 minutes; 0 disables. */
  relistIntervalMs?: number;
  /** Restart a watch that delivered nothing (not even a bookmark) for this long. Default 90 s. */
  watchdogMs?: number;
  labelSelector?: string;
  fieldSelector?: string;
  /** Converts a raw object (from a watch) to T. Applied to list items too. */
  deserialize?: (raw: unknown) => T;
  /** Called when the informer restarts its watch or relists (for metrics). */
  onRestart?: (reason: 'error' | 'closed' | 'watchdog' | 'gone' | 'relist') => void;
  timers?: InformerTimers;
  watch?: WatchFn;
  /** Stops the informer when aborted (same as stop()). */
  signal?: AbortSignal;
}

export interface Informer<T extends KubernetesObject> {
  list(): T[];
  get(key: string): T | undefined;
  on(event: InformerEvent, fn: (obj: T) => void): void;
  off(event: InformerEvent, fn: (obj: T) => void): void;
  start(): void;
  stop(): void;
  /** Resolves after the first successful list. */
  readonly synced: Promise<void>;
  /** True after the first successful list. */
  hasSynced(): boolean;
}

/** "namespace/name", or "name" for cluster-scoped objects. */
export function objectKey(obj: { metadata?: { name?: string | undefined; namespace?: string | undefined } | undefined }): string {
  const name = obj.metadata?.name ?? '';
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;

function jitter(ms: number, fraction = 0.2): number {
  return Math.round(ms * (1 - fraction + Math.random() * 2 * fraction));
}


function defaultWatch(kc: KubeConfig): WatchFn {
  const w = new Watch(kc);
  return (path, query, onEvent, onDone) => w.watch(path, query, (type, obj) => onEvent(type, obj), onDone);
}

class ResilientInformer<T extends KubernetesObject> implements Informer<T> {
  private readonly objects = new Map<string, T>();
  private readonly emitter = new EventEmitter();
  private readonly timers: InformerTimers;
  private readonly watchFn: WatchFn;
  private readonly relistIntervalMs: number;
  private readonly watchdogMs: number;
  private resourceVersion = '';
  private running = false;
  /** Bumped on every (re)start; callbacks from an older generation are ignored. */
  private generation = 0;
  private current: { abort(): void } | undefined;
  private lastActivity = 0;
  private failures = 0;
  private retryTimer: unknown;
  private watchdogTimer: unknown;
  private relistTimer: unknown;
  private resolveSynced!: () => void;
  private isSynced = false;
  readonly synced: Promise<void>;

  constructor(private readonly opts: InformerOptions<T>) {
    this.timers = opts.timers ?? realTimers;
    this.watchFn = opts.watch ?? defaultWatch(opts.kc);
    this.relistIntervalMs = opts.relistIntervalMs ?? 5 * 60_000;
    this.watchdogMs = opts.watchdogMs ?? 90_000;
    this.synced = new Promise((resolve) => (this.resolveSynced = resolve));
    this.emitter.setMaxListeners(0);
  }

  list(): T[] {
    return [...this.objects.values()];
  }

  get(key: string): T | undefined {
    return this.objects.get(key);
  }

  on(event: InformerEvent, fn: (obj: T) => void): void {
    this.emitter.on(event, fn);
  }

  off(event: InformerEvent, fn: (obj: T) => void): void {
    this.emitter.off(event, fn);
  }

  hasSynced(): boolean {
    return this.isSynced;
  }

  start(): void {
    if (this.running || this.opts.signal?.aborted) return;
    this.opts.signal?.addEventListener('abort', () => this.stop(), { once: true });
    this.running = true;
    this.resourceVersion = '';
    void this.cycle();
    this.armWatchdog();
    this.armRelist();
  }

  stop(): void {
    this.running = false;
    this.generation++;
    this.current?.abort();
    this.current = undefined;
    for (const t of [this.retryTimer, this.watchdogTimer, this.relistTimer]) if (t !== undefined) this.timers.clearTimeout(t);
    this.retryTimer = this.watchdogTimer = this.relistTimer = undefined;
  }

  /** Lists when needed, then watches from the last resource version. */
  private async cycle(): Promise<void> {
    const gen = ++this.generation;
    this.current?.abort();
    this.current = undefined;
    this.lastActivity = this.timers.now();
    try {
      if (!this.resourceVersion) await this.relist(gen);
      if (gen !== this.generation || !this.running) return;
      const query: Record<string, string | number | boolean | undefined> = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        // The server ends each watch after this long; a fresh one starts from the last version.
        timeoutSeconds: Math.max(1, Math.round(jitter(Math.min(this.watchdogMs * 0.6, 300_000)) / 1000)),
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
      };
      const handle = await this.watchFn(
        this.opts.path,
        query,
        (type, obj) => {
          if (gen === this.generation) this.onWatchEvent(type, obj);
        },
        (err) => {
          if (gen === this.generation) this.onWatchDone(err);
        },
      );
      if (gen !== this.generation) {
        handle.abort();
        return;
      }
      this.current = handle;
    } catch (err) {
      if (gen === this.generation) this.onWatchDone(err);
    }
  }

  private async relist(gen: number): Promise<void> {
    const result = await this.opts.list();
    if (gen !== this.generation) return;
    const items = result.items.map((raw) => (this.opts.deserialize ? this.opts.deserialize(raw) : raw));
    const seen = new Set<string>();
    for (const obj of items) {
      const key = objectKey(obj);
      seen.add(key);
      this.upsert(key, obj);
    }
    for (const [key, old] of [...this.objects]) {
      if (!seen.has(key)) {
        this.objects.delete(key);
        this.emitter.emit('delete', old);
      }
    }
    this.resourceVersion = result.metadata?.resourceVersion ?? '';
    this.failures = 0;
    this.lastActivity = this.timers.now();
    if (!this.isSynced) {
      this.isSynced = true;
      this.resolveSynced();
    }
    this.opts.log.debug({ informer: this.opts.name, count: items.length, resourceVersion: this.resourceVersion }, 'listed');
  }

  private upsert(key: string, obj: T): void {
    const old = this.objects.get(key);
    this.objects.set(key, obj);
    if (!old) this.emitter.emit('add', obj);
    else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion || !obj.metadata?.resourceVersion) this.emitter.emit('update', obj);
  }

  private onWatchEvent(type: string, raw: unknown): void {
    this.lastActivity = this.timers.now();
    const rawObj = raw as KubernetesObject & { code?: number };
    switch (type) {
      case 'ADDED':
      case 'MODIFIED': {
        const obj = this.opts.deserialize ? this.opts.deserialize(raw) : (raw as T);
        this.upsert(objectKey(obj), obj);
        break;
      }
      case 'DELETED': {
        const obj = this.opts.deserialize ? this.opts.deserialize(raw) : (raw as T);
        const key = objectKey(obj);
        const old = this.objects.get(key);
        this.objects.delete(key);
        this.emitter.emit('delete', old ?? obj);
        break;
      }
      case 'BOOKMARK':
        break;
      case 'ERROR':
        // A Status object; 410 Gone means our resource version is too old: relist.
        if (rawObj.code === 410) {
          this.resourceVersion = '';
          this.opts.onRestart?.('gone');
        }
        this.opts.log.debug({ informer: this.opts.name, status: raw }, 'watch error event');
        return;
      default:
        return;
    }
    const rv = rawObj.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
  }

  private onWatchDone(err: unknown): void {
    this.current = undefined;
    if (!this.running) return;
    if (!err) {
      // The server ended the watch (timeoutSeconds) or the connection closed: continue at once.
      this.failures = 0;
      this.opts.onRestart?.('closed');
      this.generation++;
      this.scheduleCycle(0);
      return;
    }
    if (kubeErrorStatus(err) === 410) {
      this.resourceVersion = '';
      this.opts.onRestart?.('gone');
      this.generation++;
      this.scheduleCycle(0);
      return;
    }
    this.failures++;
    const delay = jitter(Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.failures - 1)));
    const message = err instanceof Error ? err.message : JSON.stringify(err);
    this.opts.log.warn({ informer: this.opts.name, err: message, code: kubeErrorStatus(err), retryInMs: delay }, 'watch failed; restarting');
    this.opts.onRestart?.('error');
    // After an error we cannot be sure nothing was missed; the next cycle relists.
    this.resourceVersion = '';
    this.generation++;
    this.scheduleCycle(delay);
  }

  private scheduleCycle(ms: number): void {
    if (this.retryTimer !== undefined) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = undefined;
      if (this.running) void this.cycle();
    }, ms);
  }

  private armWatchdog(): void {
    if (this.watchdogMs <= 0) return;
    const check = (): void => {
      if (!this.running) return;
      const silent = this.timers.now() - this.lastActivity;
      if (silent >= this.watchdogMs && this.retryTimer === undefined) {
        this.opts.log.warn({ informer: this.opts.name, silentMs: silent }, 'watch silent too long; restarting');
        this.opts.onRestart?.('watchdog');
        this.resourceVersion = '';
        void this.cycle();
      }
      this.watchdogTimer = this.timers.setTimeout(check, Math.max(10, Math.round(this.watchdogMs / 4)));
    };
    this.watchdogTimer = this.timers.setTimeout(check, Math.max(10, Math.round(this.watchdogMs / 4)));
  }

  private armRelist(): void {
    if (this.relistIntervalMs <= 0) return;
    this.relistTimer = this.timers.setTimeout(() => {
      if (!this.running) return;
      this.opts.onRestart?.('relist');
      this.resourceVersion = '';
      void this.cycle();
      this.armRelist();
    }, jitter(this.relistIntervalMs));
  }
}

/** Creates an informer; call `start()` to begin listing and watching. */
export function startInformer<T extends KubernetesObject>(opts: InformerOptions<T>): Informer<T> {
  return new ResilientInformer(opts);
}
