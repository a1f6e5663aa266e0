// Dispatch of one Warmup generation to its nodes: a WarmupRun owns the per-node tasks, runs at
// most `parallelism` of them at once, bounds each attempt by `timeoutMs`, retries a failed node
// with exponential backoff up to `backoffLimit` retries, and then records it failed with a reason
// translated from the agent's ErrorCode (REASON_BY_CODE in controller/api/reasons.ts).
//
// Task ids are deterministic: `${uid}-g${generation}-${node}-a${attempt}`. A controller that
// restarts in the middle of a Warmup builds a new run from the Warmup's status (finished nodes in
// status.record, attempts in flight in status.activeNodeList) and sends the same ids again; the
// agent joins the running (or recently finished) task instead of pulling again.
//
//   const run = new WarmupRun({ ...opts, targets: () => liveTargets(), connect: (ep) => pool.get(ep) });
//   run.start();  run.snapshot();  await run.done;  run.cancel();  await run.stop();
//
// Ending a Warm stream only detaches from the task; the agent runs it on. So whenever the run gives
// up on a task the agent may still be running (the attempt's timeoutSeconds passed, the stream
// broke, the node was deleted, another node failed the Warmup for good, or stop() was called) it
// sends Cancel for that task id before going on. cancel() is the exception: it only detaches,
// for a successor (the next leader, a restarted controller) that re-attaches with the same ids.
//
// The run reads its targets (nodes that match and their live agents) on every tick, so nodes and
// agents that come and go are seen without a reconcile. It never writes to the API server itself:
// `onChange` tells the owner to publish `snapshot()` (the status writer coalesces).
//
// Why a run has its own loop beside the work queue (controller/k8s/workqueue.ts). The queue
// schedules reconciles of Warmup keys: a reconcile returns promptly and may run twice. A node
// attempt is a Warm stream that lasts as long as its pulls and reads (minutes), so it cannot be a
// reconcile; the run holds the attempts in flight and wakes every `tickMs` (250 ms) or as soon as
// an attempt ends, to start the next nodes within `parallelism` and to notice targets that come
// and go. The two backoffs count different things and live in different places:
//   - a node's retries (spec.policy.backoffLimit, delays backoffBaseMs * 2^n up to backoffMaxMs)
//     live here, in NodeState.attempt and NodeState.nextAt. The attempt is part of the task id the
//     agent joins on, so it is published in status.activeNodeList, and finished nodes in
//     status.record: a restarted controller resumes from status (`resume`), not from memory;
//   - a reconcile that throws (an API call failed) is retried with the queue's per-key backoff,
//     which is in memory only and forgotten once a reconcile of that key succeeds.
// Folding node attempts into the queue would still need an owner for the streams in flight and
// their progress, and would not make node retry state survive a restart better than status does.
//
// One digest on every node. A tag (`vllm/vllm-openai:v0.6.3`) is resolved once per run: while an
// image of the run is a tag with no digest known yet, the run has at most one node attempt in
// flight, whatever `parallelism` says; the agent's result names the repo digest the runtime holds
// for it (ImageResult.repo_digest, from CRI ImageStatus), and every later request, retries and
// keepWarm checks included, carries `name@sha256:...` instead of the tag, and the tag for the
// agent to name the image by as well (ImageTask.tag; containerd's images service), so a pod that
// names the tag finds it on every node. So every node gets the same bytes, under the tag too, even
// when the tag moves in the middle of a rollout. Waiting for one node is the price
// of this: a first wave of `parallelism` nodes on the tag would let each resolve it on its own.
// The digests are published in status.images and resumed from there (a restarted controller, an
// edit that keeps the work, so the nodes already done and those left agree); a rerun, a schedule
// tick (a keepWarm one too, see rewarmAll) or an edit that asks other work starts from the tag
// again, so `Always` with a schedule follows a moved tag. A result without a repo digest (a
// runtime that reports none) leaves the tag as it is: each node then resolves it itself. An image
// given by digest needs no resolving.
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { FailedNode, ActiveNode, ResolvedImage } from './api/types.js';
import { nodeToken, writeRecord, MAX_ACTIVE_NODE_LIST, MAX_FAILED_NODE_LIST } from './api/types.js';
import { AgentCallError, type AgentConnection } from './agent-client.js';
import { fatalReason, REASON_BY_CODE, type FatalReason, type NodeReason } from './api/reasons.js';
import type { Logger } from '../proto/common/log.js';
import type { ErrorCode__Output } from '../proto/gen/stoker/v1/ErrorCode.js';
import type { CancelOutcome__Output } from '../proto/gen/stoker/v1/CancelOutcome.js';
import type { ImageTask } from '../proto/gen/stoker/v1/ImageTask.js';
import type { PathTask } from '../proto/gen/stoker/v1/PathTask.js';
import type { RegistryCredential } from '../proto/gen/stoker/v1/RegistryCredential.js';
import type { WarmEvent__Output, WarmResult__Output } from '../proto/agent.js';
import { sleep } from '../proto/common/sleep.js';
import { parseImageReference } from '../proto/common/image-reference.js';
import { agentFreeBytes, waitForMoreSpace } from './space-wait.js';

