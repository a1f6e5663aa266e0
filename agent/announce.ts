// The agent's announcement to the API server: a coordination.k8s.io/v1 Lease
// "stoker-agent-<node>" in Stoker's namespace (see proto/common/agent-lease.ts) with holderIdentity = node
// name, the agent's gRPC endpoint and version in annotations, renewTime and leaseDurationSeconds.
// It is renewed every leaseDuration/3 as a heartbeat, so the controller finds live agents without
// reaching any kubelet. A renewal writes the Lease as last written (one request); a conflict or a
// Lease someone deleted is read again and recreated or taken back. On stop the Lease is deleted,
// so the controller sees at once that this agent is gone.
//
// While the API server is away (restart, upgrade, etcd down) the agent keeps serving: tasks in
// flight go on and new ones are accepted, since the controller reaches the agent directly. It
// retries about every second (jittered, so thousands of agents do not arrive at once), each try
// bounded by a short deadline, so it renews within about a second of the API server answering
// again. A controller does not take a Lease that lapsed during an outage as proof that the agent
// is gone (controller/k8s/agents.ts).
//
// The Lease is written with the small client in kube/, not the Kubernetes JavaScript client
// (which would nearly double the agent's resident memory).
//
//   const announcer = startAnnouncer({ server: loadKubeconfig(path), namespace, nodeName, endpoint, leaseDurationSeconds, signal, log });
//   await announcer.firstRenewal;   // optional: resolves after the first successful write
//   await announcer.stop();
import { fromKubeConfig, loadDefaultConfig, loadKubeconfig, type ApiServerConfig, type KubeConfigLike } from './kube/kubeconfig.js';
import { leaseClient, microTime, type Lease } from './kube/lease-client.js';
import { AGENT_ENDPOINT_ANNOTATION, AGENT_LEASE_LABEL, AGENT_VERSION_ANNOTATION, agentLeaseName } from '../proto/common/agent-lease.js';
import type { Logger } from '../proto/common/log.js';
import { STOKER_VERSION } from '../proto/common/version.js';
import { sleep } from '../proto/common/sleep.js';
import { kubeErrorStatus } from '../proto/common/kube-errors.js';
import type { AnnounceConfig } from './config.js';

export type { Lease } from './kube/lease-client.js';

/** The Lease calls the announcer makes; the default uses kube/lease-client.ts. Unit tests pass a fake. */
export interface AnnounceLeaseApi {
  read(namespace: string, name: string, signal?: AbortSignal): Promise<Lease | undefined>;
  create(namespace: string, lease: Lease, signal?: AbortSignal): Promise<Lease>;
  replace(namespace: string, name: string, lease: Lease, signal?: AbortSignal): Promise<Lease>;
  delete(namespace: string, name: string, signal?: AbortSignal): Promise<void>;
  /** Closes idle connections (called by stop() for an api the announcer made itself). */
  close?(): void;
}

export interface AnnouncerOptions {
  /** The API server and credentials (kube/kubeconfig.ts). */
  server?: ApiServerConfig;
  /** Or an already loaded KubeConfig of the Kubernetes JavaScript client (its current context). */
  kubeConfig?: KubeConfigLike;
  api?: AnnounceLeaseApi;
  namespace: string;
  nodeName: string;
  /** "host:port" the controller dials; IPv6 hosts in brackets. */
  endpoint: string;
  leaseDurationSeconds?: number;
  signal?: AbortSignal;
  log: Logger;
  version?: string;
  /** Delete the Lease on stop (default true). */
  releaseOnStop?: boolean;
}

export interface Announcer {
  /** Resolves after the first successful create or renewal (never rejects; keeps retrying). */
  readonly firstRenewal: Promise<void>;
  /** Successful writes so far. */
  renewals(): number;
  stop(): Promise<void>;
}


function errorText(err: unknown): string {
  return err instanceof Error ? err.message.slice(0, 300) : String(err);
}

/** The announcer's Lease calls against a real API server. */
export function leaseAnnounceApi(server: ApiServerConfig): AnnounceLeaseApi {
  const client = leaseClient(server);
  return { read: client.get, create: client.create, replace: client.replace, delete: client.delete, close: client.close };
}

/** The same for a KubeConfig of the Kubernetes JavaScript client (or anything shaped like one). */
export function coordinationAnnounceApi(kc: KubeConfigLike): AnnounceLeaseApi {
  return leaseAnnounceApi(fromKubeConfig(kc));
}

