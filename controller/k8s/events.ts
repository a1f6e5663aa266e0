// Records core/v1 Events about objects, as `kubectl describe` and `kubectl get events` show them.
//
// Repeats are aggregated like client-go's event correlator: the same (object, type, reason,
// message) within `aggregateWindowMs` bumps `count` and `lastTimestamp` of the Event already
// written (a merge patch, as client-go does) instead of creating a new one. Writes run in the background, one at a time; `record`
// never throws and never blocks the caller; failures are logged and dropped. Callers must not put
// credentials in messages (the reconciler builds messages from its own words and user values).
//
// What aggregation needs is kept small and not for long: per (object, type, reason, message) the
// Event's name, its count and when it was last written, dropped once the window has passed and
// when the object is deleted (`forget`). A controller that handles thousands of Warmups keeps
// nothing for the ones that are gone.
//
// Interface (stable, used by controller/reconcile.ts and controller/main.ts):
//   new EventRecorder({ kc, component, log, instance?, aggregateWindowMs? })
//   record(obj: { apiVersion?, kind?, metadata }, type: 'Normal' | 'Warning', reason, message): void
//   forget(obj)             (the object was deleted: its Events are no longer aggregated)
//   idle(): Promise<void>   (resolves when every recorded Event has been written; for tests and shutdown)
//   written: number; remembered: number (aggregation entries held); holds(namespace, name): boolean
import { randomBytes } from 'node:crypto';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../proto/common/log.js';

export type EventType = 'Normal' | 'Warning';

export interface EventSubject {
  apiVersion?: string | undefined;
  kind?: string | undefined;
  metadata?: { name?: string | undefined; namespace?: string | undefined; uid?: string | undefined; resourceVersion?: string | undefined } | undefined;
}

/** The calls the recorder makes; the default uses CoreV1Api. Unit tests pass a fake. */
export interface EventsApi {
  create(namespace: string, event: CoreV1Event): Promise<CoreV1Event>;
  /** Merge-patches the repeat count and last time of an Event already written. */
  bump(namespace: string, name: string, change: { count: number; lastTimestamp: Date }): Promise<CoreV1Event>;
}

export interface EventRecorderOptions {
  kc?: KubeConfig;
  api?: EventsApi;
  /** Reporting component, e.g. "stoker-controller". */
  component: string;
  /** Reporting instance (pod or host name). */
  instance?: string;
  log: Logger;
  aggregateWindowMs?: number;
  now?: () => Date;
  /** Called after each Event write (for a metric). */
  onWrite?: (type: EventType, reason: string) => void;
}

/** Event messages are capped by the API server at 1 KiB; keep ours well inside. */
const MAX_MESSAGE = 1024;
const MAX_CACHE = 4096;

/** An Event already written, as much of it as aggregation needs. */
interface Seen {
  name: string;
  count: number;
  /** When it was last written (ms). */
  at: number;
}

/** The part of an aggregation key that names the object; `forget` drops every key with it. */
function objectPrefix(namespace: string, name: string, uid: string): string {
  return [namespace, name, uid, ''].join('\u0000');
}

