// The Helm chart deploy/helm/stoker, installed with a real helm into a real kube-apiserver: every
// object passes the API server's validation, RBAC grants the controller and the agents what they
// need and no more, the generated certificates make a working mutual-TLS pair, and an upgrade
// keeps them.
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { AGENT_OPTIONS } from '../agent/config.js';
import { ANNOUNCE_OPTIONS } from '../agent/announce.js';
import { CONTROLLER_OPTIONS } from '../controller/config.js';
import { REPO_ROOT } from './support/proc.js';
import { startKube, type Kube } from './support/kube.js';

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

interface Workload {
  spec: {
    template: {
      spec: {
        containers: { env?: { name: string; value?: string }[] }[];
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
        'Role/stoker-agent',
        'Role/stoker-controller',
        'RoleBinding/stoker-agent',
        'RoleBinding/stoker-controller',
        'Secret/stoker-agent-tls',
        'Secret/stoker-controller-tls',
        'Service/stoker-agent-metrics',
        'Service/stoker-controller-metrics',
        'ServiceAccount/stoker-agent',
        'ServiceAccount/stoker-controller',
      ].sort(),
    );
    const ds = docs.find((d) => d.kind === 'DaemonSet') as unknown as Workload;
    const env = ds.spec.template.spec.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === 'STOKER_ALLOWED_ROOTS')?.value).toBe('/models,/data/weights');
    expect(ds.spec.template.spec.volumes.map((v) => v.hostPath?.path).filter(Boolean)).toEqual([
      '/run/containerd/containerd.sock',
      '/models',
      '/data/weights',
    ]);
  });

  it('sets only settings the agent and the controller know', async () => {
    const docs = parseAllDocuments(await kube.helm(['template', 'stoker', chart, '-n', ns, ...values])).map((d) => d.toJS() as Obj | null);
    const envOf = (kind: string): string[] => {
      const w = docs.find((d) => d?.kind === kind) as unknown as Workload;
      return (w.spec.template.spec.containers[0]?.env ?? []).map((e) => e.name);
    };
    const agentEnv = new Set<string>([...Object.values(AGENT_OPTIONS), ...Object.values(ANNOUNCE_OPTIONS)].map((o) => o.env));
    const controllerEnv = new Set<string>(Object.values(CONTROLLER_OPTIONS).map((o) => o.env));
    expect(envOf('DaemonSet').filter((e) => !agentEnv.has(e))).toEqual([]);
    expect(envOf('Deployment').filter((e) => !controllerEnv.has(e))).toEqual([]);
    expect(envOf('DaemonSet')).toContain('STOKER_NODE_NAME');
    expect(envOf('DaemonSet')).toContain('STOKER_ADVERTISE_ADDRESS');
    expect(envOf('Deployment')).toContain('STOKER_AGENT_SERVER_NAME');
  });

  it('installs into a real API server, and every object is accepted', async () => {
    await kube.helm(['install', 'stoker', chart, '-n', ns, '--create-namespace', ...values]);
    const names = await kube.kubectl(['get', 'daemonsets,deployments,services,serviceaccounts,secrets,roles,rolebindings', '-n', ns, '-o', 'name']);
    for (const n of [
      'daemonset.apps/stoker-agent',
      'deployment.apps/stoker-controller',
      'secret/stoker-agent-tls',
      'secret/stoker-controller-tls',
      'role.rbac.authorization.k8s.io/stoker-agent',
    ]) {
      expect(names).toContain(n);
    }
    // The CRD came from the chart's crds/ and is served.
    expect(await kube.kubectl(['get', 'crd', 'warmups.stoker.io', '-o', 'jsonpath={.status.conditions[?(@.type=="Established")].status}'])).toBe('True');
  });

  it('grants the controller and the agents what they need, and no more', async () => {
    const can = async (as: string, ...args: string[]): Promise<boolean> => {
      try {
        return (await kube.kubectl(['auth', 'can-i', '--as', as, ...args])).trim() === 'yes';
      } catch {
        return false; // kubectl exits 1 for "no"
      }
    };
    // Controller.
    expect(await can(controllerSA, 'watch', 'warmups.stoker.io', '-A')).toBe(true);
    expect(await can(controllerSA, 'update', 'warmups.stoker.io/status', '-n', 'team-a')).toBe(true);
    expect(await can(controllerSA, 'list', 'nodes')).toBe(true);
    expect(await can(controllerSA, 'get', 'secrets', '-n', 'team-a')).toBe(true);
    expect(await can(controllerSA, 'list', 'secrets', '-n', 'team-a')).toBe(false);
    expect(await can(controllerSA, 'create', 'events', '-n', 'team-a')).toBe(true);
    expect(await can(controllerSA, 'update', 'leases', '-n', ns)).toBe(true);
    expect(await can(controllerSA, 'update', 'leases', '-n', 'kube-system')).toBe(false);
    expect(await can(controllerSA, 'create', 'pods', '-n', ns)).toBe(false);
    // Agent: its Lease in Stoker's namespace, nothing else.
    expect(await can(agentSA, 'create', 'leases', '-n', ns)).toBe(true);
    expect(await can(agentSA, 'update', 'leases', '-n', ns)).toBe(true);
    expect(await can(agentSA, 'create', 'leases', '-n', 'default')).toBe(false);
    expect(await can(agentSA, 'get', 'warmups.stoker.io', '-n', ns)).toBe(false);
    expect(await can(agentSA, 'get', 'secrets', '-n', ns)).toBe(false);
  });

  it('generates certificates for mutual TLS where an agent key cannot act as the controller', async () => {
    const agent = await tlsSecret('stoker-agent-tls');
    const controller = await tlsSecret('stoker-controller-tls');
    expect(new X509Certificate(agent.crt).checkHost('stoker-agent')).toBe('stoker-agent');
    expect(new X509Certificate(agent.crt).checkIssued(new X509Certificate(controller.ca))).toBe(true);
    expect(new X509Certificate(controller.crt).checkIssued(new X509Certificate(agent.ca))).toBe(true);

    // The agent serves, the controller connects and checks the name: both sides accept.
    expect(await handshake(agent, controller, 'stoker-agent')).toBe(true);
    // Another agent's key presented as a client certificate is refused.
    expect(await handshake(agent, { ...agent, ca: controller.ca }, 'stoker-agent')).toBe(false);
    // A wrong server name is refused by the client.
    expect(await handshake(agent, controller, 'evil')).toBe(false);
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
});
