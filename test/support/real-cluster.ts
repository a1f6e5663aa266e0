// A real cluster on this machine (hack/kube/cluster.sh): kube-apiserver, kube-scheduler,
// kube-controller-manager and real kubelet nodes on Debian's containerd, with a registry that every
// node pulls from over plain HTTP.
//
//   const cluster = await startRealCluster();      // in beforeAll: 20-40 s on 2 cores
//   await cluster.kubectl(['apply', '-f', '-'], { input: yaml });
//   cluster.registry                                // 127.0.0.1:PORT; push test images there
//   cluster.nodes[0]                                // { name, ip, containerd, kubeletRoot }
//   await cluster.stop();                           // in afterAll; also runs if this process dies
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { run, runHack } from './proc.js';
import { kubeTools, type CommandOptions } from './kube.js';

export interface RealNode {
  readonly name: string;
  /** The node's InternalIP: a bridge address made for it; its pods' addresses are in the same /24. */
  readonly ip: string;
  /** The node's containerd directory (hack/containerd.sh DIR): restart it with hack/containerd.sh. */
  readonly containerd: string;
  readonly kubeletRoot: string;
  /** A directory of the node's for host files its pods mount (hostPath), on a shared mount. */
  readonly data: string;
}

export interface RealCluster {
  readonly dir: string;
  readonly kubeconfigPath: string;
  readonly kubeConfig: KubeConfig;
  readonly binDir: string;
  /** HOST:PORT of the cluster's plain-HTTP registry on loopback. */
  readonly registry: string;
  /** The API server's port on 127.0.0.1 (for hostNetwork pods: KUBERNETES_SERVICE_HOST/PORT). */
  readonly apiPort: number;
  readonly nodes: readonly RealNode[];
  kubectl(args: readonly string[], opts?: CommandOptions): Promise<string>;
  helm(args: readonly string[], opts?: CommandOptions): Promise<string>;
  /** Stops everything and removes dir. Idempotent. */
  stop(): Promise<void>;
}

/** Runs `ctr` against the node's containerd in the CRI's namespace (k8s.io); resolves with stdout. */
export async function nodeCtr(node: RealNode, args: readonly string[]): Promise<string> {
  return (await run('ctr', ['--address', `${node.containerd}/containerd.sock`, '--namespace', 'k8s.io', ...args])).stdout;
}

export async function startRealCluster(opts: { nodes?: number; signal?: AbortSignal } = {}): Promise<RealCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'stoker-cluster-'));
  const sig = opts.signal ? { signal: opts.signal } : {};
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      await runHack('kube/cluster.sh', ['down', dir]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    const kubeconfigPath = await runHack('kube/cluster.sh', ['up', dir, '--nodes', String(opts.nodes ?? 1), '--owner-pid', String(process.pid)], sig);
    const env = parseEnv(await readFile(join(dir, 'cluster.env'), 'utf8'));
    const binDir = env.kube_bin!;
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);
    const nodes: RealNode[] = [];
    for (let i = 1; i <= Number(env.nodes); i++) {
      nodes.push({
        name: env[`node_${i}_name`]!,
        ip: env[`node_${i}_ip`]!,
        containerd: env[`node_${i}_containerd`]!,
        kubeletRoot: env[`node_${i}_kubelet_root`]!,
        data: env[`node_${i}_data`]!,
      });
    }
    const { kubectl, helm } = kubeTools(binDir, kubeconfigPath, dir);
    return {
      dir,
      kubeconfigPath,
      kubeConfig,
      binDir,
      registry: env.registry!,
      apiPort: Number(env.api_port),
      nodes,
      kubectl,
      helm,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}
