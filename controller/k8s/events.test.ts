import { describe, expect, it } from 'vitest';
import type { CoreV1Event } from '@kubernetes/client-node';
import { createLogger } from '../../proto/common/log.js';
import { EventRecorder, type EventsApi } from './events.js';

/** Runs fn on a later tick: a fake API answers asynchronously, throwing as a rejection. */
const later = <T>(fn: () => T): Promise<T> => Promise.resolve().then(fn);

const log = createLogger({ name: 'test', level: 'silent' });

/** An in-memory fake of the namespaced Events API. */
class FakeEventsApi implements EventsApi {
  events = new Map<string, CoreV1Event>();
  calls: string[] = [];
  fail = false;
  create = (namespace: string, e: CoreV1Event): Promise<CoreV1Event> => later(() => {
    this.calls.push('create');
    if (this.fail) throw Object.assign(new Error('forbidden'), { code: 403 });
    this.events.set(`${namespace}/${e.metadata.name}`, structuredClone(e));
    return e;
  });
  bump = (namespace: string, name: string, change: { count: number; lastTimestamp: Date }) => later(() => {
    this.calls.push('bump');
    if (this.fail) throw Object.assign(new Error('forbidden'), { code: 403 });
    const cur = this.events.get(`${namespace}/${name}`);
    if (!cur) throw Object.assign(new Error('not found'), { code: 404 });
    const next = { ...cur, ...change };
    this.events.set(`${namespace}/${name}`, next);
    return next;
  });
}

const warmup = { apiVersion: 'stoker.io/v1alpha1', kind: 'Warmup', metadata: { name: 'w1', namespace: 'team', uid: 'u-1' } };

describe('EventRecorder', () => {
  it('writes an Event about the object with its reference, type, reason and message', async () => {
    const api = new FakeEventsApi();
    const rec = new EventRecorder({ api, log, component: 'stoker-controller' });
    rec.record(warmup, 'Normal', 'Started', 'warming 3 nodes');
    await rec.idle();
    const [e] = [...api.events.values()];
    expect(e?.involvedObject).toMatchObject({ kind: 'Warmup', name: 'w1', namespace: 'team', uid: 'u-1', apiVersion: 'stoker.io/v1alpha1' });
    expect(e).toMatchObject({ type: 'Normal', reason: 'Started', message: 'warming 3 nodes', count: 1 });
    expect(e?.metadata.namespace).toBe('team');
    expect(rec.written).toBe(1);
  });

  it('aggregates repeats into one Event with a count', async () => {
    const api = new FakeEventsApi();
    const rec = new EventRecorder({ api, log, component: 'stoker-controller' });
    for (let i = 0; i < 5; i++) rec.record(warmup, 'Warning', 'NodeFailed', 'node-2: agent did not answer');
    rec.record(warmup, 'Warning', 'NodeFailed', 'node-3: agent did not answer');
    await rec.idle();
    const counts = [...api.events.values()].map((e) => [e.message, e.count]).sort();
    expect(counts).toEqual([
      ['node-2: agent did not answer', 5],
      ['node-3: agent did not answer', 1],
    ]);
    expect(api.calls.filter((c) => c === 'create').length).toBe(2);
  });

  it('creates a fresh Event when the aggregated one has gone', async () => {
    const api = new FakeEventsApi();
    const rec = new EventRecorder({ api, log, component: 'stoker-controller' });
    rec.record(warmup, 'Normal', 'Completed', 'done');
    await rec.idle();
    api.events.clear();
    rec.record(warmup, 'Normal', 'Completed', 'done');
    await rec.idle();
    expect([...api.events.values()].map((e) => e.count)).toEqual([1]);
  });

  it('never throws, even when the API refuses or the object has no name', async () => {
    const api = new FakeEventsApi();
    api.fail = true;
    const rec = new EventRecorder({ api, log, component: 'stoker-controller' });
    expect(() => rec.record(warmup, 'Normal', 'Started', 'x')).not.toThrow();
    expect(() => rec.record({ metadata: {} }, 'Normal', 'Started', 'x')).not.toThrow();
    await expect(rec.idle()).resolves.toBeUndefined();
    expect(rec.written).toBe(0);
  });

  it('caps long messages', async () => {
    const api = new FakeEventsApi();
    const rec = new EventRecorder({ api, log, component: 'stoker-controller' });
    rec.record(warmup, 'Warning', 'Failed', 'x'.repeat(5000));
    await rec.idle();
    expect([...api.events.values()][0]?.message?.length).toBe(1024);
  });

  it('keeps nothing for an object once it is deleted, even with its Events still being written', async () => {
    const api = new FakeEventsApi();
    const rec = new EventRecorder({ api, log, component: 'stoker-controller' });
    const other = { ...warmup, metadata: { name: 'w2', namespace: 'team', uid: 'u-2' } };
    rec.record(warmup, 'Normal', 'Started', 'warming 3 nodes');
    rec.record(warmup, 'Normal', 'Completed', '3 of 3 node(s) warmed');
    rec.record(other, 'Normal', 'Started', 'warming 3 nodes');
    // Deleted while its Events are still queued: they are written, then forgotten.
    rec.forget(warmup);
    await rec.idle();
    expect(api.events.size).toBe(3);
    expect(rec.remembered).toBe(1);
    // The other object's repeats still aggregate.
    rec.record(other, 'Normal', 'Started', 'warming 3 nodes');
    await rec.idle();
    expect([...api.events.values()].filter((e) => e.involvedObject.name === 'w2').map((e) => e.count)).toEqual([2]);
  });

  it('drops what it keeps for aggregation once the window has passed', async () => {
    const api = new FakeEventsApi();
    let now = Date.parse('2025-01-01T00:00:00Z');
    const rec = new EventRecorder({ api, log, component: 'stoker-controller', aggregateWindowMs: 60_000, now: () => new Date(now) });
    for (let i = 0; i < 100; i++) rec.record({ ...warmup, metadata: { ...warmup.metadata, name: `w-${i}`, uid: `u-${i}` } }, 'Normal', 'Completed', 'done');
    await rec.idle();
    expect(rec.remembered).toBe(100);
    now += 60_001;
    rec.record(warmup, 'Normal', 'Completed', 'done');
    await rec.idle();
    expect(rec.remembered).toBe(1);
    expect(api.events.size).toBe(101);
  });
});
