import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../proto/common/log.js';
import { StatusWriter, type StatusApi } from './status-writer.js';

/** Runs fn on a later tick: a fake API answers asynchronously, throwing as a rejection. */
const later = <T>(fn: () => T): Promise<T> => Promise.resolve().then(fn);

const log = createLogger({ name: 'test', level: 'silent' });

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
  spec: { n: number };
  status?: { done: number; note?: string | undefined };
}

/** An in-memory fake of the status subresource with optimistic concurrency. */
class FakeStatusApi implements StatusApi<Obj> {
  obj: Obj = { metadata: { name: 'w', namespace: 'ns', resourceVersion: '1' }, spec: { n: 1 } };
  gets = 0;
  puts: Obj[] = [];
  /** Changes the object between the next get and put (another writer), this many times. */
  interfere = 0;
  failWith: number | undefined;

  get = (): Promise<Obj> => later(() => {
    this.gets++;
    const copy = structuredClone(this.obj);
    if (this.interfere > 0) {
      this.interfere--;
      this.obj = { ...this.obj, spec: { n: this.obj.spec.n + 1 }, metadata: { ...this.obj.metadata, resourceVersion: String(Number(this.obj.metadata.resourceVersion) + 1) } };
    }
    return copy;
  });

  replaceStatus = (_ns: string, _name: string, body: Obj): Promise<Obj> => later(() => {
    if (this.failWith) throw Object.assign(new Error(`HTTP ${this.failWith}`), { code: this.failWith });
    if (body.metadata.resourceVersion !== this.obj.metadata.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409 });
    this.puts.push(structuredClone(body));
    this.obj = { ...this.obj, ...(body.status ? { status: body.status } : {}), metadata: { ...this.obj.metadata, resourceVersion: String(Number(this.obj.metadata.resourceVersion) + 1) } };
    return this.obj;
  });
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('StatusWriter', () => {
  it('coalesces many updates into at most one write per interval, the latest winning', async () => {
    const api = new FakeStatusApi();
    const w = new StatusWriter<Obj>({ api, log, minIntervalMs: 1000 });
    // 100 progress events per second for 5 seconds.
    for (let i = 1; i <= 500; i++) {
      w.schedule('ns', 'w', () => ({ done: i }));
      await vi.advanceTimersByTimeAsync(10);
    }
    await vi.advanceTimersByTimeAsync(2000);
    expect(api.puts.length).toBeGreaterThanOrEqual(5);
    expect(api.puts.length).toBeLessThanOrEqual(6);
    expect(w.writes).toBe(api.puts.length);
    expect(api.obj.status?.done).toBe(500);
  });

  it('computes against the object read at write time, and recomputes after a conflict', async () => {
    const api = new FakeStatusApi();
    api.interfere = 2;
    const w = new StatusWriter<Obj>({ api, log });
    const seen: number[] = [];
    w.schedule('ns', 'w', (cur) => {
      seen.push(cur.spec.n);
      return { done: cur.spec.n };
    });
    await w.flush('ns', 'w');
    expect(seen).toEqual([1, 2, 3]);
    expect(w.conflicts).toBe(2);
    expect(api.obj.status?.done).toBe(3);
  });

  it('writes nothing when compute returns undefined or the status is unchanged', async () => {
    const api = new FakeStatusApi();
    api.obj.status = { done: 7 };
    const w = new StatusWriter<Obj>({ api, log });
    w.schedule('ns', 'w', () => undefined);
    await w.flush('ns', 'w');
    w.schedule('ns', 'w', () => ({ done: 7, note: undefined }));
    await w.flush('ns', 'w');
    expect(api.puts).toEqual([]);
    expect(w.writes).toBe(0);
  });

  it('flush writes at once, without waiting for the interval', async () => {
    const api = new FakeStatusApi();
    const w = new StatusWriter<Obj>({ api, log, minIntervalMs: 60_000 });
    w.schedule('ns', 'w', () => ({ done: 1 }));
    await vi.advanceTimersByTimeAsync(1);
    expect(api.puts.length).toBe(1);
    w.schedule('ns', 'w', () => ({ done: 2 }));
    await vi.advanceTimersByTimeAsync(1000);
    expect(api.puts.length).toBe(1); // held back by the interval
    await w.flush('ns', 'w');
    expect(api.puts.length).toBe(2);
    expect(api.obj.status?.done).toBe(2);
  });

  it('keeps objects apart: each has its own interval', async () => {
    const api = new FakeStatusApi();
    const writes: string[] = [];
    const multi: StatusApi<Obj> = {
      get: async (ns, name) => ({ ...(await api.get()), metadata: { name, namespace: ns, resourceVersion: api.obj.metadata.resourceVersion } }),
      replaceStatus: async (ns, name, body) => {
        writes.push(name);
        return api.replaceStatus(ns, name, body);
      },
    };
    const w = new StatusWriter<Obj>({ api: multi, log });
    w.schedule('ns', 'a', () => ({ done: 1 }));
    w.schedule('ns', 'b', () => ({ done: 2 }));
    await vi.advanceTimersByTimeAsync(1);
    expect(writes.sort()).toEqual(['a', 'b']);
  });

  it('rejects flush when the write fails, and retries a scheduled update later', async () => {
    const api = new FakeStatusApi();
    api.failWith = 500;
    const w = new StatusWriter<Obj>({ api, log, minIntervalMs: 100 });
    w.schedule('ns', 'w', () => ({ done: 1 }));
    await expect(w.flush('ns', 'w')).rejects.toThrow(/500/);
    api.failWith = undefined;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(api.obj.status?.done).toBe(1);
  });

  it('drops the update of an object that was deleted (404)', async () => {
    const api = new FakeStatusApi();
    api.failWith = 404;
    const w = new StatusWriter<Obj>({ api, log, minIntervalMs: 100 });
    w.schedule('ns', 'w', () => ({ done: 1 }));
    await vi.advanceTimersByTimeAsync(10_000);
    api.failWith = undefined;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(api.puts).toEqual([]);
  });
});

describe('StatusWriter.cancelPending', () => {
  it('drops what is pending, so a replica that lost the lead writes nothing more', async () => {
    vi.useFakeTimers();
    const api = new FakeStatusApi();
    const w = new StatusWriter<Obj>({ api, log, minIntervalMs: 1000 });
    w.schedule('ns', 'w', () => ({ done: 1 }));
    await vi.advanceTimersByTimeAsync(1);
    w.schedule('ns', 'w', () => ({ done: 2 }));
    w.cancelPending();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(api.puts.map((p) => p.status?.done)).toEqual([1]);
    vi.useRealTimers();
  });
});
