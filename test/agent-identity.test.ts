// No agent acts for another agent or for the controller, against the chart's own RBAC in a real
// kube-apiserver: the chart is installed with helm, the controller runs as the chart's controller
// ServiceAccount, node-b has an honest agent (a real agent on a real containerd), and node-a's
// agent is compromised: a gRPC server holding the server certificate every agent shares, which
// records what it is sent. The compromised agent tries the writes its ServiceAccount could make;
// the test also writes, as an admin, the announcements older versions trusted (a Lease naming
// node-b with node-a's endpoint) and a forged EndpointSlice. A Warmup for node-b, with a pull
// secret, still reaches node-b's agent only.
//
// There is no kube-controller-manager here: the test writes the agents' EndpointSlices itself, as
// Kubernetes' endpointslice controller would from the agent pods (support/endpoint-slices.ts).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinationV1Api, CoreV1Api, DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Warmup } from '../controller/api/types.js';
import { resolveControllerConfig } from '../controller/config.js';
import { startController, type RunningController } from '../controller/main.js';
import { agentProto } from '../proto/agent.js';
import { createLogger } from '../proto/common/log.js';
import type { WarmRequest__Output } from '../proto/gen/stoker/v1/WarmRequest.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { AGENT_SERVICE, agentAddress, agentEndpointSlice, publishAgentEndpoint } from './support/endpoint-slices.js';
import { pushRandomImage } from './support/images.js';
import { createNode, serviceAccountKubeConfig, startKube, type Kube } from './support/kube.js';
import { REPO_ROOT } from './support/proc.js';
import { startRegistry, type Registry } from './support/registry.js';
import { startSimNode, waitFor, warmupApi, type SimNode } from './support/sim-cluster.js';

const NS = 'stoker-system';
const AGENT_SA = `system:serviceaccount:${NS}:stoker-agent`;
const AUTH = { username: 'puller', password: 'Pw-identity-test-41' };

let dir: string;
let kube: Kube;
let certs: Certificates;
let registry: Registry;
let containerd: Containerd;
let honest: SimNode;
let impostor: Impostor;
let controller: RunningController;

interface Impostor {
  readonly endpoint: string;
  readonly requests: WarmRequest__Output[];
  stop(): void;
}

/** node-a's compromised agent: the shared agent server certificate, answering success to anything. */
async function startImpostor(address: string): Promise<Impostor> {
  const requests: WarmRequest__Output[] = [];
  const server = new grpc.Server();
  server.addService(agentProto().Agent.service, {
    Warm(call: grpc.ServerWritableStream<WarmRequest__Output, unknown>) {
      requests.push(call.request);
      call.write({ result: { taskId: call.request.taskId, succeeded: true, images: [], paths: [], seconds: 0 } });
      call.end();
    },
    NodeStatus(_call: unknown, cb: grpc.sendUnaryData<unknown>) {
      cb(null, { nodeName: 'node-a', runtimeReady: true });
    },
  });
  const creds = grpc.ServerCredentials.createSsl(Buffer.from(certs.caCertPem), [{ cert_chain: Buffer.from(certs.serverCertPem), private_key: Buffer.from(certs.serverKeyPem) }], true);
  const host = address.includes(':') ? `[${address}]` : address;
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(`${host}:0`, creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { endpoint: `${host}:${port}`, requests, stop: () => server.forceShutdown() };
}

/** The HTTP status an API call ends with (200 when it succeeds). */
async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (err) {
    return Number((err as { code?: unknown }).code);
  }
}

function finished(name: string): Promise<Warmup> {
  return warmupApi(kube.kubeConfig).finished(NS, name);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-identity-'));
  [kube, certs, registry, containerd] = await Promise.all([
    startKube({ installCrd: false }),
    makeCertificates(join(dir, 'pki')),
    startRegistry({ auth: AUTH }),
    startContainerd(),
  ]);
  await registry.addTo(containerd);
  // The chart, with its RBAC, as an operator installs it (the CRD from its crds/).
  await kube.helm(['install', 'stoker', join(REPO_ROOT, 'deploy', 'helm', 'stoker'), '-n', NS, '--create-namespace']);
  await createNode(kube.kubeConfig, 'node-a');
  const address = agentAddress();
  impostor = await startImpostor(address);
  // node-a's pod IP is the impostor's: Kubernetes says so, and rightly (it is node-a's agent).
  const [host, port] = [impostor.endpoint.slice(0, impostor.endpoint.lastIndexOf(':')).replace(/^\[|\]$/g, ''), Number(impostor.endpoint.slice(impostor.endpoint.lastIndexOf(':') + 1))];
  await publishAgentEndpoint(kube.kubeConfig, { namespace: NS, node: 'node-a', address: host, port });
  honest = await startSimNode({ kc: kube.kubeConfig, certs, name: 'node-b', containerd, namespace: NS });

  const config = resolveControllerConfig({
    namespace: NS,
    tlsCertFile: certs.clientCert,
    tlsPrivateKeyFile: certs.clientKey,
    agentCaFile: certs.caCert,
    agentServerName: 'stoker-agent',
    agentService: AGENT_SERVICE,
    warmupNamespaces: [NS],
    leaderLeaseName: 'stoker-controller',
    httpListen: '127.0.0.1:0',
    logLevel: 'warn',
  });
  const controllerKc = await serviceAccountKubeConfig(kube.kubeConfig, NS, 'stoker-controller');
  controller = await startController(config, { kc: controllerKc, log: createLogger({ name: 'stoker-controller', level: 'warn' }) });
  await waitFor('the controller to lead', () => Promise.resolve(controller.isLeader() ? true : undefined), 60_000);
});

