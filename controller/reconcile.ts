// The Warmup reconciler, level-triggered: each call re-reads the Warmup from the informer cache,
// works out the whole desired state and acts; running it twice does no harm.
//
//   const r = createReconciler(deps);   // ReconcilerDeps below; controller/main.ts builds them per term
//   await r.reconcile('default/models'); // -> { requeueAfterMs } or nothing
//   await r.stop();
//
// One reconcile:
//   - Not the leader: detach from its dispatch (the tasks run on for the next leader), nothing else.
//   - Warmup being deleted, or gone: stop its work (below), then remove the finalizer.
//   - Finished (Succeeded/Failed): delete it once ttlSecondsAfterFinished has passed; requeue until then.
//   - In a namespace the controller does not serve (warmupNamespaces) -> Failed, NamespaceNotAllowed,
//     before any Secret is read or any node is asked.
//   - Suspended: stop its work; the Suspended condition says so (phase unchanged).
//   - What the schema cannot reject (image reference grammar, unclean paths, missing or broken
//     pull secrets) -> Failed, with a condition whose reason and message name the value.
//   - Targets: Nodes matching spec.nodes (names AND selector); absent = every Node with a live
//     agent. A named/selected Node without a live agent waits (agentWaitMs), then fails with
//     AgentUnavailable. No matching node -> Failed with reason NoMatchingNodes (never stuck).
//   - Dispatch runs in the background (controller/dispatch.ts), one run per uid+generation; the
//     run, not the work queue, retries failed nodes (its header says where that state lives);
//     progress is published through the StatusWriter (coalesced, <= 1 write/s per Warmup).
//   - activeDeadlineSeconds past startTime -> stop its work, Failed with reason DeadlineExceeded.
//   - status.images: each image and the digest its tag resolved to for this run (one digest on
//     every node, controller/dispatch.ts); resumed from status after a restart.
//   - Spec changed under a run (new generation): tasks in flight that still do exactly what the
//     new spec asks (same images, paths and credentials, node still targeted) run on, and the new
//     run's tasks merge their pulls with them; the others are obsolete and cancelled.
// Events: Started, NodeFailed (with the reason), Completed, Failed. Every reason written here is
// typed from the catalogue in controller/api/reasons.ts.
//
// Stopping work means Cancel on every agent with a task in flight (controller/dispatch.ts): the
// run's own attempts, tasks it superseded, and for a Warmup this controller has no run for (it
// restarted) the attempts recorded in status.activeNodeList. Detaching (leadership lost, shutdown)
// leaves the tasks to the next leader, which re-attaches with the same task ids.
//
// The finalizer stoker.io/cancel is held only while a Warmup may have work on nodes: it is added
// before the first task is sent and removed when the Warmup finishes, is suspended, or is deleted
// (after the Cancel calls, answered or not: an unreachable agent does not hold up a deletion).
//
// Finished nodes are kept in status.record (8 characters per node) so a restarted controller never
// redoes them; nodes in flight keep their attempt in status.activeNodeList, so it re-sends the same
// task ids and the agents join the tasks already running.
import { createHash } from 'node:crypto';
import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../proto/common/log.js';
import type { RegistryPolicy } from '../proto/common/registry-policy.js';
import type { PullPolicy } from '../proto/gen/stoker/v1/PullPolicy.js';
import {
  freshStatus,
  isFinished,
  readRecord,
  rerunOf,
  resolveSpec,
  runTag,
  recordApplies,
  statusIsCurrent,
  workHash,
  validateSpec,
  MAX_NODE_LIST,
  type ResolvedSpec,
  type VolumeStatus,
  type Warmup,
  type WarmupStatus,
} from './api/types.js';
import { resumed, setCondition, type ConditionUpdate } from './api/conditions.js';
import type { ConditionReason, EventReason } from './api/reasons.js';
import type { AgentConnection } from './agent-client.js';
import { credentialsForImages, loadPullSecrets, PullSecretError, type ReadSecret } from './credentials.js';
import type { ReconcileResult } from './k8s/workqueue.js';
import {
  CANCEL_TIMEOUT_MS,
  cancelTasks,
  pathsVariant,
  realDispatchClock,
  taskId,
  WarmupRun,
  type DispatchClock,
  type NodeTarget,
  type RunOutcome,
  type RunSnapshot,
  type SentTask,
} from './dispatch.js';
import { formatSelector, matchesSelector } from './k8s/label-selector.js';
import { NodeLabeller, nodeLabelKey, type PatchNodeLabel } from './node-label.js';
import { lastTick, nextTick } from './api/schedule.js';
import { purge, purgeMessage, releasePlan } from './purge.js';
import { NodeFacts } from './node-facts.js';
import { DEFAULT_KUBELET_PODS_DIR, resolveClaims, type ClaimLookup, type ClaimPlan } from './volumes/claims.js';
import { effectiveSpec, skippedNodes, type WorkloadSource } from './workloads/effective.js';
import { isExcluded, skipReason } from './workloads/eligibility.js';
import type { Derivation } from './workloads/derive.js';

export interface ReconcilerTuning {
  /** How long a selected node may lack a live agent before it fails with AgentUnavailable. */
  agentWaitMs: number;
  /** First retry delay of a failed node attempt; doubles per retry. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Periodic reconcile of a running Warmup. */
  resyncMs: number;
}

export const DEFAULT_TUNING: ReconcilerTuning = Object.freeze({
  agentWaitMs: 60_000,
  backoffBaseMs: 1000,
  backoffMaxMs: 60_000,
  resyncMs: 10_000,
});

/**
 * What the reconciler needs, one shape for everyone: controller/main.ts passes the informers, the
 * status writer, the event recorder and clients it built (agent connections from its
 * AgentClientPool, Secret reads and Warmup deletes through the API server); unit tests pass fakes.
 */
