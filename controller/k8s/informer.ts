// A list-and-watch cache that does not stall.
//
// @kubernetes/client-node's own informer relists after a 410 but stays stopped after any other
// watch error, and a connection that silently stops delivering is never noticed. This one:
//   - restarts after every watch error or close, with exponential backoff and jitter capped low
//     (2 s by default) and reset by a successful list, so it is back within seconds of an API
//     server's return, not after a long backoff; a list, and the start of a watch, that get no
//     answer within `requestTimeoutMs` count as failures (an API server whose etcd is gone accepts
//     requests and does not answer them);
//   - relists when the server says the resource version is too old (410) and, periodically,
//     on a jittered interval, so a missed event cannot live forever in the cache;
//   - asks for bookmarks, so a quiet but healthy watch keeps proving it is alive, and ends each
//     watch after a bounded server-side timeout; a watchdog restarts a watch that has been
//     silent (no event, no bookmark) for longer than `watchdogMs`;
//   - keeps its cache through failures: while it cannot list, the objects it had stay, and
//     nothing is reported deleted until a list that succeeds says so. `freshSince()` tells how long
//     the cache has been in step with the API server without a break (undefined while it is not),
//     so a consumer can tell "absent" from "not seen because we were cut off"; `relist()` asks
//     the API server again now and says whether that worked.
//
// Interface (stable, used by controller/main.ts and controller/reconcile.ts):
//   startInformer<T>({ kc, path, list, name, log, relistIntervalMs?, watchdogMs?, labelSelector?,
//                      fieldSelector?, deserialize?, timers? }) -> Informer<T>
//   Informer<T>: list(): T[]; get(key): T | undefined  (key = "namespace/name", or "name" when
//   cluster-scoped); on('add'|'update'|'delete', fn); off(...); start(); stop();
//   synced: Promise<void> (resolves after the first successful list);
//   freshSince(): number | undefined; relist(): Promise<boolean>.
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
  /** Lists the resource; called at start, after a 410 and on every periodic relist. Abort `signal` ends the request. */
  list: (signal: AbortSignal) => Promise<ListResult<T>>;
  /** Name for logs and metrics ("warmups", "nodes", "agent-endpoints"). */
  name: string;
  log: Logger;
  /** Full relist at this interval (with ±20% jitter). Default 5 minutes; 0 disables. */
  relistIntervalMs?: number;
  /** Restart a watch that delivered nothing (not even a bookmark) for this long. Default 90 s. */
  watchdogMs?: number;
  /** A list, or the start of a watch, unanswered for this long has failed. Default 30 s. */
  requestTimeoutMs?: number;
  /** Retry delay after the first failure; doubles per failure up to backoffMaxMs (±20% jitter). Default 250 ms. */
  backoffBaseMs?: number;
  /** Default 2 s: an API server that comes back is listed again within about that. */
  backoffMaxMs?: number;
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
  /**
   * Since when (timers' clock) the cache has been in step with the API server without a break: the
   * list that ended the last failure (a failed list or watch, an unanswered request, a silent
   * watch). Undefined before the first list and from a failure until the next successful list.
   */
  freshSince(): number | undefined;
  /** Lists again now (the watch restarts from the new list); resolves true if that list succeeded. */
  relist(): Promise<boolean>;
}

