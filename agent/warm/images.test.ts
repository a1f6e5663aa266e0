import { Metadata, status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ImageProgress__Output } from '../../proto/agent.js';
import type { CriAuthConfig, CriImage } from '../../proto/cri.js';
import { PullProgressTracker } from '../cri/content-progress.js';
import type { ContentStore, Ingest } from '../cri/content-service.js';
import { fakeContentStore, fakeImage } from '../cri/testing/fake-content-store.js';
import { parseEndpoint } from '../cri/endpoint.js';
import type { CriRuntime } from '../cri/runtime.js';
import { compileRegistryPolicy } from '../../proto/common/registry-policy.js';
import { pullsInFlight, refusedImage, repoDigestFor, warmImages } from './images.js';
import { parseImageReference } from '../../proto/common/image-reference.js';

interface FakePull {
  image: string;
  auth: CriAuthConfig | undefined;
  signal: AbortSignal;
  finish(): void;
  fail(err: Error): void;
}

/** A fake CRI runtime: pulls stay in flight until the test finishes them. */
function fakeRuntime(opts: { present?: string[]; repoDigests?: string[]; ingests?: () => Ingest[]; fsUsed?: () => number; content?: ContentStore; freeBytes?: number; lingerOnAbort?: boolean } = {}) {
  const present = new Set(opts.present ?? []);
  const pulls: FakePull[] = [];
  const calls: string[] = [];
  const image = (ref: string): CriImage => ({ id: `sha256:${ref.length}`, repoTags: [ref], repoDigests: opts.repoDigests ?? [], size: 1234, spec: null, pinned: false });
  const ingests = opts.ingests;
  const runtime: CriRuntime = {
    endpoint: parseEndpoint('unix:///fake/cri.sock'),
    version: { version: 'v1', runtimeName: ingests ? 'containerd' : 'fake', runtimeVersion: '0', runtimeApiVersion: 'v1' },
    progress: ingests ? new PullProgressTracker(() => Promise.resolve(ingests()), { intervalMs: 100 }) : undefined,
    content: opts.content,
    aliasImage: (source, name) => {
      calls.push(`alias ${source} ${name}`);
      if (present.has(source)) present.add(name);
      return present.has(source) ? Promise.resolve() : Promise.reject(new Error(`image ${source} not found`));
    },
    labels: undefined,
    imageStatus: (ref) => {
      calls.push(`status ${ref}`);
      return Promise.resolve(present.has(ref) ? image(ref) : undefined);
    },
    listImages: () => Promise.resolve([...present].map(image)),
    pullImage: (ref, auth, signal) => {
      calls.push(`pull ${ref}`);
      return new Promise<string>((resolve, reject) => {
        const pull: FakePull = {
          image: ref,
          auth,
          signal,
          finish: () => {
            present.add(ref);
            resolve(`sha256:${ref.length}`);
          },
          fail: reject,
        };
        // lingerOnAbort: a cancelled pull ends only when the test fails it (a runtime winding down).
        signal.addEventListener('abort', () =>
          opts.lingerOnAbort ? undefined : reject(Object.assign(new Error('1 CANCELLED: Cancelled on client'), { code: status.CANCELLED, details: 'Cancelled on client', metadata: new Metadata() })),
        );
        pulls.push(pull);
      });
    },
    removeImage: (ref) => {
      present.delete(ref);
      return Promise.resolve();
    },
    imageFsInfo: () =>
      Promise.resolve(
        opts.fsUsed
          ? [{ timestamp: 1, fsId: { mountpoint: '/fake' }, usedBytes: { value: opts.fsUsed() }, inodesUsed: null }]
          : [],
      ),
    imageFilesystem: () =>
      Promise.resolve(
        opts.freeBytes !== undefined
          ? { known: true as const, mountpoint: '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs', freeBytes: opts.freeBytes }
          : { known: false as const, mountpoint: undefined, reason: 'fake runtime' },
      ),
    close: () => undefined,
  };
  return { runtime, pulls, calls };
}

// warmImages has no clock of its own (Date.now, setInterval): these tests run on vitest's fake
// timers, and move them (which also lets pending promise callbacks run) instead of sleeping.
beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

