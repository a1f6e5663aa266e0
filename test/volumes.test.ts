// Warmups that name PersistentVolumeClaims, end to end: a real kube-apiserver, two simulated nodes
// (Node objects, real containerd, real in-process agents) and the real controller. There is no
// kube-controller-manager or kubelet, so each test binds its claims as the PV controller would
// (PV with claimRef, PVC with volumeName, both statuses Bound through the status subresource) and
// writes a running Pod as the kubelet would report it. Assertions are on what a user sees: the
// Warmup's status, conditions and status.volumes, the bytes each node's agent read, and the
// files' page-cache residency (fincore).
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api, type V1PersistentVolumeSpec } from '@kubernetes/client-node';
import type { RunningController } from '../controller/main.js';
import type { Warmup } from '../controller/api/types.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { evictFromPageCache, residentBytes } from './support/page-cache.js';
import { startKube, type Kube } from './support/kube.js';
import { ensureNamespace, rootFor, type SimNode, startSimNode, startTestController, waitFor, warmupApi } from './support/sim-cluster.js';

const NS = 'ml';
const STOKER_NS = 'stoker-system';
const FILE_BYTES = 2 * 1024 * 1024;

let dir: string;
/** Where the volumes' files live: an allowed root of every agent. */
let volumesDir: string;
/** The kubelet pods directory the controller is told of, and an allowed root of every agent. */
let podsDir: string;
let kube: Kube;
let certs: Certificates;
let core: CoreV1Api;
let controller: RunningController;
const containerds: Containerd[] = [];
const nodes = new Map<string, SimNode>();
let api: ReturnType<typeof warmupApi>;

/** A file of random bytes, dropped from the page cache. */
async function coldFile(path: string): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true });
  const fh = await open(path, 'w');
  await fh.writeFile(randomBytes(FILE_BYTES));
  await fh.sync(); // dirty pages are never dropped
  await fh.close();
  evictFromPageCache(path);
  expect(residentBytes(path)).toBe(0);
  return path;
}

/** A PV and a PVC bound to each other, as the PV controller would leave them. */
async function boundClaim(claim: string, volume: string, source: Partial<V1PersistentVolumeSpec>): Promise<void> {
  await core.createPersistentVolume({
    body: {
      metadata: { name: volume },
      spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], claimRef: { namespace: NS, name: claim }, ...source },
    },
  });
  await createClaim(claim, volume);
  await setBound(claim, volume);
}

async function createClaim(claim: string, volume?: string): Promise<void> {
  await core.createNamespacedPersistentVolumeClaim({
    namespace: NS,
    body: { metadata: { name: claim }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, storageClassName: '', ...(volume ? { volumeName: volume } : {}) } },
  });
}

async function setBound(claim: string, volume: string): Promise<void> {
  const pv = await core.readPersistentVolume({ name: volume });
  await core.replacePersistentVolumeStatus({ name: volume, body: { ...pv, status: { phase: 'Bound' } } });
  const pvc = await core.readNamespacedPersistentVolumeClaim({ namespace: NS, name: claim });
  await core.replaceNamespacedPersistentVolumeClaimStatus({ namespace: NS, name: claim, body: { ...pvc, status: { phase: 'Bound', capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'] } } });
}

/** A pod on `node` mounting `claim`, reported Running; returns its uid. */
async function runningPod(name: string, node: string, claim: string): Promise<string> {
  const pod = await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name },
      spec: {
        nodeName: node,
        automountServiceAccountToken: false,
        containers: [{ name: 'server', image: 'registry.example/vllm:1', volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }],
      },
    },
  });
  await core.replaceNamespacedPodStatus({ namespace: NS, name, body: { ...pod, status: { phase: 'Running' } } });
  return pod.metadata?.uid ?? '';
}

/** Bytes each node's agent has read from files so far. */
async function bytesRead(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, n] of nodes) out[name] = await n.metric('stoker_file_bytes_read_total');
  return out;
}

function condition(w: Warmup | undefined, type: string) {
  return w?.status?.conditions?.find((c) => c.type === type);
}

