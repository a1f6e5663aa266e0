import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { V1Lease } from '@kubernetes/client-node';
import { createLogger } from '../../proto/common/log.js';
import { LeaderElector, type LeaseApi } from './leader.js';

/** Runs fn on a later tick: a fake API answers asynchronously, throwing as a rejection. */
const later = <T>(fn: () => T): Promise<T> => Promise.resolve().then(fn);

const log = createLogger({ name: 'test', level: 'silent' });

/** An in-memory fake of the Lease API with resource versions, like the API server's. */
class FakeLeaseApi implements LeaseApi {
  lease: V1Lease | undefined;
  rv = 0;
  down = false;
  /** While true, every call is accepted and never answered until its signal aborts (etcd gone behind the API server). */
  hang = false;
  /** Calls that were cancelled by their signal. */
  cancelled = 0;
  private hold<T>(signal: AbortSignal | undefined, fn: () => T): Promise<T> {
    if (!this.hang) return later(fn);
    return new Promise<T>((_, reject) =>
      signal?.addEventListener('abort', () => {
        this.cancelled++;
        reject(new Error('aborted'));
      }, { once: true }),
    );
  }
  read = (_ns: string, _name: string, signal?: AbortSignal): Promise<V1Lease | undefined> => this.hold(signal, () => {
    if (this.down) throw Object.assign(new Error('unavailable'), { code: 503 });
    return this.lease ? (JSON.parse(JSON.stringify(this.lease)) as V1Lease) : undefined;
  });
  create = (_ns: string, l: V1Lease): Promise<V1Lease> => later(() => {
    if (this.down) throw Object.assign(new Error('unavailable'), { code: 503 });
    if (this.lease) throw Object.assign(new Error('exists'), { code: 409 });
    this.lease = JSON.parse(JSON.stringify({ ...l, metadata: { ...l.metadata, resourceVersion: String(++this.rv) } })) as V1Lease;
    return this.lease;
  });
  replace = (_ns: string, _name: string, l: V1Lease): Promise<V1Lease> => later(() => {
    if (this.down) throw Object.assign(new Error('unavailable'), { code: 503 });
    if (l.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409 });
    this.lease = JSON.parse(JSON.stringify({ ...l, metadata: { ...l.metadata, resourceVersion: String(++this.rv) } })) as V1Lease;
    return this.lease;
  });
}

function elector(api: LeaseApi, identity: string, events: string[]) {
  return new LeaderElector({
    api,
    namespace: 'stoker-system',
    name: 'stoker-controller',
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    log,
    onStartedLeading: (signal) => {
      events.push(`${identity} started`);
      signal.addEventListener('abort', () => events.push(`${identity} term ended`));
    },
    onStoppedLeading: () => events.push(`${identity} stopped`),
  });
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('LeaderElector', () => {
  it('lets exactly one of two candidates lead, and renews the Lease', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    const b = elector(api, 'b', events);
    a.start();
    b.start();
    await vi.advanceTimersByTimeAsync(30_000);
    expect([a.isLeader(), b.isLeader()].filter(Boolean).length).toBe(1);
    const leader = a.isLeader() ? 'a' : 'b';
    expect(api.lease?.spec?.holderIdentity).toBe(leader);
    expect(events).toEqual([`${leader} started`]);
    const renew1 = String(api.lease?.spec?.renewTime);
    await vi.advanceTimersByTimeAsync(4_000);
    expect(String(api.lease?.spec?.renewTime)).not.toBe(renew1);
    await a.stop();
    await b.stop();
  });

  it('hands over at once when the leader stops and releases the Lease', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    a.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(a.isLeader()).toBe(true);
    const b = elector(api, 'b', events);
    b.start();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(b.isLeader()).toBe(false);
    await a.stop();
    expect(api.lease?.spec?.holderIdentity).toBe('');
    await vi.advanceTimersByTimeAsync(3_000);
    expect(b.isLeader()).toBe(true);
    expect(events).toEqual(['a started', 'a term ended', 'a stopped', 'b started']);
    expect(api.lease?.spec?.leaseTransitions).toBe(1);
    await b.stop();
  });

  it('takes over a Lease whose holder stopped renewing, after the lease duration', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    api.lease = {
      metadata: { name: 'stoker-controller', namespace: 'stoker-system', resourceVersion: '7' },
      spec: { holderIdentity: 'dead', leaseDurationSeconds: 15, renewTime: new Date() },
    };
    api.rv = 7;
    const b = elector(api, 'b', events);
    b.start();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(b.isLeader()).toBe(false);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(b.isLeader()).toBe(true);
    expect(api.lease?.spec?.leaseTransitions).toBe(1);
    await b.stop();
  });

  it('steps down when it cannot renew within the renew deadline', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    a.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(a.isLeader()).toBe(true);
    api.down = true;
    await vi.advanceTimersByTimeAsync(8_000);
    expect(a.isLeader()).toBe(true);
    await vi.advanceTimersByTimeAsync(6_000);
    expect(a.isLeader()).toBe(false);
    expect(events).toEqual(['a started', 'a term ended', 'a stopped']);
    api.down = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(a.isLeader()).toBe(true);
    await a.stop();
  });
});

