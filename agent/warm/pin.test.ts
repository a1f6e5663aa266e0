import { describe, expect, it } from 'vitest';
import type { CriImage } from '../../proto/cri.js';
import type { ImageLabels } from '../cri/image-names.js';
import { PIN_LABEL_KEY, pinImage, recordNames, type PinRuntime } from './pin.js';

/** A fake containerd: image records with labels, and a CRI plugin that honours the label when `honours`. */
function fakeContainerd(honours: boolean) {
  const records = new Map<string, Record<string, string>>([
    ['reg.local/app:1', {}],
    ['reg.local/app@sha256:aaa', {}],
    ['sha256:111', { other: 'x' }],
  ]);
  const updates: string[] = [];
  const labels: ImageLabels = {
    labels: (name) => Promise.resolve(records.has(name) ? { ...records.get(name) } : undefined),
    setLabel: (name, key, value) => {
      const r = records.get(name);
      if (!r) return Promise.resolve(false);
      updates.push(`${name} ${key}=${value ?? '(removed)'}`);
      if (value === undefined) delete r[key];
      else r[key] = value;
      return Promise.resolve(true);
    },
  };
  const status = (): CriImage => ({
    id: 'sha256:111',
    repoTags: ['reg.local/app:1'],
    repoDigests: ['reg.local/app@sha256:aaa'],
    size: 10,
    spec: null,
    pinned: honours && records.get('sha256:111')?.[PIN_LABEL_KEY] === 'pinned',
  });
  const runtime: PinRuntime = { labels, imageStatus: (image) => Promise.resolve(image === 'reg.local/app:1' ? status() : undefined) };
  return { runtime, records, updates };
}

describe('pinImage', () => {
  it("labels every record of the image and reports CRI's pinned as read afterwards", async () => {
    const honoured = fakeContainerd(true);
    expect(await pinImage(honoured.runtime, 'reg.local/app:1', true)).toEqual({ label: 'PIN_LABEL_SET', pinned: true, present: true, changed: 3 });
    expect([...honoured.records.values()].every((r) => r[PIN_LABEL_KEY] === 'pinned')).toBe(true);
    // containerd 1.6: the label is set, but CRI still says not pinned, and so does the outcome.
    const old = fakeContainerd(false);
    expect(await pinImage(old.runtime, 'reg.local/app:1', true)).toMatchObject({ label: 'PIN_LABEL_SET', pinned: false, changed: 3 });
  });

  it('removes the label (only where present, keeping other labels), and is a no-op the second time', async () => {
    const c = fakeContainerd(true);
    await pinImage(c.runtime, 'reg.local/app:1', true);
    c.updates.length = 0;
    expect(await pinImage(c.runtime, 'reg.local/app:1', false)).toMatchObject({ pinned: false, changed: 3 });
    expect(c.records.get('sha256:111')).toEqual({ other: 'x' });
    expect(await pinImage(c.runtime, 'reg.local/app:1', false)).toMatchObject({ changed: 0 });
    expect(c.updates).toHaveLength(3);
  });

  it('says UNSUPPORTED where the runtime has no image labels, and nothing for an absent image', async () => {
    const c = fakeContainerd(false);
    expect(await pinImage({ ...c.runtime, labels: undefined }, 'reg.local/app:1', true)).toEqual({ label: 'PIN_LABEL_UNSUPPORTED', pinned: false, present: true, changed: 0 });
    expect(await pinImage(c.runtime, 'reg.local/gone:1', true)).toEqual({ label: 'PIN_LABEL_UNSPECIFIED', pinned: false, present: false, changed: 0 });
  });

  it('names each record once: tags, repo digests, id', () => {
    expect(recordNames({ id: 'sha256:1', repoTags: ['a:1', 'a:1'], repoDigests: ['a@sha256:2'], size: 0, spec: null, pinned: false })).toEqual(['a:1', 'a@sha256:2', 'sha256:1']);
  });
});
