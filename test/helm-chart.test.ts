// The Helm chart deploy/helm/stoker, installed with a real helm into a real kube-apiserver: every
// object passes the API server's validation, RBAC grants the controller and the agents what they
// need and no more (the agents: nothing at all; checked by the API server, and by a real `stoker
// controller` running as the chart's ServiceAccount with the chart's settings), the generated
// certificates make a working mutual-TLS pair, and an upgrade keeps them.
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { AGENT_FLAGS, resolveAgentConfig } from '../agent/config.js';
import type { Warmup } from '../controller/api/types.js';
import { CONTROLLER_FLAGS, resolveControllerConfig } from '../controller/config.js';
import { publishAgentEndpoint } from './support/endpoint-slices.js';
import { freePort } from './support/ports.js';
import { REPO_ROOT } from './support/proc.js';
import { ensureNamespace, waitFor, warmupApi } from './support/sim-cluster.js';
import { serviceAccountKubeConfig, startKube, type Kube } from './support/kube.js';

const chart = join(REPO_ROOT, 'deploy', 'helm', 'stoker');
const ns = 'stoker-system';
const controllerSA = `system:serviceaccount:${ns}:stoker-controller`;
const agentSA = `system:serviceaccount:${ns}:stoker-agent`;
const values = ['--set', 'agent.allowedRoots[0].path=/models', '--set', 'agent.allowedRoots[1].path=/data/weights'];

let kube: Kube;

beforeAll(async () => {
  // The chart brings its own copy of the CRD (crds/), so the API server starts without it.
  kube = await startKube({ installCrd: false });
});

afterAll(async () => {
  await kube?.stop();
});

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

interface Workload {
  spec: {
    template: {
      spec: {
        containers: { env?: EnvVar[] }[];
        volumes: { name: string; hostPath?: { path: string } }[];
      };
    };
  };
}

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: unknown;
}

/** What `kubectl auth can-i --as <as> ...` says. */
async function can(as: string, ...args: string[]): Promise<boolean> {
  try {
    return (await kube.kubectl(['auth', 'can-i', '--as', as, ...args])).trim() === 'yes';
  } catch {
    return false; // kubectl exits 1 for "no"
  }
}

/** A kubeconfig file for a ServiceAccount of the chart, with a token from the TokenRequest API. */
async function serviceAccountKubeconfig(dir: string, name: string): Promise<{ path: string; kc: KubeConfig }> {
  const kc = await serviceAccountKubeConfig(kube.kubeConfig, ns, name);
  const path = join(dir, `${name}.kubeconfig`);
  await writeFile(path, kc.exportConfig(), { mode: 0o600 });
  return { path, kc };
}

/** The environment a container of the rendered chart gets, as the kubelet would resolve it. */
function resolveEnv(env: EnvVar[], fields: Record<string, string>, files: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    const path = e.valueFrom?.fieldRef?.fieldPath;
    const v = path !== undefined ? fields[path] : e.value;
    if (v === undefined) throw new Error(`env ${e.name}: no value for ${path ?? 'it'}`);
    out[e.name] = files[v] ?? v;
  }
  return out;
}

async function tlsSecret(name: string): Promise<{ crt: string; key: string; ca: string }> {
  const s = await kube.kubeConfig.makeApiClient(CoreV1Api).readNamespacedSecret({ name, namespace: ns });
  const get = (k: string): string => Buffer.from(s.data?.[k] ?? '', 'base64').toString('utf8');
  return { crt: get('tls.crt'), key: get('tls.key'), ca: get('ca.crt') };
}

/** Whether a TLS handshake between the two sides completes (both sides verify the peer). */
async function handshake(
  server: { crt: string; key: string; ca: string },
  client: { crt: string; key: string; ca: string },
  servername: string,
): Promise<boolean> {
  const srv = createServer({ cert: server.crt, key: server.key, ca: server.ca, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.end('ok');
  });
  srv.on('tlsClientError', () => undefined);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const address = srv.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  try {
    const sock: TLSSocket = connect({ host: '127.0.0.1', port, servername, cert: client.crt, key: client.key, ca: client.ca });
    return await new Promise<boolean>((resolve) => {
      let data = '';
      sock.on('data', (b: Buffer) => (data += b.toString()));
      sock.on('end', () => resolve(data === 'ok'));
      sock.on('error', () => resolve(false));
      sock.on('close', () => resolve(data === 'ok'));
    });
  } finally {
    srv.close();
  }
}

