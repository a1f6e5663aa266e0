// What users pay for: the time from creating a pod to its Ready condition, in a real cluster
// (test/support/real-cluster.ts), and the ways to make a node cold again between runs.
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { nodeCtr, type RealNode } from './real-cluster.js';
import { waitFor } from './sim-cluster.js';

/**
 * Creates `pod`, and resolves with the seconds until the API server shows it Ready (polled every
 * 20 ms). The pod is then deleted, and its containers have stopped before this resolves.
 */
export async function podStartSeconds(kc: KubeConfig, pod: V1Pod, opts: { timeoutMs?: number; beforeDelete?: () => Promise<void> } = {}): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = pod.metadata?.namespace ?? 'default';
  const name = pod.metadata?.name;
  if (!name) throw new Error('the pod needs a name');
  const start = performance.now();
  await core.createNamespacedPod({ namespace, body: pod });
  try {
    await waitFor(
      `pod ${namespace}/${name} to be Ready`,
      async () => {
        const p = await core.readNamespacedPodStatus({ name, namespace });
        if (p.status?.phase === 'Failed') throw new Error(`pod ${name} failed: ${JSON.stringify(p.status.containerStatuses)}`);
        return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
      },
      timeoutMs,
      20,
    );
    const seconds = (performance.now() - start) / 1000;
    await opts.beforeDelete?.();
    return seconds;
  } finally {
    // Not a forced delete: the pod object goes only once the kubelet has stopped its containers.
    await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 1 }).catch(() => undefined);
    await waitFor(`pod ${name} to be gone`, async () => {
      try {
        await core.readNamespacedPod({ name, namespace });
        return undefined;
      } catch (err) {
        if ((err as { code?: unknown }).code === 404) return true;
        throw err;
      }
    }, 120_000, 100);
  }
}

/** Removes `ref` from the node's runtime, with its blobs and unpacked layers (a cold node for it). */
export async function removeImage(node: RealNode, ref: string): Promise<void> {
  // The CRI records an image under its tag, its repo digest and its id, all with the same target
  // (the manifest digest): drop every name of that target.
  const rows = (await nodeCtr(node, ['images', 'ls']))
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/))
    .filter((cols) => cols.length > 2);
  const target = rows.find((cols) => cols[0] === ref)?.[2];
  if (!target) return;
  const names = rows.filter((cols) => cols[2] === target).map((cols) => cols[0]!);
  // Exited containers of deleted pods (the kubelet collects them only later) keep the image's
  // unpacked layers, and a new pull would reuse them without a download: remove them first.
  const containersOf = async (): Promise<string[]> =>
    (await nodeCtr(node, ['containers', 'ls']))
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s+/))
      .filter((cols) => cols[1] !== undefined && names.includes(cols[1]))
      .map((cols) => cols[0]!);
  // A container still stopping cannot be removed yet: list them again until none is left.
  await waitFor(`the containers of ${ref} to be removed`, async () => {
    const containers = await containersOf();
    if (containers.length === 0) return true;
    await nodeCtr(node, ['containers', 'rm', ...containers]).catch(() => undefined);
    return undefined;
  }, 60_000, 500);
  await nodeCtr(node, ['images', 'rm', '--sync', ...names]);
  const left = (await nodeCtr(node, ['content', 'ls', '-q'])).split('\n');
  if (left.includes(target)) throw new Error(`${ref}: its manifest ${target} is still in the node's content store after the image was removed`);
}

/** A pod on `node` running `image`'s shell: `script` first (as an init container, when given), then sleep. */
export function shellPod(name: string, image: string, node: RealNode, opts: { script?: string; volumes?: { hostPath: string; mountPath: string }[] } = {}): V1Pod {
  const mounts = (opts.volumes ?? []).map((v, i) => ({ name: `v${i}`, mountPath: v.mountPath, readOnly: true }));
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', labels: { 'stoker.io/bench': 'pods' } },
    spec: {
      nodeName: node.name,
      terminationGracePeriodSeconds: 0,
      restartPolicy: 'Never',
      ...(opts.script
        ? { initContainers: [{ name: 'load', image, imagePullPolicy: 'IfNotPresent', command: ['/bin/sh', '-c', opts.script], volumeMounts: mounts }] }
        : {}),
      containers: [{ name: 'main', image, imagePullPolicy: 'IfNotPresent', command: ['/bin/busybox', 'sleep', '3600'], volumeMounts: mounts }],
      volumes: (opts.volumes ?? []).map((v, i) => ({ name: `v${i}`, hostPath: { path: v.hostPath, type: 'Directory' } })),
    },
  };
}
