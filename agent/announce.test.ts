import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../proto/common/log.js';
import { endpointFor, startAnnouncer, type AnnounceLeaseApi, type Announcer, type Lease } from './announce.js';

/** Runs fn on a later tick: a fake API answers asynchronously, throwing as a rejection. */
const later = <T>(fn: () => T): Promise<T> => Promise.resolve().then(fn);

const log = createLogger({ name: 'test', level: 'silent' });

/** An in-memory fake of the Lease API with resource versions. */
class FakeLeaseApi implements AnnounceLeaseApi {
  leases = new Map<string, Lease>();
  rv = 0;
  down = false;
  /** While true, calls are accepted and never answered until their signal aborts (etcd gone behind the API server). */
  hang = false;
  cancelled = 0;
  writes = 0;
  private check() {
    if (this.down) throw Object.assign(new Error('unavailable'), { code: 503 });
  }
  private hung(signal: AbortSignal | undefined): Promise<never> {
    return new Promise((_, reject) => signal?.addEventListener('abort', () => {
      this.cancelled++;
      reject(new Error('aborted'));
    }, { once: true }));
  }
  read = (_ns: string, name: string, signal?: AbortSignal) => this.hang ? this.hung(signal) : later(() => {
    this.check();
    const l = this.leases.get(name);
    return l ? (JSON.parse(JSON.stringify(l)) as Lease) : undefined;
  });
  create = (_ns: string, l: Lease) => later(() => {
    this.check();
    const name = l.metadata!.name!;
    if (this.leases.has(name)) throw Object.assign(new Error('exists'), { code: 409 });
    this.writes++;
    this.leases.set(name, JSON.parse(JSON.stringify({ ...l, metadata: { ...l.metadata, resourceVersion: String(++this.rv) } })) as Lease);
    return JSON.parse(JSON.stringify(this.leases.get(name))) as Lease;
  });
  replace = (_ns: string, name: string, l: Lease, signal?: AbortSignal) => this.hang ? this.hung(signal) : later(() => {
    this.check();
    const cur = this.leases.get(name);
    if (!cur) throw Object.assign(new Error('not found'), { code: 404 });
    if (cur.metadata?.resourceVersion !== l.metadata?.resourceVersion) throw Object.assign(new Error('conflict'), { code: 409 });
    this.writes++;
    this.leases.set(name, JSON.parse(JSON.stringify({ ...l, metadata: { ...l.metadata, resourceVersion: String(++this.rv) } })) as Lease);
    return JSON.parse(JSON.stringify(this.leases.get(name))) as Lease;
  });
  delete = (_ns: string, name: string) => later(() => {
    this.check();
    this.leases.delete(name);
  });
}

let announcer: Announcer | undefined;
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(async () => {
  await announcer?.stop();
  announcer = undefined;
  vi.useRealTimers();
});