export interface ReconcilerDeps {
  /** `list` (every Warmup) tells Purge what other Warmups still want; without it nothing is kept back. */
  warmups: { get(key: string): Warmup | undefined; list?(): Warmup[] };
  nodes: { get(key: string): V1Node | undefined; list(): V1Node[] };
  /** Live agents by node (controller/k8s/agent-endpoints.ts: ready endpoints in the agents' EndpointSlices). */
  agents: { live(now?: Date): Map<string, { endpoint: string }> };
  status: {
    schedule(namespace: string, name: string, compute: (current: Warmup) => WarmupStatus | undefined): void;
    flush(namespace: string, name: string): Promise<void>;
    /** Drops what is pending for a Warmup that is gone. */
    forget(namespace: string, name: string): void;
  };
  events: { record(obj: Warmup, type: 'Normal' | 'Warning', reason: EventReason, message: string): void };
  metrics?: {
    nodeTasks: { inc(labels: { outcome: string }): void };
    dispatchLatency: { observe(seconds: number): void };
  };
  log: Logger;
  isLeader: () => boolean;
  /** Aborts when this leadership term ends (or the controller stops): every dispatch stops. */
  signal: AbortSignal;
  /** The connection to the agent at `endpoint` ("host:port"). */
  connect: (endpoint: string) => AgentConnection;
  /** Reads a Secret of the Warmup's namespace; undefined when it does not exist. */
  readSecret: ReadSecret;
  /** Deletes a Warmup (after its TTL); one already gone is not an error. */
  deleteWarmup: (namespace: string, name: string) => Promise<void>;
  /** Applies a JSON patch to a Warmup (its finalizers); one already gone is not an error. */
  patchWarmup: (namespace: string, name: string, patch: JsonPatchOp[]) => Promise<void>;
  /** Registries images may come from (default: the built-in rules); a Warmup naming another fails before dispatch. */
  registryPolicy?: RegistryPolicy;
  /**
   * The namespaces whose Warmups are served (their pull secrets are read, their nodes warmed); a
   * Warmup elsewhere fails with NamespaceNotAllowed. Undefined or empty: every namespace.
   */
  warmupNamespaces?: readonly string[];
  /**
   * Sets or removes a label on a Node (keepWarm's warm.stoker.io/<namespace>.<name>); without it
   * no node is labelled.
   */
  patchNodeLabel?: PatchNodeLabel;
  /**
   * PersistentVolumeClaims, PersistentVolumes and the running pods that mount claims (informer
   * caches), for spec.paths entries that name a claim; without it such a Warmup waits with ClaimNotFound.
   */
  claims?: ClaimLookup;
  /** The kubelet's pods directory on the nodes, where network volumes are read (default /var/lib/kubelet/pods). */
  kubeletPodsDir?: string;
  /**
   * The workloads spec.workloadRef names (controller/workloads/): their derivation, and Events on
   * them. Without it a Warmup with a workloadRef holds with WorkloadNotFound.
   */
  workloads?: WorkloadSource;
  /** Time for the reconciler and its dispatch runs (default: the real clock; tests pass a fake). */
  clock?: DispatchClock;
  tuning?: Partial<ReconcilerTuning>;
}

export interface Reconciler {
  reconcile(key: string): Promise<ReconcileResult>;
  /** Cancels every dispatch and resolves when they have ended. */
  stop(): Promise<void>;
}

interface RunEntry {
  id: string;
  run: WarmupRun;
  namespace: string;
  name: string;
  /** What each node task does (images, paths, credentials), hashed: equal work, equal key. */
  work: string;
  /** Tasks of an earlier run of this Warmup left running because the work was the same. */
  superseded: SentTask[];
  keepWarm: boolean;
  /** The stoker.io/rerun value this run was started for (keepWarm: last acted on). */
  rerun: string;
  /** workHash of the run's spec, written beside the record. */
  recordHash: string;
  /** The schedule tick this run is for ('' for none; keepWarm: the last one acted on). */
  due: string;
}

/**
 * Which run a Warmup wants: one per uid and generation and, but for keepWarm (a rerun re-checks
 * its nodes in the same run, a tick warms them again), per stoker.io/rerun value and schedule tick.
 */
function runIdOf(w: Warmup, tick: string, derived = ''): string {
  // A workloadRef Warmup: a change of its workload (images, volumes, placement) is a new run too.
  const base = `${w.metadata.uid ?? ''}/${w.metadata.generation ?? 0}${derived ? `#${derived}` : ''}`;
  return w.spec.keepWarm ? base : `${base}/${rerunOf(w)}@${tick}`;
}

/** What a workloadRef run adds to its task ids ('' for any other run). */
function derivedTag(derived: Derivation | undefined): string {
  return derived ? `.w${derived.key}` : '';
}

/** When the Warmup was created (ms); NaN when unknown. */
function createdAt(w: Warmup): number {
  const c = w.metadata.creationTimestamp;
  return Date.parse(c instanceof Date ? c.toISOString() : String(c ?? ''));
}

/** The finalizer that lets the controller cancel a deleted Warmup's work on the nodes. */
export const FINALIZER = 'stoker.io/cancel';

/** A finished Warmup keeps the finalizer when its deletion must reach the nodes: Purge, or pin (unpin). */
function holdsOnDelete(spec: ResolvedSpec): boolean {
  return spec.onDelete === 'Purge' || spec.pin;
}

