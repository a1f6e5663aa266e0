// hack/kube/cluster.sh itself: a kubelet that is a node as Kubernetes knows one (a node client
// certificate, the Node authorizer and NodeRestriction), pods that really run, and a teardown that
// leaves nothing on the machine even when the process that started the cluster dies.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pushRandomImage } from './support/images.js';
import { podStartSeconds, shellPod } from './support/pod-start.js';
import { CommandError, run, runHack } from './support/proc.js';
import { startRealCluster, type RealCluster } from './support/real-cluster.js';
import { waitFor } from './support/sim-cluster.js';

describe('hack/kube/cluster.sh', () => {
  let cluster: RealCluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('runs pods on a kubelet that holds a node identity and only what the Node authorizer grants', async () => {
    cluster = await startRealCluster();
    const node = cluster.nodes[0]!;
    const nodes = JSON.parse(await cluster.kubectl(['get', 'nodes', '-o', 'json'])) as { items: { metadata: { name: string }; status: { addresses: { type: string; address: string }[] } }[] };
    expect(nodes.items.map((n) => n.metadata.name)).toEqual([node.name]);
    expect(nodes.items[0]!.status.addresses).toContainEqual({ type: 'InternalIP', address: node.ip });

    // A pod runs, with an address from the node's own pod network.
    const image = await pushRandomImage({ host: cluster.registry }, 'infra/shell', { busybox: true, layers: 0 });
    expect(await podStartSeconds(cluster.kubeConfig, shellPod('probe', image, node))).toBeGreaterThan(0);

    // The kubelet's own credentials: system:node:<name>, and no more than a node may do.
    const asNode = async (args: string[]): Promise<string> => {
      try {
        return (await run(join(cluster!.binDir, 'kubectl'), ['--kubeconfig', join(cluster!.dir, `system:node:${node.name}.kubeconfig`), ...args])).stdout;
      } catch (err) {
        return (err as CommandError).stderr;
      }
    };
    expect(await asNode(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'])).toBe(`system:node:${node.name}`);
    expect(await asNode(['get', 'secrets', '--namespace', 'kube-system'])).toMatch(/forbidden/i);
    // NodeRestriction: a node may not label itself into the node-restriction.kubernetes.io/ prefix.
    expect(await asNode(['label', 'node', node.name, 'node-restriction.kubernetes.io/x=y'])).toMatch(/forbidden|not allowed/i);
  });

  it('is torn down completely once the process that started it exits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stoker-cluster-owner-'));
    const owner = spawn('sleep', ['3600'], { stdio: 'ignore' });
    try {
      await runHack('kube/cluster.sh', ['up', dir, '--owner-pid', String(owner.pid)]);
      const env = await readFile(join(dir, 'cluster.env'), 'utf8');
      const subnet = /^node_1_subnet=(\d+)$/m.exec(env)?.[1];
      expect(subnet).toBeDefined();
      const bridge = `stkbr${subnet}`;
      expect((await run('ip', ['link', 'show', bridge])).stdout).toContain(bridge);
      expect(existsSync(`/sys/fs/cgroup/pids/stoker-${subnet}`)).toBe(true);

      // A pod runs when the owner dies: its processes, network namespace and shim must go too.
      const registry = /^registry=(.+)$/m.exec(env)?.[1];
      const image = await pushRandomImage({ host: registry! }, 'infra/pod', { busybox: true, layers: 0 });
      const kubectl = [join(/^kube_bin=(.+)$/m.exec(env)![1]!, 'kubectl'), '--kubeconfig', join(dir, 'kube', 'kubeconfig')];
      await run(kubectl[0]!, [...kubectl.slice(1), 'run', 'left', '--image', image, '--restart', 'Never']);
      await run(kubectl[0]!, [...kubectl.slice(1), 'wait', '--for', 'condition=Ready', 'pod/left', '--timeout', '120s']);
      const shimSockets = (await run('ls', ['/run/containerd/s'])).stdout.split('\n').filter((f) => f !== '');
      expect(shimSockets.length).toBeGreaterThan(0);
      const netnsBefore = (await run('ip', ['netns', 'list'])).stdout;

      owner.kill('SIGKILL');
      await waitFor('the cluster to be torn down', () => Promise.resolve(existsSync(join(dir, 'cluster.env')) ? undefined : true), 120_000, 500);
      await expect(run('ip', ['link', 'show', bridge])).rejects.toThrow(/does not exist/);
      expect(existsSync(`/sys/fs/cgroup/pids/stoker-${subnet}`)).toBe(false);
      const procs = (await run('ps', ['-eo', 'args'])).stdout.split('\n').filter((l) => l.includes(dir));
      expect(procs).toEqual([]);
      const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').filter((l) => l.includes(dir));
      expect(mounts).toEqual([]);
      for (const f of shimSockets) expect(existsSync(`/run/containerd/s/${f}`), f).toBe(false);
      const podNetns = netnsBefore.split('\n').filter((l) => l.startsWith('cni-')).map((l) => l.split(' ')[0]!);
      expect(podNetns.length).toBeGreaterThan(0);
      const netnsAfter = (await run('ip', ['netns', 'list'])).stdout;
      for (const ns of podNetns) expect(netnsAfter).not.toContain(ns);
    } finally {
      owner.kill('SIGKILL');
      await runHack('kube/cluster.sh', ['down', dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
