// Where a workload's pods may land, as the scheduler's hard rules decide it, node by node:
// nodeSelector, required node affinity (nodeSelectorTerms: matchExpressions In, NotIn, Exists,
// DoesNotExist, Gt, Lt; matchFields metadata.name), and NoSchedule/NoExecute taints the pods do not
// tolerate. A node annotated stoker.io/exclude=true is skipped for every Warmup. Pure functions.
//
//   const why = skipReason(templates, node);  // undefined: a pod of some template may land there
//
// A workload with several templates (LeaderWorkerSet's leader and workers, RoleBasedGroup's roles)
// may land on a node when any one template may. Preferred affinity, pod (anti-)affinity, topology
// spread and resources are not hard placement rules of the node itself, and are not read.
import type { V1Node, V1NodeSelectorRequirement, V1NodeSelectorTerm, V1PodSpec, V1Taint, V1Toleration } from '@kubernetes/client-node';
import type { PodTemplate } from './templates.js';

/** Opts a node out of every Warmup while set to "true" (draining, debugging). */
export const EXCLUDE_ANNOTATION = 'stoker.io/exclude';

export type SkipKind = 'excluded' | 'selector' | 'affinity' | 'taint';

/** Why a node is not warmed for a workload. */
export interface SkipReason {
  reason: SkipKind;
  message: string;
}

export function isExcluded(node: V1Node): boolean {
  return node.metadata?.annotations?.[EXCLUDE_ANNOTATION] === 'true';
}

/** Why no pod of `templates` may land on `node`, or undefined when one may. */
export function skipReason(templates: readonly PodTemplate[], node: V1Node): SkipReason | undefined {
  if (isExcluded(node)) return { reason: 'excluded', message: `annotated ${EXCLUDE_ANNOTATION}=true` };
  let first: SkipReason | undefined;
  for (const t of templates) {
    const why = podSkipReason(t.spec, node);
    if (!why) return undefined;
    first ??= why;
  }
  return first ?? { reason: 'selector', message: 'the workload has no pod template' };
}

/** Why a pod with this spec may not land on `node`, or undefined. */
export function podSkipReason(spec: V1PodSpec, node: V1Node): SkipReason | undefined {
  const labels = node.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(spec.nodeSelector ?? {})) {
    if (labels[k] !== v) return { reason: 'selector', message: `nodeSelector ${k}=${v} (node has ${k in labels ? `${k}=${labels[k]}` : `no ${k}`})` };
  }
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  if (terms && terms.length > 0 && !terms.some((t) => termMatches(t, node))) {
    return { reason: 'affinity', message: `required node affinity: no nodeSelectorTerm matches` };
  }
  const taint = (node.spec?.taints ?? []).find((t) => (t.effect === 'NoSchedule' || t.effect === 'NoExecute') && !(spec.tolerations ?? []).some((tol) => tolerates(tol, t)));
  if (taint) return { reason: 'taint', message: `taint ${taint.key}${taint.value ? `=${taint.value}` : ''}:${taint.effect} not tolerated` };
  return undefined;
}

/** One nodeSelectorTerm: every expression and field requirement holds; an empty term matches nothing. */
export function termMatches(term: V1NodeSelectorTerm, node: V1Node): boolean {
  const exprs = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  if (exprs.length === 0 && fields.length === 0) return false;
  const labels = node.metadata?.labels ?? {};
  if (!exprs.every((r) => requirementHolds(r, labels[r.key]))) return false;
  // Only metadata.name is a node field the scheduler matches on.
  return fields.every((r) => r.key === 'metadata.name' && (r.operator === 'In' || r.operator === 'NotIn') && requirementHolds(r, node.metadata?.name));
}

export function requirementHolds(r: V1NodeSelectorRequirement, value: string | undefined): boolean {
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      if (value === undefined || values.length !== 1) return false;
      const have = Number.parseInt(value, 10);
      const want = Number.parseInt(values[0] ?? '', 10);
      if (!/^-?\d+$/.test(value) || Number.isNaN(want)) return false;
      return r.operator === 'Gt' ? have > want : have < want;
    }
    default:
      return false;
  }
}

/** Whether a toleration tolerates a taint (the rules of k8s.io/api core/v1 Toleration.ToleratesTaint). */
export function tolerates(tol: V1Toleration, taint: V1Taint): boolean {
  if (tol.effect && tol.effect !== taint.effect) return false;
  if (tol.key && tol.key !== taint.key) return false;
  if (tol.operator === 'Exists') return true;
  // Equal (the default); an empty key with Equal is not valid and tolerates nothing.
  if (!tol.key) return false;
  return (tol.value ?? '') === (taint.value ?? '');
}