function finished(name: string): Promise<Warmup> {
  return api.finished(NS, name, 60_000);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-volumes-test-'));
  volumesDir = join(dir, 'volumes');
  podsDir = join(dir, 'kubelet-pods');
  [kube, certs] = await Promise.all([startKube(), makeCertificates(join(dir, 'pki'))]);
  core = kube.kubeConfig.makeApiClient(CoreV1Api);
  await ensureNamespace(kube.kubeConfig, STOKER_NS);
  await ensureNamespace(kube.kubeConfig, NS);
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'default' } } }).catch(() => undefined);
  api = warmupApi(kube.kubeConfig);
  for (const name of ['node-a', 'node-b']) {
    const containerd = await startContainerd();
    containerds.push(containerd);
    nodes.set(name, await startSimNode({ kc: kube.kubeConfig, certs, name, containerd, namespace: STOKER_NS, allowedRoot: rootFor(dir, name), moreRoots: [volumesDir, podsDir] }));
  }
  controller = await startTestController(kube, certs, STOKER_NS, { kubeletPodsDir: podsDir });
});

afterAll(async () => {
  await controller?.stop();
  await Promise.allSettled([...nodes.values()].map((n) => n.stop()));
  await Promise.allSettled(containerds.map((c) => c.stop()));
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Warmups naming PersistentVolumeClaims', () => {
  it('warms a hostPath volume (its subPath) on every node', async () => {
    const file = await coldFile(join(volumesDir, 'host', 'models', 'model.bin'));
    await boundClaim('host-models', 'pv-host', { hostPath: { path: join(volumesDir, 'host') } });
    const before = await bytesRead();
    await api.create(NS, 'host', { paths: [{ persistentVolumeClaim: { claimName: 'host-models', subPath: 'models' } }] });

    const w = await finished('host');
    expect(w.status).toMatchObject({ phase: 'Succeeded', desiredNodes: 2, succeededNodes: 2, failedNodes: 0 });
    expect(w.status?.volumes).toEqual([{ claimName: 'host-models', volumeName: 'pv-host', type: 'hostPath', nodes: 2 }]);
    expect(condition(w, 'ClaimsBound')).toMatchObject({ status: 'True', reason: 'ClaimsBound' });
    expect(residentBytes(file)).toBe(FILE_BYTES);
    const after = await bytesRead();
    // Both agents read the file (the second may find it resident, and still reads it).
    for (const node of ['node-a', 'node-b']) expect((after[node] ?? 0) - (before[node] ?? 0), node).toBe(FILE_BYTES);
  });

  it("warms a local volume only on the node its nodeAffinity allows; the other node is warmed for the rest, not failed", async () => {
    const file = await coldFile(join(volumesDir, 'local', 'weights.bin'));
    await boundClaim('local-weights', 'pv-local', {
      local: { path: join(volumesDir, 'local') },
      nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-a'] }] }] } },
    });
    const before = await bytesRead();
    await api.create(NS, 'local', { paths: [{ persistentVolumeClaim: { claimName: 'local-weights' } }] });

    const w = await finished('local');
    expect(w.status?.failedNodeList ?? []).toEqual([]);
    expect(w.status).toMatchObject({ phase: 'Succeeded', desiredNodes: 2, succeededNodes: 2, failedNodes: 0 });
    expect(w.status?.volumes).toEqual([
      { claimName: 'local-weights', volumeName: 'pv-local', type: 'local', nodes: 1, notReadNodes: 1, reason: 'VolumeNotOnNode', notReadNodeList: ['node-b'] },
    ]);
    expect(condition(w, 'Complete')?.message).toBe('2 of 2 node(s) warmed; claim local-weights not read on 1 node(s) (VolumeNotOnNode)');
    expect(residentBytes(file)).toBe(FILE_BYTES);
    const after = await bytesRead();
    expect((after['node-a'] ?? 0) - (before['node-a'] ?? 0)).toBe(FILE_BYTES);
    expect((after['node-b'] ?? 0) - (before['node-b'] ?? 0)).toBe(0);
  });

  it("reads an NFS volume through the kubelet's mount on the node where a running pod mounts the claim; the other node reports VolumeNotMounted and stays warm", async () => {
    await boundClaim('shared-data', 'pv-nfs', { nfs: { server: 'nfs.example', path: '/exports/data' } });
    const uid = await runningPod('server-0', 'node-a', 'shared-data');
    const file = await coldFile(join(podsDir, uid, 'volumes', 'kubernetes.io~nfs', 'pv-nfs', 'datasets', 'train.bin'));
    const before = await bytesRead();
    await api.create(NS, 'nfs', { paths: [{ persistentVolumeClaim: { claimName: 'shared-data', subPath: 'datasets' } }], keepWarm: true, policy: { recheckSeconds: 5 } });

    const w = await waitFor('Warmup nfs to be Warm', async () => {
      const cur = await api.get(NS, 'nfs');
      return condition(cur, 'Warm')?.status === 'True' ? cur : undefined;
    }, 60_000, 100);
    expect(condition(w, 'Warm')?.message).toBe('2 of 2 node(s) warm; claim shared-data not read on 1 node(s) (VolumeNotMounted)');
    expect(w.status).toMatchObject({ desiredNodes: 2, succeededNodes: 2, failedNodes: 0 });
    expect(w.status?.failedNodeList ?? []).toEqual([]);
    expect(w.status?.volumes).toEqual([
      { claimName: 'shared-data', volumeName: 'pv-nfs', type: 'nfs', nodes: 1, notReadNodes: 1, reason: 'VolumeNotMounted', notReadNodeList: ['node-b'] },
    ]);
    expect(residentBytes(file)).toBe(FILE_BYTES);
    const after = await bytesRead();
    expect((after['node-a'] ?? 0) - (before['node-a'] ?? 0)).toBe(FILE_BYTES);
    expect((after['node-b'] ?? 0) - (before['node-b'] ?? 0)).toBe(0);

    // A pod mounting the claim starts on node-b: node-b reads the volume through its own mount.
    const uidB = await runningPod('server-1', 'node-b', 'shared-data');
    const fileB = await coldFile(join(podsDir, uidB, 'volumes', 'kubernetes.io~nfs', 'pv-nfs', 'datasets', 'train.bin'));
    await waitFor('node-b to read the volume', async () => {
      const cur = await api.get(NS, 'nfs');
      const v = cur?.status?.volumes?.[0];
      return v?.nodes === 2 && residentBytes(fileB) === FILE_BYTES && condition(cur, 'Warm')?.message === '2 of 2 node(s) warm' ? true : undefined;
    }, 60_000, 200);
    await api.delete(NS, 'nfs');
  });

  it('waits with a condition naming a claim that does not exist, then one that is not bound, and warms once it is bound', async () => {
    const file = await coldFile(join(volumesDir, 'late', 'late.bin'));
    await api.create(NS, 'late', { paths: [{ persistentVolumeClaim: { claimName: 'late-claim' } }] });
    const missing = await waitFor('condition ClaimNotFound', async () => {
      const w = await api.get(NS, 'late');
      return condition(w, 'ClaimsBound')?.reason === 'ClaimNotFound' ? w : undefined;
    }, 30_000, 100);
    expect(condition(missing, 'ClaimsBound')).toMatchObject({ status: 'False', message: 'persistentVolumeClaim "late-claim" does not exist in namespace "ml"; warming waits for it' });
    expect(missing.status?.phase).toBe('Pending');

    await core.createPersistentVolume({ body: { metadata: { name: 'pv-late' }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteOnce'], hostPath: { path: join(volumesDir, 'late') }, claimRef: { namespace: NS, name: 'late-claim' } } } });
    await createClaim('late-claim', 'pv-late');
    const unbound = await waitFor('condition ClaimNotBound', async () => {
      const w = await api.get(NS, 'late');
      return condition(w, 'ClaimsBound')?.reason === 'ClaimNotBound' ? w : undefined;
    }, 30_000, 100);
    expect(condition(unbound, 'ClaimsBound')).toMatchObject({ status: 'False', message: 'persistentVolumeClaim "late-claim" is Pending, not Bound to a volume; warming waits for it' });
    expect(unbound.status?.phase).toBe('Pending');

    await setBound('late-claim', 'pv-late');
    const w = await finished('late');
    expect(w.status?.phase).toBe('Succeeded');
    expect(condition(w, 'ClaimsBound')).toMatchObject({ status: 'True', reason: 'ClaimsBound' });
    expect(residentBytes(file)).toBe(FILE_BYTES);
  });
});
