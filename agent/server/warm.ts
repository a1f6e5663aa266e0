// Runs one warm task: images through the image engine, paths through the file engine, side by
// side; turns every outcome (including an engine that throws, a runtime that is down, and
// cancellation) into per-item results and one WarmResult. An image that is malformed or whose
// registry the registry policy refuses fails before any call to the runtime. Failure messages
// are scrubbed of the request's credentials, and of any a credential plugin gave, before anyone
// sees them.
import { performance } from 'node:perf_hooks';
import type {
  FileProgress,
  ImageProgress,
  ImageResult,
  PathResult,
  WarmEvent,
  WarmResult,
} from '../../proto/agent.js';
import { ERROR_CODES, type StokerErrorCode } from '../../proto/errors.js';
import type { PathTask__Output } from '../../proto/gen/stoker/v1/PathTask.js';
import type { RegistryCredential__Output } from '../../proto/gen/stoker/v1/RegistryCredential.js';
import type { Logger } from '../../proto/common/log.js';
import type { RegistryPolicy } from '../../proto/common/registry-policy.js';
import { failedImageResult, refusedImage } from '../warm/images.js';
import { failedPathResult } from '../warm/files.js';
import type { AgentMetrics } from '../metrics.js';
import { runtimeReason, type RuntimeProbe } from './runtime.js';
import { TaskCancelledError } from './tasks.js';
import { credentialSecrets, scrub, type ValidImageTask, type ValidWarmRequest } from './validate.js';

export interface WarmImagesInput {
  images: ValidImageTask[];
  credentials: RegistryCredential__Output[];
  registryPolicy: RegistryPolicy;
  concurrency: number;
  progressTimeoutMs: number;
  signal: AbortSignal;
  onProgress: (progress: ImageProgress) => void;
  /** Ask the runtime whether each image is present (PRESENT or MISSING); pull nothing. */
  checkOnly?: boolean;
  /** Set containerd's pin label on each image once present. */
  pin?: boolean;
}
/** The image engine, bound to the agent's runtime. */
export type WarmImagesFn = (input: WarmImagesInput) => Promise<ImageResult[]>;

export interface WarmFilesInput {
  paths: PathTask__Output[];
  allowedRoots: readonly string[];
  signal: AbortSignal;
  onProgress: (progress: FileProgress) => void;
  /** Measure each path's residency against this percentage (PRESENT or MISSING); read nothing. */
  checkOnly?: { minResidentPercent: number };
}
export type WarmFilesFn = (input: WarmFilesInput) => Promise<PathResult[]>;

export interface WarmContext {
  readonly nodeName: string;
  readonly allowedRoots: readonly string[];
  readonly pullConcurrency: number;
  readonly defaultProgressTimeoutMs: number;
  readonly registryPolicy: RegistryPolicy;
  /** Secrets the agent learnt other than from the request (credential plugins' passwords), for scrubbing. */
  readonly knownSecrets?: () => readonly string[];
  readonly probe: RuntimeProbe;
  readonly endpoint: string;
  /** Absent when this build has no image warming. */
  readonly warmImages: WarmImagesFn | undefined;
  /** Absent when this build has no file warming. */
  readonly warmFiles: WarmFilesFn | undefined;
  readonly metrics: AgentMetrics;
  readonly log: Logger;
}

function cancelledMessage(nodeName: string, signal: AbortSignal): string {
  const why = signal.reason instanceof TaskCancelledError ? 'a Cancel call stopped it' : 'the agent is shutting down';
  return `the task was cancelled on node "${nodeName}" (${why})`;
}

/** Runs a validated request; never throws. */
export async function runWarmTask(
  ctx: WarmContext,
  req: ValidWarmRequest,
  signal: AbortSignal,
  emit: (event: WarmEvent) => void,
): Promise<WarmResult> {
  const started = performance.now();
  const secrets = credentialSecrets(req.credentials);
  const clean = (text: string) => scrub(text, [...secrets, ...(ctx.knownSecrets?.() ?? [])]);
  const log = ctx.log.child({ taskId: req.taskId });
  log.info({ images: req.images.length, paths: req.paths.length, credentials: req.credentials.length, checkOnly: req.checkOnly }, 'task started');

  const [images, paths] = await Promise.all([
    runImages(ctx, req, signal, emit, log, clean),
    runPaths(ctx, req, signal, emit, log, clean),
  ]);

  for (const r of images) {
    if (r.failure) r.failure = { code: r.failure.code ?? 'INTERNAL', message: clean(r.failure.message ?? ''), needBytes: r.failure.needBytes ?? 0 };
    ctx.metrics.recordImage(r);
    log.info(
      { image: r.image, state: r.state, seconds: r.seconds, sizeBytes: r.sizeBytes, code: r.failure?.code, reason: r.failure?.message },
      'image finished',
    );
  }
  for (const r of paths) {
    if (r.failure) r.failure = { code: r.failure.code ?? 'INTERNAL', message: clean(r.failure.message ?? ''), needBytes: 0 };
    r.issues = (r.issues ?? []).map((i) => ({ ...i, message: clean(i.message ?? '') }));
    ctx.metrics.recordPath(r);
    log.info({ path: r.path, state: r.state, files: r.files, bytes: r.bytes, seconds: r.seconds, code: r.failure?.code }, 'path finished');
  }

  // A check succeeds when everything is still warm; a MISSING item is its answer, not a failure.
  const succeeded = req.checkOnly
    ? [...images, ...paths].every((r) => r.state === 'PRESENT')
    : images.every((r) => r.state === 'DONE' || r.state === 'PRESENT') && paths.every((r) => r.state === 'DONE');
  const seconds = (performance.now() - started) / 1000;
  ctx.metrics.recordTask(succeeded);
  log.info({ succeeded, seconds, cancelled: signal.aborted }, 'task finished');
  return { taskId: req.taskId, succeeded, images, paths, seconds, failure: null };
}

