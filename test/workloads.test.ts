// Warming what a workload needs, end to end: a real kube-apiserver (no kube-controller-manager, so
// no pods are ever made and no garbage collector runs), three simulated nodes (each a Node object,
// its own containerd and a real agent), a real registry and the real controller. Workloads are
// written and annotated with kubectl, as a user would; assertions are on the images in each node's
// runtime, the Warmup's status and printer columns, and the Events on the workload.
//
// Nodes: node-a (pool=gpu, zone=a, taint dedicated=ml:NoSchedule), node-b (pool=gpu, zone=b),
// node-c (pool=gpu, zone=c, taint maintenance=true:NoExecute).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Taint } from '@kubernetes/client-node';
import type { RunningController } from '../controller/main.js';
import type { Warmup } from '../controller/api/types.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { pushRandomImage } from './support/images.js';
import { startKube, type Kube } from './support/kube.js';
import { startRegistry, type Registry } from './support/registry.js';
import { ensureNamespace, rootFor, type SimNode, startSimNode, startTestController, waitFor, warmupApi } from './support/sim-cluster.js';

const NS = 'ml';
const STOKER_NS = 'stoker-system';
const NODES = ['node-a', 'node-b', 'node-c'];
// Set whole, replacing the node.kubernetes.io/not-ready taint a new Node gets: no kubelet runs here
// to make it Ready, and the scheduler would not place the workloads' pods on a node not ready.
const TAINTS: Record<string, V1Taint[]> = {
  'node-a': [{ key: 'dedicated', value: 'ml', effect: 'NoSchedule' }],
  'node-b': [],
  'node-c': [{ key: 'maintenance', value: 'true', effect: 'NoExecute' }],
};
const TOLERATE_ML = [{ key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule' }];

let dir: string;
let kube: Kube;
let certs: Certificates;
let registry: Registry;
let controller: RunningController;
const containerds: Containerd[] = [];
const nodes = new Map<string, SimNode>();
let api: ReturnType<typeof warmupApi>;

const LWS_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'leaderworkersets.leaderworkerset.x-k8s.io' },
  spec: {
    group: 'leaderworkerset.x-k8s.io',
    names: { kind: 'LeaderWorkerSet', listKind: 'LeaderWorkerSetList', plural: 'leaderworkersets', singular: 'leaderworkerset' },
    scope: 'Namespaced',
    versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } } } }],
  },
};

function smallImage(name: string): Promise<string> {
  return pushRandomImage(registry, `wl/${name}`, { layers: 1, layerSizeBytes: 128 * 1024 });
}

async function presentOn(image: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of NODES) if (await nodes.get(n)!.containerd.imagePresent(image)) out.push(n);
  return out;
}

/** Waits until `image` is in the runtime of exactly `want` (and of no other node). */
async function landsOn(image: string, want: string[]): Promise<void> {
  try {
    await waitFor(`${image} on ${want.join(', ')}`, async () => ((await presentOn(image)).join() === want.join() ? true : undefined), 60_000, 200);
  } catch (err) {
    console.log(await kube.kubectl(['get', 'warmups', '-A', '-o', 'yaml']).then((y) => y.replaceAll('\n', ' ')));
    throw err;
  }
}

