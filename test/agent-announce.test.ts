// The agent's Lease announcement as it runs in a pod: the in-cluster ServiceAccount config
// (KUBERNETES_SERVICE_HOST/PORT and a mounted token, ca.crt and namespace) against a real
// kube-apiserver with RBAC, the token rotating underneath it.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnnouncer } from '../agent/announce.js';
import { inClusterConfig, loadKubeconfig, TOKEN_REREAD_MS } from '../agent/kube/kubeconfig.js';
import { agentLeaseName } from '../proto/common/agent-lease.js';
import { createLogger } from '../proto/common/log.js';
import { startKube, type Kube } from './support/kube.js';

const NS = 'stoker-announce';

let kube: Kube;
let dir: string;

/** The agent's RBAC as the chart grants it, for ServiceAccount "agent"; "nobody" gets nothing. */
const RBAC = `
apiVersion: v1
kind: ServiceAccount
metadata: { name: agent, namespace: ${NS} }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: nobody, namespace: ${NS} }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: agent, namespace: ${NS} }
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: agent, namespace: ${NS} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: agent }
subjects: [{ kind: ServiceAccount, name: agent, namespace: ${NS} }]
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-announce-'));
  kube = await startKube({ installCrd: false });
  await kube.kubectl(['create', 'namespace', NS]);
  await kube.kubectl(['apply', '-f', '-'], { input: RBAC });
});
afterAll(async () => {
  await kube?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** p, or a rejection naming what did not happen within ms. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms / 1000} s`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function leaseHolder(name: string): Promise<string | undefined> {
  const out = await kube.kubectl(['get', 'lease', name, '-n', NS, '--ignore-not-found', '-o', 'jsonpath={.spec.holderIdentity}']);
  return out.trim() || undefined;
}

describe('announcing with the in-cluster ServiceAccount', () => {
  it('reports a refused token with its status and reason, then announces once the mounted token rotates to one that may', async () => {
    const sa = join(dir, 'serviceaccount');
    await mkdir(sa);
    const admin = loadKubeconfig(kube.kubeconfigPath);
    await writeFile(join(sa, 'ca.crt'), admin.tls.ca ?? '');
    await writeFile(join(sa, 'namespace'), NS);
    const nobodyToken = (await kube.kubectl(['create', 'token', 'nobody', '-n', NS])).trim();
    await writeFile(join(sa, 'token'), nobodyToken);
    const url = new URL(admin.server);

    let now = 0;
    const server = inClusterConfig({ KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port }, { dir: sa, now: () => now });
    expect(server.namespace).toBe(NS);
    let logged = '';
    const log = createLogger({ name: 'test', level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => ((logged += c.toString()), cb()) }) });
    const announcer = startAnnouncer({ server, namespace: NS, nodeName: 'pod-node', endpoint: '10.1.2.3:7443', leaseDurationSeconds: 15, log });
    try {
      // The first token's ServiceAccount may not touch Leases: the failure names the call and the refusal.
      const deadline = Date.now() + 30_000;
      while (!logged.includes('agent announcement failed') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(logged).toMatch(/"err":"get Lease stoker-announce\/stoker-agent-pod-node: HTTP 403 Forbidden: leases.coordination.k8s.io \\"stoker-agent-pod-node\\" is forbidden: User \\"system:serviceaccount:stoker-announce:nobody\\" cannot get resource/);
      expect(announcer.renewals()).toBe(0);

      // The kubelet rotates the mounted token; the announcer picks it up when its copy is due.
      await writeFile(join(sa, 'token'), (await kube.kubectl(['create', 'token', 'agent', '-n', NS])).trim());
      now += TOKEN_REREAD_MS;
      await within(announcer.firstRenewal, 30_000, 'the first Lease write with the rotated token');
      expect(await leaseHolder(agentLeaseName('pod-node'))).toBe('pod-node');
      const endpoint = await kube.kubectl(['get', 'lease', agentLeaseName('pod-node'), '-n', NS, '-o', 'jsonpath={.metadata.annotations.stoker\\.io/grpc-endpoint}']);
      expect(endpoint).toBe('10.1.2.3:7443');
    } finally {
      await announcer.stop();
    }
    expect(await leaseHolder(agentLeaseName('pod-node'))).toBeUndefined();
    expect(logged).not.toContain(nobodyToken);
  });
});
