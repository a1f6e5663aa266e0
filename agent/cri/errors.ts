// The one place where runtime and gRPC failures become Stoker's error codes, each with a
// sentence that names the image and the reason in words. Raw runtime messages (which carry
// registry URLs and internals) are kept on the error for debug logs only, never in the message.
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ErrorCode__Output } from '../../proto/agent.js';
import { formatBytes } from '../../proto/common/bytes.js';

export type ImageErrorCode = ErrorCode__Output;

/** An error with a Stoker error code and a human sentence. */
export class WarmError extends Error {
  /** The runtime's own words, for debug logs; never shown to users or stored in status. */
  readonly detail: string | undefined;
  /** NO_SPACE: the free bytes the image needs at least, where known. */
  readonly needBytes: number | undefined;
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    detail?: string,
    needBytes?: number,
  ) {
    super(message);
    this.name = 'WarmError';
    this.detail = detail;
    this.needBytes = needBytes;
  }
}

interface GrpcLikeError {
  code: GrpcStatus;
  details?: string;
  message?: string;
}

export function isGrpcError(err: unknown): err is GrpcLikeError {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number';
}

/** Removes anything that looks like a credential from a runtime message before it is logged. */
export function scrubDetail(text: string): string {
  return text
    .replace(/(\/\/)[^/@\s:]+:[^/@\s]+@/g, '$1[REDACTED]@')
    .replace(/((?:authorization|bearer|basic|token|password)["'=:\s]+(?:(?:basic|bearer)\s+)?)[^\s"',]+/gi, '$1[REDACTED]');
}

export interface FailureContext {
  /** The image as the user wrote it. */
  image: string;
  /** Registry host of the image ("docker.io", "127.0.0.1:5000"). */
  registry: string;
  /** The CRI endpoint, as the user should read it. */
  endpoint: string;
  /** Whether credentials were sent with the pull. */
  withCredentials: boolean;
  /** What is known of the image filesystem, for a NO_SPACE message. */
  space?: SpaceFacts | undefined;
}

/** The image filesystem and the image's size, where known, for the message of a full disk. */
export interface SpaceFacts {
  /** The mount point CRI ImageFsInfo names. */
  mountpoint?: string | undefined;
  freeBytes?: number | undefined;
  /** Bytes the image needs at least (its compressed blobs the node does not hold yet). */
  needBytes?: number | undefined;
}

const REGISTRY_UNREACHABLE_PATTERNS: readonly [RegExp, string][] = [
  [/connection refused/i, 'connection refused'],
  [/no such host|server misbehaving|name resolution|lookup .* on /i, 'host name not found'],
  [/network is unreachable|no route to host/i, 'network unreachable'],
  [/server gave HTTP response to HTTPS client/i, 'it speaks plain HTTP where HTTPS was expected'],
  [/x509|certificate|tls:|handshake/i, 'TLS certificate not trusted or handshake failed'],
  [/connection reset|broken pipe|unexpected EOF|\bEOF\b/i, 'connection lost'],
  [/\btimeout\b|timed out/i, 'connection timed out'],
  [/dial tcp/i, 'connection failed'],
];

const UNAUTHORIZED = /\b40[13]\b|unauthori[sz]ed|forbidden|failed to authorize|authorization failed|access denied|denied/i;
const NOT_FOUND = /not found|manifest unknown|name unknown|blob unknown|\b404\b/i;
const DEADLINE = /context deadline exceeded|deadline exceeded/i;
/**
 * An HTTP status the registry answered with, and its reason phrase, as containerd quotes them
 * ("... failed with status code [manifests v1]: 500 Internal Server Error", "unexpected status
 * code <url>: 502 Bad Gateway"). 401, 403 and 404 have codes of their own.
 */
const HTTP_STATUS = /\b([1-5]\d\d) ([A-Z][A-Za-z-]*(?: [A-Z][A-Za-z-]*)*)/;
const CANCELED = /context canceled/i;
// ENOSPC as Go prints it; EDQUOT (a quota on the runtime's root) fails the same way.
const NO_SPACE = /no space left on device|\bENOSPC\b|disk quota exceeded|\bEDQUOT\b/i;

function unauthorizedMessage(ctx: FailureContext): string {
  return ctx.withCredentials
    ? `cannot pull ${ctx.image}: registry ${ctx.registry} refused the credentials (401/403)`
    : `cannot pull ${ctx.image}: registry ${ctx.registry} requires credentials and none were given (401/403)`;
}

/** Translates the words of a runtime's pull failure. Undefined when nothing is recognised. */
function fromRuntimeText(raw: string, ctx: FailureContext): WarmError | undefined {
  const detail = scrubDetail(raw);
  // Quoted strings, references and URLs can hold any word ("…/eof:v1"); only the runtime's own words count.
  const text = raw.replace(/"[^"]*"/g, ' ').replace(/\S*\/\S*/g, ' ');
  // First: a full disk breaks the download or the unpacking midway, whatever else the words say.
  if (NO_SPACE.test(text)) return noSpaceDuringPull(ctx, detail);
  if (DEADLINE.test(text)) return new WarmError('TIMED_OUT', `pulling ${ctx.image} timed out in the runtime`, detail);
  const answered = HTTP_STATUS.exec(text);
  if (answered && !['401', '403', '404'].includes(answered[1] ?? '')) {
    return new WarmError('REGISTRY_ERROR', `cannot pull ${ctx.image}: registry ${ctx.registry} answered HTTP ${answered[1]} (${answered[2]})`, detail);
  }
  for (const [pattern, words] of REGISTRY_UNREACHABLE_PATTERNS) {
    if (pattern.test(text) && !/\b40[134]\b/.test(text)) {
      return new WarmError('REGISTRY_UNREACHABLE', `cannot pull ${ctx.image}: registry ${ctx.registry} is unreachable (${words})`, detail);
    }
  }
  if (UNAUTHORIZED.test(text)) return new WarmError('UNAUTHORIZED', unauthorizedMessage(ctx), detail);
  if (NOT_FOUND.test(text)) return new WarmError('NOT_FOUND', `cannot pull ${ctx.image}: not found in registry ${ctx.registry}`, detail);
  if (CANCELED.test(text)) return new WarmError('CANCELLED', `pulling ${ctx.image} was cancelled`, detail);
  return undefined;
}

/** Maps anything a pull can throw to a WarmError that names the image and the reason. */
export function translatePullError(err: unknown, ctx: FailureContext): WarmError {
  if (err instanceof WarmError) return err;
  if (!isGrpcError(err)) {
    const text = err instanceof Error ? err.message : String(err);
    return new WarmError('RUNTIME_ERROR', `cannot pull ${ctx.image}: unexpected error in Stoker`, scrubDetail(text));
  }
  const text = err.details ?? err.message ?? '';
  const detail = scrubDetail(text);
  switch (err.code) {
    case GrpcStatus.CANCELLED:
      return new WarmError('CANCELLED', `pulling ${ctx.image} was cancelled`, detail);
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new WarmError('TIMED_OUT', `pulling ${ctx.image} timed out`, detail);
    case GrpcStatus.UNAVAILABLE:
      // The runtime itself went away, unless its message is about the registry.
      if (/failed to (pull|resolve|fetch|copy|do request)|pulling from host/i.test(text)) {
        return fromRuntimeText(text, ctx) ?? runtimeError(ctx, detail);
      }
      return new WarmError(
        'RUNTIME_UNAVAILABLE',
        `cannot pull ${ctx.image}: the container runtime is unreachable at ${ctx.endpoint}`,
        detail,
      );
    case GrpcStatus.UNIMPLEMENTED:
      return new WarmError(
        'RUNTIME_ERROR',
        `cannot pull ${ctx.image}: the runtime at ${ctx.endpoint} does not serve the CRI v1 image API`,
        detail,
      );
    case GrpcStatus.UNAUTHENTICATED:
    case GrpcStatus.PERMISSION_DENIED:
      return new WarmError('UNAUTHORIZED', unauthorizedMessage(ctx), detail);
    case GrpcStatus.NOT_FOUND:
      return fromRuntimeText(text, ctx) ?? new WarmError('NOT_FOUND', `cannot pull ${ctx.image}: not found in registry ${ctx.registry}`, detail);
    default:
      return fromRuntimeText(text, ctx) ?? runtimeError(ctx, detail);
  }
}

/** The runtime ran out of space while pulling: names the image filesystem and its free bytes, where known. */
function noSpaceDuringPull(ctx: FailureContext, detail: string): WarmError {
  const { mountpoint, freeBytes, needBytes } = ctx.space ?? {};
  const need = needBytes !== undefined ? `; the image needs at least ${formatBytes(needBytes)}` : '';
  if (mountpoint === undefined) {
    return new WarmError('NO_SPACE', `cannot pull ${ctx.image}: the container runtime ran out of space on its image filesystem${need}`, detail, needBytes);
  }
  const free = freeBytes !== undefined ? `${formatBytes(freeBytes)} free after the failed pull` : 'free space unknown';
  return new WarmError('NO_SPACE', `cannot pull ${ctx.image}: the image filesystem ${mountpoint} ran out of space (${free}${need})`, detail, needBytes);
}

/** Stoker's own check: the image's blobs alone need more than the image filesystem has free. */
export function imageTooLargeError(image: string, space: { mountpoint: string; freeBytes: number; needBytes: number }): WarmError {
  return new WarmError(
    'NO_SPACE',
    `cannot pull ${image}: it needs at least ${formatBytes(space.needBytes)} but the image filesystem ${space.mountpoint} has ${formatBytes(space.freeBytes)} free`,
    undefined,
    space.needBytes,
  );
}

function runtimeError(ctx: FailureContext, detail: string): WarmError {
  return new WarmError('RUNTIME_ERROR', `cannot pull ${ctx.image}: the container runtime failed the pull (see its log)`, detail);
}

/** Maps a failure of a call that is not a pull (Version, ImageStatus, RemoveImage). */
export function translateCallError(err: unknown, what: string, endpoint: string): WarmError {
  if (err instanceof WarmError) return err;
  if (!isGrpcError(err)) {
    return new WarmError('RUNTIME_ERROR', `${what} failed: unexpected error`, err instanceof Error ? err.message : String(err));
  }
  const detail = scrubDetail(err.details ?? err.message ?? '');
  switch (err.code) {
    case GrpcStatus.UNAVAILABLE:
      return new WarmError('RUNTIME_UNAVAILABLE', `${what} failed: the container runtime is unreachable at ${endpoint}`, detail);
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new WarmError('TIMED_OUT', `${what} failed: the container runtime at ${endpoint} did not answer in time`, detail);
    case GrpcStatus.CANCELLED:
      return new WarmError('CANCELLED', `${what} was cancelled`, detail);
    case GrpcStatus.UNIMPLEMENTED:
      return new WarmError('RUNTIME_ERROR', `${what} failed: the runtime at ${endpoint} does not serve the CRI v1 API`, detail);
    default:
      return new WarmError('RUNTIME_ERROR', `${what} failed in the container runtime at ${endpoint}`, detail);
  }
}
