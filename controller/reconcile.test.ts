import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { V1Node } from '@kubernetes/client-node';
import { AgentCallError, type AgentConnection } from './agent-client.js';
import type { Warmup, WarmupSpec, WarmupStatus } from './api/types.js';
import { compileRegistryPolicy } from '../proto/common/registry-policy.js';
import type { WarmRequest } from '../proto/gen/stoker/v1/WarmRequest.js';
import { FINALIZER, createReconciler, finalizerPatch, type JsonPatchOp, type ReconcilerDeps } from './reconcile.js';
import { FakeClock } from './testing/fake-clock.js';
import { deriveWork } from './workloads/derive.js';
import { workloadKind, type Workload } from './workloads/templates.js';

/** Images given by digest: no node resolves a tag first, so every node starts at once. */
const PINNED_APP = `reg.io/app@sha256:${'a'.repeat(64)}`;
const PINNED_OTHER = `reg.io/other@sha256:${'b'.repeat(64)}`;

const log = pino({ level: 'silent' });
const PASSWORD = 'hunter2-not-in-status';

/** Applies the JSON patch ops the reconciler sends (finalizers), as the API server would; throws when a test fails. */
function applyPatch(w: Warmup, patch: JsonPatchOp[]): void {
  const meta = w.metadata;
  for (const op of patch) {
    const [, , field, index] = op.path.split('/');
    if (op.op === 'test') {
      const current = field === 'resourceVersion' ? (meta.resourceVersion ?? '') : index === undefined ? meta.finalizers : meta.finalizers?.[Number(index)];
      if (JSON.stringify(current) !== JSON.stringify(op.value)) throw Object.assign(new Error(`test ${op.path} failed`), { code: 422 });
    } else if (op.op === 'add' && index === '-') meta.finalizers = [...(meta.finalizers ?? []), op.value as string];
    else if (op.op === 'add') meta.finalizers = op.value as string[];
    else meta.finalizers = (meta.finalizers ?? []).filter((_, i) => i !== Number(index));
  }
}

/**
 * An in-memory cluster: fake informers, a fake status writer that applies compute at once, fake
 * agents, a fake clock. With `hang`, a Warm call runs until its caller aborts it (a long pull);
 * `cancels` lists the Cancel calls agents got ("node taskId"); the agent of node "n-unreachable"
 * never answers one.
 */
