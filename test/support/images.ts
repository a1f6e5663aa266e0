// Unique random test images (hack/make-image.sh) pushed to a test registry (hack/push-image.sh).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runHack } from './proc.js';
import type { RegistryAuth } from './registry.js';

export interface RandomImageOptions {
  /** Number of layers (each one file of random bytes). Default 1. */
  layers?: number;
  /** Bytes of random data per layer. Default 1 MiB. */
  layerSizeBytes?: number;
  /** Add a static busybox as /bin/sh, so pods can run the image (hack/make-image.sh --busybox). */
  busybox?: boolean;
  /** Tag; default `v1`. */
  tag?: string;
  /** Push credentials; default: the registry's own `auth`. */
  creds?: RegistryAuth;
  signal?: AbortSignal;
}

export interface PushedImage {
  /** Full reference, `127.0.0.1:PORT/name:tag`. */
  ref: string;
  /** Manifest digest, `sha256:...`. */
  digest: string;
  /** Sum of the layers' sizes in bytes (what a cold pull downloads, give or take the config and manifest). */
  layerBytes: number;
}

/**
 * The pushed image named by its digest (`host/name@sha256:...`), reached through `via` (a proxy in
 * front of its registry) when given: every node then pulls it at once, where a tag is resolved on
 * one node first.
 */
export function byDigest(pushed: PushedImage, via?: { from: string; to: string }): string {
  const ref = via ? pushed.ref.replace(via.from, via.to) : pushed.ref;
  return `${ref.replace(/:[^:/]+$/, '')}@${pushed.digest}`;
}

/** Builds a unique random image and pushes it as `registry.host/name:tag`; resolves with its reference. */
export async function pushRandomImage(
  registry: { host: string; auth?: RegistryAuth | undefined },
  name: string,
  opts: RandomImageOptions = {},
): Promise<string> {
  return (await pushRandomImageDetailed(registry, name, opts)).ref;
}

/** Like pushRandomImage, and also tells the manifest digest and the layer bytes. */
export async function pushRandomImageDetailed(
  registry: { host: string; auth?: RegistryAuth | undefined },
  name: string,
  opts: RandomImageOptions = {},
): Promise<PushedImage> {
  const layers = opts.layers ?? 1;
  const layerSize = opts.layerSizeBytes ?? 1024 * 1024;
  const ref = `${registry.host}/${name}:${opts.tag ?? 'v1'}`;
  const creds = opts.creds ?? registry.auth;
  const work = await mkdtemp(join(tmpdir(), 'stoker-image-'));
  const runOpts = { ...(opts.signal ? { signal: opts.signal } : {}), secrets: creds ? [creds.password] : [] };
  try {
    const layout = join(work, 'layout');
    const digest = await runHack(
      'make-image.sh',
      [layout, '--layers', String(layers), '--layer-size', String(layerSize), ...(opts.busybox ? ['--busybox'] : [])],
      runOpts,
    );
    const pushArgs = [layout, ref];
    if (creds) pushArgs.push('--creds', `${creds.username}:${creds.password}`);
    await runHack('push-image.sh', pushArgs, runOpts);
    // Each layer is a tar: a 512-byte header, the data padded to 512 bytes, and two zero blocks.
    const layerBytes = layers * (512 + Math.ceil(layerSize / 512) * 512 + 1024);
    return { ref, digest, layerBytes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
