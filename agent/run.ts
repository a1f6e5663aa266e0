// startAgent: the agent as a library. Wires config, TLS, the runtime, the warm engines, the task
// registry, the gRPC and HTTP servers, and returns a handle whose stop() drains and closes it all.
// Several agents may run in one process (tests, benchmarks), each with its own node name and ports.
import { parseEndpoint, type CriEndpoint } from './cri/endpoint.js';
import type { ImageFilesystemSpace } from './cri/image-fs.js';
import { connectRuntime, type CriRuntime } from './cri/runtime.js';
import { RuntimeService } from './cri/runtime-service.js';
import { CredentialProviderConfigError, loadCredentialProviders, type CredentialProviders } from './credentials/credential-provider.js';
import { ReaderPool, resolveRoots, warmFiles } from './warm/files.js';
import { pullsInFlight, warmImages as warmImagesOn } from './warm/images.js';
import { pinImage } from './warm/pin.js';
import * as grpc from '@grpc/grpc-js';
import { listenHttp } from '../proto/common/http-server.js';
import { createLogger, type Logger } from '../proto/common/log.js';
import { STOKER_VERSION } from '../proto/common/version.js';
import { AGENT_FLAGS, ConfigError, type AgentConfig } from './config.js';
import { agentRoutes } from './http.js';
import { createAgentMetrics, type AgentMetrics } from './metrics.js';
import { controllerOnly } from './server/caller.js';
import { createAgentService, startGrpcServer } from './server/grpc.js';
import { RuntimeProbe, type AgentRuntime } from './server/runtime.js';
import { TaskRegistry } from './server/tasks.js';
import { ReloadingTlsProvider, loadTlsMaterial, serverCredentials } from './server/tls.js';
import { scrub } from './server/validate.js';
import { runWarmTask, type WarmFilesFn, type WarmFilesInput, type WarmImagesFn } from './server/warm.js';

/** Deadline of one readiness probe (CRI Version). */
const PROBE_TIMEOUT_MS = 2_000;

export interface AgentDeps {
  /** The runtime (closed by stop()); default: the CRI client on config.criEndpoint, connected lazily. */
  runtime?: AgentRuntime;
  /** The image engine; default: agent/warm/images.ts on the CRI runtime (required with `runtime`). */
  warmImages?: WarmImagesFn;
  /** The file engine; default: agent/warm/files.ts. */
  warmFiles?: WarmFilesFn;
  logger?: Logger;
  /** Node.js process metrics in /metrics (default true; turn off for many agents in one process). */
  processMetrics?: boolean;
}

export interface RunningAgent {
  readonly nodeName: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  /** host:port a gRPC client dials (loopback when the agent listens on every address). */
  readonly grpcAddress: string;
  /** http://host:port */
  readonly httpUrl: string;
  readonly metrics: AgentMetrics;
  /** Resolves when stop() has finished. */
  readonly stopped: Promise<void>;
  /** Stops accepting, cancels tasks, ends open streams with UNAVAILABLE, closes servers. Idempotent. */
  stop(reason?: string): Promise<void>;
}

function dialHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/** The agent's view of a CRI runtime: Version on its own channel (the probe), the rest connected on first use. */
export class CriAgentRuntime implements AgentRuntime {
  readonly endpoint: string;
  private readonly parsed: CriEndpoint;
  private readonly versions: RuntimeService;
  private connection: Promise<CriRuntime> | undefined;
  private closed = false;

  constructor(endpoint: string) {
    this.parsed = parseEndpoint(endpoint);
    this.endpoint = this.parsed.display;
    this.versions = new RuntimeService(
      this.parsed.target,
      grpc.credentials.createInsecure(),
      { 'grpc.initial_reconnect_backoff_ms': 200, 'grpc.max_reconnect_backoff_ms': 2_000 },
      this.endpoint,
    );
  }

  async version(signal: AbortSignal) {
    const v = await this.versions.version({ timeoutMs: PROBE_TIMEOUT_MS, signal });
    return { runtimeName: v.runtimeName, runtimeVersion: v.runtimeVersion };
  }

  /** The CRI connection (image service, pull progress); retried on the next use after a failure. */
  connect(signal?: AbortSignal): Promise<CriRuntime> {
    if (this.closed) return Promise.reject(new Error(`the connection to ${this.endpoint} is closed`));
    if (!this.connection) {
      const attempt = connectRuntime(this.parsed, { versionTimeoutMs: PROBE_TIMEOUT_MS, ...(signal ? { signal } : {}) });
      this.connection = attempt;
      attempt.then(
        (rt) => {
          if (this.closed) rt.close();
        },
        () => {
          if (this.connection === attempt) this.connection = undefined;
        },
      );
    }
    return this.connection;
  }

