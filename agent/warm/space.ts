// A pull that cannot fit is refused before it fills the node's disk. When a pull starts, the
// image filesystem's free bytes are measured (CRI ImageFsInfo names it, statfs measures it);
// once containerd has the image's manifest, the blobs it does not hold yet give the bytes the
// download adds (agent/cri/image-size.ts). When those exceed the free bytes, the pull is cancelled
// at once with NO_SPACE and both sizes, before the layers fill the disk (and hurt the pods
// running on the node). This is a lower bound: unpacking needs about as much again (more for
// compressed layers), so a pull that passes may still run out of space, and then the runtime's
// own failure is reported as NO_SPACE with what this watch learnt.
//
// Without containerd's content store (CRI-O) the size is unknown before the pull: that is logged
// once per runtime connection, and only the runtime's failure tells of a full disk. Concurrent
// pulls are each compared with the same free space; together they may still fill it.
import type { Logger } from '../../proto/common/log.js';
import { sleep as abortableSleep } from '../../proto/common/sleep.js';
import { imageTooLargeError, type SpaceFacts, type WarmError } from '../cri/errors.js';
import type { ImageFilesystemSpace } from '../cri/image-fs.js';
import { findImageSize, type ImageSize } from '../cri/image-size.js';
import type { CriRuntime } from '../cri/runtime.js';
import type { ImageReference } from '../../proto/common/image-reference.js';

/** First and last pause between two looks for the manifest. */
const FIRST_LOOK_MS = 250;
const LAST_LOOK_MS = 2_000;

export interface SpaceWatchOptions {
  /** The image as the user wrote it. */
  image: string;
  ref: ImageReference;
  runtime: Pick<CriRuntime, 'content' | 'imageFilesystem'>;
  /** Aborted when the pull ends; the watch stops with it. */
  signal: AbortSignal;
  /** Called at most once, when the image cannot fit; the caller cancels the pull with this error. */
  onTooLarge: (err: WarmError) => void;
  /** Called once the image's size (and its blobs) is known. */
  onSize?: (size: ImageSize) => void;
  log?: Logger | undefined;
  /** Injectable for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
}

export interface SpaceWatch {
  /** What is known so far, for the message of a runtime's out-of-space failure. */
  facts(): SpaceFacts;
  /** Resolves when the watch has decided (or given up); for tests. */
  readonly settled: Promise<void>;
}

/** Runtimes (connections) whose missing content store or unmeasurable disk was already logged. */
const told = new WeakMap<object, Set<string>>();

function once(runtime: object, what: string): boolean {
  let seen = told.get(runtime);
  if (!seen) told.set(runtime, (seen = new Set()));
  if (seen.has(what)) return false;
  seen.add(what);
  return true;
}

export function watchSpace(o: SpaceWatchOptions): SpaceWatch {
  const sleep = o.sleep ?? abortableSleep;
  const now = o.now ?? Date.now;
  const since = now();
  let filesystem: ImageFilesystemSpace | undefined;
  let size: ImageSize | undefined;

  const run = async (): Promise<void> => {
    const content = o.runtime.content;
    if (!content && once(o.runtime, 'content')) {
      o.log?.info(
        {},
        'the container runtime has no containerd content store: image sizes are not known before a pull, and a full disk is reported when the runtime fails (NO_SPACE)',
      );
    }
    filesystem = await o.runtime.imageFilesystem(o.signal);
    if (!filesystem.known && once(o.runtime, 'filesystem')) {
      o.log?.warn({ mountpoint: filesystem.mountpoint, reason: filesystem.reason }, 'free space of the image filesystem unknown: pulls are not checked against it');
    }
    if (!content || o.signal.aborted) return;
    for (let pause = FIRST_LOOK_MS; !o.signal.aborted; pause = Math.min(LAST_LOOK_MS, pause * 1.5)) {
      try {
        size = await findImageSize(content, o.ref, since, o.signal);
      } catch (err) {
        if (!o.signal.aborted) o.log?.debug({ err: err instanceof Error ? err.message : String(err) }, 'looking for the manifest in the content store failed');
      }
      if (size) break;
      await sleep(pause, o.signal);
    }
    if (!size || o.signal.aborted) return;
    o.onSize?.(size);
    o.log?.debug({ manifest: size.manifest, totalBytes: size.totalBytes, newBytes: size.newBytes, freeBytes: filesystem.known ? filesystem.freeBytes : undefined }, 'image size known');
    if (filesystem.known && size.newBytes > filesystem.freeBytes) {
      o.log?.warn(
        { mountpoint: filesystem.mountpoint, freeBytes: filesystem.freeBytes, needBytes: size.newBytes, ms: now() - since },
        'the image cannot fit on the image filesystem: cancelling the pull',
      );
      o.onTooLarge(imageTooLargeError(o.image, { mountpoint: filesystem.mountpoint, freeBytes: filesystem.freeBytes, needBytes: size.newBytes }));
    }
  };

  const settled = run().catch((err: unknown) => {
    o.log?.debug({ err: err instanceof Error ? err.message : String(err) }, 'space check failed');
  });
  return {
    settled,
    facts: () => ({
      mountpoint: filesystem?.mountpoint,
      freeBytes: filesystem?.known ? filesystem.freeBytes : undefined,
      needBytes: size?.newBytes,
    }),
  };
}
