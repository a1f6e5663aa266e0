import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../proto/common/log.js';
import { fakeContentStore, fakeImage, type FakeContentStore } from '../cri/testing/fake-content-store.js';
import type { ImageFilesystemSpace } from '../cri/image-fs.js';
import type { WarmError } from '../cri/errors.js';
import { parseImageReference } from '../../proto/common/image-reference.js';
import { watchSpace } from './space.js';

const GiB = 2 ** 30;
const MOUNT = '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs';

function capture() {
  const lines: { msg: string; level: number }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(JSON.parse(chunk.toString()) as { msg: string; level: number });
      cb();
    },
  });
  return { lines, log: createLogger({ name: 'test', level: 'info', destination }) };
}

/** A fake runtime: its content store (or none) and its image filesystem. */
function fakeRuntime(content: FakeContentStore | undefined, fs: ImageFilesystemSpace) {
  return { content, imageFilesystem: () => Promise.resolve(fs) };
}

/** A sleep that returns at once and records the pauses asked for (no real time passes). */
function fakeSleep() {
  const pauses: number[] = [];
  let onPause: (n: number) => void = () => undefined;
  return {
    pauses,
    onPause: (fn: (n: number) => void) => (onPause = fn),
    sleep: (ms: number) => {
      pauses.push(ms);
      onPause(pauses.length);
      return Promise.resolve();
    },
  };
}

const ref = parseImageReference('registry.example.com/team/llm:v1');
const now = () => 1_700_000_000_000;

describe('watchSpace', () => {
  it('looks for the manifest with growing pauses until containerd has it, then refuses an image that cannot fit', async () => {
    const store = fakeContentStore();
    const clock = fakeSleep();
    clock.onPause((n) => {
      if (n === 4) fakeImage(store, { host: 'registry.example.com', path: 'team/llm', createdAt: now(), layers: [20 * GiB, 7 * GiB] });
    });
    const refused: WarmError[] = [];
    const watch = watchSpace({
      image: 'registry.example.com/team/llm:v1',
      ref,
      runtime: fakeRuntime(store, { known: true, mountpoint: MOUNT, freeBytes: 12 * GiB }),
      signal: new AbortController().signal,
      onTooLarge: (e) => refused.push(e),
      sleep: clock.sleep,
      now,
    });
    await watch.settled;
    expect(clock.pauses).toEqual([250, 375, 562.5, 843.75]);
    expect(refused.map((e) => [e.code, e.message])).toEqual([
      ['NO_SPACE', `cannot pull registry.example.com/team/llm:v1: it needs at least 27.0 GiB but the image filesystem ${MOUNT} has 12.0 GiB free`],
    ]);
    expect(watch.facts()).toMatchObject({ mountpoint: MOUNT, freeBytes: 12 * GiB });
    expect(watch.facts().needBytes).toBeGreaterThan(27 * GiB);
  });

  it('stops looking when the pull ends', async () => {
    const clock = fakeSleep();
    const ended = new AbortController();
    clock.onPause((n) => n === 3 && ended.abort());
    const watch = watchSpace({
      image: 'x',
      ref,
      runtime: fakeRuntime(fakeContentStore(), { known: true, mountpoint: MOUNT, freeBytes: GiB }),
      signal: ended.signal,
      onTooLarge: () => expect.fail('nothing to refuse'),
      sleep: clock.sleep,
      now,
    });
    await watch.settled;
    expect(clock.pauses).toHaveLength(3);
  });

  it('does not refuse when the free space is unknown, warns once per runtime, and keeps the size for the message', async () => {
    const { lines, log } = capture();
    const store = fakeContentStore();
    fakeImage(store, { host: 'registry.example.com', path: 'team/llm', createdAt: now(), layers: [27 * GiB] });
    const runtime = fakeRuntime(store, { known: false, mountpoint: MOUNT, reason: `cannot measure the free space of the image filesystem ${MOUNT} from here (ENOENT)` });
    for (let i = 0; i < 2; i++) {
      const watch = watchSpace({ image: 'x', ref, runtime, signal: new AbortController().signal, onTooLarge: () => expect.fail('free space unknown'), log, now });
      await watch.settled;
      expect(watch.facts()).toEqual({ mountpoint: MOUNT, freeBytes: undefined, needBytes: expect.any(Number) as number });
    }
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual(['free space of the image filesystem unknown: pulls are not checked against it']);
  });

  it('says once per runtime that without containerd an image size is not known before the pull', async () => {
    const { lines, log } = capture();
    const runtime = fakeRuntime(undefined, { known: true, mountpoint: '/var/lib/containers/storage', freeBytes: GiB });
    for (let i = 0; i < 3; i++) {
      const watch = watchSpace({ image: 'x', ref, runtime, signal: new AbortController().signal, onTooLarge: () => expect.fail('no size without containerd'), log, now });
      await watch.settled;
      expect(watch.facts()).toEqual({ mountpoint: '/var/lib/containers/storage', freeBytes: GiB, needBytes: undefined });
    }
    expect(lines.map((l) => l.msg)).toEqual([
      'the container runtime has no containerd content store: image sizes are not known before a pull, and a full disk is reported when the runtime fails (NO_SPACE)',
    ]);
  });
});
