// Benchmark: keeping 200 simulated nodes warm at steady state.
//
//   npx tsx test/bench/keepwarm.ts [--nodes 200] [--rounds 3] [--recheck 5]
//
// The fleet of test/bench/fleet.ts (a real kube-apiserver, one containerd with a small image
// present, one real agent per simulated node in this process, the built controller CLI in its own
// process). One keepWarm Warmup over every node (image present, policy.recheckSeconds 5); once it
// is Warm=True and one more recheck period has passed, for --rounds recheck periods:
// - the controller's CPU time (utime + stime of its process, /proc/PID/stat) per period;
// - the agents' CPU time per period: this process's (all agents run here; the benchmark itself
//   only holds two watches and reads metrics once a period);
// - the checks the agents answered (stoker_tasks_total over all agents), to show a round happened;
// - API writes: the controller's stoker_status_writes_total, and, audited from the API server,
//   every change of the Warmup (watch) and every Node change (watch), per minute.
// Targets (issue 10): no status or label write while nothing changes; a recheck round under 1 s of
// controller CPU for 200 nodes.
import { CoreV1Api, Watch, type V1Node } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type Warmup } from '../../controller/api/types.js';
import { waitFor, warmupApi } from '../support/sim-cluster.js';
import { cpuSeconds, median, startFleet } from './fleet.js';
import { flag } from './args.js';

