// PersistentVolumeClaims a Warmup names in spec.paths, resolved to what each node can read.
//
// A claim of the Warmup's namespace must exist and be Bound to a PersistentVolume that exists;
// otherwise the Warmup waits with a condition naming the claim (ClaimNotFound, ClaimNotBound).
// The volume's type says where its files can be read:
//   - hostPath: its path (plus subPath) on every target node;
//   - local: its path on the nodes its spec.nodeAffinity allows; other nodes report VolumeNotOnNode;
//   - anything else (NFS, CSI, ...): the kubelet's mount of the volume in a running pod that mounts
//     the claim, <kubeletPodsDir>/<podUID>/volumes/kubernetes.io~<plugin>/<pvName> (CSI adds
//     /mount), on that pod's node; nodes without such a pod report VolumeNotMounted.
// A note (VolumeNotOnNode, VolumeNotMounted) is not a failure: the node is warmed for the rest.
//
//   const plan = resolveClaims(spec.claims, 'default', lookup, '/var/lib/kubelet/pods');
//   if ('problem' in plan) ...;  plan.forNode(node) -> { paths, notes }
import { posix } from 'node:path';
import type { V1Node, V1NodeSelectorRequirement, V1NodeSelectorTerm, V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { ResolvedSpec } from '../api/types.js';
import type { ConditionReason, VolumeReason } from '../api/reasons.js';

export type Claim = ResolvedSpec['claims'][number];

/** What resolution reads: the informers' caches (controller/main.ts) or, in unit tests, fakes. */
export interface ClaimLookup {
  claim(namespace: string, name: string): V1PersistentVolumeClaim | undefined;
  volume(name: string): V1PersistentVolume | undefined;
  /** Running pods on a node that mount the claim. */
  mounts(namespace: string, claim: string): { node: string; podUid: string }[];
}

export interface ClaimProblem {
  reason: Extract<ConditionReason, 'ClaimNotFound' | 'ClaimNotBound' | 'InvalidPath'>;
  claimName: string;
  message: string;
}

export type VolumeNoteReason = VolumeReason;

export interface VolumeNote {
  claimName: string;
  reason: VolumeNoteReason;
}

export type VolumeKind = 'hostPath' | 'local' | 'network';

export interface NodePaths {
  paths: { path: string; include: string[]; exclude: string[] }[];
  notes: VolumeNote[];
}

export interface ResolvedClaim {
  claim: Claim;
  volumeName: string;
  kind: VolumeKind;
  /** The volume type as the PersistentVolume spells it (hostPath, local, nfs, csi, ...). */
  type: string;
  /** The path on a node, or undefined where the node cannot read the volume. */
  pathOn(node: V1Node): string | undefined;
}

export interface ClaimPlan {
  claims: ResolvedClaim[];
  /**
   * The node's paths (the host paths, then those of the claims it can read) and a note for each
   * claim it cannot read; the same object for the same node name for the plan's life.
   */
  forNode(node: V1Node): NodePaths;
}

export const DEFAULT_KUBELET_PODS_DIR = '/var/lib/kubelet/pods';

/** Volume types whose kubelet plugin directory is kubernetes.io~<name>; CSI-migrated in-tree types mount through CSI. */
const IN_TREE_PLUGIN: Readonly<Record<string, string>> = Object.freeze({
  nfs: 'nfs',
  cephfs: 'cephfs',
  iscsi: 'iscsi',
  rbd: 'rbd',
  fc: 'fc',
  flexVolume: 'flexvolume',
});
const CSI_MIGRATED = new Set(['csi', 'awsElasticBlockStore', 'gcePersistentDisk', 'azureDisk', 'azureFile', 'cinder', 'vsphereVolume', 'portworxVolume']);

/** The volume type of a PersistentVolume: the name of its one volume source field. */
export function volumeType(pv: V1PersistentVolume): string {
  const spec = (pv.spec ?? {}) as Record<string, unknown>;
  if (spec.hostPath) return 'hostPath';
  if (spec.local) return 'local';
  for (const t of [...Object.keys(IN_TREE_PLUGIN), ...CSI_MIGRATED]) if (spec[t]) return t;
  return 'unknown';
}

/** Where the kubelet mounts a network volume for a pod, under its pods directory; undefined for a type it does not mount there. */
export function kubeletMountPath(podsDir: string, podUid: string, pv: V1PersistentVolume): string | undefined {
  const type = volumeType(pv);
  const name = pv.metadata?.name ?? '';
  const base = posix.join(podsDir, podUid, 'volumes');
  if (CSI_MIGRATED.has(type)) return posix.join(base, 'kubernetes.io~csi', name, 'mount');
  const plugin = IN_TREE_PLUGIN[type];
  return plugin ? posix.join(base, `kubernetes.io~${plugin}`, name) : undefined;
}

/** Whether a node satisfies a required node affinity (any term; every requirement of a term). */
export function matchesNodeSelectorTerms(terms: readonly V1NodeSelectorTerm[], node: V1Node): boolean {
  const labels = node.metadata?.labels ?? {};
  const fields: Record<string, string> = { 'metadata.name': node.metadata?.name ?? '' };
  return terms.some(
    (t) =>
      (t.matchExpressions?.length ?? 0) + (t.matchFields?.length ?? 0) > 0 &&
      (t.matchExpressions ?? []).every((r) => requirementHolds(r, labels)) &&
      (t.matchFields ?? []).every((r) => requirementHolds(r, fields)),
  );
}

function requirementHolds(r: V1NodeSelectorRequirement, values: Record<string, string>): boolean {
  const has = Object.hasOwn(values, r.key);
  const v = values[r.key] ?? '';
  const list = r.values ?? [];
  switch (r.operator) {
    case 'In':
      return has && list.includes(v);
    case 'NotIn':
      return !has || !list.includes(v);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'Gt':
    case 'Lt': {
      const a = Number.parseInt(v, 10);
      const b = Number.parseInt(list[0] ?? '', 10);
      if (!has || Number.isNaN(a) || Number.isNaN(b)) return false;
      return r.operator === 'Gt' ? a > b : a < b;
    }
    default:
      return false;
  }
}

/** subPath joined under root, or undefined when it is not a clean relative path. */
function under(root: string, subPath: string | undefined): string | undefined {
  if (subPath === undefined) return root;
  const clean = posix.normalize(subPath);
  if (clean !== subPath || clean.startsWith('/') || clean === '..' || clean.startsWith('../') || clean === '.') return undefined;
  return posix.join(root, subPath);
}

/**
 * Resolves every claim, or returns the first problem (a claim missing, not bound, its volume
 * missing, or a subPath that is not clean).
 */
export function resolveClaims(
  claims: readonly Claim[],
  namespace: string,
  lookup: ClaimLookup,
  kubeletPodsDir: string,
  hostPaths: NodePaths['paths'] = [],
): ClaimPlan | { problem: ClaimProblem } {
  const resolved: ResolvedClaim[] = [];
  for (const claim of claims) {
    const name = claim.claimName;
    const pvc = lookup.claim(namespace, name);
    if (!pvc) {
      return { problem: { reason: 'ClaimNotFound', claimName: name, message: `persistentVolumeClaim "${name}" does not exist in namespace "${namespace}"; warming waits for it` } };
    }
    const volumeName = pvc.spec?.volumeName;
    if (pvc.status?.phase !== 'Bound' || !volumeName) {
      return { problem: { reason: 'ClaimNotBound', claimName: name, message: `persistentVolumeClaim "${name}" is ${pvc.status?.phase ?? 'Pending'}, not Bound to a volume; warming waits for it` } };
    }
    const pv = lookup.volume(volumeName);
    if (!pv) {
      return { problem: { reason: 'ClaimNotBound', claimName: name, message: `persistentVolumeClaim "${name}" is bound to volume "${volumeName}", which does not exist; warming waits for it` } };
    }
    if (under('/', claim.subPath) === undefined) {
      return { problem: { reason: 'InvalidPath', claimName: name, message: `subPath "${claim.subPath ?? ''}" of persistentVolumeClaim "${name}" is not a clean relative path` } };
    }
    const type = volumeType(pv);
    if (type === 'hostPath' || type === 'local') {
      const root = (type === 'hostPath' ? pv.spec?.hostPath?.path : pv.spec?.local?.path) ?? '';
      const path = under(posix.normalize(root), claim.subPath);
      const terms = type === 'local' ? (pv.spec?.nodeAffinity?.required?.nodeSelectorTerms ?? []) : undefined;
      resolved.push({
        claim,
        volumeName,
        kind: type,
        type,
        pathOn: (node) => (terms === undefined || matchesNodeSelectorTerms(terms, node) ? path : undefined),
      });
      continue;
    }
    // A network volume: on each node with a running pod mounting the claim, the first such pod's mount.
    const byNode = new Map<string, string>();
    for (const m of [...lookup.mounts(namespace, name)].sort((a, b) => a.podUid.localeCompare(b.podUid))) {
      const mount = kubeletMountPath(kubeletPodsDir, m.podUid, pv);
      const path = mount === undefined ? undefined : under(mount, claim.subPath);
      if (path !== undefined && !byNode.has(m.node)) byNode.set(m.node, path);
    }
    resolved.push({ claim, volumeName, kind: 'network', type, pathOn: (node) => byNode.get(node.metadata?.name ?? '') });
  }
  const cache = new Map<string, NodePaths>();
  return {
    claims: resolved,
    forNode(node) {
      const name = node.metadata?.name ?? '';
      const cached = cache.get(name);
      if (cached) return cached;
      const out: NodePaths = { paths: [...hostPaths], notes: [] };
      for (const r of resolved) {
        const path = r.pathOn(node);
        if (path !== undefined) out.paths.push({ path, include: r.claim.include, exclude: r.claim.exclude });
        else out.notes.push({ claimName: r.claim.claimName, reason: r.kind === 'local' ? 'VolumeNotOnNode' : 'VolumeNotMounted' });
      }
      cache.set(name, out);
      return out;
    },
  };
}
