// The directory of agents, built from their Leases (see proto/common/agent-lease.ts).
//
// Each agent keeps a Lease "stoker-agent-<node>" in Stoker's namespace with holderIdentity = node
// name, the annotation stoker.io/grpc-endpoint = "host:port", renewTime and leaseDurationSeconds,
// and renews it every third of that duration.
//
// An agent is gone only on evidence, never because the controller itself was cut off (it then
// could not have seen renewals either):
//   - its Lease was deleted (the agent withdrew it), as a watch event or a successful list says; or
//   - its Lease was not renewed while the controller was watching a healthy API server for a whole
//     Lease duration: renewTime + duration and healthySince + duration are both past, where
//     healthySince is when the lease informer last came back in step (its freshSince) and, if a
//     probe is given, when the API server and etcd last started answering (ApiHealth). The verdict
//     is confirmed by a fresh list first (a stalled watch could have missed a renewal).
// Until then a Lease that looks lapsed is presumed still held: an agent seen live keeps its
// endpoint (work in flight goes on, as the agent keeps serving while it cannot renew); one never
// seen live by this controller (it started during an outage) is listed as unconfirmed, a node to
// wait for rather than to dispatch to or to give up on.
//
// The directory emits 'change' when the set of agents, their endpoints or the unconfirmed set
// changes: on Lease events and on timers (a Lease coming due, a verdict).
//
// Interface (stable, used by controller/reconcile.ts, controller/dispatch.ts and controller/main.ts):
//   new AgentDirectory({ informer, health?, log?, timers?, recheckMs? })
//   live(now?: Date): Map<string /*node*/, AgentInfo>   (live, or presumed live)
//   unconfirmed(now?: Date): Set<string /*node*/>
//   get(node, now?): AgentInfo | undefined
//   on('change', () => void); off('change', fn); stop()
import { EventEmitter } from 'node:events';
import type { V1Lease } from '@kubernetes/client-node';
import { AGENT_ENDPOINT_ANNOTATION, AGENT_LEASE_LABEL, AGENT_VERSION_ANNOTATION } from '../../proto/common/agent-lease.js';
import type { Logger } from '../../proto/common/log.js';
import { realTimers, type Informer, type InformerTimers } from './informer.js';

export interface AgentInfo {
  /** gRPC endpoint, "host:port". */
  endpoint: string;
  version?: string;
  renewedAt: Date;
  /** When the announcement lapses unless renewed. */
  expiresAt: Date;
  /** True while the Lease looks lapsed but the agent is not proven gone (see above). */
  presumed?: boolean;
}

export interface AgentDirectoryOptions {
  /** The Leases. Without freshSince the cache counts as current; without relist a verdict is not re-checked. */
  informer: Pick<Informer<V1Lease>, 'list' | 'on' | 'off'> & Partial<Pick<Informer<V1Lease>, 'freshSince' | 'relist'>>;
  /** Whether the API server and etcd answer (controller/k8s/api-health.ts). */
  health?: { healthySince(): number | undefined };
  log?: Logger;
  timers?: InformerTimers;
  /** How often to look again while an outage keeps a lapsed Lease from a verdict. Default 1 s. */
  recheckMs?: number;
}

function toDate(v: unknown): Date | undefined {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? undefined : v;
  if (typeof v === 'string' && v) {
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? undefined : d;
  }
  return undefined;
}

/** Reads one Lease; undefined when it is not a usable agent announcement. */
export function agentFromLease(lease: V1Lease): { node: string; info: AgentInfo } | undefined {
  if (lease.metadata?.labels?.[AGENT_LEASE_LABEL] !== 'true') return undefined;
  const node = lease.spec?.holderIdentity;
  const endpoint = lease.metadata.annotations?.[AGENT_ENDPOINT_ANNOTATION];
  const renewedAt = toDate(lease.spec?.renewTime) ?? toDate(lease.spec?.acquireTime);
  const duration = lease.spec?.leaseDurationSeconds;
  if (!node || !endpoint || !renewedAt || !duration || duration <= 0) return undefined;
  const version = lease.metadata.annotations?.[AGENT_VERSION_ANNOTATION];
  return {
    node,
    info: {
      endpoint,
      ...(version ? { version } : {}),
      renewedAt,
      expiresAt: new Date(renewedAt.getTime() + duration * 1000),
    },
  };
}

/** A lapsed Lease's state: when it may be judged, or undefined while the API server is not healthy. */
interface Lapsed {
  node: string;
  info: AgentInfo;
  /** The Lease as of its last renewal; a verdict holds only for this renewal. */
  renewal: number;
  dueAt: number | undefined;
}

export class AgentDirectory {
  private readonly emitter = new EventEmitter();
  private readonly timers: InformerTimers;
  private readonly recheckMs: number;
  private readonly createdAt: number;
  private timer: unknown;
  private signature = '';
  /** Nodes whose agent this directory has seen live, by their Lease's renewal time then. */
  private readonly seen = new Set<string>();
  /** Verdicts: node -> the renewal (ms) its Lease was proven lapsed at. */
  private readonly gone = new Map<string, number>();
  private confirming: Promise<void> | undefined;
  private stopped = false;
  private readonly onLease = (): void => this.changed();

  constructor(private readonly opts: AgentDirectoryOptions) {
    this.timers = opts.timers ?? realTimers;
    this.recheckMs = opts.recheckMs ?? 1000;
    this.createdAt = this.timers.now();
    this.emitter.setMaxListeners(0);
    opts.informer.on('add', this.onLease);
    opts.informer.on('update', this.onLease);
    opts.informer.on('delete', this.onLease);
    this.changed();
  }

