import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { createLogger } from '../../proto/common/log.js';
import { startInformer, type Informer, type WatchFn } from './informer.js';

/** Runs fn on a later tick: a fake API answers asynchronously, throwing as a rejection. */
const later = <T>(fn: () => T): Promise<T> => Promise.resolve().then(fn);

const log = createLogger({ name: 'test', level: 'silent' });

function obj(name: string, rv: string, ns = 'ns'): KubernetesObject {
  return { metadata: { name, namespace: ns, resourceVersion: rv } };
}

/** A fake API server: a list of objects and the watches opened on it. */
class FakeWatchServer {
  items: KubernetesObject[] = [];
  rv = 1;
  lists = 0;
  watches: Array<{ query: Record<string, unknown>; send: (type: string, o: unknown) => void; end: (err: unknown) => void; aborted: boolean }> = [];
  listFails = 0;
  /** While true, lists never answer (an API server whose etcd is gone); they end when aborted. */
  listHangs = false;

  list = (signal?: AbortSignal) => this.listHangs
    ? new Promise<never>((_, reject) => signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }))
    : later(() => {
    this.lists++;
    if (this.listFails > 0) {
      this.listFails--;
      throw Object.assign(new Error('connection refused'), { code: 503 });
    }
    return { items: this.items.map((i) => structuredClone(i)), metadata: { resourceVersion: String(this.rv) } };
  });

  watch: WatchFn = (_path, query, onEvent, onDone) => later(() => {
    const w = {
      query,
      aborted: false,
      send: (type: string, o: unknown) => {
        if (!w.aborted) onEvent(type, o);
      },
      end: (err: unknown) => {
        if (!w.aborted) {
          w.aborted = true;
          onDone(err);
        }
      },
    };
    this.watches.push(w);
    return {
      abort: () => {
        w.aborted = true;
      },
    };
  });

  get current() {
    const w = this.watches.at(-1);
    if (!w) throw new Error('no watch');
    return w;
  }
}

let informer: Informer<KubernetesObject> | undefined;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  informer?.stop();
  informer = undefined;
  vi.useRealTimers();
});

function make(server: FakeWatchServer, extra: { watchdogMs?: number; relistIntervalMs?: number; requestTimeoutMs?: number } = {}) {
  const restarts: string[] = [];
  informer = startInformer({
    kc: {} as KubeConfig,
    path: '/api/v1/things',
    name: 'things',
    log,
    list: server.list,
    watch: server.watch,
    watchdogMs: extra.watchdogMs ?? 60_000,
    relistIntervalMs: extra.relistIntervalMs ?? 0,
    ...(extra.requestTimeoutMs !== undefined ? { requestTimeoutMs: extra.requestTimeoutMs } : {}),
    onRestart: (r) => restarts.push(r),
  });
  const events: string[] = [];
  informer.on('add', (o) => events.push(`add ${o.metadata?.name}`));
  informer.on('update', (o) => events.push(`update ${o.metadata?.name}`));
  informer.on('delete', (o) => events.push(`delete ${o.metadata?.name}`));
  informer.start();
  return { inf: informer, events, restarts };
}

