// The Warmup custom resource (group stoker.io, version v1alpha1) as TypeScript types, its
// defaults, and the checks the CRD's OpenAPI schema cannot make (clean paths, and the image
// reference grammar of proto/common/image-reference.ts, the same parser the agent applies).
// The schema itself lives in deploy/crd/warmups.stoker.io.yaml.
//
//   import { type Warmup, type WarmupStatus, resolveSpec, validateSpec } from './api/types.js';
//
// Status bookkeeping that survives a controller restart lives in `status.record` (see
// NodeRecord below): one short token per finished node, so it stays small at any scale.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { V1LabelSelector, V1ObjectMeta } from '@kubernetes/client-node';
import { InvalidReferenceError, parseImageReference } from '../../proto/common/image-reference.js';
import { DEFAULT_REGISTRY_POLICY, refuseRegistry, registryDeniedMessage, type RegistryPolicy } from '../../proto/common/registry-policy.js';
import { checkSchedule, DEFAULT_TIME_ZONE } from './schedule.js';

export const GROUP = 'stoker.io';
export const VERSION = 'v1alpha1';
export const PLURAL = 'warmups';
export const KIND = 'Warmup';
export const API_VERSION = `${GROUP}/${VERSION}`;

export type PullPolicyName = 'IfNotPresent' | 'Always';

export interface WarmupImage {
  image: string;
  pullPolicy?: PullPolicyName;
}

/** A host path, or a PersistentVolumeClaim of the Warmup's namespace (one of the two). */
export interface WarmupPath {
  path?: string;
  persistentVolumeClaim?: ClaimSource;
  include?: string[];
  exclude?: string[];
}

export interface ClaimSource {
  claimName: string;
  /** Relative and clean, inside the volume. */
  subPath?: string;
}

/** A workload of the Warmup's namespace whose pod templates say what to warm and where. */
export interface WorkloadRef {
  apiVersion: string;
  kind: string;
  name: string;
}

export interface WarmupNodes {
  names?: string[];
  selector?: V1LabelSelector;
}

export interface WarmupPolicy {
  parallelism?: number;
  backoffLimit?: number;
  timeoutSeconds?: number;
  activeDeadlineSeconds?: number;
  ttlSecondsAfterFinished?: number;
  /** keepWarm: how often each warm node is checked (default 300, at least 5). */
  recheckSeconds?: number;
  /** keepWarm: a path is warm while at least this share of its bytes is resident (default 90). */
  minResidentPercent?: number;
}

export interface WarmupSpec {
  images?: WarmupImage[];
  imagePullSecrets?: { name: string }[];
  paths?: WarmupPath[];
  nodes?: WarmupNodes;
  policy?: WarmupPolicy;
  suspend?: boolean;
  /** Never finish: keep every target node warm, re-checking it every policy.recheckSeconds. */
  keepWarm?: boolean;
  /** Run again at each tick of this cron expression (controller/api/schedule.ts). */
  schedule?: string;
  /** The IANA time zone of schedule (default UTC). */
  timeZone?: string;
  /** What deleting the Warmup does on its nodes (default Keep; Purge removes what it warmed). */
  onDelete?: OnDelete;
  /**
   * On containerd, set the image label io.cri-containerd.pinned=pinned on the warmed images (removed
   * when the Warmup is deleted); status.pin says whether each runtime reports them pinned (CRI Image.pinned).
   */
  pin?: boolean;
  /** Derive images, pull secrets, nodes and volumes from this workload's pod templates. */
  workloadRef?: WorkloadRef;
}

export type OnDelete = 'Keep' | 'Purge';

/** spec.pin as the nodes report it: pinned, or a runtime that does not honour pinning. */
export interface PinStatus {
  pinnedNodes: number;
  notHonouredNodes: number;
  /** The first MAX_NODE_LIST nodes whose runtime does not honour pinning. */
  notHonouredNodeList?: string[];
  message: string;
}

