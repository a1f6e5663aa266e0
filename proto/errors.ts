// The catalogue of Stoker's error codes (the ErrorCode enum in proto/stoker/v1/agent.proto), as data:
// each code with the one-line meaning its proto comment gives. proto/errors.test.ts keeps this
// catalogue, the proto and the README's "Error codes" table in step.
import type { ErrorCode__Output } from './gen/stoker/v1/ErrorCode.js';

/** gRPC trailing metadata key in which the agent names the ErrorCode of a refused or failed call. */
export const ERROR_CODE_TRAILER = 'stoker-error-code';

/** Every ErrorCode except the proto's zero value. */
export type StokerErrorCode = Exclude<ErrorCode__Output, 'ERROR_CODE_UNSPECIFIED'>;

export const ERROR_CODES: Readonly<Record<StokerErrorCode, string>> = Object.freeze({
  INVALID_REFERENCE: 'The image reference does not follow the distribution reference grammar.',
  REGISTRY_UNREACHABLE: 'The registry could not be reached (DNS, connection refused, TLS).',
  UNAUTHORIZED: 'The registry refused the credentials (401 or 403).',
  NOT_FOUND: 'The registry has no such repository or tag.',
  RUNTIME_UNAVAILABLE: 'The container runtime did not answer on its CRI endpoint.',
  PROGRESS_TIMEOUT: 'No new bytes arrived within the progress timeout.',
  TIMED_OUT: 'The task exceeded its deadline.',
  CANCELLED: 'The task was cancelled (caller went away, agent shutting down).',
  PATH_OUTSIDE_ROOT: 'A path is outside every allowed root, or a symlink below it leaves the root.',
  PATH_NOT_FOUND: 'A path does not exist.',
  READ_FAILED: 'A file could not be read (vanished, changed size, permission).',
  OVER_BUDGET: 'The files to warm exceed the memory budget and refusal was asked for.',
  INVALID_REQUEST: 'The request is malformed (missing task id, empty task, bad glob).',
  WRONG_NODE: 'The request names another node.',
  RUNTIME_ERROR: 'The runtime failed in a way not listed above.',
  INTERNAL: 'An error not listed above.',
  NO_SPACE: "The node's image filesystem has too little free space for the image.",
  REGISTRY_ERROR: 'The registry answered with an error of its own (HTTP 5xx or another unexpected status).',
  REGISTRY_DENIED: "The registry policy refuses the image's registry (a built-in rule, or an operator's pattern).",
});

/** The one-line meaning of a code ("" for the unspecified zero value). */
export function describeErrorCode(code: ErrorCode__Output): string {
  return code === 'ERROR_CODE_UNSPECIFIED' ? '' : ERROR_CODES[code];
}
