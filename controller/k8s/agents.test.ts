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

/** A fake lease informer: a list and its event handlers. */
class FakeLeaseInformer {
  leases: V1Lease[] = [];
  handlers = new Map<string, Array<(l: V1Lease) => void>>();
  list = () => this.leases;
  on = (ev: string, fn: (l: V1Lease) => void) => this.handlers.set(ev, [...(this.handlers.get(ev) ?? []), fn]);
  off = (ev: string, fn: (l: V1Lease) => void) => this.handlers.set(ev, (this.handlers.get(ev) ?? []).filter((f) => f !== fn));
  emit(ev: 'add' | 'update' | 'delete', l: V1Lease) {
    for (const fn of this.handlers.get(ev) ?? []) fn(l);
  }
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
  it('lists only agents whose Lease has not lapsed', () => {
    const inf = new FakeLeaseInformer();
    inf.leases = [lease('fresh', '2029-12-31T23:59:50Z'), lease('stale', '2029-12-31T23:59:00Z')];
    const dir = new AgentDirectory({ informer: inf });
    expect([...dir.live().keys()]).toEqual(['fresh']);
    expect(dir.get('stale')).toBeUndefined();
    expect(dir.get('fresh')?.endpoint).toBe('127.0.0.1:7005');
    // 25 s later the fresh one has lapsed too.
    expect(dir.live(new Date('2030-01-01T00:00:25Z')).size).toBe(0);
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