/** "namespace/name", or "name" for cluster-scoped objects. */
export function objectKey(obj: { metadata?: { name?: string | undefined; namespace?: string | undefined } | undefined }): string {
  const name = obj.metadata?.name ?? '';
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 2_000;

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
  private readonly requestTimeoutMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
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
  private fresh: number | undefined;
  /** Callers of relist() waiting for the next list to succeed (true) or fail (false). */
  private listWaiters: Array<(ok: boolean) => void> = [];
  readonly synced: Promise<void>;

  constructor(private readonly opts: InformerOptions<T>) {
    this.timers = opts.timers ?? realTimers;
    this.watchFn = opts.watch ?? defaultWatch(opts.kc);
    this.relistIntervalMs = opts.relistIntervalMs ?? 5 * 60_000;
    this.watchdogMs = opts.watchdogMs ?? 90_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.backoffBaseMs = opts.backoffBaseMs ?? BACKOFF_BASE_MS;
    this.backoffMaxMs = opts.backoffMaxMs ?? BACKOFF_MAX_MS;
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

  freshSince(): number | undefined {
    return this.fresh;
  }

  relist(): Promise<boolean> {
    if (!this.running) return Promise.resolve(false);
    const done = new Promise<boolean>((resolve) => this.listWaiters.push(resolve));
    if (this.retryTimer !== undefined) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.resourceVersion = '';
    void this.cycle();
    return done;
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
    this.fresh = undefined;
    this.settleListWaiters(false);
  }

  /** Lists when needed, then watches from the last resource version. */
  private async cycle(): Promise<void> {
    const gen = ++this.generation;
    this.current?.abort();
    this.current = undefined;
    this.lastActivity = this.timers.now();
    try {
      if (!this.resourceVersion) {
        try {
          await this.listNow(gen);
        } catch (err) {
          if (gen === this.generation) this.settleListWaiters(false);
          throw err;
        }
      }
      if (gen !== this.generation || !this.running) return;
      const query: Record<string, string | number | boolean | undefined> = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        // The server ends each watch after this long; a fresh one starts from the last version.
        timeoutSeconds: Math.max(1, Math.round(jitter(Math.min(this.watchdogMs * 0.6, 300_000)) / 1000)),
        labelSelector: this.opts.labelSelector,
        fieldSelector: this.opts.fieldSelector,
      };
      const starting = this.watchFn(
        this.opts.path,
        query,
        (type, obj) => {
          if (gen === this.generation) this.onWatchEvent(type, obj);
        },
        (err) => {
          if (gen === this.generation) this.onWatchDone(err);
        },
      );
      const handle = await this.answered(starting, 'watch', (h) => h.abort());
      if (gen !== this.generation) {
        handle.abort();
        return;
      }
      this.current = handle;
    } catch (err) {
      if (gen === this.generation) this.onWatchDone(err);
    }
  }

  /** `request`, or a rejection once it has gone unanswered for requestTimeoutMs (`late` cleans up a late answer). */
  private answered<R>(request: Promise<R>, what: string, late?: (r: R) => void): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      let timedOut = false;
      const timer = this.timers.setTimeout(() => {
        timedOut = true;
        reject(new Error(`${what} of ${this.opts.path}: no answer within ${this.requestTimeoutMs / 1000} s`));
      }, this.requestTimeoutMs);
      request.then(
        (r) => {
          this.timers.clearTimeout(timer);
          if (timedOut) late?.(r);
          else resolve(r);
        },
        (err: unknown) => {
          this.timers.clearTimeout(timer);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  private async listNow(gen: number): Promise<void> {
    const abort = new AbortController();
    let result: ListResult<T>;
    try {
      result = await this.answered(this.opts.list(abort.signal), 'list');
    } finally {
      // Ends a request that timed out (the list function passes the signal to its HTTP call).
      abort.abort();
    }
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
    if (this.fresh === undefined) {
      this.fresh = this.lastActivity;
      if (this.isSynced) this.opts.log.info({ informer: this.opts.name, count: items.length }, 'listed again after a failure; cache is current');
    }
    if (!this.isSynced) {
      this.isSynced = true;
      this.resolveSynced();
    }
    this.settleListWaiters(true);
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
    // From here until a list succeeds the cache may miss changes: it is kept, but not fresh.
    this.fresh = undefined;
    const delay = jitter(Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (this.failures - 1)));
    const message = err instanceof Error ? err.message : JSON.stringify(err);
    this.opts.log.warn({ informer: this.opts.name, err: message, code: kubeErrorStatus(err), retryInMs: delay }, 'watch failed; restarting');
    this.opts.onRestart?.('error');
    // After an error we cannot be sure nothing was missed; the next cycle relists.
    this.resourceVersion = '';
    this.generation++;
    this.scheduleCycle(delay);
  }

  private settleListWaiters(ok: boolean): void {
    const waiters = this.listWaiters;
    this.listWaiters = [];
    for (const w of waiters) w(ok);
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
        this.fresh = undefined;
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