/** Moves fake time 5 ms at a time until `cond` holds (at most 1 s of fake time). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await vi.advanceTimersByTimeAsync(5);
  expect(cond()).toBe(true);
}

const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'b'.repeat(64)}`;

describe('repoDigestFor', () => {
  it("picks the runtime's repo digest of the reference's own repository, normalised", () => {
    const image = { repoDigests: [`reg.io/other@${DIGEST_B}`, `docker.io/library/busybox@${DIGEST_A}`, 'not a reference'] };
    expect(repoDigestFor(parseImageReference('busybox:1.36'), image)).toBe(`docker.io/library/busybox@${DIGEST_A}`);
    expect(repoDigestFor(parseImageReference('reg.io/other:2'), image)).toBe(`reg.io/other@${DIGEST_B}`);
    expect(repoDigestFor(parseImageReference('reg.io/third:1'), image)).toBe('');
    expect(repoDigestFor(parseImageReference(`reg.io/third@${DIGEST_A}`), { repoDigests: [] })).toBe(`reg.io/third@${DIGEST_A}`);
  });
});

describe('warmImages', () => {
  it('names an image pulled by digest also by the tag it was resolved from, and refuses a tag of another repository', async () => {
    const { runtime, pulls, calls } = fakeRuntime();
    const byDigest = `reg.io/app@${DIGEST_A}`;
    const pulled = warmImages(runtime, { images: [{ image: byDigest, tag: 'reg.io/app:v1' }, { image: `reg.io/app@${DIGEST_B}`, tag: 'reg.io/other:v1' }] });
    await until(() => pulls.length === 1);
    pulls[0]?.finish();
    const [done, refused] = await pulled;
    expect(done).toMatchObject({ state: 'DONE' });
    expect(calls).toContain(`alias ${byDigest} reg.io/app:v1`);
    expect(refused).toMatchObject({ state: 'FAILED', failure: { code: 'INVALID_REFERENCE', message: `reg.io/app@${DIGEST_B} cannot also be named reg.io/other:v1: it names another repository` } });
    expect(calls.filter((c) => c.includes(DIGEST_B))).toEqual([]);
  });

  it('reports the repo digest the runtime holds for a pulled or present tag', async () => {
    const repoDigests = [`reg.io/other@${DIGEST_B}`, `reg.io/app@${DIGEST_A}`];
    const { runtime, pulls } = fakeRuntime({ present: ['reg.io/app:present'], repoDigests });
    const pulled = warmImages(runtime, { images: [{ image: 'reg.io/app:1' }, { image: 'reg.io/app:present' }] });
    await until(() => pulls.length === 1);
    pulls[0]?.finish();
    expect((await pulled).map((r) => [r.state, r.repoDigest])).toEqual([
      ['DONE', `reg.io/app@${DIGEST_A}`],
      ['PRESENT', `reg.io/app@${DIGEST_A}`],
    ]);
  });

  it('skips present images with IF_NOT_PRESENT and pulls them again with ALWAYS', async () => {
    const { runtime, pulls, calls } = fakeRuntime({ present: ['docker.io/library/busybox:latest'] });
    const skipped = await warmImages(runtime, { images: [{ image: 'busybox', pullPolicy: 'IF_NOT_PRESENT' }] });
    expect(skipped).toEqual([
      { image: 'busybox', state: 'PRESENT', imageRef: 'sha256:32', sizeBytes: 1234, seconds: expect.any(Number) as number, failure: null, pinned: false, repoDigest: '', pinLabel: 'PIN_LABEL_UNSPECIFIED' },
    ]);
    expect(calls).toEqual(['status docker.io/library/busybox:latest']);

    const again = warmImages(runtime, { images: [{ image: 'busybox', pullPolicy: 'ALWAYS' }] });
    await until(() => pulls.length === 1);
    pulls[0]?.finish();
    expect((await again)[0]).toMatchObject({ image: 'busybox', state: 'DONE', sizeBytes: 1234 });
    expect(calls).toContain('pull docker.io/library/busybox:latest');
  });

  it('check only asks ImageStatus and reports PRESENT or MISSING, never pulling, whatever the pull policy', async () => {
    const { runtime, pulls, calls } = fakeRuntime({ present: ['docker.io/library/busybox:latest'] });
    const events: ImageProgress__Output[] = [];
    const results = await warmImages(runtime, {
      images: [{ image: 'busybox', pullPolicy: 'ALWAYS' }, { image: 'alpine', pullPolicy: 'IF_NOT_PRESENT' }],
      checkOnly: true,
      onProgress: (p) => events.push(p),
    });
    expect(results.map((r) => [r.image, r.state, r.imageRef, r.failure])).toEqual([
      ['busybox', 'PRESENT', 'sha256:32', null],
      ['alpine', 'MISSING', '', null],
    ]);
    expect(pulls).toEqual([]);
    expect(calls).toEqual(['status docker.io/library/busybox:latest', 'status docker.io/library/alpine:latest']);
    expect(events.filter((e) => e.image === 'alpine').at(-1)?.state).toBe('MISSING');
  });

  it('fails malformed references before any runtime call', async () => {
    const { runtime, calls } = fakeRuntime();
    const events: ImageProgress__Output[] = [];
    const results = await warmImages(runtime, { images: [{ image: 'Not/Valid' }, { image: 'a:b:c' }], onProgress: (p) => events.push(p) });
    expect(results.map((r) => [r.state, r.failure?.code])).toEqual([
      ['FAILED', 'INVALID_REFERENCE'],
      ['FAILED', 'INVALID_REFERENCE'],
    ]);
    expect(results[0]?.failure?.message).toContain('"Not/Valid"');
    expect(calls).toEqual([]);
    expect(events.map((e) => e.state)).toEqual(['FAILED', 'FAILED']);
  });

  it('refuses a registry the policy refuses before any runtime call, naming the image and the rule', async () => {
    const { runtime, pulls, calls } = fakeRuntime();
    const images = ['169.254.169.254/latest:v1', 'metadata.google.internal/x', 'r.example.com/app', '127.0.0.1:5000/app:v1'].map((image) => ({ image, pullPolicy: 'ALWAYS' as const }));
    const done = warmImages(runtime, { images, registryPolicy: compileRegistryPolicy({ deny: ['*.example.com'] }) });
    await until(() => pulls.length === 1);
    pulls[0]?.finish();
    const results = await done;
    expect(results.map((r) => [r.state, r.failure?.code])).toEqual([
      ['FAILED', 'REGISTRY_DENIED'],
      ['FAILED', 'REGISTRY_DENIED'],
      ['FAILED', 'REGISTRY_DENIED'],
      ['DONE', undefined],
    ]);
    expect(results[0]?.failure?.message).toBe(
      'cannot pull 169.254.169.254/latest:v1: registry 169.254.169.254 is refused: it is a link-local address (built-in rule 169.254.0.0/16)',
    );
    expect(results[2]?.failure?.message).toContain('the deny pattern "*.example.com"');
    expect(calls).toEqual(['pull 127.0.0.1:5000/app:v1', 'status 127.0.0.1:5000/app:v1']);
    // Without a policy the built-in rules still apply.
    expect(refusedImage('[fe80::1]:5000/x')?.code).toBe('REGISTRY_DENIED');
    expect(refusedImage('Bad/Ref')?.code).toBe('INVALID_REFERENCE');
    expect(refusedImage('registry.example.com/x')).toBeUndefined();
  });

  it('asks the credential source only for images it pulls that the request has no credential for', async () => {
    const { runtime, pulls } = fakeRuntime({ present: ['127.0.0.1:5000/present:v1'] });
    const asked: string[] = [];
    const done = warmImages(runtime, {
      images: [{ image: '127.0.0.1:5000/present:v1' }, { image: '127.0.0.1:5000/team/app:v1' }, { image: '127.0.0.1:6000/app:v1' }, { image: 'ghcr.io/x/y:v1' }],
      credentials: [{ registry: '127.0.0.1:6000', username: 'req', password: 'r' }],
      credentialSource: (ref) => {
        asked.push(`${ref.domain}/${ref.path}`);
        return ref.domain === 'ghcr.io' ? Promise.reject(new Error('plugin down')) : Promise.resolve({ registry: ref.domain, username: 'plugin', password: 'p' });
      },
    });
    await until(() => pulls.length === 3);
    expect(Object.fromEntries(pulls.map((p) => [p.image, p.auth]))).toEqual({
      '127.0.0.1:5000/team/app:v1': { username: 'plugin', password: 'p' },
      '127.0.0.1:6000/app:v1': { username: 'req', password: 'r' },
      'ghcr.io/x/y:v1': undefined,
    });
    expect(asked.sort()).toEqual(['127.0.0.1:5000/team/app', 'ghcr.io/x/y']);
    for (const p of pulls) p.finish();
    expect((await done).map((r) => r.state)).toEqual(['PRESENT', 'DONE', 'DONE', 'DONE']);
  });

  it('merges identical pulls in flight into one CRI call, but not pulls with other credentials', async () => {
    const { runtime, pulls, calls } = fakeRuntime();
    const img = { image: '127.0.0.1:5000/app:v1', pullPolicy: 'ALWAYS' as const };
    const a = warmImages(runtime, { images: [img] });
    const b = warmImages(runtime, { images: [img, { image: '127.0.0.1:5000/app:v1' }] });
    const c = warmImages(runtime, { images: [img], credentials: [{ registry: '127.0.0.1:5000', username: 'u', password: 'p' }] });
    await until(() => pulls.length === 2);
    await vi.advanceTimersByTimeAsync(20);
    expect(calls.filter((x) => x.startsWith('pull'))).toHaveLength(2);
    expect(pullsInFlight()).toBe(2);
    // Counted per runtime: an agent's metric counts only the pulls through its own socket.
    expect(pullsInFlight(runtime.endpoint.target)).toBe(2);
    expect(pullsInFlight('unix:///run/other.sock')).toBe(0);
    expect(pulls.map((p) => p.auth)).toEqual([undefined, { username: 'u', password: 'p' }]);
    for (const p of pulls) p.finish();
    expect((await a).map((r) => r.state)).toEqual(['DONE']);
    expect((await b).map((r) => r.state)).toEqual(['DONE', 'DONE']);
    expect((await c).map((r) => r.state)).toEqual(['DONE']);
    expect(pullsInFlight()).toBe(0);
  });

  it('hands each pull the credential whose Docker config key matches its image', async () => {
    const { runtime, pulls } = fakeRuntime();
    const credentials = [
      { registry: 'https://index.docker.io/v1/', username: 'hub', password: 'h' },
      { registry: '127.0.0.1:5000/team', username: 'team', password: 't' },
    ];
    const images = ['busybox', '127.0.0.1:5000/team/app', '127.0.0.1:5000/other/app'].map((image) => ({ image, pullPolicy: 'ALWAYS' as const }));
    const done = warmImages(runtime, { images, credentials });
    await until(() => pulls.length === 3);
    expect(Object.fromEntries(pulls.map((p) => [p.image, p.auth]))).toEqual({
      'docker.io/library/busybox:latest': { username: 'hub', password: 'h' },
      '127.0.0.1:5000/team/app:latest': { username: 'team', password: 't' },
      '127.0.0.1:5000/other/app:latest': undefined,
    });
    for (const p of pulls) p.finish();
    expect((await done).map((r) => r.state)).toEqual(['DONE', 'DONE', 'DONE']);
  });

  it('cancels the shared pull only when every caller has gone', async () => {
    const { runtime, pulls } = fakeRuntime();
    const img = { image: '127.0.0.1:5000/big:v1', pullPolicy: 'ALWAYS' as const };
    const first = new AbortController();
    const second = new AbortController();
    const a = warmImages(runtime, { images: [img], signal: first.signal });
    const b = warmImages(runtime, { images: [img], signal: second.signal });
    await until(() => pulls.length === 1);
    await vi.advanceTimersByTimeAsync(20);
    first.abort();
    expect((await a)[0]?.failure?.code).toBe('CANCELLED');
    expect(pulls[0]?.signal.aborted).toBe(false);
    second.abort();
    expect((await b)[0]?.failure).toMatchObject({ code: 'CANCELLED', message: expect.stringContaining('127.0.0.1:5000/big:v1') as string });
    expect(pulls[0]?.signal.aborted).toBe(true);
  });

  it('gives a caller that comes after the shared pull was cancelled a pull of its own', async () => {
    const { runtime, pulls } = fakeRuntime({ lingerOnAbort: true });
    const img = { image: '127.0.0.1:5000/again:v1', pullPolicy: 'ALWAYS' as const };
    const gone = new AbortController();
    const a = warmImages(runtime, { images: [img], signal: gone.signal });
    await until(() => pulls.length === 1);
    gone.abort();
    expect((await a)[0]?.failure?.code).toBe('CANCELLED');
    // The first CRI call is cancelled but has not returned yet: the next caller must not join it.
    expect(pulls[0]?.signal.aborted).toBe(true);
    const b = warmImages(runtime, { images: [img] });
    await until(() => pulls.length === 2);
    expect(pulls[1]?.signal.aborted).toBe(false);
    pulls[1]?.finish();
    pulls[0]?.fail(new Error('cancelled'));
    expect((await b)[0]).toMatchObject({ state: 'DONE', failure: null });
    expect(pullsInFlight()).toBe(0);
  });

  it('runs at most `concurrency` pulls at once', async () => {
    const { runtime, pulls } = fakeRuntime();
    const images = ['a', 'b', 'c', 'd'].map((n) => ({ image: `127.0.0.1:5000/${n}:v1`, pullPolicy: 'ALWAYS' as const }));
    const run = warmImages(runtime, { images, concurrency: 2 });
    await until(() => pulls.length === 2);
    await vi.advanceTimersByTimeAsync(30);
    expect(pulls).toHaveLength(2);
    pulls[0]?.finish();
    await until(() => pulls.length === 3);
    for (const p of pulls.slice(1)) p.finish();
    await until(() => pulls.length === 4);
    pulls[3]?.finish();
    expect((await run).every((r) => r.state === 'DONE')).toBe(true);
  });

  it('passes the credential of the image registry, matched the way Docker matches', async () => {
    const { runtime, pulls } = fakeRuntime();
    const run = warmImages(runtime, {
      images: [{ image: 'library/redis:7', pullPolicy: 'ALWAYS' }, { image: 'ghcr.io/x/y:1', pullPolicy: 'ALWAYS' }],
      credentials: [{ registry: 'https://index.docker.io/v1/', username: 'hub', password: 'pw' }],
    });
    await until(() => pulls.length === 2);
    expect(pulls.find((p) => p.image === 'docker.io/library/redis:7')?.auth).toEqual({ username: 'hub', password: 'pw' });
    expect(pulls.find((p) => p.image === 'ghcr.io/x/y:1')?.auth).toBeUndefined();
    for (const p of pulls) p.finish();
    await run;
  });

  it('cancels a pull that gets no bytes for the progress timeout', async () => {
    const { runtime, pulls } = fakeRuntime({ ingests: () => [] });
    const run = warmImages(runtime, { images: [{ image: '127.0.0.1:5000/stuck:v1', pullPolicy: 'ALWAYS' }], progressTimeoutMs: 2_000 });
    await vi.advanceTimersByTimeAsync(2_600);
    const [result] = await run;
    expect(result?.failure?.code).toBe('PROGRESS_TIMEOUT');
    expect(result?.failure?.message).toMatch(/127\.0\.0\.1:5000\/stuck:v1 timed out: no new bytes/);
    expect(pulls[0]?.signal.aborted).toBe(true);
  });

  it('never cuts off a pull whose bytes keep moving, and reports them', async () => {
    let offset = 0;
    const { runtime, pulls } = fakeRuntime({ ingests: () => [{ ref: 'layer-sha256:x', offset: (offset += 1_000), total: 1_000_000 }] });
    const events: ImageProgress__Output[] = [];
    const run = warmImages(runtime, {
      images: [{ image: '127.0.0.1:5000/huge:v1', pullPolicy: 'ALWAYS' }],
      progressTimeoutMs: 1_000,
      progressIntervalMs: 500,
      onProgress: (p) => events.push(p),
    });
    await vi.advanceTimersByTimeAsync(20_000);
    expect(pulls[0]?.signal.aborted).toBe(false);
    pulls[0]?.finish();
    await vi.advanceTimersByTimeAsync(10);
    expect((await run)[0]?.state).toBe('DONE');
    const running = events.filter((e) => e.state === 'RUNNING' && e.bytesKnown).map((e) => e.bytesDone);
    expect(running.length).toBeGreaterThan(5);
    expect(running.at(-1)).toBeGreaterThan(running[0] ?? Infinity);
    expect(events.at(-1)).toMatchObject({ state: 'DONE', bytesKnown: true });
  });

  it('does not cut off a pull without blobs while the image filesystem grows (unpacking present content)', async () => {
    let used = 0;
    const { runtime, pulls } = fakeRuntime({ ingests: () => [], fsUsed: () => (used += 4096) });
    const run = warmImages(runtime, { images: [{ image: '127.0.0.1:5000/unpacking:v1', pullPolicy: 'ALWAYS' }], progressTimeoutMs: 3_000 });
    await vi.advanceTimersByTimeAsync(15_000);
    expect(pulls[0]?.signal.aborted).toBe(false);
    pulls[0]?.finish();
    await vi.advanceTimersByTimeAsync(10);
    expect((await run)[0]?.state).toBe('DONE');
  });

  it('cuts off a pull without blobs when the image filesystem stands still', async () => {
    const { runtime, pulls } = fakeRuntime({ ingests: () => [], fsUsed: () => 1_000_000 });
    const run = warmImages(runtime, { images: [{ image: '127.0.0.1:5000/silent:v1', pullPolicy: 'ALWAYS' }], progressTimeoutMs: 3_000 });
    await vi.advanceTimersByTimeAsync(3_600);
    expect((await run)[0]?.failure?.code).toBe('PROGRESS_TIMEOUT');
    expect(pulls[0]?.signal.aborted).toBe(true);
  });

  it('bounds a pull by pullTimeoutMs where bytes are unknown', async () => {
    const { runtime } = fakeRuntime();
    const run = warmImages(runtime, { images: [{ image: '127.0.0.1:5000/slow:v1', pullPolicy: 'ALWAYS' }], pullTimeoutMs: 3_000, progressTimeoutMs: 1_000 });
    await vi.advanceTimersByTimeAsync(2_000);
    await vi.advanceTimersByTimeAsync(1_600);
    expect((await run)[0]?.failure?.code).toBe('TIMED_OUT');
  });

  it('cancels a pull at once with NO_SPACE when the manifest shows the image cannot fit', async () => {
    vi.useFakeTimers();
    const store = fakeContentStore();
    const { runtime, pulls } = fakeRuntime({ content: store, freeBytes: 12 * 2 ** 30 });
    const run = warmImages(runtime, { images: [{ image: '127.0.0.1:5000/team/llm:v1', pullPolicy: 'ALWAYS' }] });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pulls[0]?.signal.aborted).toBe(false);
    // containerd has fetched the manifest: 27 GiB of layers, none of them on the node yet.
    fakeImage(store, { host: '127.0.0.1', path: 'team/llm', createdAt: Date.now(), layers: [9 * 2 ** 30, 9 * 2 ** 30, 9 * 2 ** 30] });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pulls[0]?.signal.aborted).toBe(true);
    const [result] = await run;
    expect(result?.failure?.code).toBe('NO_SPACE');
    expect(result?.failure?.message).toBe(
      'cannot pull 127.0.0.1:5000/team/llm:v1: it needs at least 27.0 GiB but the image filesystem /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs has 12.0 GiB free',
    );
    expect(result?.failure?.needBytes).toBeGreaterThanOrEqual(27 * 2 ** 30);
  });

  it('lets a pull that fits go on', async () => {
    vi.useFakeTimers();
    const store = fakeContentStore();
    const { runtime, pulls } = fakeRuntime({ content: store, freeBytes: 12 * 2 ** 30 });
    const run = warmImages(runtime, { images: [{ image: '127.0.0.1:5000/team/small:v1', pullPolicy: 'ALWAYS' }] });
    await vi.advanceTimersByTimeAsync(100);
    fakeImage(store, { host: '127.0.0.1', path: 'team/small', createdAt: Date.now(), layers: [2 ** 30] });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(store.reads).toBe(1);
    expect(pulls[0]?.signal.aborted).toBe(false);
    pulls[0]?.finish();
    await vi.advanceTimersByTimeAsync(10);
    expect((await run)[0]?.state).toBe('DONE');
  });

  it("reports the runtime's out-of-space failure as NO_SPACE with the filesystem and its free bytes", async () => {
    const { runtime, pulls } = fakeRuntime({ freeBytes: 300 * 2 ** 20 });
    const run = warmImages(runtime, { images: [{ image: '127.0.0.1:5000/team/app:v1', pullPolicy: 'ALWAYS' }] });
    await until(() => pulls.length === 1);
    const details =
      'failed to pull and unpack image "127.0.0.1:5000/team/app:v1": failed to extract layer sha256:0b1f: write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/41/fs/stoker/layer-0: no space left on device: unknown';
    pulls[0]?.fail(Object.assign(new Error(`2 UNKNOWN: ${details}`), { code: status.UNKNOWN, details, metadata: new Metadata() }));
    const [result] = await run;
    expect(result?.failure).toEqual({
      code: 'NO_SPACE',
      message:
        'cannot pull 127.0.0.1:5000/team/app:v1: the image filesystem /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs ran out of space (300.0 MiB free after the failed pull)',
      // Nothing told the agent the image's size here, so the controller cannot wait for it.
      needBytes: 0,
    });
  });
});
