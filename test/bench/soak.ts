// Benchmark: memory over a long run (a soak). Does the controller, or an agent, keep anything per
// Warmup, per task or per agent connection after the Warmup is gone?
//
//   npx tsx test/bench/soak.ts [--warmups N] [--every K] [--agents A] [--agent-tasks T] [--quick] [--snapshots DIR]
//
// A real kube-apiserver (test/support/kube.ts), one containerd with a small image already present,
// and A (default 3) real agents, each the built CLI (`node dist/bin/stoker.cjs agent`) as its own
// process on the shared containerd, for its own Node object, found by the controller through the
// EndpointSlice Kubernetes would keep for its pod (written here, as the endpointslice controller
// would: support/endpoint-slices.ts). The controller is the built CLI too, its own process, with
// leader election on (as deployed).
// Nothing is faked: every Warmup warms the image and one small file (read into the page cache from
// the agent's allowed root); odd Warmups ask IfNotPresent (containerd finds the image present),
// even ones Always (a real pull from the loopback registry, every layer already in containerd's
// content store).
//
// N Warmups (default 1,050) run one after another: create, wait until the API server reports
// Succeeded on every agent's node, delete, wait until it is gone. Before the first Warmup and
// after every K (default 50), each process is asked over its IPC channel (a preload module given
// with --import) to collect garbage twice and report process.memoryUsage(): heap used after a
// forced GC and RSS. The table has one row per sample; the verdict compares the sample after
// Warmup 50 with the last one (target: heap used grows < 5%, RSS < 15%, over the next 1,000).
//
// Then T more tasks (default 2,500) go straight to the first agent over mutual TLS, one after
// another, the same task a Warmup sends, sampled every 250: an agent over thousands of tasks. By
// then it remembers as many finished tasks as it may (--task-retention-count, 1,000), so its heap
// should not grow at all; during the Warmups it grows by what those results take, up to that bound.
// --quick runs 200 Warmups sampled every 25 and 300 tasks sampled every 50, for checking the
// benchmark itself.
//
// With --snapshots DIR, every process also writes a V8 heap snapshot at the baseline (Warmup 50)
// and at the end, and the benchmark prints, per process, the objects allocated after the
// baseline that are still alive at the end, by constructor, with their most common retainer
// chains (test/support/heap-snapshot.ts). Writing a snapshot costs a process tens of MB of RSS
// that it keeps: with --snapshots, judge heap used, not RSS.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { agentProto, type AgentClient, type WarmEvent__Output } from '../../proto/agent.js';
import type { WarmRequest } from '../../proto/gen/stoker/v1/WarmRequest.js';
import { makeCertificates } from '../support/certs.js';
import { startContainerd } from '../support/containerd.js';
import { agentAddress, publishAgentEndpoint } from '../support/endpoint-slices.js';
import { compareSnapshots } from '../support/heap-snapshot.js';
import { pushRandomImage } from '../support/images.js';
import { createNode, startKube } from '../support/kube.js';
import { freePort } from '../support/ports.js';
import { REPO_ROOT, run } from '../support/proc.js';
import { startRegistry } from '../support/registry.js';
import { ensureNamespace, waitFor, warmupApi } from '../support/sim-cluster.js';
import { flag, hasFlag } from './args.js';

const QUICK = hasFlag('--quick');
const WARMUPS = Number(flag('--warmups') ?? (QUICK ? 200 : 1050));
const EVERY = Number(flag('--every') ?? (QUICK ? 25 : 50));
const AGENTS = Number(flag('--agents') ?? 3);
const AGENT_TASKS = Number(flag('--agent-tasks') ?? (QUICK ? 300 : 2500));
const TASKS_EVERY = QUICK ? 50 : 250;
const SNAPSHOTS = flag('--snapshots');
/** The sample the growth is measured from: after the first 50 Warmups (start-up, JIT, caches filled). */
const BASELINE = Math.min(50, WARMUPS);
const HEAP_TARGET = 0.05;
const RSS_TARGET = 0.15;
const CLI = join(REPO_ROOT, 'dist', 'bin', 'stoker.cjs');
const NS = 'default';
const STOKER_NS = 'stoker-system';

/**
 * Loaded into each measured process with --import: answers the benchmark's messages on the IPC
 * channel ('gc': two full collections, then memoryUsage(); 'snapshot': a heap snapshot). The
 * channel is unreferenced, so it keeps no process alive.
 */