describe('helm chart', () => {
  it('lints and renders every component', async () => {
    await kube.helm(['lint', '--strict', chart, ...values]);
    const out = await kube.helm(['template', 'stoker', chart, '-n', ns, '--include-crds', ...values]);
    const docs = parseAllDocuments(out)
      .map((d) => d.toJS() as Obj | null)
      .filter((d): d is Obj => d !== null);
    const kinds = docs.map((d) => `${d.kind}/${d.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        'ClusterRole/stoker-controller',
        'ClusterRoleBinding/stoker-controller',
        'CustomResourceDefinition/warmups.stoker.io',
        'DaemonSet/stoker-agent',
        'Deployment/stoker-controller',
        'PodDisruptionBudget/stoker-controller',
        'Role/stoker-controller',
        'Role/stoker-controller-secrets',
        'RoleBinding/stoker-controller',
        'RoleBinding/stoker-controller-secrets',
        'Secret/stoker-agent-tls',
        'Secret/stoker-controller-tls',
        'Service/stoker-agent',
        'Service/stoker-agent-metrics',
        'Service/stoker-controller-metrics',
        'ServiceAccount/stoker-agent',
        'ServiceAccount/stoker-controller',
      ].sort(),
    );
    const ds = docs.find((d) => d.kind === 'DaemonSet') as unknown as Workload;
    const env = ds.spec.template.spec.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === 'STOKER_ALLOWED_ROOTS')?.value).toBe('/models,/data/weights,/var/lib/kubelet/pods');
    expect(ds.spec.template.spec.volumes.map((v) => v.hostPath?.path).filter(Boolean)).toEqual([
      '/run/containerd',
      '/var/lib/containerd',
      '/models',
      '/data/weights',
      '/var/lib/kubelet/pods',
    ]);
    // The kubelet's pods directory, read-only, with the mounts of pods that start later.
    const mounts = (ds.spec.template.spec.containers[0] as { volumeMounts?: { name: string }[] }).volumeMounts ?? [];
    // The CRI socket's directory, so the socket a restarted runtime recreates is seen; the agent
    // dials the socket inside it.
    expect(ds.spec.template.spec.volumes.find((v) => v.name === 'cri')).toEqual({ name: 'cri', hostPath: { path: '/run/containerd', type: 'Directory' } });
    expect(mounts.find((m) => m.name === 'cri')).toEqual({ name: 'cri', mountPath: '/host-cri' });
    expect(env.find((e) => e.name === 'STOKER_CRI_ENDPOINT')?.value).toBe('unix:///host-cri/containerd.sock');
    expect(mounts.find((m) => m.name === 'kubelet-pods')).toEqual({ name: 'kubelet-pods', mountPath: '/var/lib/kubelet/pods', readOnly: true, mountPropagation: 'HostToContainer' });
    const deployment = docs.find((d) => d.kind === 'Deployment') as unknown as Workload;
    expect(deployment.spec.template.spec.containers[0]?.env?.find((e) => e.name === 'STOKER_KUBELET_PODS_DIR')?.value).toBe('/var/lib/kubelet/pods');
    // No Warmup unless values.warmups lists some.
    expect(docs.filter((d) => d.kind === 'Warmup')).toEqual([]);

    // kubeletPodsDir empty: neither mounted nor an allowed root, and the controller is not told of it.
    const off = parseAllDocuments(await kube.helm(['template', 'stoker', chart, '-n', ns, ...values, '--set', 'kubeletPodsDir=']))
      .map((d) => d.toJS() as Obj | null)
      .filter((d): d is Obj => d !== null);
    const offDs = off.find((d) => d.kind === 'DaemonSet') as unknown as Workload;
    expect(offDs.spec.template.spec.containers[0]?.env?.find((e) => e.name === 'STOKER_ALLOWED_ROOTS')?.value).toBe('/models,/data/weights');
    expect(offDs.spec.template.spec.volumes.map((v) => v.name)).not.toContain('kubelet-pods');
    expect((off.find((d) => d.kind === 'Deployment') as unknown as Workload).spec.template.spec.containers[0]?.env?.map((e) => e.name)).not.toContain('STOKER_KUBELET_PODS_DIR');
  });

  it('refuses a bad value by name, in template, lint and install alike', async () => {
    const refused: [set: string, message: string][] = [
      ['controller.maxConcurrentReconciles=-1', "at '/controller/maxConcurrentReconciles': minimum: got -1, want 1"],
      ['agent.allowedRoots[0].path=models', "at '/agent/allowedRoots/0/path': 'models' does not match pattern '^/'"],
      ['agent.allowedRoots[0].path=/m,agent.allowedRoots[0].hostPathType=File', "at '/agent/allowedRoots/0/hostPathType'"],
      ['agent.criSocket=containerd.sock', "at '/agent/criSocket'"],
      ['controller.replicas=two', "at '/controller/replicas': got string, want integer"],
      ['agent.grpcPort=70000', "at '/agent/grpcPort': maximum"],
      ['logLevel=loud', "at '/logLevel': value must be one of"],
      ['tls.generate=yes', "at '/tls/generate': got string, want boolean"],
      ['kubeletPodsDir=var/lib/kubelet/pods', "at '/kubeletPodsDir'"],
      ['warmups[0].name=a,warmups[0].policy.parallelism=-2', "at '/warmups/0/policy/parallelism': minimum: got -2, want 1"],
      // A misspelt key is refused rather than silently ignored.
      ['agent.crisocket=/run/crio/crio.sock', "at '/agent': additional properties 'crisocket' not allowed"],
      ['monitoring.serviceMonitor.enable=true', "at '/monitoring/serviceMonitor': additional properties 'enable' not allowed"],
      ['monitoring.serviceMonitor.interval=30', "at '/monitoring/serviceMonitor/interval'"],
    ];
    for (const [set, message] of refused) {
      await expect(kube.helm(['template', 'stoker', chart, '-n', ns, '--set', set]), set).rejects.toThrow(message);
    }
    await expect(kube.helm(['lint', chart, '--set', 'controller.maxConcurrentReconciles=-1'])).rejects.toThrow('maxConcurrentReconciles');
    await expect(kube.helm(['install', 'bad', chart, '-n', 'stoker-bad', '--create-namespace', '--set', 'agent.allowedRoots[0].path=models'])).rejects.toThrow(
      "at '/agent/allowedRoots/0/path'",
    );
    // The defaults, with nothing set, render.
    const docs = parseAllDocuments(await kube.helm(['template', 'stoker', chart, '-n', ns])).map((d) => d.toJS() as Obj | null);
    expect(docs.some((d) => d?.kind === 'DaemonSet')).toBe(true);
  });

  it('has a schema for every value in values.yaml', async () => {
    interface Schema {
      type?: string | string[];
      properties?: Record<string, Schema>;
      additionalProperties?: boolean | Schema;
    }
    const schema = JSON.parse(await readFile(join(chart, 'values.schema.json'), 'utf8')) as Schema;
    const defaults = parse(await readFile(join(chart, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const missing: string[] = [];
    const walk = (value: unknown, s: Schema | undefined, path: string): void => {
      if (s === undefined) {
        missing.push(path);
        return;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value) || s.properties === undefined) return;
      for (const [k, v] of Object.entries(value)) walk(v, s.properties[k], path === '' ? k : `${path}.${k}`);
    };
    walk(defaults, schema, '');
    expect(missing).toEqual([]);
    expect(schema.additionalProperties).toBe(false);
  });

  it('renders ServiceMonitors and the PrometheusRule only when asked, with the rules of deploy/prometheus', async () => {
    const render = async (...set: string[]): Promise<Obj[]> =>
      parseAllDocuments(await kube.helm(['template', 'stoker', chart, '-n', ns, ...values, ...set]))
        .map((d) => d.toJS() as Obj | null)
        .filter((d): d is Obj => d !== null);
    expect((await render()).filter((d) => d.kind === 'ServiceMonitor' || d.kind === 'PrometheusRule')).toEqual([]);
    const docs = await render('--set', 'monitoring.serviceMonitor.enabled=true', '--set', 'monitoring.prometheusRule.enabled=true', '--set', 'monitoring.serviceMonitor.labels.release=kps');
    interface Monitor {
      metadata: { labels: Record<string, string> };
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; relabelings: { targetLabel: string; replacement?: string }[] }[] };
    }
    const monitors = docs.filter((d) => d.kind === 'ServiceMonitor') as unknown as Monitor[];
    expect(monitors.map((m) => m.spec.selector.matchLabels['app.kubernetes.io/component'])).toEqual(['agent', 'controller']);
    // Scraped as the jobs the alerts and the dashboard name, from the metrics Services' port.
    expect(monitors.map((m) => m.spec.endpoints[0]?.relabelings.find((r) => r.targetLabel === 'job')?.replacement)).toEqual(['stoker-agent', 'stoker-controller']);
    expect(monitors.map((m) => m.spec.endpoints[0]?.port)).toEqual(['http-metrics', 'http-metrics']);
    expect(monitors.map((m) => m.metadata.labels.release)).toEqual(['kps', 'kps']);
    // Every Service a monitor selects that has the port is a metrics Service.
    const services = docs.filter((d) => d.kind === 'Service') as unknown as { metadata: { name: string; labels: Record<string, string> }; spec: { ports: { name: string }[] } }[];
    const scraped = services.filter((s) => monitors.some((m) => Object.entries(m.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels[k] === v)) && s.spec.ports.some((p) => p.name === 'http-metrics'));
    expect(scraped.map((s) => s.metadata.name).sort()).toEqual(['stoker-agent-metrics', 'stoker-controller-metrics']);
    const rule = docs.find((d) => d.kind === 'PrometheusRule');
    expect(rule?.spec).toEqual(parse(await readFile(join(REPO_ROOT, 'deploy', 'prometheus', 'stoker-rules.yaml'), 'utf8')));
  });

  it('sets only settings the agent and the controller know', async () => {
    const docs = parseAllDocuments(await kube.helm(['template', 'stoker', chart, '-n', ns, ...values])).map((d) => d.toJS() as Obj | null);
    const envOf = (kind: string): string[] => {
      const w = docs.find((d) => d?.kind === kind) as unknown as Workload;
      return (w.spec.template.spec.containers[0]?.env ?? []).map((e) => e.name);
    };
    const agentEnv = new Set<string>(Object.values(AGENT_FLAGS).flatMap((o) => o.env));
    const controllerEnv = new Set<string>(Object.values(CONTROLLER_FLAGS).flatMap((o) => o.env));
    expect(envOf('DaemonSet').filter((e) => !agentEnv.has(e))).toEqual([]);
    expect(envOf('Deployment').filter((e) => !controllerEnv.has(e))).toEqual([]);
    expect(envOf('DaemonSet')).toContain('STOKER_NODE_NAME');
    expect(envOf('DaemonSet')).toContain('STOKER_CONTROLLER_NAME');
    expect(envOf('Deployment')).toContain('STOKER_AGENT_SERVER_NAME');
    expect(envOf('Deployment')).toContain('STOKER_AGENT_SERVICE');
    // The agents' pods carry no API token: they never call the API server.
    const agentPod = (docs.find((d) => d?.kind === 'DaemonSet') as unknown as { spec: { template: { spec: { automountServiceAccountToken?: boolean } } } }).spec.template.spec;
    expect(agentPod.automountServiceAccountToken).toBe(false);
    // The Service whose EndpointSlices say where each agent is has the agents' grpc port.
    const service = docs.find((d) => d?.kind === 'Service' && d.metadata.name === 'stoker-agent') as unknown as { spec: { clusterIP: string; ports: { name: string; targetPort: string }[] } };
    expect(service.spec.clusterIP).toBe('None');
    expect(service.spec.ports).toEqual([expect.objectContaining({ name: 'grpc', targetPort: 'grpc' })]);

    // The agent accepts the DaemonSet's settings as the kubelet resolves them.
    const ds = docs.find((d) => d?.kind === 'DaemonSet') as unknown as Workload;
    const agentVars = resolveEnv(ds.spec.template.spec.containers[0]?.env ?? [], {
      'spec.nodeName': 'gpu-node-1',
      'status.podIP': '10.1.2.3',
      'metadata.namespace': ns,
    }, {});
    const config = resolveAgentConfig({}, agentVars);
    expect(config).toMatchObject({
      nodeName: 'gpu-node-1',
      allowedRoots: ['/models', '/data/weights', '/var/lib/kubelet/pods'],
      criEndpoint: 'unix:///host-cri/containerd.sock',
      controllerName: 'stoker-controller',
    });
  });

  it('gives the agents and the controller one registry policy, and mounts the credential provider files read-only', async () => {
    const withPolicy = [
      ...values,
      '--set', 'registryPolicy.allow={registry.example.com,*.dkr.ecr.eu-west-1.amazonaws.com}',
      '--set', 'registryPolicy.deny[0]=10.0.0.0/8',
      '--set', 'agent.credentialProviders.config=/etc/kubernetes/image-credential-provider-config.yaml',
      '--set', 'agent.credentialProviders.binDir=/etc/kubernetes/image-credential-provider',
    ];
    const docs = parseAllDocuments(await kube.helm(['template', 'stoker', chart, '-n', ns, ...withPolicy])).map((d) => d.toJS() as Obj | null);
    const podOf = (kind: string) => (docs.find((d) => d?.kind === kind) as unknown as Workload).spec.template.spec;
    const fields = { 'spec.nodeName': 'gpu-node-1', 'status.podIP': '10.1.2.3', 'metadata.namespace': ns, 'metadata.name': 'stoker-controller-0' };
    const agent = resolveAgentConfig({}, resolveEnv(podOf('DaemonSet').containers[0]?.env ?? [], fields, {}));
    const controller = resolveControllerConfig(
      { tlsCertFile: '/t', tlsPrivateKeyFile: '/t', agentCaFile: '/t' },
      resolveEnv(podOf('Deployment').containers[0]?.env ?? [], fields, {}),
    );
    for (const policy of [agent.registryPolicy, controller.registryPolicy]) {
      expect(policy.allow.map((p) => p.text)).toEqual(['registry.example.com', '*.dkr.ecr.eu-west-1.amazonaws.com']);
      expect(policy.deny.map((p) => p.text)).toEqual(['10.0.0.0/8']);
    }
    expect(agent.credentialProviders).toEqual({
      configPath: '/etc/kubernetes/image-credential-provider-config.yaml',
      binDir: '/etc/kubernetes/image-credential-provider',
    });
    const ds = podOf('DaemonSet');
    const mounts = (ds.containers[0] as { volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[] }).volumeMounts ?? [];
    for (const [name, path] of [
      ['credential-provider-config', '/etc/kubernetes/image-credential-provider-config.yaml'],
      ['credential-provider-bin', '/etc/kubernetes/image-credential-provider'],
    ] as const) {
      expect(mounts.find((m) => m.name === name)).toEqual({ name, mountPath: path, readOnly: true });
      expect(ds.volumes.find((v) => v.name === name)?.hostPath?.path).toBe(path);
    }
    // Without values: no policy variables (the built-in rules apply) and no credential providers.
    const plain = parseAllDocuments(await kube.helm(['template', 'stoker', chart, '-n', ns, ...values])).map((d) => d.toJS() as Obj | null);
    const names = plain.flatMap((d) => (d?.kind === 'DaemonSet' || d?.kind === 'Deployment' ? ((d as unknown as Workload).spec.template.spec.containers[0]?.env ?? []).map((e) => e.name) : []));
    expect(names.filter((n) => /REGISTRY|CREDENTIAL_PROVIDER/.test(n))).toEqual([]);
    // One of the two credential provider values alone is refused.
    await expect(kube.helm(['template', 'stoker', chart, '-n', ns, ...values, '--set', 'agent.credentialProviders.config=/cp.yaml'])).rejects.toThrow(
      'agent.credentialProviders.binDir is required with agent.credentialProviders.config',
    );
  });

  it('installs into a real API server, and every object is accepted', async () => {
    await kube.helm(['install', 'stoker', chart, '-n', ns, '--create-namespace', ...values]);
    const names = await kube.kubectl(['get', 'daemonsets,deployments,services,serviceaccounts,secrets,roles,rolebindings', '-n', ns, '-o', 'name']);
    for (const n of [
      'daemonset.apps/stoker-agent',
      'deployment.apps/stoker-controller',
      'secret/stoker-agent-tls',
      'secret/stoker-controller-tls',
      'service/stoker-agent',
      'role.rbac.authorization.k8s.io/stoker-controller',
    ]) {
      expect(names).toContain(n);
    }
    // The agents get no Role at all.
    expect(names).not.toContain('role.rbac.authorization.k8s.io/stoker-agent');
    // The CRD came from the chart's crds/ and is served.
    expect(await kube.kubectl(['get', 'crd', 'warmups.stoker.io', '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}'])).toBe('True');
  });

  it('renders values.warmups as Warmups in the release namespace, which the API server accepts', async () => {
    const file = join(kube.dir, 'warmups-values.yaml');
    await writeFile(file, [
      'warmups:',
      '  - name: llama',
      '    images:',
      '      - image: vllm/vllm-openai:v0.7.0',
      '    paths:',
      '      - path: /models/llama',
      '        include: ["*.safetensors"]',
      '      - persistentVolumeClaim:',
      '          claimName: datasets',
      '          subPath: eval',
      '    nodes:',
      '      selector:',
      '        matchLabels:',
      '          pool: gpu',
      '    keepWarm: true',
      '    policy:',
      '      parallelism: 20',
      '  - name: nightly',
      '    images:',
      '      - image: ghcr.io/example/eval:latest',
      '        pullPolicy: Always',
      '    schedule: "0 2 * * *"',
      '',
    ].join('\n'));
    const out = await kube.helm(['template', 'stoker', chart, '-n', ns, ...values, '-f', file]);
    const warmups = parseAllDocuments(out)
      .map((d) => d.toJS() as Obj | null)
      .filter((d): d is Obj => d?.kind === 'Warmup');
    expect(warmups.map((w) => `${w.metadata.namespace ?? ''}/${w.metadata.name}`)).toEqual([`${ns}/llama`, `${ns}/nightly`]);
    expect(warmups[0]?.spec).toEqual({
      images: [{ image: 'vllm/vllm-openai:v0.7.0' }],
      paths: [{ path: '/models/llama', include: ['*.safetensors'] }, { persistentVolumeClaim: { claimName: 'datasets', subPath: 'eval' } }],
      nodes: { selector: { matchLabels: { pool: 'gpu' } } },
      keepWarm: true,
      policy: { parallelism: 20 },
    });
    expect(warmups[1]?.spec).toEqual({ images: [{ image: 'ghcr.io/example/eval:latest', pullPolicy: 'Always' }], schedule: '0 2 * * *' });
    // The API server (the chart's CRD, with its schema and CEL rules) accepts both as rendered.
    const applied = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: warmups.map((w) => JSON.stringify(w)).join('\n') });
    expect(applied.trim().split('\n')).toEqual(['warmup.stoker.io/llama created (server dry run)', 'warmup.stoker.io/nightly created (server dry run)']);
    // A name is required.
    await expect(kube.helm(['template', 'stoker', chart, '-n', ns, ...values, '--set', 'warmups[0].keepWarm=true'])).rejects.toThrow("at '/warmups/0': missing property 'name'");
  });

  it('grants the controller and the agents what they need, and no more', async () => {
    // Controller.
    expect(await can(controllerSA, 'watch', 'warmups.stoker.io', '-A')).toBe(true);
    expect(await can(controllerSA, 'update', 'warmups.stoker.io', '--subresource', 'status', '-n', 'team-a')).toBe(true);
    expect(await can(agentSA, 'update', 'warmups.stoker.io', '--subresource', 'status', '-n', 'team-a')).toBe(false);
    // The finalizer is added and removed with a patch; nothing updates a whole Warmup.
    expect(await can(controllerSA, 'patch', 'warmups.stoker.io', '-n', 'team-a')).toBe(true);
    expect(await can(controllerSA, 'update', 'warmups.stoker.io', '-n', 'team-a')).toBe(false);
    expect(await can(agentSA, 'patch', 'warmups.stoker.io', '-n', 'team-a')).toBe(false);
    expect(await can(controllerSA, 'list', 'nodes')).toBe(true);
    // Secrets: only in the namespaces whose Warmups it serves (by default the release namespace).
    expect(await can(controllerSA, 'get', 'secrets', '-n', ns)).toBe(true);
    expect(await can(controllerSA, 'list', 'secrets', '-n', ns)).toBe(false);
    expect(await can(controllerSA, 'get', 'secrets', '-n', 'team-a')).toBe(false);
    expect(await can(controllerSA, 'get', 'secrets', '-n', 'kube-system')).toBe(false);
    // keepWarm's node label is set and removed with a patch; a Node is never updated whole or deleted.
    expect(await can(controllerSA, 'patch', 'nodes')).toBe(true);
    expect(await can(controllerSA, 'update', 'nodes')).toBe(false);
    expect(await can(controllerSA, 'delete', 'nodes')).toBe(false);
    expect(await can(agentSA, 'patch', 'nodes')).toBe(false);
    expect(await can(controllerSA, 'create', 'events', '-n', 'team-a')).toBe(true);
    // Its leader Lease by name, and the agents' EndpointSlices (read only).
    expect(await can(controllerSA, 'update', 'leases/stoker-controller', '-n', ns)).toBe(true);
    expect(await can(controllerSA, 'update', 'leases/stoker-agent-node-b', '-n', ns)).toBe(false);
    expect(await can(controllerSA, 'update', 'leases', '-n', 'kube-system')).toBe(false);
    expect(await can(controllerSA, 'watch', 'endpointslices.discovery.k8s.io', '-n', ns)).toBe(true);
    expect(await can(controllerSA, 'update', 'endpointslices.discovery.k8s.io', '-n', ns)).toBe(false);
    expect(await can(controllerSA, 'create', 'pods', '-n', ns)).toBe(false);
    // Claims named in spec.paths, their volumes, and the running pods that mount them: read through informers only.
    for (const resource of ['persistentvolumeclaims', 'pods']) {
      for (const verb of ['list', 'watch']) expect(await can(controllerSA, verb, resource, '-n', 'team-a'), `${verb} ${resource}`).toBe(true);
      for (const verb of ['create', 'update', 'delete']) expect(await can(controllerSA, verb, resource, '-n', 'team-a'), `${verb} ${resource}`).toBe(false);
    }
    for (const verb of ['list', 'watch']) expect(await can(controllerSA, verb, 'persistentvolumes'), `${verb} persistentvolumes`).toBe(true);
    for (const verb of ['create', 'update', 'delete']) expect(await can(controllerSA, verb, 'persistentvolumes'), `${verb} persistentvolumes`).toBe(false);
    expect(await can(controllerSA, 'get', 'pods', '-n', 'team-a')).toBe(false);
    expect(await can(controllerSA, 'get', 'pods', '--subresource', 'exec', '-n', 'team-a')).toBe(false);
    expect(await can(agentSA, 'list', 'persistentvolumes')).toBe(false);
    expect(await can(agentSA, 'list', 'pods', '-n', ns)).toBe(false);
    // Workloads (spec.workloadRef, stoker.io/warm): read only; the Warmup made for an annotated one.
    // (kubectl cannot ask about LeaderWorkerSets and RoleBasedGroups while their CRDs are absent.)
    for (const r of ['deployments.apps', 'statefulsets.apps', 'daemonsets.apps', 'replicasets.apps', 'jobs.batch', 'cronjobs.batch', 'pods', 'serviceaccounts']) {
      expect(await can(controllerSA, 'watch', r, '-A'), r).toBe(true);
      expect(await can(controllerSA, 'patch', r, '-n', 'team-a'), r).toBe(false);
    }
    expect(await can(controllerSA, 'get', 'deployments.apps', '-n', 'team-a')).toBe(false);
    expect(await can(controllerSA, 'create', 'warmups.stoker.io', '-n', 'team-a')).toBe(true);
    expect(await can(agentSA, 'watch', 'deployments.apps', '-A')).toBe(false);
    // Agent: nothing at all. Above all not the controller's leader Lease, another node's
    // announcement, or where Kubernetes says an agent is.
    expect(await can(agentSA, 'update', 'leases/stoker-controller', '-n', ns)).toBe(false);
    expect(await can(agentSA, 'create', 'leases', '-n', ns)).toBe(false);
    expect(await can(agentSA, 'update', 'leases', '-n', ns)).toBe(false);
    expect(await can(agentSA, 'create', 'endpointslices.discovery.k8s.io', '-n', ns)).toBe(false);
    expect(await can(agentSA, 'update', 'endpointslices.discovery.k8s.io', '-n', ns)).toBe(false);
    expect(await can(agentSA, 'patch', 'nodes')).toBe(false);
    expect(await can(agentSA, 'get', 'warmups.stoker.io', '-n', ns)).toBe(false);
    expect(await can(agentSA, 'get', 'secrets', '-n', ns)).toBe(false);
  });

  it('generates certificates for mutual TLS where an agent key cannot act as the controller', async () => {
    const agent = await tlsSecret('stoker-agent-tls');
    const controller = await tlsSecret('stoker-controller-tls');
    expect(new X509Certificate(agent.crt).checkHost('stoker-agent')).toBe('stoker-agent');
    expect(new X509Certificate(agent.crt).checkIssued(new X509Certificate(controller.ca))).toBe(true);
    expect(new X509Certificate(controller.crt).checkIssued(new X509Certificate(agent.ca))).toBe(true);
    // The controller's certificate carries the name the agents check (--controller-name).
    const controllerCert = new X509Certificate(controller.crt);
    expect(controllerCert.subject).toBe('CN=stoker-controller');
    expect(controllerCert.subjectAltName).toBe('DNS:stoker-controller');

    // The agent serves, the controller connects and checks the name: both sides accept.
    expect(await handshake(agent, controller, 'stoker-agent')).toBe(true);
    // Another agent's key presented as a client certificate is refused.
    expect(await handshake(agent, { ...agent, ca: controller.ca }, 'stoker-agent')).toBe(false);
    // A wrong server name is refused by the client.
    expect(await handshake(agent, controller, 'evil')).toBe(false);
  });

  it('runs the real controller with the chart settings and only its ServiceAccount permissions', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stoker-chart-'));
    let child: ReturnType<typeof spawn> | undefined;
    try {
      const rendered = parseAllDocuments(await kube.helm(['template', 'stoker', chart, '-n', ns, ...values])).map((d) => d.toJS() as Obj | null);
      const containerEnv = (kind: string): EnvVar[] =>
        (rendered.find((d) => d?.kind === kind) as unknown as Workload).spec.template.spec.containers[0]?.env ?? [];

      // The chart's TLS Secret, as the Deployment mounts it at /etc/stoker/tls.
      const tls = await tlsSecret('stoker-controller-tls');
      const files: Record<string, string> = {};
      for (const [key, pem] of [['tls.crt', tls.crt], ['tls.key', tls.key], ['ca.crt', tls.ca]] as const) {
        await writeFile(join(dir, key), pem, { mode: 0o600 });
        files[`/etc/stoker/tls/${key}`] = join(dir, key);
      }
      const port = await freePort();
      const env = {
        ...resolveEnv(containerEnv('Deployment'), { 'metadata.namespace': ns, 'metadata.name': 'stoker-controller-abc12' }, files),
        STOKER_HTTP_LISTEN: `127.0.0.1:${port}`,
        STOKER_KUBECONFIG: (await serviceAccountKubeconfig(dir, 'stoker-controller')).path,
      };
      child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bin', 'main.ts'), 'controller'], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...env },
      });
      let output = '';
      child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
      child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
      const exited = once(child, 'exit');

      // An agent pod on gpu-1, as Kubernetes' endpointslice controller records it for the
      // chart's agent Service (no controller-manager runs here: the test writes the slice).
      await publishAgentEndpoint(kube.kubeConfig, { namespace: ns, node: 'gpu-1', address: '10.1.2.3', port: 7443 });

      // The controller takes the leader Lease and reconciles Warmups to a written status, with
      // Events; all with the chart's RBAC only.
      await waitFor(
        'the controller to lead',
        async () => {
          if (child?.exitCode !== null) throw new Error(`controller exited: ${output}`);
          const l = await kube.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns, name: 'stoker-controller' });
          return l.spec?.holderIdentity === 'stoker-controller-abc12' ? true : undefined;
        },
        60_000,
      );
      await ensureNamespace(kube.kubeConfig, 'team-a');
      const api = warmupApi(kube.kubeConfig);
      const failed = (namespace: string, name: string): Promise<Warmup> =>
        waitFor(`Warmup ${namespace}/${name} to fail`, async () => {
          const w = await api.get(namespace, name);
          return w?.status?.phase === 'Failed' ? w : undefined;
        }, 60_000);
      const reason = (w: Warmup) => w.status?.conditions?.find((c) => c.type === 'Failed');
      // In the release namespace (served by default): the controller reads the named pull secret
      // (it is missing: 404, not 403) and looks for nodes.
      await api.create(ns, 'nowhere', { images: [{ image: 'registry.example/app:1' }], nodes: { selector: { matchLabels: { pool: 'none' } } } });
      await api.create(ns, 'no-secret', { images: [{ image: 'registry.example/app:1' }], imagePullSecrets: [{ name: 'regcred' }] });
      expect(reason(await failed(ns, 'nowhere'))?.reason).toBe('NoMatchingNodes');
      expect(reason(await failed(ns, 'no-secret'))).toMatchObject({ reason: 'PullSecretNotFound', message: `image pull secret "${ns}/regcred" does not exist` });
      // In a namespace not opted in: failed before any Secret is read, and the condition says why.
      await api.create('team-a', 'elsewhere', { images: [{ image: 'registry.example/app:1' }], imagePullSecrets: [{ name: 'regcred' }] });
      expect(reason(await failed('team-a', 'elsewhere'))).toMatchObject({
        reason: 'NamespaceNotAllowed',
        message: `namespace "team-a" is not one Stoker serves: the controller reads pull secrets and warms nodes only for Warmups in ${ns} (--warmup-namespaces)`,
      });
      // The controller patched its finalizer on and, once the Warmup finished, off again.
      await waitFor('the finalizer to be removed', async () => ((await api.get(ns, 'nowhere'))?.metadata.finalizers ?? []).length === 0 ? true : undefined, 30_000);
      const core = kube.kubeConfig.makeApiClient(CoreV1Api);
      await waitFor('an Event on the Warmup', async () => {
        const events = await core.listNamespacedEvent({ namespace: 'team-a', fieldSelector: 'involvedObject.name=elsewhere' });
        return events.items.some((e) => e.reason === 'Failed') ? true : undefined;
      }, 30_000);
      // The controller found that agent through the slices, with its ServiceAccount's read access.
      const liveAgents = async (): Promise<number> => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return Number(/^stoker_live_agents (\d+)$/m.exec(text)?.[1] ?? NaN);
      };
      await waitFor('the controller to see the agent on gpu-1', async () => ((await liveAgents()) === 1 ? true : undefined), 30_000);
      expect(output).not.toMatch(/forbidden/i);

      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
    } finally {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps the certificates across an upgrade', async () => {
    const before = await tlsSecret('stoker-agent-tls');
    await kube.helm(['upgrade', 'stoker', chart, '-n', ns, ...values, '--set', 'logLevel=debug']);
    const after = await tlsSecret('stoker-agent-tls');
    expect(after).toEqual(before);
    const level = await kube.kubectl([
      'get', 'deployment', 'stoker-controller', '-n', ns,
      '-o', 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="STOKER_LOG_LEVEL")].value}',
    ]);
    expect(level).toBe('debug');
  });

  it('lets the controller read Secrets in exactly the namespaces controller.warmupNamespaces lists', async () => {
    await kube.helm(['upgrade', 'stoker', chart, '-n', ns, ...values, '--set', 'controller.warmupNamespaces={team-a}']);
    expect(await can(controllerSA, 'get', 'secrets', '-n', 'team-a')).toBe(true);
    expect(await can(controllerSA, 'get', 'secrets', '-n', ns)).toBe(false);
    expect(await can(controllerSA, 'get', 'secrets', '-n', 'kube-system')).toBe(false);
    const served = await kube.kubectl([
      'get', 'deployment', 'stoker-controller', '-n', ns,
      '-o', 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="STOKER_WARMUP_NAMESPACES")].value}',
    ]);
    expect(served).toBe('team-a');
  });
});
