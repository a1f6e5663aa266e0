// Benchmark: the controller's fan-out over 50, 100 and 200 simulated nodes (or --nodes N: 200
// and N, e.g. 1000).
//
//   npx tsx test/bench/controller.ts [--rounds N] [--sizes 50,100,200 | --nodes 1000] [--parallelism P]
//
// The fleet of test/bench/fleet.ts: a real kube-apiserver, one containerd with a small image already
// present, and one real agent per simulated node (agent/run.ts startAgent, all in this process,
// each with its own node name, port and EndpointSlice, all sharing the containerd). The
// controller is the built CLI (`node dist/bin/stoker.cjs controller`) as its own process, so its
// RSS (VmRSS from /proc) is its own.
//
// Each round, for each size, interleaved (order alternating between rounds):
// - Stoker: create a Warmup over the N nodes, time from create until the API server reports
//   Succeeded, and count the controller's status writes (stoker_status_writes_total) for it;
// - the plain tool: the same N Warm calls straight to the agents over mutual TLS with the same
//   parallelism, no Kubernetes at all (the floor any controller stands on).
// Prints medians over the rounds: Stoker's time, the plain tool's, their difference (the
// controller's overhead; target under 10 s), the ratio, status writes per Warmup (checked in every
// round against at most one a second of its run plus the final write), and the controller's peak
// RSS (targets: 120 MB at 200 nodes, 150 MB at 1,000). Also the controller's RSS once it sees
// every agent, before the first Warmup, and this process's (all the simulated agents').
import * as grpc from '@grpc/grpc-js';
import pLimit from 'p-limit';
import { agentProto, type AgentClient, type WarmEvent__Output } from '../../proto/agent.js';
import { waitFor, warmupApi } from '../support/sim-cluster.js';
import { median, rssMb, startFleet } from './fleet.js';
import { flag } from './args.js';

const ROUNDS = Math.max(5, Number(flag('--rounds') ?? 5));
const NODES = flag('--nodes');
const SIZES = (flag('--sizes') ?? (NODES ? `200,${NODES}` : '50,100,200')).split(',').map(Number);
const PARALLELISM = Number(flag('--parallelism') ?? 20);
const MAX_NODES = Math.max(...SIZES);
const NS = 'default';
const OVERHEAD_TARGET_S = 10;
/** Controller RSS targets: up to 200 nodes, and up to 1,000. */
const rssTargetMb = (nodes: number) => (nodes <= 200 ? 120 : 150);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One Warm call to its result; rejects unless it succeeded. */
function warmOne(client: AgentClient, taskId: string, nodeName: string, image: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.warm({ taskId, nodeName, images: [{ image, pullPolicy: 'IF_NOT_PRESENT' }] });
    let ok = false;
    call.on('data', (e: WarmEvent__Output) => {
      if (e.result) ok = e.result.succeeded;
    });
    call.on('error', reject);
    call.on('end', () => (ok ? resolve() : reject(new Error(`task ${taskId} on ${nodeName} did not succeed`))));
  });
}

