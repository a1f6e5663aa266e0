// The Warmup controller end to end: a real kube-apiserver, three simulated nodes (each a Node
// object, its own containerd and a real agent, found through its EndpointSlice), a real
// registry (one open, one behind basic auth) and the real controller. Every assertion is on what a
// user sees: the Warmup's status and Events, and the images in each node's runtime.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api } from '@kubernetes/client-node';
import { resolveControllerConfig } from '../controller/config.js';
import { startController, type RunningController } from '../controller/main.js';
import type { Warmup, WarmupSpec } from '../controller/api/types.js';
import { createLogger } from '../proto/common/log.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { byDigest, pushRandomImage, pushRandomImageDetailed } from './support/images.js';
import { freePort } from './support/ports.js';
import { createNode, deleteNode, startKube, type Kube } from './support/kube.js';
import { REPO_ROOT } from './support/proc.js';
import { startThrottledProxy, type ThrottledProxy } from './support/proxy.js';
import { addRegistryHost, startRegistry, startStallingRegistry, type Registry, type StallingRegistry } from './support/registry.js';
import { ensureNamespace, rootFor, startSimNode, waitFor, warmupApi, type SimNode } from './support/sim-cluster.js';

const NS = 'default';
const STOKER_NS = 'stoker-system';
const AUTH = { username: 'puller', password: 'Pw-controller-test-7' };
const NODES = ['node-1', 'node-2', 'node-3'];
const LABELS: Record<string, Record<string, string>> = {
  'node-1': { 'stoker.io/pool': 'gpu' },
  'node-2': { 'stoker.io/pool': 'gpu' },
  'node-3': { 'stoker.io/pool': 'cpu' },
};

let dir: string;
let kube: Kube;
let certs: Certificates;
let registry: Registry;
let locked: Registry;
let proxy: ThrottledProxy;
let stalling: StallingRegistry;
const containerds: Containerd[] = [];
const nodes = new Map<string, SimNode>();
let api: ReturnType<typeof warmupApi>;

function controllerFlags(extra: Record<string, string> = {}): Record<string, string> {
  return {
    kubeconfig: kube.kubeconfigPath,
    namespace: STOKER_NS,
    tlsCertFile: certs.clientCert,
    tlsPrivateKeyFile: certs.clientKey,
    agentCaFile: certs.caCert,
    httpListen: '127.0.0.1:0',
    leaderElect: 'false',
    logLevel: 'warn',
    ...extra,
  };
}

async function inProcessController(extra: Record<string, string> = {}): Promise<RunningController> {
  return startController(resolveControllerConfig(controllerFlags(extra)), { log: createLogger({ name: 'stoker-controller', level: 'warn' }) });
}

/** Waits until the Warmup reaches a final phase and returns it. */
function finished(name: string, timeoutMs = 120_000): Promise<Warmup> {
  return api.finished(NS, name, timeoutMs);
}

