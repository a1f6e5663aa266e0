import { describe, expect, it } from 'vitest';
import type { CriFilesystemUsage } from '../../proto/cri.js';
import { imageFilesystemSpace } from './image-fs.js';

const MOUNT = '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs';
const usage = (mountpoint: string): CriFilesystemUsage => ({ timestamp: 1, fsId: { mountpoint }, usedBytes: { value: 5 }, inodesUsed: null });
const enoent = () => Promise.reject(Object.assign(new Error(`ENOENT: no such file or directory, statfs '${MOUNT}'`), { code: 'ENOENT' }));

describe('imageFilesystemSpace', () => {
  it('measures the mount point ImageFsInfo names with statfs (blocks available to the runtime)', async () => {
    const asked: string[] = [];
    const space = await imageFilesystemSpace(
      () => Promise.resolve([usage(MOUNT)]),
      undefined,
      (path) => {
        asked.push(path);
        return Promise.resolve({ bavail: 3, bsize: 4096 });
      },
    );
    expect(space).toEqual({ known: true, mountpoint: MOUNT, freeBytes: 3 * 4096 });
    expect(asked).toEqual([MOUNT]);
  });

  it('says why the free space is unknown, never throws', async () => {
    expect(await imageFilesystemSpace(() => Promise.resolve([usage(MOUNT)]), undefined, enoent)).toEqual({
      known: false,
      mountpoint: MOUNT,
      reason: `cannot measure the free space of the image filesystem ${MOUNT} from here (ENOENT); is the runtime's root mounted into the agent?`,
    });
    expect(await imageFilesystemSpace(() => Promise.resolve([]), undefined, enoent)).toMatchObject({ known: false, reason: 'the runtime names no image filesystem (CRI ImageFsInfo)' });
    expect(await imageFilesystemSpace(() => Promise.reject(new Error('the container runtime is unreachable')), undefined, enoent)).toMatchObject({
      known: false,
      mountpoint: undefined,
      reason: 'the container runtime is unreachable',
    });
  });
});
