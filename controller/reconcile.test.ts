import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { V1Node } from '@kubernetes/client-node';
import type { AgentConnection } from './agent-client.js';
import type { Warmup, WarmupSpec, WarmupStatus } from './api/types.js';
import type { WarmRequest } from '../proto/gen/stoker/v1/WarmRequest.js';
import { createReconciler, type ReconcilerDeps } from './reconcile.js';
import { FakeClock } from './testing/fake-clock.js';

const log = pino({ level: 'silent' });
const PASSWORD = 'hunter2-not-in-status';

/** An in-memory cluster: fake informers, a fake status writer that applies compute at once, fake agents, a fake clock. */
function fakeCluster(nodes: Record<string, Record<string, string>>, agents: string[]) {
  const clock = new FakeClock();
  const warmups = new Map<string, Warmup>();
  const events: string[] = [];
  const deleted: string[] = [];
  const requests: WarmRequest[] = [];
  const nodeObjs = new Map<string, V1Node>(Object.entries(nodes).map(([name, labels]) => [name, { metadata: { name, labels } }]));
  const secrets: Record<string, { type: string; data: Record<string, string> }> = {
    'ns/regcred': {
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { 'reg.io': { username: 'u', password: PASSWORD } } })).toString('base64') },
    },
  };
  const connect = (endpoint: string): AgentConnection => ({
    warm(req) {
      requests.push(req);
      return Promise.resolve({ taskId: req.taskId ?? '', succeeded: endpoint !== 'broken', images: [], paths: [], failure: endpoint === 'broken' ? { code: 'NOT_FOUND', message: 'image reg.io/app:1 not found' } : null, seconds: 0 });
    },
    nodeStatus: () => Promise.reject(new Error('unused')),
    cancel: (req) => Promise.resolve({ taskId: req.taskId ?? '', outcome: 'CANCEL_OUTCOME_UNKNOWN_TASK' }),
  });
  const deps: ReconcilerDeps = {
    warmups: { get: (k) => warmups.get(k) },
    nodes: { get: (k) => nodeObjs.get(k), list: () => [...nodeObjs.values()] },
    agents: { live: () => new Map(agents.map((a) => [a, { endpoint: a === 'n-broken' ? 'broken' : a }])) },
    status: {
      schedule(ns, name, compute) {
        const w = warmups.get(`${ns}/${name}`);
        if (!w) return;
        const s = compute(structuredClone(w));
        if (s) w.status = s;
      },
      flush: () => Promise.resolve(),
      forget: () => undefined,
    },
    events: { record: (_o, type, reason, message) => events.push(`${type} ${reason} ${message}`) },
    log,
    isLeader: () => true,
    signal: new AbortController().signal,
    connect,
    readSecret: (ns, name) => Promise.resolve(secrets[`${ns}/${name}`]),
    deleteWarmup: (ns, name) => {
      deleted.push(`${ns}/${name}`);
      warmups.delete(`${ns}/${name}`);
      return Promise.resolve();
    },
    clock,
    tuning: { agentWaitMs: 100, backoffBaseMs: 5 },
  };
  const add = (name: string, spec: WarmupSpec, status?: WarmupStatus): string => {
    const w: Warmup = { metadata: { name, namespace: 'ns', uid: `uid-${name}`, generation: 1, creationTimestamp: new Date(clock.now()) }, spec };
    if (status) w.status = status;
    warmups.set(`ns/${name}`, w);
    return `ns/${name}`;
  };
  return { deps, clock, warmups, events, deleted, requests, add };
}

