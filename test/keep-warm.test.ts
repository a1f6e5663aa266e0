// Keeping nodes warm, end to end: a real kube-apiserver, simulated nodes (each a Node object, its
// own containerd and a real in-process agent announced by a Lease), a real registry and the real
// controller. Assertions are on what a user sees: the Warmup's status and conditions, `kubectl
// wait`, the images in each node's runtime, the files in its page cache (vmtouch, fincore) and the
// labels on the Node objects.
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api, Watch, type V1Node } from '@kubernetes/client-node';
import type { RunningController } from '../controller/main.js';
import type { Warmup } from '../controller/api/types.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { pushRandomImage } from './support/images.js';
import { evictFromPageCache, residentBytes } from './support/page-cache.js';
import { startKube, type Kube } from './support/kube.js';
import { startRegistry, type Registry } from './support/registry.js';
import { ensureNamespace, rootFor, type SimNode, startSimNode, startTestController, waitFor, warmupApi } from './support/sim-cluster.js';

const NS = 'default';
const STOKER_NS = 'stoker-system';
const GPU = { 'stoker.io/pool': 'gpu' };

let dir: string;
let kube: Kube;
let certs: Certificates;
let registry: Registry;
let controller: RunningController;
const containerds = new Map<string, Containerd>();
const nodes = new Map<string, SimNode>();
let api: ReturnType<typeof warmupApi>;

async function addNode(name: string, labels: Record<string, string>): Promise<SimNode> {
  const containerd = await startContainerd();
  containerds.set(name, containerd);
  await registry.addTo(containerd);
  const node = await startSimNode({ kc: kube.kubeConfig, certs, name, labels, containerd, namespace: STOKER_NS, allowedRoot: rootFor(dir, name) });
  nodes.set(name, node);
  return node;
}

function smallImage(name: string): Promise<string> {
  return pushRandomImage(registry, `kw/${name}`, { layers: 1, layerSizeBytes: 256 * 1024 });
}

async function presentOn(image: string): Promise<string[]> {
  const out: string[] = [];
  for (const [name, n] of [...nodes.entries()].sort()) if (await n.containerd.imagePresent(image)) out.push(name);
  return out;
}

/** Nodes carrying `label`, from the API server. */
async function labelled(label: string): Promise<string[]> {
  const list = await kube.kubeConfig.makeApiClient(CoreV1Api).listNode();
  return list.items.filter((n) => n.metadata?.labels?.[label] === 'true').map((n) => n.metadata?.name ?? '').sort();
}

/**
 * Watches Nodes and records each change of `label` on them ("+node-a", "-node-b"), so a label
 * that goes and comes back between two polls is still seen.
 */
async function watchLabel(label: string): Promise<{ changes: string[]; stop(): void }> {
  const changes: string[] = [];
  const state = new Map<string, boolean>();
  const list = await kube.kubeConfig.makeApiClient(CoreV1Api).listNode();
  for (const n of list.items) state.set(n.metadata?.name ?? '', n.metadata?.labels?.[label] === 'true');
  const query = { resourceVersion: list.metadata?.resourceVersion ?? '', timeoutSeconds: 600 };
  const req = await new Watch(kube.kubeConfig).watch('/api/v1/nodes', query, (type: string, node: V1Node) => {
    const name = node.metadata?.name ?? '';
    const has = type !== 'DELETED' && node.metadata?.labels?.[label] === 'true';
    if ((state.get(name) ?? false) !== has) changes.push(`${has ? '+' : '-'}${name}`);
    state.set(name, has);
  }, () => undefined);
  return { changes, stop: () => req.abort() };
}

function warmCondition(w: Warmup | undefined) {
  return w?.status?.conditions?.find((c) => c.type === 'Warm');
}

/** Waits until the Warmup's Warm condition is True with `message`. */
function warmWith(name: string, message: string, timeoutMs = 60_000): Promise<Warmup> {
  return waitFor(`Warmup ${name} to be Warm: ${message}`, async () => {
    const w = await api.get(NS, name);
    const c = warmCondition(w);
    return c?.status === 'True' && c.message === message ? w : undefined;
  }, timeoutMs, 100);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-keep-warm-test-'));
  [kube, certs, registry] = await Promise.all([startKube(), makeCertificates(join(dir, 'pki')), startRegistry()]);
  await ensureNamespace(kube.kubeConfig, STOKER_NS);
  api = warmupApi(kube.kubeConfig);
  await addNode('node-a', GPU);
  await addNode('node-b', GPU);
  await addNode('node-x', { 'stoker.io/pool': 'cpu' });
  controller = await startTestController(kube, certs, STOKER_NS);
});

