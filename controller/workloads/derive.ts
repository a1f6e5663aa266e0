// What a workload needs warmed, read from its pod templates: a pure function of the workload and
// its ServiceAccounts, unit-tested with tables (derive.test.ts).
//
//   const r = deriveWork(kind, workload, serviceAccount);
//   if ('problem' in r) ... // a condition and an Event name r.problem.value
//   else r.derivation.images, .imagePullSecrets, .paths, .claims, .templates (for skipReason), .key
//
//   - images: every container and init container image of every template, in order, once each,
//     then the workload's stoker.io/warm-images (comma list), to warm ahead of a rollout;
//   - pull secrets: the templates' imagePullSecrets, then those of each template's ServiceAccount
//     (serviceAccountName, "default" when none is named; one that does not exist adds none);
//   - volumes named in stoker.io/warm-volumes (comma list of the templates' volume names): a
//     hostPath volume is read as a host path, a persistentVolumeClaim volume as a claim (resolved
//     to host paths per node elsewhere); stoker.io/warm-include (comma list of globs) narrows both.
// A name not in any template, a volume of another type, or an image that is not a valid reference
// is a problem that names the value.
import { createHash } from 'node:crypto';
import { InvalidReferenceError, parseImageReference } from '../../proto/common/image-reference.js';
import { podTemplatesOf, type PodTemplate, type Workload, type WorkloadKind } from './templates.js';

export const WARM_IMAGES_ANNOTATION = 'stoker.io/warm-images';
export const WARM_VOLUMES_ANNOTATION = 'stoker.io/warm-volumes';
export const WARM_INCLUDE_ANNOTATION = 'stoker.io/warm-include';

export interface ServiceAccountView {
  imagePullSecrets?: { name?: string }[];
}

export interface Derivation {
  /** "Deployment/vllm": what status.source shows. */
  source: string;
  templates: PodTemplate[];
  images: string[];
  imagePullSecrets: string[];
  paths: { path: string; include: string[]; exclude: string[] }[];
  claims: { claimName: string; include: string[]; exclude: string[] }[];
  /** A hash of everything above that decides what and where: equal keys, the same run. */
  key: string;
}

export type DerivationReason = 'WorkloadNotFound' | 'WorkloadKindNotSupported' | 'VolumeNotInTemplate' | 'VolumeNotWarmable' | 'InvalidImageReference';

export interface DerivationProblem {
  reason: DerivationReason;
  /** The offending value (an image, a volume name, a kind), named in the message. */
  value: string;
  message: string;
}

/** A comma list annotation as its trimmed, non-empty items. */
export function commaList(v: string | undefined): string[] {
  return (v ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export function deriveWork(
  kind: WorkloadKind,
  workload: Workload,
  serviceAccount: (namespace: string, name: string) => ServiceAccountView | undefined,
): { derivation: Derivation } | { problem: DerivationProblem } {
  const name = workload.metadata?.name ?? '';
  const ns = workload.metadata?.namespace ?? 'default';
  const source = `${kind.kind}/${name}`;
  const annotations = workload.metadata?.annotations ?? {};
  const templates = podTemplatesOf(kind, workload);

  const images: string[] = [];
  const seen = new Set<string>();
  const addImage = (image: string, where: string): DerivationProblem | undefined => {
    if (seen.has(image)) return undefined;
    try {
      parseImageReference(image);
    } catch (err) {
      if (!(err instanceof InvalidReferenceError)) throw err;
      return { reason: 'InvalidImageReference', value: image, message: `${source} ${where}: "${image}" is not a valid image reference: ${err.reason}` };
    }
    seen.add(image);
    images.push(image);
    return undefined;
  };
  for (const t of templates) {
    for (const [list, field] of [[t.spec.initContainers, 'initContainers'], [t.spec.containers, 'containers']] as const) {
      for (const c of list ?? []) {
        if (typeof c.image !== 'string' || c.image === '') continue;
        const p = addImage(c.image, `${t.name}.${field}[${c.name}].image`);
        if (p) return { problem: p };
      }
    }
  }
  for (const image of commaList(annotations[WARM_IMAGES_ANNOTATION])) {
    const p = addImage(image, `annotation ${WARM_IMAGES_ANNOTATION}`);
    if (p) return { problem: p };
  }

  const secrets: string[] = [];
  const addSecret = (s: string | undefined): void => {
    if (s && !secrets.includes(s)) secrets.push(s);
  };
  for (const t of templates) for (const s of t.spec.imagePullSecrets ?? []) addSecret(s.name);
  for (const t of templates) {
    const sa = serviceAccount(ns, t.spec.serviceAccountName || t.spec.serviceAccount || 'default');
    for (const s of sa?.imagePullSecrets ?? []) addSecret(s.name);
  }

  const include = commaList(annotations[WARM_INCLUDE_ANNOTATION]);
  const paths: Derivation['paths'] = [];
  const claims: Derivation['claims'] = [];
  for (const vol of commaList(annotations[WARM_VOLUMES_ANNOTATION])) {
    const found = templates.flatMap((t) => (t.spec.volumes ?? []).filter((v) => v.name === vol));
    if (found.length === 0) {
      const names = [...new Set(templates.flatMap((t) => (t.spec.volumes ?? []).map((v) => v.name)))].sort();
      return {
        problem: {
          reason: 'VolumeNotInTemplate',
          value: vol,
          message: `${source} annotation ${WARM_VOLUMES_ANNOTATION} names volume "${vol}", which no pod template has (volumes: ${names.length ? names.join(', ') : 'none'})`,
        },
      };
    }
    for (const v of found) {
      if (v.hostPath?.path) {
        if (!paths.some((p) => p.path === v.hostPath?.path)) paths.push({ path: v.hostPath.path, include, exclude: [] });
      } else if (v.persistentVolumeClaim?.claimName) {
        if (!claims.some((c) => c.claimName === v.persistentVolumeClaim?.claimName)) claims.push({ claimName: v.persistentVolumeClaim.claimName, include, exclude: [] });
      } else {
        return {
          problem: {
            reason: 'VolumeNotWarmable',
            value: vol,
            message: `${source} volume "${vol}" is neither a hostPath nor a persistentVolumeClaim volume: Stoker cannot warm it`,
          },
        };
      }
    }
  }

  const placement = templates.map((t) => [t.spec.nodeSelector ?? {}, t.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? null, t.spec.tolerations ?? []]);
  const key = createHash('sha256').update(JSON.stringify([source, images, secrets, paths, claims, placement])).digest('base64url').slice(0, 16);
  return { derivation: { source, templates, images, imagePullSecrets: secrets, paths, claims, key } };
}
