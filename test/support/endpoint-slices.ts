// EndpointSlices for agents that run outside a cluster, written the way Kubernetes' endpointslice
// controller writes them for the agents' headless Service. Tests, the benchmark and the demo run
// no kube-controller-manager, so this test support code plays that controller's part: it is what
// the controller (controller/k8s/agent-endpoints.ts) reads to find each node's agent.
//
//   const address = agentAddress();                 // the run's own address (hack/agent-net.sh)
//   await publishAgentEndpoint(kc, { namespace, node: 'node-1', address, port: agent.grpcPort });
//   await publishAgentEndpoint(kc, { ..., ready: false });   // its readiness probe failed
//   await withdrawAgentEndpoint(kc, { namespace, node: 'node-1' });   // its pod is gone
//
// The real controller puts endpoints whose named port resolves to the same number in one slice;
// agents in one process share an address and differ by port, so each gets a slice of its own,
// "<service>-<node>". The API server refuses loopback (and link-local) addresses in EndpointSlices,
// as it does for Pod IPs, so agents that are to be found listen on agentAddress(), not 127.0.0.1.
import { DiscoveryV1Api, type KubeConfig, type V1EndpointSlice } from '@kubernetes/client-node';
import { AGENT_GRPC_PORT_NAME, ENDPOINTSLICE_CONTROLLER, MANAGED_BY_LABEL, SERVICE_NAME_LABEL } from '../../controller/k8s/agent-endpoints.js';

/** The Service name the chart gives the agents with the release name "stoker", and the controller's default. */
export const AGENT_SERVICE = 'stoker-agent';

/**
 * The address agents listen on to be found through an EndpointSlice: the host end of a veth pair
 * the run made for itself (hack/agent-net.sh; the integration tests' global setup, the benchmarks
 * and the demo set STOKER_AGENT_ADDRESS). Never one of the machine's own interfaces.
 */
export function agentAddress(): string {
  const address = process.env.STOKER_AGENT_ADDRESS;
  if (!address) {
    throw new Error(
      'STOKER_AGENT_ADDRESS is not set: the API server refuses loopback addresses in EndpointSlices, so agents listen on an address of the run\'s own (hack/agent-net.sh up NAME; npm test and npm run bench set it)',
    );
  }
  return address;
}

export interface AgentEndpointOptions {
  namespace: string;
  node: string;
  /** The agents' headless Service; default AGENT_SERVICE. */
  service?: string;
}

function sliceName(service: string, node: string): string {
  return `${service}-${node}`.slice(0, 253).replace(/[-.]+$/, '');
}

/** The slice Kubernetes would keep for one agent pod on `node`. */
export function agentEndpointSlice(opts: AgentEndpointOptions & { address: string; port: number; ready?: boolean }): V1EndpointSlice {
  const service = opts.service ?? AGENT_SERVICE;
  const ready = opts.ready ?? true;
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: sliceName(service, opts.node),
      namespace: opts.namespace,
      labels: { [SERVICE_NAME_LABEL]: service, [MANAGED_BY_LABEL]: ENDPOINTSLICE_CONTROLLER },
    },
    addressType: opts.address.includes(':') ? 'IPv6' : 'IPv4',
    ports: [{ name: AGENT_GRPC_PORT_NAME, port: opts.port, protocol: 'TCP' }],
    endpoints: [
      {
        addresses: [opts.address],
        nodeName: opts.node,
        conditions: { ready, serving: ready, terminating: false },
        targetRef: { kind: 'Pod', namespace: opts.namespace, name: `${service}-${opts.node}` },
      },
    ],
  };
}

/** Creates or replaces the agent's slice (as the endpointslice controller does when the pod changes). */
export async function publishAgentEndpoint(kc: KubeConfig, opts: AgentEndpointOptions & { address: string; port: number; ready?: boolean }): Promise<void> {
  const api = kc.makeApiClient(DiscoveryV1Api);
  const body = agentEndpointSlice(opts);
  const name = body.metadata?.name ?? '';
  for (let attempt = 0; ; attempt++) {
    try {
      const current = await api.readNamespacedEndpointSlice({ namespace: opts.namespace, name });
      const resourceVersion = current.metadata?.resourceVersion;
      await api.replaceNamespacedEndpointSlice({ namespace: opts.namespace, name, body: { ...body, metadata: { ...body.metadata, ...(resourceVersion ? { resourceVersion } : {}) } } });
      return;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 404) {
        try {
          await api.createNamespacedEndpointSlice({ namespace: opts.namespace, body });
          return;
        } catch (createErr) {
          if ((createErr as { code?: unknown }).code !== 409 || attempt >= 3) throw createErr;
          continue;
        }
      }
      if (code !== 409 || attempt >= 3) throw err;
    }
  }
}

/** Deletes the agent's slice (its pod is gone); one already gone is not an error. */
export async function withdrawAgentEndpoint(kc: KubeConfig, opts: AgentEndpointOptions): Promise<void> {
  const api = kc.makeApiClient(DiscoveryV1Api);
  try {
    await api.deleteNamespacedEndpointSlice({ namespace: opts.namespace, name: sliceName(opts.service ?? AGENT_SERVICE, opts.node) });
  } catch (err) {
    if ((err as { code?: unknown }).code !== 404) throw err;
  }
}
