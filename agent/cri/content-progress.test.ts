import { describe, expect, it } from 'vitest';
import { PullProgressTracker } from './content-progress.js';
import type { Ingest } from './content-service.js';

/** A fake ingest list the test sets before each poll, with a fake clock. */
function fakeTracker(): { tracker: PullProgressTracker; set: (list: Ingest[]) => void; tick: (ms: number) => void } {
  let list: Ingest[] = [];
  let now = 1_000;
  const tracker = new PullProgressTracker(() => Promise.resolve(list.map((i) => ({ ...i }))), { intervalMs: 3_600_000, now: () => now });
  return { tracker, set: (l) => (list = l), tick: (ms) => (now += ms) };
}

describe('PullProgressTracker', () => {
  it('counts the ingests that appear during a pull, completes vanished ones, and ignores leftovers until they move', async () => {
    const { tracker, set, tick } = fakeTracker();
    set([{ ref: 'layer-sha256:old', offset: 5, total: 10 }]);
    const pull = tracker.begin();
    await tracker.poll();
    expect(pull.snapshot()).toMatchObject({ bytesDone: 0, bytesTotal: 0, seenAny: false, active: 0 });

    tick(500);
    set([{ ref: 'layer-sha256:old', offset: 5, total: 10 }, { ref: 'layer-sha256:a', offset: 0, total: 100 }]);
    await tracker.poll();
    expect(pull.snapshot()).toMatchObject({ bytesDone: 0, bytesTotal: 100, seenAny: true, active: 1, exclusive: true, lastProgressAt: 1_500 });

    tick(500);
    set([{ ref: 'layer-sha256:old', offset: 5, total: 10 }, { ref: 'layer-sha256:a', offset: 60, total: 100 }]);
    await tracker.poll();
    expect(pull.snapshot()).toMatchObject({ bytesDone: 60, lastProgressAt: 2_000 });

    tick(500);
    set([{ ref: 'layer-sha256:old', offset: 5, total: 10 }, { ref: 'layer-sha256:a', offset: 60, total: 100 }]);
    await tracker.poll();
    expect(pull.snapshot().lastProgressAt).toBe(2_000);

    tick(500);
    set([{ ref: 'layer-sha256:old', offset: 8, total: 10 }, { ref: 'layer-sha256:a', offset: 90, total: 100 }]);
    await tracker.poll();
    expect(pull.snapshot()).toMatchObject({ bytesDone: 98, bytesTotal: 110, active: 2, lastProgressAt: 3_000 });

    tick(500);
    set([]);
    await tracker.poll();
    expect(pull.snapshot()).toMatchObject({ bytesDone: 110, bytesTotal: 110, active: 0, lastProgressAt: 3_500 });
    pull.end();
  });

  it('marks ingests that appear while several pulls run as shared, and reports the aggregate once', async () => {
    const { tracker, set, tick } = fakeTracker();
    const a = tracker.begin();
    await tracker.poll();
    set([{ ref: 'layer-sha256:a', offset: 10, total: 100 }]);
    tick(100);
    await tracker.poll();
    const b = tracker.begin();
    set([{ ref: 'layer-sha256:a', offset: 20, total: 100 }, { ref: 'layer-sha256:b', offset: 5, total: 50 }]);
    tick(100);
    await tracker.poll();
    expect(a.snapshot()).toMatchObject({ bytesDone: 25, bytesTotal: 150, exclusive: false });
    expect(b.snapshot()).toMatchObject({ bytesDone: 5, bytesTotal: 50, exclusive: false });
    expect(tracker.aggregate()).toEqual({ bytesDone: 25, bytesTotal: 150 });
    a.end();
    b.end();
    expect(tracker.aggregate()).toEqual({ bytesDone: 0, bytesTotal: 0 });
  });

  it("gives each pull its own image's bytes once it claims its blobs, even for blobs that appeared while several ran", async () => {
    const { tracker, set, tick } = fakeTracker();
    const a = tracker.begin();
    const b = tracker.begin();
    await tracker.poll();
    const A1 = `sha256:${'a'.repeat(64)}`;
    const A2 = `sha256:${'c'.repeat(64)}`;
    const B1 = `sha256:${'b'.repeat(64)}`;
    const SHARED = `sha256:${'5'.repeat(64)}`;
    set([
      { ref: `layer-${A1}`, offset: 10, total: 100 },
      { ref: `layer-${B1}`, offset: 7, total: 40 },
      { ref: `layer-${SHARED}`, offset: 3, total: 30 },
    ]);
    tick(100);
    await tracker.poll();
    // Before either knows its manifest: every ingest counts for both, shared.
    expect(a.snapshot()).toMatchObject({ bytesDone: 20, bytesTotal: 170, exclusive: false });

    a.claim([{ digest: A1, size: 100 }, { digest: A2, size: 50 }, { digest: SHARED, size: 30 }]);
    expect(a.snapshot()).toMatchObject({ bytesDone: 13, bytesTotal: 180, exclusive: true, seenAny: true });
    // b has not claimed yet: it still counts every ingest it saw, A1's too, and says so.
    expect(b.snapshot()).toMatchObject({ bytesDone: 20, exclusive: false });
    b.claim([{ digest: B1, size: 40 }, { digest: SHARED, size: 30 }]);
    expect(b.snapshot()).toMatchObject({ bytesDone: 10, bytesTotal: 70, exclusive: true });

    // A blob that appears later goes to the pull that claimed it, not to every pull in flight.
    set([
      { ref: `layer-${A1}`, offset: 100, total: 100 },
      { ref: `layer-${B1}`, offset: 40, total: 40 },
      { ref: `layer-${SHARED}`, offset: 30, total: 30 },
      { ref: `layer-${A2}`, offset: 25, total: 50 },
    ]);
    tick(100);
    await tracker.poll();
    expect(a.snapshot()).toMatchObject({ bytesDone: 155, bytesTotal: 180, active: 3, lastProgressAt: 1_200 });
    expect(b.snapshot()).toMatchObject({ bytesDone: 70, bytesTotal: 70, active: 2 });
    set([]);
    tick(100);
    await tracker.poll();
    expect(a.snapshot()).toMatchObject({ bytesDone: 180, bytesTotal: 180, active: 0 });
    a.end();
    b.end();
  });

  it('reports listing errors and keeps going', async () => {
    const errors: unknown[] = [];
    let fail = true;
    let list: Ingest[] = [];
    const tracker = new PullProgressTracker(
      () => (fail ? Promise.reject(new Error('unavailable')) : Promise.resolve(list)),
      { intervalMs: 3_600_000, onError: (e) => errors.push(e) },
    );
    const pull = tracker.begin();
    await tracker.poll();
    expect(errors).toHaveLength(1);
    fail = false;
    await tracker.poll(); // the first listing that works is the baseline
    list = [{ ref: 'r', offset: 1, total: 2 }];
    await tracker.poll();
    expect(pull.snapshot().bytesTotal).toBe(2);
    tracker.close();
  });
});