const PROBE = `
import { writeHeapSnapshot } from 'node:v8';
if (process.send) {
  process.on('message', (m) => {
    if (m?.probe === 'gc') {
      globalThis.gc();
      globalThis.gc();
      const u = process.memoryUsage();
      process.send({ probe: 'gc', id: m.id, heapUsed: u.heapUsed, rss: u.rss });
    } else if (m?.probe === 'snapshot') {
      process.send({ probe: 'snapshot', id: m.id, file: writeHeapSnapshot(m.file) });
    }
  });
  process.channel?.unref();
}
`;
const PROBE_ARGS = ['--expose-gc', '--import', `data:text/javascript,${encodeURIComponent(PROBE)}`];

interface Measured {
  name: string;
  child: ChildProcess;
}

interface Usage {
  heapUsed: number;
  rss: number;
}

let seq = 0;
function ask<T>(p: Measured, message: Record<string, unknown>): Promise<T> {
  const id = ++seq;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      p.child.off('message', onMessage);
      reject(new Error(`${p.name} did not answer ${String(message.probe)} within 120 s`));
    }, 120_000);
    const onMessage = (m: { id?: number }) => {
      if (m.id !== id) return;
      clearTimeout(timer);
      p.child.off('message', onMessage);
      resolve(m as T);
    };
    p.child.on('message', onMessage);
    p.child.send({ ...message, id });
  });
}

function spawnMeasured(name: string, cliArgs: string[]): Measured {
  const child = spawn(process.execPath, [...PROBE_ARGS, CLI, ...cliArgs], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.on('exit', (code, signal) => {
    if (!stopping) process.stderr.write(`${name} exited early (${code ?? signal})\n`);
  });
  return { name, child };
}

async function stopMeasured(p: Measured): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((resolve) => p.child.once('exit', resolve));
  p.child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 12_000))]);
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** One Warm call to its result; rejects unless it succeeded. */
function warmOne(client: AgentClient, request: WarmRequest): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.warm(request);
    let ok = false;
    call.on('data', (e: WarmEvent__Output) => {
      if (e.result) ok = e.result.succeeded;
    });
    call.on('error', reject);
    call.on('end', () => (ok ? resolve() : reject(new Error(`task ${request.taskId} did not succeed`))));
  });
}

const mb = (bytes: number) => bytes / 1024 / 1024;
const pct = (from: number, to: number) => (to - from) / from;