describe('startInformer', () => {
  it('lists, then watches from the listed resource version with bookmarks', async () => {
    const server = new FakeWatchServer();
    server.items = [obj('a', '1')];
    server.rv = 5;
    const { inf, events } = make(server);
    await inf.synced;
    await vi.advanceTimersByTimeAsync(1);
    expect(events).toEqual(['add a']);
    expect(server.current.query).toMatchObject({ resourceVersion: '5', allowWatchBookmarks: true });
    server.current.send('ADDED', obj('b', '6'));
    server.current.send('MODIFIED', obj('a', '7'));
    server.current.send('DELETED', obj('b', '8'));
    expect(events).toEqual(['add a', 'add b', 'update a', 'delete b']);
    expect(inf.get('ns/a')?.metadata?.resourceVersion).toBe('7');
    expect(inf.list().map((o) => o.metadata?.name)).toEqual(['a']);
  });

  it('restarts after a watch error, relists, and delivers what changed meanwhile and afterwards', async () => {
    const server = new FakeWatchServer();
    server.items = [obj('a', '1')];
    const { inf, events, restarts } = make(server);
    await inf.synced;
    await vi.advanceTimersByTimeAsync(1);
    // The connection dies; while it is down, 'a' is deleted and 'c' is created.
    server.current.end(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    server.items = [obj('c', '3')];
    server.rv = 3;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(restarts).toContain('error');
    expect(server.lists).toBe(2);
    expect(events).toEqual(['add a', 'add c', 'delete a']);
    // Events on the new watch still arrive.
    server.current.send('ADDED', obj('d', '4'));
    expect(events.at(-1)).toBe('add d');
  });

  it('keeps retrying with backoff while the API server is down', async () => {
    const server = new FakeWatchServer();
    const { inf } = make(server);
    await inf.synced;
    await vi.advanceTimersByTimeAsync(1);
    server.listFails = 3;
    server.current.end(new Error('down'));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(server.lists).toBe(5); // first list, 3 failures, then success
    expect(server.current.aborted).toBe(false);
  });

  it('relists after 410 Gone and continues after a clean close without relisting', async () => {
    const server = new FakeWatchServer();
    const { inf, restarts } = make(server);
    await inf.synced;
    await vi.advanceTimersByTimeAsync(1);
    server.current.send('ADDED', obj('x', '10'));
    server.current.end(null); // server-side timeout: clean close
    await vi.advanceTimersByTimeAsync(1);
    expect(server.lists).toBe(1);
    expect(server.current.query['resourceVersion']).toBe('10');
    server.current.send('ERROR', { kind: 'Status', code: 410 });
    server.current.end(null);
    await vi.advanceTimersByTimeAsync(1);
    expect(restarts).toEqual(['closed', 'gone', 'closed']);
    expect(server.lists).toBe(2);
  });

  it('restarts a watch that has been silent longer than the watchdog, but not one that sends bookmarks', async () => {
    const server = new FakeWatchServer();
    const { inf, restarts, events } = make(server, { watchdogMs: 10_000 });
    await inf.synced;
    await vi.advanceTimersByTimeAsync(1);
    // Healthy but quiet: bookmarks every 4 s keep it alive.
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(4_000);
      server.current.send('BOOKMARK', { metadata: { resourceVersion: String(20 + i) } });
    }
    expect(restarts).toEqual([]);
    expect(server.watches.length).toBe(1);
    // Now the connection goes silent without closing.
    const stalled = server.current;
    await vi.advanceTimersByTimeAsync(15_000);
    expect(restarts).toContain('watchdog');
    expect(stalled.aborted).toBe(true);
    expect(server.watches.length).toBe(2);
    server.current.send('ADDED', obj('late', '99'));
    expect(events).toContain('add late');
  });

  it('relists periodically and reports objects that vanished without an event', async () => {
    const server = new FakeWatchServer();
    server.items = [obj('a', '1'), obj('b', '1')];
    const { inf, events, restarts } = make(server, { relistIntervalMs: 60_000, watchdogMs: 0 });
    await inf.synced;
    server.items = [obj('a', '1')];
    await vi.advanceTimersByTimeAsync(80_000);
    expect(restarts).toContain('relist');
    expect(events).toContain('delete b');
  });

  it('stops watching on stop()', async () => {
    const server = new FakeWatchServer();
    const { inf } = make(server);
    await inf.synced;
    await vi.advanceTimersByTimeAsync(1);
    inf.stop();
    expect(server.current.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(600_000);
    expect(server.watches.length).toBe(1);
  });
});

describe('startInformer through an outage', () => {
  it('retries at most about 2 s apart however long the API server is away, and lists within that of its return', async () => {
    const server = new FakeWatchServer();
    server.items = [obj('a', '1')];
    const { inf, events } = make(server);
    await inf.synced;
    await vi.advanceTimersByTimeAsync(1);
    server.listFails = Infinity;
    server.current.end(new Error('connection refused'));
    await vi.advanceTimersByTimeAsync(60_000);
    const during = server.lists;
    // 250 ms doubling to a 2 s cap (±20%): dozens of tries in a minute, not a handful.
    expect(during).toBeGreaterThan(25);
    // The cache keeps what it had: nothing is reported deleted for a list that failed.
    expect(inf.list().map((o) => o.metadata?.name)).toEqual(['a']);
    expect(events).toEqual(['add a']);
    server.listFails = 0;
    await vi.advanceTimersByTimeAsync(2_400);
    expect(server.lists).toBe(during + 1);
    expect(server.current.aborted).toBe(false);
  });

  it('is fresh from a successful list until a failure, and again from the next successful list; clean watch ends do not count', async () => {
    const server = new FakeWatchServer();
    const { inf } = make(server);
    expect(inf.freshSince()).toBeUndefined();
    await inf.synced;
    const first = inf.freshSince();
    expect(first).toBe(Date.now());
    await vi.advanceTimersByTimeAsync(5_000);
    server.current.end(null); // the server's timeoutSeconds: a clean end
    await vi.advanceTimersByTimeAsync(1);
    expect(inf.freshSince()).toBe(first);
    server.listFails = 2;
    server.current.end(new Error('connection refused'));
    expect(inf.freshSince()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(500);
    expect(inf.freshSince()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(2_000);
    expect(server.lists).toBe(4);
    expect(inf.freshSince()).toBeGreaterThan(first!);
  });

  it('gives up on a list that gets no answer (etcd gone behind the API server) and tries again', async () => {
    const server = new FakeWatchServer();
    const { inf } = make(server, { requestTimeoutMs: 5_000, watchdogMs: 0 });
    await inf.synced;
    await vi.advanceTimersByTimeAsync(1);
    server.listHangs = true;
    const relisted = inf.relist();
    await vi.advanceTimersByTimeAsync(4_000);
    expect(inf.freshSince()).toBeDefined();
    await vi.advanceTimersByTimeAsync(1_100);
    expect(await relisted).toBe(false);
    expect(inf.freshSince()).toBeUndefined();
    server.listHangs = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(inf.freshSince()).toBeDefined();
    expect(await inf.relist()).toBe(true);
  });
});

describe('startInformer with a signal', () => {
  it('stops watching when the signal aborts', async () => {
    const server = new FakeWatchServer();
    const ac = new AbortController();
    const inf = startInformer({ kc: {} as KubeConfig, path: '/x', name: 'x', log, list: server.list, watch: server.watch, signal: ac.signal });
    inf.start();
    await inf.synced;
    await vi.advanceTimersByTimeAsync(1);
    ac.abort();
    expect(server.current.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(600_000);
    expect(server.watches.length).toBe(1);
  });
});
