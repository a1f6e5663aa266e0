// The workloads Warmups may name, cached: one informer per kind Stoker reads
// (controller/workloads/templates.ts) and one for ServiceAccounts (their pull secrets).
// LeaderWorkerSet and RoleBasedGroup are watched only once their API is served (checked at start
// and every `discoveryIntervalMs` until found); without their CRDs nothing else changes.
//
//   const dir = startWorkloadDirectory({ kc, log, namespace?, informerBase });
//   dir.on('change', ({ kind, namespace, name, workload }) => ...);  // spec or stoker.io/* annotations changed, or gone
//   dir.derive(namespace, ref);   // -> { derivation } | { problem }   (controller/workloads/derive.ts)
//   dir.get(namespace, ref); dir.list(kind);   // cached workloads (the annotation controller's pass)
//   await dir.synced; dir.stop();
//
// Objects are kept small: status, managedFields and annotations other than stoker.io/* are dropped
// as they arrive (a cluster's Pods and ReplicaSets are many), and only a change of what derivation
// reads (spec, stoker.io/* annotations) is reported.
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../proto/common/log.js';
import { kubeErrorStatus } from '../../proto/common/kube-errors.js';
import type { WorkloadRef } from '../api/types.js';
import { abortable } from '../k8s/abortable.js';
import { objectKey, startInformer, type Informer, type InformerOptions, type ListResult } from '../k8s/informer.js';
import { deriveWork, type Derivation, type DerivationProblem, type ServiceAccountView } from './derive.js';
import { apiVersionOf, podTemplatesOf, supportedKinds, WORKLOAD_KINDS, workloadKind, type Workload, type WorkloadKind } from './templates.js';

export interface WorkloadChange {
  kind: WorkloadKind;
  namespace: string;
  name: string;
  /** Undefined when it was deleted. */
  workload: Workload | undefined;
}

interface ServiceAccount {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  imagePullSecrets?: { name?: string }[];
}

export interface WorkloadDirectoryOptions {
  kc: KubeConfig;
  log: Logger;
  /** Watch only this namespace (the controller's --watch-namespace); all when undefined. */
  namespace?: string | undefined;
  informerBase: Pick<InformerOptions<Workload>, 'relistIntervalMs' | 'watchdogMs'>;
  /** How often to look again for the optional kinds' APIs (default 60 s). */
  discoveryIntervalMs?: number;
  onRestart?: (informer: string) => (reason: string) => void;
}

export interface WorkloadDirectory {
  on(event: 'change', fn: (c: WorkloadChange) => void): void;
  derive(namespace: string, ref: WorkloadRef): { derivation: Derivation } | { problem: DerivationProblem };
  /** The cached workload a ref names, or undefined. */
  get(namespace: string, ref: WorkloadRef): Workload | undefined;
  /** The workloads of a kind watched now (none for an optional kind whose API is not served). */
  list(kind: WorkloadKind): Workload[];
  /** Kinds watched now. */
  watched(): WorkloadKind[];
  readonly synced: Promise<void>;
  hasSynced(): boolean;
  stop(): void;
}

/**
 * Drops what derivation never reads, so a large cluster's workloads cost little memory: of the
 * metadata, names, uid, version and stoker.io/* annotations; of each pod template (`kind` says
 * where they are), only what derive.ts and eligibility.ts read (container names and images, pull
 * secrets, service account, nodeSelector, required node affinity, tolerations, volume names and
 * their hostPath or claim). The rest of the workload's spec is dropped.
 */
export function slim(raw: unknown, kind?: WorkloadKind): Workload {
  const o = raw as Workload & { metadata?: Record<string, unknown> };
  const m = o.metadata ?? {};
  const annotations = Object.fromEntries(Object.entries((m.annotations) ?? {}).filter(([k]) => k.startsWith('stoker.io/')));
  const metadata: Workload['metadata'] & object = {};
  for (const k of ['name', 'namespace', 'uid', 'resourceVersion'] as const) if (typeof m[k] === 'string') metadata[k] = m[k];
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
  const out: Workload = { ...(o.apiVersion ? { apiVersion: o.apiVersion } : {}), ...(o.kind ? { kind: o.kind } : {}), metadata, spec: o.spec };
  if (kind) for (const t of podTemplatesOf(kind, out)) slimPodSpec(t.spec as unknown as Record<string, unknown>);
  return out;
}

