// The spec a Warmup's run does: its own resolved spec or, with spec.workloadRef, that spec merged
// with what its workload derives (controller/workloads/derive.ts): the workload's images, pull
// secrets, host paths and claims are added to any the Warmup lists itself, and its pod templates
// decide the nodes (controller/workloads/eligibility.ts). Pure, given the WorkloadSource.
//
//   const e = effectiveSpec(warmup, source);  // { spec, derived } | { problem }
//   skippedNodes(e.derived.templates, nodes)   // -> { count, list } for status.skippedNodeList
import type { V1Node } from '@kubernetes/client-node';
import { MAX_NODE_LIST, resolveSpec, type ResolvedSpec, type SkippedNode, type Warmup, type WorkloadRef } from '../api/types.js';
import type { EventReason } from '../api/reasons.js';
import type { Derivation, DerivationProblem } from './derive.js';
import { skipReason } from './eligibility.js';
import type { PodTemplate } from './templates.js';

/** What the reconciler reads about workloads (controller/workloads/directory.ts gives it). */
export interface WorkloadSource {
  derive(namespace: string, ref: WorkloadRef): { derivation: Derivation } | { problem: DerivationProblem };
  /** Records an Event on the workload, when it exists. */
  event(namespace: string, ref: WorkloadRef, type: 'Normal' | 'Warning', reason: EventReason, message: string): void;
}

export type Effective = { spec: ResolvedSpec; derived: Derivation | undefined } | { problem: DerivationProblem };

export function effectiveSpec(w: Warmup, source: WorkloadSource | undefined): Effective {
  const spec = resolveSpec(w.spec);
  const ref = spec.workloadRef;
  if (!ref) return { spec, derived: undefined };
  const ns = w.metadata.namespace ?? 'default';
  const r = source ? source.derive(ns, ref) : { problem: { reason: 'WorkloadNotFound' as const, value: `${ref.kind}/${ref.name}`, message: `workloadRef ${ref.kind}/${ref.name}: this controller reads no workloads` } };
  if ('problem' in r) return r;
  const d = r.derivation;
  const images = [...spec.images];
  for (const image of d.images) if (!images.some((i) => i.image === image)) images.push({ image, pullPolicy: 'IfNotPresent' });
  const paths = [...spec.paths];
  for (const p of d.paths) if (!paths.some((x) => x.path === p.path)) paths.push(p);
  const claims = [...spec.claims];
  for (const c of d.claims) if (!claims.some((x) => x.claimName === c.claimName)) claims.push(c);
  return {
    spec: { ...spec, images, imagePullSecrets: [...new Set([...spec.imagePullSecrets, ...d.imagePullSecrets])], paths, claims, nodes: undefined },
    derived: d,
  };
}

/** The nodes no pod of the templates may land on, with why: the count and the first MAX_NODE_LIST by name. */
export function skippedNodes(templates: readonly PodTemplate[], nodes: readonly V1Node[]): { count: number; list: SkippedNode[] } {
  const all: SkippedNode[] = [];
  for (const n of nodes) {
    const name = n.metadata?.name;
    if (!name) continue;
    const why = skipReason(templates, n);
    if (why) all.push({ name, reason: why.reason, message: why.message });
  }
  all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { count: all.length, list: all.slice(0, MAX_NODE_LIST) };
}