async function apply(obj: object): Promise<void> {
  await kube.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

async function eventsOn(name: string, kind: string): Promise<string[]> {
  const list = await kube.kubeConfig.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name},involvedObject.kind=${kind}` });
  return list.items.map((e) => `${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`);
}

function condition(w: Warmup | undefined, type: string) {
  return w?.status?.conditions?.find((c) => c.type === type);
}

/** Waits until the Warmup exists and `ok` holds for it. */
function warmupWhere(name: string, what: string, ok: (w: Warmup) => boolean, timeoutMs = 60_000): Promise<Warmup> {
  return waitFor(`Warmup ${name}: ${what}`, async () => {
    const w = await api.get(NS, name);
    return w && ok(w) ? w : undefined;
  }, timeoutMs, 100);
}

function podSpec(containers: { name: string; image: string }[], extra: object = {}): object {
  return { containers, ...extra };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-workloads-test-'));
  [kube, certs, registry] = await Promise.all([startKube(), makeCertificates(join(dir, 'pki')), startRegistry()]);
  await Promise.all([ensureNamespace(kube.kubeConfig, STOKER_NS), ensureNamespace(kube.kubeConfig, NS)]);
  await apply(LWS_CRD);
  await kube.kubectl(['wait', '--for', 'condition=Established', '--timeout=60s', 'crd/leaderworkersets.leaderworkerset.x-k8s.io']);
  api = warmupApi(kube.kubeConfig);
  const core = kube.kubeConfig.makeApiClient(CoreV1Api);
  await Promise.all(NODES.map(async (name) => {
    const containerd = await startContainerd();
    containerds.push(containerd);
    await registry.addTo(containerd);
    nodes.set(name, await startSimNode({ kc: kube.kubeConfig, certs, name, labels: { pool: 'gpu', zone: name.slice(-1) }, containerd, namespace: STOKER_NS, allowedRoot: rootFor(dir, name) }));
    await core.patchNode({ name, body: { spec: { taints: TAINTS[name] ?? [] } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  }));
  controller = await startTestController(kube, certs, STOKER_NS);
});

afterAll(async () => {
  await controller?.stop();
  await Promise.allSettled([...nodes.values()].map((n) => n.stop()));
  await Promise.allSettled(containerds.map((c) => c.stop()));
  await registry?.stop();
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kubectl annotate a workload stoker.io/warm=true', () => {
  it('warms a Deployment\'s init and app images on the nodes its pods may land on, follows set image and warm-images, skips an excluded node, and goes with the annotation', async () => {
    const [init, app, app2, ahead, later] = await Promise.all([smallImage('vllm-init'), smallImage('vllm-app'), smallImage('vllm-app2'), smallImage('vllm-ahead'), smallImage('vllm-later')]);
    await apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'vllm', namespace: NS },
      spec: {
        selector: { matchLabels: { app: 'vllm' } },
        template: {
          metadata: { labels: { app: 'vllm' } },
          spec: podSpec([{ name: 'app', image: app }], { initContainers: [{ name: 'fetch', image: init }], nodeSelector: { pool: 'gpu' }, tolerations: TOLERATE_ML }),
        },
      },
    });
    expect((await kube.kubectl(['annotate', 'deployment/vllm', 'stoker.io/warm=true', '-n', NS])).trim()).toBe('deployment.apps/vllm annotated');

    // The Warmup is made, owned by the Deployment (the garbage collector deletes it with it).
    const made = await warmupWhere('deployment-vllm', 'created', () => true);
    const uid = (await kube.kubectl(['get', 'deployment/vllm', '-n', NS, '-o', 'jsonpath={.metadata.uid}'])).trim();
    expect(made.spec).toMatchObject({ workloadRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'vllm' }, keepWarm: true });
    expect(made.metadata.ownerReferences).toEqual([{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'vllm', uid, controller: false, blockOwnerDeletion: false }]);
    expect(made.metadata.labels).toEqual({ 'stoker.io/derived-from': 'deployment' });

    const waited = await kube.kubectl(['wait', '--for=condition=Warm', 'warmup/deployment-vllm', '-n', NS, '--timeout=60s']);
    expect(waited.trim()).toBe('warmup.stoker.io/deployment-vllm condition met');
    // node-a's taint is tolerated; node-c's NoExecute taint is not.
    expect(await presentOn(init)).toEqual(['node-a', 'node-b']);
    expect(await presentOn(app)).toEqual(['node-a', 'node-b']);
    const w = await warmupWhere('deployment-vllm', '2/2 warm', (x) => x.status?.warm === '2/2');
    expect(w.status).toMatchObject({ source: 'Deployment/vllm', skippedNodes: 1, skippedNodeList: [{ name: 'node-c', reason: 'taint', message: 'taint maintenance=true:NoExecute not tolerated' }] });
    expect(condition(w, 'Derived')).toMatchObject({ status: 'True', reason: 'WorkloadDerived', message: 'Deployment/vllm: 2 image(s), 0 host path(s), 0 claim(s), 1 node(s) skipped' });
    const table = await kube.kubectl(['get', 'warmups', '-A']);
    expect(table).toMatch(/\nml\s+deployment-vllm\s+Running\s+2\s+0\s+2\s+2\/2\s+Deployment\/vllm\s/);
    expect(await eventsOn('vllm', 'Deployment')).toContain('Normal WarmupCreated: annotated stoker.io/warm=true: created Warmup deployment-vllm, which keeps warm what this Deployment\'s pods need');

    // kubectl set image: the new image is warmed on the same nodes.
    await kube.kubectl(['set', 'image', 'deployment/vllm', `app=${app2}`, '-n', NS]);
    await landsOn(app2, ['node-a', 'node-b']);

    // Warm ahead of a rollout.
    await kube.kubectl(['annotate', 'deployment/vllm', `stoker.io/warm-images=${ahead}`, '-n', NS]);
    await landsOn(ahead, ['node-a', 'node-b']);

    // An excluded node gets nothing, and status says why it was skipped.
    await kube.kubectl(['annotate', 'node/node-b', 'stoker.io/exclude=true']);
    await warmupWhere('deployment-vllm', 'node-b skipped as excluded', (x) => x.status?.skippedNodeList?.some((s) => s.name === 'node-b' && s.reason === 'excluded') === true);
    await kube.kubectl(['annotate', '--overwrite', 'deployment/vllm', `stoker.io/warm-images=${later}`, '-n', NS]);
    await landsOn(later, ['node-a']);
    await warmupWhere('deployment-vllm', '1/1 warm', (x) => x.status?.warm === '1/1' && condition(x, 'Warm')?.status === 'True');
    expect(await presentOn(later)).toEqual(['node-a']);
    await kube.kubectl(['annotate', 'node/node-b', 'stoker.io/exclude-']);
    await landsOn(later, ['node-a', 'node-b']);

    // Removing the annotation removes the Warmup made for it; the Deployment stays.
    await kube.kubectl(['annotate', 'deployment/vllm', 'stoker.io/warm-', '-n', NS]);
    await waitFor('the Warmup to be gone', async () => ((await api.get(NS, 'deployment-vllm')) === undefined ? true : undefined), 30_000, 100);
    await waitFor('the WarmupDeleted Event', async () => ((await eventsOn('vllm', 'Deployment')).includes('Normal WarmupDeleted: annotation stoker.io/warm removed: deleted Warmup deployment-vllm') ? true : undefined), 10_000, 100);
  });

  it('warms a StatefulSet on the nodes its nodeSelector picks, and a Job tolerating every taint on all three; a Job deleted leaves its Warmup waiting, nothing else stops', async () => {
    const [db, job] = await Promise.all([smallImage('db'), smallImage('eval')]);
    await apply({
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', namespace: NS, annotations: { 'stoker.io/warm': 'true' } },
      spec: { serviceName: 'db', selector: { matchLabels: { app: 'db' } }, template: { metadata: { labels: { app: 'db' } }, spec: podSpec([{ name: 'db', image: db }], { nodeSelector: { zone: 'b' } }) } },
    });
    await apply({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'eval', namespace: NS, annotations: { 'stoker.io/warm': 'true' } },
      spec: { template: { spec: podSpec([{ name: 'eval', image: job }], { restartPolicy: 'Never', tolerations: [{ operator: 'Exists' }] }) } },
    });
    await landsOn(db, ['node-b']);
    await landsOn(job, NODES);
    const sts = await warmupWhere('statefulset-db', '1/1 warm', (x) => x.status?.warm === '1/1');
    expect(sts.status?.skippedNodeList?.map((s) => `${s.name}:${s.reason}`)).toEqual(['node-a:selector', 'node-c:selector']);
    await warmupWhere('job-eval', '3/3 warm', (x) => x.status?.warm === '3/3');

    // No garbage collector runs here: the Warmup stays, says its workload is gone, and waits.
    await kube.kubectl(['delete', 'job/eval', '-n', NS]);
    const held = await warmupWhere('job-eval', 'Derived False', (x) => condition(x, 'Derived')?.status === 'False');
    expect(condition(held, 'Derived')).toMatchObject({ reason: 'WorkloadNotFound', message: 'workloadRef Job/eval does not exist in namespace ml' });
    expect(condition(held, 'Warm')).toMatchObject({ status: 'False', reason: 'WorkloadNotFound' });
    // The other derived Warmup carries on: a new image in the StatefulSet is warmed.
    const db2 = await smallImage('db2');
    await kube.kubectl(['set', 'image', 'statefulset/db', `db=${db2}`, '-n', NS]);
    await landsOn(db2, ['node-b']);
    expect(controller.isLeader()).toBe(true);
  });

  it('warms a LeaderWorkerSet\'s leader and worker images (its CRD installed)', async () => {
    const [leader, worker] = await Promise.all([smallImage('lws-leader'), smallImage('lws-worker')]);
    await apply({
      apiVersion: 'leaderworkerset.x-k8s.io/v1',
      kind: 'LeaderWorkerSet',
      metadata: { name: 'sglang', namespace: NS, annotations: { 'stoker.io/warm': 'true' } },
      spec: {
        replicas: 1,
        leaderWorkerTemplate: {
          size: 2,
          leaderTemplate: { spec: podSpec([{ name: 'leader', image: leader }], { nodeSelector: { zone: 'a' }, tolerations: TOLERATE_ML }) },
          workerTemplate: { spec: podSpec([{ name: 'worker', image: worker }]) },
        },
      },
    });
    // Leader and worker images go to every node either may use: node-a (leader), node-b (workers).
    await landsOn(leader, ['node-a', 'node-b']);
    await landsOn(worker, ['node-a', 'node-b']);
    const w = await warmupWhere('leaderworkerset-sglang', '2/2 warm', (x) => x.status?.warm === '2/2');
    expect(w.status?.source).toBe('LeaderWorkerSet/sglang');
  });

  it('names a bad image reference and a missing pull secret in a condition and in an Event on the workload', async () => {
    const bad = `${registry.host}/wl/bad:v1:v2`;
    await apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'bad', namespace: NS, annotations: { 'stoker.io/warm': 'true' } },
      spec: { selector: { matchLabels: { app: 'bad' } }, template: { metadata: { labels: { app: 'bad' } }, spec: podSpec([{ name: 'app', image: bad }]) } },
    });
    const w = await warmupWhere('deployment-bad', 'Derived False', (x) => condition(x, 'Derived')?.status === 'False');
    const c = condition(w, 'Derived');
    expect(c?.reason).toBe('InvalidImageReference');
    expect(c?.message).toContain(`"${bad}"`);
    await waitFor('a DerivationFailed Event on the Deployment', async () => ((await eventsOn('bad', 'Deployment')).some((e) => e.startsWith('Warning DerivationFailed: Warmup deployment-bad:') && e.includes(`"${bad}"`)) ? true : undefined), 10_000, 100);

    // Fixed, but with a pull secret that does not exist: held again, naming the secret.
    const good = await smallImage('good');
    await kube.kubectl(['patch', 'deployment/bad', '-n', NS, '--type=json', '-p', JSON.stringify([
      { op: 'replace', path: '/spec/template/spec/containers/0/image', value: good },
      { op: 'add', path: '/spec/template/spec/imagePullSecrets', value: [{ name: 'nope' }] },
    ])]);
    const held = await warmupWhere('deployment-bad', 'PullSecretNotFound', (x) => condition(x, 'Derived')?.reason === 'PullSecretNotFound');
    expect(condition(held, 'Derived')?.message).toContain('"ml/nope"');
    expect(await presentOn(good)).toEqual([]);
  });
});
