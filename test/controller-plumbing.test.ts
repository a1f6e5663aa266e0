// The controller's Kubernetes plumbing against a real kube-apiserver: the resilient informer
// (connection cut, silent stall), the status writer (rate bound, real 409 conflicts), the Event
// recorder, leader election between two electors and between two `stoker controller` processes,
// and the agents' EndpointSlices read back by the agent directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinationV1Api, CoreV1Api, DiscoveryV1Api, KubeConfig, type V1EndpointSlice, type V1Node } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION, type Warmup, type WarmupStatus } from '../controller/api/types.js';
import { AgentEndpointDirectory, agentSliceSelector } from '../controller/k8s/agent-endpoints.js';
import { EventRecorder } from '../controller/k8s/events.js';
import { startInformer, type Informer } from '../controller/k8s/informer.js';
import { LeaderElector } from '../controller/k8s/leader.js';
import { customObjectStatusApi, StatusWriter } from '../controller/k8s/status-writer.js';
import { createLogger } from '../proto/common/log.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { AGENT_SERVICE, agentEndpointSlice, publishAgentEndpoint, withdrawAgentEndpoint } from './support/endpoint-slices.js';
import { createNode, deleteNode, startKube, type Kube } from './support/kube.js';
import { freePort } from './support/ports.js';
import { REPO_ROOT } from './support/proc.js';
import { ensureNamespace, waitFor, warmupApi } from './support/sim-cluster.js';

const NS = 'plumbing';
const STOKER_NS = 'stoker-system';
const log = createLogger({ name: 'plumbing-test', level: 'silent' });

let kube: Kube;
let dir: string;
let certs: Certificates;

/**
 * A TCP proxy in front of the API server that can cut every connection (a dead watch) or stall
 * the connections open now (a watch that stays open but delivers nothing), as networks do.
 */
interface CutProxy {
  readonly port: number;
  cutAll(): void;
  stallOpen(): void;
  stop(): Promise<void>;
}

async function startCutProxy(targetPort: number): Promise<CutProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; stalled: boolean }>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    const pair = { client, upstream, stalled: false };
    pairs.add(pair);
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (!pair.stalled) to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
    const close = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    // A stalled connection stays open towards the client even when the server ends it.
    upstream.on('close', () => pair.stalled || close()).on('error', () => pair.stalled || close());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('proxy has no address');
  return {
    port: address.port,
    cutAll: () => {
      for (const p of [...pairs]) {
        p.client.destroy();
        p.upstream.destroy();
      }
    },
    stallOpen: () => {
      for (const p of pairs) p.stalled = true;
    },
    stop: async () => {
      for (const p of [...pairs]) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The test's KubeConfig, pointed at another port on loopback. */
function viaPort(kc: KubeConfig, port: number): KubeConfig {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster');
  const url = new URL(cluster.server);
  url.port = String(port);
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: [{ ...cluster, server: url.toString().replace(/\/$/, '') }],
    users: kc.getUsers(),
    contexts: kc.getContexts(),
    currentContext: kc.getCurrentContext(),
  });
  return out;
}

/** Waits until cond() holds (polling). */
function until(what: string, cond: () => boolean, timeoutMs: number): Promise<true> {
  return waitFor(what, () => Promise.resolve(cond() ? true : undefined), timeoutMs);
}

