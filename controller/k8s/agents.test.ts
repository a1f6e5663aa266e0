import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { V1Lease } from '@kubernetes/client-node';
import { AgentDirectory, agentFromLease } from './agents.js';

function lease(node: string, renewTime: string | Date, opts: { duration?: number; endpoint?: string; label?: boolean } = {}): V1Lease {
  return {
    metadata: {
      name: `stoker-agent-${node}`,
      namespace: 'stoker-system',
      resourceVersion: String(Math.random()),
      labels: opts.label === false ? {} : { 'stoker.io/agent': 'true' },
      annotations: { 'stoker.io/grpc-endpoint': opts.endpoint ?? `127.0.0.1:${node.length + 7000}`, 'stoker.io/agent-version': '0.1.0' },
    },
    spec: { holderIdentity: node, leaseDurationSeconds: opts.duration ?? 30, renewTime: renewTime as Date },
  };
}

/** A fake lease informer: a list, its event handlers, its freshness and relists. */
class FakeLeaseInformer {
  leases: V1Lease[] = [];
  handlers = new Map<string, Array<(l: V1Lease) => void>>();
  /** What freshSince() answers; undefined while "cut off". */
  fresh: number | undefined = Date.now();
  relists = 0;
  relistOk = true;
  list = () => this.leases;
  on = (ev: string, fn: (l: V1Lease) => void) => this.handlers.set(ev, [...(this.handlers.get(ev) ?? []), fn]);
  off = (ev: string, fn: (l: V1Lease) => void) => this.handlers.set(ev, (this.handlers.get(ev) ?? []).filter((f) => f !== fn));
  freshSince = () => this.fresh;
  relist = () => {
    this.relists++;
    if (!this.relistOk) this.fresh = undefined;
    return Promise.resolve(this.relistOk);
  };
  emit(ev: 'add' | 'update' | 'delete', l: V1Lease) {
    for (const fn of this.handlers.get(ev) ?? []) fn(l);
  }
  /** Replaces the Lease of l's node (an update event). */
  renew(l: V1Lease) {
    this.leases = [...this.leases.filter((x) => x.spec?.holderIdentity !== l.spec?.holderIdentity), l];
    this.emit('update', l);
  }
}

/** A fake ApiHealth. */
class FakeHealth {
  since: number | undefined = Date.now();
  healthySince = () => this.since;
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
});
afterEach(() => {
  vi.useRealTimers();
});

describe('agentFromLease', () => {
  it('reads node, endpoint, version and expiry, with renewTime as the wire string or a Date', () => {
    const a = agentFromLease(lease('node-1', '2030-01-01T00:00:00.000000Z'));
    expect(a).toEqual({
      node: 'node-1',
      info: { endpoint: '127.0.0.1:7006', version: '0.1.0', renewedAt: new Date('2030-01-01T00:00:00Z'), expiresAt: new Date('2030-01-01T00:00:30Z') },
    });
    expect(agentFromLease(lease('node-1', new Date('2030-01-01T00:00:00Z')))?.info.renewedAt).toEqual(new Date('2030-01-01T00:00:00Z'));
  });

  it('ignores Leases that are not agent announcements or lack an endpoint', () => {
    expect(agentFromLease(lease('n', '2030-01-01T00:00:00Z', { label: false }))).toBeUndefined();
    const noEndpoint = lease('n', '2030-01-01T00:00:00Z');
    delete noEndpoint.metadata!.annotations!['stoker.io/grpc-endpoint'];
    expect(agentFromLease(noEndpoint)).toBeUndefined();
  });
});

describe('AgentDirectory', () => {
  it('lists only agents whose Lease has not lapsed; one lapsed before it was ever seen is unconfirmed until a whole Lease has passed', async () => {
    const inf = new FakeLeaseInformer();
    inf.leases = [lease('fresh', '2029-12-31T23:59:50Z'), lease('stale', '2029-12-31T23:59:00Z')];
    const dir = new AgentDirectory({ informer: inf });
    expect([...dir.live().keys()]).toEqual(['fresh']);
    expect(dir.get('stale')).toBeUndefined();
    expect(dir.get('fresh')?.endpoint).toBe('127.0.0.1:7005');
    // The directory has watched for 0 s: a Lease that lapsed before proves nothing yet.
    expect([...dir.unconfirmed()]).toEqual(['stale']);
    await vi.advanceTimersByTimeAsync(29_000);
    expect([...dir.unconfirmed()]).toEqual(['stale']);
    // 20 s in, "fresh" lapsed too; it was seen live, so it is presumed live until judged.
    expect(dir.get('fresh')).toMatchObject({ endpoint: '127.0.0.1:7005', presumed: true });
    await vi.advanceTimersByTimeAsync(1_500);
    // 30 s of a healthy API server without a renewal, confirmed by a fresh list: both are gone.
    expect(inf.relists).toBeGreaterThan(0);
    expect(dir.live().size).toBe(0);
    expect(dir.unconfirmed().size).toBe(0);
    dir.stop();
  });

  it("emits 'change' on a new agent, and again when its Lease lapses without any event", async () => {
    const inf = new FakeLeaseInformer();
    const dir = new AgentDirectory({ informer: inf });
    let changes = 0;
    dir.on('change', () => changes++);
    const l = lease('node-1', new Date(Date.now()), { duration: 10 });
    inf.leases = [l];
    inf.emit('add', l);
    expect(changes).toBe(1);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(changes).toBe(1);
    await vi.advanceTimersByTimeAsync(6_000);
    expect(changes).toBe(2);
    expect(dir.live().size).toBe(0);
    dir.stop();
  });

  it('does not emit for a renewal that changes nothing', () => {
    const inf = new FakeLeaseInformer();
    const dir = new AgentDirectory({ informer: inf });
    let changes = 0;
    dir.on('change', () => changes++);
    inf.leases = [lease('node-1', new Date(Date.now()))];
    inf.emit('add', inf.leases[0]!);
    inf.leases = [lease('node-1', new Date(Date.now() + 1000))];
    inf.emit('update', inf.leases[0]!);
    expect(changes).toBe(1);
    inf.leases = [lease('node-1', new Date(Date.now() + 1000), { endpoint: '127.0.0.1:9999' })];
    inf.emit('update', inf.leases[0]!);
    expect(changes).toBe(2);
    dir.stop();
  });
});

