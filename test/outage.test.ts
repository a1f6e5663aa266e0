// The control plane going away and coming back: a real kube-apiserver (or the etcd under it) is
// stopped while a Warmup pulls through a throttled registry, and started again on the same port and
// data. Two agents stay up throughout. What a user sees afterwards must be what they would have seen
// without the outage: the Warmup Succeeded on both nodes, one Started and one Completed Event, no
// Warning; and nothing was done twice (each agent ran one task and pulled the image once).
//
// The controller finds the agents through the EndpointSlices of their Service. No
// kube-controller-manager runs here: the test writes those slices once, as Kubernetes' endpointslice
// controller would (support/endpoint-slices.ts); during an outage nobody can change them, in a
// cluster as here. Throughout every outage the controller still counts both agents live: its cache
// keeps what it last saw, and nothing in it expires by a clock.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api } from '@kubernetes/client-node';
import { resolveControllerConfig } from '../controller/config.js';
import { startController, type RunningController } from '../controller/main.js';
import type { Warmup } from '../controller/api/types.js';
import { createLogger } from '../proto/common/log.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { byDigest, pushRandomImage, pushRandomImageDetailed } from './support/images.js';
import { startKube, type Kube, type KubeServer } from './support/kube.js';
import { startThrottledProxy, type ThrottledProxy } from './support/proxy.js';
import { addRegistryHost, startRegistry, type Registry } from './support/registry.js';
import { ensureNamespace, startSimNode, waitFor, warmupApi, type SimNode } from './support/sim-cluster.js';

const NS = 'default';
const STOKER_NS = 'stoker-system';
const NODES = ['node-a', 'node-b'];
/**
 * A long outage: past the watch timeouts, the watchdog and the leader's renew deadline. (A restarted
 * API server also takes 5-25 s to answer on a busy 2-core machine.)
 */
const LONG_OUTAGE_SECONDS = 20;
/** Through the proxy, both nodes together pull at this rate until the control plane is back: ~130 s for both. */
const SLOW_RATE = 64 * 1024;
const IMAGE_BYTES = 4 * 1024 * 1024;

let dir: string;
let kube: Kube;
let certs: Certificates;
let registry: Registry;
let proxy: ThrottledProxy;
const containerds: Containerd[] = [];
const nodes = new Map<string, SimNode>();
let api: ReturnType<typeof warmupApi>;
const log = createLogger({ name: 'stoker-controller', level: process.env['STOKER_TEST_LOG'] ?? 'silent' });

function controller(extra: Record<string, string> = {}): Promise<RunningController> {
  const config = resolveControllerConfig({
    kubeconfig: kube.kubeconfigPath,
    namespace: STOKER_NS,
    tlsCertFile: certs.clientCert,
    tlsPrivateKeyFile: certs.clientKey,
    agentCaFile: certs.caCert,
    httpListen: '127.0.0.1:0',
    // A watch the server ends after about 2 s, and a watchdog of 3 s: the outages are longer.
    watchdog: '3s',
    ...extra,
  });
  return startController(config, { log });
}

