// The Warmup's status.conditions, kept as Kubernetes API conventions ask: one condition per type,
// and lastTransitionTime moves only when the condition's status changes.
//
// Types: Complete (True once every node warmed), Failed (True once the Warmup failed), Suspended
// (True while spec.suspend is true, False once it runs again), Warm (keepWarm only: True while every
// current target node is warm), Derived (workloadRef only: True while the workload's images, volumes
// and nodes could be read; False, with the reason naming what is wrong, while they cannot).
//
//   status.conditions = setCondition(status.conditions, { type: 'Failed', status: 'True', reason, message, lastTransitionTime: now });
//   status.conditions = resumed(status.conditions, now);
import type { ConditionReason } from './reasons.js';
import type { WarmupCondition } from './types.js';

export type ConditionType = 'Complete' | 'Failed' | 'Suspended' | 'Warm' | 'ClaimsBound' | 'Derived';

/** A condition the controller writes: one of its types, with a reason from the catalogue. */
export type ConditionUpdate = WarmupCondition & { type: ConditionType; reason: ConditionReason };

/** Sets a condition, keeping lastTransitionTime when the status does not change. */
export function setCondition(conditions: WarmupCondition[] | undefined, c: ConditionUpdate): WarmupCondition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((x) => x.type === c.type);
  if (i < 0) return [...list, c];
  const old = list[i]!;
  list[i] = { ...c, lastTransitionTime: old.status === c.status ? old.lastTransitionTime : c.lastTransitionTime };
  return list;
}

/** Flips a Suspended=True condition to False (the Warmup runs again); other conditions unchanged. */
export function resumed(conditions: WarmupCondition[] | undefined, at: string): WarmupCondition[] | undefined {
  const suspended = conditions?.find((c) => c.type === 'Suspended');
  if (suspended?.status !== 'True') return conditions;
  return setCondition(conditions, { type: 'Suspended', status: 'False', reason: 'Resumed', message: 'spec.suspend is false', lastTransitionTime: at });
}