function fakeCluster(nodes: Record<string, Record<string, string>>, agents: string[], opts: { hang?: boolean; stillWarm?: (node: string) => boolean; warmMs?: number; warnings?: string[] } = {}) {
  const clock = new FakeClock();
  const warmups = new Map<string, Warmup>();
  const events: string[] = [];
  const deleted: string[] = [];
  const requests: WarmRequest[] = [];
  const cancels: string[] = [];
  /** Release calls: "node [images] [paths]". */
  const releases: string[] = [];
  /** Whether the Warmup held the finalizer when each Warm request was sent. */
  const finalizerAtWarm: boolean[] = [];
  const nodeObjs = new Map<string, V1Node>(Object.entries(nodes).map(([name, labels]) => [name, { metadata: { name, labels } }]));
  const secrets: Record<string, { type: string; data: Record<string, string> }> = {
    'ns/regcred': {
      type: 'kubernetes.io/dockerconfigjson',
      data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { 'reg.io': { username: 'u', password: PASSWORD } } })).toString('base64') },
    },
  };
  const connect = (endpoint: string): AgentConnection => ({
    warm(req, o) {
      requests.push(req);
      finalizerAtWarm.push([...warmups.values()].some((w) => req.taskId?.startsWith(`${w.metadata.uid ?? ''}-`) && w.metadata.finalizers?.includes(FINALIZER)));
      if (req.checkOnly) {
        const warm = opts.stillWarm?.(endpoint) ?? true;
        return Promise.resolve({ taskId: req.taskId ?? '', succeeded: warm, images: (req.images ?? []).map((i) => ({ image: i.image ?? '', state: warm ? 'PRESENT' : 'MISSING', imageRef: '', sizeBytes: 0, seconds: 0, failure: null, pinned: false, repoDigest: '', pinLabel: 'PIN_LABEL_UNSPECIFIED' })), paths: [], failure: null, seconds: 0 });
      }
      if (opts.hang) {
        return new Promise((_, reject) => o.signal.addEventListener('abort', () => reject(new AgentCallError('Cancelled', 'cancelled')), { once: true }));
      }
      const answer = { taskId: req.taskId ?? '', succeeded: endpoint !== 'broken', images: [], paths: [], failure: endpoint === 'broken' ? { code: 'NOT_FOUND' as const, message: 'image reg.io/app:1 not found', needBytes: 0 } : null, seconds: 0 };
      if (opts.warmMs !== undefined) return clock.sleep(opts.warmMs, o.signal).then(() => answer);
      const paths = (req.paths ?? []).map((p) => ({ path: p.path ?? '', state: 'DONE' as const, files: 1, bytes: 100, seconds: 0, residentBytesBefore: 0, residentBytesAfter: 100, issues: [], failure: null, warnings: opts.warnings ?? [] }));
      return Promise.resolve({ taskId: req.taskId ?? '', succeeded: endpoint !== 'broken', images: [], paths, failure: endpoint === 'broken' ? { code: 'NOT_FOUND', message: 'image reg.io/app:1 not found', needBytes: 0 } : null, seconds: 0 });
    },
    release(req) {
      releases.push(`${req.nodeName ?? ''} [${(req.images ?? []).join(' ')}] [${(req.paths ?? []).map((p) => p.path).join(' ')}]`);
      return Promise.resolve({
        nodeName: req.nodeName ?? '',
        images: (req.images ?? []).map((image) => ({ image, removed: true, sizeBytes: 1024, failure: null })),
        paths: (req.paths ?? []).map((p) => ({ path: p.path ?? '', files: 1, bytes: 2048, residentBytesBefore: 2048, residentBytesAfter: 0, failure: null })),
        unpinned: (req.unpinImages ?? []).map((image) => ({ image, unpinned: true, supported: true, failure: null })),
      });
    },
    nodeStatus: () => Promise.reject(new Error('unused')),
    cancel(req) {
      cancels.push(`${req.nodeName ?? ''} ${req.taskId ?? ''}`);
      if (endpoint === 'n-unreachable') return Promise.reject(new AgentCallError('AgentUnavailable', 'agent at n-unreachable is unavailable'));
      return Promise.resolve({ taskId: req.taskId ?? '', outcome: 'CANCEL_OUTCOME_CANCELLED' });
    },
  });
  const deps: ReconcilerDeps = {
    warmups: { get: (k) => warmups.get(k), list: () => [...warmups.values()] },
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
      remove(`${ns}/${name}`);
      return Promise.resolve();
    },
    patchWarmup: (ns, name, patch) => {
      const w = warmups.get(`${ns}/${name}`);
      if (!w) return Promise.resolve();
      try {
        applyPatch(w, patch);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      w.metadata.resourceVersion = String(Number(w.metadata.resourceVersion ?? '1') + 1);
      // The API server deletes an object being deleted once its last finalizer is gone.
      if (w.metadata.deletionTimestamp && (w.metadata.finalizers ?? []).length === 0) warmups.delete(`${ns}/${name}`);
      return Promise.resolve();
    },
    clock,
    tuning: { agentWaitMs: 100, backoffBaseMs: 5 },
  };
  const add = (name: string, spec: WarmupSpec, status?: WarmupStatus, finalizers?: string[]): string => {
    const w: Warmup = { metadata: { name, namespace: 'ns', uid: `uid-${name}`, generation: 1, resourceVersion: '1', creationTimestamp: new Date(clock.now()) }, spec };
    if (status) w.status = status;
    if (finalizers) w.metadata.finalizers = finalizers;
    warmups.set(`ns/${name}`, w);
    return `ns/${name}`;
  };
  /** What `kubectl delete` does: gone at once without finalizers, else marked (and its generation bumped). */
  function remove(key: string): void {
    const w = warmups.get(key);
    if (!w) return;
    if ((w.metadata.finalizers ?? []).length === 0) {
      warmups.delete(key);
      return;
    }
    w.metadata.deletionTimestamp ??= new Date(clock.now());
    w.metadata.generation = (w.metadata.generation ?? 0) + 1;
  }
  /** A spec change as the API server makes it: a new generation. */
  function edit(key: string, change: (spec: WarmupSpec) => void): void {
    const w = warmups.get(key)!;
    change(w.spec);
    w.metadata.generation = (w.metadata.generation ?? 0) + 1;
  }
  /** Label patches as the API server applies them, in order: "+node key" / "-node key". */
  const labelPatches: string[] = [];
  deps.patchNodeLabel = (node, labelKey, value) => {
    const n = nodeObjs.get(node);
    if (!n) return Promise.reject(Object.assign(new Error('not found'), { code: 404 }));
    const labels = { ...(n.metadata?.labels ?? {}) };
    if (value === null) delete labels[labelKey];
    else labels[labelKey] = value;
    nodeObjs.set(node, { ...n, metadata: { ...n.metadata, labels } });
    labelPatches.push(`${value === null ? '-' : '+'}${node} ${labelKey}`);
    return Promise.resolve();
  };
  const labelled = (labelKey: string) => [...nodeObjs.values()].filter((n) => n.metadata?.labels?.[labelKey] === 'true').map((n) => n.metadata?.name ?? '').sort();
  return { deps, clock, warmups, events, deleted, requests, cancels, releases, finalizerAtWarm, add, remove, edit, nodeObjs, agents, labelPatches, labelled };
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

  it('sends no work to a node annotated stoker.io/exclude=true, selected by name, by selector or by default', async () => {
    const c = fakeCluster({ a: { pool: 'gpu' }, b: { pool: 'gpu' }, c: { pool: 'gpu' } }, ['a', 'b', 'c']);
    const b = c.nodeObjs.get('b')!;
    c.nodeObjs.set('b', { ...b, metadata: { ...b.metadata, annotations: { 'stoker.io/exclude': 'true' } } });
    const keys = [
      c.add('by-default', { images: [{ image: 'reg.io/app:1' }] }),
      c.add('by-selector', { images: [{ image: 'reg.io/app:1' }], nodes: { selector: { matchLabels: { pool: 'gpu' } } } }),
      c.add('by-name', { images: [{ image: 'reg.io/app:1' }], nodes: { names: ['a', 'b'] } }),
    ];
    const r = createReconciler(c.deps);
    for (const key of keys) await r.reconcile(key);
    await c.clock.until(() => keys.every((k) => c.warmups.get(k)?.status?.phase === 'Succeeded'));
    expect(keys.map((k) => c.warmups.get(k)?.status?.desiredNodes)).toEqual([2, 2, 1]);
    expect(c.requests.some((q) => q.nodeName === 'b')).toBe(false);
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
    [
      { images: [{ image: 'reg.io/a:1' }, { image: '169.254.169.254/latest/meta-data:v1' }] },
      'RegistryDenied',
      'spec.images[1].image: cannot pull 169.254.169.254/latest/meta-data:v1: registry 169.254.169.254 is refused: it is a link-local address (built-in rule 169.254.0.0/16)',
    ],
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

  it("fails a Warmup whose registry the operator's patterns refuse, before any dispatch, naming the image and the pattern", async () => {
    const c = fakeCluster({ a: {} }, ['a']);
    const key = c.add('w', { images: [{ image: 'reg.io/a:1' }, { image: 'ghcr.io/x/y:v1' }] });
    const r = createReconciler({ ...c.deps, registryPolicy: compileRegistryPolicy({ allow: ['reg.io'] }) });
    await r.reconcile(key);
    const cond = c.warmups.get(key)!.status?.conditions?.find((x) => x.type === 'Failed');
    expect(cond).toMatchObject({
      reason: 'RegistryDenied',
      message: 'spec.images[1].image: cannot pull ghcr.io/x/y:v1: registry ghcr.io is refused: it matches no allow pattern ("reg.io")',
    });
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

  it('fails a Warmup outside the served namespaces with NamespaceNotAllowed, reading no Secret', async () => {
    const c = fakeCluster({ a: {} }, ['a']);
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }], imagePullSecrets: [{ name: 'regcred' }] });
    const read: string[] = [];
    const r = createReconciler({
      ...c.deps,
      warmupNamespaces: ['stoker-system', 'team-b'],
      readSecret: (ns, name) => {
        read.push(`${ns}/${name}`);
        return c.deps.readSecret(ns, name);
      },
    });
    await r.reconcile(key);
    expect(c.warmups.get(key)!.status).toMatchObject({
      phase: 'Failed',
      conditions: [
        expect.objectContaining({
          type: 'Failed',
          reason: 'NamespaceNotAllowed',
          message: 'namespace "ns" is not one Stoker serves: the controller reads pull secrets and warms nodes only for Warmups in stoker-system, team-b (--warmup-namespaces)',
        }),
      ],
    });
    expect(read).toEqual([]);
    expect(c.requests).toHaveLength(0);
    expect(c.events.some((e) => e.startsWith('Warning Failed namespace "ns" is not one Stoker serves'))).toBe(true);
    // The same Warmup in a served namespace is warmed.
    const served = createReconciler({ ...c.deps, warmupNamespaces: ['ns'] });
    const other = c.add('w2', { images: [{ image: 'reg.io/app:1' }], imagePullSecrets: [{ name: 'regcred' }] });
    await served.reconcile(other);
    await c.clock.until(() => c.warmups.get(other)?.status?.phase === 'Succeeded');
    await c.clock.run(served.stop());
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

describe('stopping work on the nodes', () => {
  const inFlight = (c: ReturnType<typeof fakeCluster>, n: number) => c.clock.until(() => c.requests.length === n);

  it('holds the finalizer from before the first task until the Warmup finishes', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b']);
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }] });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.phase === 'Succeeded');
    expect(c.warmups.get(key)?.metadata.finalizers).toEqual([FINALIZER]);
    // The status write that finished it brings a reconcile, which lets go of the finalizer.
    await r.reconcile(key);
    expect(c.warmups.get(key)?.metadata.finalizers).toEqual([]);
    expect(c.finalizerAtWarm).toEqual([true, true]);
    expect(c.cancels).toEqual([]);
    await c.clock.run(r.stop());
  });

  it('deleting a Warmup cancels its tasks on every node with work in flight, then lets it go', async () => {
    const c = fakeCluster({ a: {}, b: {}, n3: {} }, ['a', 'b', 'n3'], { hang: true });
    const key = c.add('w', { images: [{ image: PINNED_APP }], policy: { parallelism: 2 } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await inFlight(c, 2);
    c.remove(key);
    expect(c.warmups.get(key)?.metadata.deletionTimestamp).toBeDefined();
    await c.clock.run(r.reconcile(key));
    expect(c.cancels.sort()).toEqual(c.requests.map((q) => `${q.nodeName ?? ''} ${q.taskId ?? ''}`).sort());
    expect(c.cancels).toHaveLength(2);
    expect(c.warmups.has(key)).toBe(false);
    // The third node was never sent anything, and nothing is sent after the deletion.
    await c.clock.advance(1000);
    expect(c.requests).toHaveLength(2);
    await c.clock.run(r.stop());
  });

  it('onDelete Purge: a finished Warmup keeps its finalizer; deleting it releases on each node but what another Warmup there wants', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b']);
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }, { image: 'reg.io/base:1' }], paths: [{ path: '/models/m' }], onDelete: 'Purge' });
    const other = c.add('other', { images: [{ image: 'reg.io/base:1' }], nodes: { names: ['b'] } }, { phase: 'Succeeded' });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.phase === 'Succeeded');
    expect(c.warmups.get(key)?.status?.residency).toEqual({ residentBytes: 200, totalBytes: 200, nodes: 2, belowMinimum: 0 });
    await r.reconcile(key);
    expect(c.warmups.get(key)?.metadata.finalizers).toEqual([FINALIZER]);
    expect(c.releases).toEqual([]);

    c.remove(key);
    await c.clock.run(r.reconcile(key));
    expect(c.releases.sort()).toEqual(['a [reg.io/app:1 reg.io/base:1] [/models/m]', 'b [reg.io/app:1] [/models/m]']);
    expect(c.warmups.has(key)).toBe(false);
    expect(c.warmups.has(other)).toBe(true);
    expect(c.events).toContain('Normal Purged released on 2 node(s): removed 3 image(s) (3.0 KiB), dropped 4.0 KiB of page cache; kept 1 image(s) and 0 path(s) another Warmup still wants');
    await c.clock.run(r.stop());
  });

  it("an agent's memory-budget warning becomes one BudgetWarning Event per distinct warning", async () => {
    const warning = 'the files (200 B) exceed the cgroup memory limit (100 B)';
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b'], { warnings: [warning] });
    const key = c.add('w', { paths: [{ path: '/models/m' }] });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.phase === 'Succeeded');
    expect(c.events.filter((e) => e.includes('BudgetWarning'))).toEqual([expect.stringMatching(new RegExp(`^Warning BudgetWarning node [ab]: ${warning.replace(/[()]/g, '\\$&')}$`))]);
    await c.clock.run(r.stop());
  });

  it('an agent that cannot be reached does not hold up a deletion', async () => {
    const c = fakeCluster({ 'n-unreachable': {} }, ['n-unreachable'], { hang: true });
    const key = c.add('w', { images: [{ image: PINNED_APP }] });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await inFlight(c, 1);
    c.remove(key);
    await c.clock.run(r.reconcile(key));
    expect(c.cancels).toEqual(['n-unreachable uid-w-g1-n-unreachable-a1']);
    expect(c.warmups.has(key)).toBe(false);
    await c.clock.run(r.stop());
  });

  it('a controller that did not send the tasks cancels those status.activeNodeList records', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a']);
    const status: WarmupStatus = { phase: 'Running', observedGeneration: 1, activeNodeList: [{ name: 'a', attempt: 2, bytesDone: 1, bytesTotal: 2 }, { name: 'b', attempt: 1, bytesDone: 0, bytesTotal: 0 }] };
    const key = c.add('w', { images: [{ image: PINNED_APP }] }, status, [FINALIZER]);
    c.remove(key);
    const r = createReconciler(c.deps);
    await c.clock.run(r.reconcile(key));
    // Node b has no live agent: there is no task to stop there.
    expect(c.cancels).toEqual(['a uid-w-g1-a-a2']);
    expect(c.warmups.has(key)).toBe(false);
    expect(c.requests).toEqual([]);
  });

  it('suspend cancels the tasks in flight and lets go of the finalizer; a Warmup gone without it is stopped too', async () => {
    const c = fakeCluster({ a: {} }, ['a'], { hang: true });
    const key = c.add('w', { images: [{ image: PINNED_APP }] });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await inFlight(c, 1);
    c.edit(key, (spec) => (spec.suspend = true));
    await c.clock.run(r.reconcile(key));
    expect(c.cancels).toEqual(['a uid-w-g1-a-a1']);
    expect(c.warmups.get(key)?.metadata.finalizers).toEqual([]);
    expect(c.warmups.get(key)?.status).toMatchObject({ activeNodes: 0, conditions: [expect.objectContaining({ type: 'Suspended', status: 'True' })] });
    expect(c.warmups.get(key)?.status?.activeNodeList).toBeUndefined();

    // Resumed, then deleted by someone who removed the finalizer by hand: the controller still stops it.
    c.edit(key, (spec) => (spec.suspend = false));
    await r.reconcile(key);
    await inFlight(c, 2);
    c.warmups.delete(key);
    await c.clock.run(r.reconcile(key));
    expect(c.cancels).toEqual(['a uid-w-g1-a-a1', 'a uid-w-g3-a-a1']);
    await c.clock.run(r.stop());
  });

  it('activeDeadlineSeconds cancels the tasks in flight', async () => {
    const c = fakeCluster({ a: {} }, ['a'], { hang: true });
    const key = c.add('w', { images: [{ image: PINNED_APP }], policy: { activeDeadlineSeconds: 60 } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await inFlight(c, 1);
    await c.clock.advance(61_000);
    await c.clock.run(r.reconcile(key));
    expect(c.cancels).toEqual(['a uid-w-g1-a-a1']);
    expect(c.warmups.get(key)?.status?.conditions?.find((x) => x.type === 'Failed')?.reason).toBe('DeadlineExceeded');
    await r.reconcile(key);
    expect(c.warmups.get(key)?.metadata.finalizers).toEqual([]);
    await c.clock.run(r.stop());
  });

  it('a spec change cancels the tasks it makes obsolete and leaves the others running until the Warmup stops', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b'], { hang: true });
    const key = c.add('w', { images: [{ image: PINNED_APP }], nodes: { names: ['a', 'b'] } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await inFlight(c, 2);
    // Only the policy changes, and node b is no longer wanted: b's task is obsolete, a's is not.
    c.edit(key, (spec) => {
      spec.nodes = { names: ['a'] };
      spec.policy = { backoffLimit: 5 };
    });
    await c.clock.run(r.reconcile(key));
    expect(c.cancels).toEqual(['b uid-w-g1-b-a1']);
    await inFlight(c, 3);
    expect(c.requests[2]?.taskId).toBe('uid-w-g2-a-a1');

    // Another image: every task in flight is obsolete.
    c.edit(key, (spec) => (spec.images = [{ image: PINNED_OTHER }]));
    await c.clock.run(r.reconcile(key));
    expect(c.cancels.slice(1).sort()).toEqual(['a uid-w-g1-a-a1', 'a uid-w-g2-a-a1']);
    await inFlight(c, 4);

    // Deleted: the last run's task is cancelled too.
    c.remove(key);
    await c.clock.run(r.reconcile(key));
    expect(c.cancels.at(-1)).toBe('a uid-w-g3-a-a1');
    expect(c.warmups.has(key)).toBe(false);
    await c.clock.run(r.stop());
  });

  it('losing leadership leaves the tasks running for the next leader', async () => {
    const c = fakeCluster({ a: {} }, ['a'], { hang: true });
    let leader = true;
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }] });
    const r = createReconciler({ ...c.deps, isLeader: () => leader });
    await r.reconcile(key);
    await inFlight(c, 1);
    leader = false;
    c.remove(key);
    await c.clock.run(r.reconcile(key));
    await c.clock.run(r.stop());
    expect(c.cancels).toEqual([]);
    expect(c.warmups.get(key)?.metadata.finalizers).toEqual([FINALIZER]);
  });
});

