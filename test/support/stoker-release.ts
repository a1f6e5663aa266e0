// Stoker installed for real into a real cluster (test/support/real-cluster.ts): the chart
// deploy/helm/stoker with `helm install`, its images built here without a Docker engine
// (hack/images.sh) and pulled by the kubelet from the cluster's registry.
//
//   const images = await pushStokerImages(cluster.registry);
//   await installStoker(cluster, images, { allowedRoots: [modelsDir] });
import { join } from 'node:path';
import { REPO_ROOT, runHack } from './proc.js';
import type { RealCluster } from './real-cluster.js';
import { freePort } from './ports.js';

export const RELEASE = 'stoker';
export const NAMESPACE = 'stoker-system';
export const CHART = join(REPO_ROOT, 'deploy', 'helm', 'stoker');

export interface StokerImages {
  /** HOST:PORT of the registry both images are in. */
  readonly registry: string;
  /** The tag both images carry. */
  readonly tag: string;
}

/** Builds Stoker's images (cached after the first time) and pushes them to `registry`. */
export async function pushStokerImages(registry: string): Promise<StokerImages> {
  const out = await runHack('images.sh', ['push', registry]);
  const refs = Object.fromEntries(out.split('\n').map((l) => l.split('=', 2) as [string, string]));
  const tagOf = (ref: string | undefined, repo: string): string => {
    const m = ref && new RegExp(`^${registry.replace(/\./g, '\\.')}/${repo}:([\\w.-]+)$`).exec(ref);
    if (!m?.[1]) throw new Error(`hack/images.sh push did not print ${repo}=${registry}/${repo}:TAG, got: ${out}`);
    return m[1];
  };
  const tag = tagOf(refs.agent, 'stoker-agent');
  if (tagOf(refs.controller, 'stoker-controller') !== tag) throw new Error(`agent and controller images differ in tag: ${out}`);
  return { registry, tag };
}

export interface InstallOptions {
  /** Host directories the agent may read into the page cache. */
  allowedRoots?: readonly string[];
  /** More `--set` pairs, e.g. ['logLevel=debug']. */
  set?: readonly string[];
  /** `helm upgrade --install` instead of `helm install`. */
  upgrade?: boolean;
}

/**
 * The values a cluster on this machine needs: its own CRI socket, image filesystem and kubelet
 * directory; the controller in the host network (no kube-proxy runs, so pods reach the API server
 * only on loopback) with one replica, on a free port.
 */
export async function clusterValues(cluster: RealCluster, images: StokerImages, opts: InstallOptions = {}): Promise<string[]> {
  const node = cluster.nodes[0];
  if (!node) throw new Error('the cluster has no nodes');
  const set = [
    `image.registry=${images.registry}`,
    `image.tag=${images.tag}`,
    `agent.criSocket=${node.containerd}/containerd.sock`,
    `agent.imageFsPath=${node.containerd}/root`,
    `kubeletPodsDir=${node.kubeletRoot}/pods`,
    'controller.replicas=1',
    'controller.hostNetwork=true',
    `controller.httpPort=${await freePort()}`,
    'controller.extraEnv[0].name=KUBERNETES_SERVICE_HOST',
    'controller.extraEnv[0].value=127.0.0.1',
    'controller.extraEnv[1].name=KUBERNETES_SERVICE_PORT',
    ...(opts.allowedRoots ?? []).map((p, i) => `agent.allowedRoots[${i}].path=${p}`),
    ...(opts.set ?? []),
  ];
  return [...set.flatMap((s) => ['--set', s]), '--set-string', `controller.extraEnv[1].value=${cluster.apiPort}`];
}

/** Installs (or upgrades) the chart and waits until the agent DaemonSet and the controller are ready. */
export async function installStoker(cluster: RealCluster, images: StokerImages, opts: InstallOptions = {}): Promise<string> {
  const verb = opts.upgrade ? ['upgrade', '--install'] : ['install'];
  return cluster.helm([
    ...verb,
    RELEASE,
    CHART,
    '--namespace',
    NAMESPACE,
    '--create-namespace',
    ...(await clusterValues(cluster, images, opts)),
    '--wait',
    '--timeout',
    '5m',
  ]);
}
