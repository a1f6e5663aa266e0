// Stoker's alerts and dashboard against a real Prometheus: promtool checks the rule file and runs
// its unit tests, the chart carries the same rules, and Debian's prometheus, finding the agents
// through the EndpointSlices of their metrics Service on a real kube-apiserver
// (test/support/prometheus.ts) and scraping the real controller, answers every expression of
// deploy/grafana/stoker.json with data and every alert expression without error after real
// Warmups have run.
import { DiscoveryV1Api } from '@kubernetes/client-node';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { RunningController } from '../controller/main.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { agentAddress, agentEndpointSlice } from './support/endpoint-slices.js';
import { pushRandomImage } from './support/images.js';
import { startKube, type Kube } from './support/kube.js';
import { REPO_ROOT, run } from './support/proc.js';
import { dashboardExpressions, startPrometheus, type Prometheus } from './support/prometheus.js';
import { startRegistry, type Registry } from './support/registry.js';
import { ensureNamespace, rootFor, startSimNode, startTestController, waitFor, warmupApi, type SimNode } from './support/sim-cluster.js';

const NS = 'default';
const STOKER_NS = 'stoker-system';
const RULES = join(REPO_ROOT, 'deploy', 'prometheus', 'stoker-rules.yaml');
const RULE_TESTS = join(REPO_ROOT, 'deploy', 'prometheus', 'stoker-rules.test.yaml');

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[];
}

async function ruleFile(path: string): Promise<RuleFile> {
  return parse(await readFile(path, 'utf8')) as RuleFile;
}

