// The Warmup reconciler, level-triggered: each call re-reads the Warmup from the informer cache,
// works out the whole desired state and acts; running it twice does no harm.
//
//   const r = createReconciler(deps);   // ReconcilerDeps below; controller/main.ts builds them per term
//   await r.reconcile('default/models'); // -> { requeueAfterMs } or nothing
//   await r.stop();
//
// One reconcile:
//   - Warmup gone: cancel its dispatch. Not the leader: cancel, do nothing else.
//   - Finished (Succeeded/Failed): delete it once ttlSecondsAfterFinished has passed; requeue until then.
//   - Suspended: cancel the dispatch; the Suspended condition says so (phase unchanged).
//   - What the schema cannot reject (image reference grammar, unclean paths, missing or broken
//     pull secrets) -> Failed, with a condition whose reason and message name the value.
//   - Targets: Nodes matching spec.nodes (names AND selector); absent = every Node with a live
//     agent. A named/selected Node without a live agent waits (agentWaitMs), then fails with
//     AgentUnavailable. No matching node -> Failed with reason NoMatchingNodes (never stuck).
//   - Dispatch runs in the background (controller/dispatch.ts), one run per uid+generation; the
//     run, not the work queue, retries failed nodes (its header says where that state lives);
//     progress is published through the StatusWriter (coalesced, <= 1 write/s per Warmup).
//   - activeDeadlineSeconds past startTime -> Failed with reason DeadlineExceeded.
// Events: Started, NodeFailed (with the reason), Completed, Failed. Every reason written here is
// typed from the catalogue in controller/api/reasons.ts.
//
// Finished nodes are kept in status.record (8 characters per node) so a restarted controller never
// redoes them; nodes in flight keep their attempt in status.activeNodeList, so it re-sends the same
// task ids and the agents join the tasks already running.
import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../proto/common/log.js';
import type { PullPolicy } from '../proto/gen/stoker/v1/PullPolicy.js';
import {
  isFinished,
  readRecord,
  resolveSpec,
  validateSpec,
  type ResolvedSpec,
  type Warmup,
  type WarmupStatus,
} from './api/types.js';
import { resumed, setCondition } from './api/conditions.js';
import type { ConditionReason, EventReason } from './api/reasons.js';
import type { AgentConnection } from './agent-client.js';
import { credentialsForImages, loadPullSecrets, PullSecretError, type ReadSecret } from './credentials.js';
import type { ReconcileResult } from './k8s/workqueue.js';
import { realDispatchClock, WarmupRun, type DispatchClock, type NodeTarget, type RunOutcome } from './dispatch.js';
import { formatSelector, matchesSelector } from './k8s/label-selector.js';

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
  warmups: { get(key: string): Warmup | undefined };
  nodes: { get(key: string): V1Node | undefined; list(): V1Node[] };
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
}

