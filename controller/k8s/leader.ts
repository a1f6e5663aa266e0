// Leader election through a coordination.k8s.io/v1 Lease, after client-go's leaderelection:
//   - a candidate reads the Lease every retryPeriod; it takes it when nobody holds it, when the
//     holder released it (empty holderIdentity), when it holds it itself (a leader that stepped
//     down and comes back first), or when the record has not changed for leaseDuration as
//     measured by this replica's own clock from the moment its read returned (no trust in other
//     clocks, and a read that hung in an outage does not make an old record look fresh);
//   - every write is a replace with the resourceVersion read, so two candidates cannot both win;
//   - the leader renews every retryPeriod; if it has not renewed successfully for renewDeadline it
//     steps down (its term's AbortSignal aborts) and becomes a candidate again. Every Lease call
//     is cancelled at that deadline, so a call an API server never answers (etcd gone behind it)
//     cannot keep a leader leading past it: renewDeadline < leaseDuration is what lets a standby
//     wait out the Lease and know the old leader has stopped, as in client-go. An API server that
//     is away longer than renewDeadline therefore ends the term; dispatch stops, the agents'
//     tasks run on, and whichever replica leads next sends the same task ids and joins them;
//   - on stop, a leader releases the Lease (empty holder, 1 s duration) so a standby takes over
//     at once instead of waiting out the Lease.
//
// Interface (stable, used by controller/main.ts):
//   const elector = new LeaderElector({ api | kc, namespace, name, identity, leaseDurationMs,
//     renewDeadlineMs, retryPeriodMs, log, onStartedLeading(termSignal), onStoppedLeading() })
//   elector.start(); elector.isLeader(); await elector.stop()
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../../proto/common/log.js';
import { sleep } from '../../proto/common/sleep.js';
import { kubeErrorStatus } from '../../proto/common/kube-errors.js';
import { abortable } from './abortable.js';

/** The Lease calls the elector makes; the default uses CoordinationV1Api. Unit tests pass a fake. */
export interface LeaseApi {
  /** undefined when the Lease does not exist. Aborting `signal` ends the request. */
  read(namespace: string, name: string, signal?: AbortSignal): Promise<V1Lease | undefined>;
  create(namespace: string, lease: V1Lease, signal?: AbortSignal): Promise<V1Lease>;
  /** Fails with code 409 when lease.metadata.resourceVersion is stale. */
  replace(namespace: string, name: string, lease: V1Lease, signal?: AbortSignal): Promise<V1Lease>;
}


export function coordinationLeaseApi(kc: KubeConfig): LeaseApi {
  const api = kc.makeApiClient(CoordinationV1Api);
  return {
    read: async (namespace, name, signal) => {
      try {
        return await api.readNamespacedLease({ namespace, name }, signal && abortable(signal));
      } catch (err) {
        if (kubeErrorStatus(err) === 404) return undefined;
        throw err;
      }
    },
    create: (namespace, body, signal) => api.createNamespacedLease({ namespace, body }, signal && abortable(signal)),
    replace: (namespace, name, body, signal) => api.replaceNamespacedLease({ namespace, name, body }, signal && abortable(signal)),
  };
}

export interface LeaderElectorOptions {
  api?: LeaseApi;
  kc?: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  /** Called when this replica becomes leader; the signal aborts when the term ends. */
  onStartedLeading: (termSignal: AbortSignal) => void;
  /** Called when this replica stops leading (lost the Lease, or stop()). */
  onStoppedLeading?: () => void;
  now?: () => number;
  /** Stops campaigning (and releases a held Lease) when aborted, as stop() does. */
  signal?: AbortSignal;
}


function jittered(ms: number): number {
  return Math.round(ms * (1 + Math.random() * 0.2));
}