async function eventsOf(name: string): Promise<string[]> {
  const core = kube.kubeConfig.makeApiClient(CoreV1Api);
  const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` });
  return list.items.map((e) => `${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`);
}

async function presentOn(image: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of NODES) if (await nodes.get(n)!.containerd.imagePresent(image)) out.push(n);
  return out;
}

function smallImage(name: string, reg: Registry = registry): Promise<string> {
  return pushRandomImage(reg, `ctl/${name}`, { layers: 1, layerSizeBytes: 256 * 1024, ...(reg.auth ? { creds: reg.auth } : {}) });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-controller-test-'));
  [kube, certs, registry, locked] = await Promise.all([
    startKube(),
    makeCertificates(join(dir, 'pki')),
    startRegistry(),
    startRegistry({ auth: AUTH }),
  ]);
  proxy = await startThrottledProxy(registry, 1024 * 1024);
  stalling = await startStallingRegistry();
  for (const _ of NODES) containerds.push(await startContainerd());
  for (const c of containerds) {
    await registry.addTo(c);
    await addRegistryHost(c, locked);
    await addRegistryHost(c, proxy);
    await addRegistryHost(c, stalling);
  }
  await ensureNamespace(kube.kubeConfig, STOKER_NS);
  api = warmupApi(kube.kubeConfig);
  for (const [i, name] of NODES.entries()) {
    nodes.set(name, await startSimNode({ kc: kube.kubeConfig, certs, name, labels: LABELS[name] ?? {}, containerd: containerds[i]!, namespace: STOKER_NS, allowedRoot: rootFor(dir, name) }));
  }
});

afterAll(async () => {
  await Promise.allSettled([...nodes.values()].map((n) => n.stop()));
  await Promise.allSettled([...containerds.map((c) => c.stop()), registry?.stop(), locked?.stop(), proxy?.stop(), stalling?.stop()]);
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('one controller', () => {
  let controller: RunningController;
  beforeAll(async () => {
    controller = await inProcessController();
  });
  afterAll(async () => {
    await controller?.stop();
  });

  it('warms every node with a live agent and reports Succeeded', async () => {
    const image = await smallImage('all');
    await api.create(NS, 'all', { images: [{ image }] });
    const w = await finished('all');
    expect(w.status).toMatchObject({ phase: 'Succeeded', desiredNodes: 3, succeededNodes: 3, failedNodes: 0, activeNodes: 0 });
    expect(w.status?.conditions?.find((c) => c.type === 'Complete')).toMatchObject({ status: 'True', reason: 'AllNodesWarmed' });
    expect(w.status?.startTime).toBeDefined();
    expect(w.status?.completionTime).toBeDefined();
    expect(await presentOn(image)).toEqual(NODES);
    const events = await eventsOf('all');
    expect(events.some((e) => e.startsWith('Normal Started'))).toBe(true);
    expect(events.some((e) => e.startsWith('Normal Completed'))).toBe(true);
    const table = await kube.kubectl(['get', 'warmups', 'all', '-n', NS]);
    expect(table).toMatch(/all\s+Succeeded\s+3\s+0\s+3/);
  });

  it('keeps nothing for a Warmup once it is deleted', async () => {
    const image = await smallImage('gone');
    await api.create(NS, 'gone', { images: [{ image }] });
    expect((await finished('gone')).status?.phase).toBe('Succeeded');
    expect(controller.heldFor(NS, 'gone')).toContain('event recorder');
    await api.delete(NS, 'gone');
    // A running Warmup's periodic resync may still be due (10 s); after that nothing is left.
    await waitFor('the controller to keep nothing for Warmup gone', () => Promise.resolve(controller.heldFor(NS, 'gone').length === 0 ? true : undefined), 30_000);
  });

  it('warms only the nodes a selector or a names list picks', async () => {
    const bySelector = await smallImage('selector');
    const byNames = await smallImage('names');
    await api.create(NS, 'selector', { images: [{ image: bySelector }], nodes: { selector: { matchLabels: { 'stoker.io/pool': 'gpu' } } } });
    await api.create(NS, 'names', { images: [{ image: byNames }], nodes: { names: ['node-3'] } });
    const [s, n] = await Promise.all([finished('selector'), finished('names')]);
    expect(s.status).toMatchObject({ phase: 'Succeeded', desiredNodes: 2, succeededNodes: 2 });
    expect(n.status).toMatchObject({ phase: 'Succeeded', desiredNodes: 1, succeededNodes: 1 });
    expect(await presentOn(bySelector)).toEqual(['node-1', 'node-2']);
    expect(await presentOn(byNames)).toEqual(['node-3']);
  });

  it('never runs more than parallelism nodes at once', async () => {
    // Through the throttled proxy each pull takes about a second, so overlapping tasks would show.
    const image = (await pushRandomImage(registry, 'ctl/parallel', { layers: 1, layerSizeBytes: 1024 * 1024 })).replace(registry.host, proxy.host);
    await api.create(NS, 'parallel', { images: [{ image }], policy: { parallelism: 1 } });
    let maxInFlight = 0;
    let sawWork = false;
    const deadline = Date.now() + 120_000;
    for (;;) {
      const counts = await Promise.all(NODES.map((n) => nodes.get(n)!.metric('stoker_tasks_in_flight')));
      const sum = counts.reduce((a, b) => a + b, 0);
      maxInFlight = Math.max(maxInFlight, sum);
      if (sum > 0) sawWork = true;
      const w = await api.get(NS, 'parallel');
      expect(w?.status?.activeNodes ?? 0).toBeLessThanOrEqual(1);
      if (w?.status?.phase === 'Succeeded' || w?.status?.phase === 'Failed' || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(sawWork).toBe(true);
    expect(maxInFlight).toBe(1);
    expect((await api.get(NS, 'parallel'))?.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 3 });
    expect(await presentOn(image)).toEqual(NODES);
  });

  it('pulls a private image with the credentials of an imagePullSecret, which stay out of status and Events', async () => {
    const image = await smallImage('private', locked);
    const core = kube.kubeConfig.makeApiClient(CoreV1Api);
    const dockerconfig = { auths: { [locked.host]: { username: AUTH.username, password: AUTH.password, auth: Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64') } } };
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'regcred' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(JSON.stringify(dockerconfig)).toString('base64') } },
    });
    // Without the secret the registry refuses: the node is retried, then recorded failed.
    await api.create(NS, 'private-nocreds', { images: [{ image }], nodes: { names: ['node-1'] }, policy: { backoffLimit: 1 } });
    const refused = await finished('private-nocreds');
    expect(refused.status?.failedNodeList?.[0]).toMatchObject({ name: 'node-1', reason: 'RegistryUnauthorized' });

    await api.create(NS, 'private', { images: [{ image }], imagePullSecrets: [{ name: 'regcred' }] });
    const w = await finished('private');
    expect(w.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 3 });
    expect(await presentOn(image)).toEqual(NODES);
    const everything = JSON.stringify(w) + (await eventsOf('private')).join('\n') + (await eventsOf('private-nocreds')).join('\n');
    expect(everything).not.toContain(AUTH.password);
    expect(everything).not.toContain(Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64'));
  });

  it('a registry that never answers: each attempt ends at timeoutSeconds, the node is retried, then recorded failed', async () => {
    const image = `${stalling.host}/ctl/stalls:v1`;
    await api.create(NS, 'stalls', { images: [{ image }], nodes: { names: ['node-1'] }, policy: { timeoutSeconds: 2, backoffLimit: 1 } });
    const w = await finished('stalls');
    expect(w.status).toMatchObject({ phase: 'Failed', failedNodes: 1, succeededNodes: 0 });
    expect(w.status?.failedNodeList).toEqual([expect.objectContaining({ name: 'node-1', reason: 'Timeout' })]);
    expect(Date.parse(w.status?.completionTime ?? '') - Date.parse(w.status?.startTime ?? '')).toBeGreaterThanOrEqual(4000);
    // Each attempt was cancelled on the agent when it timed out: nothing is left waiting on the registry.
    expect(await nodes.get('node-1')!.metric('stoker_tasks_in_flight')).toBe(0);
  });

  describe('stopping a Warmup stops the nodes', () => {
    /** The agents' tasks in flight, from each agent's /status. */
    async function agentTasks(): Promise<string[]> {
      const all = await Promise.all(
        NODES.map(async (n) => ((await (await fetch(`${nodes.get(n)!.agent!.httpUrl}/status`)).json()) as { tasks: { taskId: string }[] }).tasks.map((t) => `${n} ${t.taskId}`)),
      );
      return all.flat();
    }

    /** Byte offsets of every blob the nodes' containerds are ingesting, keyed by node and ref. */
    async function ingests(names: string[]): Promise<Map<string, number>> {
      const out = new Map<string, number>();
      for (const n of names) for (const i of await nodes.get(n)!.containerd.ingests()) out.set(`${n} ${i.ref}`, i.offset);
      return out;
    }

    /** Waits until the nodes' containerds all ingest something (the pulls are under way). */
    function pulling(names: string[]): Promise<true> {
      return waitFor(`${names.join(', ')} to be pulling`, async () => {
        const seen = new Set([...(await ingests(names)).keys()].map((k) => k.split(' ')[0]));
        return names.every((n) => seen.has(n)) ? true : undefined;
      }, 60_000, 100);
    }

    /** Asserts that the nodes' ingests stand still (or are gone) and the registry sends nothing more. */
    async function fetchingStopped(names: string[]): Promise<void> {
      const first = await ingests(names);
      const forwarded = proxy.bytesForwarded();
      await new Promise((r) => setTimeout(r, 1_500));
      const later = await ingests(names);
      for (const [key, offset] of later) expect({ key, offset }).toEqual({ key, offset: first.get(key) ?? offset });
      // One pull still running would send about 288 KiB in the window (192 KiB/s); what the proxy had
      // already queued when the pulls stopped drains in well under half of that.
      expect(proxy.bytesForwarded() - forwarded).toBeLessThan(144 * 1024);
    }

    beforeAll(() => proxy.setRate(192 * 1024));
    afterAll(() => proxy.setRate(1024 * 1024));

    it('deleting a Warmup mid-pull cancels it on every node: the tasks are gone and containerd stops fetching within seconds', async () => {
      // By digest, so every node starts at once (a tag is resolved on one node first).
      const image = byDigest(await pushRandomImageDetailed(registry, 'ctl/deleted', { layers: 1, layerSizeBytes: 8 * 1024 * 1024 }), { from: registry.host, to: proxy.host });
      await api.create(NS, 'deleted', { images: [{ image }] });
      await pulling(NODES);
      expect((await api.get(NS, 'deleted'))?.metadata.finalizers).toEqual(['stoker.io/cancel']);
      expect(await agentTasks()).toHaveLength(3);

      const t0 = Date.now();
      await api.delete(NS, 'deleted');
      await waitFor('every agent to have no task', async () => ((await agentTasks()).length === 0 ? true : undefined), 30_000, 100);
      const tasksGoneMs = Date.now() - t0;
      await waitFor('the Warmup to be gone', async () => ((await api.get(NS, 'deleted')) === undefined ? true : undefined), 30_000, 100);
      const goneMs = Date.now() - t0;
      await fetchingStopped(NODES);
      expect(await presentOn(image)).toEqual([]);
      console.log(`delete: agents' tasks gone after ${tasksGoneMs} ms, Warmup gone after ${goneMs} ms`);
      // Seconds, not the two minutes the throttled pulls had left (bounds allow for a loaded machine).
      expect(tasksGoneMs).toBeLessThan(10_000);
      expect(goneMs).toBeLessThan(15_000);
    });

    it('suspending a Warmup mid-pull cancels its tasks and lets go of the finalizer', async () => {
      const image = (await pushRandomImage(registry, 'ctl/suspended', { layers: 1, layerSizeBytes: 8 * 1024 * 1024 })).replace(registry.host, proxy.host);
      await api.create(NS, 'suspended', { images: [{ image }], nodes: { names: ['node-1'] } });
      await pulling(['node-1']);
      const t0 = Date.now();
      await api.patchSpec(NS, 'suspended', { images: [{ image }], nodes: { names: ['node-1'] }, suspend: true });
      await waitFor('the agent to have no task', async () => ((await agentTasks()).length === 0 ? true : undefined), 30_000, 100);
      const tasksGoneMs = Date.now() - t0;
      const w = await waitFor('the Suspended condition', async () => {
        const cur = await api.get(NS, 'suspended');
        return cur?.status?.conditions?.some((c) => c.type === 'Suspended' && c.status === 'True') ? cur : undefined;
      });
      expect(w.status).toMatchObject({ phase: 'Running', activeNodes: 0 });
      await waitFor('the finalizer to be removed', async () => (((await api.get(NS, 'suspended'))?.metadata.finalizers ?? []).length === 0 ? true : undefined), 30_000, 100);
      await fetchingStopped(['node-1']);
      expect(await presentOn(image)).toEqual([]);
      console.log(`suspend: agent's task gone after ${tasksGoneMs} ms`);
      expect(tasksGoneMs).toBeLessThan(10_000);
      await api.delete(NS, 'suspended');
    });
  });

  describe('bad input the schema cannot reject fails the Warmup with a condition naming the value', () => {
    beforeAll(async () => {
      const core = kube.kubeConfig.makeApiClient(CoreV1Api);
      await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'opaque' }, type: 'Opaque', data: { token: Buffer.from('x').toString('base64') } } });
    });
    const cases: [string, WarmupSpec, string, string][] = [
      ['bad-ref', { images: [{ image: 'registry.example/Upper/Case:v1' }] }, 'InvalidImageReference', '"registry.example/Upper/Case:v1"'],
      ['bad-path', { paths: [{ path: '/models/../etc' }] }, 'InvalidPath', '"/models/../etc"'],
      ['outside-root', { paths: [{ path: '/etc' }], nodes: { names: ['node-1'] } }, 'PathOutsideRoot', '/etc'],
      ['missing-secret', { images: [{ image: 'busybox:1.36' }], imagePullSecrets: [{ name: 'nope' }] }, 'PullSecretNotFound', '"default/nope"'],
      ['wrong-secret-type', { images: [{ image: 'busybox:1.36' }], imagePullSecrets: [{ name: 'opaque' }] }, 'InvalidPullSecret', '"default/opaque" has type "Opaque"'],
      ['no-match', { images: [{ image: 'busybox:1.36' }], nodes: { selector: { matchLabels: { 'stoker.io/pool': 'tpu' } } } }, 'NoMatchingNodes', 'stoker.io/pool=tpu'],
    ];
    it.each(cases)('%s', async (name, spec, reason, fragment) => {
      await api.create(NS, name, spec);
      const w = await finished(name, 60_000);
      expect(w.status?.phase).toBe('Failed');
      const cond = w.status?.conditions?.find((c) => c.type === 'Failed');
      expect(cond).toMatchObject({ status: 'True', reason });
      expect(cond?.message).toContain(fragment);
      expect((await eventsOf(name)).some((e) => e.startsWith('Warning Failed') && e.includes(fragment))).toBe(true);
    });

    it('a registry the registry policy refuses fails the Warmup before any dispatch, naming the image and the rule', async () => {
      const image = '169.254.169.254/latest/meta-data:v1';
      await api.create(NS, 'metadata-registry', { images: [{ image: await smallImage('policy-ok') }, { image }] });
      const w = await finished('metadata-registry', 60_000);
      expect(w.status?.conditions?.find((c) => c.type === 'Failed')).toMatchObject({
        status: 'True',
        reason: 'RegistryDenied',
        message: `spec.images[1].image: cannot pull ${image}: registry 169.254.169.254 is refused: it is a link-local address (built-in rule 169.254.0.0/16)`,
      });
      expect(w.status?.desiredNodes ?? 0).toBe(0);
      const events = await eventsOf('metadata-registry');
      expect(events.filter((e) => e.startsWith('Normal Started'))).toEqual([]);
      expect(events.some((e) => e.startsWith('Warning Failed') && e.includes('built-in rule 169.254.0.0/16'))).toBe(true);
    });
  });

  it('deletes a finished Warmup after ttlSecondsAfterFinished', async () => {
    const image = await smallImage('ttl');
    await api.create(NS, 'ttl', { images: [{ image }], nodes: { names: ['node-1'] }, policy: { ttlSecondsAfterFinished: 2 } });
    const w = await finished('ttl');
    expect(w.status?.phase).toBe('Succeeded');
    await waitFor('Warmup ttl to be deleted', async () => ((await api.get(NS, 'ttl')) === undefined ? true : undefined), 30_000);
  });

  it('suspend holds the Warmup without dispatching; resuming finishes it', async () => {
    const image = await smallImage('suspend');
    await api.create(NS, 'suspend', { images: [{ image }], suspend: true });
    const held = await waitFor('Suspended condition', async () => {
      const w = await api.get(NS, 'suspend');
      return w?.status?.conditions?.some((c) => c.type === 'Suspended' && c.status === 'True') ? w : undefined;
    });
    expect(held.status?.phase).toBe('Pending');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await presentOn(image)).toEqual([]);
    await api.patchSpec(NS, 'suspend', { images: [{ image }], suspend: false });
    const w = await finished('suspend');
    expect(w.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 3 });
    expect(w.status?.conditions?.find((c) => c.type === 'Suspended')?.status).toBe('False');
    expect(await presentOn(image)).toEqual(NODES);
  });

  it('an agent that stops answering: its node is retried, then recorded failed; the others succeed', async () => {
    const image = await smallImage('agent-down');
    const victim = nodes.get('node-2')!;
    await victim.stopAgent();
    try {
      await api.create(NS, 'agent-down', { images: [{ image }], policy: { backoffLimit: 1 } });
      const w = await finished('agent-down');
      expect(w.status).toMatchObject({ phase: 'Failed', succeededNodes: 2, failedNodes: 1 });
      expect(w.status?.failedNodeList).toEqual([expect.objectContaining({ name: 'node-2', reason: 'AgentUnavailable' })]);
      expect(w.status?.conditions?.find((c) => c.type === 'Failed')?.reason).toBe('NodesFailed');
      expect((await eventsOf('agent-down')).some((e) => e.startsWith('Warning NodeFailed') && e.includes('node-2'))).toBe(true);
      expect(await presentOn(image)).toEqual(['node-1', 'node-3']);
    } finally {
      await victim.startAgent();
    }
  });

  it('a node deleted mid-task is recorded failed with NodeDeleted; the others succeed', async () => {
    proxy.setRate(256 * 1024);
    try {
      const image = (await pushRandomImage(registry, 'ctl/node-deleted', { layers: 1, layerSizeBytes: 1024 * 1024 })).replace(registry.host, proxy.host);
      await api.create(NS, 'node-deleted', { images: [{ image }] });
      await waitFor('node-3 to be in flight', async () => ((await nodes.get('node-3')!.metric('stoker_tasks_in_flight')) > 0 ? true : undefined), 60_000, 50);
      await deleteNode(kube.kubeConfig, 'node-3');
      // The pull stays slow until the controller has recorded the deletion.
      await waitFor('node-3 recorded failed', async () => ((await api.get(NS, 'node-deleted'))?.status?.failedNodes ? true : undefined), 60_000, 100);
      proxy.setRate(Infinity);
      const w = await finished('node-deleted');
      expect(w.status).toMatchObject({ phase: 'Failed', succeededNodes: 2, failedNodes: 1 });
      expect(w.status?.failedNodeList).toEqual([{ name: 'node-3', reason: 'NodeDeleted', message: 'node node-3 was deleted' }]);
    } finally {
      proxy.setRate(1024 * 1024);
      await createNode(kube.kubeConfig, 'node-3', LABELS['node-3'] ?? {}).catch(() => undefined);
    }
  });
});