describe('finalizerPatch', () => {
  const w = (finalizers?: string[]): Warmup => ({ metadata: { name: 'w', resourceVersion: '7', ...(finalizers ? { finalizers } : {}) }, spec: {} });
  it("adds and removes only Stoker's finalizer, testing what it changes", () => {
    expect(finalizerPatch(w(), true)).toEqual([
      { op: 'test', path: '/metadata/resourceVersion', value: '7' },
      { op: 'add', path: '/metadata/finalizers', value: [FINALIZER] },
    ]);
    expect(finalizerPatch(w(['other']), true)).toEqual([
      { op: 'test', path: '/metadata/finalizers', value: ['other'] },
      { op: 'add', path: '/metadata/finalizers/-', value: FINALIZER },
    ]);
    expect(finalizerPatch(w(['other', FINALIZER]), false)).toEqual([
      { op: 'test', path: '/metadata/finalizers/1', value: FINALIZER },
      { op: 'remove', path: '/metadata/finalizers/1' },
    ]);
    expect(finalizerPatch(w([FINALIZER]), true)).toBeUndefined();
    expect(finalizerPatch(w(['other']), false)).toBeUndefined();
  });
});

describe('reconcile through an API server outage', () => {
  it('keeps trying to write the final status while the API server is away; the Completed Event follows it, once', async () => {
    const c = fakeCluster({ a: {} }, ['a']);
    let refusals = 2;
    const flushes: string[] = [];
    c.deps.status.flush = () => {
      if (refusals-- > 0) {
        flushes.push('refused');
        return Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
      }
      flushes.push('written');
      return Promise.resolve();
    };
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }] });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.events.some((e) => e.startsWith('Normal Completed')));
    expect(flushes).toEqual(['refused', 'refused', 'written']);
    expect(c.events.filter((e) => e.startsWith('Normal Completed'))).toHaveLength(1);
    expect(c.warmups.get(key)?.status?.phase).toBe('Succeeded');
    await c.clock.run(r.stop());
  });

  it('records Completed once when a run finishes a Warmup the API server already has as finished (a stale cache)', async () => {
    const c = fakeCluster({ a: {} }, ['a']);
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }] });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.events.some((e) => e.startsWith('Normal Completed')));
    // The cache still shows it running (its watch was cut): a second run joins the remembered tasks and ends again.
    const cached = structuredClone(c.warmups.get(key)!);
    const stale: Warmup = { ...cached, metadata: { ...cached.metadata, generation: 2 }, status: { phase: 'Running' } };
    c.deps.warmups = { get: (k) => (k === key ? stale : undefined) };
    await r.reconcile(key);
    await c.clock.until(() => c.requests.length === 2);
    await c.clock.advance(1_000);
    expect(c.events.filter((e) => e.startsWith('Normal Completed'))).toHaveLength(1);
    await c.clock.run(r.stop());
  });
});

