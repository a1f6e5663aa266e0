// A node whose image filesystem is too small, against real parts: a containerd whose root is a
// 48 MiB tmpfs (mounted in its temp dir, unmounted when the test ends or dies), a real registry
// behind a throttled proxy (so a pull takes seconds, as on a real network), the built
// `stoker warm`, a real agent over mutual TLS, and the controller against a real kube-apiserver.
// The tests assert what a user sees (the exit code and the one error line with the image, the
// mount point and both sizes; the agent's Warm result and NodeStatus; the Warmup's status and
// Events), that the pull stopped before the disk filled (the tmpfs's used bytes, sampled during
// the pull), that a sibling image that fits still arrives, and that the controller retries a full
// node only once its disk has grown.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAgentConfig } from '../agent/config.js';
import { startAgent } from '../agent/run.js';
import type { Warmup } from '../controller/api/types.js';
import type { RunningController } from '../controller/main.js';
import { agentProto, type AgentClient, type ImageResult__Output, type WarmEvent__Output } from '../proto/agent.js';
import { createLogger } from '../proto/common/log.js';
import type { NodeStatusResponse__Output } from '../proto/gen/stoker/v1/NodeStatusResponse.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { pushRandomImageDetailed } from './support/images.js';
import { startKube, type Kube } from './support/kube.js';
import { REPO_ROOT, run } from './support/proc.js';
import { startThrottledProxy, type ThrottledProxy } from './support/proxy.js';
import { addRegistryHost, startRegistry, type Registry } from './support/registry.js';
import { ensureNamespace, type SimNode, startSimNode, startTestController, waitFor, warmupApi } from './support/sim-cluster.js';

const CLI = join(REPO_ROOT, 'dist', 'bin', 'stoker.cjs');
const MiB = 1024 * 1024;
const ROOT_BYTES = 48 * MiB;
/** Bytes per second through the proxy: a 60 MiB image would take 7.5 s to download. */
const RATE = 8 * MiB;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function warm(args: string[]): Promise<CliResult> {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'warm', ...args, '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', HOME: tmpdir() },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms: performance.now() - started }),
    );
  });
}

function images(result: CliResult): ImageResult__Output[] {
  return (JSON.parse(result.stdout) as { images: ImageResult__Output[] }).images;
}

/** "47.9 MiB" -> bytes (the CLI's one-decimal binary units). */
function bytesOf(text: string): number {
  const m = /^([\d.]+) (B|KiB|MiB|GiB)$/.exec(text);
  if (!m?.[1] || !m[2]) throw new Error(`not a size: ${text}`);
  return Number(m[1]) * { B: 1, KiB: 1024, MiB: MiB, GiB: 1024 * MiB }[m[2] as 'B'];
}

/** Samples the tmpfs's used bytes every 20 ms until stopped; returns the peak. */
function sampleUsed(containerd: Containerd): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, (await containerd.rootUsage()).usedBytes);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

let registry: Registry;
let proxy: ThrottledProxy;
let dir: string;
let certs: Certificates;

/** A containerd on a 48 MiB tmpfs that pulls from the registry, directly and through the proxy. */
async function fullNode(): Promise<Containerd> {
  const containerd = await startContainerd({ rootTmpfsBytes: ROOT_BYTES });
  await registry.addTo(containerd);
  await addRegistryHost(containerd, proxy);
  return containerd;
}

/** The mount point CRI ImageFsInfo reports: the snapshotter's directory inside the tmpfs. */
const mountpointOf = (containerd: Containerd): string => join(containerd.rootDir, 'io.containerd.snapshotter.v1.native');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-nospace-'));
  [registry, certs] = await Promise.all([startRegistry(), makeCertificates(join(dir, 'pki')), run('npm', ['run', 'build'])]);
  proxy = await startThrottledProxy(registry, RATE);
  expect(existsSync(CLI)).toBe(true);
});

