// How an agent announces itself to the API server, shared by the agent (agent/announce.ts) and the
// controller (controller/k8s/agents.ts): one coordination.k8s.io/v1 Lease per node in Stoker's
// namespace, renewed as a heartbeat. An agent whose Lease has not been renewed within its
// leaseDurationSeconds is not alive. The Lease's holderIdentity is the node name.

/** Lease name for a node's agent. */
export function agentLeaseName(nodeName: string): string {
  return `stoker-agent-${nodeName}`;
}

/** Label on every agent Lease (value "true"); the controller watches Leases with it. */
export const AGENT_LEASE_LABEL = 'stoker.io/agent';
/** Annotation with the agent's gRPC endpoint, "host:port" (IPv6 hosts in brackets). */
export const AGENT_ENDPOINT_ANNOTATION = 'stoker.io/grpc-endpoint';
/** Annotation with the agent's version. */
export const AGENT_VERSION_ANNOTATION = 'stoker.io/agent-version';