describe('AgentDirectory through an outage', () => {
  it('keeps an agent whose Lease lapsed while the informer was cut off, and gives it a whole Lease after the return', async () => {
    const inf = new FakeLeaseInformer();
    const start = Date.now();
    inf.leases = [lease('node-1', new Date(start), { duration: 10 })];
    const dir = new AgentDirectory({ informer: inf });
    let changes = 0;
    dir.on('change', () => changes++);
    // The API server goes away at 2 s and comes back at 25 s: no renewal reaches the controller.
    await vi.advanceTimersByTimeAsync(2_000);
    inf.fresh = undefined;
    await vi.advanceTimersByTimeAsync(23_000);
    expect(dir.get('node-1')).toMatchObject({ endpoint: '127.0.0.1:7006', presumed: true });
    expect(changes).toBe(0);
    expect(inf.relists).toBe(0);
    // Back (the informer listed again at 25 s). The agent renews a moment later: it never left.
    inf.fresh = Date.now();
    await vi.advanceTimersByTimeAsync(1_000);
    inf.renew(lease('node-1', new Date(Date.now()), { duration: 10 }));
    expect(dir.get('node-1')?.presumed).toBeUndefined();
    expect(changes).toBe(0);
    dir.stop();
  });

  it('judges an agent gone only after a whole Lease of fresh data without its renewal, confirmed by a list', async () => {
    const inf = new FakeLeaseInformer();
    inf.leases = [lease('node-1', new Date(Date.now()), { duration: 10 })];
    const dir = new AgentDirectory({ informer: inf });
    await vi.advanceTimersByTimeAsync(2_000);
    inf.fresh = undefined;
    await vi.advanceTimersByTimeAsync(18_000);
    const back = Date.now();
    inf.fresh = back;
    // 9.9 s after the return: still presumed (it could not have renewed while we could not see).
    await vi.advanceTimersByTimeAsync(9_900);
    expect(dir.get('node-1')?.presumed).toBe(true);
    // A list that fails at the verdict leaves the informer not fresh: still no verdict.
    inf.relistOk = false;
    await vi.advanceTimersByTimeAsync(200);
    expect(inf.relists).toBe(1);
    expect(dir.get('node-1')?.presumed).toBe(true);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(dir.get('node-1')?.presumed).toBe(true);
    // Fresh again: a whole Lease later, confirmed by a list that works, it is gone.
    inf.relistOk = true;
    inf.fresh = Date.now();
    await vi.advanceTimersByTimeAsync(9_000);
    expect(dir.get('node-1')).toBeDefined();
    await vi.advanceTimersByTimeAsync(1_100);
    expect(dir.get('node-1')).toBeUndefined();
    // A renewal brings it back at once.
    inf.renew(lease('node-1', new Date(Date.now()), { duration: 10 }));
    expect(dir.get('node-1')?.presumed).toBeUndefined();
    dir.stop();
  });

  it('does not judge while the API server does not answer, though the watch stays open and quiet (etcd gone)', async () => {
    const inf = new FakeLeaseInformer();
    const health = new FakeHealth();
    inf.leases = [lease('node-1', new Date(Date.now()), { duration: 10 })];
    const dir = new AgentDirectory({ informer: inf, health });
    await vi.advanceTimersByTimeAsync(3_000);
    health.since = undefined;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(dir.get('node-1')?.presumed).toBe(true);
    expect(inf.relists).toBe(0);
    health.since = Date.now();
    await vi.advanceTimersByTimeAsync(9_000);
    expect(dir.get('node-1')?.presumed).toBe(true);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(dir.get('node-1')).toBeUndefined();
    dir.stop();
  });

  it('drops an agent whose Lease a list shows deleted, at once', async () => {
    const inf = new FakeLeaseInformer();
    const l = lease('node-1', new Date(Date.now()), { duration: 10 });
    inf.leases = [l];
    const dir = new AgentDirectory({ informer: inf });
    inf.fresh = undefined;
    await vi.advanceTimersByTimeAsync(15_000);
    expect(dir.get('node-1')?.presumed).toBe(true);
    inf.fresh = Date.now();
    inf.leases = [];
    inf.emit('delete', l);
    expect(dir.get('node-1')).toBeUndefined();
    dir.stop();
  });
});