describe('alert rules', () => {
  it('pass promtool check rules and promtool test rules', async () => {
    const check = await run('promtool', ['check', 'rules', RULES]);
    expect(check.stdout).toContain('SUCCESS: 4 rules found');
    const tests = await run('promtool', ['test', 'rules', RULE_TESTS]);
    expect(tests.stdout).toContain('SUCCESS');
    const alerts = (await ruleFile(RULES)).groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts).toEqual(['StokerAgentDown', 'StokerRuntimeNotReady', 'StokerWarmupFailed', 'StokerKeepWarmDegraded']);
  });

  it('are tested firing and not firing, every one of them', async () => {
    const tested = parse(await readFile(RULE_TESTS, 'utf8')) as { tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] };
    const cases = tested.tests.flatMap((t) => t.alert_rule_test);
    for (const alert of (await ruleFile(RULES)).groups.flatMap((g) => g.rules.map((r) => r.alert))) {
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0), `${alert} fires`).toBe(true);
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0), `${alert} stays quiet`).toBe(true);
    }
  });

  it('fail promtool test rules when an alert does not fire as its test expects', async () => {
    // The tests are not vacuous: a rule that never fires fails them.
    const dir = await mkdtemp(join(tmpdir(), 'stoker-rules-'));
    try {
      const broken = (await readFile(RULES, 'utf8')).replace('expr: up{job="stoker-agent"} == 0', 'expr: up{job="stoker-agent"} == 2');
      await writeFile(join(dir, 'stoker-rules.yaml'), broken);
      await writeFile(join(dir, 'stoker-rules.test.yaml'), await readFile(RULE_TESTS, 'utf8'));
      await expect(run('promtool', ['test', 'rules', join(dir, 'stoker-rules.test.yaml')])).rejects.toThrow('StokerAgentDown');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('are the chart\'s PrometheusRule groups, word for word', async () => {
    const chartRules = await ruleFile(join(REPO_ROOT, 'deploy', 'helm', 'stoker', 'files', 'stoker-rules.yaml'));
    expect(chartRules).toEqual(await ruleFile(RULES));
  });
});

describe('a real Prometheus scraping agents found through EndpointSlices, and the controller', () => {
  let dir: string;
  let kube: Kube;
  let certs: Certificates;
  let registry: Registry;
  let controller: RunningController;
  let prom: Prometheus | undefined;
  const containerds: Containerd[] = [];
  const nodes: SimNode[] = [];

  /** Publishes the agent's /metrics as Kubernetes would for the chart's stoker-agent-metrics Service. */
  async function publishMetricsEndpoint(node: SimNode): Promise<void> {
    const slice = agentEndpointSlice({ namespace: STOKER_NS, node: node.name, service: 'stoker-agent-metrics', address: agentAddress(), port: node.agent?.httpPort ?? 0 });
    slice.ports = [{ name: 'http-metrics', port: node.agent?.httpPort ?? 0, protocol: 'TCP' }];
    await kube.kubeConfig.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({ namespace: STOKER_NS, body: slice });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-prom-'));
    [kube, certs, registry] = await Promise.all([startKube(), makeCertificates(join(dir, 'certs')), startRegistry()]);
    await ensureNamespace(kube.kubeConfig, STOKER_NS);
    for (const [i, name] of ['node-a', 'node-b'].entries()) {
      const containerd = await startContainerd();
      containerds.push(containerd);
      await registry.addTo(containerd);
      // One agent with the Node.js process metrics the dashboard's memory panel shows.
      const node = await startSimNode({ kc: kube.kubeConfig, certs, name, containerd, namespace: STOKER_NS, allowedRoot: rootFor(dir, name), processMetrics: i === 0 });
      nodes.push(node);
      await publishMetricsEndpoint(node);
    }
    controller = await startTestController(kube, certs, STOKER_NS);
  });

  afterAll(async () => {
    await prom?.stop();
    await controller?.stop();
    for (const n of nodes) await n.stop();
    for (const c of containerds) await c.stop();
    await registry?.stop();
    await kube?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers every dashboard expression with data, and every alert expression without error', async () => {
    prom = await startPrometheus({
      kubeconfig: kube.kubeconfigPath,
      namespace: STOKER_NS,
      // The agents run in this process on loopback; their slices carry the run's own address.
      agentHost: '127.0.0.1',
      staticTargets: { 'stoker-controller': [`127.0.0.1:${controller.httpAddress.port}`] },
      ruleFiles: [RULES],
    });
    const agents = await prom.waitForTargets('stoker-agent', 2);
    expect(agents.map((t) => t.labels.pod).sort()).toEqual(['stoker-agent-metrics-node-a', 'stoker-agent-metrics-node-b']);
    await prom.waitForTargets('stoker-controller', 1);

    // Real work: an image and a file on both nodes, and a keepWarm Warmup of the file.
    const image = await pushRandomImage(registry, 'prom/model', { layers: 2, layerSizeBytes: 512 * 1024 });
    for (const n of nodes) {
      const models = join(rootFor(dir, n.name), 'models');
      await mkdir(models, { recursive: true });
      await writeFile(join(models, 'weights.bin'), Buffer.alloc(1 << 20, 7));
    }
    const api = warmupApi(kube.kubeConfig);
    await api.create(NS, 'once', { images: [{ image }], paths: [{ path: join(rootFor(dir, 'node-a'), 'models') }], nodes: { names: ['node-a'] } });
    await api.create(NS, 'keep', { paths: [{ path: join(rootFor(dir, 'node-b'), 'models') }], keepWarm: true, policy: { recheckSeconds: 5 }, nodes: { names: ['node-b'] } });
    expect((await api.finished(NS, 'once')).status?.phase).toBe('Succeeded');
    await waitFor('Warmup keep to be Warm', async () => ((await api.get(NS, 'keep'))?.status?.conditions?.some((c) => c.type === 'Warm' && c.status === 'True') ? true : undefined), 60_000);

    // What Prometheus scraped after the work: enough samples of the new counters for rate().
    const p = prom;
    const samples = (expr: string, n: number) => async (): Promise<true | undefined> => {
      const [s] = await p.query(`min(count_over_time(${expr}[1m]))`);
      return s && Number(s.value[1]) >= n ? true : undefined;
    };
    await waitFor('three scrapes of the agents\' pull counter after the pull', samples('stoker_image_pulls_total{job="stoker-agent"}', 3), 30_000, 250);
    await waitFor('the Warmups in the controller\'s metrics', async () => {
      const s = await p.query('stoker_warmup_warm{job="stoker-controller"} == 1');
      return s.length > 0 ? true : undefined;
    }, 30_000, 250);
    await waitFor('three scrapes of the controller\'s node task counter', samples('stoker_node_tasks_total{job="stoker-controller"}', 3), 30_000, 250);

    const exprs = await dashboardExpressions();
    const empty: string[] = [];
    for (const { panel, expr } of exprs) {
      const result = await prom.query(expr); // rejects on an error status
      if (result.length === 0) empty.push(`${panel}: ${expr}`);
    }
    expect(exprs.length).toBeGreaterThanOrEqual(20);
    expect(empty).toEqual([]);

    // The numbers are the work done: 2 agents up, both runtimes ready, the pull's bytes counted.
    expect((await prom.query('sum(up{job="stoker-agent"})'))[0]?.value[1]).toBe('2');
    expect((await prom.query('sum(stoker_runtime_ready{job="stoker-agent"})'))[0]?.value[1]).toBe('2');
    expect(Number((await prom.query('sum(stoker_image_pulled_bytes_total{job="stoker-agent"})'))[0]?.value[1])).toBeGreaterThan(1 << 20);
    expect(Number((await prom.query('sum(stoker_file_bytes_read_total{job="stoker-agent"})'))[0]?.value[1])).toBeGreaterThanOrEqual(2 << 20);
    const phases = await prom.query('max by (warmup, phase) (stoker_warmup_phase{job="stoker-controller"}) == 1');
    expect(phases.map((s) => `${s.metric.warmup} ${s.metric.phase}`).sort()).toEqual(['keep Running', 'once Succeeded']);

    // Every alert expression is valid PromQL over these series; nothing is wrong, so none fires.
    const rules = await ruleFile(RULES);
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      expect(await prom.query(rule.expr), rule.alert).toEqual([]);
    }

    // An agent that stops answering is an agent down: pending at once, firing after its 5 minutes.
    await nodes[1]?.stopAgent();
    const pending = await waitFor('StokerAgentDown to be pending', async () => {
      const a = (await p.alerts()).filter((x) => x.labels.alertname === 'StokerAgentDown');
      return a.length > 0 ? a : undefined;
    }, 30_000, 250);
    expect(pending.map((a) => [a.labels.pod, a.state])).toEqual([['stoker-agent-metrics-node-b', 'pending']]);
  });
});
