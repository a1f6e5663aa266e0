// Stoker in a real cluster: a real kubelet node on Debian's containerd, kube-scheduler and
// kube-controller-manager (hack/kube/cluster.sh); Stoker's own images, built here without a Docker
// engine; the chart installed with helm. The agent runs as a DaemonSet pod and the controller as a
// Deployment, through the chart's own RBAC and certificates, and the pods that follow a Warmup start
// with their image already on the node.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushRandomImage } from './support/images.js';
import { evictFromPageCache, residentBytes } from './support/page-cache.js';
import { dashboardExpressions, startPrometheus } from './support/prometheus.js';
import { REPO_ROOT, runHack } from './support/proc.js';
import { startThrottledProxy } from './support/proxy.js';
import { nodeCtr, startRealCluster, type RealCluster } from './support/real-cluster.js';
import { waitFor, warmupApi } from './support/sim-cluster.js';
import { installStoker, NAMESPACE, pushStokerImages, RELEASE, type StokerImages } from './support/stoker-release.js';

const MiB = 1024 * 1024;

describe('Stoker installed with helm in a real cluster', () => {
  let cluster: RealCluster;
  let images: StokerImages;
  let models: string;
  let core: CoreV1Api;

  const agentPods = async (): Promise<V1Pod[]> =>
    (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: 'app.kubernetes.io/component=agent' })).items;
  const readyPod = (p: V1Pod): boolean =>
    !p.metadata?.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  /** The one Ready agent pod, once there is exactly one. */
  const readyAgent = (): Promise<V1Pod> =>
    waitFor('a Ready agent pod', async () => {
      const ready = (await agentPods()).filter(readyPod);
      return ready.length === 1 ? ready[0] : undefined;
    }, 180_000);
  const imagePresent = async (ref: string): Promise<boolean> => (await nodeCtr(cluster.nodes[0]!, ['images', 'ls', '-q'])).split('\n').includes(ref);

  beforeAll(async () => {
    cluster = await startRealCluster();
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    models = join(cluster.nodes[0]!.data, 'models');
    await mkdir(models);
    images = await pushStokerImages(cluster.registry);
    await installStoker(cluster, images, { allowedRoots: [models] });
  }, 1_800_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('runs the agent as a DaemonSet pod on the node and the controller as the leader of its Deployment', async () => {
    const agent = await readyAgent();
    expect(agent.spec?.nodeName).toBe(cluster.nodes[0]!.name);
    expect(agent.metadata?.ownerReferences?.[0]?.kind).toBe('DaemonSet');
    // The agent got its address from the node's pod network, not the host's.
    expect(agent.status?.podIP).toMatch(/^10\.214\.\d+\.\d+$/);
    expect(agent.status?.podIP).not.toBe(cluster.nodes[0]!.ip);

    const controller = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: 'app.kubernetes.io/component=controller' })).items.filter(readyPod);
    expect(controller).toHaveLength(1);
    const leases = cluster.kubeConfig.makeApiClient(CoordinationV1Api);
    const holder = await waitFor('the controller to hold its Lease', async () => {
      const list = await leases.listNamespacedLease({ namespace: NAMESPACE });
      return list.items.map((l) => l.spec?.holderIdentity).find((h) => h?.startsWith(controller[0]!.metadata!.name!));
    });
    expect(holder).toContain(controller[0]!.metadata!.name!);
  });

  it('warms the node through the chart; a Deployment of the image then starts with it already present', async () => {
    const image = await pushRandomImage({ host: cluster.registry }, 'e2e/app', { busybox: true, layerSizeBytes: 16 * MiB });
    const file = join(models, 'weights.bin');
    await writeFile(file, Buffer.alloc(8 * MiB, 7));
    evictFromPageCache(file);
    expect(await imagePresent(image)).toBe(false);

    const warmups = warmupApi(cluster.kubeConfig);
    await warmups.create(NAMESPACE, 'app', { images: [{ image }], paths: [{ path: file }] });
    const done = await warmups.finished(NAMESPACE, 'app', 180_000);
    expect(done.status?.phase, JSON.stringify(done.status)).toBe('Succeeded');
    expect(await imagePresent(image)).toBe(true);
    expect(residentBytes(file)).toBe(8 * MiB);

    await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'app', namespace: 'default' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'app' } },
          template: {
            metadata: { labels: { app: 'app' } },
            spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image, imagePullPolicy: 'IfNotPresent' }] },
          },
        },
      }),
    });
    await cluster.kubectl(['rollout', 'status', 'deployment/app', '--namespace', 'default', '--timeout', '120s']);
    const pod = (await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=app' })).items[0]!;
    const events = await waitFor('the kubelet\'s Pulled event', async () => {
      const list = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${pod.metadata!.name!}` });
      return list.items.some((e) => e.reason === 'Pulled') ? list.items : undefined;
    });
    const pulled = events.find((e) => e.reason === 'Pulled')!;
    expect(pulled.message).toContain('already present on machine');
    expect(events.some((e) => e.reason === 'Pulling')).toBe(false);
    await cluster.kubectl(['delete', 'deployment/app', '--namespace', 'default', '--wait=false']);
  });

  it('finishes a Warmup whose agent pod was deleted mid-pull: the DaemonSet brings a new one', async () => {
    // The node pulls this image through a throttle, so the pull is still running when the pod goes.
    const proxy = await startThrottledProxy(cluster.registry, 6 * MiB);
    try {
      await runHack('containerd.sh', ['add-registry', cluster.nodes[0]!.containerd, proxy.host]);
      const image = (await pushRandomImage({ host: cluster.registry }, 'e2e/slow', { layers: 2, layerSizeBytes: 24 * MiB })).replace(cluster.registry, proxy.host);
      const before = await readyAgent();
      const warmups = warmupApi(cluster.kubeConfig);
      await warmups.create(NAMESPACE, 'slow', { images: [{ image }] });
      await waitFor('the pull to be under way', () => Promise.resolve(proxy.bytesForwarded() > 4 * MiB ? true : undefined), 120_000, 100);
      await core.deleteNamespacedPod({ name: before.metadata!.name!, namespace: NAMESPACE });

      const after = await readyAgent();
      expect(after.metadata!.uid).not.toBe(before.metadata!.uid);
      const done = await warmups.finished(NAMESPACE, 'slow', 300_000);
      expect(done.status?.phase, JSON.stringify(done.status)).toBe('Succeeded');
      expect(await imagePresent(image)).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it('keeps working when containerd restarts under the running agent pod', async () => {
    const before = await readyAgent();
    const node = cluster.nodes[0]!;
    await runHack('containerd.sh', ['stop', node.containerd]);
    await runHack('containerd.sh', ['start', node.containerd]);

    const image = await pushRandomImage({ host: cluster.registry }, 'e2e/after-restart', { layerSizeBytes: 2 * MiB });
    const warmups = warmupApi(cluster.kubeConfig);
    await warmups.create(NAMESPACE, 'after-restart', { images: [{ image }] });
    const done = await warmups.finished(NAMESPACE, 'after-restart', 180_000);
    expect(done.status?.phase, JSON.stringify(done.status)).toBe('Succeeded');
    expect(await imagePresent(image)).toBe(true);
    // The same agent pod served it: it found the new socket in the directory it mounts.
    const now = await readyAgent();
    expect(now.metadata!.uid).toBe(before.metadata!.uid);
    expect(now.status?.containerStatuses?.[0]?.restartCount).toBe(before.status?.containerStatuses?.[0]?.restartCount);
  });

  it('is scraped by Prometheus, which finds the agent pod through the API server; every dashboard expression has data', async () => {
    const agent = await readyAgent();
    const controller = (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: 'app.kubernetes.io/component=controller' })).items.find(readyPod)!;
    const controllerPort = controller.spec!.containers[0]!.ports!.find((p) => p.name === 'http-metrics')!.containerPort;
    const prom = await startPrometheus({
      kubeconfig: cluster.kubeconfigPath,
      namespace: NAMESPACE,
      // The controller runs in the host network here: its pod IP is the node's.
      staticTargets: { 'stoker-controller': [`${controller.status!.podIP!}:${controllerPort}`] },
      ruleFiles: [join(REPO_ROOT, 'deploy', 'prometheus', 'stoker-rules.yaml')],
    });
    try {
      const targets = await prom.waitForTargets('stoker-agent', 1, 120_000);
      expect(targets.map((t) => [t.labels.pod, t.scrapeUrl])).toEqual([[agent.metadata!.name, `http://${agent.status!.podIP!}:7080/metrics`]]);
      await prom.waitForTargets('stoker-controller', 1, 120_000);

      // Work for every panel: an image and a file once, and a file kept warm.
      const image = await pushRandomImage({ host: cluster.registry }, 'e2e/prom', { layerSizeBytes: 1 * MiB });
      const file = join(models, 'prom.bin');
      await writeFile(file, Buffer.alloc(2 * MiB, 3));
      const warmups = warmupApi(cluster.kubeConfig);
      await warmups.create(NAMESPACE, 'prom-once', { images: [{ image }], paths: [{ path: file }] });
      await warmups.create(NAMESPACE, 'prom-keep', { paths: [{ path: file }], keepWarm: true, policy: { recheckSeconds: 5 } });
      expect((await warmups.finished(NAMESPACE, 'prom-once', 120_000)).status?.phase).toBe('Succeeded');
      const enough = (expr: string) => async (): Promise<true | undefined> => {
        const [x] = await prom.query(`min(count_over_time(${expr}[1m]))`);
        return x && Number(x.value[1]) >= 3 ? true : undefined;
      };
      await waitFor('the Warmup kept warm, in the controller\'s metrics', async () => ((await prom.query('stoker_warmup_warm{job="stoker-controller"} == 1')).length > 0 ? true : undefined), 120_000, 500);
      await waitFor('three scrapes of the agent\'s pull counter', enough('stoker_image_pulls_total{job="stoker-agent"}'), 60_000, 500);
      await waitFor('three scrapes of the controller\'s task counter', enough('stoker_node_tasks_total{job="stoker-controller"}'), 60_000, 500);

      const empty: string[] = [];
      for (const { panel, expr } of await dashboardExpressions()) {
        // A rate() needs two scrapes after its counter first appears: give each a few.
        const ok = await waitFor(expr, async () => ((await prom.query(expr)).length > 0 ? true : undefined), 20_000, 500).catch(() => false);
        if (!ok) empty.push(`${panel}: ${expr}`);
      }
      expect(empty).toEqual([]);
      expect((await prom.query('sum(stoker_runtime_ready{job="stoker-agent"})'))[0]?.value[1]).toBe('1');
      await warmups.delete(NAMESPACE, 'prom-keep');
    } finally {
      await prom.stop();
    }
  });

  it('keeps its certificates on helm upgrade, and helm uninstall leaves nothing behind', async () => {
    const secrets = async (): Promise<Record<string, string>> => {
      const list = await core.listNamespacedSecret({ namespace: NAMESPACE, labelSelector: `app.kubernetes.io/instance=${RELEASE}` });
      return Object.fromEntries(list.items.map((s) => [s.metadata!.name!, JSON.stringify(s.data)]));
    };
    const before = await secrets();
    expect(Object.keys(before).length).toBeGreaterThanOrEqual(2);
    await installStoker(cluster, images, { allowedRoots: [models], upgrade: true, set: ['logLevel=debug'] });
    expect(await secrets()).toEqual(before);
    await readyAgent();

    await cluster.helm(['uninstall', RELEASE, '--namespace', NAMESPACE, '--wait', '--timeout', '3m']);
    const kinds = 'all,secrets,configmaps,serviceaccounts,roles,rolebindings,leases,endpointslices';
    const left = await waitFor('the release\'s objects to be gone', async () => {
      const out = await cluster.kubectl(['get', kinds, '--namespace', NAMESPACE, '--selector', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'name']);
      const pods = (await core.listNamespacedPod({ namespace: NAMESPACE })).items;
      return out.trim() === '' && pods.length === 0 ? out : undefined;
    }, 120_000, 500);
    expect(left.trim()).toBe('');
    const cluster_ = await cluster.kubectl(['get', 'clusterroles,clusterrolebindings', '--selector', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'name']);
    expect(cluster_.trim()).toBe('');
  });
});