/** Page-cache residency of the Warmup's paths over its warmed nodes. */
export interface ResidencyStatus {
  residentBytes: number;
  totalBytes: number;
  nodes: number;
  belowMinimum: number;
  /** The first MAX_NODE_LIST nodes below policy.minResidentPercent. */
  belowMinimumNodeList?: { name: string; residentPercent: number }[];
}

export type WarmupPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export interface WarmupCondition {
  /** Complete, Failed, Suspended or (keepWarm) Warm. */
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface FailedNode {
  name: string;
  reason: string;
  message: string;
}

/** Progress of one node being warmed right now. */
export interface ActiveNode {
  name: string;
  /** The attempt in flight (1-based); a restarted controller re-attaches with the same task id. */
  attempt: number;
  bytesDone: number;
  bytesTotal: number;
}

/**
 * Which nodes are finished, as strings of 8-character tokens (nodeToken(name)), so the record
 * stays about 8 bytes per node whatever the node names. Never redone after a restart.
 */
export interface NodeRecord {
  succeeded?: string;
  failed?: string;
}

export interface WarmupStatus {
  phase?: WarmupPhase;
  desiredNodes?: number;
  activeNodes?: number;
  succeededNodes?: number;
  failedNodes?: number;
  /** The first MAX_FAILED_NODE_LIST failed nodes. */
  failedNodeList?: FailedNode[];
  /** The first MAX_ACTIVE_NODE_LIST nodes in flight. */
  activeNodeList?: ActiveNode[];
  /** Bytes done and total over all nodes in flight. */
  bytesDone?: number;
  bytesTotal?: number;
  record?: NodeRecord;
  startTime?: string;
  completionTime?: string;
  conditions?: WarmupCondition[];
  observedGeneration?: number;
  /** The stoker.io/rerun annotation this status was computed for (long values as their hash). */
  observedRerun?: string;
  /** workHash() of the spec the nodes in `record` were warmed for. */
  recordHash?: string;
  /** keepWarm: the label key on each node that is warm for this Warmup (controller/node-label.ts). */
  nodeLabel?: string;
  /** The schedule tick this status was computed for (the latest one acted on). */
  lastScheduleTime?: string;
  /** spec.pin: what the nodes' runtimes report. */
  pin?: PinStatus;
  /** Paths: resident bytes over the warmed nodes. */
  residency?: ResidencyStatus;
  /** Each image of the run with the digest it resolved to (controller/dispatch.ts). */
  images?: ResolvedImage[];
  /** Each persistentVolumeClaim of spec.paths: its volume, and the target nodes that read it or not. */
  volumes?: VolumeStatus[];
  /** spec.workloadRef: the workload the work was derived from, "Deployment/vllm". */
  source?: string;
  /** spec.workloadRef: how many nodes the workload's pods may not land on (not warmed). */
  skippedNodes?: number;
  /** The first MAX_NODE_LIST of them by name, with why. */
  skippedNodeList?: SkippedNode[];
  /** keepWarm or workloadRef: "warm/target" nodes, as `kubectl get warmups` shows it. */
  warm?: string;
}

/** A node a workloadRef Warmup does not warm: excluded (stoker.io/exclude), selector, affinity or taint. */
export interface SkippedNode {
  name: string;
  reason: 'excluded' | 'selector' | 'affinity' | 'taint';
  message: string;
}

/** Where a claim's volume is read (controller/volumes/claims.ts). */
export interface VolumeStatus {
  claimName: string;
  volumeName: string;
  /** The PersistentVolume's type: hostPath, local, nfs, csi, ... */
  type: string;
  /** Target nodes that read it. */
  nodes: number;
  /** Target nodes that do not (not a failure: they are warmed for the rest), and why. */
  notReadNodes?: number;
  reason?: 'VolumeNotMounted' | 'VolumeNotOnNode';
  /** The first MAX_NODE_LIST of those nodes. */
  notReadNodeList?: string[];
}

/** An image of the run; `digest` ("sha256:...") once known: every node gets that manifest. */
export interface ResolvedImage {
  image: string;
  digest?: string;
}

export interface Warmup {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
  spec: WarmupSpec;
  status?: WarmupStatus;
}

export const MAX_FAILED_NODE_LIST = 20;
export const MAX_ACTIVE_NODE_LIST = 50;
/** Bounded node lists in status.pin and status.residency. */
export const MAX_NODE_LIST = 20;

export const DEFAULT_PARALLELISM = 10;
export const DEFAULT_BACKOFF_LIMIT = 3;
/** Per node attempt, when the Warmup does not say. */
export const DEFAULT_TIMEOUT_SECONDS = 3600;
export const DEFAULT_RECHECK_SECONDS = 300;
export const MIN_RECHECK_SECONDS = 5;
export const DEFAULT_MIN_RESIDENT_PERCENT = 90;

/** The spec with every default applied and every list present. */
export interface ResolvedSpec {
  images: { image: string; pullPolicy: PullPolicyName }[];
  imagePullSecrets: string[];
  /** Host paths. */
  paths: { path: string; include: string[]; exclude: string[] }[];
  /** spec.paths entries that name a PersistentVolumeClaim instead of a host path. */
  claims: { claimName: string; subPath?: string; include: string[]; exclude: string[] }[];
  workloadRef: WorkloadRef | undefined;
  nodes: { names?: string[]; selector?: V1LabelSelector } | undefined;
  parallelism: number;
  backoffLimit: number;
  timeoutSeconds: number;
  activeDeadlineSeconds: number | undefined;
  ttlSecondsAfterFinished: number | undefined;
  suspend: boolean;
  keepWarm: boolean;
  recheckSeconds: number;
  minResidentPercent: number;
  schedule: string | undefined;
  timeZone: string;
  onDelete: OnDelete;
  pin: boolean;
}

export function resolveSpec(spec: WarmupSpec | undefined): ResolvedSpec {
  const s = spec ?? {};
  const p = s.policy ?? {};
  return {
    images: (s.images ?? []).map((i) => ({ image: i.image, pullPolicy: i.pullPolicy ?? 'IfNotPresent' })),
    imagePullSecrets: (s.imagePullSecrets ?? []).map((x) => x.name),
    paths: (s.paths ?? []).flatMap((x) => (x.path !== undefined ? [{ path: x.path, include: x.include ?? [], exclude: x.exclude ?? [] }] : [])),
    claims: (s.paths ?? []).flatMap((x) =>
      x.path === undefined && x.persistentVolumeClaim
        ? [{ claimName: x.persistentVolumeClaim.claimName, ...(x.persistentVolumeClaim.subPath !== undefined ? { subPath: x.persistentVolumeClaim.subPath } : {}), include: x.include ?? [], exclude: x.exclude ?? [] }]
        : [],
    ),
    workloadRef: s.workloadRef,
    nodes: s.nodes,
    parallelism: positiveOr(p.parallelism, DEFAULT_PARALLELISM),
    backoffLimit: p.backoffLimit !== undefined && p.backoffLimit >= 0 ? Math.floor(p.backoffLimit) : DEFAULT_BACKOFF_LIMIT,
    timeoutSeconds: positiveOr(p.timeoutSeconds, DEFAULT_TIMEOUT_SECONDS),
    activeDeadlineSeconds: p.activeDeadlineSeconds !== undefined && p.activeDeadlineSeconds > 0 ? p.activeDeadlineSeconds : undefined,
    ttlSecondsAfterFinished: p.ttlSecondsAfterFinished !== undefined && p.ttlSecondsAfterFinished >= 0 ? p.ttlSecondsAfterFinished : undefined,
    suspend: s.suspend === true,
    keepWarm: s.keepWarm === true,
    recheckSeconds: Math.max(MIN_RECHECK_SECONDS, positiveOr(p.recheckSeconds, DEFAULT_RECHECK_SECONDS)),
    minResidentPercent: Math.min(100, positiveOr(p.minResidentPercent, DEFAULT_MIN_RESIDENT_PERCENT)),
    schedule: s.schedule?.trim() ? s.schedule.trim() : undefined,
    timeZone: s.timeZone?.trim() ? s.timeZone.trim() : DEFAULT_TIME_ZONE,
    onDelete: s.onDelete === 'Purge' ? 'Purge' : 'Keep',
    pin: s.pin === true,
  };
}

function positiveOr(v: number | undefined, dflt: number): number {
  return v !== undefined && Number.isFinite(v) && v >= 1 ? Math.floor(v) : dflt;
}

/** A problem the schema could not reject; `value` is the offending value, named in the condition. */
export interface SpecProblem {
  reason: 'InvalidImageReference' | 'RegistryDenied' | 'InvalidPath' | 'InvalidSpec';
  value: string;
  message: string;
}

/**
 * Checks what the OpenAPI schema cannot, and the images' registries against the registry policy
 * (the agents' own, so a refused registry fails the Warmup before any dispatch); returns the
 * first problem, or undefined.
 */
export function validateSpec(spec: ResolvedSpec, policy: RegistryPolicy = DEFAULT_REGISTRY_POLICY): SpecProblem | undefined {
  if (spec.images.length === 0 && spec.paths.length === 0 && spec.claims.length === 0 && spec.workloadRef === undefined) {
    return { reason: 'InvalidSpec', value: '', message: 'spec.images, spec.paths and spec.workloadRef are all empty: nothing to warm' };
  }
  if (spec.schedule !== undefined) {
    const why = checkSchedule(spec.schedule, spec.timeZone);
    if (why) return { reason: 'InvalidSpec', value: spec.schedule, message: why };
  }
  if (spec.keepWarm && spec.activeDeadlineSeconds !== undefined) {
    return { reason: 'InvalidSpec', value: String(spec.activeDeadlineSeconds), message: 'spec.keepWarm never finishes, so spec.policy.activeDeadlineSeconds cannot apply: remove one of them' };
  }
  for (const [i, img] of spec.images.entries()) {
    let ref;
    try {
      ref = parseImageReference(img.image);
    } catch (err) {
      if (!(err instanceof InvalidReferenceError)) throw err;
      return { reason: 'InvalidImageReference', value: img.image, message: `spec.images[${i}].image "${img.image}" is not a valid image reference: ${err.reason}` };
    }
    const refusal = refuseRegistry(policy, ref);
    if (refusal) return { reason: 'RegistryDenied', value: img.image, message: `spec.images[${i}].image: ${registryDeniedMessage(img.image, refusal)}` };
  }
  for (const [i, p] of spec.paths.entries()) {
    const why = checkHostPath(p.path);
    if (why) return { reason: 'InvalidPath', value: p.path, message: `spec.paths[${i}].path "${p.path}" ${why}` };
  }
  return undefined;
}

/** Returns why a host path is unacceptable, or undefined: it must be absolute and clean. */
export function checkHostPath(path: string): string | undefined {
  if (path.length === 0) return 'is empty';
  if (path.includes('\0')) return 'contains a NUL byte';
  if (!path.startsWith('/')) return 'is not absolute';
  if (path.split('/').includes('..')) return 'contains ".."';
  const clean = posix.normalize(path);
  const expected = clean.length > 1 && clean.endsWith('/') ? clean.slice(0, -1) : clean;
  if (expected !== path) return `is not clean (expected "${expected}")`;
  return undefined;
}

/** The short token that stands for a node in status.record (8 characters of base64url SHA-256). */
export function nodeToken(node: string): string {
  return createHash('sha256').update(node).digest('base64url').slice(0, 8);
}

/** Reads a record string into a set of tokens. */
export function readRecord(s: string | undefined): Set<string> {
  const out = new Set<string>();
  if (!s) return out;
  for (let i = 0; i + 8 <= s.length; i += 8) out.add(s.slice(i, i + 8));
  return out;
}

/** Writes a set of tokens back into a record string (sorted, so equal sets give equal strings). */
export function writeRecord(tokens: Iterable<string>): string {
  return [...tokens].sort().join('');
}

/** The Warmup's key in the work queue. */
export function warmupKey(w: { metadata: V1ObjectMeta }): string {
  return `${w.metadata.namespace ?? 'default'}/${w.metadata.name ?? ''}`;
}

export function isFinished(status: WarmupStatus | undefined): boolean {
  return status?.phase === 'Succeeded' || status?.phase === 'Failed';
}

/** A new value of this annotation runs a finished Warmup again (keepWarm: checks every node now). */
export const RERUN_ANNOTATION = 'stoker.io/rerun';
const MAX_RERUN_VALUE = 128;

/** The Warmup's stoker.io/rerun value as status keeps it: '' when absent, a hash when long. */
export function rerunOf(w: { metadata: V1ObjectMeta }): string {
  const v = w.metadata.annotations?.[RERUN_ANNOTATION] ?? '';
  return v.length <= MAX_RERUN_VALUE ? v : `sha256:${createHash('sha256').update(v).digest('hex')}`;
}

/**
 * Whether the Warmup's status was computed for the spec and the run it has now: the same
 * generation and, but for keepWarm (a rerun or a tick only re-checks or re-warms it in the same
 * run), the same stoker.io/rerun value and schedule tick (`tick`: the latest due, '' for none).
 * A finished status that is not current is of an earlier run: the Warmup runs again.
 */
export function statusIsCurrent(w: Warmup, tick = ''): boolean {
  const s = w.status;
  if (!s) return true;
  if (s.observedGeneration !== undefined && s.observedGeneration !== (w.metadata.generation ?? 0)) return false;
  return w.spec.keepWarm === true || sameRun(s, rerunOf(w), tick);
}

function sameRun(s: WarmupStatus, rerun: string, tick: string): boolean {
  return (s.observedRerun ?? '') === rerun && (s.lastScheduleTime ?? '') === tick;
}

/** A short hash of what each node gets (images, paths, pull secrets): equal hash, the same work. */
export function workHash(spec: ResolvedSpec): string {
  const parts: unknown[] = [spec.images, spec.paths, spec.imagePullSecrets];
  // Only when present, so the hash of a Warmup written before these fields stays the same.
  if (spec.claims.length > 0) parts.push(spec.claims);
  if (spec.workloadRef) parts.push(spec.workloadRef);
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 16);
}

