// The image warming engine, used by `stoker warm` and by the agent daemon.
//
// API (stable):
//
//   warmImages(runtime: CriRuntime, {
//     images: { image: string, pullPolicy: 'IF_NOT_PRESENT' | 'ALWAYS' | PullPolicy }[],
//     credentials?: RegistryCredential[],   // proto type; matched to each image as a Docker config key
//     concurrency?: number,                 // pulls at once (default 4)
//     progressTimeoutMs?: number,           // cancel a pull after this long without new bytes (default 120 s; 0 = never)
//     pullTimeoutMs?: number,               // cap on one pull where byte progress is unknown (default none)
//     signal?: AbortSignal,
//     onProgress?: (p: ImageProgress__Output) => void,
//     progressIntervalMs?: number,          // how often a running pull reports (default 1 s)
//     logger?: Logger,
//     registryPolicy?: RegistryPolicy,      // registries refused before any call (default: the built-in rules)
//     credentialSource?: (ref, signal) => Promise<RegistryCredential | undefined>,
//                                           // asked right before a pull when `credentials` has none for the image
//     checkOnly?: boolean,                  // ImageStatus only: PRESENT or MISSING, never a pull
//     pin?: boolean,                        // label each present image pinned on containerd (pin.ts)
//   }): Promise<ImageResult__Output[]>       // one per requested image, in request order; failures are
//                                            // results, it rejects only for a concurrency below 1
//
// Every reference is checked against the distribution grammar, and its registry against the
// registry policy (proto/common/registry-policy.ts), before any runtime call: refusedImage()
// gives callers the same check, so they can refuse an image before they even connect.
// `IF_NOT_PRESENT` (and PULL_POLICY_UNSPECIFIED) asks ImageStatus first and reports PRESENT;
// `ALWAYS` pulls again. Results are DONE, PRESENT or FAILED with a Failure {code, message}
// whose message names the image and the reason (agent/cri/errors.ts).
//
// Identical pulls in flight at once in this process (same runtime, same normalised reference,
// same credentials) are merged into one CRI PullImage call; each caller keeps its own signal,
// and the shared call is cancelled only when every caller has gone (a task cancelled by the
// agent's Cancel call leaves; a pull another live task still wants keeps going). A caller that
// comes after the shared call was cancelled starts a new one.
//
// The PullImage call has no deadline. With containerd, a watchdog cancels it when no new
// bytes arrive for `progressTimeoutMs` while a blob is being written, or before the first blob
// appears when the image filesystem (CRI ImageFsInfo) does not grow either (a registry that
// accepts the connection and sends nothing); once every blob is in, unpacking may take as long
// as it takes. Elsewhere only `pullTimeoutMs` bounds a pull.
//
// A pull that cannot fit on the image filesystem fails NO_SPACE: with containerd it is cancelled
// as soon as the image's manifest shows it is larger than the free space (agent/warm/space.ts);
// a runtime that runs out of space midway is reported with the filesystem and its free bytes.
//
// A DONE or PRESENT result carries the image's repo digest ("<name>@sha256:...", from CRI
// ImageStatus repo_digests, for the requested repository): the controller resolves a tag on one
// node and sends that digest to the others (controller/dispatch.ts).
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import type {
  ImageProgress__Output,
  ImageResult__Output,
  ItemState__Output,
  PullPolicy,
  RegistryCredential,
} from '../../proto/agent.js';
import { credentialFor } from '../../proto/common/docker-config.js';
import { InvalidReferenceError, parseImageReference, type ImageReference } from '../../proto/common/image-reference.js';
import type { Logger } from '../../proto/common/log.js';
import { DEFAULT_REGISTRY_POLICY, refuseRegistry, registryDeniedMessage, type RegistryPolicy } from '../../proto/common/registry-policy.js';
import type { CriAuthConfig, CriImage } from '../../proto/cri.js';
import type { PullBytes, PullProgressHandle } from '../cri/content-progress.js';
import { translateCallError, translatePullError, WarmError, type FailureContext } from '../cri/errors.js';
import type { CriRuntime } from '../cri/runtime.js';
import { pinImage } from './pin.js';
import { watchSpace } from './space.js';

export type ImagePullPolicy = 'IF_NOT_PRESENT' | 'ALWAYS';

export interface ImageRequest {
  image: string;
  pullPolicy?: ImagePullPolicy | PullPolicy | undefined;
  /** With an image given by digest: the tag it was resolved from, to name it by as well (containerd). */
  tag?: string | undefined;
}

