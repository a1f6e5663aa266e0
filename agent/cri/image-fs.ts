// The runtime's image filesystem and its free space. CRI ImageFsInfo names the mount point
// (containerd: its snapshotter's directory, e.g. /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs;
// CRI-O: its storage root) but says only how much the images use, not how much is free: statfs of
// that path says. The agent must see the path (the Helm chart mounts the runtime's root read-only
// at the same path); where it cannot, the free space is unknown and the reason says why.
import { statfs as fsStatfs } from 'node:fs/promises';
import type { CriFilesystemUsage } from '../../proto/cri.js';

export type ImageFilesystemSpace =
  | { known: true; mountpoint: string; freeBytes: number }
  | { known: false; mountpoint: string | undefined; reason: string };

/** statfs, injectable for unit tests. */
export type Statfs = (path: string) => Promise<{ bavail: number; bsize: number }>;

/**
 * Free bytes of the image filesystem: the first filesystem ImageFsInfo reports, measured with
 * statfs (f_bavail * f_bsize, what an unprivileged writer such as the runtime can still use).
 * Never throws: a failure is a `known: false` with the reason.
 */
export async function imageFilesystemSpace(
  imageFsInfo: (signal?: AbortSignal) => Promise<CriFilesystemUsage[]>,
  signal?: AbortSignal,
  statfs: Statfs = fsStatfs,
): Promise<ImageFilesystemSpace> {
  let mountpoint: string | undefined;
  try {
    const filesystems = await imageFsInfo(signal);
    mountpoint = filesystems.map((f) => f.fsId?.mountpoint ?? '').find((m) => m !== '');
  } catch (err) {
    return { known: false, mountpoint: undefined, reason: err instanceof Error ? err.message : String(err) };
  }
  if (mountpoint === undefined) return { known: false, mountpoint: undefined, reason: 'the runtime names no image filesystem (CRI ImageFsInfo)' };
  try {
    const s = await statfs(mountpoint);
    return { known: true, mountpoint, freeBytes: s.bavail * s.bsize };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return {
      known: false,
      mountpoint,
      reason: `cannot measure the free space of the image filesystem ${mountpoint} from here (${typeof code === 'string' ? code : err instanceof Error ? err.message : String(err)}); is the runtime's root mounted into the agent?`,
    };
  }
}
