// Records core/v1 Events about objects, as `kubectl describe` and `kubectl get events` show them.
//
// Repeats are aggregated like client-go's event correlator: the same (object, type, reason,
// message) within `aggregateWindowMs` bumps `count` and `lastTimestamp` of the Event already
// written (a merge patch, as client-go does) instead of creating a new one. Writes run in the background, one at a time; `record`
// never throws and never blocks the caller; failures are logged and dropped. Callers must not put
// credentials in messages (the reconciler builds messages from its own words and user values).
//
// Interface (stable, used by controller/reconcile.ts):
//   new EventRecorder({ kc, component, log, instance?, aggregateWindowMs? })
//   record(obj: { apiVersion?, kind?, metadata }, type: 'Normal' | 'Warning', reason, message): void
//   idle(): Promise<void>   (resolves when every recorded Event has been written; for tests and shutdown)
//   written: number
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

interface Seen {
  event: CoreV1Event;
  at: number;
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
      const key = [namespace, obj.kind ?? '', name, obj.metadata?.uid ?? '', type, reason, text].join('\u0000');
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
      if (prev && now.getTime() - prev.at < this.windowMs && prev.event.metadata.name) {
        const count = (prev.event.count ?? 1) + 1;
        try {
          await this.api.bump(namespace, prev.event.metadata.name, { count, lastTimestamp: now });
          this.remember(key, { ...prev.event, count, lastTimestamp: now }, now);
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
      this.remember(key, saved, now);
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

  private remember(key: string, event: CoreV1Event, now: Date): void {
    this.seen.delete(key);
    this.seen.set(key, { event, at: now.getTime() });
    if (this.seen.size > MAX_CACHE) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }
}