export interface WarmImagesOptions {
  images: readonly ImageRequest[];
  credentials?: readonly RegistryCredential[] | undefined;
  concurrency?: number | undefined;
  progressTimeoutMs?: number | undefined;
  pullTimeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((p: ImageProgress__Output) => void) | undefined;
  progressIntervalMs?: number | undefined;
  logger?: Logger | undefined;
  registryPolicy?: RegistryPolicy | undefined;
  credentialSource?: CredentialSource | undefined;
  /** Ask ImageStatus only: PRESENT or MISSING, never a pull (a keepWarm recheck). */
  checkOnly?: boolean | undefined;
  /** Once present, set containerd's pin label (agent/warm/pin.ts); each result's pinLabel says how it went. */
  pin?: boolean | undefined;
}

/**
 * Where a credential comes from when the request's `credentials` have none for an image (the
 * agent's credential provider plugins; stoker warm's Docker helpers and plugins). Asked right
 * before a pull, never for an image already present; undefined means pull without credentials.
 */
export type CredentialSource = (ref: ImageReference, signal?: AbortSignal) => Promise<RegistryCredential | undefined>;

export const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_PROGRESS_TIMEOUT_MS = 120_000;
const DEFAULT_PROGRESS_INTERVAL_MS = 1_000;
const WATCHDOG_INTERVAL_MS = 500;
const FS_SAMPLE_INTERVAL_MS = 2_000;

function normalizePolicy(policy: ImageRequest['pullPolicy']): ImagePullPolicy {
  return policy === 'ALWAYS' || policy === 2 ? 'ALWAYS' : 'IF_NOT_PRESENT';
}

/**
 * The CRI AuthConfig for a credential already matched to the image's registry. server_address
 * stays empty: containerd 1.6 parses it as a URL and drops the credential when it is a bare
 * "host:port", and an empty one applies the credential to the image's own registry hosts.
 */
export function toAuthConfig(credential: RegistryCredential | undefined): CriAuthConfig | undefined {
  if (!credential) return undefined;
  const auth: CriAuthConfig = {};
  if (credential.username) auth.username = credential.username;
  if (credential.password) auth.password = credential.password;
  if (credential.auth) auth.auth = credential.auth;
  if (credential.identityToken) auth.identityToken = credential.identityToken;
  if (credential.registryToken) auth.registryToken = credential.registryToken;
  return auth;
}

// ---------------------------------------------------------------------------------------------
// Merged pulls

interface SharedPull {
  readonly result: Promise<string>;
  readonly controller: AbortController;
  readonly progress: PullProgressHandle | undefined;
  subscribers: number;
}

const inFlight = new Map<string, SharedPull>();

/**
 * How many distinct pulls this process has in flight (for metrics and tests); with `endpoint` (a
 * CRI endpoint's target), only those through that runtime.
 */
export function pullsInFlight(endpoint?: string): number {
  if (endpoint === undefined) return inFlight.size;
  let n = 0;
  for (const key of inFlight.keys()) if (key.startsWith(`${endpoint}\n`)) n++;
  return n;
}

function pullKey(runtime: CriRuntime, ref: string, auth: CriAuthConfig | undefined): string {
  const secret = auth ? createHash('sha256').update(JSON.stringify(auth)).digest('hex') : '-';
  return `${runtime.endpoint.target}\n${ref}\n${secret}`;
}

interface PullContext {
  failure: FailureContext;
  reference: ImageReference;
  progressTimeoutMs: number;
  pullTimeoutMs: number;
  logger: Logger | undefined;
}