  async imageStatus(image: string, signal: AbortSignal) {
    const rt = await this.connect(signal);
    const found = await rt.imageStatus(image, signal);
    return { present: found !== undefined, imageRef: found?.id ?? '', sizeBytes: Number(found?.size ?? 0), pinned: found?.pinned === true };
  }

  async unpin(image: string, signal: AbortSignal): Promise<{ supported: boolean; unpinned: boolean }> {
    const rt = await this.connect(signal);
    const outcome = await pinImage(rt, image, false, signal);
    return { supported: outcome.label !== 'PIN_LABEL_UNSUPPORTED', unpinned: outcome.changed > 0 };
  }

  async removeImage(image: string, signal: AbortSignal): Promise<void> {
    const rt = await this.connect(signal);
    await rt.removeImage(image, signal);
  }

  async imageFilesystem(signal: AbortSignal): Promise<ImageFilesystemSpace> {
    let rt: CriRuntime;
    try {
      rt = await this.connect(signal);
    } catch (err) {
      return { known: false, mountpoint: undefined, reason: err instanceof Error ? err.message : String(err) };
    }
    return rt.imageFilesystem(signal);
  }

  close(): void {
    this.closed = true;
    this.versions.close();
    void this.connection?.then(
      (rt) => rt.close(),
      () => undefined,
    );
  }
}