/** `call(signal)`, cancelled after `ms`: the signal aborts and the result rejects, even if `call` ignores the signal. */
async function within<R>(ms: number, what: string, call: (signal: AbortSignal) => Promise<R>): Promise<R> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(new Error(`${what}: no answer within ${Math.round(ms)} ms`));
    }, Math.max(1, ms));
  });
  try {
    return await Promise.race([call(abort.signal), expired]);
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

export class LeaderElector {
  private readonly api: LeaseApi;
  private readonly now: () => number;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private term: AbortController | undefined;
  /** The last Lease record seen and when (by our clock) it last changed. */
  private observed: { key: string; at: number } | undefined;
  private lastRenew = 0;

  constructor(private readonly opts: LeaderElectorOptions) {
    if (opts.api) this.api = opts.api;
    else if (opts.kc) this.api = coordinationLeaseApi(opts.kc);
    else throw new Error('LeaderElector needs api or kc');
    this.now = opts.now ?? Date.now;
  }

  isLeader(): boolean {
    return this.term !== undefined && !this.term.signal.aborted;
  }

  start(): void {
    if (!this.loop) this.opts.signal?.addEventListener('abort', () => void this.stop(), { once: true });
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader ends its term and releases the Lease. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    if (this.isLeader()) {
      this.endTerm('stopping');
      await this.release();
    }
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      let ok = false;
      const roundStart = this.now();
      // A leader's calls end at its renew deadline. A candidate's end after two retry periods (at
      // most renewDeadline): one that hung while the API server was away is soon retried, so a
      // replica leads again within seconds of its return.
      const budget = this.isLeader()
        ? this.lastRenew + this.opts.renewDeadlineMs - roundStart
        : Math.min(this.opts.renewDeadlineMs, Math.max(2 * this.opts.retryPeriodMs, 2000));
      try {
        if (budget > 0) ok = await within(budget, `lease ${this.opts.name}`, (callSignal) => this.tryAcquireOrRenew(AbortSignal.any([callSignal, signal])));
      } catch (err) {
        this.opts.log.warn({ lease: this.opts.name, code: kubeErrorStatus(err), err: err instanceof Error ? err.message : String(err) }, 'leader election: lease call failed');
      }
      if (signal.aborted) break;
      if (ok) {
        // The deadline counts from the start of the round that renewed, as client-go's does.
        this.lastRenew = roundStart;
        if (!this.isLeader()) this.beginTerm();
      } else if (this.isLeader() && this.now() - this.lastRenew >= this.opts.renewDeadlineMs) {
        this.endTerm('could not renew the Lease within the renew deadline');
      }
      await sleep(this.isLeader() ? this.opts.retryPeriodMs : jittered(this.opts.retryPeriodMs), signal);
    }
  }

  private beginTerm(): void {
    this.term = new AbortController();
    this.opts.log.info({ lease: this.opts.name, identity: this.opts.identity }, 'became leader');
    try {
      this.opts.onStartedLeading(this.term.signal);
    } catch (err) {
      this.opts.log.error({ err: err instanceof Error ? err.message : String(err) }, 'onStartedLeading failed');
    }
  }

  private endTerm(why: string): void {
    const term = this.term;
    this.term = undefined;
    if (!term) return;
    this.opts.log.warn({ lease: this.opts.name, identity: this.opts.identity, why }, 'stopped leading');
    term.abort();
    try {
      this.opts.onStoppedLeading?.();
    } catch (err) {
      this.opts.log.error({ err: err instanceof Error ? err.message : String(err) }, 'onStoppedLeading failed');
    }
  }

  /** One round: returns true when this replica holds the Lease afterwards. */
  private async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    const durationSeconds = Math.max(1, Math.round(this.opts.leaseDurationMs / 1000));
    const lease = await this.api.read(namespace, name, signal);
    // Observed now, when the read has returned: a read that took long must not date the record earlier.
    const nowMs = this.now();
    if (!lease) {
      const stamp = new V1MicroTime(nowMs);
      try {
        await this.api.create(
          namespace,
          {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 },
          },
          signal,
        );
      } catch (err) {
        if (kubeErrorStatus(err) === 409) return false; // another candidate created it first
        throw err;
      }
      this.observed = undefined;
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const key = `${holder}|${String(spec.renewTime)}|${lease.metadata?.resourceVersion ?? ''}`;
    if (!this.observed || this.observed.key !== key) this.observed = { key, at: nowMs };
    const observedDurationMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder !== '' && holder !== identity && this.observed.at + observedDurationMs > nowMs) return false;

    const stamp = new V1MicroTime(nowMs);
    const taking = holder !== identity;
    const next: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: stamp,
        ...(taking ? { acquireTime: stamp, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      },
    };
    try {
      const saved = await this.api.replace(namespace, name, next, signal);
      this.observed = {
        key: `${identity}|${String(saved.spec?.renewTime)}|${saved.metadata?.resourceVersion ?? ''}`,
        at: nowMs,
      };
      if (taking) this.opts.log.info({ lease: name, identity, previous: holder || undefined }, 'acquired leader Lease');
      return true;
    } catch (err) {
      if (kubeErrorStatus(err) === 409) return false;
      throw err;
    }
  }

  /** Gives the Lease up so another replica can take it at once. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.opts;
    try {
      await within(this.opts.renewDeadlineMs, `release lease ${name}`, async (signal) => {
        const lease = await this.api.read(namespace, name, signal);
        if (!lease || lease.spec?.holderIdentity !== identity) return;
        const stamp = new V1MicroTime(this.now());
        await this.api.replace(namespace, name, { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: stamp } }, signal);
      });
      this.opts.log.info({ lease: name, identity }, 'released leader Lease');
    } catch (err) {
      this.opts.log.warn({ lease: name, code: kubeErrorStatus(err), err: err instanceof Error ? err.message : String(err) }, 'could not release leader Lease');
    }
  }
}