export type JsonPatchOp =
  | { op: 'test' | 'add'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/**
 * The JSON patch that adds (want) or removes the finalizer, or undefined when there is nothing to
 * do. Each patch tests what it changes, so a concurrent change to the finalizers fails it (and the
 * reconcile is retried) instead of being overwritten; status writes do not get in the way.
 */
export function finalizerPatch(w: Warmup, want: boolean): JsonPatchOp[] | undefined {
  const list = w.metadata.finalizers;
  const i = list?.indexOf(FINALIZER) ?? -1;
  if (want === i >= 0) return undefined;
  if (!want) return [{ op: 'test', path: `/metadata/finalizers/${i}`, value: FINALIZER }, { op: 'remove', path: `/metadata/finalizers/${i}` }];
  if (list) return [{ op: 'test', path: '/metadata/finalizers', value: list }, { op: 'add', path: '/metadata/finalizers/-', value: FINALIZER }];
  return [{ op: 'test', path: '/metadata/resourceVersion', value: w.metadata.resourceVersion ?? '' }, { op: 'add', path: '/metadata/finalizers', value: [FINALIZER] }];
}

export function hasFinalizer(w: Warmup): boolean {
  return w.metadata.finalizers?.includes(FINALIZER) ?? false;
}

const PULL_POLICY: Record<string, PullPolicy> = { IfNotPresent: 'IF_NOT_PRESENT', Always: 'ALWAYS' };

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const tuning: ReconcilerTuning = { ...DEFAULT_TUNING, ...deps.tuning };
  const clock = deps.clock ?? realDispatchClock;
  const now = (): number => clock.now();
  const runs = new Map<string, RunEntry>();
  const { connect, readSecret, deleteWarmup, patchWarmup } = deps;
  const served = deps.warmupNamespaces?.length ? new Set(deps.warmupNamespaces) : undefined;
  /** What each run's nodes reported beyond done or failed (pinning, residency). */
  const facts = new WeakMap<WarmupRun, NodeFacts>();
  const labeller = deps.patchNodeLabel ? new NodeLabeller({ nodes: deps.nodes, patch: deps.patchNodeLabel, log: deps.log }) : undefined;
  /** Each Warmup's claims as last resolved (by key): the runs' targets read each node's paths from it. */
  const plans = new Map<string, ClaimPlan>();
  const noClaims: ClaimLookup = { claim: () => undefined, volume: () => undefined, mounts: () => [] };

  /** The Warmup's claims resolved now, or the problem that holds it. */
  function planOf(spec: ResolvedSpec, ns: string): ReturnType<typeof resolveClaims> | undefined {
    if (spec.claims.length === 0) return undefined;
    return resolveClaims(spec.claims, ns, deps.claims ?? noClaims, deps.kubeletPodsDir ?? DEFAULT_KUBELET_PODS_DIR, spec.paths);
  }

  /** keepWarm: the run's warm nodes carry the Warmup's label, and no other node does. */
  function syncLabels(entry: RunEntry): Promise<void> {
    if (!labeller || !entry.keepWarm) return Promise.resolve();
    return labeller.sync(nodeLabelKey(entry.namespace, entry.name), new Set(entry.run.warmNodes()));
  }

  /**
   * Removes the Warmup's label from every node (deleted, suspended, no longer keepWarm) and then
   * status.nodeLabel; rejects when a node could not be patched (the reconcile is retried).
   */
  async function dropLabels(namespace: string, name: string, w: Warmup | undefined): Promise<void> {
    if (!labeller) return;
    if (w && !w.spec.keepWarm && w.status?.nodeLabel === undefined) return;
    await labeller.sync(nodeLabelKey(namespace, name), new Set());
    if (!w || w.metadata.deletionTimestamp || w.status?.nodeLabel === undefined) return;
    deps.status.schedule(namespace, name, (cur) => {
      if (cur.metadata.uid !== w.metadata.uid || cur.status?.nodeLabel === undefined) return undefined;
      const s: WarmupStatus = { ...cur.status };
      delete s.nodeLabel;
      return s;
    });
  }

  deps.signal.addEventListener('abort', () => {
    for (const key of [...runs.keys()]) cancel(key);
  }, { once: true });

  /** Detaches from the Warmup's run: its tasks run on at the agents (for the next leader). */
  function cancel(key: string): void {
    const e = runs.get(key);
    if (!e) return;
    runs.delete(key);
    e.run.cancel();
  }

  /**
   * Stops the Warmup's work on the nodes: its run cancels its attempts in flight, and the tasks it
   * superseded are cancelled; with the finalizer held (work may be in flight that this controller
   * did not send: it restarted), also the attempts recorded in status.activeNodeList. Resolves
   * when every agent answered or its Cancel reached the deadline.
   */
  async function stopWork(key: string, w: Warmup | undefined, why: string): Promise<void> {
    const e = runs.get(key);
    if (e) runs.delete(key);
    const own = new Set(e?.run.tasksInFlight().map((t) => t.taskId));
    const others = new Map<string, SentTask>();
    for (const t of [...(e?.superseded ?? []), ...(w && hasFinalizer(w) ? recordedTasks(w) : [])]) if (!own.has(t.taskId)) others.set(t.taskId, t);
    if (!e && others.size === 0) return;
    const [, counts] = await Promise.all([
      e?.run.stop(),
      cancelTasks(connect, [...others.values()], { timeoutMs: CANCEL_TIMEOUT_MS, log: deps.log }),
    ]);
    deps.log.info({ warmup: key, why, tasks: own.size + others.size, unreachable: counts.get('Unreachable') ?? 0 }, 'stopped the work in flight');
  }

  /** The attempts status.activeNodeList records, on nodes with a live agent. */
  function recordedTasks(w: Warmup): SentTask[] {
    const live = deps.agents.live(new Date(now()));
    const generation = w.status?.observedGeneration ?? w.metadata.generation ?? 0;
    const e = effectiveOf(w);
    const tag = (w.spec.keepWarm ? '' : runTag(w.status?.observedRerun ?? '', w.status?.lastScheduleTime ?? '')) + derivedTag('spec' in e ? e.derived : undefined);
    const out: SentTask[] = [];
    // A Warmup with claims: each node's task id carries the variant of its paths, as resolved now.
    const plan = plans.get(`${w.metadata.namespace ?? 'default'}/${w.metadata.name ?? ''}`);
    for (const a of w.status?.activeNodeList ?? []) {
      const endpoint = live.get(a.name)?.endpoint;
      const node = plan ? deps.nodes.get(a.name) : undefined;
      const variant = plan && node ? pathsVariant(plan.forNode(node).paths) : '';
      if (endpoint !== undefined && a.attempt >= 1) out.push({ node: a.name, taskId: taskId(w.metadata.uid ?? '', `${generation}${tag}`, a.name, a.attempt, 0, variant), endpoint });
    }
    return out;
  }

  /**
   * The Warmup being deleted (spec.onDelete: Purge, or spec.pin): every node it may have warmed
   * removes the pin label from its images, and with Purge removes its images and drops its files
   * from the page cache, but for what another live Warmup targeting that node still wants
   * (controller/purge.ts); the Purged (or Unpinned) Event gives the totals.
   */
  async function purgeNodes(w: Warmup, log: Logger): Promise<void> {
    const nodeNames = deps.nodes.list().map((n) => n.metadata?.name ?? '').filter((n) => n !== '');
    const others = deps.warmups.list?.() ?? [];
    const plan = releasePlan(w, nodeNames, others, (s) => new Set(targetsOf(s).targets.keys()));
    const totals = await purge(plan, deps.agents.live(new Date(now())), connect, log);
    log.info({ ...totals }, 'purged');
    const purged = resolveSpec(w.spec).onDelete === 'Purge';
    deps.events.record(w, totals.unreachable + totals.failures > 0 ? 'Warning' : 'Normal', purged ? 'Purged' : 'Unpinned', purgeMessage(totals, purged));
  }

  /** Adds or removes the finalizer; nothing when it is already as wanted. */
  async function setFinalizer(w: Warmup, want: boolean): Promise<void> {
    const patch = finalizerPatch(w, want);
    if (!patch) return;
    await patchWarmup(w.metadata.namespace ?? 'default', w.metadata.name ?? '', patch);
    deps.log.debug({ warmup: `${w.metadata.namespace ?? 'default'}/${w.metadata.name ?? ''}`, finalizer: FINALIZER, present: want }, 'finalizer updated');
  }

  /** Writes a final status (Succeeded or Failed) and records the Event. */
  /** `tick`: the schedule tick the finished run was for ('' for none). */
  async function finish(w: Warmup, phase: 'Succeeded' | 'Failed', reason: ConditionReason, message: string, run?: WarmupRun, tick = ''): Promise<void> {
    const ns = w.metadata.namespace ?? 'default';
    const name = w.metadata.name ?? '';
    const uid = w.metadata.uid;
    const finishedAt = new Date(now()).toISOString();
    // Whether this call's final status went to the API server (not a Warmup finished already, e.g.
    // by this replica's run before an outage while the cache still showed it running). Once true it
    // stays true: a write that timed out may have been applied, and the retry then finds it finished.
    let ours = false;
    deps.status.schedule(ns, name, (cur) => {
      // A status finished for an earlier run (spec edit, rerun) is replaced, never kept.
      const stale = isFinished(cur.status) && !statusIsCurrent(cur, tick);
      if (cur.metadata.uid !== uid || (isFinished(cur.status) && !stale)) return undefined;
      ours = true;
      const base: WarmupStatus = stale ? freshStatus(cur.status) : { ...(cur.status ?? {}) };
      base.observedRerun = rerunOf(cur);
      if (tick) base.lastScheduleTime = tick;
      else delete base.lastScheduleTime;
      if (run) {
        delete base.pin;
        delete base.residency;
        const { spec: curSpec, derived } = workOf(cur);
        Object.assign(base, countsOf(run), factsOf(run, curSpec, cur.status ?? {}), { recordHash: workHash(curSpec) });
        const volumes = volumesOf(curSpec, plans.get(`${ns}/${name}`), derived);
        if (volumes) {
          base.volumes = volumes.list;
          base.conditions = setCondition(base.conditions, { type: 'ClaimsBound', status: 'True', reason: 'ClaimsBound', message: volumes.bound, lastTransitionTime: finishedAt });
        }
      }
      base.activeNodes = 0;
      delete base.activeNodeList;
      delete base.bytesDone;
      delete base.bytesTotal;
      base.phase = phase;
      base.startTime ??= finishedAt;
      base.completionTime = finishedAt;
      base.observedGeneration = cur.metadata.generation ?? 0;
      base.conditions = setCondition(resumed(base.conditions, finishedAt), {
        type: phase === 'Succeeded' ? 'Complete' : 'Failed',
        status: 'True',
        reason,
        message,
        lastTransitionTime: finishedAt,
      });
      return base;
    });
    // The API server may be away: the writer keeps the final status; retry until it is written (the
    // Event follows it) or this term ends. Whoever leads next finishes from status otherwise.
    for (let delay = 500; ; delay = Math.min(delay * 2, 4000)) {
      try {
        await deps.status.flush(ns, name);
        break;
      } catch (err) {
        if (deps.signal.aborted) throw err;
        await clock.sleep(delay, deps.signal);
      }
    }
    if (!ours) return;
    deps.events.record(w, phase === 'Succeeded' ? 'Normal' : 'Warning', phase === 'Succeeded' ? 'Completed' : 'Failed', message);
    deps.log.info({ warmup: `${ns}/${name}`, phase, reason }, `warmup ${phase === 'Succeeded' ? 'completed' : 'failed'}`);
  }

  /** status.pin and status.residency from what the run's warm nodes reported; base's where none did. */
  function factsOf(run: WarmupRun, spec: ResolvedSpec, base: WarmupStatus): Pick<WarmupStatus, 'pin' | 'residency'> {
    const f = facts.get(run);
    const warm = run.warmNodes();
    const out: Pick<WarmupStatus, 'pin' | 'residency'> = {};
    const pin = spec.pin ? (f?.pin(warm) ?? base.pin) : undefined;
    if (pin) out.pin = pin;
    const residency = spec.paths.length + spec.claims.length > 0 ? (f?.residency(warm, spec.minResidentPercent) ?? base.residency) : undefined;
    if (residency) out.residency = residency;
    return out;
  }

  /**
   * status.volumes over the current target nodes, the ClaimsBound message, and a note naming the
   * claims some nodes do not read (for the Warm and Complete messages); undefined without claims.
   */
  function volumesOf(spec: ResolvedSpec, plan: ClaimPlan | undefined, derived: Derivation | undefined): { list: VolumeStatus[]; bound: string; note: string } | undefined {
    if (!plan || spec.claims.length === 0) return undefined;
    const nodes = [...targetsOf(spec, derived).targets.keys()].sort().flatMap((n) => {
      const node = deps.nodes.get(n);
      return node ? [node] : [];
    });
    const notes: string[] = [];
    const list = plan.claims.map((c): VolumeStatus => {
      const notRead: string[] = [];
      for (const n of nodes) if (c.pathOn(n) === undefined) notRead.push(n.metadata?.name ?? '');
      const v: VolumeStatus = { claimName: c.claim.claimName, volumeName: c.volumeName, type: c.type, nodes: nodes.length - notRead.length };
      if (notRead.length > 0) {
        const reason = c.kind === 'local' ? 'VolumeNotOnNode' : 'VolumeNotMounted';
        Object.assign(v, { notReadNodes: notRead.length, reason, notReadNodeList: notRead.slice(0, MAX_NODE_LIST) });
        notes.push(`claim ${c.claim.claimName} not read on ${notRead.length} node(s) (${reason})`);
      }
      return v;
    });
    return { list, bound: `${list.length} claim(s) bound: ${list.map((v) => `${v.claimName} (${v.type} volume ${v.volumeName})`).join(', ')}`, note: notes.join('; ') };
  }

  function countsOf(run: WarmupRun): Partial<WarmupStatus> {
    const s = run.snapshot();
    return {
      desiredNodes: s.desiredNodes,
      succeededNodes: s.succeededNodes,
      failedNodes: s.failedNodes,
      failedNodeList: s.failedNodeList,
      record: s.record,
      images: s.images,
    };
  }

  /**
   * Nodes the Warmup targets now, with their live agent's endpoint (undefined when none) and, with
   * `plan` (its claims resolved), each node's own paths. A node annotated stoker.io/exclude=true is
   * never a target. A workloadRef Warmup (`derived`) targets the nodes with a live agent its
   * workload's pods may land on.
   */
  function targetsOf(spec: ResolvedSpec, derived?: Derivation, plan?: ClaimPlan): { targets: Map<string, NodeTarget>; explicit: boolean } {
    const live = deps.agents.live(new Date(now()));
    const out = new Map<string, NodeTarget>();
    if (derived) {
      for (const [node, a] of live) {
        const n = deps.nodes.get(node);
        if (n && !skipReason(derived.templates, n)) out.set(node, { endpoint: a.endpoint, ...(plan ? { paths: plan.forNode(n).paths } : {}) });
      }
      return { targets: out, explicit: false };
    }
    const sel = spec.nodes;
    const explicit = !!sel && (sel.names !== undefined || sel.selector !== undefined);
    if (!explicit) {
      for (const [node, a] of live) {
        const n = deps.nodes.get(node);
        if (n && !isExcluded(n)) out.set(node, { endpoint: a.endpoint, ...(plan ? { paths: plan.forNode(n).paths } : {}) });
      }
      return { targets: out, explicit };
    }
    const names = sel.names ? new Set(sel.names) : undefined;
    for (const n of deps.nodes.list()) {
      const name = n.metadata?.name;
      if (!name || isExcluded(n)) continue;
      if (names && !names.has(name)) continue;
      if (sel.selector && !matchesSelector(sel.selector, n.metadata?.labels ?? {})) continue;
      out.set(name, { endpoint: live.get(name)?.endpoint, ...(plan ? { paths: plan.forNode(n).paths } : {}) });
    }
    return { targets: out, explicit };
  }

  /** The spec a Warmup's run does: its own or, with a workloadRef, merged with its workload's derivation. */
  function effectiveOf(w: Warmup): ReturnType<typeof effectiveSpec> {
    return effectiveSpec(w, deps.workloads);
  }

  /** The spec a Warmup's run does and its derivation; its own spec when its workload cannot be read. */
  function workOf(w: Warmup): { spec: ResolvedSpec; derived: Derivation | undefined } {
    const e = effectiveOf(w);
    return 'spec' in e ? e : { spec: resolveSpec(w.spec), derived: undefined };
  }

  /** The run the Warmup wants now (a workloadRef Warmup whose workload cannot be read wants none). */
  function runIdNow(w: Warmup, tick: string, e: ReturnType<typeof effectiveSpec> = effectiveOf(w)): string {
    return runIdOf(w, tick, 'problem' in e ? '!' : (e.derived?.key ?? ''));
  }

  /**
   * A workloadRef Warmup whose workload cannot be read into work (gone, a kind Stoker cannot read,
   * a bad image, a volume not in the template, a pull secret missing): nothing runs, the Derived
   * condition (and keepWarm's Warm) says why, naming the value, and so does an Event on the Warmup
   * and on the workload. It runs again once the workload (or the secret) is fixed.
   */
  async function hold(w: Warmup, reason: ConditionReason, message: string): Promise<void> {
    const ns = w.metadata.namespace ?? 'default';
    const name = w.metadata.name ?? '';
    const uid = w.metadata.uid;
    const ref = w.spec.workloadRef;
    const key = `${ns}/${name}`;
    await stopWork(key, w, reason);
    await dropLabels(ns, name, w);
    const before = w.status?.conditions?.find((c) => c.type === 'Derived');
    if (before?.status !== 'False' || before.reason !== reason || before.message !== message) {
      deps.events.record(w, 'Warning', 'DerivationFailed', message);
      if (ref) deps.workloads?.event(ns, ref, 'Warning', 'DerivationFailed', `Warmup ${name}: ${message}`);
      deps.log.info({ warmup: key, reason }, 'workload not read into work: holding');
    }
    const at = new Date(now()).toISOString();
    deps.status.schedule(ns, name, (cur) => {
      if (cur.metadata.uid !== uid) return undefined;
      const s: WarmupStatus = { ...(cur.status ?? {}) };
      s.phase = 'Pending';
      s.activeNodes = 0;
      delete s.activeNodeList;
      delete s.bytesDone;
      delete s.bytesTotal;
      delete s.completionTime;
      if (ref) s.source = `${ref.kind}/${ref.name}`;
      s.observedGeneration = cur.metadata.generation ?? 0;
      s.conditions = setCondition(s.conditions, { type: 'Derived', status: 'False', reason, message, lastTransitionTime: at });
      if (cur.spec.keepWarm) s.conditions = setCondition(s.conditions, { type: 'Warm', status: 'False', reason, message, lastTransitionTime: at });
      return s;
    });
  }

  async function reconcile(key: string): Promise<ReconcileResult> {
    const w = deps.warmups.get(key);
    const leading = deps.isLeader() && !deps.signal.aborted;
    if (!w) {
      const [ns = '', name = ''] = key.split('/');
      plans.delete(key);
      deps.status.forget(ns, name);
      // Gone without this controller removing its finalizer (it had none, or someone removed it).
      if (leading) {
        await stopWork(key, undefined, 'deleted');
        await dropLabels(ns, name, undefined).catch((err: unknown) => deps.log.warn({ warmup: key, reason: err instanceof Error ? err.message : String(err) }, 'could not remove the node labels of a Warmup gone'));
      } else cancel(key);
      return;
    }
    if (!leading) {
      cancel(key);
      return;
    }
    const ns = w.metadata.namespace ?? 'default';
    const name = w.metadata.name ?? '';
    const uid = w.metadata.uid ?? '';
    const log = deps.log.child({ warmup: key });
    let spec = resolveSpec(w.spec);

    if (w.metadata.deletionTimestamp) {
      // Deleting a Warmup bumps its generation: handled before any run is (re)started.
      await stopWork(key, w, 'deleted');
      await dropLabels(ns, name, w);
      if (holdsOnDelete(spec) && hasFinalizer(w)) await purgeNodes(w, log);
      await setFinalizer(w, false);
      return;
    }

    // The latest schedule tick since the Warmup was created: a run is due for it. Ticks missed
    // while no controller ran fold into the latest one.
    const tickMs = spec.schedule ? lastTick(spec.schedule, spec.timeZone, createdAt(w), now()) : undefined;
    const due = tickMs !== undefined ? new Date(tickMs).toISOString() : '';
    const nextMs = spec.schedule ? nextTick(spec.schedule, spec.timeZone, now()) : undefined;
    const untilTick = nextMs !== undefined ? Math.max(100, nextMs - now()) : Infinity;

    if (isFinished(w.status) && statusIsCurrent(w, due)) {
      cancel(key);
      // Nothing is in flight once a Warmup has finished (the status write that finished it brings
      // this reconcile).
      await dropLabels(ns, name, w);
      // Purge or pin: the finalizer stays, so that a deletion waits until the nodes have let go.
      await setFinalizer(w, holdsOnDelete(spec));
      const waitTick = Number.isFinite(untilTick) ? { requeueAfterMs: untilTick } : undefined;
      if (spec.ttlSecondsAfterFinished === undefined) return waitTick;
      const done = Date.parse(w.status?.completionTime ?? '');
      if (Number.isNaN(done)) return waitTick;
      const left = done + spec.ttlSecondsAfterFinished * 1000 - now();
      if (left > 0) return { requeueAfterMs: Math.min(left, untilTick) };
      log.info({ ttlSecondsAfterFinished: spec.ttlSecondsAfterFinished }, 'deleting finished warmup after its TTL');
      await deleteWarmup(ns, name);
      return;
    }

    if (served && !served.has(ns)) {
      await stopWork(key, w, 'namespace not served');
      await finish(w, 'Failed', 'NamespaceNotAllowed', namespaceMessage(ns, served));
      return;
    }

    if (spec.suspend) {
      await stopWork(key, w, 'suspended');
      const at = new Date(now()).toISOString();
      deps.status.schedule(ns, name, (cur) => {
        const stale = isFinished(cur.status) && !statusIsCurrent(cur, due);
        if (cur.metadata.uid !== uid || (isFinished(cur.status) && !stale)) return undefined;
        const s: WarmupStatus = stale ? freshStatus(cur.status) : { ...(cur.status ?? {}) };
        s.phase ??= 'Pending';
        s.activeNodes = 0;
        delete s.activeNodeList;
        delete s.bytesDone;
        delete s.bytesTotal;
        s.observedGeneration = cur.metadata.generation ?? 0;
        s.conditions = setCondition(s.conditions, { type: 'Suspended', status: 'True', reason: 'Suspended', message: 'spec.suspend is true: no node is being warmed', lastTransitionTime: at });
        return s;
      });
      // Suspended nodes are no longer kept warm: they do not say they are.
      await dropLabels(ns, name, w);
      await setFinalizer(w, holdsOnDelete(spec));
      return;
    }

    const effective = effectiveOf(w);
    if ('problem' in effective) {
      await hold(w, effective.problem.reason, effective.problem.message);
      return { requeueAfterMs: tuning.resyncMs };
    }
    spec = effective.spec;
    const derived = effective.derived;

    const problem = validateSpec(spec, deps.registryPolicy);
    if (problem && derived) {
      await hold(w, problem.reason, `${derived.source}: ${problem.message}`);
      return { requeueAfterMs: tuning.resyncMs };
    }
    if (problem) {
      await stopWork(key, w, 'invalid spec');
      await finish(w, 'Failed', problem.reason, problem.message, undefined, due);
      return;
    }

    const started = Date.parse(w.status?.startTime ?? '');
    if (spec.activeDeadlineSeconds !== undefined && !Number.isNaN(started) && now() >= started + spec.activeDeadlineSeconds * 1000) {
      const e = runs.get(key);
      await stopWork(key, w, 'activeDeadlineSeconds');
      await finish(w, 'Failed', 'DeadlineExceeded', `the Warmup ran longer than activeDeadlineSeconds (${spec.activeDeadlineSeconds}s)`, e?.run, e?.due ?? due);
      return;
    }

    const resolved = planOf(spec, ns);
    if (resolved && 'problem' in resolved) {
      const { problem } = resolved;
      plans.delete(key);
      if (problem.reason === 'InvalidPath') {
        await stopWork(key, w, 'invalid claim subPath');
        await finish(w, 'Failed', problem.reason, problem.message, undefined, due);
        return;
      }
      // A claim missing or not bound yet (WaitForFirstConsumer binds at the first pod): hold, and
      // go on when it is (a PVC or PV change queues this Warmup).
      await stopWork(key, w, 'claim not ready');
      const at = new Date(now()).toISOString();
      deps.status.schedule(ns, name, (cur) => {
        if (cur.metadata.uid !== uid || isFinished(cur.status)) return undefined;
        const s: WarmupStatus = { ...(cur.status ?? {}) };
        s.phase ??= 'Pending';
        s.activeNodes = 0;
        delete s.activeNodeList;
        s.observedGeneration = cur.metadata.generation ?? 0;
        s.conditions = setCondition(s.conditions, { type: 'ClaimsBound', status: 'False', reason: problem.reason, message: problem.message, lastTransitionTime: at });
        return s;
      });
      // Nodes are not kept warm while it waits: they do not say they are.
      await dropLabels(ns, name, w);
      log.info({ claim: problem.claimName, reason: problem.reason }, 'waiting for a claim');
      return { requeueAfterMs: tuning.resyncMs };
    }
    if (resolved) plans.set(key, resolved);
    else plans.delete(key);

    // Before any task is sent, so that a deletion waits until the tasks are cancelled.
    await setFinalizer(w, true);

    const runId = runIdOf(w, due, derived?.key);
    let entry = runs.get(key);
    if (!entry || entry.id !== runId) {
      let credentials;
      try {
        const secrets = await loadPullSecrets(readSecret, ns, spec.imagePullSecrets);
        credentials = credentialsForImages(secrets, spec.images.map((i) => i.image));
      } catch (err) {
        if (err instanceof PullSecretError && derived) {
          await hold(w, err.reason, `${derived.source}: ${err.message}`);
          return { requeueAfterMs: tuning.resyncMs };
        }
        if (err instanceof PullSecretError) {
          await stopWork(key, w, 'pull secret');
          await finish(w, 'Failed', err.reason, err.message, undefined, due);
          return;
        }
        throw err;
      }
      const { targets, explicit } = targetsOf(spec, derived, plans.get(key));
      const work = workKey(spec, credentials);
      const superseded = entry ? await replaceRun(entry, work, targets) : [];
      // Nodes done for other work, or for a finished run this one repeats, are not done for this one.
      const current = recordApplies(w, due, spec) && !(isFinished(w.status) && !statusIsCurrent(w, due));
      const record = current ? { succeeded: readRecord(w.status?.record?.succeeded), failed: readRecord(w.status?.record?.failed) } : { succeeded: new Set<string>(), failed: new Set<string>() };
      if (!spec.keepWarm && targets.size === 0 && record.succeeded.size + record.failed.size === 0) {
        const created = Date.parse(w.metadata.creationTimestamp ? String(w.metadata.creationTimestamp instanceof Date ? w.metadata.creationTimestamp.toISOString() : w.metadata.creationTimestamp) : '');
        const waited = Number.isNaN(created) ? tuning.agentWaitMs : now() - created;
        if (explicit || waited >= tuning.agentWaitMs) {
          await finish(w, 'Failed', 'NoMatchingNodes', noMatchMessage(spec), undefined, due);
          return;
        }
        return { requeueAfterMs: Math.min(1000, tuning.agentWaitMs - waited) };
      }
      entry = startRun(w, spec, derived, credentials, record, current, log, work, superseded, due);
      runs.set(key, entry);
      if (w.status?.phase !== 'Running') {
        deps.events.record(w, 'Normal', 'Started', `warming ${spec.images.length} image(s) and ${spec.paths.length + spec.claims.length} path(s) on ${targets.size} node(s)`);
      }
      publish(entry);
    }
    if (entry.keepWarm && entry.rerun !== rerunOf(w)) {
      // keepWarm: a rerun checks every node now (a failed one is tried again).
      entry.rerun = rerunOf(w);
      entry.run.recheckAll();
      log.info({ rerun: entry.rerun }, 'rerun: checking every node now');
      publish(entry);
    }
    if (entry.keepWarm && entry.due !== due) {
      // keepWarm: a schedule tick (one missed while no controller ran, too) warms every node
      // again, so Always images are pulled again.
      entry.due = due;
      entry.run.rewarmAll();
      log.info({ tick: due }, 'schedule: warming every node again');
      publish(entry);
    }
    if (entry.keepWarm) await syncLabels(entry);
    else await dropLabels(ns, name, w);
    // status.skippedNodeList follows taints, labels and stoker.io/exclude on the nodes.
    if (derived) publish(entry);
    const untilDeadline = spec.activeDeadlineSeconds !== undefined ? (Number.isNaN(started) ? now() : started) + spec.activeDeadlineSeconds * 1000 - now() : Infinity;
    return { requeueAfterMs: Math.max(100, Math.min(tuning.resyncMs, untilDeadline, untilTick)) };
  }

  /**
   * Ends the run of an earlier generation. Its tasks in flight (and those it superseded) that do
   * the same work on a node still targeted are returned, to run on beside the new run; the rest
   * are cancelled on their agents.
   */
  async function replaceRun(old: RunEntry, work: string, targets: Map<string, NodeTarget>): Promise<SentTask[]> {
    const key = `${old.namespace}/${old.name}`;
    runs.delete(key);
    const inFlight = [...old.run.tasksInFlight(), ...old.superseded];
    // Detach first: the tasks kept must not be cancelled by the old run.
    old.run.cancel();
    const keep = (t: SentTask): boolean => old.work === work && targets.has(t.node);
    const obsolete = inFlight.filter((t) => !keep(t));
    if (obsolete.length > 0) {
      const counts = await cancelTasks(connect, obsolete, { timeoutMs: CANCEL_TIMEOUT_MS, log: deps.log });
      deps.log.info({ warmup: key, tasks: obsolete.length, unreachable: counts.get('Unreachable') ?? 0 }, 'spec changed: cancelled the obsolete tasks in flight');
    }
    return inFlight.filter(keep);
  }

  function startRun(
    w: Warmup,
    spec: ResolvedSpec,
    derived: Derivation | undefined,
    credentials: ReturnType<typeof credentialsForImages>,
    record: { succeeded: Set<string>; failed: Set<string> },
    current: boolean,
    log: Logger,
    work: string,
    superseded: SentTask[],
    due: string,
  ): RunEntry {
    const ns = w.metadata.namespace ?? 'default';
    const name = w.metadata.name ?? '';
    const key = `${ns}/${name}`;
    const attempts = new Map<string, number>();
    if (current) for (const a of w.status?.activeNodeList ?? []) if (a.attempt >= 1) attempts.set(a.name, a.attempt);
    const rerun = rerunOf(w);
    const entry: Omit<RunEntry, 'run'> & { run?: WarmupRun } = {
      id: runIdOf(w, due, derived?.key),
      namespace: ns,
      name,
      work,
      superseded,
      keepWarm: spec.keepWarm,
      rerun,
      // keepWarm: the tick its status says was acted on, so one missed meanwhile is acted on now.
      due: spec.keepWarm ? (w.status?.lastScheduleTime ?? due) : due,
      recordHash: workHash(spec),
    };
    const nodeFacts = new NodeFacts();
    const run: WarmupRun = new WarmupRun({
      uid: w.metadata.uid ?? '',
      generation: w.metadata.generation ?? 0,
      images: spec.images.map((i) => ({ image: i.image, pullPolicy: PULL_POLICY[i.pullPolicy] ?? 'IF_NOT_PRESENT' })),
      paths: spec.paths,
      credentials,
      ...(spec.pin ? { pin: true } : {}),
      parallelism: spec.parallelism,
      backoffLimit: spec.backoffLimit,
      timeoutMs: spec.timeoutSeconds * 1000,
      agentWaitMs: tuning.agentWaitMs,
      ...(spec.keepWarm ? { keepWarm: { recheckMs: spec.recheckSeconds * 1000, minResidentPercent: spec.minResidentPercent } } : {}),
      backoffBaseMs: tuning.backoffBaseMs,
      backoffMaxMs: tuning.backoffMaxMs,
      // The digests this run's tags resolved to before a restart: the nodes left get the same.
      resume: { ...record, failedList: current ? (w.status?.failedNodeList ?? []) : [], attempts, images: current ? (w.status?.images ?? []) : [] },
      // A workloadRef run's task ids name its derivation: the agents remember finished task ids, and
      // the work after `kubectl set image` is not the work before it.
      ...(spec.keepWarm ? (derived ? { runTag: derivedTag(derived) } : {}) : { runTag: runTag(rerun, due) + derivedTag(derived) }),
      targets: () => {
        if (!deps.isLeader()) run.cancel();
        return targetsOf(spec, derived, plans.get(key)).targets;
      },
      nodeExists: (node) => deps.nodes.get(node) !== undefined,
      connect,
      onChange: () => {
        const cur = runs.get(key);
        if (!cur || cur !== (entry as RunEntry)) return;
        publish(cur);
        syncLabels(cur).catch((err: unknown) => log.warn({ reason: err instanceof Error ? err.message : String(err) }, 'node labels not in step yet; retried at the next change or resync'));
      },
      log,
      clock,
      hooks: {
        attempt: (outcome) => deps.metrics?.nodeTasks.inc({ outcome }),
        dispatchLatency: (s) => deps.metrics?.dispatchLatency.observe(s),
        nodeFailed: (f) => {
          const cur = deps.warmups.get(key) ?? w;
          deps.events.record(cur, 'Warning', 'NodeFailed', `node ${f.name}: ${f.reason}: ${f.message}`);
        },
        result: (node, result) => {
          // The agent's budget warnings (tree larger than memory or its cgroup limit), once each.
          for (const warning of nodeFacts.record(node, result)) {
            deps.events.record(deps.warmups.get(key) ?? w, 'Warning', 'BudgetWarning', `node ${node}: ${warning}`);
          }
        },
      },
    });
    entry.run = run;
    facts.set(run, nodeFacts);
    const mine = entry as RunEntry;
    run.start();
    void run.done.then(
      (outcome) => onRunDone(key, mine, outcome),
      (err: unknown) => log.error({ err }, 'dispatch ended unexpectedly'),
    );
    return mine;
  }

  async function onRunDone(key: string, entry: RunEntry, outcome: RunOutcome): Promise<void> {
    if (outcome.kind === 'cancelled' || runs.get(key) !== entry) return;
    // Tasks of an earlier generation doing the same work have ended with this run's, or are of no use now.
    if (entry.superseded.length > 0) void cancelTasks(connect, entry.superseded, { timeoutMs: CANCEL_TIMEOUT_MS, log: deps.log });
    const w = deps.warmups.get(key);
    if (!w || runIdNow(w, entry.due) !== entry.id) {
      runs.delete(key);
      return;
    }
    try {
      if (outcome.kind === 'fatal') {
        await finish(w, 'Failed', outcome.problem.reason, outcome.problem.message, entry.run, entry.due);
      } else if (outcome.desired === 0) {
        await finish(w, 'Failed', 'NoMatchingNodes', noMatchMessage(workOf(w).spec), entry.run, entry.due);
      } else if (outcome.failed === 0) {
        const { spec, derived } = workOf(w);
        const note = volumesOf(spec, plans.get(key), derived)?.note;
        await finish(w, 'Succeeded', 'AllNodesWarmed', `${outcome.succeeded} of ${outcome.desired} node(s) warmed${note ? `; ${note}` : ''}`, entry.run, entry.due);
      } else {
        await finish(w, 'Failed', 'NodesFailed', `${outcome.failed} of ${outcome.desired} node(s) failed; ${outcome.succeeded} warmed`, entry.run, entry.due);
      }
    } catch (err) {
      // The next reconcile (periodic resync) starts a run from status; finished nodes are not redone.
      deps.log.error({ err, warmup: key }, 'could not write the final status');
    } finally {
      if (runs.get(key) === entry) runs.delete(key);
    }
  }

  function publish(entry: RunEntry): void {
    const { run, namespace, name, keepWarm } = entry;
    const startedAt = new Date(now()).toISOString();
    deps.status.schedule(namespace, name, (cur) => {
      const stale = isFinished(cur.status) && !statusIsCurrent(cur, entry.due);
      // Derived once per write: the run id and the status below both read it.
      const e = effectiveOf(cur);
      if (runIdNow(cur, entry.due, e) !== entry.id || (isFinished(cur.status) && !stale)) return undefined;
      const s = run.snapshot();
      const base = stale ? freshStatus(cur.status) : (cur.status ?? {});
      const status: WarmupStatus = {
        ...base,
        phase: s.started ? 'Running' : 'Pending',
        desiredNodes: s.desiredNodes,
        activeNodes: s.activeNodes,
        succeededNodes: s.succeededNodes,
        failedNodes: s.failedNodes,
        failedNodeList: s.failedNodeList,
        activeNodeList: s.activeNodeList,
        bytesDone: s.bytesDone,
        bytesTotal: s.bytesTotal,
        record: s.record,
        images: s.images,
        startTime: base.startTime ?? startedAt,
        observedGeneration: cur.metadata.generation ?? 0,
        observedRerun: entry.rerun,
        recordHash: entry.recordHash,
      };
      delete status.pin;
      delete status.residency;
      const curSpec = 'spec' in e ? e.spec : resolveSpec(cur.spec);
      Object.assign(status, factsOf(run, curSpec, base));
      const volumes = volumesOf(curSpec, plans.get(`${namespace}/${name}`), 'spec' in e ? e.derived : undefined);
      if (volumes) {
        status.volumes = volumes.list;
        status.conditions = setCondition(status.conditions, { type: 'ClaimsBound', status: 'True', reason: 'ClaimsBound', message: volumes.bound, lastTransitionTime: startedAt });
      } else {
        // No claims (any more): nothing to say about them.
        delete status.volumes;
        if (status.conditions?.some((c) => c.type === 'ClaimsBound')) status.conditions = status.conditions.filter((c) => c.type !== 'ClaimsBound');
      }
      delete status.source;
      delete status.skippedNodes;
      delete status.skippedNodeList;
      delete status.warm;
      if ('spec' in e && e.derived) {
        const d = e.derived;
        const skipped = skippedNodes(d.templates, deps.nodes.list());
        status.source = d.source;
        status.skippedNodes = skipped.count;
        if (skipped.list.length > 0) status.skippedNodeList = skipped.list;
        const what = [`${d.images.length} image(s)`, `${d.paths.length} host path(s)`, `${d.claims.length} claim(s)`, `${skipped.count} node(s) skipped`];
        status.conditions = setCondition(status.conditions, { type: 'Derived', status: 'True', reason: 'WorkloadDerived', message: `${d.source}: ${what.join(', ')}`, lastTransitionTime: startedAt });
      }
      if (keepWarm || ('spec' in e && e.derived)) status.warm = `${s.succeededNodes}/${s.desiredNodes}`;
      if (entry.due) status.lastScheduleTime = entry.due;
      else delete status.lastScheduleTime;
      if (keepWarm && labeller) status.nodeLabel = nodeLabelKey(namespace, name);
      delete status.completionTime;
      const conditions = resumed(status.conditions, startedAt);
      if (conditions) status.conditions = conditions;
      if (keepWarm) {
        // Nodes in flight are not warm yet: counts say how many are.
        status.phase = 'Running';
        status.conditions = setCondition(status.conditions, warmCondition(s, startedAt, volumes?.note));
      }
      return status;
    });
  }

  return {
    reconcile,
    async stop() {
      const pending = [...runs.values()].map((e) => e.run.done);
      for (const key of [...runs.keys()]) cancel(key);
      await Promise.allSettled(pending);
    },
  };
}

