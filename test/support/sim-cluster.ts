// Simulated nodes for the controller's tests, demo and benchmark: each node is a Node object in a
// real API server, a real agent (startAgent, in this process) on its own port talking to a real
// containerd, and the EndpointSlice Kubernetes would keep for that agent's pod
// (support/endpoint-slices.ts: there is no kube-controller-manager here, so the test writes it as
// the endpointslice controller would). Agents listen on this machine's non-loopback address, since
// the API server refuses loopback addresses in EndpointSlices.
//
//   const node = await startSimNode({ kc, certs, name: 'node-1', containerd, namespace: 'stoker-system' });
//   await node.stopAgent();       // the agent stops answering; its endpoint stays ready (probe not failed yet)
//   await node.setReady(false);   // its readiness probe failed: the endpoint turns not ready
//   await node.stop();            // agent stopped, its EndpointSlice gone (the pod was deleted)
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { resolveAgentConfig } from '../../agent/config.js';
import { resolveControllerConfig, type ControllerFlagInput } from '../../controller/config.js';
import { startController, type RunningController } from '../../controller/main.js';
import { startAgent, type RunningAgent } from '../../agent/run.js';
import { createLogger, type Logger } from '../../proto/common/log.js';
import { GROUP, PLURAL, VERSION, isFinished, type Warmup, type WarmupSpec } from '../../controller/api/types.js';
import type { Certificates } from './certs.js';
import type { Kube } from './kube.js';
import type { Containerd } from './containerd.js';
import { agentAddress, publishAgentEndpoint, withdrawAgentEndpoint } from './endpoint-slices.js';
import { createNode } from './kube.js';

export interface SimNode {
  readonly name: string;
  readonly containerd: Containerd;
  agent: RunningAgent | undefined;
  /** Stops the agent's servers; its endpoint stays as it was (an agent that no longer answers). */
  stopAgent(): Promise<void>;
  /** Starts the agent again (a new port) and publishes its endpoint, ready. */
  startAgent(): Promise<void>;
  /** Sets the endpoint's ready condition, as the agent's readiness probe would. */
  setReady(ready: boolean): Promise<void>;
  /** Sum of the agent's counter `name` over label sets matching `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export interface SimNodeOptions {
  /** Admin access: creates the Node and writes the agent's EndpointSlice. */
  kc: KubeConfig;
  certs: Certificates;
  name: string;
  labels?: Record<string, string>;
  containerd: Containerd;
  /** Namespace of the agents' EndpointSlices (Stoker's namespace). */
  namespace: string;
  /** The agents' headless Service (default stoker-agent, as the controller's --agent-service). */
  service?: string;
  /** Directory the agent may warm files from (created). */
  allowedRoot?: string;
  /** More directories the agent may warm files from (created), e.g. a kubelet pods directory shared by the nodes. */
  moreRoots?: string[];
  log?: Logger;
  /** Skip creating the Node object (it exists already). */
  nodeExists?: boolean;
  /** Node.js process metrics on each agent's /metrics (off when many agents share a process). */
  processMetrics?: boolean;
}

export async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  try {
    await core.createNamespace({ body: { metadata: { name } } });
  } catch (err) {
    if ((err as { code?: unknown }).code !== 409) throw err;
  }
}

