// Benchmark: what users pay for. Pod start time in a real cluster, from creating the pod to its
// Ready condition, on a cold node against the same node after a Warmup.
//
//   npx tsx test/bench/pods.ts [--rounds N] [--image-mb MB] [--file-mb MB] [--mbps MB/s] [--only image,file]
//
// One real kubelet node (hack/kube/cluster.sh) with Stoker installed by its Helm chart from its own
// images (hack/images.sh). Each round runs cold, then warm (the order alternates between rounds):
// - image: a pod of a ~1 GB image (--image-mb, 8 layers) pulled from a registry behind a throttle
//          of --mbps MB/s (default 100; a real network, where loopback would be a floor). Cold: the
//          image is removed from the node first. Warm: the same, then a Warmup of the image.
// - file:  a pod whose init container reads a ~2 GB model file (--file-mb) from a hostPath (dd,
//          4 MiB reads) before the pod is Ready. Each run gets a new file, written through to the
//          disk and dropped from the page cache (vmtouch -e). Cold: the pod reads it. Warm: a Warmup
//          of the file's path, then the pod. Also printed: the read alone, as the pod timed it.
// The Warmup's own time is not counted: it runs before the pod is needed. Target: warm at most 0.15
// of cold, for both.
import { mkdir, rm } from 'node:fs/promises';
import { CoreV1Api } from '@kubernetes/client-node';
import { basename, join } from 'node:path';
import { pushRandomImage } from '../support/images.js';
import { evictFromPageCache, residentBytes } from '../support/page-cache.js';
import { podStartSeconds, removeImage, shellPod } from '../support/pod-start.js';
import { run, runHack } from '../support/proc.js';
import { startThrottledProxy } from '../support/proxy.js';
import { startRealCluster } from '../support/real-cluster.js';
import { warmupApi } from '../support/sim-cluster.js';
import { installStoker, NAMESPACE, pushStokerImages } from '../support/stoker-release.js';
import { median } from './fleet.js';
import { flag } from './args.js';

const ROUNDS = Math.max(3, Number(flag('--rounds') ?? 3));
const IMAGE_MB = Number(flag('--image-mb') ?? 1024);
const FILE_MB = Number(flag('--file-mb') ?? 2048);
const MBPS = Number(flag('--mbps') ?? 100);
const ONLY = new Set((flag('--only') ?? 'image,file').split(','));
const MiB = 1024 * 1024;
const TARGET = 0.15;