function nodeInformer(kc: KubeConfig, restarts: string[], watchdogMs: number): Informer<V1Node> {
  const core = kc.makeApiClient(CoreV1Api);
  return startInformer<V1Node>({
    kc,
    path: '/api/v1/nodes',
    name: 'nodes',
    log,
    list: async () => JSON.parse(JSON.stringify(await core.listNode())) as { items: V1Node[] },
    watchdogMs,
    relistIntervalMs: 0,
    onRestart: (r) => restarts.push(r),
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-plumbing-'));
  kube = await startKube();
  certs = await makeCertificates(join(dir, 'pki'));
  await ensureNamespace(kube.kubeConfig, NS);
  await ensureNamespace(kube.kubeConfig, STOKER_NS);
});

afterAll(async () => {
  await kube?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('informer', () => {
  it('keeps delivering events after its connection is cut, and after a watch stalls silently', async () => {
    const apiPort = Number(new URL(kube.kubeConfig.getCurrentCluster()!.server).port);
    const proxy = await startCutProxy(apiPort);
    const restarts: string[] = [];
    const informer = nodeInformer(viaPort(kube.kubeConfig, proxy.port), restarts, 8_000);
    const added: string[] = [];
    informer.on('add', (n) => added.push(n.metadata?.name ?? ''));
    try {
      informer.start();
      await informer.synced;
      await createNode(kube.kubeConfig, 'inf-1');
      await until('inf-1 through the watch', () => added.includes('inf-1'), 30_000);

      // Every connection dies at once (an API server restart or a network blip looks like this).
      proxy.cutAll();
      await createNode(kube.kubeConfig, 'inf-2');
      await until('inf-2 after the cut', () => added.includes('inf-2'), 60_000);
      // Seen as an error or as an early end of the stream, depending on where the cut lands.
      expect(restarts.some((r) => r === 'error' || r === 'closed')).toBe(true);

      // Wait until a fresh watch delivers again (an event made after the restart settled).
      await new Promise((r) => setTimeout(r, 3_000));
      await createNode(kube.kubeConfig, 'inf-2b');
      await until('inf-2b through the new watch', () => added.includes('inf-2b'), 60_000);
      expect(restarts).not.toContain('watchdog');

      // The open watch stays connected but delivers nothing: only the watchdog can notice.
      proxy.stallOpen();
      await createNode(kube.kubeConfig, 'inf-3');
      await until('inf-3 after the stall', () => added.includes('inf-3'), 60_000);
      expect(restarts).toContain('watchdog');

      await deleteNode(kube.kubeConfig, 'inf-1');
      await until('inf-1 gone from the cache', () => !informer.get('inf-1'), 30_000);
    } finally {
      informer.stop();
      await proxy.stop();
      for (const n of ['inf-1', 'inf-2', 'inf-2b', 'inf-3']) await deleteNode(kube.kubeConfig, n);
    }
  });
});

describe('status writer', () => {
  it('writes the status subresource at most once a second however often it is asked', async () => {
    const api = warmupApi(kube.kubeConfig);
    await api.create(NS, 'rate', { images: [{ image: 'registry.example/app:1' }], suspend: true });
    const writer = new StatusWriter<Warmup, WarmupStatus>({ kc: kube.kubeConfig, group: GROUP, version: VERSION, plural: PLURAL, log });
    const started = Date.now();
    let i = 0;
    while (Date.now() - started < 3_000) {
      const n = ++i;
      writer.schedule(NS, 'rate', () => ({ phase: 'Running', succeededNodes: n }));
      await new Promise((r) => setTimeout(r, 10));
    }
    const elapsedSeconds = (Date.now() - started) / 1000;
    await writer.flush(NS, 'rate');
    const w = await api.get(NS, 'rate');
    expect(w?.status?.succeededNodes).toBe(i);
    expect(i).toBeGreaterThan(50);
    // One write per started second of scheduling, plus the final flush.
    expect(writer.writes).toBeGreaterThanOrEqual(2);
    expect(writer.writes).toBeLessThanOrEqual(Math.ceil(elapsedSeconds) + 2);
    await writer.stop();
    await api.delete(NS, 'rate');
  });

  it('meets a real 409 conflict, re-reads, recomputes from the fresh object and writes', async () => {
    const api = warmupApi(kube.kubeConfig);
    await api.create(NS, 'conflict', { images: [{ image: 'registry.example/app:1' }], suspend: true });
    const real = customObjectStatusApi<Warmup>(kube.kubeConfig, GROUP, VERSION, PLURAL);
    let interfere = 1;
    const writer = new StatusWriter<Warmup, WarmupStatus>({
      api: {
        get: async (ns, name) => {
          const read = await real.get(ns, name);
          if (interfere-- > 0) {
            // Someone else writes the status between our read and our write.
            await real.replaceStatus(ns, name, { ...read, status: { phase: 'Running', desiredNodes: 7 } });
          }
          return read;
        },
        replaceStatus: (ns, name, body) => real.replaceStatus(ns, name, body),
      },
      log,
    });
    writer.schedule(NS, 'conflict', (cur) => ({ ...cur.status, succeededNodes: 1 }));
    await writer.flush(NS, 'conflict');
    expect(writer.conflicts).toBe(1);
    const w = await api.get(NS, 'conflict');
    // The other writer's field survives: the computation ran again on the object it wrote.
    expect(w?.status).toMatchObject({ phase: 'Running', desiredNodes: 7, succeededNodes: 1 });
    await api.delete(NS, 'conflict');
  });
});

describe('event recorder', () => {
  it('records Events on the object and folds repeats into a count', async () => {
    const api = warmupApi(kube.kubeConfig);
    const w = await api.create(NS, 'evented', { images: [{ image: 'registry.example/app:1' }], suspend: true });
    const rec = new EventRecorder({ kc: kube.kubeConfig, component: 'stoker-controller', log });
    for (let i = 0; i < 3; i++) rec.record(w, 'Warning', 'NodeFailed', 'node "n-1": the agent did not answer');
    rec.record(w, 'Normal', 'Started', 'warming 1 node');
    await rec.idle();
    const core = kube.kubeConfig.makeApiClient(CoreV1Api);
    const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.name=evented' });
    const seen = list.items.map((e) => `${e.type} ${e.reason} x${e.count}: ${e.message}`).sort();
    expect(seen).toEqual(['Normal Started x1: warming 1 node', 'Warning NodeFailed x3: node "n-1": the agent did not answer']);
    expect(list.items.every((e) => e.involvedObject.uid === w.metadata.uid && e.involvedObject.kind === 'Warmup')).toBe(true);
    const printed = await kube.kubectl(['get', 'events', '-n', NS, '--field-selector', 'involvedObject.name=evented']);
    expect(printed).toMatch(/NodeFailed/);
    await api.delete(NS, 'evented');
  });
});

describe('leader election', () => {
  it('lets one of two electors lead and hands over when the leader stops', async () => {
    const started: string[] = [];
    const make = (identity: string) =>
      new LeaderElector({
        kc: kube.kubeConfig,
        namespace: STOKER_NS,
        name: 'plumbing-leader',
        identity,
        leaseDurationMs: 10_000,
        renewDeadlineMs: 7_000,
        retryPeriodMs: 500,
        log,
        onStartedLeading: () => started.push(identity),
      });
    const a = make('replica-a');
    const b = make('replica-b');
    try {
      a.start();
      b.start();
      const leader = await waitFor('a leader', () => Promise.resolve(a.isLeader() ? a : b.isLeader() ? b : undefined), 30_000);
      const follower = leader === a ? b : a;
      await new Promise((r) => setTimeout(r, 2_000));
      expect(follower.isLeader()).toBe(false);
      expect(started.length).toBe(1);
      const coordination = kube.kubeConfig.makeApiClient(CoordinationV1Api);
      const lease = await coordination.readNamespacedLease({ namespace: STOKER_NS, name: 'plumbing-leader' });
      expect(lease.spec?.holderIdentity).toBe(started[0]);

      await leader.stop();
      await until('the follower to lead', () => follower.isLeader(), 30_000);
      const after = await coordination.readNamespacedLease({ namespace: STOKER_NS, name: 'plumbing-leader' });
      expect(after.spec?.holderIdentity).not.toBe(started[0]);
      expect(after.spec?.leaseTransitions).toBe(1);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe('agent endpoints', () => {
  it("show each node's ready agent from the EndpointSlices Kubernetes writes, and nothing else", async () => {
    // No kube-controller-manager runs here: the slices are written as its endpointslice controller would.
    const discovery = kube.kubeConfig.makeApiClient(DiscoveryV1Api);
    const selector = agentSliceSelector(AGENT_SERVICE);
    const slices = startInformer<V1EndpointSlice>({
      kc: kube.kubeConfig,
      path: `/apis/discovery.k8s.io/v1/namespaces/${STOKER_NS}/endpointslices`,
      labelSelector: selector,
      name: 'agent-endpoints',
      log,
      list: async () => JSON.parse(JSON.stringify(await discovery.listNamespacedEndpointSlice({ namespace: STOKER_NS, labelSelector: selector }))) as { items: V1EndpointSlice[] },
    });
    const directory = new AgentEndpointDirectory({ informer: slices, service: AGENT_SERVICE, log });
    let changes = 0;
    directory.on('change', () => changes++);
    try {
      await publishAgentEndpoint(kube.kubeConfig, { namespace: STOKER_NS, node: 'ep-1', address: '192.0.2.10', port: 7443 });
      await publishAgentEndpoint(kube.kubeConfig, { namespace: STOKER_NS, node: 'ep-2', address: '2001:db8::5', port: 7444 });
      // A slice for the same Service that the endpointslice controller did not write.
      const forged = agentEndpointSlice({ namespace: STOKER_NS, node: 'ep-3', address: '192.0.2.66', port: 7443 });
      forged.metadata = { name: 'stoker-agent-forged', namespace: STOKER_NS, labels: { 'kubernetes.io/service-name': AGENT_SERVICE } };
      await discovery.createNamespacedEndpointSlice({ namespace: STOKER_NS, body: forged });
      slices.start();
      await slices.synced;
      await until('two live agents', () => directory.live().size === 2, 30_000);
      expect(directory.live()).toEqual(
        new Map([
          ['ep-1', { endpoint: '192.0.2.10:7443', pod: 'stoker-agent-ep-1' }],
          ['ep-2', { endpoint: '[2001:db8::5]:7444', pod: 'stoker-agent-ep-2' }],
        ]),
      );

      // ep-2's readiness probe fails: its endpoint turns not ready, and the agent is gone at once.
      const before = changes;
      await publishAgentEndpoint(kube.kubeConfig, { namespace: STOKER_NS, node: 'ep-2', address: '2001:db8::5', port: 7444, ready: false });
      await until('ep-2 not ready', () => !directory.get('ep-2'), 30_000);
      expect(changes).toBeGreaterThan(before);
      // ep-1's pod is deleted: its endpoint goes.
      await withdrawAgentEndpoint(kube.kubeConfig, { namespace: STOKER_NS, node: 'ep-1' });
      await until('ep-1 gone', () => !directory.get('ep-1'), 30_000);
      expect(directory.live().size).toBe(0);
    } finally {
      directory.stop();
      slices.stop();
    }
  });
});

describe('stoker controller', () => {
  interface Proc {
    child: ChildProcess;
    output: () => string;
    exited: Promise<number | null>;
    port: number;
  }

  async function spawnController(identity: string): Promise<Proc> {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO_ROOT, 'bin', 'main.ts'),
        'controller',
        '--kubeconfig',
        kube.kubeconfigPath,
        '--namespace',
        STOKER_NS,
        '--watch-namespace',
        NS,
        '--tls-cert-file',
        certs.clientCert,
        '--tls-private-key-file',
        certs.clientKey,
        '--agent-ca-file',
        certs.caCert,
        '--http-listen',
        `127.0.0.1:${port}`,
        '--leader-election-id',
        identity,
        '--lease-duration',
        '10s',
        '--renew-deadline',
        '7s',
        '--retry-period',
        '1s',
      ],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STOKER_LOG_LEVEL: 'info' } },
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, output: () => out, exited, port };
  }

  async function get(port: number, path: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  }

  it('serves health and metrics, elects one leader of two, reconciles, and hands over on SIGTERM', async () => {
    const procs = [await spawnController('ctl-a'), await spawnController('ctl-b')];
    const coordination = kube.kubeConfig.makeApiClient(CoordinationV1Api);
    const api = warmupApi(kube.kubeConfig);
    try {
      for (const p of procs) {
        await waitFor('/readyz', async () => ((await get(p.port, '/readyz')).status === 200 ? true : undefined), 60_000);
        expect(await get(p.port, '/healthz')).toEqual({ status: 200, body: 'ok' });
      }
      const holder = await waitFor(
        'a leader',
        async () => {
          const l = await coordination.readNamespacedLease({ namespace: STOKER_NS, name: 'stoker-controller' });
          return l.spec?.holderIdentity || undefined;
        },
        60_000,
      );
      expect(['ctl-a', 'ctl-b']).toContain(holder);
      const leader = procs[holder === 'ctl-a' ? 0 : 1]!;
      const follower = procs[holder === 'ctl-a' ? 1 : 0]!;
      const gauge = (body: string) => /^stoker_controller_leader (\d)/m.exec(body)?.[1];
      expect(gauge((await get(leader.port, '/metrics')).body)).toBe('1');
      expect(gauge((await get(follower.port, '/metrics')).body)).toBe('0');

      // The leader reconciles: a selector that matches no node finishes the Warmup, never stuck.
      await api.create(NS, 'nowhere', { images: [{ image: 'registry.example/app:1' }], nodes: { selector: { matchLabels: { 'stoker.io/pool': 'none' } } } });
      const failed = await waitFor('nowhere to fail', async () => {
        const w = await api.get(NS, 'nowhere');
        return w?.status?.phase === 'Failed' ? w : undefined;
      });
      expect(failed.status?.conditions?.find((c) => c.type === 'Failed')?.reason).toBe('NoMatchingNodes');
      const metrics = (await get(leader.port, '/metrics')).body;
      expect(metrics).toMatch(/^stoker_warmups\{phase="Failed"\} 1$/m);
      expect(Number(/^stoker_status_writes_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);

      // SIGTERM: the leader exits 0 and releases the Lease; the follower takes over.
      leader.child.kill('SIGTERM');
      expect(await leader.exited).toBe(0);
      await waitFor(
        'the follower to lead',
        async () => {
          const l = await coordination.readNamespacedLease({ namespace: STOKER_NS, name: 'stoker-controller' });
          return l.spec?.holderIdentity === (holder === 'ctl-a' ? 'ctl-b' : 'ctl-a') ? true : undefined;
        },
        60_000,
      );
      await waitFor('leader gauge on the follower', async () => (gauge((await get(follower.port, '/metrics')).body) === '1' ? true : undefined), 30_000);
      expect(leader.output()).not.toMatch(/BEGIN|PRIVATE KEY/);
    } finally {
      for (const p of procs) {
        if (p.child.exitCode === null) p.child.kill('SIGTERM');
        await p.exited;
      }
      await api.delete(NS, 'nowhere');
    }
  });
});