describe('reconcile with keepWarm', () => {
  const warmOf = (w: Warmup | undefined) => w?.status?.conditions?.find((x) => x.type === 'Warm');

  it('stays Running with a Warm condition, warms a node that joins later, and warms again one found cold at its recheck', async () => {
    const cold = new Set<string>();
    const c = fakeCluster({ a: { pool: 'gpu' }, b: { pool: 'gpu' }, x: { pool: 'cpu' } }, ['a', 'b', 'x'], { stillWarm: (n) => !cold.has(n), warmMs: 50 });
    const key = c.add('kw', { images: [{ image: 'reg.io/app:1' }], keepWarm: true, policy: { recheckSeconds: 5 }, nodes: { selector: { matchLabels: { pool: 'gpu' } } } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => warmOf(c.warmups.get(key))?.status === 'True');
    expect(c.warmups.get(key)?.status).toMatchObject({ phase: 'Running', desiredNodes: 2, succeededNodes: 2 });
    expect(warmOf(c.warmups.get(key))).toMatchObject({ reason: 'AllNodesWarm', message: '2 of 2 node(s) warm' });

    // A node joins the pool: warmed without any reconcile.
    c.nodeObjs.set('c', { metadata: { name: 'c', labels: { pool: 'gpu' } } });
    c.agents.push('c');
    await c.clock.until(() => c.warmups.get(key)?.status?.succeededNodes === 3);
    expect(c.requests.filter((q) => !q.checkOnly).map((q) => q.nodeName).sort()).toEqual(['a', 'b', 'c']);

    // b loses its image: its next check (within 5 s of fake time) finds it, Warm turns False, then True again.
    const t0 = c.clock.now();
    cold.add('b');
    const seen: string[] = [];
    await c.clock.until(() => {
      const w = warmOf(c.warmups.get(key));
      const now = `${w?.status ?? ''} ${w?.message ?? ''}`;
      if (seen.at(-1) !== now) seen.push(now);
      return c.requests.filter((q) => !q.checkOnly && q.nodeName === 'b').length === 2;
    });
    cold.delete('b');
    await c.clock.until(() => warmOf(c.warmups.get(key))?.status === 'True');
    expect(seen).toContain('False 2 of 3 node(s) warm; 1 warming');
    expect(c.clock.now() - t0).toBeLessThan(5_500);
    expect(c.warmups.get(key)?.status?.phase).toBe('Running');

    // A node that leaves the pool is dropped, not failed.
    c.nodeObjs.set('a', { metadata: { name: 'a', labels: { pool: 'cpu' } } });
    await c.clock.until(() => c.warmups.get(key)?.status?.desiredNodes === 2);
    expect(c.warmups.get(key)?.status).toMatchObject({ succeededNodes: 2, failedNodes: 0 });
    expect(warmOf(c.warmups.get(key))).toMatchObject({ status: 'True', message: '2 of 2 node(s) warm' });
    await r.stop();
  });

  it('waits, Warm False, when no node matches yet, instead of failing', async () => {
    const c = fakeCluster({ x: { pool: 'cpu' } }, ['x']);
    const key = c.add('none', { images: [{ image: 'reg.io/app:1' }], keepWarm: true, nodes: { selector: { matchLabels: { pool: 'gpu' } } } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.advance(1000);
    await r.reconcile(key);
    expect(c.warmups.get(key)?.status?.phase).not.toBe('Failed');
    expect(warmOf(c.warmups.get(key))).toMatchObject({ status: 'False', reason: 'NoMatchingNodes' });
    await r.stop();
  });
});


describe('reconcile: reruns and spec edits', () => {
  const done = (w: Warmup | undefined) => w?.status?.phase === 'Succeeded' || w?.status?.phase === 'Failed';
  const warmed = (c: ReturnType<typeof fakeCluster>, from = 0) => c.requests.slice(from).filter((q) => !q.checkOnly).map((q) => `${q.nodeName} ${q.taskId}`).sort();

  it('a new stoker.io/rerun value runs a finished Warmup again, with task ids of its own and a status of its own', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b'], { warmMs: 50 });
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }] });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => done(c.warmups.get(key)));
    const first = c.warmups.get(key)!.status!;
    expect(first).toMatchObject({ phase: 'Succeeded', succeededNodes: 2, observedRerun: '' });
    await r.reconcile(key);
    expect(c.requests).toHaveLength(2);

    c.warmups.get(key)!.metadata.annotations = { 'stoker.io/rerun': '1700000000' };
    await c.clock.advance(1000);
    await r.reconcile(key);
    // Nothing of the last run is shown as this run's.
    expect(c.warmups.get(key)?.status).toMatchObject({ succeededNodes: 0, observedRerun: '1700000000' });
    expect(c.warmups.get(key)?.status?.completionTime).toBeUndefined();
    expect(c.warmups.get(key)?.status?.conditions ?? []).not.toContainEqual(expect.objectContaining({ type: 'Complete' }));
    await c.clock.until(() => done(c.warmups.get(key)));
    expect(warmed(c, 2)).toEqual([expect.stringMatching(/^a uid-w-g1\.r[0-9a-f]{8}-a-a1$/), expect.stringMatching(/^b uid-w-g1\.r[0-9a-f]{8}-b-a1$/)]);
    const second = c.warmups.get(key)!.status!;
    expect(second).toMatchObject({ phase: 'Succeeded', succeededNodes: 2, observedRerun: '1700000000' });
    expect(Date.parse(second.completionTime ?? '')).toBeGreaterThan(Date.parse(first.completionTime ?? ''));
    expect(c.events.filter((e) => e.startsWith('Normal Completed'))).toHaveLength(2);
    // The same value again does nothing.
    await r.reconcile(key);
    expect(c.requests).toHaveLength(4);
    await r.stop();
  });

  it('a new stoker.io/rerun value checks every node of a keepWarm Warmup at once', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b']);
    const key = c.add('kw', { images: [{ image: 'reg.io/app:1' }], keepWarm: true, policy: { recheckSeconds: 300 } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.succeededNodes === 2);
    await c.clock.advance(10_000);
    expect(c.requests.filter((q) => q.checkOnly)).toHaveLength(0);
    const t0 = c.clock.now();
    c.warmups.get(key)!.metadata.annotations = { 'stoker.io/rerun': 'now' };
    await r.reconcile(key);
    await c.clock.until(() => c.requests.filter((q) => q.checkOnly).length === 2);
    expect(c.clock.now() - t0).toBeLessThan(1000);
    expect(c.requests.filter((q) => q.checkOnly).map((q) => q.nodeName).sort()).toEqual(['a', 'b']);
    expect(c.warmups.get(key)?.status?.observedRerun).toBe('now');
    await r.stop();
  });

  it('editing the images of a finished Warmup warms every node again for the new spec', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b'], { warmMs: 50 });
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }] });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => done(c.warmups.get(key)));
    c.edit(key, (spec) => (spec.images = [{ image: 'reg.io/app:2' }]));
    await r.reconcile(key);
    expect(c.warmups.get(key)?.status).toMatchObject({ observedGeneration: 2, succeededNodes: 0 });
    expect(c.warmups.get(key)?.status?.phase).not.toBe('Succeeded');
    await c.clock.until(() => done(c.warmups.get(key)));
    expect(c.warmups.get(key)?.status).toMatchObject({ phase: 'Succeeded', observedGeneration: 2, succeededNodes: 2 });
    expect(warmed(c, 2)).toEqual(['a uid-w-g2-a-a1', 'b uid-w-g2-b-a1']);
    expect(c.requests.slice(2).every((q) => q.images?.[0]?.image === 'reg.io/app:2')).toBe(true);
    await r.stop();
  });

  it('mid-run, other images drop the nodes done for the old ones; a suspend keeps them', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b'], { warmMs: 50 });
    const key = c.add('w', { images: [{ image: 'reg.io/app:1' }], policy: { parallelism: 1 } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.succeededNodes === 1);
    const first = c.requests[0]?.nodeName ?? '';

    // Suspend and resume: the node done stays done and is not warmed again.
    c.edit(key, (spec) => (spec.suspend = true));
    await c.clock.run(r.reconcile(key));
    c.edit(key, (spec) => (spec.suspend = false));
    await r.reconcile(key);
    expect(c.warmups.get(key)?.status?.succeededNodes).toBe(1);
    await c.clock.until(() => c.warmups.get(key)?.status?.succeededNodes === 2 || done(c.warmups.get(key)));
    expect(c.requests.filter((q) => q.nodeName === first)).toHaveLength(1);
    await c.clock.until(() => done(c.warmups.get(key)));

    // A new run on the same Warmup, then other images mid-run: nothing done for app:1 counts for app:2.
    c.warmups.get(key)!.metadata.annotations = { 'stoker.io/rerun': 'x' };
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.succeededNodes === 1);
    const before = c.requests.length;
    c.edit(key, (spec) => (spec.images = [{ image: 'reg.io/app:2' }]));
    await c.clock.run(r.reconcile(key));
    expect(c.warmups.get(key)?.status).toMatchObject({ observedGeneration: 4, succeededNodes: 0 });
    await c.clock.until(() => done(c.warmups.get(key)));
    expect(c.warmups.get(key)?.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 2, observedGeneration: 4 });
    expect(c.requests.slice(before).filter((q) => !q.checkOnly).map((q) => `${q.nodeName} ${q.images?.[0]?.image ?? ''}`).sort()).toEqual(['a reg.io/app:2', 'b reg.io/app:2']);
    await r.stop();
  });
});

