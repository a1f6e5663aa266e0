// A real Prometheus (Debian's `prometheus`, hack/install-deps.sh) on loopback for tests: its own temp
// directory for config and storage, a free port, a short scrape interval, and discovery of the
// agents from a (test or real) API server through a kubeconfig file.
//
//   const prom = await startPrometheus({ kubeconfig: kube.kubeconfigPath, namespace: 'stoker-system',
//     staticTargets: { 'stoker-controller': [`127.0.0.1:${controller.httpPort}`] } });
//   await prom.waitForTargets('stoker-agent', 2);
//   const series = await prom.query('sum(up{job="stoker-agent"})');
//   await prom.stop();
//
// The agents are found as Kubernetes finds them: the EndpointSlices of their metrics Service
// (stoker-agent-metrics, port http-metrics), scraped as job "stoker-agent", the job the alerts
// (deploy/prometheus/stoker-rules.yaml) and the dashboard (deploy/grafana/stoker.json) name.
// Debian's prometheus is built without kubernetes_sd_configs, so the slices reach it through
// http_sd_configs: a small server here lists them from the API server at every refresh and answers
// with the targets and the __meta_kubernetes_endpointslice_* labels that Prometheus's own
// `role: endpointslice` discovery gives, so the relabelling below is the one an upstream
// Prometheus would use.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './ports.js';
import { REPO_ROOT } from './proc.js';

/** Every PromQL expression of the Grafana dashboard deploy/grafana/stoker.json, with its panel's title. */
export async function dashboardExpressions(): Promise<{ panel: string; expr: string }[]> {
  const dashboard = JSON.parse(await readFile(join(REPO_ROOT, 'deploy', 'grafana', 'stoker.json'), 'utf8')) as { panels: { title: string; targets?: { expr: string }[] }[] };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
}

export interface PrometheusOptions {
  /** Kubeconfig file of the API server whose EndpointSlices name the agents; without it, only staticTargets. */
  kubeconfig?: string;
  /** Namespace of the agents' metrics Service. */
  namespace?: string;
  /** The agents' metrics Service, whose EndpointSlices name the targets; default stoker-agent-metrics. */
  agentMetricsService?: string;
  /**
   * Scrape every discovered agent at this host instead of the endpoint's address, with the
   * endpoint's port: for agents that run in the test process on loopback, where the EndpointSlice
   * carries an address the API server accepts. Unset for real pods.
   */
  agentHost?: string;
  /** More jobs, each a list of host:port targets, e.g. { 'stoker-controller': ['127.0.0.1:8080'] }. */
  staticTargets?: Record<string, string[]>;
  /** Rule files to load (absolute paths). */
  ruleFiles?: string[];
  /** Scrape and rule evaluation interval; default 1s. */
  interval?: string;
}

export interface PromSample {
  metric: Record<string, string>;
  /** [unix seconds, value as Prometheus prints it]. */
  value: [number, string];
}

export interface PromTarget {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}

export interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