function startSharedPull(runtime: CriRuntime, ref: string, auth: CriAuthConfig | undefined, ctx: PullContext, key: string): SharedPull {
  const controller = new AbortController();
  const progress = runtime.progress?.begin();
  const startedAt = Date.now();
  let reason: WarmError | undefined;
  // Refuses the pull once the image's size shows it cannot fit (containerd only).
  const settled = new AbortController();
  const space = watchSpace({
    image: ctx.failure.image,
    ref: ctx.reference,
    runtime,
    signal: AbortSignal.any([controller.signal, settled.signal]),
    onTooLarge: (err) => {
      reason ??= err;
      controller.abort();
    },
    // The manifest names the pull's blobs: its byte progress becomes its own image's, also
    // while other pulls run (unless another pull of the same repository could own that manifest).
    onSize: (size) => {
      if (!size.ambiguous) progress?.claim(size.blobs);
    },
    log: ctx.logger?.child({ image: ctx.failure.image }),
  });
  // Before the first blob appears, a pull may be resolving (a silent registry stalls here) or
  // unpacking blobs the content store already had; growth of the image filesystem tells the
  // second apart, so only a pull with neither bytes nor disk growth is cut off.
  let fsUsed: number | undefined;
  let fsGrewAt = 0;
  let fsSampledAt = 0;
  let fsSampling = false;
  const sampleImageFs = (now: number): void => {
    if (fsSampling || now - fsSampledAt < FS_SAMPLE_INTERVAL_MS) return;
    fsSampling = true;
    fsSampledAt = now;
    runtime
      .imageFsInfo(controller.signal)
      .then((filesystems) => {
        const used = filesystems.reduce((sum, fs) => sum + (fs.usedBytes?.value ?? 0), 0);
        if (fsUsed !== undefined && used > fsUsed) fsGrewAt = Date.now();
        fsUsed = used;
      })
      .catch(() => undefined)
      .finally(() => {
        fsSampling = false;
      });
  };
  const watchdog = setInterval(() => {
    const now = Date.now();
    if (progress && ctx.progressTimeoutMs > 0) {
      const snap = progress.snapshot();
      if (!snap.seenAny) sampleImageFs(now);
      const idle = now - Math.max(snap.lastProgressAt, snap.seenAny ? 0 : fsGrewAt);
      if (idle >= ctx.progressTimeoutMs && (snap.active > 0 || !snap.seenAny)) {
        reason = new WarmError(
          'PROGRESS_TIMEOUT',
          `pulling ${ctx.failure.image} timed out: no new bytes from registry ${ctx.failure.registry} for ${Math.round(idle / 1000)} s`,
        );
        controller.abort();
      }
    }
    if (!reason && ctx.pullTimeoutMs > 0 && now - startedAt >= ctx.pullTimeoutMs) {
      reason = new WarmError('TIMED_OUT', `pulling ${ctx.failure.image} timed out after ${Math.round(ctx.pullTimeoutMs / 1000)} s`);
      controller.abort();
    }
  }, WATCHDOG_INTERVAL_MS);
  watchdog.unref();
  const result = runtime.pullImage(ref, auth, controller.signal).then(
    (imageRef) => imageRef,
    async (err: unknown) => {
      if (reason) throw reason;
      const translated = translatePullError(err, ctx.failure);
      if (translated.code !== 'NO_SPACE') throw translated;
      // The runtime ran out of space midway: name the filesystem and what it has free now.
      const fs = await runtime.imageFilesystem();
      const facts = { mountpoint: fs.mountpoint, freeBytes: fs.known ? fs.freeBytes : undefined, needBytes: space.facts().needBytes };
      throw translatePullError(err, { ...ctx.failure, space: facts });
    },
  );
  const shared: SharedPull = { result, controller, progress, subscribers: 0 };
  void result
    .catch(() => undefined)
    .finally(() => {
      clearInterval(watchdog);
      settled.abort();
      progress?.end();
      if (inFlight.get(key) === shared) inFlight.delete(key);
    });
  return shared;
}

interface JoinedPull {
  result: Promise<string>;
  bytes(): PullBytes | undefined;
  leave(): void;
}