const ENDPOINT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/** "host:port" for a host and the agent's gRPC port (IPv6 in brackets). */
export function endpointFor(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Starts announcing a running agent as its command does: endpoint = advertise address (or listen
 * address) + gRPC port. Throws a KubeconfigError naming the file or setting when the API server's
 * config cannot be loaded.
 */
export function announceAgent(
  config: AnnounceConfig,
  agent: { nodeName: string; grpcPort: number; grpcAddress: string },
  log: Logger,
  signal?: AbortSignal,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Announcer {
  const server = config.kubeconfig ? loadKubeconfig(config.kubeconfig) : loadDefaultConfig(env);
  const endpoint = config.advertiseAddress ? endpointFor(config.advertiseAddress, agent.grpcPort) : agent.grpcAddress;
  return startAnnouncer({ server, namespace: config.namespace, nodeName: agent.nodeName, endpoint, log, ...(signal ? { signal } : {}) });
}

export function startAnnouncer(opts: AnnouncerOptions): Announcer {
  if (!ENDPOINT.test(opts.endpoint) || Number(opts.endpoint.slice(opts.endpoint.lastIndexOf(':') + 1)) > 65535) {
    throw new Error(`announce endpoint "${opts.endpoint}" is not HOST:PORT`);
  }
  const duration = opts.leaseDurationSeconds ?? 30;
  if (!Number.isInteger(duration) || duration < 1) throw new Error(`lease duration "${String(duration)}" is not a whole number of seconds >= 1`);
  const ownApi = opts.api ? undefined : opts.server ? leaseAnnounceApi(opts.server) : opts.kubeConfig ? coordinationAnnounceApi(opts.kubeConfig) : undefined;
  const api = opts.api ?? ownApi;
  if (!api) throw new Error('startAnnouncer needs server, kubeConfig or api');

  const { namespace, nodeName, endpoint, log } = opts;
  const name = agentLeaseName(nodeName);
  const version = opts.version ?? STOKER_VERSION;
  const stopper = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stopper.signal]) : stopper.signal;
  const intervalMs = Math.max(200, Math.floor((duration * 1000) / 3));
  let written = 0;
  let failing = false;
  /** The Lease as this agent last wrote it: the next renewal replaces it without reading first. */
  let held: Lease | undefined;
  /** When (ms) the last write succeeded, and whether the lapse of the Lease since was logged. */
  let lastWrite = 0;
  let lapseLogged = false;
  let resolveFirst!: () => void;
  const firstRenewal = new Promise<void>((r) => (resolveFirst = r));

  const desired = (base: Lease | undefined, now: Date): Lease => {
    const stamp = microTime(now);
    const takingOver = base?.spec?.holderIdentity !== nodeName;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        ...(base?.metadata ?? {}),
        name,
        namespace,
        labels: { ...(base?.metadata?.labels ?? {}), [AGENT_LEASE_LABEL]: 'true' },
        annotations: { ...(base?.metadata?.annotations ?? {}), [AGENT_ENDPOINT_ANNOTATION]: endpoint, [AGENT_VERSION_ANNOTATION]: version },
      },
      spec: {
        ...(base?.spec ?? {}),
        holderIdentity: nodeName,
        leaseDurationSeconds: duration,
        renewTime: stamp,
        ...(takingOver || !base?.spec?.acquireTime ? { acquireTime: stamp } : {}),
      },
    };
  };

  /**
   * One heartbeat: replace the Lease as last written; after a conflict (or at first) read it, then
   * create or replace. A conflict is retried at once, a few times. `callSignal` bounds the calls.
   */
  const beat = async (callSignal: AbortSignal): Promise<void> => {
    if (held) {
      try {
        held = await api.replace(namespace, name, desired(held, new Date()), callSignal);
        return;
      } catch (err) {
        const code = kubeErrorStatus(err);
        if (code !== 409 && code !== 404) throw err;
        held = undefined;
      }
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = await api.read(namespace, name, callSignal);
      try {
        held = !current
          ? await api.create(namespace, desired(undefined, new Date()), callSignal)
          : await api.replace(namespace, name, desired(current, new Date()), callSignal);
        return;
      } catch (err) {
        const code = kubeErrorStatus(err);
        if ((code === 409 || code === 404) && attempt < 2) continue;
        throw err;
      }
    }
  };

  /** A beat whose calls end after `ms` (or when the announcer stops). */
  const beatWithin = async (ms: number): Promise<void> => {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error(`no answer from the API server within ${ms / 1000} s`)), ms);
    try {
      await beat(AbortSignal.any([signal, deadline.signal]));
    } finally {
      clearTimeout(timer);
    }
  };

  const loop = (async () => {
    while (!signal.aborted) {
      try {
        // While failing, each try gets a short deadline: an API server whose etcd is gone accepts
        // requests and does not answer, and the next try should not wait for the client's timeout.
        await beatWithin(failing ? Math.min(intervalMs, 3000) : Math.max(intervalMs, 10_000));
        written++;
        if (written === 1) {
          log.info({ lease: name, namespace, endpoint }, 'announced agent to the API server');
          resolveFirst();
        } else if (failing) log.info({ lease: name, unrenewedSeconds: Math.round((Date.now() - lastWrite) / 1000) }, 'agent announcement renewed again');
        failing = false;
        lapseLogged = false;
        lastWrite = Date.now();
      } catch (err) {
        if (signal.aborted) break; // stopping: the write in flight was cancelled
        if (!failing) log.warn({ lease: name, namespace, code: kubeErrorStatus(err), err: errorText(err) }, 'agent announcement failed; retrying');
        failing = true;
        if (written > 0 && !lapseLogged && Date.now() > lastWrite + duration * 1000) {
          lapseLogged = true;
          log.warn({ lease: name, leaseSeconds: duration }, 'agent announcement has lapsed; still serving tasks, and renewing as soon as the API server answers');
        }
      }
      // After a failure, try again in about a second (jittered): a short outage does not let the
      // Lease lapse, and after a long one the agent is back as soon as the API server is.
      await sleep(failing ? Math.min(intervalMs, 500 + Math.random() * 1000) : intervalMs, signal);
    }
  })();

  let stopping: Promise<void> | undefined;
  return {
    firstRenewal,
    renewals: () => written,
    stop: () => {
      stopping ??= (async () => {
        stopper.abort();
        await loop;
        if (opts.releaseOnStop ?? true) {
          try {
            const current = await api.read(namespace, name);
            if (current?.spec?.holderIdentity === nodeName) await api.delete(namespace, name);
          } catch (err) {
            log.warn({ lease: name, code: kubeErrorStatus(err), err: errorText(err) }, 'could not withdraw agent announcement');
          }
        }
        ownApi?.close?.();
      })();
      return stopping;
    },
  };
}
