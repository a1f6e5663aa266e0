// `npm run demo` (after hack/demo.sh has installed and built everything): Stoker's main job in a
// real cluster on this machine.
//
// A real kubelet node on Debian's containerd, with kube-scheduler and kube-controller-manager
// (hack/kube/cluster.sh); Stoker's own images, built here without a Docker engine (hack/images.sh);
// the Helm chart installed with helm. Two images of the same size sit in a registry behind a throttle
// of 100 MB/s (a real network; loopback would be a floor). A Warmup warms the node with one of
// them; then a Deployment of each starts, and the demo prints how long each took to be Ready.
//
// Environment: STOKER_DEMO_IMAGE_MB (default 1024), STOKER_DEMO_MBPS (default 100).
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { pushRandomImage } from '../test/support/images.js';
import { runHack } from '../test/support/proc.js';
import { startThrottledProxy } from '../test/support/proxy.js';
import { startRealCluster, type RealCluster } from '../test/support/real-cluster.js';
import { waitFor, warmupApi } from '../test/support/sim-cluster.js';
import { installStoker, NAMESPACE, pushStokerImages } from '../test/support/stoker-release.js';

const IMAGE_MB = Number(process.env.STOKER_DEMO_IMAGE_MB ?? 1024);
const MBPS = Number(process.env.STOKER_DEMO_MBPS ?? 100);
const MiB = 1024 * 1024;

const say = (s: string): void => console.log(`\n\x1b[1m== ${s}\x1b[0m`);
const since = (t: number): string => `${((performance.now() - t) / 1000).toFixed(1)} s`;

let cluster: RealCluster | undefined;
const cleanup = async (): Promise<void> => {
  await cluster?.stop();
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void cleanup().finally(() => process.exit(130));
  });
}

/** Runs kubectl against the demo cluster with its output on this terminal. */
function kubectl(...args: string[]): void {
  if (!cluster) return;
  console.log(`$ kubectl ${args.join(' ')}`);
  spawnSync(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, ...args], { stdio: 'inherit' });
}

try {
  say('a real cluster: kube-apiserver, kube-scheduler, kube-controller-manager and one kubelet node');
  let t = performance.now();
  cluster = await startRealCluster();
  const node = cluster.nodes[0]!;
  console.log(`ready in ${since(t)}; node ${node.name} at ${node.ip}, registry ${cluster.registry}`);
  kubectl('get', 'nodes', '-o', 'wide');

  say("Stoker's images, built without a Docker engine (the first run builds them; later runs reuse them)");
  t = performance.now();
  const images = await pushStokerImages(cluster.registry);
  console.log(`${images.registry}/stoker-agent:${images.tag} and stoker-controller:${images.tag} pushed in ${since(t)}`);

  say('helm install stoker deploy/helm/stoker: the agent as a DaemonSet pod, the controller as a Deployment');
  t = performance.now();
  const models = join(node.data, 'models');
  await mkdir(models);
  await installStoker(cluster, images, { allowedRoots: [models] });
  console.log(`installed and ready in ${since(t)}`);
  kubectl('get', 'pods', '-n', NAMESPACE, '-o', 'wide');

  say(`two images of ${IMAGE_MB} MB each, in a registry behind a ${MBPS} MB/s throttle`);
  const proxy = await startThrottledProxy(cluster.registry, MBPS * MiB);
  try {
    await runHack('containerd.sh', ['add-registry', node.containerd, proxy.host]);
    const push = async (name: string): Promise<string> =>
      (await pushRandomImage({ host: cluster!.registry }, name, { busybox: true, layers: 8, layerSizeBytes: Math.round((IMAGE_MB * MiB) / 8) })).replace(cluster!.registry, proxy.host);
    const [coldImage, warmImage] = [await push('demo/llm-server-a'), await push('demo/llm-server-b')];
    console.log(`cold: ${coldImage}\nwarm: ${warmImage}`);

    say('kubectl apply: a Warmup of the second image');
    const warmup = `apiVersion: stoker.io/v1alpha1
kind: Warmup
metadata:
  name: llm-server-b
  namespace: ${NAMESPACE}
spec:
  images:
    - image: ${warmImage}
`;
    console.log(warmup);
    spawnSync(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, 'apply', '-f', '-'], { input: warmup, stdio: ['pipe', 'inherit', 'inherit'] });
    t = performance.now();
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    const done = await warmupApi(cluster.kubeConfig).finished(NAMESPACE, 'llm-server-b', 600_000);
    if (done.status?.phase !== 'Succeeded') throw new Error(`the Warmup ended ${done.status?.phase}: ${JSON.stringify(done.status?.conditions)}`);
    console.log(`warmed in ${since(t)} (before any pod needs it)`);
    kubectl('get', 'warmups', '-n', NAMESPACE);

    say('two Deployments, one of each image: kubectl apply to Ready');
    const apps = cluster.kubeConfig.makeApiClient(AppsV1Api);
    const start = async (name: string, image: string): Promise<number> => {
      const t0 = performance.now();
      await apps.createNamespacedDeployment({
        namespace: 'default',
        body: {
          metadata: { name },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: { terminationGracePeriodSeconds: 0, containers: [{ name, image, imagePullPolicy: 'IfNotPresent' }] },
            },
          },
        },
      });
      await waitFor(
        `${name} to be Ready`,
        async () => {
          const d = await apps.readNamespacedDeploymentStatus({ name, namespace: 'default' });
          return (d.status?.readyReplicas ?? 0) >= 1 ? true : undefined;
        },
        600_000,
        20,
      );
      return (performance.now() - t0) / 1000;
    };
    const cold = await start('llm-server-a', coldImage);
    const warm = await start('llm-server-b', warmImage);
    const events = await core.listNamespacedEvent({ namespace: 'default' });
    for (const e of events.items.filter((e) => e.reason === 'Pulled')) console.log(`${e.involvedObject.name}: ${e.message}`);
    kubectl('get', 'pods', '-o', 'wide');
    console.log(`\npod start: cold ${cold.toFixed(1)} s, warm ${warm.toFixed(1)} s (${(cold / warm).toFixed(1)}x faster)`);
  } finally {
    await proxy.stop();
  }
} finally {
  say('tearing down: nodes, pods, networks, registry, API server');
  await cleanup();
}
