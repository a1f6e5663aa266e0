// The stoker.io/warm annotation: a workload annotated stoker.io/warm=true gets a keepWarm Warmup
// with spec.workloadRef naming it, `<kind>-<name>` in its namespace (deployment-vllm), owned by it
// (an ownerReference: Kubernetes' garbage collector deletes it with the workload) and labelled
// stoker.io/derived-from=<kind>, so only a Warmup made here is ever deleted here. Removing the
// annotation (or setting it to anything but "true") deletes that Warmup; a workload that is gone is
// left to the garbage collector. Level-triggered: keys are workloads, "<plural>/<namespace>/<name>".
//
//   const a = new AnnotationController(deps);
//   a.keys()          // every key a full pass looks at (annotated workloads, Warmups made here)
//   a.keyOf(kind, namespace, name); a.keyOfWarmup(warmup)
//   await a.sync(key) // creates or deletes that workload's Warmup, as the annotation says
import { createHash } from 'node:crypto';
import { API_VERSION, KIND, type Warmup } from '../api/types.js';
import type { EventReason } from '../api/reasons.js';
import type { Logger } from '../../proto/common/log.js';
import type { EventSubject } from '../k8s/events.js';
import type { WorkloadDirectory } from './directory.js';
import { apiVersionOf, WORKLOAD_KINDS, type Workload, type WorkloadKind } from './templates.js';

export const WARM_ANNOTATION = 'stoker.io/warm';
/** On a Warmup made for an annotated workload: the workload's kind, lower-case. */
export const DERIVED_LABEL = 'stoker.io/derived-from';

const MAX_NAME = 253;

/** `<kind lower-case>-<name>`, shortened with a hash when longer than a name may be. */
export function derivedName(kind: string, name: string): string {
  const full = `${kind.toLowerCase()}-${name}`;
  if (full.length <= MAX_NAME) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 10);
  return `${full.slice(0, MAX_NAME - hash.length - 1).replace(/[-.]+$/, '')}-${hash}`;
}

/** The Warmup an annotated workload gets. */
export function derivedWarmup(kind: WorkloadKind, w: Workload): Warmup {
  const name = w.metadata?.name ?? '';
  const apiVersion = apiVersionOf(kind);
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: derivedName(kind.kind, name),
      namespace: w.metadata?.namespace ?? 'default',
      labels: { [DERIVED_LABEL]: kind.kind.toLowerCase() },
      ownerReferences: [{ apiVersion, kind: kind.kind, name, uid: w.metadata?.uid ?? '', controller: false, blockOwnerDeletion: false }],
    },
    spec: { workloadRef: { apiVersion, kind: kind.kind, name }, keepWarm: true },
  };
}

export interface AnnotationControllerDeps {
  directory: Pick<WorkloadDirectory, 'get' | 'list' | 'watched'>;
  warmups: { get(key: string): Warmup | undefined; list(): Warmup[] };
  /** Creates a Warmup; one that exists already is not an error. */
  createWarmup(w: Warmup): Promise<void>;
  /** Deletes a Warmup; one already gone is not an error. */
  deleteWarmup(namespace: string, name: string): Promise<void>;
  events: { record(obj: EventSubject, type: 'Normal' | 'Warning', reason: EventReason, message: string): void };
  log: Logger;
}

export class AnnotationController {
  constructor(private readonly deps: AnnotationControllerDeps) {}

  keyOf(kind: WorkloadKind, namespace: string, name: string): string {
    return `${kind.plural}/${namespace}/${name}`;
  }

  /** The workload key of a Warmup made here, or undefined for any other Warmup. */
  keyOfWarmup(w: Warmup): string | undefined {
    const ref = w.spec.workloadRef;
    if (!ref || w.metadata.labels?.[DERIVED_LABEL] !== ref.kind.toLowerCase()) return undefined;
    const kind = WORKLOAD_KINDS.find((k) => k.kind === ref.kind);
    return kind ? this.keyOf(kind, w.metadata.namespace ?? 'default', ref.name) : undefined;
  }

  /** Every key a full pass syncs: annotated workloads, and the workloads of Warmups made here. */
  keys(): string[] {
    const out = new Set<string>();
    for (const kind of this.deps.directory.watched()) {
      for (const w of this.deps.directory.list(kind)) {
        if (w.metadata?.annotations?.[WARM_ANNOTATION] !== undefined) out.add(this.keyOf(kind, w.metadata.namespace ?? '', w.metadata.name ?? ''));
      }
    }
    for (const w of this.deps.warmups.list()) {
      const k = this.keyOfWarmup(w);
      if (k) out.add(k);
    }
    return [...out];
  }

  async sync(key: string): Promise<void> {
    const [plural = '', namespace = '', name = ''] = key.split('/');
    const kind = WORKLOAD_KINDS.find((k) => k.plural === plural);
    if (!kind) return;
    const ref = { apiVersion: apiVersionOf(kind), kind: kind.kind, name };
    const workload = this.deps.directory.get(namespace, ref);
    const warmupName = derivedName(kind.kind, name);
    const existing = this.deps.warmups.get(`${namespace}/${warmupName}`);
    const ours = existing !== undefined && existing.metadata.labels?.[DERIVED_LABEL] === kind.kind.toLowerCase();
    const subject: EventSubject = { apiVersion: ref.apiVersion, kind: kind.kind, metadata: { name, namespace, ...(workload?.metadata?.uid ? { uid: workload.metadata.uid } : {}) } };
    const log = this.deps.log.child({ workload: `${kind.kind}/${namespace}/${name}`, warmup: warmupName });

    // A workload that is gone: its Warmup goes with it through the garbage collector (ownerReference).
    if (!workload) return;
    const wanted = workload.metadata?.annotations?.[WARM_ANNOTATION] === 'true';
    if (wanted && !existing) {
      await this.deps.createWarmup(derivedWarmup(kind, { ...workload, metadata: { ...workload.metadata, namespace } }));
      log.info('workload annotated stoker.io/warm=true: Warmup created');
      this.deps.events.record(subject, 'Normal', 'WarmupCreated', `annotated ${WARM_ANNOTATION}=true: created Warmup ${warmupName}, which keeps warm what this ${kind.kind}'s pods need`);
    } else if (wanted && !ours) {
      log.warn('a Warmup of that name exists and was not made for this workload: left alone');
    } else if (!wanted && ours && existing.metadata.deletionTimestamp === undefined) {
      await this.deps.deleteWarmup(namespace, warmupName);
      log.info('stoker.io/warm annotation removed: Warmup deleted');
      this.deps.events.record(subject, 'Normal', 'WarmupDeleted', `annotation ${WARM_ANNOTATION} removed: deleted Warmup ${warmupName}`);
    }
  }
}