/** A node the Warmup should warm: `endpoint` is its live agent, undefined while none is live. */
export interface NodeTarget {
  endpoint: string | undefined;
  /**
   * The node's own paths (host paths plus the claims resolved for that node,
   * controller/volumes/claims.ts); undefined: the run's paths. A node whose paths change gets
   * other task ids (a variant of its paths in the id), and keepWarm checks it again at once.
   */
  paths?: PathTask[] | undefined;
}

export interface DispatchClock {
  now(): number;
  /** Resolves after `ms` or when `signal` aborts, whichever comes first; never rejects. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const realDispatchClock: DispatchClock = {
  now: () => Date.now(),
  sleep,
};

/** A task sent to an agent that may still be running there. */
export interface SentTask {
  node: string;
  taskId: string;
  endpoint: string;
}

/** Deadline of one Cancel call (the agent itself waits up to 3 s for the task to end). */
export const CANCEL_TIMEOUT_MS = 10_000;

export interface DispatchHooks {
  /** A node attempt ended: succeeded, failed (for good), retried, or cancelled. */
  attempt?(outcome: 'succeeded' | 'failed' | 'retried' | 'cancelled'): void;
  /** Seconds from sending a Warm request to the agent's first answer. */
  dispatchLatency?(seconds: number): void;
  /** A node was recorded failed (for an Event). */
  nodeFailed?(failure: FailedNode): void;
  /** keepWarm: a check ended; `warm` false when the node is warmed again. */
  checked?(warm: boolean): void;
  /** An agent sent a node's WarmResult (a warm or a check): pinning, residency, budget warnings. */
  result?(node: string, result: WarmResult__Output): void;
}

export interface RunOptions {
  uid: string;
  generation: number;
  images: ImageTask[];
  paths: PathTask[];
  credentials: RegistryCredential[];
  /** spec.pin: each node sets containerd's pin label on the images it warms. */
  pin?: boolean;
  parallelism: number;
  backoffLimit: number;
  /** Per node attempt. */
  timeoutMs: number;
  /** How long a target node may lack a live agent before it is failed with AgentUnavailable. */
  agentWaitMs: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** What the Warmup's status already records (a restarted controller resumes from it). */
  resume?: ResumeState;
  /** Current targets; called on every tick. */
  targets: () => Map<string, NodeTarget>;
  /** Whether a Node object exists (a vanished node fails with NodeDeleted). */
  nodeExists: (node: string) => boolean;
  connect: (endpoint: string) => AgentConnection;
  onChange: () => void;
  log: Logger;
  hooks?: DispatchHooks;
  clock?: DispatchClock;
  /** Tick interval of the scheduling loop. Default 250 ms. */
  tickMs?: number;
  /** Deadline of each Cancel call. Default CANCEL_TIMEOUT_MS. */
  cancelTimeoutMs?: number;
  /**
   * Never finish: every `recheckMs` each warm node is checked (a check-only Warm call) and warmed
   * again when it is not; a failed node is tried again at its next recheck; a node that stops
   * being a target is dropped (its work cancelled), never failed.
   */
  keepWarm?: { recheckMs: number; minResidentPercent: number };
  /** Told apart in task ids from earlier runs of the same generation (a re-run); default ''. */
  runTag?: string;
}

export interface ResumeState {
  succeeded: Set<string>;
  failed: Set<string>;
  failedList: FailedNode[];
  /** Attempt numbers of nodes that were in flight or backing off. */
  attempts: Map<string, number>;
  /** The digests the run's tags resolved to (status.images). */
  images?: ResolvedImage[];
}

/** A Warmup-level failure reported by an agent: bad input the schema could not see. */
export interface FatalProblem {
  reason: FatalReason;
  message: string;
}

export type RunOutcome =
  | { kind: 'finished'; succeeded: number; failed: number; desired: number }
  | { kind: 'fatal'; problem: FatalProblem }
  | { kind: 'cancelled' };

export interface RunSnapshot {
  desiredNodes: number;
  activeNodes: number;
  succeededNodes: number;
  failedNodes: number;
  failedNodeList: FailedNode[];
  activeNodeList: ActiveNode[];
  bytesDone: number;
  bytesTotal: number;
  record: { succeeded: string; failed: string };
  /** True once at least one node attempt was sent. */
  started: boolean;
  /** Each image and, once known, the digest every node gets. */
  images: ResolvedImage[];
}

/** `checking`: keepWarm, a warm node whose check is in flight (still counted warm). */
type NodePhase = 'pending' | 'active' | 'backoff' | 'succeeded' | 'failed' | 'checking';

interface NodeState {
  name: string;
  token: string;
  phase: NodePhase;
  /** The attempt in flight or, while pending/backoff, the last one made (0 = none). */
  attempt: number;
  nextAt: number;
  /** When the node was first seen without a live agent. */
  waitingSince: number | undefined;
  items: Map<string, { done: number; total: number }>;
  abort: AbortController | undefined;
  /** The agent the attempt in flight was sent to. */
  endpoint: string | undefined;
  lastFailure: FailedNode | undefined;
  /** keepWarm: when a warm node is next checked, or a failed one tried again. */
  checkAt: number;
  /** keepWarm: 0 for the first warm; the time (ms) a check found the node cold, for later rounds. */
  round: number;
  /** What the node is sent: its target's paths, or the run's. */
  paths: PathTask[];
  /** A short hash of the node's own paths, in its task ids; '' when it gets the run's paths. */
  variant: string;
  /** The task id of the attempt in flight. */
  sentId: string;
}

const MAX_MESSAGE = 300;

function clip(s: string): string {
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 1)}…` : s;
}

/**
 * The task id of one node attempt. `generation` carries the run tag of a re-run ("3.r1a2b3c");
 * `round` (keepWarm) tells a node's later warms apart from its first, whose result an agent may
 * still remember.
 */
export function taskId(uid: string, generation: number | string, node: string, attempt: number, round = 0, variant = ''): string {
  return `${uid}-g${generation}-${node}-${variant ? `v${variant}-` : ''}${round > 0 ? `r${round.toString(36)}-` : ''}a${attempt}`;
}

/** The variant of a node's own paths in its task ids: equal paths, equal variant. */
export function pathsVariant(paths: readonly PathTask[]): string {
  return createHash('sha256').update(JSON.stringify(paths)).digest('base64url').replace(/[-_]/g, '').slice(0, 8);
}

/**
 * What went wrong in a WarmResult, as a reason and a message; undefined when it succeeded. For
 * NO_SPACE, `needBytes` is the free space the image needs at least (0: unknown).
 */
export function resultFailure(result: WarmResult__Output): { code: ErrorCode__Output; reason: NodeReason; message: string; needBytes: number } | undefined {
  if (result.succeeded) return undefined;
  const pick = (code: ErrorCode__Output, message: string, needBytes = 0) => ({ code, reason: REASON_BY_CODE[code], message: clip(message || REASON_BY_CODE[code]), needBytes });
  if (result.failure && result.failure.code !== 'ERROR_CODE_UNSPECIFIED') return pick(result.failure.code, result.failure.message);
  for (const img of result.images) {
    if (img.state === 'FAILED') return pick(img.failure?.code ?? 'ERROR_CODE_UNSPECIFIED', img.failure?.message || `image ${img.image} failed`, Number(img.failure?.needBytes ?? 0));
  }
  for (const p of result.paths) {
    if (p.state === 'FAILED') return pick(p.failure?.code ?? 'ERROR_CODE_UNSPECIFIED', p.failure?.message || `path ${p.path} failed`);
  }
  return pick(result.failure?.code ?? 'ERROR_CODE_UNSPECIFIED', result.failure?.message ?? 'the agent reported failure');
}

export class WarmupRun {
  readonly done: Promise<RunOutcome>;
  readonly #opts: RunOptions;
  readonly #clock: DispatchClock;
  readonly #abort = new AbortController();
  readonly #nodes = new Map<string, NodeState>();
  readonly #succeeded: Set<string>;
  readonly #failed: Set<string>;
  readonly #failedList: FailedNode[];
  readonly #resumeAttempts: Map<string, number>;
  readonly #wake: { fn: (() => void) | undefined } = { fn: undefined };
  #resolve!: (o: RunOutcome) => void;
  #fatal: FatalProblem | undefined;
  #started = false;
  #running = false;
  /** Set by cancel(): attempts in flight are left running on their agents. */
  #detached = false;
  /** Tag images resolved to `name@sha256:...`, sent instead of the tag. */
  readonly #pinned = new Map<string, string>();
  /** Tag images no node has resolved yet: while any is left, one node attempt at a time. */
  readonly #unresolved = new Set<string>();

  constructor(opts: RunOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? realDispatchClock;
    this.#succeeded = new Set(opts.resume?.succeeded);
    this.#failed = new Set(opts.resume?.failed);
    this.#failedList = [...(opts.resume?.failedList ?? [])].slice(0, MAX_FAILED_NODE_LIST);
    this.#resumeAttempts = new Map(opts.resume?.attempts);
    // A run resumed with attempts already made (a new leader, or the same after an outage) is Running, never back to Pending.
    this.#started = this.#succeeded.size + this.#failed.size + this.#resumeAttempts.size > 0;
    this.done = new Promise((resolve) => (this.#resolve = resolve));
    this.#resetDigests();
    for (const r of opts.resume?.images ?? []) {
      const ref = tagReference(r.image);
      if (ref && r.digest && this.#unresolved.delete(r.image)) this.#pinned.set(r.image, `${ref.name}@${r.digest}`);
    }
    // Every attempt in flight listens on the run's signal; parallelism may be well above 10.
    setMaxListeners(0, this.#abort.signal);
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#loop().then(
      (o) => this.#resolve(o),
      (err: unknown) => {
        this.#opts.log.error({ err }, 'dispatch loop failed');
        this.#resolve({ kind: 'cancelled' });
      },
    );
  }

  /**
   * Stops dispatching and detaches from every attempt in flight: the tasks run on at their agents,
   * for a successor to re-attach to (lost leadership, controller shutdown).
   */
  cancel(): void {
    if (!this.#abort.signal.aborted) this.#detached = true;
    this.#abort.abort();
    this.#wake.fn?.();
  }

  /**
   * Stops dispatching and cancels every task in flight on its agent (delete, suspend, deadline, a
   * spec change that makes the work obsolete). Resolves when the run has ended and every Cancel
   * was answered or reached its deadline; an agent that cannot be reached is logged, not waited for.
   */
  async stop(): Promise<RunOutcome> {
    this.#abort.abort();
    this.#wake.fn?.();
    if (!this.#running) return { kind: 'cancelled' };
    return this.done;
  }

  /** The tasks this run has sent and not yet seen end (attempts in flight). */
  tasksInFlight(): SentTask[] {
    const out: SentTask[] = [];
    for (const n of this.#nodes.values()) {
      if (n.phase === 'active' && n.endpoint !== undefined) out.push({ node: n.name, taskId: n.sentId, endpoint: n.endpoint });
    }
    return out;
  }

  #taskId(n: NodeState): string {
    const o = this.#opts;
    return taskId(o.uid, `${o.generation}${o.runTag ?? ''}`, n.name, n.attempt, n.round, n.variant);
  }

  /** The nodes warm now (keepWarm: warmed, and not found cold since). */
  warmNodes(): string[] {
    const out: string[] = [];
    for (const n of this.#nodes.values()) if (n.phase === 'succeeded' || n.phase === 'checking') out.push(n.name);
    return out;
  }

  /** keepWarm: checks every warm node now, and tries every failed node again (a re-run). */
  recheckAll(): void {
    if (!this.#opts.keepWarm) return;
    const now = this.#clock.now();
    for (const n of this.#nodes.values()) if (n.phase === 'succeeded' || n.phase === 'failed') n.checkAt = now;
    this.#wake.fn?.();
  }

  /**
   * keepWarm: warms every node again now, in a new round (a schedule tick: Always images are
   * pulled again, and their tags resolved again).
   */
  rewarmAll(): void {
    if (!this.#opts.keepWarm) return;
    this.#resetDigests();
    const now = this.#clock.now();
    for (const n of this.#nodes.values()) {
      if (n.phase !== 'succeeded' && n.phase !== 'failed') continue;
      if (n.phase === 'failed') this.#forgetFailure(n.name);
      this.#rewarm(n, now);
    }
    this.#opts.onChange();
    this.#wake.fn?.();
  }

  #resetDigests(): void {
    this.#pinned.clear();
    this.#unresolved.clear();
    for (const i of this.#opts.images) if (i.image && tagReference(i.image)) this.#unresolved.add(i.image);
  }

  /**
   * The images as sent to the agents: a resolved tag as its digest, with the tag for the agent to
   * name the image by as well (so pods that name the tag find it, as on the first node).
   */
  #requestImages(): ImageTask[] {
    return this.#opts.images.map((i) => {
      const pinned = i.image ? this.#pinned.get(i.image) : undefined;
      const tag = i.image ? tagReference(i.image)?.normalized : undefined;
      return pinned && tag ? { ...i, image: pinned, tag } : i;
    });
  }

  /** Takes the repo digests a node reported for tags not resolved yet. */
  #learnDigests(result: WarmResult__Output, log: Logger): void {
    for (const image of [...this.#unresolved]) {
      const r = result.images.find((x) => x.image === image);
      const ref = tagReference(image);
      const digest = r?.repoDigest ? parseDigest(r.repoDigest) : undefined;
      this.#unresolved.delete(image);
      if (ref && digest) {
        this.#pinned.set(image, `${ref.name}@${digest}`);
        log.info({ image, digest }, 'tag resolved: every other node gets this digest');
      } else {
        log.warn({ image }, 'the runtime reported no repo digest for the image: each node resolves the tag itself');
      }
    }
  }

  snapshot(): RunSnapshot {
    let active = 0;
    let bytesDone = 0;
    let bytesTotal = 0;
    const activeList: ActiveNode[] = [];
    const tokens = new Set<string>([...this.#succeeded, ...this.#failed]);
    for (const n of this.#nodes.values()) {
      tokens.add(n.token);
      if (n.phase === 'active') active++;
      if (n.phase !== 'active' && n.phase !== 'backoff') continue;
      let d = 0;
      let t = 0;
      for (const i of n.items.values()) {
        d += i.done;
        t += i.total;
      }
      bytesDone += d;
      bytesTotal += t;
      if (activeList.length < MAX_ACTIVE_NODE_LIST) activeList.push({ name: n.name, attempt: n.attempt, bytesDone: d, bytesTotal: t });
    }
    return {
      desiredNodes: tokens.size,
      activeNodes: active,
      succeededNodes: this.#succeeded.size,
      failedNodes: this.#failed.size,
      failedNodeList: [...this.#failedList],
      activeNodeList: activeList,
      bytesDone,
      bytesTotal,
      record: { succeeded: writeRecord(this.#succeeded), failed: writeRecord(this.#failed) },
      started: this.#started,
      images: this.#opts.images.map((i) => {
        const image = i.image ?? '';
        const digest = parseDigest(this.#pinned.get(image) ?? image);
        return digest ? { image, digest } : { image };
      }),
    };
  }

  async #loop(): Promise<RunOutcome> {
    const o = this.#opts;
    const signal = this.#abort.signal;
    const tick = o.tickMs ?? 250;
    for (;;) {
      if (signal.aborted) {
        await this.#drain();
        return this.#fatal ? { kind: 'fatal', problem: this.#fatal } : { kind: 'cancelled' };
      }
      const changed = this.#refreshTargets();
      const launched = this.#launch();
      if (changed || launched) o.onChange();
      if (this.#allFinished()) {
        const s = this.snapshot();
        return { kind: 'finished', succeeded: s.succeededNodes, failed: s.failedNodes, desired: s.desiredNodes };
      }
      await new Promise<void>((resolve) => {
        this.#wake.fn = resolve;
        void this.#clock.sleep(tick, signal).then(resolve);
      });
      this.#wake.fn = undefined;
    }
  }

  async #drain(): Promise<void> {
    for (const n of this.#nodes.values()) n.abort?.abort();
    // Attempts end promptly once aborted (after their Cancel call, unless detached); give them a
    // moment so their outcome is counted. The run's own signal has aborted by now, so these waits
    // take one that never does.
    const deadline = this.#clock.now() + 2000 + (this.#detached ? 0 : (this.#opts.cancelTimeoutMs ?? CANCEL_TIMEOUT_MS));
    const never = new AbortController().signal;
    while ([...this.#nodes.values()].some((n) => n.phase === 'active') && this.#clock.now() < deadline) {
      await this.#clock.sleep(20, never);
    }
  }

  #allFinished(): boolean {
    if (this.#opts.keepWarm) return false;
    // No target left (all deleted or deselected before they started): nothing more can happen.
    if (this.#nodes.size === 0) return true;
    for (const n of this.#nodes.values()) if (n.phase !== 'succeeded' && n.phase !== 'failed') return false;
    return true;
  }

  /** Adds new target nodes, fails vanished or agentless ones. Returns whether anything changed. */
  #refreshTargets(): boolean {
    const o = this.#opts;
    const now = this.#clock.now();
    const targets = o.targets();
    let changed = false;
    for (const [name, target] of targets) {
      if (this.#nodes.has(name)) continue;
      const token = nodeToken(name);
      const finished = this.#succeeded.has(token) ? 'succeeded' : this.#failed.has(token) ? 'failed' : undefined;
      this.#nodes.set(name, {
        name,
        token,
        phase: finished ?? 'pending',
        attempt: finished ? 0 : Math.max(0, (this.#resumeAttempts.get(name) ?? 1) - 1),
        nextAt: now,
        waitingSince: undefined,
        items: new Map(),
        abort: undefined,
        endpoint: undefined,
        lastFailure: undefined,
        // A node resumed warm (a restarted controller) is checked at once.
        checkAt: now,
        round: 0,
        paths: target.paths ?? o.paths,
        variant: target.paths ? pathsVariant(target.paths) : '',
        sentId: '',
      });
      changed = true;
    }
    if (o.keepWarm) {
      // Tokens resumed from status for nodes that are no longer targets are dropped with them.
      const tokens = new Set([...this.#nodes.values()].map((n) => n.token));
      for (const set of [this.#succeeded, this.#failed]) {
        for (const t of set) {
          if (!tokens.has(t)) {
            set.delete(t);
            changed = true;
          }
        }
      }
    }
    for (const n of [...this.#nodes.values()]) {
      const target = targets.get(n.name);
      if (o.keepWarm && !target) {
        this.#drop(n);
        changed = true;
        continue;
      }
      if (target && this.#takePaths(n, target, now)) changed = true;
      if (n.phase === 'succeeded' || n.phase === 'failed' || n.phase === 'checking') continue;
      if (!target) {
        if (!o.nodeExists(n.name)) {
          n.abort?.abort();
          this.#recordFailed(n, 'NodeDeleted', `node ${n.name} was deleted`);
          changed = true;
          continue;
        }
        if (n.phase === 'pending' && n.attempt === 0) {
          // No longer selected and never started: it is not this Warmup's any more.
          this.#nodes.delete(n.name);
          changed = true;
          continue;
        }
        // Started, but its agent is gone (or it is no longer selected): wait for an agent as below.
      }
      const endpoint = target?.endpoint;
      if (endpoint === undefined && n.phase !== 'active') {
        n.waitingSince ??= now;
        if (now - n.waitingSince >= o.agentWaitMs) {
          this.#recordFailed(n, 'AgentUnavailable', `no live Stoker agent on node ${n.name} for ${Math.round(o.agentWaitMs / 1000)}s`);
          changed = true;
        }
      } else if (endpoint !== undefined) {
        n.waitingSince = undefined;
      }
    }
    return changed;
  }

  /**
   * Takes a target's paths when they changed (a pod mounting a claim came or went, a volume was
   * rebound), but not under an attempt or check in flight (it takes them at the next tick).
   * keepWarm checks a warm node again at once, with the new paths. Returns whether they changed.
   */
  #takePaths(n: NodeState, target: NodeTarget, now: number): boolean {
    const paths = target.paths ?? this.#opts.paths;
    if (paths === n.paths || n.phase === 'active' || n.phase === 'checking') return false;
    const variant = target.paths ? pathsVariant(target.paths) : '';
    n.paths = paths;
    if (variant === n.variant) return false;
    n.variant = variant;
    if (n.phase === 'succeeded' && this.#opts.keepWarm) n.checkAt = now;
    this.#opts.log.info({ node: n.name, paths: paths.length }, "the node's paths changed");
    return true;
  }

  /** keepWarm: a node that is no longer a target leaves the run; work in flight there is cancelled. */
  #drop(n: NodeState): void {
    n.phase = 'pending';
    this.#nodes.delete(n.name);
    n.abort?.abort();
    this.#succeeded.delete(n.token);
    this.#failed.delete(n.token);
    this.#forgetFailure(n.name);
    this.#opts.log.info({ node: n.name }, 'node is no longer a target; dropped');
  }

  #forgetFailure(name: string): void {
    const i = this.#failedList.findIndex((f) => f.name === name);
    if (i >= 0) this.#failedList.splice(i, 1);
  }

  /** keepWarm: a node found cold (or failed, at its recheck) is warmed again, in a new round. */
  #rewarm(n: NodeState, now: number): void {
    this.#succeeded.delete(n.token);
    this.#failed.delete(n.token);
    n.phase = 'pending';
    n.attempt = 0;
    n.round = Math.max(now, n.round + 1);
    n.nextAt = now;
    n.waitingSince = undefined;
  }

  #launch(): boolean {
    const o = this.#opts;
    const now = this.#clock.now();
    let active = 0;
    for (const n of this.#nodes.values()) if (n.phase === 'active' || n.phase === 'checking') active++;
    if (active >= o.parallelism || this.#abort.signal.aborted) return false;
    const targets = o.targets();
    let launched = false;
    if (o.keepWarm) {
      for (const n of this.#nodes.values()) {
        if (n.phase === 'failed' && n.checkAt <= now) {
          this.#forgetFailure(n.name);
          this.#rewarm(n, now);
          launched = true;
        }
      }
    }
    for (const n of this.#nodes.values()) {
      if (active >= o.parallelism) break;
      if (o.keepWarm && n.phase === 'succeeded' && n.checkAt <= now) {
        if (this.#nothingFor(n)) {
          n.checkAt = now + o.keepWarm.recheckMs;
          continue;
        }
        const endpoint = targets.get(n.name)?.endpoint;
        if (endpoint === undefined) {
          // Its agent is gone: it cannot be shown warm; warming it again waits for an agent.
          this.#rewarm(n, now);
          launched = true;
          continue;
        }
        active++;
        n.phase = 'checking';
        n.abort = new AbortController();
        n.endpoint = endpoint;
        void this.#check(n, endpoint, n.abort);
        continue;
      }
      if ((n.phase !== 'pending' && n.phase !== 'backoff') || n.nextAt > now) continue;
      if (this.#nothingFor(n)) {
        // No image, and no path this node can read (a claim's volume it does not mount): done without a task.
        n.phase = 'succeeded';
        this.#succeeded.add(n.token);
        if (o.keepWarm) n.checkAt = now + o.keepWarm.recheckMs;
        this.#forgetFailure(n.name);
        this.#started = true;
        launched = true;
        o.log.info({ node: n.name }, 'nothing to warm on the node');
        continue;
      }
      const endpoint = targets.get(n.name)?.endpoint;
      if (endpoint === undefined) continue;
      // A tag not resolved yet: one node resolves it before the others start.
      if (this.#unresolved.size > 0 && this.#attemptsInFlight() > 0) continue;
      active++;
      launched = true;
      this.#started = true;
      n.phase = 'active';
      n.attempt++;
      n.items.clear();
      n.abort = new AbortController();
      n.endpoint = endpoint;
      void this.#attempt(n, endpoint, n.abort);
    }
    return launched;
  }

  #nothingFor(n: NodeState): boolean {
    return this.#opts.images.length === 0 && n.paths.length === 0;
  }

  #attemptsInFlight(): number {
    let count = 0;
    for (const n of this.#nodes.values()) if (n.phase === 'active') count++;
    return count;
  }

  async #attempt(n: NodeState, endpoint: string, abort: AbortController): Promise<void> {
    const o = this.#opts;
    const id = this.#taskId(n);
    n.sentId = id;
    const log = o.log.child({ node: n.name, taskId: id, attempt: n.attempt });
    const signal = AbortSignal.any([abort.signal, this.#abort.signal]);
    const sentAt = performance.now();
    let answered = false;
    const onEvent = (ev: WarmEvent__Output): void => {
      if (!answered) {
        answered = true;
        o.hooks?.dispatchLatency?.((performance.now() - sentAt) / 1000);
      }
      // An image whose bytes the runtime cannot attribute to it alone (bytesKnown false) reports
      // the node's concurrent downloads together: count that aggregate once, not once per image.
      if (ev.image) n.items.set(ev.image.bytesKnown ? `i:${ev.image.image}` : 'i:*', { done: ev.image.bytesDone, total: ev.image.bytesTotal });
      else if (ev.file) n.items.set(`f:${ev.file.path}`, { done: ev.file.bytesDone, total: ev.file.bytesTotal });
      o.onChange();
    };
    // `fatal`: the Warmup itself is wrong (every node would fail alike), so the whole run stops.
    let outcome:
      | { ok: true }
      | { ok: false; reason: NodeReason; message: string; retry: boolean; fatal?: FatalReason | undefined; code?: ErrorCode__Output; needBytes?: number };
    // Whether the agent sent the task's result, so the task is over there.
    let ended = false;
    try {
      log.debug({ endpoint }, 'dispatching node task');
      const result = await o.connect(endpoint).warm(
        { taskId: id, nodeName: n.name, images: this.#requestImages(), paths: n.paths, credentials: o.credentials, ...(o.pin ? { pin: true } : {}) },
        { signal, timeoutMs: o.timeoutMs, onEvent },
      );
      ended = true;
      if (!answered) o.hooks?.dispatchLatency?.((performance.now() - sentAt) / 1000);
      o.hooks?.result?.(n.name, result);
      const failure = resultFailure(result);
      if (!failure) {
        outcome = { ok: true };
        this.#learnDigests(result, log);
      }
      else {
        const fatal = fatalReason(failure.code);
        outcome = { ok: false, reason: failure.reason, message: failure.message, retry: !fatal, fatal, code: failure.code, needBytes: failure.needBytes };
      }
    } catch (err) {
      // A request the agent refused never became a task there.
      if (err instanceof AgentCallError && err.reason === 'AgentRefused') ended = true;
      if (err instanceof AgentCallError && err.errorCode && Object.hasOwn(REASON_BY_CODE, err.errorCode)) {
        // The agent refused the request and said why (e.g. INVALID_REFERENCE): its own words name the value.
        const fatal = fatalReason(err.errorCode);
        outcome = { ok: false, reason: REASON_BY_CODE[err.errorCode], message: clip(err.message), retry: !fatal, fatal };
      } else if (err instanceof AgentCallError) {
        outcome = { ok: false, reason: err.reason, message: clip(err.message), retry: err.reason !== 'Cancelled' };
      } else {
        log.error({ err }, 'node task failed unexpectedly');
        outcome = { ok: false, reason: 'InternalError', message: 'the controller failed to dispatch the task', retry: true };
      }
    }
    // Giving up on a task the agent may still run (timeout, broken stream, node deleted, run
    // stopped): stop it there before going on, unless the run only detached.
    if (!ended && !this.#detached) await cancelTask(o.connect, { node: n.name, taskId: id, endpoint }, { timeoutMs: o.cancelTimeoutMs ?? CANCEL_TIMEOUT_MS, log: o.log });
    n.abort = undefined;
    n.endpoint = undefined;
    if (n.phase !== 'active') {
      // Already recorded (node deleted while the attempt ran).
      o.hooks?.attempt?.('cancelled');
      return;
    }
    if (outcome.ok) {
      n.phase = 'succeeded';
      this.#succeeded.add(n.token);
      if (o.keepWarm) {
        n.checkAt = this.#clock.now() + o.keepWarm.recheckMs;
        this.#forgetFailure(n.name);
      }
      for (const i of n.items.values()) i.done = i.total;
      log.info('node warmed');
      o.hooks?.attempt?.('succeeded');
    } else if (this.#abort.signal.aborted && !outcome.fatal) {
      // The run was cancelled (suspend, deletion, lost leadership): the node stays where it was.
      n.phase = 'backoff';
      n.attempt--;
      o.hooks?.attempt?.('cancelled');
    } else if (outcome.fatal) {
      this.#recordFailed(n, outcome.reason, outcome.message);
      o.hooks?.attempt?.('failed');
      this.#fatal ??= { reason: outcome.fatal, message: outcome.message };
      this.#abort.abort();
    } else if (outcome.retry && n.attempt <= o.backoffLimit) {
      const base = o.backoffBaseMs ?? 1000;
      const delay = Math.min(o.backoffMaxMs ?? 60_000, base * 2 ** (n.attempt - 1));
      n.phase = 'backoff';
      n.nextAt = this.#clock.now() + delay;
      n.lastFailure = { name: n.name, reason: outcome.reason, message: outcome.message };
      log.warn({ reason: outcome.reason, message: outcome.message, retryInMs: delay }, 'node attempt failed; retrying');
      o.hooks?.attempt?.('retried');
      // A full disk: retried only once the node has more free space (controller/space-wait.ts).
      if (outcome.code === 'NO_SPACE') this.#holdForSpace(n, delay, outcome.reason, outcome.message, outcome.needBytes ?? 0);
    } else {
      this.#recordFailed(n, outcome.reason, outcome.message);
      o.hooks?.attempt?.('failed');
    }
    o.onChange();
    this.#wake.fn?.();
  }

  /**
   * Holds a node in backoff (nextAt = Infinity, so #launch skips it and it takes no parallelism
   * slot) while its agent reports no more free bytes than after the NO_SPACE failure; retries it
   * as soon as they grow, on the usual backoff when the agent cannot tell, and fails it with the
   * NO_SPACE reason and message when they have not grown within timeoutMs. n.abort cancels the
   * wait (node deleted, run cancelled), as it cancels an attempt.
   */
  #holdForSpace(n: NodeState, delay: number, reason: NodeReason, message: string, needBytes: number): void {
    const o = this.#opts;
    const failedAt = this.#clock.now();
    const abort = new AbortController();
    n.abort = abort;
    n.nextAt = Number.POSITIVE_INFINITY;
    void waitForMoreSpace({
      freeBytes: async (signal) => {
        // Failed meanwhile (its agent went away): stop asking.
        if (n.phase !== 'backoff') abort.abort();
        const endpoint = o.targets().get(n.name)?.endpoint;
        return endpoint === undefined || signal.aborted ? undefined : agentFreeBytes(o.connect(endpoint), n.name, signal);
      },
      signal: AbortSignal.any([abort.signal, this.#abort.signal]),
      clock: this.#clock,
      needBytes,
      firstPauseMs: delay,
      maxPauseMs: o.backoffMaxMs ?? 60_000,
      maxWaitMs: o.timeoutMs,
    }).then((verdict) => {
      if (n.abort === abort) n.abort = undefined;
      if (n.phase !== 'backoff' || verdict === 'cancelled') return;
      o.log.info({ node: n.name, verdict }, verdict === 'grown' ? 'node has more free space; retrying' : 'waited for free space on node');
      if (verdict === 'timeout') this.#recordFailed(n, reason, message);
      else n.nextAt = verdict === 'grown' ? this.#clock.now() : failedAt + delay;
      o.onChange();
      this.#wake.fn?.();
    });
  }

  /**
   * keepWarm: asks the node's agent whether everything is still there (a check-only Warm: CRI
   * ImageStatus, page-cache residency); a node that is not, or whose agent cannot answer, is
   * warmed again. A check pulls and reads nothing.
   */
  async #check(n: NodeState, endpoint: string, abort: AbortController): Promise<void> {
    const o = this.#opts;
    const kw = o.keepWarm as NonNullable<RunOptions['keepWarm']>;
    const id = `${o.uid}-g${o.generation}${o.runTag ?? ''}-${n.name}-${n.variant ? `v${n.variant}-` : ''}c${this.#clock.now().toString(36)}`;
    const signal = AbortSignal.any([abort.signal, this.#abort.signal]);
    let warm = false;
    let why: string;
    try {
      const result = await o.connect(endpoint).warm(
        { taskId: id, nodeName: n.name, images: this.#requestImages(), paths: n.paths, credentials: [], checkOnly: true, minResidentPercent: kw.minResidentPercent },
        { signal, timeoutMs: o.timeoutMs, onEvent: () => undefined },
      );
      warm = result.succeeded;
      o.hooks?.result?.(n.name, result);
      const cold = [...result.images.filter((i) => i.state !== 'PRESENT').map((i) => `image ${i.image} ${i.state}`), ...result.paths.filter((p) => p.state !== 'PRESENT').map((p) => `path ${p.path} ${p.state}`)];
      why = cold.join(', ');
    } catch (err) {
      why = err instanceof Error ? err.message : String(err);
    }
    n.abort = undefined;
    n.endpoint = undefined;
    // Dropped meanwhile, or the run stopped: the node stays as it was.
    if (n.phase !== 'checking') return;
    const now = this.#clock.now();
    if (warm || this.#abort.signal.aborted) {
      n.phase = 'succeeded';
      n.checkAt = now + kw.recheckMs;
      o.hooks?.checked?.(true);
    } else {
      o.log.info({ node: n.name, why: clip(why) }, 'node is no longer warm; warming it again');
      o.hooks?.checked?.(false);
      this.#rewarm(n, now);
      o.onChange();
    }
    this.#wake.fn?.();
  }

  #recordFailed(n: NodeState, reason: NodeReason, message: string): void {
    n.phase = 'failed';
    this.#failed.add(n.token);
    if (this.#opts.keepWarm) n.checkAt = this.#clock.now() + this.#opts.keepWarm.recheckMs;
    const f: FailedNode = { name: n.name, reason, message: clip(message) };
    if (this.#failedList.length < MAX_FAILED_NODE_LIST && !this.#failedList.some((x) => x.name === n.name)) this.#failedList.push(f);
    this.#opts.log.warn({ node: n.name, reason, message: f.message }, 'node failed');
    this.#opts.hooks?.nodeFailed?.(f);
  }
}

export type CancelResult = CancelOutcome__Output | 'Unreachable';

/** Sends Cancel for one task; never throws (an agent that cannot be reached is logged). */
export async function cancelTask(
  connect: (endpoint: string) => AgentConnection,
  task: SentTask,
  opts: { timeoutMs: number; log: Logger },
): Promise<CancelResult> {
  try {
    const res = await connect(task.endpoint).cancel({ taskId: task.taskId, nodeName: task.node }, { timeoutMs: opts.timeoutMs });
    opts.log.info({ node: task.node, taskId: task.taskId, outcome: res.outcome }, 'task cancelled on its agent');
    return res.outcome;
  } catch (err) {
    opts.log.warn({ node: task.node, taskId: task.taskId, reason: err instanceof Error ? err.message : String(err) }, 'could not cancel the task on its agent');
    return 'Unreachable';
  }
}

/** Cancels tasks on their agents, at most `concurrency` calls at once; counts the results. */
export async function cancelTasks(
  connect: (endpoint: string) => AgentConnection,
  tasks: readonly SentTask[],
  opts: { timeoutMs: number; log: Logger; concurrency?: number },
): Promise<Map<CancelResult, number>> {
  const counts = new Map<CancelResult, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const t = tasks[next++] as SentTask;
      const r = await cancelTask(connect, t, opts);
      counts.set(r, (counts.get(r) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 16, tasks.length) }, worker));
  return counts;
}

/** An image given by tag (no digest), with its normalised repository name; undefined otherwise. */
function tagReference(image: string): { name: string; normalized: string } | undefined {
  try {
    const ref = parseImageReference(image);
    return ref.digest === undefined ? { name: `${ref.domain}/${ref.path}`, normalized: ref.normalized } : undefined;
  } catch {
    // The agent refuses it in its own words.
    return undefined;
  }
}

/** The digest ("sha256:...") of a reference given by digest; undefined otherwise. */
function parseDigest(image: string): string | undefined {
  try {
    return parseImageReference(image).digest;
  } catch {
    return undefined;
  }
}