describe('reconcile: the warm node label', () => {
  const LABEL = 'warm.stoker.io/ns.kw';

  it('labels the nodes warm for a keepWarm Warmup, takes it off a node found cold until it is warm again, and off every node before the finalizer goes', async () => {
    const cold = new Set<string>();
    const c = fakeCluster({ a: { pool: 'gpu' }, b: { pool: 'gpu' }, x: { pool: 'cpu' } }, ['a', 'b', 'x'], { stillWarm: (n) => !cold.has(n), warmMs: 50 });
    const key = c.add('kw', { images: [{ image: 'reg.io/app:1' }], keepWarm: true, policy: { recheckSeconds: 5 }, nodes: { selector: { matchLabels: { pool: 'gpu' } } } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.labelled(LABEL).length === 2);
    expect(c.labelled(LABEL)).toEqual(['a', 'b']);
    expect(c.warmups.get(key)?.status?.nodeLabel).toBe(LABEL);

    // Nothing changes: rechecks and resyncs write no label.
    const writes = c.labelPatches.length;
    await c.clock.advance(20_000);
    await r.reconcile(key);
    expect(c.labelPatches.length).toBe(writes);

    cold.add('b');
    await c.clock.until(() => c.labelPatches.includes(`-b ${LABEL}`));
    expect(c.labelled(LABEL)).toEqual(['a']);
    cold.delete('b');
    await c.clock.until(() => c.labelled(LABEL).length === 2);
    expect(c.labelPatches.slice(writes)).toEqual([`-b ${LABEL}`, `+b ${LABEL}`]);

    // A node that leaves the selection loses the label.
    c.nodeObjs.set('a', { ...c.nodeObjs.get('a')!, metadata: { ...c.nodeObjs.get('a')!.metadata, labels: { pool: 'cpu', [LABEL]: 'true' } } });
    await c.clock.until(() => c.labelled(LABEL).length === 1);
    expect(c.labelled(LABEL)).toEqual(['b']);

    c.remove(key);
    await c.clock.run(r.reconcile(key));
    expect(c.labelled(LABEL)).toEqual([]);
    expect(c.warmups.has(key)).toBe(false);
    await r.stop();
  });

  it('suspending a keepWarm Warmup takes its label off every node; a Warmup that is not keepWarm labels nothing', async () => {
    const c = fakeCluster({ a: {} }, ['a']);
    const key = c.add('kw', { images: [{ image: 'reg.io/app:1' }], keepWarm: true });
    const other = c.add('once', { images: [{ image: 'reg.io/app:1' }] });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await r.reconcile(other);
    await c.clock.until(() => c.labelled(LABEL).length === 1 && c.warmups.get(other)?.status?.phase === 'Succeeded');
    c.edit(key, (spec) => (spec.suspend = true));
    await c.clock.run(r.reconcile(key));
    expect(c.labelled(LABEL)).toEqual([]);
    expect(c.warmups.get(key)?.status?.nodeLabel).toBeUndefined();
    expect(c.labelPatches).toEqual([`+a ${LABEL}`, `-a ${LABEL}`]);
    await r.stop();
  });
});


describe('reconcile: spec.schedule', () => {
  const done = (w: Warmup | undefined) => w?.status?.phase === 'Succeeded' || w?.status?.phase === 'Failed';

  it('runs a finished Warmup again at each tick; ticks missed while nothing reconciled start one run', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b']);
    // The fake clock starts at 2025-01-01T00:00:00Z, when the Warmup is created.
    const key = c.add('cron', { images: [{ image: 'reg.io/app:1', pullPolicy: 'Always' }], schedule: '* * * * *' });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => done(c.warmups.get(key)));
    const finished = await r.reconcile(key);
    // Requeued for the next tick, a minute after creation.
    expect(finished).toEqual({ requeueAfterMs: 60_000 - (c.clock.now() - Date.parse('2025-01-01T00:00:00Z')) });
    expect(c.requests).toHaveLength(2);

    await c.clock.advance(60_000);
    await r.reconcile(key);
    await c.clock.until(() => done(c.warmups.get(key)) && c.requests.length === 4);
    expect(c.warmups.get(key)?.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 2, lastScheduleTime: '2025-01-01T00:01:00.000Z' });
    expect(c.requests.slice(2).map((q) => q.taskId)).toEqual(expect.arrayContaining([expect.stringMatching(/^uid-cron-g1\.r[0-9a-f]{8}-a-a1$/)]));

    // Five ticks pass with no reconcile (no controller): one run, for the latest.
    await c.clock.advance(5 * 60_000);
    await r.reconcile(key);
    await c.clock.until(() => done(c.warmups.get(key)) && c.warmups.get(key)?.status?.lastScheduleTime === '2025-01-01T00:06:00.000Z');
    await r.reconcile(key);
    expect(c.requests).toHaveLength(6);
    expect(c.events.filter((e) => e.startsWith('Normal Completed'))).toHaveLength(3);
    await r.stop();
  });

  it('warms every node of a keepWarm Warmup again at each tick', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b']);
    const key = c.add('kwcron', { images: [{ image: 'reg.io/app:1', pullPolicy: 'Always' }], keepWarm: true, schedule: '*/5 * * * *', policy: { recheckSeconds: 3600 } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.succeededNodes === 2);
    const warms = () => c.requests.filter((q) => !q.checkOnly).length;
    expect(warms()).toBe(2);
    await c.clock.advance(5 * 60_000);
    await r.reconcile(key);
    await c.clock.until(() => warms() === 4 && c.warmups.get(key)?.status?.succeededNodes === 2);
    expect(c.warmups.get(key)?.status?.lastScheduleTime).toBe('2025-01-01T00:05:00.000Z');
    expect(c.requests.filter((q) => q.checkOnly)).toHaveLength(0);
    await r.stop();
  });
});