/**
 * Whether the nodes status.record lists as done were done for the work the spec asks now (a
 * suspend, a policy or node-selection edit keep them; other images or paths, or a rerun, do not).
 * A status from before recordHash counts only for its own generation. `spec`: the spec the run does
 * (a workloadRef Warmup's, with what its workload derives).
 */
export function recordApplies(w: Warmup, tick = '', spec: ResolvedSpec = resolveSpec(w.spec)): boolean {
  const s = w.status;
  if (!s) return true;
  if (!w.spec.keepWarm && !sameRun(s, rerunOf(w), tick)) return false;
  if (s.recordHash !== undefined) return s.recordHash === workHash(spec);
  return s.observedGeneration === undefined || s.observedGeneration === (w.metadata.generation ?? 0);
}

/**
 * What is left of a status when a new run starts (a spec edit, a rerun): nothing about nodes;
 * only the conditions that do not describe the last run's outcome.
 */
export function freshStatus(s: WarmupStatus | undefined): WarmupStatus {
  const out: WarmupStatus = {};
  const kept = (s?.conditions ?? []).filter((c) => c.type === 'Suspended' || c.type === 'Warm');
  if (kept.length > 0) out.conditions = kept;
  return out;
}

/**
 * The tag a run's task ids carry so that a rerun's or a schedule tick's tasks never join the last
 * run's (see taskId); '' for a Warmup never run again.
 */
export function runTag(rerun: string, tick = ''): string {
  const key = tick === '' ? rerun : `${rerun}@${tick}`;
  return key === '' ? '' : `.r${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;
}
