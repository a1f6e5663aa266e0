// The directory of live agents, built from their Leases (see proto/common/agent-lease.ts).
//
// Each agent keeps a Lease "stoker-agent-<node>" in Stoker's namespace with holderIdentity = node
// name, the annotation stoker.io/grpc-endpoint = "host:port", renewTime and leaseDurationSeconds.
// An agent is live while renewTime + leaseDurationSeconds >= now. The directory emits 'change'
// when a Lease is added, renewed with a new endpoint, deleted, or lapses (a timer fires at the
// next expiry, so a silent agent drops out without any API event).
//
// Interface (stable, used by controller/reconcile.ts and controller/dispatch.ts):
//   new AgentDirectory({ informer: Informer<V1Lease>, log?, now?, timers? })
//   live(now?: Date): Map<string /*node*/, AgentInfo>
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
}

export interface AgentDirectoryOptions {
  informer: Pick<Informer<V1Lease>, 'list' | 'on' | 'off'>;
  log?: Logger;
  timers?: InformerTimers;
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

export class AgentDirectory {
  private readonly emitter = new EventEmitter();
  private readonly timers: InformerTimers;
  private expiryTimer: unknown;
  private lastLive = '';
  private readonly onLease = (): void => this.changed();

  constructor(private readonly opts: AgentDirectoryOptions) {
    this.timers = opts.timers ?? realTimers;
    this.emitter.setMaxListeners(0);
    opts.informer.on('add', this.onLease);
    opts.informer.on('update', this.onLease);
    opts.informer.on('delete', this.onLease);
  }

  /** Live agents by node name. */
  live(now: Date = new Date(this.timers.now())): Map<string, AgentInfo> {
    const out = new Map<string, AgentInfo>();
    for (const lease of this.opts.informer.list()) {
      const agent = agentFromLease(lease);
      if (!agent || agent.info.expiresAt.getTime() < now.getTime()) continue;
      const prev = out.get(agent.node);
      if (!prev || prev.renewedAt < agent.info.renewedAt) out.set(agent.node, agent.info);
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
    this.opts.informer.off('add', this.onLease);
    this.opts.informer.off('update', this.onLease);
    this.opts.informer.off('delete', this.onLease);
    if (this.expiryTimer !== undefined) this.timers.clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
  }

  /** Emits 'change' when the set of live agents or their endpoints changed; re-arms the expiry timer. */
  private changed(): void {
    const now = this.timers.now();
    const live = this.live(new Date(now));
    const signature = [...live].map(([n, a]) => `${n}=${a.endpoint}`).sort().join(',');
    if (this.expiryTimer !== undefined) this.timers.clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    let next = Infinity;
    for (const a of live.values()) next = Math.min(next, a.expiresAt.getTime());
    if (next !== Infinity) {
      this.expiryTimer = this.timers.setTimeout(() => {
        this.expiryTimer = undefined;
        this.changed();
      }, Math.max(0, next - now) + 1);
    }
    if (signature !== this.lastLive) {
      this.lastLive = signature;
      this.opts.log?.debug({ agents: live.size }, 'live agents changed');
      this.emitter.emit('change');
    }
  }
}