let stopping = false;
if (!existsSync(CLI)) await run('npm', ['run', 'build']);
const dir = await mkdtemp(join(tmpdir(), 'stoker-bench-soak-'));
const kube = await startKube();
const containerd = await startContainerd();
const registry = await startRegistry();
const processes: Measured[] = [];
try {
  await registry.addTo(containerd);
  const certs = await makeCertificates(join(dir, 'pki'));
  const image = await pushRandomImage(registry, 'bench/soak', { layers: 1, layerSizeBytes: 64 * 1024 });
  await containerd.ctrPull(image);
  await ensureNamespace(kube.kubeConfig, STOKER_NS);
  const root = join(dir, 'models');
  await mkdir(root);
  await writeFile(join(root, 'weights.bin'), Buffer.alloc(256 * 1024, 7));

  const nodes = Array.from({ length: AGENTS }, (_, i) => `soak-${i + 1}`);
  // Agents listen where the API server takes an endpoint address (not loopback), each on its own port.
  const address = agentAddress();
  const host = address.includes(':') ? `[${address}]` : address;
  const endpoints = new Map<string, string>();
  for (const node of nodes) {
    await createNode(kube.kubeConfig, node);
    const port = await freePort();
    endpoints.set(node, `${host}:${port}`);
    processes.push(
      spawnMeasured(`agent ${node}`, [
        'agent', '--node-name', node, '--cri-endpoint', containerd.endpoint,
        '--grpc-listen', `${host}:${port}`, '--http-listen', '127.0.0.1:0',
        '--tls-cert-file', certs.serverCert, '--tls-private-key-file', certs.serverKey, '--client-ca-file', certs.caCert,
        '--allowed-root', root,
        '--log-level', 'warn',
      ]),
    );
    await publishAgentEndpoint(kube.kubeConfig, { namespace: STOKER_NS, node, address, port });
  }
  const httpPort = await freePort();
  const controller = spawnMeasured('controller', [
    'controller', '--kubeconfig', kube.kubeconfigPath, '--namespace', STOKER_NS,
    '--tls-cert-file', certs.clientCert, '--tls-private-key-file', certs.clientKey, '--agent-ca-file', certs.caCert,
    '--http-listen', `127.0.0.1:${httpPort}`, '--log-level', 'warn',
  ]);
  processes.unshift(controller);
  await waitFor('the controller to be ready', async () => ((await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined))?.ok ? true : undefined), 60_000);
  await waitFor(`the controller to see ${AGENTS} live agents`, async () => ((await metric(httpPort, 'stoker_live_agents')) >= AGENTS ? true : undefined), 120_000);

  const api = warmupApi(kube.kubeConfig);
  const samples: { warmups: number; seconds: number; usage: Usage[] }[] = [];
  const t0 = performance.now();
  const sample = async (warmups: number) => {
    const usage: Usage[] = [];
    for (const p of processes) usage.push(await ask<Usage>(p, { probe: 'gc' }));
    samples.push({ warmups, seconds: (performance.now() - t0) / 1000, usage });
    const cols = usage.map((u, i) => `${processes[i]!.name} ${mb(u.heapUsed).toFixed(1)}/${mb(u.rss).toFixed(0)} MB`);
    process.stderr.write(`after ${String(warmups).padStart(5)} Warmups (${((performance.now() - t0) / 1000).toFixed(0)} s): heap used/RSS ${cols.join(', ')}\n`);
  };
  const snapshot = async (label: string): Promise<string[]> => {
    if (!SNAPSHOTS) return [];
    await mkdir(SNAPSHOTS, { recursive: true });
    const files: string[] = [];
    for (const p of processes) {
      const file = join(SNAPSHOTS, `${p.name.replace(/\W+/g, '-')}-${label}.heapsnapshot`);
      files.push((await ask<{ file: string }>(p, { probe: 'snapshot', file })).file);
    }
    return files;
  };

  // Give the agents and the controller's first relist a moment, then sample.
  await new Promise((r) => setTimeout(r, 2000));
  await sample(0);
  let baselineFiles: string[] = [];
  for (let i = 1; i <= WARMUPS; i++) {
    const name = `soak-${i}`;
    await api.create(NS, name, { images: [{ image, pullPolicy: i % 2 ? 'IfNotPresent' : 'Always' }], paths: [{ path: join(root, 'weights.bin') }] });
    const w = await waitFor(`Warmup ${name}`, async () => {
      const cur = await api.get(NS, name);
      return cur?.status?.phase === 'Succeeded' || cur?.status?.phase === 'Failed' ? cur : undefined;
    }, 120_000, 20);
    if (w.status?.phase !== 'Succeeded' || w.status.succeededNodes !== AGENTS) {
      throw new Error(`Warmup ${name} ended ${w.status?.phase} with ${w.status?.succeededNodes}/${AGENTS} nodes: ${JSON.stringify(w.status?.conditions)}`);
    }
    await api.delete(NS, name);
    await waitFor(`Warmup ${name} to be gone`, async () => ((await api.get(NS, name)) ? undefined : true), 60_000, 20);
    if (i % EVERY === 0 || i === BASELINE || i === WARMUPS) {
      // Let the controller see the deletion (watch event, then a reconcile of the missing key).
      await new Promise((r) => setTimeout(r, 500));
      await sample(i);
      if (i === BASELINE) baselineFiles = await snapshot('baseline');
    }
  }
  const finalFiles = await snapshot('end');

  // The first agent alone, over thousands of tasks sent straight to it.
  const agent = processes[1]!;
  const node = nodes[0]!;
  const endpoint = endpoints.get(node) ?? '';
  const client: AgentClient = new (agentProto().Agent)(
    endpoint,
    grpc.credentials.createSsl(Buffer.from(certs.caCertPem), Buffer.from(certs.clientKeyPem), Buffer.from(certs.clientCertPem)),
  );
  const taskSamples: { tasks: number; usage: Usage }[] = [];
  const sampleAgent = async (tasks: number) => {
    const usage = await ask<Usage>(agent, { probe: 'gc' });
    taskSamples.push({ tasks, usage });
    process.stderr.write(`${agent.name} after ${String(tasks).padStart(5)} more tasks: heap used/RSS ${mb(usage.heapUsed).toFixed(1)}/${mb(usage.rss).toFixed(0)} MB\n`);
  };
  if (AGENT_TASKS > 0) await sampleAgent(0);
  for (let i = 1; i <= AGENT_TASKS; i++) {
    await warmOne(client, {
      taskId: `direct-${i}-g1-${node}-a1`,
      nodeName: node,
      images: [{ image, pullPolicy: i % 2 ? 'IF_NOT_PRESENT' : 'ALWAYS' }],
      paths: [{ path: join(root, 'weights.bin') }],
    });
    if (i % TASKS_EVERY === 0 || i === AGENT_TASKS) await sampleAgent(i);
  }
  client.close();

  const base = samples.find((s) => s.warmups === BASELINE)!;
  const last = samples.at(-1)!;
  console.log(`\nSoak: ${WARMUPS} Warmups one after another (create, Succeeded on ${AGENTS} nodes, delete) in ${last.seconds.toFixed(0)} s;`);
  console.log(`each an image (IfNotPresent and Always in turn) and a file; ${AGENTS} agent processes on one containerd;`);
  console.log(`${cpus().length} cores, ${Math.round(mb(totalmem()) / 1024)} GiB; heap used after a forced GC / RSS, MB`);
  console.log(`Warmups | ${processes.map((p) => p.name).join(' | ')}`);
  for (const s of samples) console.log(`${String(s.warmups).padStart(7)} | ${s.usage.map((u) => `${mb(u.heapUsed).toFixed(1)} / ${mb(u.rss).toFixed(0)}`).join(' | ')}`);
  console.log(`\ngrowth from Warmup ${BASELINE} to ${last.warmups} (targets: heap used < ${HEAP_TARGET * 100}%, RSS < ${RSS_TARGET * 100}%):`);
  for (const [i, p] of processes.entries()) {
    const heap = pct(base.usage[i]!.heapUsed, last.usage[i]!.heapUsed);
    const rss = pct(base.usage[i]!.rss, last.usage[i]!.rss);
    const perWarmup = (last.usage[i]!.heapUsed - base.usage[i]!.heapUsed) / Math.max(1, last.warmups - base.warmups);
    console.log(
      `  ${p.name.padEnd(14)} heap used ${(heap * 100).toFixed(1).padStart(5)}% ${heap < HEAP_TARGET ? 'ok' : 'OVER'}   RSS ${(rss * 100).toFixed(1).padStart(5)}% ${rss < RSS_TARGET ? 'ok' : 'OVER'}   (${perWarmup.toFixed(0)} bytes of heap per Warmup)`,
    );
  }
  console.log('  (an agent remembers each finished task, about 1.2 KB, up to --task-retention-count, default 1,000: its heap grows by that much, then stops)');
  if (QUICK || last.warmups - base.warmups < 1000) console.log(`  (${last.warmups - base.warmups} Warmups after the baseline, not 1,000: the targets are for the full run)`);
  if (taskSamples.length > 1) {
    console.log(`\n${agent.name} alone, ${AGENT_TASKS} more tasks straight over gRPC (same task, one after another); heap used after a forced GC / RSS, MB`);
    console.log(`  tasks | ${taskSamples.map((t) => t.tasks).join(' | ')}`);
    console.log(`   heap | ${taskSamples.map((t) => mb(t.usage.heapUsed).toFixed(1)).join(' | ')}`);
    console.log(`    RSS | ${taskSamples.map((t) => mb(t.usage.rss).toFixed(0)).join(' | ')}`);
    const first = taskSamples[0]!.usage;
    const end = taskSamples.at(-1)!.usage;
    const heap = pct(first.heapUsed, end.heapUsed);
    const rss = pct(first.rss, end.rss);
    console.log(`  growth over the ${AGENT_TASKS} tasks: heap used ${(heap * 100).toFixed(1)}% ${heap < HEAP_TARGET ? 'ok' : 'OVER'}, RSS ${(rss * 100).toFixed(1)}% ${rss < RSS_TARGET ? 'ok' : 'OVER'}`);
  }
  for (const [i, p] of processes.entries()) {
    if (!baselineFiles[i] || !finalFiles[i]) continue;
    console.log(`\n${p.name}: objects allocated after Warmup ${BASELINE} and alive at the end`);
    console.log(await compareSnapshots(baselineFiles[i], finalFiles[i], { top: 15, chains: 3 }));
  }
} finally {
  stopping = true;
  await Promise.allSettled(processes.map((p) => stopMeasured(p)));
  await Promise.allSettled([containerd.stop(), registry.stop()]);
  await kube.stop();
  await rm(dir, { recursive: true, force: true });
}
