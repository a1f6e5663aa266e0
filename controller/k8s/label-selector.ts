// Kubernetes label selectors (metav1.LabelSelector), as the API server and kubectl read them:
// every term of matchLabels and matchExpressions must hold. Used to pick the Nodes a Warmup's
// spec.nodes.selector targets, and to name that selector in a condition message.
//
//   matchesSelector({ matchLabels: { pool: 'gpu' } }, node.metadata.labels)   // -> boolean
//   formatSelector({ matchLabels: { pool: 'gpu' } })                           // -> '"pool=gpu"'
import type { V1LabelSelector } from '@kubernetes/client-node';

/** Whether labels satisfy a standard LabelSelector (every term must hold; an unknown operator never does). */
export function matchesSelector(sel: V1LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(value ?? '')) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value ?? '')) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** The selector in kubectl's string form, quoted: `"pool=gpu,zone in (a,b),!spot"`. */
export function formatSelector(sel: V1LabelSelector): string {
  const out: string[] = [];
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) out.push(`${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    if (e.operator === 'Exists') out.push(e.key);
    else if (e.operator === 'DoesNotExist') out.push(`!${e.key}`);
    else out.push(`${e.key} ${e.operator.toLowerCase()} (${(e.values ?? []).join(',')})`);
  }
  return `"${out.join(',')}"`;
}