afterAll(async () => {
  await Promise.allSettled([proxy?.stop(), registry?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('stoker warm and the agent on a node whose image filesystem is too small', () => {
  let containerd: Containerd;
  let mountpoint: string;

  beforeAll(async () => {
    containerd = await fullNode();
    mountpoint = mountpointOf(containerd);
  });

  afterAll(async () => {
    await containerd?.stop();
    // The tmpfs went with containerd's directory.
    if (containerd) expect(existsSync(containerd.rootDir)).toBe(false);
  });

  it('refuses an image larger than the free space as soon as its manifest arrives, before the disk fills', async () => {
    const big = await pushRandomImageDetailed(registry, 'nospace/big', { layers: 3, layerSizeBytes: 20 * MiB });
    const image = big.ref.replace(registry.host, proxy.host);
    const before = await containerd.rootUsage();
    const forwardedBefore = proxy.bytesForwarded();
    const sampler = sampleUsed(containerd);
    const result = await warm(['--image', image, '--cri-endpoint', containerd.endpoint]);
    const peak = await sampler.stop();
    const forwarded = proxy.bytesForwarded() - forwardedBefore;

    expect(result.code, result.stderr).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const m = /^error: NO_SPACE: cannot pull (\S+): it needs at least (.+) but the image filesystem (\S+) has (.+) free$/.exec(lines[0] ?? '');
    expect(m, lines[0]).not.toBeNull();
    console.log(lines[0]);
    const [, named, need, mount, free] = m ?? [];
    expect(named).toBe(image);
    expect(mount).toBe(mountpoint);
    // Both sizes are the real ones: the image's blobs, and what statfs said once the manifest was
    // in, which is what it said before the pull less the pull's first bytes (a few hundred KiB).
    expect(Math.abs(bytesOf(need ?? '') - big.layerBytes)).toBeLessThan(0.1 * MiB);
    expect(before.freeBytes - bytesOf(free ?? '')).toBeGreaterThan(-0.1 * MiB);
    expect(before.freeBytes - bytesOf(free ?? '')).toBeLessThan(1 * MiB);
    expect(images(result)[0]?.failure?.code).toBe('NO_SPACE');

    // It stopped early: the disk never came near full, and little of the image was downloaded.
    const written = peak - before.usedBytes;
    const seconds = images(result)[0]?.seconds ?? NaN;
    console.log(
      `free ${before.freeBytes} B, image ${big.layerBytes} B, written before cancel ${written} B (peak used ${peak} of ${before.sizeBytes}), ` +
        `sent by the registry ${forwarded} B, failed after ${seconds} s (CLI ${Math.round(result.ms)} ms)`,
    );
    expect(written).toBeLessThan(before.freeBytes / 2);
    expect(forwarded).toBeLessThan(big.layerBytes / 2);
    expect(seconds).toBeLessThan(3);
    // What the cancelled pull left behind is small, and nothing of the image is in the runtime.
    expect((await containerd.rootUsage()).usedBytes - before.usedBytes).toBeLessThan(before.freeBytes / 2);
    expect(await containerd.imagePresent(image)).toBe(false);
  });

  it('still pulls a sibling image that fits, in the same run', async () => {
    const [big, small] = await Promise.all([
      pushRandomImageDetailed(registry, 'nospace/big-2', { layers: 3, layerSizeBytes: 20 * MiB }),
      pushRandomImageDetailed(registry, 'nospace/small', { layers: 1, layerSizeBytes: 4 * MiB }),
    ]);
    const bigRef = big.ref.replace(registry.host, proxy.host);
    const smallRef = small.ref.replace(registry.host, proxy.host);
    const result = await warm(['--image', bigRef, '--image', smallRef, '--cri-endpoint', containerd.endpoint]);
    expect(result.code, result.stderr).toBe(1);
    expect(images(result).map((r) => [r.image, r.state, r.failure?.code ?? null])).toEqual([
      [bigRef, 'FAILED', 'NO_SPACE'],
      [smallRef, 'DONE', null],
    ]);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^error: NO_SPACE: cannot pull ${bigRef.replace(/[.]/g, '\\.')}: it needs at least `));
    expect(await containerd.imagePresent(smallRef)).toBe(true);
    expect(await containerd.imagePresent(bigRef)).toBe(false);
  });

  it("names the filesystem and its free bytes when the runtime runs out of space while unpacking", async () => {
    // The download fits, but unpacking needs as much again: containerd itself hits ENOSPC.
    const free = (await containerd.rootUsage()).freeBytes;
    const layerSize = Math.floor((free * 0.75) / 3);
    const pushed = await pushRandomImageDetailed(registry, 'nospace/unpack', { layers: 3, layerSizeBytes: layerSize });
    const image = pushed.ref.replace(registry.host, proxy.host);
    const result = await warm(['--image', image, '--cri-endpoint', containerd.endpoint]);
    expect(result.code, result.stderr).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const m = /^error: NO_SPACE: cannot pull (\S+): the image filesystem (\S+) ran out of space \((.+) free after the failed pull; the image needs at least (.+)\)$/.exec(
      lines[0] ?? '',
    );
    expect(m, lines[0]).not.toBeNull();
    console.log(lines[0]);
    const [, named, mount, after, need] = m ?? [];
    expect(named).toBe(image);
    expect(mount).toBe(mountpoint);
    expect(Math.abs(bytesOf(need ?? '') - pushed.layerBytes)).toBeLessThan(0.1 * MiB);
    expect(bytesOf(after ?? '')).toBeLessThanOrEqual((await containerd.rootUsage()).sizeBytes);
    expect(images(result)[0]?.failure?.code).toBe('NO_SPACE');
    expect(await containerd.imagePresent(image)).toBe(false);
  });

  it("reaches the agent's Warm stream, and the agent's NodeStatus names the image filesystem and its free bytes", async () => {
    const big = await pushRandomImageDetailed(registry, 'nospace/agent', { layers: 3, layerSizeBytes: 20 * MiB });
    const image = big.ref.replace(registry.host, proxy.host);
    const agent = await startAgent(
      resolveAgentConfig({
        nodeName: 'node-full',
        criEndpoint: containerd.endpoint,
        grpcListen: '127.0.0.1:0',
        httpListen: '127.0.0.1:0',
        tlsCertFile: certs.serverCert,
        tlsPrivateKeyFile: certs.serverKey,
        clientCaFile: certs.caCert,
        logLevel: 'warn',
      }),
      { logger: createLogger({ name: 'stoker-agent', level: 'silent' }), processMetrics: false },
    );
    const creds = grpc.credentials.createSsl(Buffer.from(certs.caCertPem), Buffer.from(certs.clientKeyPem), Buffer.from(certs.clientCertPem));
    const client: AgentClient = new (agentProto().Agent)(agent.grpcAddress, creds, { 'grpc.ssl_target_name_override': 'localhost' });
    try {
      const status = await new Promise<NodeStatusResponse__Output>((resolve, reject) =>
        client.nodeStatus({ nodeName: 'node-full', images: [] }, { deadline: Date.now() + 15_000 }, (err, res) => (err || !res ? reject(err ?? new Error('no answer')) : resolve(res))),
      );
      const usage = await containerd.rootUsage();
      expect(status.imageFilesystem?.mountpoint).toBe(mountpoint);
      expect(Math.abs((status.imageFilesystem?.freeBytes ?? 0) - usage.freeBytes)).toBeLessThan(MiB);

      const events: WarmEvent__Output[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = client.warm({ taskId: 'full-1', nodeName: 'node-full', images: [{ image, pullPolicy: 'ALWAYS' }] });
        call.on('data', (e: WarmEvent__Output) => events.push(e));
        call.on('error', reject);
        call.on('end', () => resolve());
      });
      const result = events.find((e) => e.result)?.result;
      expect(result?.succeeded).toBe(false);
      expect(result?.images[0]?.failure?.code).toBe('NO_SPACE');
      expect(result?.images[0]?.failure?.message).toMatch(new RegExp(`^cannot pull ${image.replace(/[.]/g, '\\.')}: it needs at least 60\\.0 MiB but the image filesystem ${mountpoint} has [\\d.]+ MiB free$`));
      expect(events.some((e) => e.image?.image === image && e.image.state === 'FAILED')).toBe(true);
      const metrics = await (await fetch(`${agent.httpUrl}/metrics`)).text();
      expect(metrics).toMatch(/^stoker_image_pull_failures_total\{code="NO_SPACE"\} 1$/m);
    } finally {
      client.close();
      await agent.stop();
    }
  });
});

describe('the controller, with a node whose image filesystem is too small', () => {
  const NS = 'default';
  const NODE = 'node-full';
  let kube: Kube;
  let containerd: Containerd;
  let node: SimNode;
  let controller: RunningController;
  let api: ReturnType<typeof warmupApi>;

  beforeAll(async () => {
    [kube, containerd] = await Promise.all([startKube(), fullNode()]);
    await ensureNamespace(kube.kubeConfig, 'stoker-system');
    api = warmupApi(kube.kubeConfig);
    node = await startSimNode({ kc: kube.kubeConfig, certs, name: NODE, containerd, namespace: 'stoker-system' });
    controller = await startTestController(kube, certs, 'stoker-system');
  });

  afterAll(async () => {
    await controller?.stop();
    await node?.stop();
    await containerd?.stop();
    await kube?.stop();
  });

  const noSpaceFailures = (): Promise<number> => node.metric('stoker_image_pull_failures_total', { code: 'NO_SPACE' });
  const finished = (name: string): Promise<Warmup> => api.finished(NS, name);

  it('retries a node that failed NO_SPACE only once its image filesystem has grown, and then warms it', async () => {
    const big = await pushRandomImageDetailed(registry, 'nospace/ctl-grow', { layers: 3, layerSizeBytes: 20 * MiB });
    const image = big.ref.replace(registry.host, proxy.host);
    await api.create(NS, 'grow', { images: [{ image, pullPolicy: 'Always' }], nodes: { names: [NODE] }, policy: { backoffLimit: 3, timeoutSeconds: 300 } });
    await waitFor('the first NO_SPACE failure', async () => ((await noSpaceFailures()) >= 1 ? true : undefined));
    // Retried on the usual backoff (1 s, 2 s), the node would have failed twice more by now.
    await new Promise((r) => setTimeout(r, 4_000));
    expect(await noSpaceFailures()).toBe(1);
    expect((await api.get(NS, 'grow'))?.status?.phase).toBe('Running');

    // The node's disk grows (an operator pruned images, or resized it): the node is retried and
    // warmed. The native snapshotter copies each layer's parent, so 60 MiB need about 180 MiB.
    await run('mount', ['-o', `remount,size=${256 * MiB}`, containerd.rootDir]);
    proxy.setRate(64 * MiB);
    const w = await finished('grow');
    proxy.setRate(RATE);
    expect(w.status).toMatchObject({ phase: 'Succeeded', succeededNodes: 1, failedNodes: 0 });
    expect(await noSpaceFailures()).toBe(1);
    expect(await containerd.imagePresent(image)).toBe(true);
  });

  it('fails the node NoSpace, in status and Events, when its disk does not grow within the attempt timeout', async () => {
    const free = (await containerd.rootUsage()).freeBytes;
    const big = await pushRandomImageDetailed(registry, 'nospace/ctl-full', { layers: 2, layerSizeBytes: Math.ceil((free * 0.6) / MiB) * MiB });
    const image = big.ref.replace(registry.host, proxy.host);
    const failuresBefore = await noSpaceFailures();
    await api.create(NS, 'stays-full', { images: [{ image, pullPolicy: 'Always' }], nodes: { names: [NODE] }, policy: { backoffLimit: 3, timeoutSeconds: 6 } });
    const w = await finished('stays-full');
    expect(w.status).toMatchObject({ phase: 'Failed', succeededNodes: 0, failedNodes: 1 });
    expect(w.status?.conditions?.find((c) => c.type === 'Failed')).toMatchObject({ status: 'True', reason: 'NodesFailed' });
    const failed = w.status?.failedNodeList?.[0];
    expect(failed).toMatchObject({ name: NODE, reason: 'NoSpace' });
    const shown = `cannot pull ${image}: it needs at least`;
    expect(failed?.message).toMatch(new RegExp(`^${shown.replace(/[.]/g, '\\.')} [\\d.]+ MiB but the image filesystem ${mountpointOf(containerd)} has [\\d.]+ MiB free$`));
    // Not retried: one pull, one failure.
    expect((await noSpaceFailures()) - failuresBefore).toBe(1);
    const core = kube.kubeConfig.makeApiClient(CoreV1Api);
    const events = await core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.name=stays-full' });
    expect(events.items.map((e) => `${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`)).toContain(`Warning NodeFailed: node ${NODE}: NoSpace: ${failed?.message ?? ''}`);
  });
  it('a keepWarm Warmup lists the full node among those not warm, with NoSpace and the sizes, and stays Running', async () => {
    const free = (await containerd.rootUsage()).freeBytes;
    const big = await pushRandomImageDetailed(registry, 'nospace/ctl-keep', { layers: 2, layerSizeBytes: Math.ceil((free * 0.6) / MiB) * MiB });
    const image = big.ref.replace(registry.host, proxy.host);
    await api.create(NS, 'keep-full', { images: [{ image }], nodes: { names: [NODE] }, keepWarm: true, policy: { backoffLimit: 3, timeoutSeconds: 6 } });
    const w = await waitFor('the keepWarm Warmup to list the node as failed', async () => {
      const cur = await api.get(NS, 'keep-full');
      return cur?.status?.failedNodeList?.length ? cur : undefined;
    });
    expect(w.status?.phase).toBe('Running');
    expect(w.status?.failedNodeList?.[0]).toMatchObject({ name: NODE, reason: 'NoSpace' });
    expect(w.status?.failedNodeList?.[0]?.message).toMatch(/has [\d.]+ MiB free$/);
    const warm = w.status?.conditions?.find((c) => c.type === 'Warm');
    expect(warm).toMatchObject({ status: 'False' });
    expect(warm?.message).toBe('0 of 1 node(s) warm; 1 failed, tried again at their next recheck');
    await api.delete(NS, 'keep-full');
  });
});