const cluster = await startRealCluster();
const models = join(cluster.nodes[0]!.data, 'models');
await mkdir(models);
const proxy = await startThrottledProxy(cluster.registry, MBPS * MiB);
try {
  const node = cluster.nodes[0]!;
  console.log(`cluster: 1 kubelet node (${node.name}, ${node.ip}); registry ${cluster.registry}, throttled to ${MBPS} MB/s at ${proxy.host}`);
  const images = await pushStokerImages(cluster.registry);
  await installStoker(cluster, images, { allowedRoots: [models] });
  await runHack('containerd.sh', ['add-registry', node.containerd, proxy.host]);
  const warmups = warmupApi(cluster.kubeConfig);
  let seq = 0;
  const warm = async (spec: Parameters<typeof warmups.create>[2]): Promise<void> => {
    const name = `bench-${++seq}`;
    await warmups.create(NAMESPACE, name, spec);
    const done = await warmups.finished(NAMESPACE, name, 600_000);
    if (done.status?.phase !== 'Succeeded') throw new Error(`Warmup ${name} ended ${done.status?.phase}: ${JSON.stringify(done.status?.conditions)}`);
    await warmups.delete(NAMESPACE, name);
  };
  // The small shell image the file pods run is on the node before any round.
  const shell = await pushRandomImage({ host: cluster.registry }, 'bench/shell', { busybox: true, layers: 0 });
  await warm({ images: [{ image: shell }] });

  const results: { name: string; cold: number[]; warm: number[]; what: string }[] = [];
  const scenario = async (name: string, what: string, cold: () => Promise<number>, warmRun: () => Promise<number>): Promise<void> => {
    const r = { name, what, cold: [] as number[], warm: [] as number[] };
    results.push(r);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? (['cold', 'warm'] as const) : (['warm', 'cold'] as const);
      for (const kind of order) {
        const s = kind === 'cold' ? await cold() : await warmRun();
        r[kind].push(s);
        console.log(`  ${name} round ${round + 1} ${kind}: ${s.toFixed(2)} s`);
      }
    }
  };

  if (ONLY.has('image')) {
    const layers = 8;
    const ref = (await pushRandomImage({ host: cluster.registry }, 'bench/model-server', { busybox: true, layers, layerSizeBytes: Math.round((IMAGE_MB * MiB) / layers) })).replace(cluster.registry, proxy.host);
    console.log(`image: ${ref} (${IMAGE_MB} MB in ${layers} layers)`);
    await scenario(
      'image',
      `pod of a ${IMAGE_MB} MB image, registry at ${MBPS} MB/s`,
      async () => {
        await removeImage(node, ref);
        return podStartSeconds(cluster.kubeConfig, shellPod(`image-${++seq}`, ref, node));
      },
      async () => {
        await removeImage(node, ref);
        await warm({ images: [{ image: ref }] });
        return podStartSeconds(cluster.kubeConfig, shellPod(`image-${++seq}`, ref, node));
      },
    );
  }

  let readLine = '';
  if (ONLY.has('file')) {
    // Each run reads a file of its own, new on the disk: on a VM, a file read once stays in the
    // hypervisor's cache, and dropping the guest's page cache no longer makes it cold.
    const fresh = async (): Promise<string> => {
      const file = join(models, `model-${++seq}.safetensors`);
      await run('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${FILE_MB}`, 'conv=fsync', 'status=none']);
      evictFromPageCache(file);
      const left = residentBytes(file);
      if (left > 64 * MiB) throw new Error(`${file}: ${left} bytes still in the page cache after vmtouch -e`);
      return file;
    };
    console.log(`file: ${FILE_MB} MB, a new one for each run, on ${models}`);
    // The pod reads the file as a model loader does, in large reads (busybox cat would splice it
    // to /dev/null without reading it), and says how long that took.
    const reads = { cold: [] as number[], warm: [] as number[] };
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    const filePod = async (kind: 'cold' | 'warm', file: string): Promise<number> => {
      const name = `file-${++seq}`;
      const pod = shellPod(name, shell, node, { script: `time dd if=/models/${basename(file)} of=/dev/null bs=4M`, volumes: [{ hostPath: models, mountPath: '/models' }] });
      return podStartSeconds(cluster.kubeConfig, pod, {
        beforeDelete: async () => {
          const log = await core.readNamespacedPodLog({ name, namespace: 'default', container: 'load' });
          const m = /real\s+(\d+)m\s*([\d.]+)s/.exec(log);
          if (!m) throw new Error(`no read time in the pod's log: ${log}`);
          reads[kind].push(Number(m[1]) * 60 + Number(m[2]));
        },
      }).finally(() => rm(file, { force: true }));
    };
    await scenario(
      'file',
      `pod reading a ${FILE_MB} MB file at start`,
      async () => filePod('cold', await fresh()),
      async () => {
        const file = await fresh();
        await warm({ paths: [{ path: file }] });
        return filePod('warm', file);
      },
    );
    const [c, w] = [median(reads.cold), median(reads.warm)];
    readLine = `  of which the pod's own read of the file: cold ${c.toFixed(2)} s, warm ${w.toFixed(2)} s, ratio ${(w / c).toFixed(3)}`;
  }

  console.log(`\npod start, create to Ready (${ROUNDS} rounds, interleaved, medians)`);
  for (const r of results) {
    const cold = median(r.cold);
    const warmS = median(r.warm);
    console.log(`  ${r.what}: cold ${cold.toFixed(2)} s, warm ${warmS.toFixed(2)} s, ratio warm/cold ${(warmS / cold).toFixed(3)} (target <= ${TARGET}), ${(cold / warmS).toFixed(1)}x faster`);
  }
  if (readLine) console.log(readLine);
} finally {
  await proxy.stop();
  await cluster.stop();
}
