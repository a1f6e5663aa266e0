// The test API server itself: a real kube-apiserver + etcd from hack/kube, the Warmup CRD's schema
// enforced at admission, its defaults, status subresource and printer columns, and RBAC enforced.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { createNode, deleteNode, startKube, type Kube } from './support/kube.js';
import { runHack } from './support/proc.js';

const group = 'stoker.io';
const version = 'v1alpha1';
const plural = 'warmups';
const namespace = 'default';

let kube: Kube;
let objects: CustomObjectsApi;

beforeAll(async () => {
  kube = await startKube();
  objects = kube.kubeConfig.makeApiClient(CustomObjectsApi);
});

afterAll(async () => {
  await kube?.stop();
});

function warmup(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: `${group}/${version}`, kind: 'Warmup', metadata: { name, namespace }, spec };
}

/** Creates a Warmup and returns the API server's error message (the test expects a rejection). */
async function rejection(name: string, spec: Record<string, unknown>): Promise<string> {
  try {
    await objects.createNamespacedCustomObject({ group, version, namespace, plural, body: warmup(name, spec) });
  } catch (err) {
    expect((err as { code?: number }).code).toBe(422);
    return String((err as { body?: unknown }).body);
  }
  throw new Error(`Warmup ${name} was accepted; expected the schema to reject it`);
}

