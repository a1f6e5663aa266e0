import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WorkQueue } from './workqueue.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Runs the queue until aborted; returns the abort function and the run promise. */
function runQueue(q: WorkQueue, concurrency: number, handler: (key: string) => Promise<{ requeueAfterMs?: number } | void>) {
  const ac = new AbortController();
  const done = q.run(concurrency, handler, ac.signal);
  return { stop: async () => (ac.abort(), await done) };
}

describe('WorkQueue', () => {
  it('merges duplicate keys added before a worker takes them', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    q.add('ns/a');
    q.add('ns/b');
    q.add('ns/a');
    expect(q.len()).toBe(2);
    const seen: string[] = [];
    const r = runQueue(q, 1, (k) => {
      seen.push(k);
      return Promise.resolve();
    });
    await vi.advanceTimersByTimeAsync(10);
    await r.stop();
    expect(seen).toEqual(['ns/a', 'ns/b']);
  });

  it('never runs one key twice at once, and runs it again when it was added during processing', async () => {
    const q = new WorkQueue();
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    let release!: () => void;
    const r = runQueue(q, 4, async () => {
      running++;
      runs++;
      maxRunning = Math.max(maxRunning, running);
      if (runs === 1) await new Promise<void>((res) => (release = res));
      running--;
    });
    q.add('ns/a');
    await vi.advanceTimersByTimeAsync(1);
    q.add('ns/a'); // arrives while the first run is in progress
    q.add('ns/a');
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toBe(1);
    release();
    await vi.advanceTimersByTimeAsync(1);
    await r.stop();
    expect(runs).toBe(2);
    expect(maxRunning).toBe(1);
  });

  it('runs different keys in parallel up to the concurrency', async () => {
    const q = new WorkQueue();
    let running = 0;
    let maxRunning = 0;
    const r = runQueue(q, 3, async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((res) => setTimeout(res, 100));
      running--;
    });
    for (const k of ['a', 'b', 'c', 'd', 'e', 'f']) q.add(`ns/${k}`);
    await vi.advanceTimersByTimeAsync(500);
    await r.stop();
    expect(maxRunning).toBe(3);
  });

  it('retries a failing key with per-key exponential backoff and resets it on success', async () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000 });
    const times: number[] = [];
    const start = Date.now();
    const r = runQueue(q, 1, () => {
      times.push(Date.now() - start);
      return times.length < 5 ? Promise.reject(new Error('boom')) : Promise.resolve();
    });
    q.add('ns/a');
    await vi.advanceTimersByTimeAsync(5000);
    await r.stop();
    // Attempts at 0, +100, +200, +400, +800.
    expect(times).toEqual([0, 100, 300, 700, 1500]);
    expect(q.numRequeues('ns/a')).toBe(0);
  });

  it('caps the backoff at the maximum', () => {
    const q = new WorkQueue({ baseDelayMs: 5, maxDelayMs: 1000 });
    expect(q.backoffFor(0)).toBe(5);
    expect(q.backoffFor(3)).toBe(40);
    expect(q.backoffFor(30)).toBe(1000);
  });

  it('requeues after the delay a handler asks for, keeping the earliest of several delays', async () => {
    const q = new WorkQueue();
    const times: number[] = [];
    const start = Date.now();
    const r = runQueue(q, 1, () => {
      times.push(Date.now() - start);
      return Promise.resolve(times.length === 1 ? { requeueAfterMs: 1000 } : undefined);
    });
    q.add('ns/a');
    await vi.advanceTimersByTimeAsync(10);
    q.addAfter('ns/a', 5000); // later than the pending 1000 ms: ignored
    await vi.advanceTimersByTimeAsync(8000);
    await r.stop();
    expect(times).toEqual([0, 1000]);
  });

  it('keeps queued keys across runs (a new leadership term picks them up)', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    const ac = new AbortController();
    ac.abort();
    await q.run(2, () => Promise.reject(new Error('must not run')), ac.signal);
    expect(q.len()).toBe(1);
    const seen: string[] = [];
    const r = runQueue(q, 1, (k) => {
      seen.push(k);
      return Promise.resolve();
    });
    await vi.advanceTimersByTimeAsync(1);
    await r.stop();
    expect(seen).toEqual(['ns/a']);
  });

  it('rejects a bad concurrency with the value named', async () => {
    const q = new WorkQueue();
    await expect(q.run(0, () => Promise.resolve(), new AbortController().signal)).rejects.toThrow(/got 0/);
  });
});
