// Validation of every request the agent's gRPC API receives, in one place. A request that fails
// gets a ServerError whose message names the bad value (never a credential's value).
import { isAbsolute } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { CancelRequest, NodeStatusRequest, WarmRequest } from '../../proto/agent.js';
import { InvalidReferenceError, parseImageReference } from '../../proto/common/image-reference.js';
import type { PathTask__Output } from '../../proto/gen/stoker/v1/PathTask.js';
import type { ReleaseRequest__Output } from '../../proto/gen/stoker/v1/ReleaseRequest.js';
import type { RegistryCredential__Output } from '../../proto/gen/stoker/v1/RegistryCredential.js';
import { ServerError } from './errors.js';

export const LIMITS = Object.freeze({
  taskIdLength: 253,
  images: 256,
  paths: 256,
  credentials: 64,
  imageLength: 4096,
  pathLength: 4096,
  globs: 64,
  statusImages: 1000,
  progressTimeoutSeconds: 24 * 3600,
});

/** A path is still warm, for a check-only request that does not say, while this much of it is resident. */
export const DEFAULT_MIN_RESIDENT_PERCENT = 90;

const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/;

export interface ValidImageTask {
  readonly image: string;
  readonly pullPolicy: 'IF_NOT_PRESENT' | 'ALWAYS';
  /** The tag a digest image was resolved from, to name it by as well (ImageTask.tag). */
  readonly tag?: string;
}

export interface ValidWarmRequest {
  readonly taskId: string;
  readonly images: readonly ValidImageTask[];
  readonly paths: readonly PathTask__Output[];
  /** Held only while the task runs; never logged or stored. */
  readonly credentials: readonly RegistryCredential__Output[];
  /** 0 when the request leaves it to the agent. */
  readonly progressTimeoutMs: number;
  /** Report whether each item is still warm; pull and read nothing. */
  readonly checkOnly: boolean;
  /** With checkOnly: the least resident share of a path's bytes, in percent (1-100). */
  readonly minResidentPercent: number;
  /** Set containerd's pin label on each image once present (spec.pin). */
  readonly pin: boolean;
}

function invalid(message: string): ServerError {
  return new ServerError(status.INVALID_ARGUMENT, message, 'INVALID_REQUEST');
}