describe('kube-apiserver for tests', () => {
  it('serves Nodes to client-node', async () => {
    const core = kube.kubeConfig.makeApiClient(CoreV1Api);
    await createNode(kube.kubeConfig, 'node-a', { 'stoker.io/pool': 'gpu' });
    await createNode(kube.kubeConfig, 'node-b');
    const gpu = await core.listNode({ labelSelector: 'stoker.io/pool=gpu' });
    expect(gpu.items.map((n) => n.metadata?.name)).toEqual(['node-a']);

    await deleteNode(kube.kubeConfig, 'node-b');
    await deleteNode(kube.kubeConfig, 'node-b'); // already gone: no error
    const all = await core.listNode();
    expect(all.items.map((n) => n.metadata?.name)).toEqual(['node-a']);
  });

  it('stores a Warmup, applies schema defaults and reads it back', async () => {
    await objects.createNamespacedCustomObject({
      group,
      version,
      namespace,
      plural,
      body: warmup('models', {
        images: [{ image: '127.0.0.1:5000/app/model:v1' }],
        paths: [{ path: '/models/llama', include: ['*.safetensors'] }],
        nodes: { selector: { matchLabels: { 'stoker.io/pool': 'gpu' } } },
      }),
    });
    const got = (await objects.getNamespacedCustomObject({ group, version, namespace, plural, name: 'models' })) as {
      spec: { images: { image: string; pullPolicy: string }[]; policy: Record<string, number>; suspend: boolean };
    };
    expect(got.spec.images).toEqual([{ image: '127.0.0.1:5000/app/model:v1', pullPolicy: 'IfNotPresent' }]);
    expect(got.spec.policy).toEqual({ parallelism: 10, backoffLimit: 3, timeoutSeconds: 3600, recheckSeconds: 300, minResidentPercent: 90 });
    expect(got.spec.suspend).toBe(false);
  });

  it('writes status only through the status subresource, shown in printer columns', async () => {
    const current = (await objects.getNamespacedCustomObject({ group, version, namespace, plural, name: 'models' })) as Record<
      string,
      unknown
    >;
    const status = {
      phase: 'Running',
      desiredNodes: 3,
      activeNodes: 1,
      succeededNodes: 1,
      failedNodes: 1,
      failedNodeList: [{ name: 'node-c', reason: 'ImagePullFailed', message: 'image "x" not found' }],
      activeNodeList: [{ name: 'node-a', attempt: 1, bytesDone: 10, bytesTotal: 100 }],
      record: { succeeded: 'AAAAAAAA', failed: 'bbbbbbbb' },
      observedGeneration: 1,
      warm: '1/3',
      source: 'Deployment/vllm',
    };
    await objects.replaceNamespacedCustomObjectStatus({ group, version, namespace, plural, name: 'models', body: { ...current, status } });
    const table = await kube.kubectl(['get', 'warmups', 'models', '-n', namespace]);
    expect(table).toMatch(/^NAME\s+PHASE\s+SUCCEEDED\s+FAILED\s+DESIRED\s+WARM\s+SOURCE\s+AGE$/m);
    expect(table).toMatch(/^models\s+Running\s+1\s+1\s+3\s+1\/3\s+Deployment\/vllm\s+\S+$/m);
    // The short name works too.
    expect(await kube.kubectl(['get', 'wu', '-n', namespace, '-o', 'name'])).toBe('warmup.stoker.io/models\n');

    // A bad status is rejected too (a record token is 8 characters).
    const updated = (await objects.getNamespacedCustomObject({ group, version, namespace, plural, name: 'models' })) as Record<string, unknown>;
    await expect(
      objects.replaceNamespacedCustomObjectStatus({
        group,
        version,
        namespace,
        plural,
        name: 'models',
        body: { ...updated, status: { ...status, record: { succeeded: 'short' } } },
      }),
    ).rejects.toMatchObject({ code: 422 });
  });

  it('rejects bad Warmups at admission, naming the field', async () => {
    expect(await rejection('neg', { images: [{ image: 'busybox' }], policy: { parallelism: -1 } })).toContain(
      'spec.policy.parallelism',
    );
    expect(await rejection('empty', {})).toContain('list at least one image or path');
    expect(await rejection('rel', { paths: [{ path: 'models/llama' }] })).toContain('spec.paths[0].path');
    expect(await rejection('dup', { images: [{ image: 'busybox' }, { image: 'busybox' }] })).toContain('Duplicate value');
    expect(await rejection('policy', { images: [{ image: 'busybox', pullPolicy: 'Never' }] })).toContain('pullPolicy');
    expect(await rejection('both', { images: [{ image: 'a' }], nodes: { names: ['n'], selector: { matchLabels: { a: 'b' } } } })).toContain(
      'names or selector, not both',
    );
    expect(
      await rejection('expr', { images: [{ image: 'a' }], nodes: { selector: { matchExpressions: [{ key: 'k', operator: 'In' }] } } }),
    ).toContain('In and NotIn need values');
    expect(await rejection('many', { images: Array.from({ length: 65 }, (_, i) => ({ image: `img${i}` })) })).toContain(
      'must have at most 64 items',
    );
  });

  it('enforces RBAC for identities other than the admin', async () => {
    // A ServiceAccount token from the TokenRequest API, with no role bound: reading Warmups is forbidden.
    const core = kube.kubeConfig.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'nobody' } } });
    const tr = await core.createNamespacedServiceAccountToken({ namespace, name: 'nobody', body: { spec: { audiences: [] } } });
    const token = tr.status?.token;
    expect(token).toBeTruthy();

    const cluster = kube.kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [cluster],
      users: [{ name: 'nobody', token: token ?? '' }],
      contexts: [{ name: 'nobody', cluster: cluster.name, user: 'nobody' }],
      currentContext: 'nobody',
    });
    await expect(
      kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ group, version, namespace, plural }),
    ).rejects.toMatchObject({ code: 403 });
  });

  it('stops and starts the API server, and the etcd under it, again on the same port and data', async () => {
    await createNode(kube.kubeConfig, 'infra-restart');
    const core = kube.kubeConfig.makeApiClient(CoreV1Api);
    try {
      await kube.stopServer('kube-apiserver');
      await expect(core.readNode({ name: 'infra-restart' })).rejects.toThrow(/ECONNREFUSED/);
      await kube.startServer('kube-apiserver');
      expect((await core.readNode({ name: 'infra-restart' })).metadata?.name).toBe('infra-restart');

      // Without etcd the API server still accepts connections, but cannot answer a consistent read.
      await kube.stopServer('etcd');
      await expect(kube.kubectl(['get', 'node', 'infra-restart', '--request-timeout=3s'])).rejects.toThrow();
      await kube.startServer('etcd');
      const deadline = Date.now() + 60_000;
      let name: string | undefined;
      while (!name && Date.now() < deadline) {
        name = await kube.kubectl(['get', 'node', 'infra-restart', '-o', 'name', '--request-timeout=3s']).catch(() => undefined);
        if (!name) await new Promise((r) => setTimeout(r, 500));
      }
      expect(name?.trim()).toBe('node/infra-restart');
    } finally {
      await deleteNode(kube.kubeConfig, 'infra-restart');
    }
  });

  it('stops etcd and kube-apiserver by itself when the owner process dies', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stoker-kube-owner-'));
    const owner = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      await runHack('kube/up.sh', [dir, '--owner-pid', String(owner.pid)], { env: { STOKER_KUBE_BIN: kube.binDir } });
      const pids = await Promise.all(['kube-apiserver', 'etcd'].map(async (n) => Number(await readFile(join(dir, `${n}.pid`), 'utf8'))));
      expect(pids.every(alive)).toBe(true);

      owner.kill('SIGKILL');
      await once(owner, 'exit');
      const deadline = Date.now() + 60_000;
      while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(pids.filter(alive)).toEqual([]);
    } finally {
      owner.kill('SIGKILL');
      await runHack('kube/down.sh', [dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** Whether a process runs (a zombie, exited but not yet reaped, does not count). */
function alive(pid: number): boolean {
  try {
    // Field 3 of /proc/PID/stat is the state; the command name before it is in parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