export interface Prometheus {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** GET /api/v1/query: an instant query now; rejects on an error status (a bad expression). */
  query(expr: string): Promise<PromSample[]>;
  /** The active targets (GET /api/v1/targets). */
  targets(): Promise<PromTarget[]>;
  /** The alerts of the loaded rule files that are pending or firing now (GET /api/v1/alerts). */
  alerts(): Promise<PromAlert[]>;
  /** Waits until `job` has at least `count` targets up, each scraped at least once. */
  waitForTargets(job: string, count: number, timeoutMs?: number): Promise<PromTarget[]>;
  /** Stops Prometheus and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

interface ApiAnswer<T> {
  status: 'success' | 'error';
  data: T;
  errorType?: string;
  error?: string;
}

type TargetGroup = { targets: string[]; labels: Record<string, string> };

/** The EndpointSlices of `service` as Prometheus's endpointslice discovery describes them. */
async function endpointSliceTargets(kc: KubeConfig, namespace: string | undefined, service: string): Promise<TargetGroup[]> {
  const api = kc.makeApiClient(DiscoveryV1Api);
  const labelSelector = `kubernetes.io/service-name=${service}`;
  const list = namespace !== undefined ? await api.listNamespacedEndpointSlice({ namespace, labelSelector }) : await api.listEndpointSliceForAllNamespaces({ labelSelector });
  const groups: TargetGroup[] = [];
  for (const slice of list.items) {
    for (const port of slice.ports ?? []) {
      for (const ep of slice.endpoints) {
        for (const address of ep.addresses) {
          const host = address.includes(':') ? `[${address}]` : address;
          groups.push({
            targets: [`${host}:${port.port ?? 0}`],
            labels: {
              __meta_kubernetes_namespace: slice.metadata?.namespace ?? '',
              __meta_kubernetes_endpointslice_name: slice.metadata?.name ?? '',
              __meta_kubernetes_endpointslice_label_kubernetes_io_service_name: service,
              __meta_kubernetes_endpointslice_address_type: slice.addressType,
              __meta_kubernetes_endpointslice_address_target_kind: ep.targetRef?.kind ?? '',
              __meta_kubernetes_endpointslice_address_target_name: ep.targetRef?.name ?? '',
              __meta_kubernetes_endpointslice_endpoint_conditions_ready: String(ep.conditions?.ready ?? false),
              __meta_kubernetes_endpointslice_port: String(port.port ?? 0),
              __meta_kubernetes_endpointslice_port_name: port.name ?? '',
              __meta_kubernetes_endpointslice_port_protocol: port.protocol ?? 'TCP',
              ...(ep.nodeName ? { __meta_kubernetes_endpointslice_endpoint_node_name: ep.nodeName } : {}),
            },
          });
        }
      }
    }
  }
  return groups;
}

/** Serves the agents' EndpointSlices to Prometheus's http_sd_configs, read from the API server at each request. */
async function startDiscovery(kubeconfig: string, namespace: string | undefined, service: string): Promise<{ url: string; close(): Promise<void> }> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const server: Server = createServer((_req, res) => {
    endpointSliceTargets(kc, namespace, service).then(
      (groups) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(groups));
      },
      (err: unknown) => {
        res.writeHead(500);
        res.end(String(err));
      },
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/targets`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

function scrapeConfig(opts: PrometheusOptions, interval: string, discoveryUrl: string | undefined): object {
  const jobs: object[] = [];
  if (discoveryUrl !== undefined) {
    const service = opts.agentMetricsService ?? 'stoker-agent-metrics';
    jobs.push({
      job_name: 'stoker-agent',
      http_sd_configs: [{ url: discoveryUrl, refresh_interval: interval }],
      relabel_configs: [
        {
          source_labels: ['__meta_kubernetes_endpointslice_label_kubernetes_io_service_name', '__meta_kubernetes_endpointslice_port_name'],
          regex: `${service};http-metrics`,
          action: 'keep',
        },
        ...(opts.agentHost !== undefined
          ? [{ source_labels: ['__meta_kubernetes_endpointslice_port'], target_label: '__address__', replacement: `${opts.agentHost}:$1` }]
          : []),
        { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
        { source_labels: ['__meta_kubernetes_endpointslice_address_target_name'], target_label: 'pod' },
        { source_labels: ['__meta_kubernetes_endpointslice_endpoint_node_name'], target_label: 'node' },
      ],
    });
  }
  for (const [job, targets] of Object.entries(opts.staticTargets ?? {})) {
    jobs.push({ job_name: job, static_configs: [{ targets }] });
  }
  return {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    ...(opts.ruleFiles ? { rule_files: opts.ruleFiles } : {}),
    scrape_configs: jobs,
  };
}

/** Starts Debian's prometheus on a free loopback port and waits until it is ready. */
export async function startPrometheus(opts: PrometheusOptions = {}): Promise<Prometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'stoker-prometheus-'));
  const interval = opts.interval ?? '1s';
  let child: ChildProcess | undefined;
  let discovery: { url: string; close(): Promise<void> } | undefined;
  let stderr = '';
  const killOnExit = (): void => {
    child?.kill('SIGKILL');
  };
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', killOnExit);
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await discovery?.close();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const config = join(dir, 'prometheus.yml');
    if (opts.kubeconfig !== undefined) discovery = await startDiscovery(opts.kubeconfig, opts.namespace, opts.agentMetricsService ?? 'stoker-agent-metrics');
    await writeFile(config, stringify(scrapeConfig(opts, interval, discovery?.url)));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    child = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    process.on('exit', killOnExit);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-8192);
    });
    const spawned = child;
    const exitedEarly = new Promise<never>((_, reject) => {
      spawned.once('error', reject);
      spawned.once('exit', (code, signal) => reject(new Error(`prometheus exited (${code ?? signal}) before it was ready: ${stderr}`)));
    });
    exitedEarly.catch(() => undefined);

    const api = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${url}${path}`);
      const body = (await res.json()) as ApiAnswer<T>;
      if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.errorType ?? res.status}: ${body.error ?? ''}`);
      return body.data;
    };
    const ready = async (): Promise<void> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          if ((await fetch(`${url}/-/ready`)).ok) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`prometheus did not become ready within 30 s: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await Promise.race([ready(), exitedEarly]);

    const targets = async (): Promise<PromTarget[]> => (await api<{ activeTargets: PromTarget[] }>('/api/v1/targets?state=active')).activeTargets;
    return {
      url,
      async query(expr) {
        const data = await api<{ resultType: string; result: PromSample[] | [number, string] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
        if (data.resultType === 'scalar') return [{ metric: {}, value: data.result as [number, string] }];
        return data.result as PromSample[];
      },
      targets,
      async alerts() {
        return (await api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts;
      },
      async waitForTargets(job, count, timeoutMs = 60_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const up = (await targets()).filter((t) => t.labels.job === job && t.health === 'up');
          if (up.length >= count) return up;
          if (Date.now() > deadline) {
            const all = (await targets()).filter((t) => t.labels.job === job).map((t) => `${t.scrapeUrl} ${t.health} ${t.lastError}`);
            throw new Error(`prometheus: job ${job} has ${up.length} of ${count} targets up: ${all.join('; ') || 'none discovered'} ${stderr}`);
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