async function eventsOf(name: string): Promise<string[]> {
  const core = kube.kubeConfig.makeApiClient(CoreV1Api);
  const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` });
  return list.items.flatMap((e) => Array.from({ length: e.count ?? 1 }, () => `${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`));
}

function finished(name: string, timeoutMs = 120_000): Promise<Warmup> {
  return api.finished(NS, name, timeoutMs);
}

/** Per node: tasks the agents finished and images they pulled (not found present) so far, once none is in flight. */
async function agentWork(): Promise<{ tasks: number[]; pulls: number[] }> {
  const all = NODES.map((n) => nodes.get(n)!);
  await waitFor('the agents to be idle', async () => ((await Promise.all(all.map((n) => n.metric('stoker_tasks_in_flight')))).every((x) => x === 0) ? true : undefined), 120_000, 100);
  return {
    tasks: await Promise.all(all.map((n) => n.metric('stoker_tasks_total'))),
    pulls: await Promise.all(all.map((n) => n.metric('stoker_image_pulls_total', { outcome: 'pulled' }))),
  };
}

/** A fresh image behind the slow proxy, by digest, so both nodes start at once (a tag is resolved on one node first). */
async function slowImage(name: string): Promise<string> {
  return byDigest(await pushRandomImageDetailed(registry, `outage/${name}`, { layers: 1, layerSizeBytes: IMAGE_BYTES }), { from: registry.host, to: proxy.host });
}

/**
 * Creates a Warmup of a slow image and resolves once both nodes are pulling it (and status says so)
 * and it has been running for `ageMs`: a Warmup older than a minute is one the controller would
 * fail with NoMatchingNodes if it took its agents for gone.
 */
async function startSlowWarmup(name: string, ageMs = 0): Promise<void> {
  proxy.setRate(SLOW_RATE);
  const created = Date.now();
  await api.create(NS, name, { images: [{ image: await slowImage(name) }] });
  await waitFor(`${name} in flight on both nodes`, async () => {
    const w = await api.get(NS, name);
    const busy = await Promise.all(NODES.map(async (n) => (await nodes.get(n)!.metric('stoker_tasks_in_flight')) > 0));
    return w?.status?.phase === 'Running' && w.status.activeNodeList?.length === 2 && busy.every(Boolean) ? true : undefined;
  }, 60_000, 100);
  await new Promise((r) => setTimeout(r, Math.max(0, created + ageMs - Date.now())));
}

/**
 * Stops `server`, waits `seconds`, checks that every controller still counts both agents live, starts
 * the server again; resolves with when it answered again and how long it was away (ms). The registry
 * stays slow until then, so the Warmup is in flight throughout.
 */
async function outage(server: KubeServer, seconds: number, controllers: RunningController[]): Promise<{ back: number; awayMs: number }> {
  const away = Date.now();
  await kube.stopServer(server);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  for (const c of controllers) expect([...c.agents.live().keys()].sort()).toEqual(NODES);
  await kube.startServer(server);
  if (server === 'etcd') await waitFor('the API server to answer again', () => kube.kubectl(['get', '--raw', '/readyz', '--request-timeout=2s']).then((o) => (o.trim() === 'ok' ? true : undefined)), 60_000, 100);
  const back = Date.now();
  proxy.setRate(Infinity);
  return { back, awayMs: back - away };
}

/** What every outage must leave behind: a Warmup finished as if nothing had happened, nothing redone. */
async function expectUntouched(name: string, before: { tasks: number[]; pulls: number[] }): Promise<Warmup> {
  const w = await finished(name);
  expect(w.status).toMatchObject({ phase: 'Succeeded', desiredNodes: 2, succeededNodes: 2, failedNodes: 0 });
  expect(w.status?.conditions?.find((c) => c.type === 'Complete')).toMatchObject({ status: 'True', reason: 'AllNodesWarmed' });
  expect(w.status?.conditions?.some((c) => c.type === 'Failed')).toBe(false);
  for (const n of NODES) expect(await nodes.get(n)!.containerd.imagePresent(w.spec.images?.[0]?.image ?? '')).toBe(true);
  // Events are written in the background, after the status: wait for the last one.
  const events = await waitFor(`the Completed Event of ${name}`, async () => {
    const all = await eventsOf(name);
    return all.some((e) => e.startsWith('Normal Completed')) ? all : undefined;
  }, 30_000, 200);
  expect(events.filter((e) => e.startsWith('Normal Started'))).toHaveLength(1);
  expect(events.filter((e) => e.startsWith('Normal Completed'))).toEqual(['Normal Completed: 2 of 2 node(s) warmed']);
  expect(events.filter((e) => e.startsWith('Warning'))).toEqual([]);
  // One task and one pull per node: work in flight before the outage was joined, not redone.
  const after = await agentWork();
  expect(after.tasks.map((t, i) => t - (before.tasks[i] ?? 0))).toEqual([1, 1]);
  expect(after.pulls.map((p, i) => p - (before.pulls[i] ?? 0))).toEqual([1, 1]);
  return w;
}

/** A Warmup created the moment the control plane is back runs at once; resolves with its duration (ms). */
async function freshWarmup(name: string): Promise<number> {
  const image = await pushRandomImage(registry, `outage/${name}`, { layers: 1, layerSizeBytes: 128 * 1024 });
  const start = Date.now();
  await api.create(NS, name, { images: [{ image }] });
  const w = await finished(name, 60_000);
  const took = Date.now() - start;
  expect(w.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 2 });
  return took;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-outage-test-'));
  [kube, certs, registry] = await Promise.all([startKube(), makeCertificates(join(dir, 'pki')), startRegistry()]);
  proxy = await startThrottledProxy(registry, SLOW_RATE);
  for (const _ of NODES) containerds.push(await startContainerd());
  for (const c of containerds) {
    await registry.addTo(c);
    await addRegistryHost(c, proxy);
  }
  await ensureNamespace(kube.kubeConfig, STOKER_NS);
  api = warmupApi(kube.kubeConfig);
  for (const [i, name] of NODES.entries()) {
    nodes.set(name, await startSimNode({ kc: kube.kubeConfig, certs, name, containerd: containerds[i]!, namespace: STOKER_NS }));
  }
});

afterAll(async () => {
  await Promise.allSettled([...nodes.values()].map((n) => n.stop()));
  await Promise.allSettled([...containerds.map((c) => c.stop()), registry?.stop(), proxy?.stop()]);
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the API server goes away mid-Warmup', () => {
  it('briefly (past the watch timeouts): the Warmup finishes on both nodes without redoing anything', async () => {
    // A leader Lease that outlasts the outage: this replica leads throughout.
    const c = await controller({ leaderLeaseName: 'outage-short', leaseDuration: '60s', renewDeadline: '45s' });
    try {
      await waitFor('a leader', () => Promise.resolve(c.isLeader() || undefined), 30_000);
      const before = await agentWork();
      await startSlowWarmup('short');
      const { back, awayMs } = await outage('kube-apiserver', 0, [c]);
      await expectUntouched('short', before);
      const finishedAfter = Date.now() - back;
      const fresh = await freshWarmup('after-short');
      console.info(`API server away ${awayMs} ms: the Warmup finished ${finishedAfter} ms after it answered; one created then took ${fresh} ms`);
      expect(c.isLeader()).toBe(true);
      expect(fresh).toBeLessThan(10_000);
    } finally {
      await c.stop();
    }
  });

  it('long (past the leader\'s renew deadline), with two replicas: one leads again, nothing is dispatched twice', async () => {
    const flags = { leaderLeaseName: 'outage-long', leaseDuration: '6s', renewDeadline: '4s', retryPeriod: '1s' };
    const a = await controller({ ...flags, leaderElectionId: 'replica-a' });
    const b = await controller({ ...flags, leaderElectionId: 'replica-b' });
    try {
      await waitFor('a leader', () => Promise.resolve(a.isLeader() || b.isLeader() || undefined), 30_000);
      const before = await agentWork();
      await startSlowWarmup('long', 40_000);
      const { back, awayMs } = await outage('kube-apiserver', LONG_OUTAGE_SECONDS, [a, b]);
      expect(awayMs).toBeGreaterThan(LONG_OUTAGE_SECONDS * 1000);
      await expectUntouched('long', before);
      const finishedAfter = Date.now() - back;
      const fresh = await freshWarmup('after-long');
      console.info(`API server away ${awayMs} ms: the Warmup finished ${finishedAfter} ms after it answered; one created then took ${fresh} ms`);
      expect(fresh).toBeLessThan(10_000);
      expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
    } finally {
      await Promise.allSettled([a.stop(), b.stop()]);
    }
  });
});

describe('etcd goes away under a running API server', () => {
  it('long (the API server answers nothing, its watches stay open and silent): the Warmup finishes on both nodes without redoing anything', async () => {
    const c = await controller({ leaderLeaseName: 'outage-etcd' });
    try {
      await waitFor('a leader', () => Promise.resolve(c.isLeader() || undefined), 30_000);
      const before = await agentWork();
      await startSlowWarmup('etcd', 40_000);
      const { back, awayMs } = await outage('etcd', LONG_OUTAGE_SECONDS, [c]);
      expect(awayMs).toBeGreaterThan(LONG_OUTAGE_SECONDS * 1000);
      await expectUntouched('etcd', before);
      const finishedAfter = Date.now() - back;
      const fresh = await freshWarmup('after-etcd');
      console.info(`etcd away ${awayMs} ms: the Warmup finished ${finishedAfter} ms after the API server answered again; one created then took ${fresh} ms`);
      expect(fresh).toBeLessThan(10_000);
    } finally {
      await c.stop();
    }
  });
});
