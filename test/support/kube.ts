// A private kube-apiserver + etcd on loopback (hack/kube/up.sh) with Stoker's Warmup CRD installed,
// and the kubectl and helm built beside it (hack/kube/build.sh).
//
//   const kube = await startKube();               // in beforeAll: about 4 s on 2 cores (binaries cached)
//   const core = kube.kubeConfig.makeApiClient(CoreV1Api);
//   await createNode(kube.kubeConfig, 'node-a', { 'stoker.io/pool': 'gpu' });
//   await kube.kubectl(['get', 'warmups', '-A']);
//   await kube.stopServer('kube-apiserver'); await kube.startServer('kube-apiserver');  // an outage
//   await kube.stop();                            // in afterAll
//
// One API server per test file. The kubeconfig's user is an admin (group system:masters);
// authorization is RBAC. There is no kubelet, scheduler or controller-manager: Nodes are plain
// objects, and nothing garbage-collects or finalizes namespaces.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, type V1Node } from '@kubernetes/client-node';
import { run, runHack } from './proc.js';

export interface Kube {
  /** Directory with certificates, etcd data, logs (etcd.log, kube-apiserver.log) and the kubeconfig. */
  readonly dir: string;
  readonly kubeconfigPath: string;
  /** A client-node KubeConfig loaded from kubeconfigPath (admin). */
  readonly kubeConfig: KubeConfig;
  /** Directory holding the kube-apiserver, kubectl and helm binaries. */
  readonly binDir: string;
  /** Runs kubectl against this API server; resolves with stdout, rejects with stderr in the message. */
  kubectl(args: readonly string[], opts?: CommandOptions): Promise<string>;
  /** Runs helm against this API server (its cache and config kept in dir); resolves with stdout. */
  helm(args: readonly string[], opts?: CommandOptions): Promise<string>;
  /**
   * Stops one server (SIGTERM) and resolves once it is gone: the API server, or etcd under a running
   * API server. startServer brings it back on the same port with the same etcd data and resolves once
   * it answers (the API server's /readyz is ok).
   */
  stopServer(server: KubeServer): Promise<void>;
  startServer(server: KubeServer): Promise<void>;
  /** Stops the API server and etcd and removes dir (if startKube created it). Idempotent. */
  stop(): Promise<void>;
}

export type KubeServer = 'kube-apiserver' | 'etcd';

export interface CommandOptions {
  /** Written to the command's stdin. */
  input?: string;
  signal?: AbortSignal;
}

export interface KubeOptions {
  /** Directory for this instance; default: a new temp dir, removed by stop(). */
  dir?: string;
  /** Apply deploy/crd/warmups.stoker.io.yaml and wait until it is Established. Default true. */
  installCrd?: boolean;
  signal?: AbortSignal;
}

/** Starts etcd and kube-apiserver, waits for /readyz, and installs the Warmup CRD. */
export async function startKube(opts: KubeOptions = {}): Promise<Kube> {
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'stoker-kube-')));
  const sig = opts.signal ? { signal: opts.signal } : {};
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      await runHack('kube/down.sh', [dir]);
    } finally {
      if (ownDir) await rm(dir, { recursive: true, force: true });
    }
  };

  try {
    const binDir = await runHack('kube/build.sh', [], sig);
    const env = { STOKER_KUBE_BIN: binDir };
    const kubeconfigPath = await runHack('kube/up.sh', [dir, '--owner-pid', String(process.pid)], { ...sig, env });
    if (opts.installCrd ?? true) await runHack('kube/install-crd.sh', [kubeconfigPath], { ...sig, env });

    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);
    const { kubectl, helm } = kubeTools(binDir, kubeconfigPath, dir);
    return {
      dir,
      kubeconfigPath,
      kubeConfig,
      binDir,
      kubectl,
      helm,
      stopServer: async (server) => {
        await runHack('kube/server.sh', [dir, 'stop', server]);
      },
      startServer: async (server) => {
        await runHack('kube/server.sh', [dir, 'start', server]);
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** kubectl and helm against one kubeconfig; helm keeps its cache and config under `dir`/helm. */
export function kubeTools(binDir: string, kubeconfigPath: string, dir: string): Pick<Kube, 'kubectl' | 'helm'> {
  const tool = async (name: string, args: readonly string[], o: CommandOptions, env: Record<string, string> = {}): Promise<string> => {
    const { stdout } = await run(join(binDir, name), ['--kubeconfig', kubeconfigPath, ...args], {
      env,
      ...(o.input !== undefined ? { input: o.input } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    return stdout;
  };
  const helmHome = join(dir, 'helm');
  const helmEnv = {
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_DATA_HOME: join(helmHome, 'data'),
  };
  return {
    kubectl: (args, o = {}) => tool('kubectl', args, o),
    helm: (args, o = {}) => tool('helm', args, o, helmEnv),
  };
}

/** Creates a Node object (no kubelet runs; it is just an API object) and returns it. */
export async function createNode(kc: KubeConfig, name: string, labels: Record<string, string> = {}): Promise<V1Node> {
  const core = kc.makeApiClient(CoreV1Api);
  return core.createNode({
    body: {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
    },
  });
}

/** Deletes a Node object; a Node that does not exist is not an error. */
export async function deleteNode(kc: KubeConfig, name: string): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  try {
    await core.deleteNode({ name });
  } catch (err) {
    if ((err as { code?: unknown }).code !== 404) throw err;
  }
}

/**
 * A KubeConfig that acts as a ServiceAccount (a token from the TokenRequest API, valid an hour):
 * what a pod running as it may do, RBAC and all.
 */
export async function serviceAccountKubeConfig(admin: KubeConfig, namespace: string, name: string): Promise<KubeConfig> {
  const tr = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({ namespace, name, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const cluster = admin.getCurrentCluster();
  if (!cluster || !tr.status?.token) throw new Error(`no token for ServiceAccount ${namespace}/${name}`);
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token: tr.status.token }],
    contexts: [{ name, cluster: cluster.name, user: name }],
    currentContext: name,
  });
  return kc;
}