describe('restarts and replicas', () => {
  it('a controller killed mid-Warmup is restarted, re-attaches to the tasks in flight, and finishes without pulling again', async () => {
    // By digest, so every node starts at once (a tag is resolved on one node first).
    const image = byDigest(await pushRandomImageDetailed(registry, 'ctl/restart', { layers: 1, layerSizeBytes: 3 * 1024 * 1024 }), { from: registry.host, to: proxy.host });
    proxy.setRate(512 * 1024);
    const tasksBefore = await Promise.all(NODES.map((n) => nodes.get(n)!.metric('stoker_tasks_total')));
    const pulledBefore = await Promise.all(NODES.map((n) => nodes.get(n)!.metric('stoker_image_pulls_total', { outcome: 'pulled' })));
    const start = (): ChildProcess => {
      const flags = Object.entries(controllerFlags()).flatMap(([k, v]) => [`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, v]);
      const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bin', 'main.ts'), 'controller', ...flags], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr?.resume();
      return child;
    };
    let child = start();
    try {
      await api.create(NS, 'restart', { images: [{ image }] });
      // Killed once the status records the tasks in flight (what a restarted controller reads).
      await waitFor('tasks in flight recorded in status', async () => {
        const w = await api.get(NS, 'restart');
        return (w?.status?.activeNodeList?.length ?? 0) === 3 && w?.status?.phase === 'Running' ? true : undefined;
      }, 60_000, 100);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      expect((await api.get(NS, 'restart'))?.status?.phase).toBe('Running');
      child = start();
      proxy.setRate(4 * 1024 * 1024);
      const w = await finished('restart');
      expect(w.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 3, failedNodes: 0 });
      expect(await presentOn(image)).toEqual(NODES);
      const tasksAfter = await Promise.all(NODES.map((n) => nodes.get(n)!.metric('stoker_tasks_total')));
      const pulledAfter = await Promise.all(NODES.map((n) => nodes.get(n)!.metric('stoker_image_pulls_total', { outcome: 'pulled' })));
      // One task and one pull per node: the restarted controller joined the running tasks.
      expect(tasksAfter.map((t, i) => t - (tasksBefore[i] ?? 0))).toEqual([1, 1, 1]);
      expect(pulledAfter.map((t, i) => t - (pulledBefore[i] ?? 0))).toEqual([1, 1, 1]);
    } finally {
      proxy.setRate(1024 * 1024);
      child.kill('SIGKILL');
    }
  });

  it('a restarted controller does not redo nodes its predecessor recorded done', async () => {
    const image = (await pushRandomImage(registry, 'ctl/restart-record', { layers: 1, layerSizeBytes: 1536 * 1024 })).replace(registry.host, proxy.host);
    proxy.setRate(512 * 1024);
    const port = await freePort();
    const start = (): ChildProcess => {
      const flags = Object.entries(controllerFlags({ httpListen: `127.0.0.1:${port}` })).flatMap(([k, v]) => [`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, v]);
      const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bin', 'main.ts'), 'controller', ...flags], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr?.resume();
      return child;
    };
    let child = start();
    try {
      await api.create(NS, 'restart-record', { images: [{ image }], policy: { parallelism: 1 } });
      // Killed once one node is recorded done and the next one is in flight.
      await waitFor('one node recorded done, one in flight', async () => {
        const w = await api.get(NS, 'restart-record');
        return w?.status?.succeededNodes === 1 && w.status.activeNodeList?.length === 1 ? true : undefined;
      }, 60_000, 100);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      child = start();
      proxy.setRate(8 * 1024 * 1024);
      const w = await finished('restart-record');
      expect(w.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 3, desiredNodes: 3 });
      expect(await presentOn(image)).toEqual(NODES);
      // The restarted controller warmed only the two nodes not yet recorded.
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^stoker_node_tasks_total\{outcome="succeeded"\} 2$/m);
    } finally {
      proxy.setRate(1024 * 1024);
      child.kill('SIGKILL');
    }
  });

  it('two controllers elect one leader; only the leader dispatches', async () => {
    // Long enough that a loaded machine does not flip the leader mid-Warmup.
    const flags = { leaderElect: 'true', leaseDuration: '15s', renewDeadline: '10s', retryPeriod: '1s', leaderLeaseName: 'stoker-controller-pair' };
    const a = await inProcessController({ ...flags, leaderElectionId: 'replica-a' });
    const b = await inProcessController({ ...flags, leaderElectionId: 'replica-b' });
    try {
      await waitFor('a leader', () => Promise.resolve(a.isLeader() || b.isLeader() ? true : undefined), 30_000);
      const image = await smallImage('replicas');
      await api.create(NS, 'replicas', { images: [{ image }] });
      const w = await finished('replicas');
      expect(w.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 3 });
      expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
      const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
      const tasks = async (c: RunningController) => ((await c.metrics.nodeTasks.get()).values.find((v) => v.labels.outcome === 'succeeded')?.value ?? 0);
      expect(await tasks(leader)).toBe(3);
      expect(await tasks(follower)).toBe(0);
    } finally {
      await Promise.allSettled([a.stop(), b.stop()]);
    }
  });
});
