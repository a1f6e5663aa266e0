import { describe, expect, it } from 'vitest';
import { parseImageReference } from '../../proto/common/image-reference.js';
import { fakeContentStore, fakeDigest, fakeImage } from './testing/fake-content-store.js';
import { findImageSize, sourceLabelHost } from './image-size.js';

const START = 1_700_000_000_000;
const MANIFEST_OVERHEAD = 300; // the fake config's size

describe('findImageSize', () => {
  it('finds the manifest the pull fetched and counts the blobs the store does not hold yet', async () => {
    const store = fakeContentStore();
    const ref = parseImageReference('registry.example.com:5000/team/llm:v1');
    expect(await findImageSize(store, ref, START)).toBeUndefined();

    // Layer 1 was on the node before the pull (shared with another image).
    const img = fakeImage(store, { host: 'registry.example.com', path: 'team/llm', createdAt: START + 200, layers: [1000, 2000, 4000], present: [1], presentAt: START - 60_000 });
    const size = await findImageSize(store, ref, START);
    const manifestBytes = store.blobs.get(img.manifest)?.size ?? 0;
    expect(size).toEqual({
      manifest: img.manifest,
      totalBytes: manifestBytes + MANIFEST_OVERHEAD + 7000,
      newBytes: manifestBytes + MANIFEST_OVERHEAD + 5000,
      blobs: [
        { digest: img.config, size: MANIFEST_OVERHEAD },
        { digest: img.layers[0], size: 1000 },
        { digest: img.layers[2], size: 4000 },
      ],
      ambiguous: false,
    });
    // containerd is asked for manifests of that repository only (the label key has no port).
    expect(store.filters[0]).toEqual([
      'labels."containerd.io/distribution.source.registry.example.com"~="^(.*,)?team/llm(,.*)?$",labels."containerd.io/gc.ref.content.config"',
    ]);
  });

  it('ignores manifests from before the pull and of other repositories', async () => {
    const store = fakeContentStore();
    fakeImage(store, { host: 'reg.local', path: 'team/llm', createdAt: START - 3_600_000, layers: [10] });
    fakeImage(store, { host: 'reg.local', path: 'team/llm-base', createdAt: START + 10, layers: [20] });
    fakeImage(store, { host: 'other', path: 'team/llm', createdAt: START + 10, layers: [30] });
    expect(await findImageSize(store, parseImageReference('reg.local/team/llm:v2'), START)).toBeUndefined();
    const mine = fakeImage(store, { host: 'reg.local', path: 'team/llm', createdAt: START + 10, layers: [40] });
    expect((await findImageSize(store, parseImageReference('reg.local/team/llm:v2'), START))?.manifest).toBe(mine.manifest);
  });

  it('takes the smallest when two pulls of the same repository fetched manifests at once', async () => {
    const store = fakeContentStore();
    fakeImage(store, { host: 'reg.local', path: 'a/b', createdAt: START + 10, layers: [5_000_000] });
    const small = fakeImage(store, { host: 'reg.local', path: 'a/b', createdAt: START + 20, layers: [1_000] });
    const size = await findImageSize(store, parseImageReference('reg.local/a/b:v1'), START);
    expect(size?.manifest).toBe(small.manifest);
    // Its blobs may be the other pull's: not to be claimed as this pull's own bytes.
    expect(size?.ambiguous).toBe(true);
  });

  it('by digest: that manifest, or the platform manifest an index names', async () => {
    const store = fakeContentStore();
    const amd64 = fakeImage(store, { host: 'reg.local', path: 'a/b', createdAt: START + 10, layers: [100] });
    const other = fakeImage(store, { host: 'reg.local', path: 'a/b', createdAt: START + 10, layers: [1] });
    expect((await findImageSize(store, parseImageReference(`reg.local/a/b@${amd64.manifest}`), START))?.manifest).toBe(amd64.manifest);
    const index = fakeDigest();
    store.blobs.set(index, { digest: index, size: 500, createdAt: START + 5, updatedAt: START + 5, labels: { 'containerd.io/gc.ref.content.m.0': amd64.manifest } });
    expect((await findImageSize(store, parseImageReference(`reg.local/a/b@${index}`), START))?.manifest).toBe(amd64.manifest);
    expect(other.manifest).not.toBe(amd64.manifest);
  });

  it('names Docker Hub images as containerd labels them', () => {
    expect(sourceLabelHost(parseImageReference('busybox').domain)).toBe('docker.io');
    expect(sourceLabelHost('127.0.0.1:5000')).toBe('127.0.0.1');
    expect(sourceLabelHost('[::1]:5000')).toBe('::1');
  });
});