export function coreEventsApi(kc: KubeConfig): EventsApi {
  const api = kc.makeApiClient(CoreV1Api);
  return {
    create: (namespace, body) => api.createNamespacedEvent({ namespace, body }),
    bump: (namespace, name, change) =>
      api.patchNamespacedEvent({ namespace, name, body: { count: change.count, lastTimestamp: change.lastTimestamp.toISOString() } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
  };
}

export class EventRecorder {
  written = 0;
  private readonly api: EventsApi;
  private readonly seen = new Map<string, Seen>();
  private chain: Promise<void> = Promise.resolve();
  private readonly windowMs: number;
  private readonly now: () => Date;

  constructor(private readonly opts: EventRecorderOptions) {
    if (opts.api) this.api = opts.api;
    else if (opts.kc) this.api = coreEventsApi(opts.kc);
    else throw new Error('EventRecorder needs kc or api');
    this.windowMs = opts.aggregateWindowMs ?? 10 * 60_000;
    this.now = opts.now ?? (() => new Date());
  }

  record(obj: EventSubject, type: EventType, reason: string, message: string): void {
    try {
      const name = obj.metadata?.name;
      if (!name) throw new Error('object has no name');
      const namespace = obj.metadata?.namespace || 'default';
      const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
      const key = objectPrefix(namespace, name, obj.metadata?.uid ?? '') + [obj.kind ?? '', type, reason, text].join('\u0000');
      const now = this.now();
      this.chain = this.chain.then(() => this.write(key, obj, namespace, name, type, reason, text, now));
    } catch (err) {
      this.opts.log.warn({ reason, err: err instanceof Error ? err.message : String(err) }, 'cannot record event');
    }
  }

  /** Resolves when every Event recorded so far has been written (or has failed). */
  idle(): Promise<void> {
    return this.chain;
  }

  /**
   * The object was deleted: drops what aggregation keeps for it. Runs after the Events recorded
   * before it, so a write still queued for the object does not bring its entry back.
   */
  forget(obj: EventSubject): void {
    const name = obj.metadata?.name;
    if (!name) return;
    const prefix = objectPrefix(obj.metadata?.namespace || 'default', name, obj.metadata?.uid ?? '');
    this.chain = this.chain.then(() => {
      for (const key of [...this.seen.keys()]) if (key.startsWith(prefix)) this.seen.delete(key);
    });
  }

  /** Aggregation entries held now (Events that a repeat within the window would update). */
  get remembered(): number {
    return this.seen.size;
  }

  /** Whether anything is kept for an object of this namespace and name (any uid). */
  holds(namespace: string, name: string): boolean {
    const prefix = [namespace, name, ''].join('\u0000');
    for (const key of this.seen.keys()) if (key.startsWith(prefix)) return true;
    return false;
  }

  private async write(
    key: string,
    obj: EventSubject,
    namespace: string,
    name: string,
    type: EventType,
    reason: string,
    message: string,
    now: Date,
  ): Promise<void> {
    try {
      const prev = this.seen.get(key);
      if (prev && now.getTime() - prev.at < this.windowMs) {
        const count = prev.count + 1;
        try {
          await this.api.bump(namespace, prev.name, { count, lastTimestamp: now });
          this.remember(key, { name: prev.name, count, at: now.getTime() });
          this.written++;
          this.opts.onWrite?.(type, reason);
          return;
        } catch (err) {
          // The Event expired or changed under us: start a fresh one.
          this.opts.log.debug({ reason, err: err instanceof Error ? err.message : String(err) }, 'event update failed; creating');
        }
      }
      const event: CoreV1Event = {
        metadata: { name: `${name}.${now.getTime().toString(16)}${randomBytes(2).toString('hex')}`, namespace },
        involvedObject: {
          ...(obj.apiVersion ? { apiVersion: obj.apiVersion } : {}),
          ...(obj.kind ? { kind: obj.kind } : {}),
          name,
          namespace,
          ...(obj.metadata?.uid ? { uid: obj.metadata.uid } : {}),
          ...(obj.metadata?.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
        },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        action: reason,
        source: { component: this.opts.component, ...(this.opts.instance ? { host: this.opts.instance } : {}) },
        reportingComponent: this.opts.component,
        reportingInstance: this.opts.instance ?? this.opts.component,
      };
      const saved = await this.api.create(namespace, event);
      this.remember(key, { name: saved.metadata?.name ?? event.metadata.name ?? '', count: saved.count ?? 1, at: now.getTime() });
      this.written++;
      this.opts.onWrite?.(type, reason);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      this.opts.log.warn(
        { namespace, name, reason, code, err: err instanceof Error ? err.message.slice(0, 300) : String(err) },
        'event not recorded',
      );
    }
  }

  /** Keeps `seen` in the order of last write, so entries past the window are at the front. */
  private remember(key: string, seen: Seen): void {
    this.seen.delete(key);
    this.seen.set(key, seen);
    for (const [k, s] of this.seen) {
      if (this.seen.size <= MAX_CACHE && seen.at - s.at < this.windowMs) break;
      this.seen.delete(k);
    }
  }
}