  /** Agents by node name: live ones, and those presumed live (seen live, Lease lapsed, not proven gone). */
  live(now: Date = new Date(this.timers.now())): Map<string, AgentInfo> {
    const out = new Map<string, AgentInfo>();
    const t = now.getTime();
    for (const [node, info] of this.latest()) {
      if (info.expiresAt.getTime() >= t) out.set(node, info);
      else if (this.seen.has(node) && this.gone.get(node) !== info.renewedAt.getTime()) out.set(node, { ...info, presumed: true });
    }
    return out;
  }

  /** Nodes whose Lease had lapsed before this directory ever saw it live and that are not proven gone yet. */
  unconfirmed(now: Date = new Date(this.timers.now())): Set<string> {
    const out = new Set<string>();
    const t = now.getTime();
    for (const [node, info] of this.latest()) {
      if (info.expiresAt.getTime() < t && !this.seen.has(node) && this.gone.get(node) !== info.renewedAt.getTime()) out.add(node);
    }
    return out;
  }

  get(node: string, now?: Date): AgentInfo | undefined {
    return this.live(now).get(node);
  }

  on(event: 'change', fn: () => void): void {
    this.emitter.on(event, fn);
  }

  off(event: 'change', fn: () => void): void {
    this.emitter.off(event, fn);
  }

  stop(): void {
    this.stopped = true;
    this.opts.informer.off('add', this.onLease);
    this.opts.informer.off('update', this.onLease);
    this.opts.informer.off('delete', this.onLease);
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The newest usable announcement per node. */
  private latest(): Map<string, AgentInfo> {
    const out = new Map<string, AgentInfo>();
    for (const lease of this.opts.informer.list()) {
      const agent = agentFromLease(lease);
      if (!agent) continue;
      const prev = out.get(agent.node);
      if (!prev || prev.renewedAt < agent.info.renewedAt) out.set(agent.node, agent.info);
    }
    return out;
  }

  /**
   * Since when the controller has been seeing the API server as it is, without a break: the later
   * of the informer's and the probe's start of health (and of this directory's own start).
   */
  private healthySince(): number | undefined {
    let since = this.createdAt;
    const sources = [this.opts.informer.freshSince ? this.opts.informer.freshSince() : since, this.opts.health ? this.opts.health.healthySince() : since];
    for (const s of sources) {
      if (s === undefined) return undefined;
      since = Math.max(since, s);
    }
    return since;
  }

  /** Lapsed Leases not yet judged, each with the time a verdict may be reached. */
  private lapsed(now: number): Lapsed[] {
    const healthy = this.healthySince();
    const out: Lapsed[] = [];
    for (const [node, info] of this.latest()) {
      const renewal = info.renewedAt.getTime();
      if (info.expiresAt.getTime() >= now || this.gone.get(node) === renewal) continue;
      const duration = info.expiresAt.getTime() - renewal;
      out.push({ node, info, renewal, dueAt: healthy === undefined ? undefined : Math.max(renewal, healthy) + duration });
    }
    return out;
  }

  /** Re-reads the Leases, records what it sees, emits 'change' if anything a caller sees changed, re-arms the timer. */
  private changed(): void {
    if (this.stopped) return;
    const now = this.timers.now();
    const current = this.latest();
    for (const [node, info] of current) {
      if (info.expiresAt.getTime() >= now) this.seen.add(node);
      const verdict = this.gone.get(node);
      if (verdict !== undefined && verdict !== info.renewedAt.getTime()) this.gone.delete(node);
    }
    // Forget nodes whose Lease is gone altogether (deleted: that is the agent withdrawing).
    for (const node of [...this.seen]) if (!current.has(node)) this.seen.delete(node);
    for (const node of [...this.gone.keys()]) if (!current.has(node)) this.gone.delete(node);

    const lapsed = this.lapsed(now);
    if (lapsed.some((l) => l.dueAt !== undefined && l.dueAt <= now)) void this.confirm();

    let next = Infinity;
    for (const info of current.values()) if (info.expiresAt.getTime() >= now) next = Math.min(next, info.expiresAt.getTime() + 1);
    for (const l of lapsed) next = Math.min(next, l.dueAt !== undefined && l.dueAt > now ? l.dueAt : now + this.recheckMs);
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (next !== Infinity) {
      this.timer = this.timers.setTimeout(() => {
        this.timer = undefined;
        this.changed();
      }, Math.max(0, next - now));
    }

    const live = this.live(new Date(now));
    const unconfirmed = this.unconfirmed(new Date(now));
    const signature = [...[...live].map(([n, a]) => `${n}=${a.endpoint}`).sort(), ...[...unconfirmed].map((n) => `?${n}`).sort()].join(',');
    if (signature !== this.signature) {
      this.signature = signature;
      this.opts.log?.debug({ agents: live.size, unconfirmed: unconfirmed.size }, 'agents changed');
      this.emitter.emit('change');
    }
  }

  /** Lists the Leases again and judges the ones still lapsed whose time has come. */
  private confirm(): Promise<void> {
    this.confirming ??= (async () => {
      try {
        const startedAt = this.timers.now();
        // A list that fails leaves the informer not fresh: no verdict until it has been fresh a whole Lease again.
        const listed = this.opts.informer.relist ? await this.opts.informer.relist() : true;
        if (!listed || this.stopped) return;
        for (const l of this.lapsed(startedAt)) {
          if (l.dueAt === undefined || l.dueAt > startedAt) continue;
          this.gone.set(l.node, l.renewal);
          this.seen.delete(l.node);
          this.opts.log?.info(
            { node: l.node, renewedAt: l.info.renewedAt.toISOString(), leaseSeconds: (l.info.expiresAt.getTime() - l.renewal) / 1000 },
            'agent gone: its Lease was not renewed while the API server was answering',
          );
        }
      } finally {
        this.confirming = undefined;
        this.changed();
      }
    })();
    return this.confirming;
  }
}