/** Exactly one result per requested key, in request order; a key the engine skipped gets `missing(key)`. */
function inRequestOrder<R>(keys: readonly string[], results: readonly R[], keyOf: (r: R) => string | null | undefined, missing: (key: string) => R): R[] {
  const byKey = new Map(results.map((r) => [keyOf(r) ?? '', r]));
  return keys.map((k) => byKey.get(k) ?? missing(k));
}

async function runImages(
  ctx: WarmContext,
  req: ValidWarmRequest,
  signal: AbortSignal,
  emit: (event: WarmEvent) => void,
  log: Logger,
  clean: (text: string) => string,
): Promise<ImageResult[]> {
  if (req.images.length === 0) return [];
  // Refused images fail here, before the runtime is even asked whether it is up.
  const refused = new Map<string, ImageResult>();
  for (const i of req.images) {
    const why = refusedImage(i.image, ctx.registryPolicy);
    if (why) refused.set(i.image, failedImageResult(i.image, why.code, why.message));
  }
  const toPull = req.images.filter((i) => !refused.has(i.image));
  const pulled = await pullImages(ctx, { ...req, images: toPull }, signal, emit, log, clean);
  return inRequestOrder(req.images.map((i) => i.image), [...refused.values(), ...pulled], (r) => r.image, (image) =>
    failedImageResult(image, 'INTERNAL', `the image engine returned no result for ${JSON.stringify(image)}`),
  );
}

async function pullImages(
  ctx: WarmContext,
  req: ValidWarmRequest,
  signal: AbortSignal,
  emit: (event: WarmEvent) => void,
  log: Logger,
  clean: (text: string) => string,
): Promise<ImageResult[]> {
  if (req.images.length === 0) return [];
  if (!ctx.warmImages) {
    return req.images.map((i) => failedImageResult(i.image, 'INTERNAL', `image warming is not available in this agent; ${JSON.stringify(i.image)} was not pulled`));
  }
  const state = await ctx.probe.check();
  if (signal.aborted) return req.images.map((i) => failedImageResult(i.image, 'CANCELLED', cancelledMessage(ctx.nodeName, signal)));
  if (!state.ready) {
    return req.images.map((i) => failedImageResult(i.image, 'RUNTIME_UNAVAILABLE', state.reason));
  }
  try {
    const results = await ctx.warmImages({
      images: [...req.images],
      credentials: [...req.credentials],
      registryPolicy: ctx.registryPolicy,
      concurrency: ctx.pullConcurrency,
      progressTimeoutMs: req.progressTimeoutMs || ctx.defaultProgressTimeoutMs,
      signal,
      onProgress: (image) => emit({ image }),
      ...(req.checkOnly ? { checkOnly: true } : {}),
      ...(req.pin && !req.checkOnly ? { pin: true } : {}),
    });
    return inRequestOrder(req.images.map((i) => i.image), results, (r) => r.image, (image) =>
      failedImageResult(image, 'INTERNAL', `the image engine returned no result for ${JSON.stringify(image)}`),
    );
  } catch (err) {
    if (signal.aborted) return req.images.map((i) => failedImageResult(i.image, 'CANCELLED', cancelledMessage(ctx.nodeName, signal)));
    log.error({ err: clean(runtimeReason(err)) }, 'image engine failed');
    return req.images.map((i) => failedImageResult(i.image, 'INTERNAL', `pulling ${JSON.stringify(i.image)} failed inside the agent (see its log)`));
  }
}

async function runPaths(
  ctx: WarmContext,
  req: ValidWarmRequest,
  signal: AbortSignal,
  emit: (event: WarmEvent) => void,
  log: Logger,
  clean: (text: string) => string,
): Promise<PathResult[]> {
  if (req.paths.length === 0) return [];
  if (ctx.allowedRoots.length === 0) {
    return req.paths.map((p) =>
      failedPathResult(p.path, 'PATH_OUTSIDE_ROOT', `${JSON.stringify(p.path)} is outside every allowed root: the agent on node "${ctx.nodeName}" has no --allowed-root`),
    );
  }
  if (!ctx.warmFiles) {
    return req.paths.map((p) => failedPathResult(p.path, 'INTERNAL', `file warming is not available in this agent; ${JSON.stringify(p.path)} was not read`));
  }
  try {
    const results = await ctx.warmFiles({
      paths: [...req.paths],
      allowedRoots: ctx.allowedRoots,
      signal,
      onProgress: (file) => emit({ file }),
      ...(req.checkOnly ? { checkOnly: { minResidentPercent: req.minResidentPercent } } : {}),
    });
    return inRequestOrder(req.paths.map((p) => p.path), results, (r) => r.path, (path) =>
      failedPathResult(path, 'INTERNAL', `the file engine returned no result for ${JSON.stringify(path)}`),
    );
  } catch (err) {
    if (signal.aborted) return req.paths.map((p) => failedPathResult(p.path, 'CANCELLED', cancelledMessage(ctx.nodeName, signal)));
    const code = (err as { code?: unknown }).code;
    if (err instanceof Error && typeof code === 'string' && code in ERROR_CODES) {
      return req.paths.map((p) => failedPathResult(p.path, code as StokerErrorCode, clean(err.message)));
    }
    log.error({ err: clean(runtimeReason(err)) }, 'file engine failed');
    return req.paths.map((p) => failedPathResult(p.path, 'INTERNAL', `reading ${JSON.stringify(p.path)} failed inside the agent (see its log)`));
  }
}