const POD_SPEC_FIELDS = new Set(['containers', 'initContainers', 'imagePullSecrets', 'serviceAccountName', 'serviceAccount', 'nodeSelector', 'affinity', 'tolerations', 'volumes']);

/** Keeps, in place, only the pod spec fields derivation reads. */
function slimPodSpec(spec: Record<string, unknown>): void {
  for (const k of Object.keys(spec)) if (!POD_SPEC_FIELDS.has(k)) delete spec[k];
  const containers = (list: unknown): unknown =>
    Array.isArray(list) ? list.map((c: { name?: unknown; image?: unknown }) => ({ name: c?.name, image: c?.image })) : list;
  if ('containers' in spec) spec.containers = containers(spec.containers);
  if ('initContainers' in spec) spec.initContainers = containers(spec.initContainers);
  const affinity = spec.affinity as { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: unknown } } | undefined;
  if (affinity && typeof affinity === 'object') {
    const required = affinity.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
    spec.affinity = required ? { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: required } } : {};
  }
  if (Array.isArray(spec.volumes)) {
    spec.volumes = spec.volumes.map((v: { name?: unknown; hostPath?: unknown; persistentVolumeClaim?: unknown }) => ({
      name: v?.name,
      ...(v?.hostPath ? { hostPath: v.hostPath } : {}),
      ...(v?.persistentVolumeClaim ? { persistentVolumeClaim: v.persistentVolumeClaim } : {}),
    }));
  }
}

function fingerprint(w: Workload): string {
  return createHash('sha256').update(JSON.stringify([w.metadata?.annotations ?? {}, w.spec ?? null])).digest('base64url');
}

