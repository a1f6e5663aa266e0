// The catalogue of reasons the controller writes, as data, each with its one-line meaning:
//   - CONDITION_REASONS: on a Warmup's conditions (why it completed, failed, or is suspended);
//   - NODE_REASONS: on each entry of status.failedNodeList (why that node failed), repeated in the
//     NodeFailed Event; REASON_BY_CODE gives the one for each agent ErrorCode (proto/errors.ts);
//   - EVENT_REASONS: on the Events recorded about a Warmup;
//   - VOLUME_REASONS: on each entry of status.volumes (why some nodes do not read a claim's volume).
// Reasons are API: users match on them (kubectl wait, alerts), so one never changes spelling or
// meaning. controller/api/reasons.test.ts keeps this catalogue and README.md's "Reasons" tables in
// step; a reason written anywhere in the controller is typed as one of these.
import type { ErrorCode__Output } from '../../proto/gen/stoker/v1/ErrorCode.js';

export const CONDITION_REASONS = Object.freeze({
  AllNodesWarmed: 'Every target node warmed (condition Complete).',
  NodesFailed: 'Some nodes failed after their retries; status.failedNodeList names them.',
  NoMatchingNodes: 'The names or selector match no Node, or no node had a live agent within the agent wait (60 s).',
  DeadlineExceeded: 'The Warmup ran longer than activeDeadlineSeconds.',
  InvalidSpec: 'spec.images, spec.paths and spec.workloadRef are all empty: nothing to warm.',
  InvalidImageReference: 'An image reference does not follow the distribution reference grammar; the message names it.',
  InvalidPath: 'A path is empty, relative or not clean; the message names it.',
  PathOutsideRoot: 'An agent found a path outside every root it may read; the message names it.',
  InvalidRequest: 'An agent refused the task as malformed (for example a bad glob).',
  RegistryDenied: "The registry policy refuses an image's registry; the message names the image and the rule.",
  PullSecretNotFound: 'A Secret named in imagePullSecrets does not exist.',
  InvalidPullSecret: 'A pull secret is not a readable kubernetes.io/dockerconfigjson Secret.',
  NamespaceNotAllowed: "The Warmup's namespace is not one the controller serves (--warmup-namespaces); nothing was read or dispatched.",
  Suspended: 'spec.suspend is true: no node is being warmed (condition Suspended).',
  Resumed: 'spec.suspend went back to false (condition Suspended turns False).',
  AllNodesWarm: 'keepWarm: every current target node is warm (condition Warm is True); the message counts them.',
  NodesNotWarm: 'keepWarm: some target nodes are being warmed, or failed and wait for their next recheck (condition Warm is False).',
  ClaimNotFound: 'A persistentVolumeClaim named in spec.paths does not exist in the Warmup\'s namespace; the Warmup waits for it (condition ClaimsBound is False); the message names it.',
  ClaimNotBound: 'A persistentVolumeClaim named in spec.paths is not Bound, or its PersistentVolume does not exist; the Warmup waits for it (condition ClaimsBound is False); the message names it.',
  ClaimsBound: 'Every persistentVolumeClaim named in spec.paths is Bound to a PersistentVolume (condition ClaimsBound is True); status.volumes says where each is read.',
  WorkloadDerived: "workloadRef: the workload's images, volumes and nodes were read (condition Derived is True); the message counts them.",
  WorkloadNotFound: 'workloadRef: the workload does not exist (or its API is not served); the Warmup waits for it (condition Derived is False).',
  WorkloadKindNotSupported: 'workloadRef: a kind Stoker cannot read; the message names it and the kinds it reads.',
  VolumeNotInTemplate: 'stoker.io/warm-volumes names a volume no pod template of the workload has; the message names it.',
  VolumeNotWarmable: 'stoker.io/warm-volumes names a volume that is neither hostPath nor persistentVolumeClaim; the message names it.',
});

/** On each entry of status.volumes: why some target nodes do not read a claim's volume (not a failure). */
export const VOLUME_REASONS = Object.freeze({
  VolumeNotMounted: 'A network volume (NFS, CSI, others) is read through the kubelet\'s mount, and no running pod on these nodes mounts the claim; they are warmed for the rest.',
  VolumeNotOnNode: "A local volume's nodeAffinity does not allow these nodes; they are warmed for the rest.",
});

