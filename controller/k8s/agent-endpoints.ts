// Where each node's agent is, as Kubernetes itself records it: the EndpointSlices of the agents'
// headless Service.
//
// The agent DaemonSet has a headless Service (deploy/helm/stoker/templates/services.yaml) with a
// port named "grpc". Kubernetes' endpointslice controller (kube-controller-manager) keeps that
// Service's EndpointSlices: one endpoint per agent pod, with the pod's IP, the node the pod was
// scheduled to (`nodeName`, from the Pod's spec) and `conditions.ready` (from the pod's readiness
// probe, the agent's /readyz). No agent writes any of it, and an agent's ServiceAccount may not
// write anything at all: a compromised agent can neither claim another node nor move that node's
// tasks, and the pull credentials they carry, to itself.
//
// Only slices labelled `kubernetes.io/service-name=<service>` and
// `endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io` count (the informer
// asks for exactly those; agentsFromSlices checks again). An agent is live while a ready endpoint
// of those slices names its node. It is gone on evidence only: its endpoint was removed or turned
// not ready, as a watch event or a successful list says. Nothing here expires by a clock, so an
// API server the controller cannot reach changes nothing: the cache keeps what it last saw.
//
// Interface (the same shape as the agent directory controller/reconcile.ts reads):
//   new AgentEndpointDirectory({ informer: Informer<V1EndpointSlice>, service, log? })
//   live(): Map<string /*node*/, AgentEndpoint>;  get(node): AgentEndpoint | undefined
//   on('change', fn); off('change', fn); stop()
//   agentSliceSelector(service)   // the label selector for the informer
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import type { Logger } from '../../proto/common/log.js';
import type { Informer } from './informer.js';

/** The label the endpointslice controller puts on a Service's slices. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** The label naming who manages a slice, and the value of Kubernetes' endpointslice controller. */
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const ENDPOINTSLICE_CONTROLLER = 'endpointslice-controller.k8s.io';
/** The name of the agents' gRPC port, in the DaemonSet's container and in the Service. */
export const AGENT_GRPC_PORT_NAME = 'grpc';

export interface AgentEndpoint {
  /** gRPC endpoint, "host:port" (IPv6 in brackets). */
  endpoint: string;
  /** The agent's Pod (the endpoint's targetRef), for logs. */
  pod?: string;
}

/** The informer's label selector for a Service's slices written by the endpointslice controller. */
export function agentSliceSelector(service: string): string {
  return `${SERVICE_NAME_LABEL}=${service},${MANAGED_BY_LABEL}=${ENDPOINTSLICE_CONTROLLER}`;
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * The ready agents the slices show, by node. Slices of another Service or written by anyone but
 * the endpointslice controller are skipped, and so are endpoints without a node, without an IP
 * address of the slice's family, or not ready. When one node has several ready endpoints (a
 * rolling update with surge), the lowest endpoint wins, so every reader picks the same.
 */
export function agentsFromSlices(slices: Iterable<V1EndpointSlice>, service: string): Map<string, AgentEndpoint> {
  const out = new Map<string, AgentEndpoint>();
  for (const slice of slices) {
    const labels = slice.metadata?.labels ?? {};
    if (labels[SERVICE_NAME_LABEL] !== service || labels[MANAGED_BY_LABEL] !== ENDPOINTSLICE_CONTROLLER) continue;
    const family = slice.addressType === 'IPv4' ? 4 : slice.addressType === 'IPv6' ? 6 : 0;
    if (family === 0) continue;
    const port = slice.ports?.find((p) => p.name === AGENT_GRPC_PORT_NAME && (p.protocol ?? 'TCP') === 'TCP')?.port;
    if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) continue;
    for (const e of slice.endpoints ?? []) {
      const node = e.nodeName;
      // Per the API, an unset ready condition means ready; the endpointslice controller always sets it.
      if (!node || e.conditions?.ready === false || e.conditions?.terminating === true) continue;
      const address = e.addresses.find((a) => isIP(a) === family);
      if (address === undefined) continue;
      const endpoint = hostPort(address, port);
      const prev = out.get(node);
      if (prev && prev.endpoint <= endpoint) continue;
      const pod = e.targetRef?.kind === 'Pod' ? e.targetRef.name : undefined;
      out.set(node, { endpoint, ...(pod ? { pod } : {}) });
    }
  }
  return out;
}

export interface AgentEndpointDirectoryOptions {
  /** The slices (an informer with agentSliceSelector(service) in Stoker's namespace). */
  informer: Pick<Informer<V1EndpointSlice>, 'list' | 'on' | 'off'>;
  /** The agents' headless Service. */
  service: string;
  log?: Logger;
}

export class AgentEndpointDirectory {
  private readonly emitter = new EventEmitter();
  private signature = '';
  private readonly onSlice = (): void => this.changed();

  constructor(private readonly opts: AgentEndpointDirectoryOptions) {
    this.emitter.setMaxListeners(0);
    opts.informer.on('add', this.onSlice);
    opts.informer.on('update', this.onSlice);
    opts.informer.on('delete', this.onSlice);
    this.signature = this.signatureOf(this.live());
  }

  /** Live agents by node name. */
  live(): Map<string, AgentEndpoint> {
    return agentsFromSlices(this.opts.informer.list(), this.opts.service);
  }

  get(node: string): AgentEndpoint | undefined {
    return this.live().get(node);
  }

  on(event: 'change', fn: () => void): void {
    this.emitter.on(event, fn);
  }

  off(event: 'change', fn: () => void): void {
    this.emitter.off(event, fn);
  }

  stop(): void {
    this.opts.informer.off('add', this.onSlice);
    this.opts.informer.off('update', this.onSlice);
    this.opts.informer.off('delete', this.onSlice);
  }

  private signatureOf(live: Map<string, AgentEndpoint>): string {
    return [...live].map(([n, a]) => `${n}=${a.endpoint}`).sort().join(',');
  }

  /** Emits 'change' when the set of live agents or an endpoint changed. */
  private changed(): void {
    const live = this.live();
    const signature = this.signatureOf(live);
    if (signature === this.signature) return;
    this.signature = signature;
    this.opts.log?.debug({ agents: live.size }, 'live agents changed');
    this.emitter.emit('change');
  }
}