export function startWorkloadDirectory(opts: WorkloadDirectoryOptions): WorkloadDirectory {
  const { kc, log, namespace: ns } = opts;
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const emitter = new EventEmitter();
  const informers = new Map<WorkloadKind, Informer<Workload>>();
  const prints = new Map<string, string>();
  const abort = new AbortController();
  const base = { kc, log, ...opts.informerBase };
  const plain = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

  const serviceAccounts = startInformer<ServiceAccount>({
    ...base,
    name: 'serviceaccounts',
    path: ns ? `/api/v1/namespaces/${ns}/serviceaccounts` : '/api/v1/serviceaccounts',
    list: async (signal) =>
      plain(ns ? await core.listNamespacedServiceAccount({ namespace: ns }, abortable(signal)) : await core.listServiceAccountForAllNamespaces({}, abortable(signal))),
    deserialize: (raw) => {
      const sa = raw as ServiceAccount;
      return { metadata: { ...(sa.metadata?.name ? { name: sa.metadata.name } : {}), ...(sa.metadata?.namespace ? { namespace: sa.metadata.namespace } : {}), ...(sa.metadata?.resourceVersion ? { resourceVersion: sa.metadata.resourceVersion } : {}) }, ...(sa.imagePullSecrets ? { imagePullSecrets: sa.imagePullSecrets } : {}) };
    },
    ...(opts.onRestart ? { onRestart: opts.onRestart('serviceaccounts') } : {}),
  });
  serviceAccounts.start();

  const listOf = (k: WorkloadKind) => async (signal: AbortSignal): Promise<ListResult<Workload>> => {
    if (k.group === '') {
      return plain(ns ? await core.listNamespacedPod({ namespace: ns }, abortable(signal)) : await core.listPodForAllNamespaces({}, abortable(signal)));
    }
    const g = { group: k.group, version: k.version, plural: k.plural };
    return (ns ? await custom.listNamespacedCustomObject({ ...g, namespace: ns }, abortable(signal)) : await custom.listClusterCustomObject(g, abortable(signal))) as ListResult<Workload>;
  };

  function watch(k: WorkloadKind): Informer<Workload> {
    const prefix = k.group === '' ? `/api/${k.version}` : `/apis/${k.group}/${k.version}`;
    const inf = startInformer<Workload>({
      ...base,
      name: k.plural,
      path: ns ? `${prefix}/namespaces/${ns}/${k.plural}` : `${prefix}/${k.plural}`,
      list: listOf(k),
      deserialize: (raw) => slim(raw, k),
      ...(opts.onRestart ? { onRestart: opts.onRestart(k.plural) } : {}),
    });
    const key = (w: Workload): string => `${k.plural}/${objectKey(w)}`;
    const changed = (w: Workload): void => {
      const f = fingerprint(w);
      if (prints.get(key(w)) === f) return;
      prints.set(key(w), f);
      emitter.emit('change', { kind: k, namespace: w.metadata?.namespace ?? '', name: w.metadata?.name ?? '', workload: w });
    };
    inf.on('add', changed);
    inf.on('update', changed);
    inf.on('delete', (w) => {
      prints.delete(key(w));
      emitter.emit('change', { kind: k, namespace: w.metadata?.namespace ?? '', name: w.metadata?.name ?? '', workload: undefined });
    });
    informers.set(k, inf);
    inf.start();
    return inf;
  }

  for (const k of WORKLOAD_KINDS) if (!k.optional) watch(k);

  /** Whether the API of an optional kind is served (its CRD installed). */
  async function served(k: WorkloadKind): Promise<boolean> {
    try {
      await custom.listClusterCustomObject({ group: k.group, version: k.version, plural: k.plural, limit: 1 }, abortable(abort.signal));
      return true;
    } catch (err) {
      const code = kubeErrorStatus(err);
      if (code === 404) return false;
      // 403 (no RBAC for it, e.g. a namespaced install): not watched.
      if (code === 403) return false;
      throw err;
    }
  }
  const missing = new Set(WORKLOAD_KINDS.filter((k) => k.optional));
  let discoveryTimer: NodeJS.Timeout | undefined;
  let discovered!: () => void;
  const firstDiscovery = new Promise<void>((r) => (discovered = r));
  const discover = async (): Promise<void> => {
    for (const k of [...missing]) {
      try {
        if (await served(k)) {
          missing.delete(k);
          log.info({ kind: k.kind, apiVersion: apiVersionOf(k) }, 'workload API served: watching it');
          watch(k);
        }
      } catch (err) {
        log.warn({ kind: k.kind, reason: err instanceof Error ? err.message : String(err) }, 'could not tell whether a workload API is served; asking again later');
      }
    }
    discovered();
    if (missing.size > 0 && !abort.signal.aborted) {
      discoveryTimer = setTimeout(() => void discover(), opts.discoveryIntervalMs ?? 60_000);
      discoveryTimer.unref();
    }
  };
  void discover();

  const synced = (async () => {
    await firstDiscovery;
    await Promise.all([serviceAccounts.synced, ...[...informers.values()].map((i) => i.synced)]);
  })();

  const serviceAccount = (namespace: string, name: string): ServiceAccountView | undefined => serviceAccounts.get(`${namespace}/${name}`);

  return {
    on: (event, fn) => emitter.on(event, fn),
    derive(namespace, ref) {
      const kind = workloadKind(ref.apiVersion, ref.kind);
      if (!kind) {
        return { problem: { reason: 'WorkloadKindNotSupported', value: `${ref.apiVersion}/${ref.kind}`, message: `workloadRef kind ${ref.kind} (${ref.apiVersion}) is not one Stoker can read; it reads ${supportedKinds()}` } };
      }
      const inf = informers.get(kind);
      const w = inf?.get(`${namespace}/${ref.name}`);
      if (!w) {
        const why = inf ? '' : ` (the ${apiVersionOf(kind)} API is not served: is its CRD installed?)`;
        return { problem: { reason: 'WorkloadNotFound', value: `${ref.kind}/${ref.name}`, message: `workloadRef ${ref.kind}/${ref.name} does not exist in namespace ${namespace}${why}` } };
      }
      return deriveWork(kind, { ...w, metadata: { ...w.metadata, namespace } }, serviceAccount);
    },
    get(namespace, ref) {
      const kind = workloadKind(ref.apiVersion, ref.kind);
      return kind ? informers.get(kind)?.get(`${namespace}/${ref.name}`) : undefined;
    },
    list: (kind) => informers.get(kind)?.list() ?? [],
    watched: () => [...informers.keys()],
    synced,
    hasSynced: () => serviceAccounts.hasSynced() && [...informers.values()].every((i) => i.hasSynced()),
    stop() {
      abort.abort();
      clearTimeout(discoveryTimer);
      serviceAccounts.stop();
      for (const i of informers.values()) i.stop();
    },
  };
}