export const NODE_REASONS = Object.freeze({
  // One per agent ErrorCode (REASON_BY_CODE below).
  InvalidImageReference: 'The agent found an image reference that does not follow the distribution grammar.',
  RegistryUnreachable: 'The registry could not be reached from the node (DNS, connection refused, TLS).',
  RegistryUnauthorized: 'The registry refused the credentials (401 or 403).',
  ImageNotFound: 'The registry has no such repository or tag.',
  RuntimeUnavailable: "The node's container runtime did not answer on its CRI endpoint.",
  ProgressTimeout: "No new bytes arrived within the agent's progress timeout.",
  Timeout: 'The attempt did not finish within timeoutSeconds.',
  Cancelled: 'The agent cancelled the task (for example it was shutting down).',
  PathOutsideRoot: 'A path is outside every root the agent may read.',
  PathNotFound: 'A path does not exist on the node.',
  ReadFailed: 'A file could not be read (vanished, changed size, permission).',
  OverBudget: "The files exceed the agent's memory budget.",
  InvalidRequest: 'The agent found the task malformed (for example a bad glob).',
  WrongNode: 'The agent at that endpoint serves another node.',
  RuntimeError: 'The container runtime failed in a way not listed above.',
  AgentInternalError: 'The agent failed in a way not listed above.',
  NoSpace: "The node's image filesystem has too little free space for the image; retried only once it has more.",
  RegistryError: 'The registry answered with an error of its own (HTTP 5xx or another unexpected status).',
  RegistryDenied: "The agent's registry policy refuses the image's registry.",
  WarmFailed: 'The agent reported a failure without naming its code.',
  // The call to the agent (controller/agent-client.ts).
  AgentUnavailable: 'The node had no live agent for the agent wait (60 s), or its agent did not answer.',
  AgentRefused: 'The agent refused the request without naming an error code.',
  AgentError: 'The call to the agent failed otherwise (for example the stream ended without a result).',
  // The controller itself (controller/dispatch.ts).
  NodeDeleted: 'The Node was deleted before it was warmed.',
  InternalError: "The controller could not dispatch the task (its log says why).",
});

export const EVENT_REASONS = Object.freeze({
  Started: 'Dispatch began (Normal); the message counts images, paths and nodes.',
  NodeFailed: 'A node failed after its retries (Warning); the message gives its reason.',
  Completed: 'The Warmup succeeded (Normal).',
  Failed: 'The Warmup failed (Warning); the message says why.',
  BudgetWarning: "A node's agent warned that the paths exceed its memory budget (Warning): the tree is larger than the node's available memory or the agent's cgroup limit, so part of it may not stay resident.",
  Purged: 'A Warmup with onDelete Purge was deleted (Normal; Warning when a node was not reached or an item not released); the message gives the images removed, their bytes and the page cache dropped.',
  DerivationFailed: "A workloadRef Warmup's workload could not be read into work (Warning, on the Warmup and on the workload); the message names the value (an image, a volume, a pull secret, the kind).",
  WarmupCreated: 'The workload is annotated stoker.io/warm=true: its Warmup was created (Normal, on the workload).',
  WarmupDeleted: 'The stoker.io/warm annotation went: the Warmup made for the workload was deleted (Normal, on the workload).',
  Unpinned: 'A Warmup with pin (and onDelete Keep) was deleted (Normal; Warning when a node was not reached or an item not released); the message gives the images whose pin label was removed and those left pinned for another Warmup.',
});

export type ConditionReason = keyof typeof CONDITION_REASONS;
export type NodeReason = keyof typeof NODE_REASONS;
export type EventReason = keyof typeof EVENT_REASONS;
export type VolumeReason = keyof typeof VOLUME_REASONS;

/** A reason that fails a single node and, because every node would fail alike, the whole Warmup. */
export type FatalReason = ConditionReason & NodeReason;

/** Agent ErrorCodes that mean the Warmup itself is wrong: the Warmup fails with the node's reason. */
export const FATAL_REASON_BY_CODE = Object.freeze({
  INVALID_REFERENCE: 'InvalidImageReference',
  PATH_OUTSIDE_ROOT: 'PathOutsideRoot',
  INVALID_REQUEST: 'InvalidRequest',
  REGISTRY_DENIED: 'RegistryDenied',
} as const satisfies Partial<Record<ErrorCode__Output, FatalReason>>);

/** The failed-node reason for each agent ErrorCode. */
export const REASON_BY_CODE: Readonly<Record<ErrorCode__Output, NodeReason>> = Object.freeze({
  ...FATAL_REASON_BY_CODE,
  ERROR_CODE_UNSPECIFIED: 'WarmFailed',
  REGISTRY_UNREACHABLE: 'RegistryUnreachable',
  UNAUTHORIZED: 'RegistryUnauthorized',
  NOT_FOUND: 'ImageNotFound',
  RUNTIME_UNAVAILABLE: 'RuntimeUnavailable',
  PROGRESS_TIMEOUT: 'ProgressTimeout',
  TIMED_OUT: 'Timeout',
  CANCELLED: 'Cancelled',
  PATH_NOT_FOUND: 'PathNotFound',
  READ_FAILED: 'ReadFailed',
  OVER_BUDGET: 'OverBudget',
  WRONG_NODE: 'WrongNode',
  RUNTIME_ERROR: 'RuntimeError',
  INTERNAL: 'AgentInternalError',
  NO_SPACE: 'NoSpace',
  REGISTRY_ERROR: 'RegistryError',
});

/** The Warmup-failing reason of an agent ErrorCode, or undefined when only the node fails. */
export function fatalReason(code: ErrorCode__Output): FatalReason | undefined {
  return Object.hasOwn(FATAL_REASON_BY_CODE, code) ? FATAL_REASON_BY_CODE[code as keyof typeof FATAL_REASON_BY_CODE] : undefined;
}