afterAll(async () => {
  await controller?.stop();
  await honest?.stop();
  impostor?.stop();
  await Promise.allSettled([containerd?.stop(), registry?.stop()]);
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("an agent's ServiceAccount", () => {
  let agentKc: KubeConfig;
  beforeAll(async () => {
    agentKc = await serviceAccountKubeConfig(kube.kubeConfig, NS, 'stoker-agent');
  });

  it('may not touch the leader Lease, announce for a node, or change where Kubernetes says an agent is', async () => {
    expect(await kube.kubectl(['auth', 'can-i', 'update', 'leases/stoker-controller', '-n', NS, '--as', AGENT_SA]).catch((e: Error) => e.message)).toMatch(/\bno\b/);
    const leases = agentKc.makeApiClient(CoordinationV1Api);
    const slices = agentKc.makeApiClient(DiscoveryV1Api);
    const core = agentKc.makeApiClient(CoreV1Api);
    const leader = await kube.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: NS, name: 'stoker-controller' });
    const forgedSlice = agentEndpointSlice({ namespace: NS, node: 'node-b', address: agentAddress(), port: 1, service: AGENT_SERVICE });
    forgedSlice.metadata = { ...forgedSlice.metadata, name: 'stoker-agent-forged' };
    const attempts = {
      readLeader: await statusOf(leases.readNamespacedLease({ namespace: NS, name: 'stoker-controller' })),
      takeLeader: await statusOf(leases.replaceNamespacedLease({ namespace: NS, name: 'stoker-controller', body: { ...leader, spec: { ...leader.spec, holderIdentity: 'node-a' } } })),
      deleteLeader: await statusOf(leases.deleteNamespacedLease({ namespace: NS, name: 'stoker-controller' })),
      announceNodeB: await statusOf(
        leases.createNamespacedLease({ namespace: NS, body: { metadata: { name: 'stoker-agent-node-b', labels: { 'stoker.io/agent': 'true' }, annotations: { 'stoker.io/grpc-endpoint': impostor.endpoint } }, spec: { holderIdentity: 'node-b' } } }),
      ),
      createSlice: await statusOf(slices.createNamespacedEndpointSlice({ namespace: NS, body: forgedSlice })),
      deleteNodeBSlice: await statusOf(slices.deleteNamespacedEndpointSlice({ namespace: NS, name: `${AGENT_SERVICE}-node-b` })),
      labelNode: await statusOf(core.patchNodeStatus({ name: 'node-b', body: [{ op: 'add', path: '/metadata/labels/x', value: 'y' }] })),
      readSecrets: await statusOf(core.readNamespacedSecret({ namespace: NS, name: 'stoker-controller-tls' })),
    };
    expect(attempts).toEqual({
      readLeader: 403,
      takeLeader: 403,
      deleteLeader: 403,
      announceNodeB: 403,
      createSlice: 403,
      deleteNodeBSlice: 403,
      labelNode: 403,
      readSecrets: 403,
    });
    expect(controller.isLeader()).toBe(true);
  });
});

describe('the controller', () => {
  it("sends node-b's task and credentials to node-b's agent, whatever announcements say otherwise", async () => {
    const admin = kube.kubeConfig;
    // The announcement older versions trusted, and a slice not written by the endpointslice
    // controller, both saying node-b's agent is at the impostor.
    await admin.makeApiClient(CoordinationV1Api).createNamespacedLease({
      namespace: NS,
      body: {
        metadata: { name: 'stoker-agent-node-b', labels: { 'stoker.io/agent': 'true' }, annotations: { 'stoker.io/grpc-endpoint': impostor.endpoint } },
        spec: { holderIdentity: 'node-b', leaseDurationSeconds: 3600 },
      },
    });
    const [host, port] = [impostor.endpoint.slice(0, impostor.endpoint.lastIndexOf(':')).replace(/^\[|\]$/g, ''), Number(impostor.endpoint.slice(impostor.endpoint.lastIndexOf(':') + 1))];
    const forged = agentEndpointSlice({ namespace: NS, node: 'node-b', address: host, port });
    forged.metadata = { name: 'stoker-agent-forged', namespace: NS, labels: { 'kubernetes.io/service-name': AGENT_SERVICE } };
    await admin.makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({ namespace: NS, body: forged });

    await waitFor('the controller to see both agents', () => Promise.resolve(controller.agents.live().size === 2 ? true : undefined), 30_000);
    expect(controller.agents.get('node-a')?.endpoint).toBe(impostor.endpoint);
    expect(controller.agents.get('node-b')?.endpoint).toBe(honest.agent?.grpcAddress);

    const image = await pushRandomImage(registry, 'identity/private', { layers: 1, layerSizeBytes: 128 * 1024, creds: AUTH });
    const auth = Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64');
    await admin.makeApiClient(CoreV1Api).createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'regcred' },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [registry.host]: { auth } } })).toString('base64') },
      },
    });
    const api = warmupApi(admin);
    await api.create(NS, 'only-b', { images: [{ image }], imagePullSecrets: [{ name: 'regcred' }], nodes: { names: ['node-b'] } });
    const onlyB = await finished('only-b');
    expect(onlyB.status).toMatchObject({ phase: 'Succeeded', desiredNodes: 1, succeededNodes: 1 });
    expect(await containerd.imagePresent(image)).toBe(true);
    expect(impostor.requests).toEqual([]);

    // Both nodes: each task goes to that node's own agent; the impostor gets node-a's and no other.
    await api.create(NS, 'both', { images: [{ image }], imagePullSecrets: [{ name: 'regcred' }], nodes: { names: ['node-a', 'node-b'] } });
    expect((await finished('both')).status).toMatchObject({ phase: 'Succeeded', desiredNodes: 2, succeededNodes: 2 });
    expect(impostor.requests.map((r) => r.nodeName)).toEqual(['node-a']);
  });
});