afterAll(async () => {
  await controller?.stop();
  await Promise.allSettled([...nodes.values()].map((n) => n.stop()));
  await Promise.allSettled([...containerds.values()].map((c) => c.stop()));
  await registry?.stop();
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('keepWarm', () => {
  it('warms the selected nodes, a node that joins later, and pulls again an image removed from a node at its next recheck', async () => {
    const image = await smallImage('keep');
    const LABEL = 'warm.stoker.io/default.keep';
    const watch = await watchLabel(LABEL);
    await api.create(NS, 'keep', { images: [{ image }], keepWarm: true, policy: { recheckSeconds: 5 }, nodes: { selector: { matchLabels: GPU } } });

    // kubectl wait --for=condition=Warm returns once both nodes are warm.
    const waited = await kube.kubectl(['wait', '--for=condition=Warm', 'warmup/keep', '-n', NS, '--timeout=60s']);
    expect(waited.trim()).toBe('warmup.stoker.io/keep condition met');
    const w = await warmWith('keep', '2 of 2 node(s) warm');
    expect(w.status).toMatchObject({ phase: 'Running', desiredNodes: 2, succeededNodes: 2, failedNodes: 0 });
    expect(warmCondition(w)).toMatchObject({ reason: 'AllNodesWarm' });
    expect(w.status?.completionTime).toBeUndefined();
    expect(await presentOn(image)).toEqual(['node-a', 'node-b']);
    // Each warm node says so with the Warmup's label, named in status.
    expect(w.status?.nodeLabel).toBe(LABEL);
    await waitFor('node-a and node-b to be labelled', async () => ((await labelled(LABEL)).join() === 'node-a,node-b' ? true : undefined), 10_000, 100);

    // A node that joins the pool later is warmed too.
    await addNode('node-c', GPU);
    await warmWith('keep', '3 of 3 node(s) warm');
    expect(await presentOn(image)).toEqual(['node-a', 'node-b', 'node-c']);
    await waitFor('node-c to be labelled', async () => ((await labelled(LABEL)).length === 3 ? true : undefined), 10_000, 100);
    const before = watch.changes.length;

    // An image removed from a node (as kubelet's image GC would) is pulled again within the recheck interval.
    const t0 = Date.now();
    await containerds.get('node-b')!.removeImage(image);
    expect(await containerds.get('node-b')!.imagePresent(image)).toBe(false);
    await waitFor('the image to be back on node-b', async () => ((await containerds.get('node-b')!.imagePresent(image)) ? true : undefined), 30_000, 100);
    const backMs = Date.now() - t0;
    console.log(`keepWarm: image removed from node-b was back after ${backMs} ms (recheckSeconds 5)`);
    expect(backMs).toBeLessThan(10_000);
    await warmWith('keep', '3 of 3 node(s) warm');
    expect((await api.get(NS, 'keep'))?.status?.phase).toBe('Running');
    // node-b's label went while its image was gone and came back once it was pulled again.
    await waitFor('node-b to be labelled again', async () => ((await labelled(LABEL)).length === 3 ? true : undefined), 10_000, 100);
    expect(watch.changes.slice(before)).toEqual(['-node-b', '+node-b']);

    // Deleting the Warmup takes the label off every node before it is gone.
    await api.delete(NS, 'keep');
    await waitFor('the Warmup to be gone', async () => ((await api.get(NS, 'keep')) === undefined ? true : undefined), 30_000, 100);
    expect(await labelled(LABEL)).toEqual([]);
    watch.stop();
    console.log(`keepWarm: label changes seen on the nodes: ${watch.changes.join(' ')}`);
  });
});

describe('keepWarm paths', () => {
  it('reads again, at its next recheck, the files of a warmed path evicted from the page cache', async () => {
    const FILE_BYTES = 8 << 20;
    const MIN_PERCENT = 90;
    const models = join(rootFor(dir, 'node-x'), 'models');
    await mkdir(models, { recursive: true });
    const file = join(models, 'weights.bin');
    const fh = await open(file, 'w');
    await fh.writeFile(Buffer.alloc(FILE_BYTES, 7));
    await fh.sync(); // dirty pages are never dropped
    await fh.close();
    evictFromPageCache(file);
    expect(residentBytes(file)).toBe(0);

    await api.create(NS, 'keep-files', { paths: [{ path: models }], keepWarm: true, policy: { recheckSeconds: 5, minResidentPercent: MIN_PERCENT }, nodes: { names: ['node-x'] } });
    const w = await warmWith('keep-files', '1 of 1 node(s) warm');
    expect(w.status?.residency).toMatchObject({ residentBytes: FILE_BYTES, totalBytes: FILE_BYTES, nodes: 1, belowMinimum: 0 });
    // Read from outside too: warm by the Warmup's own measure (the kernel may already have let a
    // page go on a busy machine).
    expect(residentBytes(file) * 100).toBeGreaterThanOrEqual(FILE_BYTES * MIN_PERCENT);

    // The kernel drops the file's pages (vmtouch -e, as memory pressure would); the next check
    // finds the path below its minimum and the node reads it again.
    const t0 = Date.now();
    evictFromPageCache(file);
    expect(residentBytes(file)).toBe(0);
    await waitFor('the file to be resident again', () => Promise.resolve(residentBytes(file) * 100 >= FILE_BYTES * MIN_PERCENT ? true : undefined), 30_000, 100);
    const backMs = Date.now() - t0;
    const after = residentBytes(file);
    console.log(`keepWarm: evicted file resident again after ${backMs} ms (${after} of ${FILE_BYTES} bytes, recheckSeconds 5)`);
    expect(after * 100).toBeGreaterThanOrEqual(FILE_BYTES * MIN_PERCENT);
    const again = await warmWith('keep-files', '1 of 1 node(s) warm');
    expect(again.status?.phase).toBe('Running');
    expect(again.status?.residency).toMatchObject({ totalBytes: FILE_BYTES, nodes: 1, belowMinimum: 0 });
    expect((again.status?.residency?.residentBytes ?? 0) * 100).toBeGreaterThanOrEqual(FILE_BYTES * MIN_PERCENT);
    await api.delete(NS, 'keep-files');
    await waitFor('the Warmup to be gone', async () => ((await api.get(NS, 'keep-files')) === undefined ? true : undefined), 30_000, 100);
  });
});

describe('reruns and spec edits', () => {
  function finishedWith(name: string, ok: (w: Warmup) => boolean): Promise<Warmup> {
    return waitFor(`Warmup ${name} to finish`, async () => {
      const w = await api.get(NS, name);
      return w && (w.status?.phase === 'Succeeded' || w.status?.phase === 'Failed') && ok(w) ? w : undefined;
    }, 60_000, 100);
  }

  it('kubectl annotate stoker.io/rerun runs a finished Warmup again: an image removed since is pulled again', async () => {
    const image = await smallImage('rerun');
    await api.create(NS, 'rerun', { images: [{ image }], nodes: { names: ['node-x'] } });
    const first = await finishedWith('rerun', () => true);
    expect(first.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 1 });
    await containerds.get('node-x')!.removeImage(image);

    await kube.kubectl(['annotate', 'warmup', 'rerun', '-n', NS, 'stoker.io/rerun=1', '--overwrite']);
    const again = await finishedWith('rerun', (w) => w.status?.observedRerun === '1');
    expect(again.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 1, observedRerun: '1' });
    expect(Date.parse(again.status?.completionTime ?? '')).toBeGreaterThan(Date.parse(first.status?.completionTime ?? ''));
    expect(await containerds.get('node-x')!.imagePresent(image)).toBe(true);
  });

  it('editing the images of a finished Warmup warms its nodes again for the new spec', async () => {
    const [one, two] = await Promise.all([smallImage('edit-1'), smallImage('edit-2')]);
    await api.create(NS, 'edit', { images: [{ image: one }], nodes: { names: ['node-x'] } });
    const first = await finishedWith('edit', () => true);
    expect(first.status).toMatchObject({ phase: 'Succeeded', observedGeneration: 1 });
    expect(await containerds.get('node-x')!.imagePresent(two)).toBe(false);

    await api.patchSpec(NS, 'edit', { images: [{ image: two }], nodes: { names: ['node-x'] } });
    const edited = await finishedWith('edit', (w) => w.status?.observedGeneration === 2);
    expect(edited.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 1, desiredNodes: 1 });
    expect(await containerds.get('node-x')!.imagePresent(two)).toBe(true);
  });

  it('spec.schedule runs a finished Warmup again at each tick: an image removed since is pulled again', async () => {
    const image = await smallImage('cron');
    // Every 5 seconds (6 fields, seconds first), so the test need not wait a minute.
    await api.create(NS, 'cron', { images: [{ image, pullPolicy: 'Always' }], nodes: { names: ['node-x'] }, schedule: '*/5 * * * * *' });
    const first = await finishedWith('cron', () => true);
    expect(first.status?.phase).toBe('Succeeded');
    await containerds.get('node-x')!.removeImage(image);
    const t0 = Date.now();
    const again = await finishedWith('cron', (w) => w.status?.lastScheduleTime !== undefined && w.status.lastScheduleTime !== first.status?.lastScheduleTime && Date.parse(w.status.lastScheduleTime) >= t0 - 1000);
    expect(again.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 1 });
    expect(await containerds.get('node-x')!.imagePresent(image)).toBe(true);
    await api.delete(NS, 'cron');
  });
});