describe('reconcile', () => {
  it('warms the selected nodes, hands only the matching credentials, and completes', async () => {
    const c = fakeCluster({ a: { pool: 'gpu' }, b: { pool: 'gpu' }, x: { pool: 'cpu' } }, ['a', 'b', 'x']);
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }, { image: 'other.io/b:2' }], imagePullSecrets: [{ name: 'regcred' }], nodes: { selector: { matchLabels: { pool: 'gpu' } } } });
    const r = createReconciler(c.deps);
    expect(await r.reconcile(key)).toEqual({ requeueAfterMs: 10_000 }); // the periodic resync
    await c.clock.until(() => c.warmups.get(key)?.status?.phase === 'Succeeded');
    const st = c.warmups.get(key)!.status!;
    expect(st).toMatchObject({ desiredNodes: 2, succeededNodes: 2, failedNodes: 0, observedGeneration: 1 });
    expect(st.conditions?.[0]).toMatchObject({ type: 'Complete', status: 'True', reason: 'AllNodesWarmed', message: '2 of 2 node(s) warmed' });
    expect(c.requests.map((q) => `${q.nodeName} ${q.taskId}`).sort()).toEqual(['a uid-w-g1-a-a1', 'b uid-w-g1-b-a1']);
    expect(c.requests[0]?.credentials).toEqual([expect.objectContaining({ registry: 'reg.io', password: PASSWORD })]);
    expect(JSON.stringify(st)).not.toContain(PASSWORD);
    expect(c.events).toContain('Normal Started warming 2 image(s) and 0 path(s) on 2 node(s)');
    expect(c.events.some((e) => e.startsWith('Normal Completed'))).toBe(true);
    // Finished: reconciling again dispatches nothing.
    await r.reconcile(key);
    expect(c.requests).toHaveLength(2);
    await c.clock.run(r.stop());
  });

  it('records a failing node with its reason and fails the Warmup', async () => {
    const c = fakeCluster({ 'n-ok': {}, 'n-broken': {} }, ['n-ok', 'n-broken']);
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }], policy: { backoffLimit: 1 } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.phase === 'Failed');
    const st = c.warmups.get(key)!.status!;
    expect(st.failedNodeList).toEqual([{ name: 'n-broken', reason: 'ImageNotFound', message: 'image reg.io/app:1 not found' }]);
    expect(st.conditions?.find((x) => x.type === 'Failed')?.reason).toBe('NodesFailed');
    expect(c.events).toContain('Warning NodeFailed node n-broken: ImageNotFound: image reg.io/app:1 not found');
    // backoffLimit 1: the broken node was tried twice, with a new attempt id.
    expect(c.requests.filter((q) => q.nodeName === 'n-broken').map((q) => q.taskId)).toEqual(['uid-w-g1-n-broken-a1', 'uid-w-g1-n-broken-a2']);
    await c.clock.run(r.stop());
  });

  it.each([
    [{ images: [{ image: 'reg.io/Bad:1' }] }, 'InvalidImageReference', '"reg.io/Bad:1"'],
    [{ paths: [{ path: 'relative/dir' }] }, 'InvalidPath', '"relative/dir"'],
    [{ images: [{ image: 'reg.io/a:1' }], imagePullSecrets: [{ name: 'missing' }] }, 'PullSecretNotFound', '"ns/missing"'],
    [{ images: [{ image: 'reg.io/a:1' }], nodes: { names: ['ghost'] } }, 'NoMatchingNodes', 'names [ghost]'],
  ] as [WarmupSpec, string, string][])('fails bad input with a condition naming the value (%#)', async (spec, reason, fragment) => {
    const c = fakeCluster({ a: {} }, ['a']);
    const key = c.add('w', spec);
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    const st = c.warmups.get(key)!.status!;
    expect(st.phase).toBe('Failed');
    const cond = st.conditions?.find((x) => x.type === 'Failed');
    expect(cond?.reason).toBe(reason);
    expect(cond?.message).toContain(fragment);
    expect(c.requests).toHaveLength(0);
    await c.clock.run(r.stop());
  });

  it('finishes with NoMatchingNodes when no agent shows up within the wait', async () => {
    const c = fakeCluster({ a: {} }, []);
    const key = c.add('w', { images: [{ image: 'reg.io/a:1' }] });
    const r = createReconciler(c.deps);
    expect(await r.reconcile(key)).toEqual({ requeueAfterMs: 100 }); // agentWaitMs from creation
    await c.clock.advance(99);
    expect(await r.reconcile(key)).toEqual({ requeueAfterMs: 1 });
    expect(c.warmups.get(key)!.status).toBeUndefined();
    await c.clock.advance(1);
    expect(await r.reconcile(key)).toBeUndefined();
    expect(c.warmups.get(key)!.status?.conditions?.[0]).toMatchObject({ type: 'Failed', reason: 'NoMatchingNodes', message: 'no node has a live Stoker agent' });
  });

  it('deletes a finished Warmup after its TTL and requeues until then', async () => {
    const c = fakeCluster({}, []);
    const soon = c.add('soon', { images: [{ image: 'a' }], policy: { ttlSecondsAfterFinished: 60 } }, { phase: 'Succeeded', completionTime: new Date(c.clock.now()).toISOString() });
    const old = c.add('old', { images: [{ image: 'a' }], policy: { ttlSecondsAfterFinished: 1 } }, { phase: 'Failed', completionTime: new Date(c.clock.now() - 5000).toISOString() });
    const r = createReconciler(c.deps);
    expect(await r.reconcile(soon)).toEqual({ requeueAfterMs: 60_000 });
    await r.reconcile(old);
    expect(c.deleted).toEqual(['ns/old']);
    await c.clock.advance(60_000);
    await r.reconcile(soon);
    expect(c.deleted).toEqual(['ns/old', 'ns/soon']);
  });

  it('suspend dispatches nothing and says so', async () => {
    const c = fakeCluster({ a: {} }, ['a']);
    const key = c.add('w', { images: [{ image: 'reg.io/a:1' }], suspend: true });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.advance(1000);
    expect(c.requests).toHaveLength(0);
    expect(c.warmups.get(key)!.status).toMatchObject({ phase: 'Pending', conditions: [expect.objectContaining({ type: 'Suspended', status: 'True' })] });
    // Resume.
    const w = c.warmups.get(key)!;
    w.spec.suspend = false;
    w.metadata.generation = 2;
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.phase === 'Succeeded');
    expect(c.warmups.get(key)!.status?.conditions?.find((x) => x.type === 'Suspended')?.status).toBe('False');
  });

  it('fails a Warmup that outlives activeDeadlineSeconds with DeadlineExceeded', async () => {
    const c = fakeCluster({ a: {} }, ['a']);
    const key = c.add('w', { images: [{ image: 'reg.io/a:1' }], policy: { activeDeadlineSeconds: 5 } }, { phase: 'Running', startTime: new Date(c.clock.now() - 6000).toISOString() });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    expect(c.warmups.get(key)!.status).toMatchObject({ phase: 'Failed', conditions: [expect.objectContaining({ type: 'Failed', reason: 'DeadlineExceeded' })] });
    expect(c.requests).toHaveLength(0);
    expect(c.events.some((e) => e.startsWith('Warning Failed') && e.includes('activeDeadlineSeconds (5s)'))).toBe(true);
  });

  it('a non-leader dispatches nothing', async () => {
    const c = fakeCluster({ a: {} }, ['a']);
    const key = c.add('w', { images: [{ image: 'reg.io/a:1' }] });
    const r = createReconciler({ ...c.deps, isLeader: () => false });
    await r.reconcile(key);
    await c.clock.advance(1000);
    expect(c.requests).toHaveLength(0);
    expect(c.warmups.get(key)!.status).toBeUndefined();
  });
});

