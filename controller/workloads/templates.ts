// Where each workload kind Stoker can read keeps its pod templates. Workloads are read as plain
// JSON (what a watch delivers), so kinds whose CRDs Stoker does not ship (LeaderWorkerSet,
// RoleBasedGroup) need no generated types.
//
//   const t = podTemplatesOf(deployment);  // -> { templates: [{ name: 'template', spec }] } or { refused }
//
// Kinds and where their templates are:
//   apps/v1 Deployment, StatefulSet, DaemonSet, ReplicaSet, batch/v1 Job  spec.template
//   batch/v1 CronJob                                                     spec.jobTemplate.spec.template
//   v1 Pod                                                               spec (the pod itself)
//   leaderworkerset.x-k8s.io/v1 LeaderWorkerSet                          spec.leaderWorkerTemplate.leaderTemplate
//                                                                        and .workerTemplate
//   workloads.x-k8s.io/v1alpha1 RoleBasedGroup                           spec.roles[].template (sgl-project/rbg;
//                                                                        a role's leaderWorkerSet patches are not read)
// Any other kind is refused by name; nothing is guessed.
import type { V1PodSpec } from '@kubernetes/client-node';

/** A workload as the API server sends it (plain JSON). */
export interface Workload {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    resourceVersion?: string;
  };
  spec?: unknown;
}

/** One pod template: where it was found (for messages) and its pod spec. */
export interface PodTemplate {
  name: string;
  spec: V1PodSpec;
}

/** A workload kind Stoker reads: its API group, version, kind and plural (for watches and RBAC). */
export interface WorkloadKind {
  group: string;
  version: string;
  kind: string;
  plural: string;
  /** Only when its CRD is installed (discovery says so). */
  optional?: boolean;
  templates(spec: Record<string, unknown>): PodTemplate[];
}

function at(obj: unknown, ...path: string[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

/** The pod spec of a PodTemplateSpec found at `path`, as a named template; none when absent. */
function templateAt(spec: unknown, name: string, ...path: string[]): PodTemplate[] {
  const s = at(spec, ...path, 'spec');
  return s !== null && typeof s === 'object' ? [{ name, spec: s as V1PodSpec }] : [];
}

export const WORKLOAD_KINDS: readonly WorkloadKind[] = Object.freeze([
  ...(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'] as const).map((kind) => ({
    group: 'apps',
    version: 'v1',
    kind,
    plural: `${kind.toLowerCase()}s`,
    templates: (s: Record<string, unknown>) => templateAt(s, 'spec.template', 'template'),
  })),
  { group: 'batch', version: 'v1', kind: 'Job', plural: 'jobs', templates: (s) => templateAt(s, 'spec.template', 'template') },
  { group: 'batch', version: 'v1', kind: 'CronJob', plural: 'cronjobs', templates: (s) => templateAt(s, 'spec.jobTemplate.spec.template', 'jobTemplate', 'spec', 'template') },
  { group: '', version: 'v1', kind: 'Pod', plural: 'pods', templates: (s) => [{ name: 'spec', spec: s as unknown as V1PodSpec }] },
  {
    group: 'leaderworkerset.x-k8s.io',
    version: 'v1',
    kind: 'LeaderWorkerSet',
    plural: 'leaderworkersets',
    optional: true,
    templates: (s) => [
      ...templateAt(s, 'spec.leaderWorkerTemplate.leaderTemplate', 'leaderWorkerTemplate', 'leaderTemplate'),
      ...templateAt(s, 'spec.leaderWorkerTemplate.workerTemplate', 'leaderWorkerTemplate', 'workerTemplate'),
    ],
  },
  {
    group: 'workloads.x-k8s.io',
    version: 'v1alpha1',
    kind: 'RoleBasedGroup',
    plural: 'rolebasedgroups',
    optional: true,
    templates: (s) => {
      const roles = at(s, 'roles');
      if (!Array.isArray(roles)) return [];
      return roles.flatMap((r: unknown, i) => templateAt(r, `spec.roles[${typeof at(r, 'name') === 'string' ? String(at(r, 'name')) : i}].template`, 'template'));
    },
  },
] satisfies WorkloadKind[]);

/** The group of an apiVersion ("apps/v1" -> "apps", "v1" -> ""). */
export function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

/** The kind Stoker reads for this apiVersion and kind (any version of the group), or undefined. */
export function workloadKind(apiVersion: string, kind: string): WorkloadKind | undefined {
  const group = groupOf(apiVersion);
  return WORKLOAD_KINDS.find((k) => k.group === group && k.kind === kind);
}

/** "Deployment" -> "apps/v1", "Pod" -> "v1". */
export function apiVersionOf(k: WorkloadKind): string {
  return k.group ? `${k.group}/${k.version}` : k.version;
}

/** The names of the kinds Stoker reads, for messages. */
export function supportedKinds(): string {
  return WORKLOAD_KINDS.map((k) => `${k.kind} (${apiVersionOf(k)})`).join(', ');
}

/** The pod templates of a workload of a known kind (none when its spec has none). */
export function podTemplatesOf(kind: WorkloadKind, w: Workload): PodTemplate[] {
  const spec = w.spec;
  if (spec === null || typeof spec !== 'object') return [];
  return kind.templates(spec as Record<string, unknown>);
}