describe('startAnnouncer', () => {
  it('creates the node Lease with its endpoint, version and duration', async () => {
    const api = new FakeLeaseApi();
    announcer = startAnnouncer({ api, namespace: 'stoker-system', nodeName: 'node-1', endpoint: '10.0.0.7:7443', leaseDurationSeconds: 30, log });
    await announcer.firstRenewal;
    const l = api.leases.get('stoker-agent-node-1');
    expect(l?.metadata?.labels).toEqual({ 'stoker.io/agent': 'true' });
    expect(l?.metadata?.annotations).toMatchObject({ 'stoker.io/grpc-endpoint': '10.0.0.7:7443', 'stoker.io/agent-version': expect.any(String) as string });
    expect(l?.spec).toMatchObject({ holderIdentity: 'node-1', leaseDurationSeconds: 30 });
    // MicroTime on the wire: six fractional digits.
    expect(String(l?.spec?.renewTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('renews every third of the lease duration', async () => {
    const api = new FakeLeaseApi();
    announcer = startAnnouncer({ api, namespace: 'ns', nodeName: 'node-1', endpoint: 'agent-1:7443', leaseDurationSeconds: 30, log });
    await announcer.firstRenewal;
    const first = String(api.leases.get('stoker-agent-node-1')?.spec?.renewTime);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(announcer.renewals()).toBe(2);
    expect(String(api.leases.get('stoker-agent-node-1')?.spec?.renewTime)).not.toBe(first);
  });

  it('keeps retrying through an outage and recreates a Lease deleted meanwhile', async () => {
    const api = new FakeLeaseApi();
    announcer = startAnnouncer({ api, namespace: 'ns', nodeName: 'node-1', endpoint: '[::1]:7443', leaseDurationSeconds: 15, log });
    await announcer.firstRenewal;
    api.down = true;
    await vi.advanceTimersByTimeAsync(20_000);
    api.leases.clear();
    api.down = false;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(api.leases.get('stoker-agent-node-1')?.metadata?.annotations?.['stoker.io/grpc-endpoint']).toBe('[::1]:7443');
  });

  it('renews within about a second and a half of the API server answering again, however long it was away, with one request per renewal', async () => {
    const api = new FakeLeaseApi();
    let reads = 0;
    const read = api.read;
    api.read = (ns, name) => {
      reads++;
      return read(ns, name);
    };
    announcer = startAnnouncer({ api, namespace: 'ns', nodeName: 'node-1', endpoint: 'a:1', leaseDurationSeconds: 15, log });
    await announcer.firstRenewal;
    await vi.advanceTimersByTimeAsync(30_000);
    // Renewals (every 5 s) replace the Lease as last written, without reading it first.
    expect(announcer.renewals()).toBe(7);
    expect(reads).toBe(1);
    api.down = true;
    await vi.advanceTimersByTimeAsync(40_000);
    const before = announcer.renewals();
    api.down = false;
    await vi.advanceTimersByTimeAsync(1_600);
    expect(announcer.renewals()).toBe(before + 1);
    expect(new Date(String(api.leases.get('stoker-agent-node-1')?.spec?.renewTime)).getTime()).toBeGreaterThan(Date.now() - 1_600);
  });

  it('bounds each try while failing, so an API server that accepts and never answers does not hold up the next one', async () => {
    const api = new FakeLeaseApi();
    announcer = startAnnouncer({ api, namespace: 'ns', nodeName: 'node-1', endpoint: 'a:1', leaseDurationSeconds: 9, log });
    await announcer.firstRenewal;
    api.hang = true;
    await vi.advanceTimersByTimeAsync(30_000);
    // The first hung renewal waits out the client's 10 s; later tries end after 3 s each.
    expect(api.cancelled).toBeGreaterThanOrEqual(5);
    const before = announcer.renewals();
    api.hang = false;
    await vi.advanceTimersByTimeAsync(4_600);
    expect(announcer.renewals()).toBeGreaterThan(before);
  });

  it('withdraws the Lease on stop and writes nothing after', async () => {
    const api = new FakeLeaseApi();
    announcer = startAnnouncer({ api, namespace: 'ns', nodeName: 'node-1', endpoint: 'a:1', log });
    await announcer.firstRenewal;
    await announcer.stop();
    expect(api.leases.size).toBe(0);
    const writes = api.writes;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(api.writes).toBe(writes);
  });

  it('rejects a bad endpoint, naming it', () => {
    const api = new FakeLeaseApi();
    expect(() => startAnnouncer({ api, namespace: 'ns', nodeName: 'n', endpoint: 'no-port', log })).toThrow(/"no-port" is not HOST:PORT/);
    expect(() => startAnnouncer({ api, namespace: 'ns', nodeName: 'n', endpoint: 'h:99999', log })).toThrow(/"h:99999"/);
  });
});

describe('endpointFor', () => {
  it('brackets IPv6 hosts in the endpoint', () => {
    expect(endpointFor('fd00::7', 7443)).toBe('[fd00::7]:7443');
    expect(endpointFor('10.0.0.7', 7443)).toBe('10.0.0.7:7443');
  });
});