const NODES = Number(flag('--nodes') ?? 200);
const ROUNDS = Math.max(1, Number(flag('--rounds') ?? 3));
const RECHECK_S = Number(flag('--recheck') ?? 5);
const NS = 'default';
const NAME = 'keepwarm';
const CPU_TARGET_S = 1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ownCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const fleet = await startFleet({ nodes: NODES, image: 'bench/keepwarm', tmpPrefix: 'stoker-bench-keepwarm-' });
const stopWatches: (() => void)[] = [];
let stopping = false;
try {
  const { kube, image, nodes, controllerPid: pid } = fleet;
  const api = warmupApi(kube.kubeConfig);
  const checks = async () => (await Promise.all(nodes.map((n) => n.metric('stoker_tasks_total')))).reduce((a, b) => a + b, 0);

  const t0 = performance.now();
  await api.create(NS, NAME, { images: [{ image }], keepWarm: true, policy: { recheckSeconds: RECHECK_S } });
  await waitFor(`Warmup ${NAME} to be Warm`, async () => {
    const w = await api.get(NS, NAME);
    return w?.status?.conditions?.some((c) => c.type === 'Warm' && c.status === 'True') ? w : undefined;
  }, 300_000, 100);
  const warmSeconds = (performance.now() - t0) / 1000;
  process.stderr.write(`Warm=True over ${NODES} nodes after ${warmSeconds.toFixed(2)} s; settling one recheck period\n`);
  await sleep(RECHECK_S * 1000);

  // Audit: every write the API server sees to the Warmup and to Nodes from here on.
  let warmupChanges = 0;
  let nodeChanges = 0;
  let labelChanges = 0;
  const labels = new Map<string, string>();
  const labelsOf = (n: V1Node) => JSON.stringify(Object.entries(n.metadata?.labels ?? {}).filter(([k]) => k.startsWith('warm.stoker.io/')).sort());
  const watch = new Watch(kube.kubeConfig);
  const onError = (err: unknown) => {
    if (err && !stopping) process.stderr.write(`watch ended: ${err instanceof Error ? err.message : JSON.stringify(err)}\n`);
  };
  const base = `/apis/${GROUP}/${VERSION}/namespaces/${NS}/${PLURAL}`;
  const w0 = await api.get(NS, NAME);
  const warmupReq = await watch.watch(base, { fieldSelector: `metadata.name=${NAME}`, resourceVersion: w0?.metadata?.resourceVersion ?? '' }, (type: string, _obj: Warmup) => {
    if (type === 'MODIFIED') warmupChanges++;
  }, onError);
  stopWatches.push(() => warmupReq.abort());
  const list = await kube.kubeConfig.makeApiClient(CoreV1Api).listNode();
  for (const n of list.items) labels.set(n.metadata?.name ?? '', labelsOf(n));
  const nodeReq = await watch.watch('/api/v1/nodes', { resourceVersion: list.metadata?.resourceVersion ?? '' }, (_type: string, n: V1Node) => {
    const now = labelsOf(n);
    nodeChanges++;
    if (labels.get(n.metadata?.name ?? '') !== now) labelChanges++;
    labels.set(n.metadata?.name ?? '', now);
  }, onError);
  stopWatches.push(() => nodeReq.abort());
  const warmLabelled = [...labels.values()].filter((l) => l !== '[]').length;

  type Sample = { controller: number; agents: number; checks: number; statusWrites: number };
  const samples: Sample[] = [];
  const start = { controller: cpuSeconds(pid), agents: ownCpuSeconds(), checks: await checks(), statusWrites: await fleet.counter('stoker_status_writes_total'), at: performance.now() };
  let prev = start;
  for (let r = 0; r < ROUNDS; r++) {
    await sleep(RECHECK_S * 1000 - (performance.now() - prev.at));
    const cur = { controller: cpuSeconds(pid), agents: ownCpuSeconds(), checks: await checks(), statusWrites: await fleet.counter('stoker_status_writes_total'), at: performance.now() };
    const s = { controller: cur.controller - prev.controller, agents: cur.agents - prev.agents, checks: cur.checks - prev.checks, statusWrites: cur.statusWrites - prev.statusWrites };
    samples.push(s);
    process.stderr.write(`period ${r + 1}: controller CPU ${s.controller.toFixed(2)} s, agents' process CPU ${s.agents.toFixed(2)} s, ${s.checks} checks, ${s.statusWrites} status writes\n`);
    prev = cur;
  }
  const minutes = (prev.at - start.at) / 60_000;
  await sleep(500); // let the watches deliver what the last period wrote
  const statusWrites = prev.statusWrites - start.statusWrites;
  const warmupNow = await api.get(NS, NAME);
  const stillWarm = warmupNow?.status?.conditions?.some((c) => c.type === 'Warm' && c.status === 'True') ?? false;

  // Each node is checked again RECHECK_S after its last check ended, so a round (one check of
  // every node) takes a little longer than a period: CPU per round is CPU per period scaled to
  // NODES checks.
  const perRound = (cpu: number, s: Sample) => (s.checks > 0 ? (cpu * NODES) / s.checks : cpu);
  const controllerCpu = median(samples.map((s) => perRound(s.controller, s)));
  const agentsCpu = median(samples.map((s) => perRound(s.agents, s)));
  const checksPerRound = median(samples.map((s) => s.checks));
  const ok = (b: boolean) => (b ? 'ok' : 'MISSED');
  console.log(`\nKeeping ${NODES} simulated nodes warm: ${ROUNDS} recheck periods of ${RECHECK_S} s at steady state (medians; CPU per round = per ${NODES} checks)`);
  console.log(`time to Warm=True: ${warmSeconds.toFixed(2)} s; nodes labelled warm at the start: ${warmLabelled}/${NODES}; still Warm=True at the end: ${stillWarm}`);
  console.log(`checks answered per period: ${checksPerRound} (of ${NODES} nodes)`);
  console.log(`controller CPU per recheck round: ${controllerCpu.toFixed(3)} s (target < ${CPU_TARGET_S} s for 200 nodes) ${ok(controllerCpu < CPU_TARGET_S)}; per period ${median(samples.map((s) => s.controller)).toFixed(3)} s`);
  console.log(`agents' CPU per recheck round (one process, ${NODES} agents): ${agentsCpu.toFixed(3)} s`);
  console.log(`status writes: ${statusWrites} (${(statusWrites / minutes).toFixed(1)}/min; target 0) ${ok(statusWrites === 0)}`);
  console.log(`Warmup changes seen by a watch: ${warmupChanges} (${(warmupChanges / minutes).toFixed(1)}/min; target 0) ${ok(warmupChanges === 0)}`);
  console.log(`Node changes seen by a watch: ${nodeChanges}, of which warm-label changes ${labelChanges} (${(labelChanges / minutes).toFixed(1)}/min; target 0) ${ok(labelChanges === 0)}`);
  console.log(`API writes per minute at steady state (Warmup + Node): ${((warmupChanges + nodeChanges) / minutes).toFixed(1)}`);
  await api.delete(NS, NAME);
} finally {
  stopping = true;
  for (const stop of stopWatches) stop();
  await fleet.stop();
}
