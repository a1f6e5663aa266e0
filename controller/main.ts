// `stoker controller` wired together: informers (Warmups, Nodes, the agents' EndpointSlices, and
// the PVCs, PVs and running pods behind claims in spec.paths) feed a level-triggered work queue;
// while this replica leads, workers hand each key to the reconciler
// (controller/reconcile.ts). Status goes through the rate-bounded StatusWriter, Events through the
// EventRecorder. HTTP serves /healthz, /readyz (informers synced) and /metrics.
//
// Interface (stable):
//   startController(config, deps?) -> Promise<RunningController>
//   RunningController { stop(): Promise<void>; httpAddress: { host, port }; isLeader(): boolean;
//                       statusWriter; metrics; heldFor(namespace, name): string[]; done: Promise<void> }
//   The reconciler is created once per leadership term with ReconcilerDeps (controller/reconcile.ts)
//   and its `signal` aborts when the term ends; `stop()` is awaited before a new term starts.
//   The clients it is handed are built here: an AgentClientPool over mutual TLS (its channels are
//   closed when a term ends), Secret reads and Warmup deletes through the API server.
import { readFile } from 'node:fs/promises';
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  DiscoveryV1Api,
  type V1EndpointSlice,
  type V1Node,
  type V1PersistentVolume,
  type V1PersistentVolumeClaim,
  type V1Pod,
} from '@kubernetes/client-node';
import { listenHttp, type HttpListener } from '../proto/common/http-server.js';
import { createLogger, type Logger } from '../proto/common/log.js';
import { STOKER_VERSION } from '../proto/common/version.js';
import { AgentClientPool, type AgentTls } from './agent-client.js';
import { GROUP, PLURAL, VERSION, isFinished, resolveSpec, type Warmup, type WarmupStatus } from './api/types.js';
import { ClaimMounts, slimPod } from './volumes/claim-mounts.js';
import type { ControllerConfig } from './config.js';
import type { ReadSecret } from './credentials.js';
import { abortable } from './k8s/abortable.js';
import { AgentEndpointDirectory, agentSliceSelector } from './k8s/agent-endpoints.js';
import { EventRecorder } from './k8s/events.js';
import { objectKey, startInformer, type Informer, type ListResult } from './k8s/informer.js';
import { LeaderElector } from './k8s/leader.js';
import { StatusWriter } from './k8s/status-writer.js';
import { WorkQueue } from './k8s/workqueue.js';
import { createReconciler as defaultCreateReconciler, type JsonPatchOp, type Reconciler, type ReconcilerDeps } from './reconcile.js';
import { kubeErrorStatus } from '../proto/common/kube-errors.js';
import { createControllerMetrics, type ControllerMetrics, type WarmupPhaseLabel } from './metrics.js';
import { startWorkloadDirectory } from './workloads/directory.js';
import { AnnotationController } from './workloads/annotate.js';
import { EXCLUDE_ANNOTATION } from './workloads/eligibility.js';
import type { WorkloadSource } from './workloads/effective.js';

export type CreateReconciler = (deps: ReconcilerDeps) => Reconciler;

export interface ControllerDeps {
  kc?: KubeConfig;
  log?: Logger;
  createReconciler?: CreateReconciler;
}

export interface RunningController {
  stop(): Promise<void>;
  /** The HTTP server's bound address (port resolved when 0 was asked for). */
  readonly httpAddress: { host: string; port: number };
  isLeader(): boolean;
  readonly statusWriter: StatusWriter<Warmup, WarmupStatus>;
  readonly metrics: ControllerMetrics;
  readonly agents: AgentEndpointDirectory;
  /**
   * Which of the controller's per-Warmup stores (status writer, event recorder, work queue) still
   * keep something for this Warmup; empty soon after it is deleted.
   */
  heldFor(namespace: string, name: string): string[];
  /** Resolves when the controller has stopped. */
  readonly done: Promise<void>;
}

/** Turns typed API results into the same plain JSON a watch delivers (timestamps as strings). */
function plain<T>(obj: T): T {
  return JSON.parse(JSON.stringify(obj)) as T;
}