export async function startAgent(config: AgentConfig, deps: AgentDeps = {}): Promise<RunningAgent> {
  const log = (deps.logger ?? createLogger({ name: 'stoker-agent', level: config.logLevel })).child({ node: config.nodeName });
  const tls = await loadTlsMaterial(config);

  if (config.allowedRoots.length > 0) {
    // A root that does not exist or is not a directory is a configuration error: say so now.
    await resolveRoots(config.allowedRoots).catch((err: unknown) => {
      throw new ConfigError({ flag: AGENT_FLAGS.allowedRoots.flag }, `is unusable: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  // Plugins for images whose registry the controller sent no credential for: a config, bin dir
  // or plugin that cannot be used stops the start, naming it, as it stops the kubelet's.
  let providers: CredentialProviders | undefined;
  if (config.credentialProviders) {
    providers = await loadCredentialProviders({
      ...config.credentialProviders,
      onWarning: (message) => log.warn({ reason: scrub(message, providers?.secrets() ?? []) }, 'credential provider gave no credentials'),
    }).catch((err: unknown) => {
      if (err instanceof CredentialProviderConfigError) throw new ConfigError({ flag: AGENT_FLAGS.imageCredentialProviderConfig.flag }, `is unusable: ${err.message}`);
      throw err;
    });
    log.info({ providers: providers.names }, 'credential providers loaded');
  }
  const credentialSource = providers ? providers.lookup.bind(providers) : undefined;

  let runtime: AgentRuntime;
  let warmImages: WarmImagesFn | undefined = deps.warmImages;
  if (deps.runtime) {
    runtime = deps.runtime;
  } else {
    const cri = new CriAgentRuntime(config.criEndpoint);
    runtime = cri;
    warmImages ??= async (input) => warmImagesOn(await cri.connect(input.signal), { ...input, credentialSource, logger: log });
  }

  const criTarget = parseEndpoint(config.criEndpoint).target;
  const metrics = createAgentMetrics({ tasksInFlight: () => registry.inFlight, pullsInFlight: () => pullsInFlight(criTarget), processMetrics: deps.processMetrics ?? true });
  const probe = new RuntimeProbe(runtime, {
    intervalMs: config.runtimeProbeIntervalMs,
    timeoutMs: PROBE_TIMEOUT_MS,
    log,
    onChange: (s) => metrics.setRuntimeReady(s.ready),
  });
  const registry = new TaskRegistry({
    retentionMs: config.taskRetentionMs,
    retentionCount: config.taskRetentionCount,
    maxRunning: config.maxRunningTasks,
    onRunError: (taskId, err, signal) => {
      log.error({ taskId, err: err instanceof Error ? err.message : String(err) }, 'task failed inside the agent');
      const code = signal.aborted ? 'CANCELLED' : 'INTERNAL';
      return { taskId, succeeded: false, images: [], paths: [], seconds: 0, failure: { code, message: `task "${taskId}" failed inside the agent on node "${config.nodeName}"` } };
    },
  });

  // One pool of file readers and buffers for every task: however many tasks read files, at most
  // 32 files are read at once (4 of them large) with at most 40 MiB of buffers.
  const readerPool = new ReaderPool();
  const warmContext = {
    nodeName: config.nodeName,
    allowedRoots: config.allowedRoots,
    pullConcurrency: config.pullConcurrency,
    defaultProgressTimeoutMs: config.progressTimeoutMs,
    registryPolicy: config.registryPolicy,
    knownSecrets: () => providers?.secrets() ?? [],
    probe,
    endpoint: runtime.endpoint,
    warmImages,
    warmFiles: deps.warmFiles ?? ((input: WarmFilesInput) => warmFiles({ ...input, pool: readerPool })),
    metrics,
    log,
  };
  const service = createAgentService({
    nodeName: config.nodeName,
    allowedRoots: config.allowedRoots,
    tasks: registry,
    runtime,
    probe,
    log,
    runWarm: (req) => (signal, emit) => runWarmTask(warmContext, req, signal, emit),
  });

  let stopping = false;
  const routes = agentRoutes({
    nodeName: config.nodeName,
    criEndpoint: runtime.endpoint,
    allowedRoots: config.allowedRoots,
    probe,
    tasks: registry,
    metrics,
    stopping: () => stopping,
  });

  const tlsProvider = new ReloadingTlsProvider(
    config,
    tls,
    config.tlsReloadIntervalMs,
    (next) => log.info({ certificate: next.subject, certificateExpires: next.notAfter }, 'TLS certificates reloaded'),
    (message) => log.warn({ reason: message }, 'TLS files not reloaded; keeping the current certificates'),
  );
  probe.start();
  let grpcServer;
  try {
    grpcServer = await startGrpcServer(service.handlers, serverCredentials(tlsProvider), config.grpcListen.host, config.grpcListen.port, [
      controllerOnly(config.controllerName, log),
    ]);
  } catch (err) {
    tlsProvider.close();
    probe.stop();
    runtime.close();
    throw err;
  }
  const grpcHandle = grpcServer;
  const http = await listenHttp(config.httpListen.host, config.httpListen.port, routes, {
    onError: (err, path) => log.error({ path, err }, 'HTTP request failed'),
    forceClose: true,
  }).catch(async (err: unknown) => {
    tlsProvider.close();
    probe.stop();
    runtime.close();
    await grpcHandle.stop(0);
    throw new Error(`cannot listen for HTTP on ${config.httpListen.host}:${config.httpListen.port}: ${err instanceof Error ? err.message : String(err)}`);
  });
  const httpPort = http.port;
  const grpcPort = grpcServer.port;
  const grpcAddress = `${dialHost(config.grpcListen.host)}:${grpcPort}`;
  const httpUrl = `http://${dialHost(config.httpListen.host)}:${httpPort}`;
  log.info(
    {
      version: STOKER_VERSION,
      grpc: `${config.grpcListen.host}:${grpcPort}`,
      http: `${config.httpListen.host}:${httpPort}`,
      criEndpoint: runtime.endpoint,
      allowedRoots: config.allowedRoots,
      certificate: tls.subject,
      certificateExpires: tls.notAfter,
      controllerName: config.controllerName,
    },
    'agent started',
  );

  let stopPromise: Promise<void> | undefined;
  let markStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (markStopped = resolve));

  const stop = (reason = 'stop requested'): Promise<void> => {
    stopPromise ??= (async () => {
      const started = Date.now();
      stopping = true;
      log.info({ reason, tasksInFlight: registry.inFlight }, 'agent stopping');
      const message = `the agent on node "${config.nodeName}" is shutting down`;
      // Refuse new calls, end open Warm streams with UNAVAILABLE, and cancel every task.
      const grpcDone = grpcHandle.stop(config.shutdownTimeoutMs);
      service.drain(message);
      await registry.close(new Error(message), config.shutdownTimeoutMs);
      await grpcDone;
      probe.stop();
      tlsProvider.close();
      await http.close();
      runtime.close();
      log.info({ ms: Date.now() - started }, 'agent stopped');
      markStopped();
    })();
    return stopPromise;
  };

  return { nodeName: config.nodeName, grpcPort, httpPort, grpcAddress, httpUrl, metrics, stopped, stop };
}