describe('reconcile: persistentVolumeClaims in spec.paths', () => {
  it('waits with ClaimsBound False naming a missing claim, then warms each node with its own paths and notes the nodes that do not mount the volume', async () => {
    const c = fakeCluster({ a: {}, b: {} }, ['a', 'b']);
    /** A fake lookup: the claim appears when the test binds it; a pod on node a mounts it. */
    let bound = false;
    c.deps.claims = {
      claim: (ns, name) => (bound && ns === 'ns' && name === 'data' ? { metadata: { name, namespace: ns }, spec: { volumeName: 'pv-nfs' }, status: { phase: 'Bound' } } : undefined),
      volume: (name) => (name === 'pv-nfs' ? { metadata: { name }, spec: { nfs: { server: 's', path: '/e' } } } : undefined),
      mounts: (ns, claim) => (ns === 'ns' && claim === 'data' ? [{ node: 'a', podUid: 'u1' }] : []),
    };
    c.deps.kubeletPodsDir = '/k';
    const key = c.add('w', { images: [{ image: PINNED_APP }], paths: [{ persistentVolumeClaim: { claimName: 'data' } }] });
    const r = createReconciler(c.deps);
    expect(await r.reconcile(key)).toEqual({ requeueAfterMs: 10_000 });
    const held = c.warmups.get(key)!.status!;
    expect(held.phase).toBe('Pending');
    expect(held.conditions?.find((x) => x.type === 'ClaimsBound')).toMatchObject({ status: 'False', reason: 'ClaimNotFound', message: 'persistentVolumeClaim "data" does not exist in namespace "ns"; warming waits for it' });
    expect(c.requests).toEqual([]);

    bound = true;
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.phase === 'Succeeded');
    const st = c.warmups.get(key)!.status!;
    expect(st).toMatchObject({ desiredNodes: 2, succeededNodes: 2, failedNodes: 0 });
    expect(st.volumes).toEqual([{ claimName: 'data', volumeName: 'pv-nfs', type: 'nfs', nodes: 1, notReadNodes: 1, reason: 'VolumeNotMounted', notReadNodeList: ['b'] }]);
    expect(st.conditions?.find((x) => x.type === 'ClaimsBound')).toMatchObject({ status: 'True', reason: 'ClaimsBound' });
    expect(st.conditions?.find((x) => x.type === 'Complete')?.message).toBe('2 of 2 node(s) warmed; claim data not read on 1 node(s) (VolumeNotMounted)');
    // Node a reads the kubelet's mount; node b gets the image only, under a task id of its own paths.
    const byNode = new Map(c.requests.map((q) => [q.nodeName, q]));
    expect(byNode.get('a')?.paths?.map((p) => p.path)).toEqual(['/k/u1/volumes/kubernetes.io~nfs/pv-nfs']);
    expect(byNode.get('b')?.paths).toEqual([]);
    expect(byNode.get('b')?.images?.map((i) => i.image)).toEqual([PINNED_APP]);
    expect(byNode.get('a')?.taskId).toMatch(/^uid-w-g1-a-v[A-Za-z0-9]{8}-a1$/);
    await c.clock.run(r.stop());
  });

  it("counts a workloadRef Warmup's claim over the nodes its workload's pods may land on, not every node", async () => {
    const c = fakeCluster({ a: { pool: 'gpu' }, b: { pool: 'gpu' }, c: { pool: 'cpu' } }, ['a', 'b', 'c']);
    c.deps.claims = {
      claim: (ns, name) => (ns === 'ns' && name === 'data' ? { metadata: { name, namespace: ns }, spec: { volumeName: 'pv-nfs' }, status: { phase: 'Bound' } } : undefined),
      volume: (name) => (name === 'pv-nfs' ? { metadata: { name }, spec: { nfs: { server: 's', path: '/e' } } } : undefined),
      mounts: (ns, claim) => (ns === 'ns' && claim === 'data' ? [{ node: 'a', podUid: 'u1' }] : []),
    };
    c.deps.kubeletPodsDir = '/k';
    const deployment: Workload = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'vllm', namespace: 'ns', annotations: { 'stoker.io/warm-volumes': 'data' } },
      spec: { template: { spec: { nodeSelector: { pool: 'gpu' }, containers: [{ name: 'app', image: PINNED_APP }], volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }] } } },
    };
    c.deps.workloads = {
      derive: (ns, ref) => {
        if (ns !== 'ns' || ref.name !== 'vllm') return { problem: { reason: 'WorkloadNotFound', value: ref.name, message: `no ${ref.name}` } };
        return deriveWork(workloadKind('apps/v1', 'Deployment')!, deployment, () => undefined);
      },
      event: () => undefined,
    };
    const key = c.add('w', { workloadRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'vllm' } });
    const r = createReconciler(c.deps);
    await r.reconcile(key);
    await c.clock.until(() => c.warmups.get(key)?.status?.phase === 'Succeeded');
    const st = c.warmups.get(key)!.status!;
    expect(st).toMatchObject({ desiredNodes: 2, succeededNodes: 2 });
    // Node c is no target (its pool is cpu): it is not counted among the nodes that do not read the claim.
    expect(st.volumes).toEqual([{ claimName: 'data', volumeName: 'pv-nfs', type: 'nfs', nodes: 1, notReadNodes: 1, reason: 'VolumeNotMounted', notReadNodeList: ['b'] }]);
    expect(st.conditions?.find((x) => x.type === 'Complete')?.message).toBe('2 of 2 node(s) warmed; claim data not read on 1 node(s) (VolumeNotMounted)');
    await c.clock.run(r.stop());
  });
});