describe('LeaderElector through an outage', () => {
  it('steps down at its renew deadline even when the API server accepts calls and never answers them', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    a.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(a.isLeader()).toBe(true);
    const lastRenew = Date.now();
    await vi.advanceTimersByTimeAsync(1_950);
    api.hang = true;
    await vi.advanceTimersByTimeAsync(9_000);
    expect(a.isLeader()).toBe(true);
    // Its last renewal round started at ~2 s; the deadline is 10 s after that.
    await vi.advanceTimersByTimeAsync(lastRenew + 12_100 - Date.now());
    expect(a.isLeader()).toBe(false);
    expect(api.cancelled).toBeGreaterThan(0);
    expect(events).toEqual(['a started', 'a term ended', 'a stopped']);
    api.hang = false;
    await vi.advanceTimersByTimeAsync(13_000);
    expect(a.isLeader()).toBe(true);
    await a.stop();
  });

  it('a candidate gives up a call that hangs after two retry periods, so it leads within seconds of the API server answering', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    a.start();
    await vi.advanceTimersByTimeAsync(100);
    api.hang = true;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(a.isLeader()).toBe(false);
    api.hang = false;
    // Retry period 2 s: a hung call ends after 4 s, the next round comes 2-2.4 s later.
    await vi.advanceTimersByTimeAsync(6_500);
    expect(a.isLeader()).toBe(true);
    await a.stop();
  });

  it('two replicas through a 30 s outage: the leader stops before the standby may start, and one leads afterwards', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    a.start();
    await vi.advanceTimersByTimeAsync(100);
    const b = elector(api, 'b', events);
    b.start();
    await vi.advanceTimersByTimeAsync(5_000);
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    api.down = true;
    await vi.advanceTimersByTimeAsync(30_000);
    expect([a.isLeader(), b.isLeader()]).toEqual([false, false]);
    api.down = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
    // Never two terms at once: a's term ended before any later term began.
    expect(events.slice(0, 3)).toEqual(['a started', 'a term ended', 'a stopped']);
    expect(events.slice(3)).toHaveLength(1);
    await a.stop();
    await b.stop();
  });

  it('a standby dates what it saw from when its read returned, not from when it asked', async () => {
    const api = new FakeLeaseApi();
    const events: string[] = [];
    const a = elector(api, 'a', events);
    a.start();
    await vi.advanceTimersByTimeAsync(100);
    // The leader dies without releasing; a standby's read takes 3.5 s and then returns its last renewal.
    await a.stop();
    api.lease = { ...api.lease!, spec: { ...api.lease!.spec, holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: new Date() } };
    const slow = new FakeLeaseApi();
    slow.lease = api.lease;
    slow.rv = api.rv;
    const read = slow.read;
    let first = true;
    slow.read = (ns, name, signal) => {
      if (!first) return read(ns, name, signal);
      first = false;
      return new Promise((r) => setTimeout(() => void read(ns, name, signal).then(r), 3_500));
    };
    const b = elector(slow, 'b', events);
    b.start();
    // Seen at 3.5 s: it may take over 15 s after that, not 15 s after it asked.
    await vi.advanceTimersByTimeAsync(3_500 + 14_000);
    expect(b.isLeader()).toBe(false);
    await vi.advanceTimersByTimeAsync(4_000);
    expect(b.isLeader()).toBe(true);
    await b.stop();
  });
});