export async function startSimNode(opts: SimNodeOptions): Promise<SimNode> {
  const log = opts.log ?? createLogger({ name: 'stoker-agent', level: 'warn' });
  if (!opts.nodeExists) await createNode(opts.kc, opts.name, opts.labels ?? {});
  const roots = [...(opts.allowedRoot ? [opts.allowedRoot] : []), ...(opts.moreRoots ?? [])];
  for (const r of roots) await mkdir(r, { recursive: true });
  const address = agentAddress();
  const where = { namespace: opts.namespace, node: opts.name, ...(opts.service ? { service: opts.service } : {}) };
  const config = resolveAgentConfig({
    nodeName: opts.name,
    criEndpoint: opts.containerd.endpoint,
    grpcListen: `${address.includes(':') ? `[${address}]` : address}:0`,
    httpListen: '127.0.0.1:0',
    tlsCertFile: opts.certs.serverCert,
    tlsPrivateKeyFile: opts.certs.serverKey,
    clientCaFile: opts.certs.caCert,
    runtimeProbeInterval: '2s',
    logLevel: 'warn',
    ...(roots.length > 0 ? { allowedRoot: roots } : {}),
  });
  let port = 0;
  const node: SimNode = {
    name: opts.name,
    containerd: opts.containerd,
    agent: undefined,
    async stopAgent() {
      await node.agent?.stop('test');
      node.agent = undefined;
    },
    async startAgent() {
      node.agent = await startAgent(config, { logger: log, processMetrics: opts.processMetrics ?? false });
      port = node.agent.grpcPort;
      await publishAgentEndpoint(opts.kc, { ...where, address, port });
    },
    async setReady(ready) {
      await publishAgentEndpoint(opts.kc, { ...where, address, port, ready });
    },
    async metric(name, labels = {}) {
      if (!node.agent) return 0;
      const m = await node.agent.metrics.registry.getSingleMetric(name)?.get();
      let sum = 0;
      for (const v of m?.values ?? []) {
        if (Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want)) sum += v.value;
      }
      return sum;
    },
    async stop() {
      await withdrawAgentEndpoint(opts.kc, where).catch(() => undefined);
      await node.stopAgent().catch(() => undefined);
    },
  };
  await node.startAgent();
  return node;
}

/** The Warmup custom resource API of one KubeConfig. */
export function warmupApi(kc: KubeConfig) {
  const api = kc.makeApiClient(CustomObjectsApi);
  const base = { group: GROUP, version: VERSION, plural: PLURAL };
  const get = async (namespace: string, name: string): Promise<Warmup | undefined> => {
    try {
      return (await api.getNamespacedCustomObject({ ...base, namespace, name })) as Warmup;
    } catch (err) {
      if ((err as { code?: unknown }).code === 404) return undefined;
      throw err;
    }
  };
  return {
    create: (namespace: string, name: string, spec: WarmupSpec): Promise<Warmup> =>
      api.createNamespacedCustomObject({ ...base, namespace, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Warmup', metadata: { name, namespace }, spec } }) as Promise<Warmup>,
    get,
    patchSpec: (namespace: string, name: string, spec: Partial<WarmupSpec>): Promise<Warmup> =>
      api.patchNamespacedCustomObject({ ...base, namespace, name, body: [{ op: 'replace', path: '/spec', value: spec }] }) as Promise<Warmup>,
    delete: async (namespace: string, name: string): Promise<void> => {
      try {
        await api.deleteNamespacedCustomObject({ ...base, namespace, name });
      } catch (err) {
        if ((err as { code?: unknown }).code !== 404) throw err;
      }
    },
    /** Waits until the Warmup reaches a final phase (Succeeded or Failed) and returns it. */
    finished: (namespace: string, name: string, timeoutMs = 120_000): Promise<Warmup> =>
      waitFor(
        `Warmup ${name} to finish`,
        async () => {
          const w = await get(namespace, name);
          return isFinished(w?.status) ? w : undefined;
        },
        timeoutMs,
        100,
      ),
  };
}

/** Polls `probe` every `intervalMs` until it returns a value (not undefined); fails naming `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000, intervalMs = 200): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${lastErr instanceof Error ? `: ${lastErr.message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Per-node scratch directories for allowed roots. */
export function rootFor(dir: string, node: string): string {
  return join(dir, 'roots', node);
}

/**
 * Starts the controller in this process against `kube`, with the test certificates, no leader
 * election and warn-level logs: what the simulated-cluster tests share; `flags` adds or overrides.
 */
export function startTestController(kube: Pick<Kube, 'kubeconfigPath'>, certs: Certificates, namespace: string, flags: ControllerFlagInput = {}): Promise<RunningController> {
  return startController(
    resolveControllerConfig({
      kubeconfig: kube.kubeconfigPath,
      namespace,
      tlsCertFile: certs.clientCert,
      tlsPrivateKeyFile: certs.clientKey,
      agentCaFile: certs.caCert,
      httpListen: '127.0.0.1:0',
      leaderElect: 'false',
      logLevel: 'warn',
      ...flags,
    }),
    { log: createLogger({ name: 'stoker-controller', level: 'warn' }) },
  );
}