function joinPull(
  runtime: CriRuntime,
  ref: string,
  auth: CriAuthConfig | undefined,
  ctx: PullContext,
  signal: AbortSignal | undefined,
): JoinedPull {
  const key = pullKey(runtime, ref, auth);
  let shared = inFlight.get(key);
  // A pull already aborted (its last caller left, or the watchdog cut it off) is still winding
  // down: a new caller gets a pull of its own rather than that pull's cancellation.
  if (!shared || shared.controller.signal.aborted) {
    shared = startSharedPull(runtime, ref, auth, ctx, key);
    inFlight.set(key, shared);
  }
  const pull = shared;
  pull.subscribers++;
  let left = false;
  const leave = (): void => {
    if (left) return;
    left = true;
    signal?.removeEventListener('abort', onAbort);
    pull.subscribers--;
    if (pull.subscribers === 0) pull.controller.abort();
  };
  let rejectCancelled: (err: WarmError) => void = () => undefined;
  const cancelled = new Promise<never>((_, reject) => {
    rejectCancelled = reject;
  });
  const onAbort = (): void => {
    rejectCancelled(new WarmError('CANCELLED', `pulling ${ctx.failure.image} was cancelled`));
    leave();
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const result = Promise.race([pull.result, cancelled]).finally(() => {
    if (!left) {
      left = true;
      signal?.removeEventListener('abort', onAbort);
      pull.subscribers--;
    }
  });
  return { result, bytes: () => pull.progress?.snapshot(), leave };
}

// ---------------------------------------------------------------------------------------------
// The engine

interface Item {
  readonly image: string;
  readonly policy: ImagePullPolicy;
  readonly ref: ImageReference | undefined;
  readonly invalid: WarmError | undefined;
  /** The tag to name the image by as well, normalised. */
  readonly alias: string | undefined;
}

export async function warmImages(runtime: CriRuntime, opts: WarmImagesOptions): Promise<ImageResult__Output[]> {
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a whole number >= 1, got ${concurrency}`);
  const credentials = opts.credentials ?? [];
  const progressTimeoutMs = opts.progressTimeoutMs ?? DEFAULT_PROGRESS_TIMEOUT_MS;
  const pullTimeoutMs = opts.pullTimeoutMs ?? 0;
  const intervalMs = opts.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  const emit = (p: ImageProgress__Output): void => {
    try {
      opts.onProgress?.(p);
    } catch (err) {
      opts.logger?.warn({ err }, 'image progress listener failed');
    }
  };

  // Every reference and its registry are checked before any call to the runtime.
  const registryPolicy = opts.registryPolicy ?? DEFAULT_REGISTRY_POLICY;
  const items: Item[] = opts.images.map(({ image, pullPolicy, tag }) => {
    const checked = checkImage(image, registryPolicy);
    const alias = checked.ref && tag ? checkAlias(checked.ref, tag) : { name: undefined, refused: undefined };
    return { image, policy: normalizePolicy(pullPolicy), ref: checked.ref, invalid: checked.refused ?? alias.refused, alias: alias.name };
  });

  const progressOf = (image: string, state: ItemState__Output, startedAt: number, bytes?: PullBytes): ImageProgress__Output => ({
    image,
    state,
    bytesDone: bytes?.bytesDone ?? 0,
    bytesTotal: bytes?.bytesTotal ?? 0,
    bytesKnown: bytes !== undefined && bytes.exclusive && bytes.seenAny,
    elapsedSeconds: startedAt > 0 ? (Date.now() - startedAt) / 1000 : 0,
  });

  for (const item of items) if (!item.invalid) emit(progressOf(item.image, 'WAITING', 0));

  const limit = pLimit(concurrency);
  return Promise.all(
    items.map(async (item): Promise<ImageResult__Output> => {
      if (item.invalid || !item.ref) {
        const failure = { code: item.invalid?.code ?? 'INVALID_REFERENCE', message: item.invalid?.message ?? `invalid image reference ${item.image}` };
        const result = failedImageResult(item.image, failure.code, failure.message);
        emit(progressOf(item.image, 'FAILED', 0));
        return result;
      }
      const ref = item.ref;
      return limit(async () => {
        const startedAt = Date.now();
        const result = await warmOne(runtime, item, ref, {
          credentials,
          credentialSource: opts.credentialSource,
          progressTimeoutMs,
          pullTimeoutMs,
          intervalMs,
          signal: opts.signal,
          startedAt,
          emit: (state, bytes) => emit(progressOf(item.image, state, startedAt, bytes)),
          logger: opts.logger,
          checkOnly: opts.checkOnly === true,
          pin: opts.pin === true,
        });
        return result;
      });
    }),
  );
}

function checkImage(image: string, policy: RegistryPolicy): { ref: ImageReference; refused: undefined } | { ref: undefined; refused: WarmError } {
  let ref: ImageReference;
  try {
    ref = parseImageReference(image);
  } catch (err) {
    if (!(err instanceof InvalidReferenceError)) throw err;
    return { ref: undefined, refused: new WarmError('INVALID_REFERENCE', err.message) };
  }
  const refusal = refuseRegistry(policy, ref);
  if (refusal) return { ref: undefined, refused: new WarmError('REGISTRY_DENIED', registryDeniedMessage(image, refusal)) };
  return { ref, refused: undefined };
}

/** The tag a digest image is to be named by as well: a tag of the same repository. */
function checkAlias(ref: ImageReference, tag: string): { name: string | undefined; refused: WarmError | undefined } {
  const refuse = (why: string) => ({ name: undefined, refused: new WarmError('INVALID_REFERENCE', `${ref.original} cannot also be named ${tag}: ${why}`) });
  if (ref.digest === undefined) return refuse('only an image given by digest is named by its tag');
  let t: ImageReference;
  try {
    t = parseImageReference(tag);
  } catch (err) {
    if (!(err instanceof InvalidReferenceError)) throw err;
    return refuse(err.reason);
  }
  if (t.digest !== undefined || t.tag === undefined) return refuse('it is not a tag');
  if (t.domain !== ref.domain || t.path !== ref.path) return refuse('it names another repository');
  return { name: t.normalized, refused: undefined };
}

/**
 * Why an image is refused before any call to the runtime: INVALID_REFERENCE for a malformed
 * reference, REGISTRY_DENIED for a registry the policy refuses; undefined when it may be pulled.
 */
export function refusedImage(image: string, policy: RegistryPolicy = DEFAULT_REGISTRY_POLICY): WarmError | undefined {
  return checkImage(image, policy).refused;
}

/** The result of an image that was not pulled. */
export function failedImageResult(image: string, code: WarmError['code'], message: string, seconds = 0, needBytes = 0): ImageResult__Output {
  return { image, state: 'FAILED', imageRef: '', sizeBytes: 0, seconds, failure: { code, message, needBytes }, pinned: false, repoDigest: '', pinLabel: 'PIN_LABEL_UNSPECIFIED' };
}

/**
 * The runtime's repo digest of the image for the reference's own repository, normalised
 * ("registry.example.com/app@sha256:..."); '' when the runtime lists none for it. A reference that
 * is a digest already names it.
 */
export function repoDigestFor(ref: ImageReference, image: Pick<CriImage, 'repoDigests'> | undefined): string {
  for (const candidate of image?.repoDigests ?? []) {
    let r: ImageReference;
    try {
      r = parseImageReference(candidate);
    } catch {
      continue;
    }
    if (r.digest !== undefined && r.domain === ref.domain && r.path === ref.path) return `${r.domain}/${r.path}@${r.digest}`;
  }
  return ref.digest !== undefined ? `${ref.domain}/${ref.path}@${ref.digest}` : '';
}

interface OneOptions {
  credentials: readonly RegistryCredential[];
  credentialSource: CredentialSource | undefined;
  progressTimeoutMs: number;
  pullTimeoutMs: number;
  intervalMs: number;
  signal: AbortSignal | undefined;
  startedAt: number;
  emit: (state: ItemState__Output, bytes?: PullBytes) => void;
  logger: Logger | undefined;
  checkOnly: boolean;
  pin: boolean;
}

async function warmOne(runtime: CriRuntime, item: Item, ref: ImageReference, o: OneOptions): Promise<ImageResult__Output> {
  const seconds = (): number => (Date.now() - o.startedAt) / 1000;
  const log = o.logger?.child({ image: item.image });
  const fail = (err: WarmError): ImageResult__Output => {
    log?.warn({ code: err.code, detail: err.detail }, 'image failed');
    o.emit('FAILED');
    return failedImageResult(item.image, err.code, err.message, seconds(), err.needBytes);
  };
  // spec.pin: the label goes on once the image is present; a label that cannot be set leaves the
  // image warm and says so in pinLabel.
  const pinned = async (result: ImageResult__Output): Promise<ImageResult__Output> => {
    if (!o.pin) return result;
    try {
      const outcome = await pinImage(runtime, ref.normalized, true, o.signal);
      log?.info({ pinLabel: outcome.label, records: outcome.changed, pinned: outcome.pinned }, 'pin label set');
      return { ...result, pinLabel: outcome.label, pinned: outcome.pinned };
    } catch (err) {
      log?.warn({ reason: err instanceof Error ? err.message : String(err) }, 'pin label not set');
      return { ...result, pinLabel: 'PIN_LABEL_FAILED' };
    }
  };
  if (o.signal?.aborted) return fail(new WarmError('CANCELLED', `pulling ${item.image} was cancelled before it started`));
  o.emit('RUNNING');
  const what = (verb: string): string => `${verb} ${item.image}`;
  try {
    if (o.checkOnly) {
      const present = await runtime.imageStatus(ref.normalized, o.signal);
      o.emit(present ? 'PRESENT' : 'MISSING');
      return { image: item.image, state: present ? 'PRESENT' : 'MISSING', imageRef: present?.id ?? '', sizeBytes: present?.size ?? 0, seconds: seconds(), failure: null, pinned: present?.pinned === true, repoDigest: present ? repoDigestFor(ref, present) : '', pinLabel: 'PIN_LABEL_UNSPECIFIED' };
    }
    if (item.policy === 'IF_NOT_PRESENT') {
      const present = await runtime.imageStatus(ref.normalized, o.signal);
      if (present) {
        const refused = await nameByTag(runtime, item, ref, o.signal);
        if (refused) return fail(refused);
        o.emit('PRESENT');
        log?.debug({ imageRef: present.id }, 'image already present');
        return await pinned({ image: item.image, state: 'PRESENT', imageRef: present.id, sizeBytes: present.size, seconds: seconds(), failure: null, pinned: present.pinned === true, repoDigest: repoDigestFor(ref, present), pinLabel: 'PIN_LABEL_UNSPECIFIED' });
      }
    }
  } catch (err) {
    return fail(translateCallError(err, what('checking whether the runtime has'), runtime.endpoint.display));
  }

  let credential = credentialFor(o.credentials, ref);
  if (!credential && o.credentialSource) {
    try {
      credential = await o.credentialSource(ref, o.signal);
    } catch (err) {
      if (o.signal?.aborted) return fail(new WarmError('CANCELLED', `pulling ${item.image} was cancelled`));
      log?.warn({ reason: err instanceof Error ? err.message : String(err) }, 'no credentials from the credential source; pulling without');
    }
  }
  const auth = toAuthConfig(credential);
  const joined = joinPull(
    runtime,
    ref.normalized,
    auth,
    {
      failure: { image: item.image, registry: ref.domain, endpoint: runtime.endpoint.display, withCredentials: auth !== undefined },
      reference: ref,
      progressTimeoutMs: o.progressTimeoutMs,
      pullTimeoutMs: o.pullTimeoutMs,
      logger: o.logger,
    },
    o.signal,
  );
  const ticker = setInterval(() => o.emit('RUNNING', joined.bytes()), o.intervalMs);
  ticker.unref();
  let imageRef: string;
  let lastBytes: PullBytes | undefined;
  try {
    imageRef = await joined.result;
    lastBytes = joined.bytes();
  } catch (err) {
    return fail(err instanceof WarmError ? err : translatePullError(err, { image: item.image, registry: ref.domain, endpoint: runtime.endpoint.display, withCredentials: auth !== undefined }));
  } finally {
    clearInterval(ticker);
  }

  try {
    const status = await runtime.imageStatus(ref.normalized, o.signal);
    if (!status) {
      return fail(new WarmError('RUNTIME_ERROR', `the runtime reported ${item.image} pulled, but does not list it afterwards`));
    }
    const refused = await nameByTag(runtime, item, ref, o.signal);
    if (refused) return fail(refused);
    // Ingests that finished between two listings still count as complete.
    o.emit('DONE', lastBytes && { ...lastBytes, bytesDone: lastBytes.bytesTotal });
    const repoDigest = repoDigestFor(ref, status);
    log?.info({ imageRef, repoDigest, bytes: status.size, seconds: seconds() }, 'image pulled');
    return await pinned({ image: item.image, state: 'DONE', imageRef: imageRef || status.id, sizeBytes: status.size, seconds: seconds(), failure: null, pinned: status.pinned === true, repoDigest, pinLabel: 'PIN_LABEL_UNSPECIFIED' });
  } catch (err) {
    return fail(translateCallError(err, what('checking the pulled image'), runtime.endpoint.display));
  }
}

/**
 * Names an image pulled by digest also by the tag it was resolved from (ImageTask.tag), where the
 * runtime can (containerd); returns the error when it could not.
 */
async function nameByTag(runtime: CriRuntime, item: Item, ref: ImageReference, signal: AbortSignal | undefined): Promise<WarmError | undefined> {
  if (!item.alias || !runtime.aliasImage) return undefined;
  try {
    await runtime.aliasImage(ref.normalized, item.alias, signal);
    return undefined;
  } catch (err) {
    return translateCallError(err, `giving ${item.image} the name ${item.alias}`, runtime.endpoint.display);
  }
}