/** keepWarm's Warm condition: True while every current target node is warm, with the counts. */
export function warmCondition(s: Pick<RunSnapshot, 'desiredNodes' | 'succeededNodes' | 'failedNodes' | 'activeNodes'>, at: string, note?: string): ConditionUpdate {
  if (s.desiredNodes === 0) {
    return { type: 'Warm', status: 'False', reason: 'NoMatchingNodes', message: 'no target node yet: nodes that join or start matching later are warmed', lastTransitionTime: at };
  }
  const all = s.succeededNodes === s.desiredNodes;
  const parts = [`${s.succeededNodes} of ${s.desiredNodes} node(s) warm`];
  if (s.activeNodes > 0) parts.push(`${s.activeNodes} warming`);
  if (s.failedNodes > 0) parts.push(`${s.failedNodes} failed, tried again at their next recheck`);
  // Nodes that do not read a claim's volume are warm for the rest: a note, not a failure.
  if (note) parts.push(note);
  return { type: 'Warm', status: all ? 'True' : 'False', reason: all ? 'AllNodesWarm' : 'NodesNotWarm', message: parts.join('; '), lastTransitionTime: at };
}

/** A key for what each node task of a run does: equal keys, identical Warm requests but for the id. */
function workKey(spec: ResolvedSpec, credentials: ReturnType<typeof credentialsForImages>): string {
  return createHash('sha256').update(JSON.stringify([spec.images, spec.paths, credentials, ...(spec.claims.length > 0 ? [spec.claims] : [])])).digest('hex');
}

function namespaceMessage(ns: string, served: ReadonlySet<string>): string {
  const list = [...served].sort().join(', ');
  return `namespace "${ns}" is not one Stoker serves: the controller reads pull secrets and warms nodes only for Warmups in ${list} (--warmup-namespaces)`;
}

function noMatchMessage(spec: ResolvedSpec): string {
  const sel = spec.nodes;
  if (!sel || (sel.names === undefined && sel.selector === undefined)) return 'no node has a live Stoker agent';
  const parts: string[] = [];
  if (sel.names) parts.push(`names [${sel.names.join(', ')}]`);
  if (sel.selector) parts.push(`selector ${formatSelector(sel.selector)}`);
  return `no node matches spec.nodes ${parts.join(' and ')}`;
}
