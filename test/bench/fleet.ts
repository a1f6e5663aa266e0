// What the controller benchmarks share: a real kube-apiserver, one containerd with a small image
// already present, one real agent per simulated node (agent/run.ts startAgent, all in this process,
// each with its own node name, port and EndpointSlice, all sharing the containerd), and the
// controller as the built CLI (`node dist/bin/stoker.cjs controller`) in its own process, so its
// RSS and CPU time (from /proc) are its own.
//
//   const fleet = await startFleet({ nodes: 200, image: 'bench/fanout' });
//   ... fleet.image, fleet.nodes, fleet.controllerPid, await fleet.counter('stoker_status_writes_total')
//   await fleet.stop();
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { createLogger } from '../../proto/common/log.js';
import { makeCertificates, type Certificates } from '../support/certs.js';
import { startContainerd } from '../support/containerd.js';
import { pushRandomImage } from '../support/images.js';
import { startKube, type Kube } from '../support/kube.js';
import { freePort } from '../support/ports.js';
import { REPO_ROOT, run } from '../support/proc.js';
import { startRegistry } from '../support/registry.js';
import { ensureNamespace, startSimNode, waitFor, type SimNode } from '../support/sim-cluster.js';

export const STOKER_NS = 'stoker-system';
const CLI = join(REPO_ROOT, 'dist', 'bin', 'stoker.cjs');

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

export function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m?.[1] ? Number(m[1]) / 1024 : 0;
}

/** User + system CPU seconds a process has used so far (/proc/PID/stat utime and stime). */
export function cpuSeconds(pid: number, ticksPerSecond = 100): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** Sum over label sets of metric `name` on the /metrics page at `port`. */
export async function counter(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

export interface FleetOptions {
  nodes: number;
  /** Repository of the small image pushed and pulled onto the containerd. */
  image: string;
  /** Labels of the i-th node (0-based). */
  labels?: (i: number) => Record<string, string>;
  /** Prefix of the temporary directory. */
  tmpPrefix?: string;
}

export interface Fleet {
  readonly kube: Kube;
  readonly certs: Certificates;
  readonly image: string;
  readonly nodes: SimNode[];
  readonly controllerPid: number;
  readonly httpPort: number;
  /** A metric of the controller's (sum over label sets). */
  counter(name: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startFleet(opts: FleetOptions): Promise<Fleet> {
  if (!existsSync(CLI)) await run('npm', ['run', 'build']);
  const dir = await mkdtemp(join(tmpdir(), opts.tmpPrefix ?? 'stoker-bench-fleet-'));
  const log = createLogger({ name: 'stoker-agent', level: 'error' });
  const kube = await startKube();
  const containerd = await startContainerd();
  const registry = await startRegistry();
  const nodes: SimNode[] = [];
  let controller: ChildProcess | undefined;
  const stop = async () => {
    controller?.kill('SIGTERM');
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await Promise.allSettled([containerd.stop(), registry.stop()]);
    await kube.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await registry.addTo(containerd);
    const certs = await makeCertificates(join(dir, 'pki'));
    const image = await pushRandomImage(registry, opts.image, { layers: 1, layerSizeBytes: 64 * 1024 });
    await containerd.ctrPull(image);
    await ensureNamespace(kube.kubeConfig, STOKER_NS);
    process.stderr.write(`starting ${opts.nodes} simulated nodes (Node object, agent, EndpointSlice) on one containerd...\n`);
    const limit = pLimit(16);
    await Promise.all(
      Array.from({ length: opts.nodes }, (_, i) =>
        limit(async () => {
          nodes[i] = await startSimNode({
            kc: kube.kubeConfig,
            certs,
            name: `sim-${String(i + 1).padStart(3, '0')}`,
            labels: opts.labels?.(i) ?? {},
            containerd,
            namespace: STOKER_NS,
            log,
          });
        }),
      ),
    );

    const httpPort = await freePort();
    controller = spawn(
      process.execPath,
      // As Dockerfile.controller runs it.
      ['--max-semi-space-size=2', CLI, 'controller', '--kubeconfig', kube.kubeconfigPath, '--namespace', STOKER_NS, '--tls-cert-file', certs.clientCert,
        '--tls-private-key-file', certs.clientKey, '--agent-ca-file', certs.caCert, '--agent-server-name', 'stoker-agent', '--http-listen', `127.0.0.1:${httpPort}`,
        '--leader-elect', 'false', '--log-level', 'warn'],
      { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const controllerPid = controller.pid ?? 0;
    const metric = (name: string) => counter(httpPort, name);
    await waitFor('the controller to be ready', async () => ((await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined))?.ok ? true : undefined), 60_000);
    await waitFor(`the controller to see ${opts.nodes} live agents`, async () => ((await metric('stoker_live_agents')) >= opts.nodes ? true : undefined), 120_000);
    return { kube, certs, image, nodes, controllerPid, httpPort, counter: metric, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