/** Shown in messages: values are quoted and cut short so a huge field cannot flood a log line. */
export function quote(value: string, max = 200): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}...` : value);
}

export function checkNode(requested: string, nodeName: string): void {
  if (requested === '') throw invalid(`node_name is empty; this agent runs on node ${quote(nodeName)}`);
  if (requested !== nodeName) {
    throw new ServerError(
      status.FAILED_PRECONDITION,
      `the request is for node ${quote(requested)} but this agent runs on node ${quote(nodeName)}`,
      'WRONG_NODE',
    );
  }
}

function checkTaskId(taskId: string): void {
  if (taskId === '') throw invalid('task_id is empty');
  if (taskId.length > LIMITS.taskIdLength || !TASK_ID.test(taskId)) {
    throw invalid(`task_id ${quote(taskId)} is not 1-${LIMITS.taskIdLength} characters of letters, digits and . _ : / @ -`);
  }
}

export function validateWarmRequest(req: WarmRequest, nodeName: string): ValidWarmRequest {
  const taskId = req.taskId;
  checkTaskId(taskId);
  checkNode(req.nodeName, nodeName);
  const where = `task ${quote(taskId)}`;
  if (req.images.length === 0 && req.paths.length === 0) throw invalid(`${where} names no images and no paths`);
  if (req.images.length > LIMITS.images) throw invalid(`${where} has ${req.images.length} images; at most ${LIMITS.images}`);
  if (req.paths.length > LIMITS.paths) throw invalid(`${where} has ${req.paths.length} paths; at most ${LIMITS.paths}`);
  if (req.credentials.length > LIMITS.credentials) {
    throw invalid(`${where} has ${req.credentials.length} registry credentials; at most ${LIMITS.credentials}`);
  }

  // The same image twice in one task is pulled once; ALWAYS wins over IF_NOT_PRESENT.
  const images = new Map<string, ValidImageTask>();
  req.images.forEach((item, i) => {
    const image = item.image.trim();
    if (image === '') throw invalid(`${where}: images[${i}] is empty`);
    if (image.length > LIMITS.imageLength) throw invalid(`${where}: images[${i}] ${quote(image)} is longer than ${LIMITS.imageLength} characters`);
    const policy = item.pullPolicy === 'ALWAYS' ? 'ALWAYS' : 'IF_NOT_PRESENT';
    if (item.pullPolicy !== 'ALWAYS' && item.pullPolicy !== 'IF_NOT_PRESENT' && item.pullPolicy !== 'PULL_POLICY_UNSPECIFIED') {
      throw invalid(`${where}: images[${i}] ${quote(image)} has an unknown pull policy ${quote(String(item.pullPolicy))}`);
    }
    const tag = (item.tag ?? '').trim();
    if (tag.length > LIMITS.imageLength) throw invalid(`${where}: images[${i}] tag ${quote(tag)} is longer than ${LIMITS.imageLength} characters`);
    const seen = images.get(image);
    if (!seen || policy === 'ALWAYS') images.set(image, { image, pullPolicy: policy, ...(tag ? { tag } : {}) });
  });

  const paths = checkPaths(where, req.paths);

  req.credentials.forEach((c, i) => {
    if (c.registry.trim() === '') throw invalid(`${where}: credentials[${i}] names no registry`);
    if (/[\s/]/.test(c.registry.trim()) && !/^https?:\/\//.test(c.registry.trim())) {
      throw invalid(`${where}: credentials[${i}] registry ${quote(c.registry)} is not a registry host`);
    }
    const hasSecret = c.password !== '' || c.auth !== '' || c.identityToken !== '' || c.registryToken !== '';
    if (!hasSecret) throw invalid(`${where}: credentials[${i}] for registry ${quote(c.registry)} carries no password, auth or token`);
  });

  if (req.progressTimeoutSeconds > LIMITS.progressTimeoutSeconds) {
    throw invalid(`${where}: progress_timeout_seconds ${req.progressTimeoutSeconds} is more than ${LIMITS.progressTimeoutSeconds}`);
  }

  if (req.minResidentPercent > 100) {
    throw invalid(`${where}: min_resident_percent ${req.minResidentPercent} is more than 100`);
  }

  return {
    taskId,
    images: [...images.values()],
    paths,
    credentials: req.credentials,
    progressTimeoutMs: req.progressTimeoutSeconds * 1000,
    checkOnly: req.checkOnly,
    minResidentPercent: req.minResidentPercent || DEFAULT_MIN_RESIDENT_PERCENT,
    pin: req.pin,
  };
}

/** The task id of a Cancel request meant for this node. */
function checkPaths(where: string, list: readonly PathTask__Output[]): { path: string; include: string[]; exclude: string[] }[] {
  return list.map((p, i) => {
    if (p.path === '') throw invalid(`${where}: paths[${i}] is empty`);
    if (p.path.length > LIMITS.pathLength || p.path.includes('\0')) throw invalid(`${where}: paths[${i}] ${quote(p.path)} is not a usable path`);
    if (!isAbsolute(p.path)) throw invalid(`${where}: paths[${i}] ${quote(p.path)} is not absolute`);
    if (p.include.length > LIMITS.globs || p.exclude.length > LIMITS.globs) {
      throw invalid(`${where}: paths[${i}] ${quote(p.path)} has more than ${LIMITS.globs} include or exclude patterns`);
    }
    for (const glob of [...p.include, ...p.exclude]) {
      if (glob === '' || glob.includes('\0')) throw invalid(`${where}: paths[${i}] ${quote(p.path)} has an empty include or exclude pattern`);
    }
    return { path: p.path, include: [...p.include], exclude: [...p.exclude] };
  });
}

/** A Release request: the right node, images that parse, paths checked as Warm checks them. */
export function validateReleaseRequest(
  req: ReleaseRequest__Output,
  nodeName: string,
): { images: string[]; unpinImages: string[]; paths: { path: string; include: string[]; exclude: string[] }[] } {
  checkNode(req.nodeName, nodeName);
  const where = 'release request';
  if (req.images.length > LIMITS.images) throw invalid(`${where} has ${req.images.length} images; at most ${LIMITS.images}`);
  if (req.unpinImages.length > LIMITS.images) throw invalid(`${where} has ${req.unpinImages.length} images to unpin; at most ${LIMITS.images}`);
  if (req.paths.length > LIMITS.paths) throw invalid(`${where} has ${req.paths.length} paths; at most ${LIMITS.paths}`);
  const images = checkImages(where, 'images', req.images);
  const unpinImages = checkImages(where, 'unpin_images', req.unpinImages);
  return { images, unpinImages, paths: checkPaths(where, req.paths) };
}

function checkImages(where: string, field: string, list: readonly string[]): string[] {
  const images = list.map((image, i) => {
    const trimmed = image.trim();
    if (trimmed === '' || trimmed.length > LIMITS.imageLength) throw invalid(`${where}: ${field}[${i}] ${quote(trimmed)} is empty or longer than ${LIMITS.imageLength} characters`);
    try {
      parseImageReference(trimmed);
    } catch (err) {
      if (err instanceof InvalidReferenceError) throw new ServerError(status.INVALID_ARGUMENT, `${field}[${i}]: ${err.message}`, 'INVALID_REFERENCE');
      throw err;
    }
    return trimmed;
  });
  return [...new Set(images)];
}

export function validateCancelRequest(req: CancelRequest, nodeName: string): string {
  checkTaskId(req.taskId);
  checkNode(req.nodeName, nodeName);
  return req.taskId;
}

export function validateNodeStatusRequest(req: NodeStatusRequest, nodeName: string): string[] {
  checkNode(req.nodeName, nodeName);
  if (req.images.length > LIMITS.statusImages) {
    throw invalid(`the request asks about ${req.images.length} images; at most ${LIMITS.statusImages}`);
  }
  const images = req.images.map((image, i) => {
    const trimmed = image.trim();
    if (trimmed === '') throw invalid(`images[${i}] is empty`);
    if (trimmed.length > LIMITS.imageLength) throw invalid(`images[${i}] ${quote(trimmed)} is longer than ${LIMITS.imageLength} characters`);
    try {
      parseImageReference(trimmed);
    } catch (err) {
      if (err instanceof InvalidReferenceError) throw new ServerError(status.INVALID_ARGUMENT, `images[${i}]: ${err.message}`, 'INVALID_REFERENCE');
      throw err;
    }
    return trimmed;
  });
  return [...new Set(images)];
}

/** Every secret string a request's credentials carry, so messages can be scrubbed of them. */
export function credentialSecrets(credentials: readonly RegistryCredential__Output[]): string[] {
  const secrets = new Set<string>();
  for (const c of credentials) {
    for (const s of [c.password, c.auth, c.identityToken, c.registryToken]) if (s.length >= 4) secrets.add(s);
    if (c.username !== '' && c.password !== '') {
      secrets.add(Buffer.from(`${c.username}:${c.password}`).toString('base64'));
    }
    if (c.auth !== '') {
      const decoded = Buffer.from(c.auth, 'base64').toString('utf8');
      const pass = decoded.slice(decoded.indexOf(':') + 1);
      if (decoded.includes(':') && pass.length >= 4) secrets.add(pass);
    }
  }
  return [...secrets];
}

/** Replaces every known secret in a text with [REDACTED]. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join('[REDACTED]');
  return out;
}