export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

export async function startController(config: ControllerConfig, deps: ControllerDeps = {}): Promise<RunningController> {
  const log = deps.log ?? createLogger({ name: 'stoker-controller', level: config.logLevel });
  const kc = deps.kc ?? loadKubeConfig(config.kubeconfig);
  const createReconciler: CreateReconciler = deps.createReconciler ?? defaultCreateReconciler;
  const [ca, cert, key] = await Promise.all([readFile(config.agentCaFile), readFile(config.tlsCertFile), readFile(config.tlsPrivateKeyFile)]);
  const agentTls: AgentTls = { ca, cert, key, ...(config.agentServerName ? { serverName: config.agentServerName } : {}) };
  // Built once, so unusable PEM fails the start; each leadership term closes the channels it opened.
  const agentPool = new AgentClientPool(agentTls);

  const root = new AbortController();
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const readSecret: ReadSecret = async (namespace, name) => {
    try {
      return await core.readNamespacedSecret({ namespace, name });
    } catch (err) {
      if (kubeErrorStatus(err) === 404) return undefined;
      throw err;
    }
  };
  const createWarmup = async (w: Warmup): Promise<void> => {
    try {
      await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: w.metadata.namespace ?? 'default', body: w });
    } catch (err) {
      if (kubeErrorStatus(err) !== 409) throw err;
    }
  };
  const deleteWarmup = async (namespace: string, name: string): Promise<void> => {
    try {
      await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name });
    } catch (err) {
      if (kubeErrorStatus(err) !== 404) throw err;
    }
  };
  const patchNodeLabel = async (node: string, key: string, value: 'true' | null): Promise<void> => {
    await core.patchNode({ name: node, body: { metadata: { labels: { [key]: value } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  };
  const patchWarmup = async (namespace: string, name: string, patch: JsonPatchOp[]): Promise<void> => {
    try {
      await custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: patch });
    } catch (err) {
      if (kubeErrorStatus(err) !== 404) throw err;
    }
  };

  const refs: { warmups?: Informer<Warmup>; agents?: AgentEndpointDirectory; synced?: () => boolean } = {};
  const metrics = createControllerMetrics({
    phaseCounts: () => {
      const counts: Partial<Record<WarmupPhaseLabel, number>> = {};
      for (const w of refs.warmups?.list() ?? []) {
        const phase = w.status?.phase ?? 'Pending';
        counts[phase] = (counts[phase] ?? 0) + 1;
      }
      return counts;
    },
    liveAgentCount: () => refs.agents?.live().size ?? 0,
    warmups: () =>
      (refs.warmups?.list() ?? []).map((w) => ({
        namespace: w.metadata?.namespace ?? '',
        name: w.metadata?.name ?? '',
        phase: w.status?.phase ?? 'Pending',
        ...(w.spec.keepWarm === true ? { warm: w.status?.conditions?.some((c) => c.type === 'Warm' && c.status === 'True') ?? false } : {}),
      })),
  });
  // HTTP first: a port already taken fails the start before anything else runs.
  const http = await startHttp(config, { metrics, log, ready: () => (refs.synced?.() ?? false) && !root.signal.aborted });
  const onRestart = (informer: string) => (reason: string) => metrics.informerRestarts.inc({ informer, reason });

  const informerBase = { kc, log, relistIntervalMs: config.relistIntervalMs, watchdogMs: config.watchdogMs };
  const ns = config.watchNamespace;
  const warmups = startInformer<Warmup>({
    ...informerBase,
    name: 'warmups',
    path: ns ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/${PLURAL}`,
    list: async (signal) =>
      (ns
        ? await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns }, abortable(signal))
        : await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }, abortable(signal))) as ListResult<Warmup>,
    onRestart: onRestart('warmups'),
  });
  const nodes = startInformer<V1Node>({
    ...informerBase,
    name: 'nodes',
    path: '/api/v1/nodes',
    list: async (signal): Promise<ListResult<V1Node>> => plain(await core.listNode({}, abortable(signal))),
    onRestart: onRestart('nodes'),
  });
  // Where each node's agent is: the EndpointSlices Kubernetes writes for the agents' Service.
  const agentSelector = agentSliceSelector(config.agentService);
  const slices = startInformer<V1EndpointSlice>({
    ...informerBase,
    name: 'agent-endpoints',
    path: `/apis/discovery.k8s.io/v1/namespaces/${config.namespace}/endpointslices`,
    labelSelector: agentSelector,
    list: async (signal): Promise<ListResult<V1EndpointSlice>> =>
      plain(await discovery.listNamespacedEndpointSlice({ namespace: config.namespace, labelSelector: agentSelector }, abortable(signal))),
    onRestart: onRestart('agent-endpoints'),
  });
  // Claims a Warmup may name in spec.paths, their volumes, and the running pods that mount claims
  // (slimmed to uid, node and claim names: pods are many and large).
  const claims = startInformer<V1PersistentVolumeClaim>({
    ...informerBase,
    name: 'persistentvolumeclaims',
    path: ns ? `/api/v1/namespaces/${ns}/persistentvolumeclaims` : '/api/v1/persistentvolumeclaims',
    list: async (signal): Promise<ListResult<V1PersistentVolumeClaim>> =>
      plain(ns ? await core.listNamespacedPersistentVolumeClaim({ namespace: ns }, abortable(signal)) : await core.listPersistentVolumeClaimForAllNamespaces({}, abortable(signal))),
    onRestart: onRestart('persistentvolumeclaims'),
  });
  const volumes = startInformer<V1PersistentVolume>({
    ...informerBase,
    name: 'persistentvolumes',
    path: '/api/v1/persistentvolumes',
    list: async (signal): Promise<ListResult<V1PersistentVolume>> => plain(await core.listPersistentVolume({}, abortable(signal))),
    onRestart: onRestart('persistentvolumes'),
  });
  const running = 'status.phase=Running';
  const pods = startInformer<V1Pod>({
    ...informerBase,
    name: 'pods',
    path: ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods',
    fieldSelector: running,
    deserialize: slimPod,
    list: async (signal): Promise<ListResult<V1Pod>> =>
      plain(ns ? await core.listNamespacedPod({ namespace: ns, fieldSelector: running }, abortable(signal)) : await core.listPodForAllNamespaces({ fieldSelector: running }, abortable(signal))),
    onRestart: onRestart('pods'),
  });
  const mounts = new ClaimMounts();
  refs.warmups = warmups;
  const agents = new AgentEndpointDirectory({ informer: slices, service: config.agentService, log });
  refs.agents = agents;
  const informers = [warmups, nodes, slices, claims, volumes, pods];
  // The workloads Warmups name in spec.workloadRef (and the stoker.io/warm annotation).
  const workloads = startWorkloadDirectory({ kc, log, namespace: ns, informerBase: { relistIntervalMs: config.relistIntervalMs, watchdogMs: config.watchdogMs }, onRestart });
  refs.synced = () => informers.every((i) => i.hasSynced()) && workloads.hasSynced();

  const status = new StatusWriter<Warmup, WarmupStatus>({
    kc,
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    log,
    minIntervalMs: config.statusIntervalMs,
    onWrite: () => metrics.statusWrites.inc(),
  });
  const events = new EventRecorder({
    kc,
    component: 'stoker-controller',
    instance: config.leaderElectionId,
    log,
    onWrite: (type) => metrics.events.inc({ type }),
  });
  const queue = new WorkQueue({
    log,
    onDepth: (d) => metrics.workqueueDepth.set(d),
    onResult: (outcome, seconds) => {
      metrics.reconcileDuration.observe({ outcome }, seconds);
      if (outcome === 'error') metrics.reconcileErrors.inc();
    },
  });

  // Event wiring: a Warmup change queues its key; a node or agent change queues every unfinished Warmup.
  const enqueueWarmup = (w: KubernetesObject): void => queue.add(objectKey(w));
  warmups.on('add', enqueueWarmup);
  warmups.on('update', enqueueWarmup);
  warmups.on('delete', (w) => {
    status.forget(w.metadata?.namespace ?? '', w.metadata?.name ?? '');
    events.forget(w);
    queue.add(objectKey(w));
  });
  const enqueueUnfinished = (): void => {
    for (const w of warmups.list()) if (!isFinished(w.status)) queue.add(objectKey(w));
  };
  const nodeLabels = new Map<string, string>();
  // What decides whether a node is a target: its labels, taints (workloadRef) and stoker.io/exclude.
  const labelsOf = (n: V1Node): string =>
    JSON.stringify([Object.entries(n.metadata?.labels ?? {}).sort(), n.spec?.taints ?? [], n.metadata?.annotations?.[EXCLUDE_ANNOTATION] ?? '']);
  nodes.on('add', (n) => {
    nodeLabels.set(objectKey(n), labelsOf(n));
    enqueueUnfinished();
  });
  nodes.on('update', (n) => {
    // Kubelets update their Node often; only a label, taint or exclude change can change which Warmups target it.
    const k = objectKey(n);
    const labels = labelsOf(n);
    if (nodeLabels.get(k) === labels) return;
    nodeLabels.set(k, labels);
    enqueueUnfinished();
  });
  nodes.on('delete', (n) => {
    nodeLabels.delete(objectKey(n));
    enqueueUnfinished();
  });
  agents.on('change', enqueueUnfinished);
  // A claim, its volume or a pod mounting it changed: the Warmups naming that claim (and those
  // deriving their claims from a workload) resolve it again.
  const enqueueClaim = (claimKey: string): void => {
    const [claimNs = '', claimName = ''] = claimKey.split('/');
    for (const w of warmups.list()) {
      if ((w.metadata.namespace ?? '') !== claimNs) continue;
      if (w.spec.workloadRef || resolveSpec(w.spec).claims.some((c) => c.claimName === claimName)) queue.add(objectKey(w));
    }
  };
  for (const event of ['add', 'update', 'delete'] as const) {
    claims.on(event, (c) => enqueueClaim(objectKey(c)));
    volumes.on(event, (v) => {
      const ref = v.spec?.claimRef;
      if (ref?.name) enqueueClaim(`${ref.namespace ?? ''}/${ref.name}`);
    });
  }
  pods.on('add', (p) => mounts.set(p).forEach(enqueueClaim));
  pods.on('update', (p) => mounts.set(p).forEach(enqueueClaim));
  pods.on('delete', (p) => mounts.remove(p).forEach(enqueueClaim));
  // A workload changed (kubectl set image, a new nodeSelector) or went: the Warmups naming it follow.
  workloads.on('change', (c) => {
    for (const w of warmups.list()) {
      const ref = w.spec.workloadRef;
      if (ref && ref.kind === c.kind.kind && ref.name === c.name && (w.metadata.namespace ?? '') === c.namespace) queue.add(objectKey(w));
    }
  });
  // The stoker.io/warm annotation: its own queue of workload keys, worked by the leader only.
  const annotated = new AnnotationController({ directory: workloads, warmups, createWarmup, deleteWarmup, events, log });
  const annotationQueue = new WorkQueue({ log });
  workloads.on('change', (c) => annotationQueue.add(annotated.keyOf(c.kind, c.namespace, c.name)));
  const enqueueDerived = (w: Warmup): void => {
    const k = annotated.keyOfWarmup(w);
    if (k) annotationQueue.add(k);
  };
  warmups.on('delete', enqueueDerived);
  const workloadSource: WorkloadSource = {
    derive: (namespace, ref) => workloads.derive(namespace, ref),
    event: (namespace, ref, type, reason, message) => {
      const w = workloads.get(namespace, ref);
      if (w) events.record({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace, ...(w.metadata?.uid ? { uid: w.metadata.uid } : {}) } }, type, reason, message);
    },
  };

  // Leadership: the reconciler exists only during a term.
  let currentTerm: Promise<void> | undefined;
  let elector: LeaderElector | undefined;
  let leading = false;
  const runTerm = (termSignal: AbortSignal): void => {
    const previous = currentTerm;
    currentTerm = (async () => {
      await previous;
      const signal = AbortSignal.any([termSignal, root.signal]);
      // Reconcile only from full caches; give up waiting if the term ends first.
      const aborted = new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
      await Promise.race([Promise.all([...informers.map((i) => i.synced), workloads.synced]), aborted]);
      if (signal.aborted) return;
      leading = true;
      metrics.isLeader.set(1);
      const reconcilerDeps: ReconcilerDeps = {
        warmups,
        nodes,
        agents,
        status,
        events,
        metrics,
        log,
        isLeader: () => leading && !signal.aborted,
        signal,
        connect: (endpoint) => agentPool.get(endpoint),
        readSecret,
        deleteWarmup,
        patchWarmup,
        patchNodeLabel,
        registryPolicy: config.registryPolicy,
        warmupNamespaces: config.warmupNamespaces,
        claims: {
          claim: (namespace, name) => claims.get(`${namespace}/${name}`),
          volume: (name) => volumes.get(name),
          mounts: (namespace, claim) => mounts.mounts(namespace, claim),
        },
        kubeletPodsDir: config.kubeletPodsDir,
        workloads: workloadSource,
      };
      const reconciler = createReconciler(reconcilerDeps);
      for (const w of warmups.list()) queue.add(objectKey(w));
      for (const k of annotated.keys()) annotationQueue.add(k);
      try {
        await Promise.all([
          queue.run(config.maxConcurrentReconciles, (k) => reconciler.reconcile(k), signal),
          annotationQueue.run(1, (k) => annotated.sync(k), signal),
        ]);
      } finally {
        leading = false;
        metrics.isLeader.set(0);
        await reconciler.stop().catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, 'reconciler stop failed'));
        agentPool.close();
        // A replica that lost the Lease writes no more status; one shutting down still flushes.
        if (!root.signal.aborted) status.cancelPending();
      }
    })().catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err) }, 'leadership term failed'));
  };

  for (const i of informers) i.start();

  if (config.leaderElect) {
    elector = new LeaderElector({
      kc,
      namespace: config.namespace,
      name: config.leaderLeaseName,
      identity: config.leaderElectionId,
      leaseDurationMs: config.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs,
      log,
      onStartedLeading: runTerm,
    });
    elector.start();
  } else {
    runTerm(root.signal);
  }

  const httpAddress = { host: http.address, port: http.port };
  log.info({ version: STOKER_VERSION, http: httpAddress, namespace: config.namespace, identity: config.leaderElectionId }, 'controller started');

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      log.info('controller stopping');
      root.abort();
      const drain = (async () => {
        await elector?.stop();
        await currentTerm;
        await status.stop();
        await events.idle();
      })();
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((r) => (timer = setTimeout(r, config.shutdownTimeoutMs)));
      await Promise.race([drain, bound]);
      clearTimeout(timer);
      queue.shutDown();
      annotationQueue.shutDown();
      agents.stop();
      for (const i of informers) i.stop();
      workloads.stop();
      await http.close();
      log.info('controller stopped');
      resolveDone();
    })();
    return stopping;
  };

  return {
    stop,
    httpAddress,
    isLeader: () => leading,
    statusWriter: status,
    metrics,
    agents,
    heldFor: (namespace, name) => [
      ...(status.holds(namespace, name) ? ['status writer'] : []),
      ...(events.holds(namespace, name) ? ['event recorder'] : []),
      ...(queue.holds(`${namespace}/${name}`) ? ['work queue'] : []),
    ],
    done,
  };
}

function startHttp(config: ControllerConfig, opts: { metrics: ControllerMetrics; ready: () => boolean; log: Logger }): Promise<HttpListener> {
  return listenHttp(
    config.httpListen.host,
    config.httpListen.port,
    {
      '/healthz': () => ({ body: 'ok' }),
      '/readyz': () => (opts.ready() ? { body: 'ok' } : { status: 503, body: 'informers not synced' }),
      '/metrics': async () => ({ body: await opts.metrics.registry.metrics(), contentType: opts.metrics.registry.contentType }),
    },
    { onError: (err, path) => opts.log.error({ path, err }, 'HTTP request failed') },
  );
}