const PULL_POLICY: Record<string, PullPolicy> = { IfNotPresent: 'IF_NOT_PRESENT', Always: 'ALWAYS' };

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const tuning: ReconcilerTuning = { ...DEFAULT_TUNING, ...deps.tuning };
  const clock = deps.clock ?? realDispatchClock;
  const now = (): number => clock.now();
  const runs = new Map<string, RunEntry>();
  const { connect, readSecret, deleteWarmup } = deps;

  deps.signal.addEventListener('abort', () => {
    for (const key of [...runs.keys()]) cancel(key);
  }, { once: true });

  function cancel(key: string): void {
    const e = runs.get(key);
    if (!e) return;
    runs.delete(key);
    e.run.cancel();
  }

  /** Writes a final status (Succeeded or Failed) and records the Event. */
  async function finish(w: Warmup, phase: 'Succeeded' | 'Failed', reason: ConditionReason, message: string, run?: WarmupRun): Promise<void> {
    const ns = w.metadata.namespace ?? 'default';
    const name = w.metadata.name ?? '';
    const uid = w.metadata.uid;
    const finishedAt = new Date(now()).toISOString();
    deps.status.schedule(ns, name, (cur) => {
      if (cur.metadata.uid !== uid || isFinished(cur.status)) return undefined;
      const base: WarmupStatus = { ...(cur.status ?? {}) };
      if (run) Object.assign(base, countsOf(run));
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
    await deps.status.flush(ns, name);
    deps.events.record(w, phase === 'Succeeded' ? 'Normal' : 'Warning', phase === 'Succeeded' ? 'Completed' : 'Failed', message);
    deps.log.info({ warmup: `${ns}/${name}`, phase, reason }, `warmup ${phase === 'Succeeded' ? 'completed' : 'failed'}`);
  }

  function countsOf(run: WarmupRun): Partial<WarmupStatus> {
    const s = run.snapshot();
    return {
      desiredNodes: s.desiredNodes,
      succeededNodes: s.succeededNodes,
      failedNodes: s.failedNodes,
      failedNodeList: s.failedNodeList,
      record: s.record,
    };
  }

  /** Nodes the Warmup targets now, with their live agent's endpoint (undefined when none). */
  function targetsOf(spec: ResolvedSpec): { targets: Map<string, NodeTarget>; explicit: boolean } {
    const live = deps.agents.live(new Date(now()));
    const out = new Map<string, NodeTarget>();
    const sel = spec.nodes;
    const explicit = !!sel && (sel.names !== undefined || sel.selector !== undefined);
    if (!explicit) {
      for (const [node, a] of live) if (deps.nodes.get(node)) out.set(node, { endpoint: a.endpoint });
      return { targets: out, explicit };
    }
    const names = sel.names ? new Set(sel.names) : undefined;
    for (const n of deps.nodes.list()) {
      const name = n.metadata?.name;
      if (!name) continue;
      if (names && !names.has(name)) continue;
      if (sel.selector && !matchesSelector(sel.selector, n.metadata?.labels ?? {})) continue;
      out.set(name, { endpoint: live.get(name)?.endpoint });
    }
    return { targets: out, explicit };
  }

  async function reconcile(key: string): Promise<ReconcileResult> {
    const w = deps.warmups.get(key);
    if (!w) {
      cancel(key);
      const [ns = '', name = ''] = key.split('/');
      deps.status.forget(ns, name);
      return;
    }
    if (!deps.isLeader() || deps.signal.aborted) {
      cancel(key);
      return;
    }
    const ns = w.metadata.namespace ?? 'default';
    const name = w.metadata.name ?? '';
    const uid = w.metadata.uid ?? '';
    const generation = w.metadata.generation ?? 0;
    const log = deps.log.child({ warmup: key });
    const spec = resolveSpec(w.spec);

    if (isFinished(w.status)) {
      cancel(key);
      if (spec.ttlSecondsAfterFinished === undefined) return;
      const done = Date.parse(w.status?.completionTime ?? '');
      if (Number.isNaN(done)) return;
      const left = done + spec.ttlSecondsAfterFinished * 1000 - now();
      if (left > 0) return { requeueAfterMs: left };
      log.info({ ttlSecondsAfterFinished: spec.ttlSecondsAfterFinished }, 'deleting finished warmup after its TTL');
      await deleteWarmup(ns, name);
      return;
    }

    if (spec.suspend) {
      cancel(key);
      const at = new Date(now()).toISOString();
      deps.status.schedule(ns, name, (cur) => {
        if (cur.metadata.uid !== uid || isFinished(cur.status)) return undefined;
        const s: WarmupStatus = { ...(cur.status ?? {}) };
        s.phase ??= 'Pending';
        s.activeNodes = 0;
        delete s.bytesDone;
        delete s.bytesTotal;
        s.observedGeneration = cur.metadata.generation ?? 0;
        s.conditions = setCondition(s.conditions, { type: 'Suspended', status: 'True', reason: 'Suspended', message: 'spec.suspend is true: no node is being warmed', lastTransitionTime: at });
        return s;
      });
      return;
    }

    const problem = validateSpec(spec);
    if (problem) {
      cancel(key);
      await finish(w, 'Failed', problem.reason, problem.message);
      return;
    }

    const started = Date.parse(w.status?.startTime ?? '');
    if (spec.activeDeadlineSeconds !== undefined && !Number.isNaN(started) && now() >= started + spec.activeDeadlineSeconds * 1000) {
      const e = runs.get(key);
      cancel(key);
      await finish(w, 'Failed', 'DeadlineExceeded', `the Warmup ran longer than activeDeadlineSeconds (${spec.activeDeadlineSeconds}s)`, e?.run);
      return;
    }

    const runId = `${uid}/${generation}`;
    let entry = runs.get(key);
    if (!entry || entry.id !== runId) {
      cancel(key);
      let credentials;
      try {
        const secrets = await loadPullSecrets(readSecret, ns, spec.imagePullSecrets);
        credentials = credentialsForImages(secrets, spec.images.map((i) => i.image));
      } catch (err) {
        if (err instanceof PullSecretError) {
          await finish(w, 'Failed', err.reason, err.message);
          return;
        }
        throw err;
      }
      const { targets, explicit } = targetsOf(spec);
      const record = { succeeded: readRecord(w.status?.record?.succeeded), failed: readRecord(w.status?.record?.failed) };
      if (targets.size === 0 && record.succeeded.size + record.failed.size === 0) {
        const created = Date.parse(w.metadata.creationTimestamp ? String(w.metadata.creationTimestamp instanceof Date ? w.metadata.creationTimestamp.toISOString() : w.metadata.creationTimestamp) : '');
        const waited = Number.isNaN(created) ? tuning.agentWaitMs : now() - created;
        if (explicit || waited >= tuning.agentWaitMs) {
          await finish(w, 'Failed', 'NoMatchingNodes', noMatchMessage(spec));
          return;
        }
        return { requeueAfterMs: Math.min(1000, tuning.agentWaitMs - waited) };
      }
      entry = startRun(w, spec, credentials, record, log);
      runs.set(key, entry);
      if (w.status?.phase !== 'Running') {
        deps.events.record(w, 'Normal', 'Started', `warming ${spec.images.length} image(s) and ${spec.paths.length} path(s) on ${targets.size} node(s)`);
      }
      publish(entry);
    }
    const untilDeadline = spec.activeDeadlineSeconds !== undefined ? (Number.isNaN(started) ? now() : started) + spec.activeDeadlineSeconds * 1000 - now() : Infinity;
    return { requeueAfterMs: Math.max(100, Math.min(tuning.resyncMs, untilDeadline)) };
  }

  function startRun(
    w: Warmup,
    spec: ResolvedSpec,
    credentials: ReturnType<typeof credentialsForImages>,
    record: { succeeded: Set<string>; failed: Set<string> },
    log: Logger,
  ): RunEntry {
    const ns = w.metadata.namespace ?? 'default';
    const name = w.metadata.name ?? '';
    const key = `${ns}/${name}`;
    const attempts = new Map<string, number>();
    for (const a of w.status?.activeNodeList ?? []) if (a.attempt >= 1) attempts.set(a.name, a.attempt);
    const entry: { id: string; namespace: string; name: string; run?: WarmupRun } = { id: `${w.metadata.uid ?? ''}/${w.metadata.generation ?? 0}`, namespace: ns, name };
    const run: WarmupRun = new WarmupRun({
      uid: w.metadata.uid ?? '',
      generation: w.metadata.generation ?? 0,
      images: spec.images.map((i) => ({ image: i.image, pullPolicy: PULL_POLICY[i.pullPolicy] ?? 'IF_NOT_PRESENT' })),
      paths: spec.paths,
      credentials,
      parallelism: spec.parallelism,
      backoffLimit: spec.backoffLimit,
      timeoutMs: spec.timeoutSeconds * 1000,
      agentWaitMs: tuning.agentWaitMs,
      backoffBaseMs: tuning.backoffBaseMs,
      backoffMaxMs: tuning.backoffMaxMs,
      resume: { ...record, failedList: w.status?.failedNodeList ?? [], attempts },
      targets: () => {
        if (!deps.isLeader()) run.cancel();
        return targetsOf(spec).targets;
      },
      nodeExists: (node) => deps.nodes.get(node) !== undefined,
      connect,
      onChange: () => {
        const cur = runs.get(key);
        if (cur && cur === (entry as RunEntry)) publish(cur);
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
      },
    });
    entry.run = run;
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
    const w = deps.warmups.get(key);
    if (!w || `${w.metadata.uid ?? ''}/${w.metadata.generation ?? 0}` !== entry.id) {
      runs.delete(key);
      return;
    }
    try {
      if (outcome.kind === 'fatal') {
        await finish(w, 'Failed', outcome.problem.reason, outcome.problem.message, entry.run);
      } else if (outcome.desired === 0) {
        await finish(w, 'Failed', 'NoMatchingNodes', noMatchMessage(resolveSpec(w.spec)), entry.run);
      } else if (outcome.failed === 0) {
        await finish(w, 'Succeeded', 'AllNodesWarmed', `${outcome.succeeded} of ${outcome.desired} node(s) warmed`, entry.run);
      } else {
        await finish(w, 'Failed', 'NodesFailed', `${outcome.failed} of ${outcome.desired} node(s) failed; ${outcome.succeeded} warmed`, entry.run);
      }
    } catch (err) {
      // The next reconcile (periodic resync) starts a run from status; finished nodes are not redone.
      deps.log.error({ err, warmup: key }, 'could not write the final status');
    } finally {
      if (runs.get(key) === entry) runs.delete(key);
    }
  }

  function publish(entry: RunEntry): void {
    const { run, namespace, name } = entry;
    const startedAt = new Date(now()).toISOString();
    deps.status.schedule(namespace, name, (cur) => {
      if (`${cur.metadata.uid ?? ''}/${cur.metadata.generation ?? 0}` !== entry.id || isFinished(cur.status)) return undefined;
      const s = run.snapshot();
      const status: WarmupStatus = {
        ...(cur.status ?? {}),
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
        startTime: cur.status?.startTime ?? startedAt,
        observedGeneration: cur.metadata.generation ?? 0,
      };
      const conditions = resumed(status.conditions, startedAt);
      if (conditions) status.conditions = conditions;
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

function noMatchMessage(spec: ResolvedSpec): string {
  const sel = spec.nodes;
  if (!sel || (sel.names === undefined && sel.selector === undefined)) return 'no node has a live Stoker agent';
  const parts: string[] = [];
  if (sel.names) parts.push(`names [${sel.names.join(', ')}]`);
  if (sel.selector) parts.push(`selector ${formatSelector(sel.selector)}`);
  return `no node matches spec.nodes ${parts.join(' and ')}`;
}
