// Simulated nodes for the controller's tests, demo and benchmark: each node is a Node object in a
// real API server, a real agent (startAgent, in this process) on its own ports talking to a real
// containerd, and the agent's announcement Lease (agent/announce.ts), exactly as a node's agent
// announces itself in a cluster.
//
//   const node = await startSimNode({ kube, certs, name: 'node-1', containerd, namespace: 'stoker-system' });
//   await node.stopAgent();   // the agent stops answering; its Lease stays until it lapses
//   await node.stop();        // agent, announcement and (own) containerd
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { startAnnouncer, type Announcer } from '../../agent/announce.js';
import { resolveAgentConfig } from '../../agent/config.js';
import { startAgent, type RunningAgent } from '../../agent/run.js';
import { createLogger, type Logger } from '../../proto/common/log.js';
import { GROUP, PLURAL, VERSION, type Warmup, type WarmupSpec } from '../../controller/api/types.js';
import type { Certificates } from './certs.js';
import type { Containerd } from './containerd.js';
import { createNode } from './kube.js';

export interface SimNode {
  readonly name: string;
  readonly containerd: Containerd;
  agent: RunningAgent | undefined;
  announcer: Announcer | undefined;
  /** Stops the agent's servers; its Lease is left to lapse (an agent that no longer answers). */
  stopAgent(): Promise<void>;
  /** Starts the agent again (new ports) and announces it. */
  startAgent(): Promise<void>;
  /** Sum of the agent's counter `name` over label sets matching `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export interface SimNodeOptions {
  kc: KubeConfig;
  certs: Certificates;
  name: string;
  labels?: Record<string, string>;
  containerd: Containerd;
  /** Namespace of the agents' Leases. */
  namespace: string;
  /** Directory the agent may warm files from (created). */
  allowedRoot?: string;
  leaseDurationSeconds?: number;
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
  if (opts.allowedRoot) await mkdir(opts.allowedRoot, { recursive: true });
  const config = resolveAgentConfig({
    nodeName: opts.name,
    criEndpoint: opts.containerd.endpoint,
    grpcListen: '127.0.0.1:0',
    httpListen: '127.0.0.1:0',
    tlsCertFile: opts.certs.serverCert,
    tlsPrivateKeyFile: opts.certs.serverKey,
    clientCaFile: opts.certs.caCert,
    runtimeProbeInterval: '2s',
    logLevel: 'warn',
    ...(opts.allowedRoot ? { allowedRoot: [opts.allowedRoot] } : {}),
  });
  const node: SimNode = {
    name: opts.name,
    containerd: opts.containerd,
    agent: undefined,
    announcer: undefined,
    async stopAgent() {
      await node.agent?.stop('test');
      node.agent = undefined;
    },
    async startAgent() {
      await node.announcer?.stop();
      node.agent = await startAgent(config, { logger: log, processMetrics: opts.processMetrics ?? false });
      node.announcer = startAnnouncer({
        kubeConfig: opts.kc,
        namespace: opts.namespace,
        nodeName: opts.name,
        endpoint: node.agent.grpcAddress,
        leaseDurationSeconds: opts.leaseDurationSeconds ?? 20,
        log,
      });
      await node.announcer.firstRenewal;
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
      await node.announcer?.stop().catch(() => undefined);
      node.announcer = undefined;
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
  return {
    create: (namespace: string, name: string, spec: WarmupSpec): Promise<Warmup> =>
      api.createNamespacedCustomObject({ ...base, namespace, body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Warmup', metadata: { name, namespace }, spec } }) as Promise<Warmup>,
    get: async (namespace: string, name: string): Promise<Warmup | undefined> => {
      try {
        return (await api.getNamespacedCustomObject({ ...base, namespace, name })) as Warmup;
      } catch (err) {
        if ((err as { code?: unknown }).code === 404) return undefined;
        throw err;
      }
    },
    patchSpec: (namespace: string, name: string, spec: Partial<WarmupSpec>): Promise<Warmup> =>
      api.patchNamespacedCustomObject({ ...base, namespace, name, body: [{ op: 'replace', path: '/spec', value: spec }] }) as Promise<Warmup>,
    delete: async (namespace: string, name: string): Promise<void> => {
      try {
        await api.deleteNamespacedCustomObject({ ...base, namespace, name });
      } catch (err) {
        if ((err as { code?: unknown }).code !== 404) throw err;
      }
    },
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
