// One digest on every node, end to end: a real kube-apiserver, three simulated nodes (each a Node
// object, its own containerd and a real in-process agent), a real registry behind a throttled
// proxy and the real controller. The tag moves while the first node is still pulling it; every
// node must end with the bytes the tag named when the first node resolved it, under the tag too,
// as each node's runtime (CRI ImageStatus repo digests) and the Warmup's status.images show.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRuntime } from '../agent/cri/runtime.js';
import { parseEndpoint } from '../agent/cri/endpoint.js';
import type { RunningController } from '../controller/main.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { pushRandomImageDetailed } from './support/images.js';
import { startKube, type Kube } from './support/kube.js';
import { startThrottledProxy, type ThrottledProxy } from './support/proxy.js';
import { addRegistryHost, startRegistry, type Registry } from './support/registry.js';
import { ensureNamespace, type SimNode, startSimNode, startTestController, waitFor, warmupApi } from './support/sim-cluster.js';

const NS = 'default';
const STOKER_NS = 'stoker-system';
const NODES = ['node-a', 'node-b', 'node-c'];

let dir: string;
let kube: Kube;
let certs: Certificates;
let registry: Registry;
let proxy: ThrottledProxy;
let controller: RunningController;
const containerds = new Map<string, Containerd>();
const nodes = new Map<string, SimNode>();
let api: ReturnType<typeof warmupApi>;

/** The repo digests each node's runtime holds for `repo` (what `crictl images --digests` shows). */
async function digestsOn(repo: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const [name, c] of [...containerds.entries()].sort()) {
    const runtime = await connectRuntime(parseEndpoint(c.endpoint));
    try {
      const digests = (await runtime.listImages()).flatMap((i) => i.repoDigests).filter((d) => d.startsWith(`${repo}@`));
      out[name] = [...new Set(digests.map((d) => d.slice(repo.length + 1)))].sort();
    } finally {
      runtime.close();
    }
  }
  return out;
}

/** The repo digest of the image each node's runtime finds under `image` (what kubelet asks for a pod); '' when none. */
async function underName(image: string, repo: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, c] of [...containerds.entries()].sort()) {
    const runtime = await connectRuntime(parseEndpoint(c.endpoint));
    try {
      const found = await runtime.imageStatus(image);
      out[name] = found?.repoDigests.find((d) => d.startsWith(`${repo}@`))?.slice(repo.length + 1) ?? '';
    } finally {
      runtime.close();
    }
  }
  return out;
}

/** The manifest digest the registry serves for `repo:tag` now. */
async function tagDigest(repo: string, tag: string): Promise<string | null> {
  const res = await fetch(`http://${registry.host}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json' },
  });
  return res.headers.get('docker-content-digest');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-one-digest-test-'));
  [kube, certs, registry] = await Promise.all([startKube(), makeCertificates(join(dir, 'pki')), startRegistry()]);
  proxy = await startThrottledProxy(registry, Infinity);
  await ensureNamespace(kube.kubeConfig, STOKER_NS);
  api = warmupApi(kube.kubeConfig);
  for (const name of NODES) {
    const containerd = await startContainerd();
    containerds.set(name, containerd);
    await addRegistryHost(containerd, proxy);
    nodes.set(name, await startSimNode({ kc: kube.kubeConfig, certs, name, containerd, namespace: STOKER_NS }));
  }
  controller = await startTestController(kube, certs, STOKER_NS);
});

afterAll(async () => {
  await controller?.stop();
  await Promise.allSettled([...nodes.values()].map((n) => n.stop()));
  await Promise.allSettled([...containerds.values()].map((c) => c.stop()));
  await proxy?.stop();
  await registry?.stop();
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('one digest on every node', () => {
  it('a tag that moves while the first node pulls it still gives every node the first digest', async () => {
    const a = await pushRandomImageDetailed(registry, 'dg/app', { layers: 1, layerSizeBytes: 2 * 1024 * 1024, tag: 'v1' });
    const repo = `${proxy.host}/dg/app`;
    const image = `${repo}:v1`;
    // The first node's pull takes about 8 s at this rate: time to move the tag under it.
    proxy.setRate(256 * 1024);
    // parallelism 2: without resolving the tag first, a second node would pull the tag at once
    // (getting A) and the third, after one of them, would get B.
    await api.create(NS, 'digest', { images: [{ image, pullPolicy: 'Always' }], nodes: { names: NODES }, policy: { parallelism: 2 } });

    // A node is writing the image's blobs: it has resolved the tag to A.
    const pulling = await waitFor('a node to be pulling the image', async () => {
      const busy: string[] = [];
      for (const [name, c] of containerds) if ((await c.ingests()).length > 0) busy.push(name);
      return busy.length > 0 ? busy : undefined;
    }, 60_000, 50);
    expect(pulling).toHaveLength(1);

    // The tag moves to another image mid-Warmup.
    const b = await pushRandomImageDetailed(registry, 'dg/app', { layers: 1, layerSizeBytes: 64 * 1024, tag: 'v1' });
    expect(b.digest).not.toBe(a.digest);
    expect(await tagDigest('dg/app', 'v1')).toBe(b.digest);
    // Still only one node on the image: the others wait for its digest.
    const w1 = await api.get(NS, 'digest');
    expect(w1?.status?.activeNodes ?? 0).toBeLessThanOrEqual(1);
    proxy.setRate(Infinity);

    const done = await api.finished(NS, 'digest');
    expect(done.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 3, desiredNodes: 3 });
    expect(await digestsOn(repo)).toEqual({ 'node-a': [a.digest], 'node-b': [a.digest], 'node-c': [a.digest] });
    // A pod naming the tag finds those bytes on every node, not only on the one that resolved it.
    expect(await underName(image, repo)).toEqual({ 'node-a': a.digest, 'node-b': a.digest, 'node-c': a.digest });
    expect(done.status?.images).toEqual([{ image, digest: a.digest }]);
  });
});