const fleet = await startFleet({
  nodes: MAX_NODES,
  image: 'bench/fanout',
  labels: (i) => Object.fromEntries(SIZES.filter((s) => s < MAX_NODES).map((s) => [`bench.stoker.io/first-${s}`, String(i < s)])),
  tmpPrefix: 'stoker-bench-controller-',
});
try {
  const { kube, certs, image, nodes, controllerPid: pid } = fleet;
  const idleRss = rssMb(pid);
  const agentsRss = rssMb(process.pid);
  process.stderr.write(`controller RSS with ${MAX_NODES} live agents, before any Warmup: ${idleRss.toFixed(0)} MB; this process (the agents): ${agentsRss.toFixed(0)} MB\n`);
  const api = warmupApi(kube.kubeConfig);
  const clients = new Map<string, AgentClient>();
  const Agent = agentProto().Agent;
  const creds = grpc.credentials.createSsl(Buffer.from(certs.caCertPem), Buffer.from(certs.clientKeyPem), Buffer.from(certs.clientCertPem));
  for (const n of nodes) clients.set(n.name, new Agent(n.agent!.grpcAddress, creds, { 'grpc.ssl_target_name_override': 'stoker-agent' }));

  const selectorFor = (size: number) =>
    size === MAX_NODES ? undefined : { selector: { matchLabels: { [`bench.stoker.io/first-${size}`]: 'true' } } };

  type Sample = { stoker: number; plain: number; writes: number; rss: number };
  const results = new Map<number, Sample[]>(SIZES.map((s) => [s, []]));
  let seq = 0;

  const runStoker = async (size: number): Promise<Omit<Sample, 'plain'>> => {
    const name = `fanout-${size}-${++seq}`;
    const writesBefore = await fleet.counter('stoker_status_writes_total');
    let peak = rssMb(pid);
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 50);
    const t0 = performance.now();
    try {
      const sel = selectorFor(size);
      await api.create(NS, name, { images: [{ image }], policy: { parallelism: PARALLELISM }, ...(sel ? { nodes: sel } : {}) });
      const w = await waitFor(`Warmup ${name}`, async () => {
        const cur = await api.get(NS, name);
        return cur?.status?.phase === 'Succeeded' || cur?.status?.phase === 'Failed' ? cur : undefined;
      }, 300_000, 20);
      if (w.status?.phase !== 'Succeeded' || w.status.succeededNodes !== size) {
        throw new Error(`Warmup ${name} ended ${w.status?.phase} with ${w.status?.succeededNodes}/${size} nodes: ${JSON.stringify(w.status?.failedNodeList?.slice(0, 3))}`);
      }
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - t0) / 1000;
    await sleep(1500); // let a trailing write land before counting
    const writes = (await fleet.counter('stoker_status_writes_total')) - writesBefore;
    await api.delete(NS, name);
    return { stoker: seconds, writes, rss: Math.max(peak, rssMb(pid)) };
  };

  const runPlain = async (size: number): Promise<number> => {
    const round = ++seq;
    const lim = pLimit(PARALLELISM);
    const t0 = performance.now();
    await Promise.all(nodes.slice(0, size).map((n) => lim(() => warmOne(clients.get(n.name)!, `plain-${round}-${n.name}`, n.name, image))));
    return (performance.now() - t0) / 1000;
  };

  // A warm-up round so that first-use costs (TLS handshakes, JIT) are not in the first sample.
  await runStoker(SIZES[0] ?? 50);
  await runPlain(SIZES[0] ?? 50);

  for (let r = 0; r < ROUNDS; r++) {
    for (const size of SIZES) {
      let s: Omit<Sample, 'plain'>;
      let plain: number;
      if (r % 2 === 0) {
        s = await runStoker(size);
        plain = await runPlain(size);
      } else {
        plain = await runPlain(size);
        s = await runStoker(size);
      }
      results.get(size)!.push({ ...s, plain });
      process.stderr.write(`round ${r + 1} ${size} nodes: stoker ${s.stoker.toFixed(2)} s, plain ${plain.toFixed(2)} s, ${s.writes} status writes, controller RSS ${s.rss.toFixed(0)} MB\n`);
    }
  }
  for (const c of clients.values()) c.close();
  // Where the controller's memory is, after the rounds: V8's heap (JavaScript objects), memory
  // outside it that V8 knows of (buffers), and the rest of the RSS (native: code, OpenSSL, gRPC's
  // and Node's own allocations, and what the allocator keeps).
  const mb = async (name: string) => (await fleet.counter(name)) / 1e6;
  const [heapTotal, heapUsed, external] = await Promise.all([
    mb('stoker_controller_nodejs_heap_size_total_bytes'),
    mb('stoker_controller_nodejs_heap_size_used_bytes'),
    mb('stoker_controller_nodejs_external_memory_bytes'),
  ]);
  const rssNow = rssMb(pid);
  const split = `controller memory after the rounds: RSS ${rssNow.toFixed(0)} MB = V8 heap ${heapTotal.toFixed(0)} MB (${heapUsed.toFixed(0)} MB used) + external ${external.toFixed(0)} MB + other ${(rssNow - heapTotal - external).toFixed(0)} MB`;

  console.log(`\nController fan-out: medians of ${ROUNDS} rounds, parallelism ${PARALLELISM}, image already present on every node`);
  console.log(`controller RSS with ${MAX_NODES} live agents before any Warmup: ${idleRss.toFixed(0)} MB; simulated agents' process: ${agentsRss.toFixed(0)} MB`);
  console.log(split);
  console.log('nodes | Stoker create->Succeeded | plain direct fan-out | overhead (target < 10 s) | ratio | status writes (bound: 1/s + final) | controller RSS peak (target)');
  for (const size of SIZES) {
    const xs = results.get(size)!;
    const stoker = median(xs.map((x) => x.stoker));
    const plain = median(xs.map((x) => x.plain));
    const writes = median(xs.map((x) => x.writes));
    // At most one write per started second of the run, plus the final one.
    const withinBound = xs.every((x) => x.writes <= Math.ceil(x.stoker) + 1);
    const rss = median(xs.map((x) => x.rss));
    const overhead = stoker - plain;
    console.log(
      `${String(size).padStart(5)} | ${stoker.toFixed(2).padStart(8)} s | ${plain.toFixed(2).padStart(8)} s | ${overhead.toFixed(2).padStart(6)} s ${overhead < OVERHEAD_TARGET_S ? 'ok' : 'OVER'} | ${(stoker / plain).toFixed(1).padStart(5)}x | ${writes.toFixed(0).padStart(3)} ${withinBound ? 'ok' : 'OVER'} | ${rss.toFixed(0)} MB (<= ${rssTargetMb(size)} MB ${rss <= rssTargetMb(size) ? 'ok' : 'OVER'})`,
    );
  }
} finally {
  await fleet.stop();
}
