// The agent against real parts: a private containerd, real registries, real certificates. Most
// tests run the agent in this process (startAgent); shutdown, start-up errors and log redaction
// run the built CLI (`node dist/bin/stoker.cjs agent ...`) as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAgentConfig, type AgentFlagInput } from '../agent/config.js';
import { startAgent, type RunningAgent } from '../agent/run.js';
import { agentProto, type AgentClient, type WarmEvent__Output, type WarmResult__Output } from '../proto/agent.js';
import type { NodeStatusResponse__Output } from '../proto/gen/stoker/v1/NodeStatusResponse.js';
import type { CancelResponse__Output } from '../proto/gen/stoker/v1/CancelResponse.js';
import type { WarmRequest } from '../proto/gen/stoker/v1/WarmRequest.js';
import { createLogger } from '../proto/common/log.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { writeProviderConfig, writeProviderPlugin } from './support/credential-programs.js';
import { pushRandomImage } from './support/images.js';
import { REPO_ROOT, run } from './support/proc.js';
import { startThrottledProxy, type ThrottledProxy } from './support/proxy.js';
import { addRegistryHost, startRegistry, startStallingRegistry, type Registry, type StallingRegistry } from './support/registry.js';

const NODE = 'node-a';
const AUTH = { username: 'stoker', password: 'Kn0wn-Pa55word-for-redaction-test' };

/** client: the controller's certificate; other: same CA, another name; foreign: another CA. */
type Identity = 'client' | 'none' | 'other' | 'foreign';

function agentClient(address: string, certs: Certificates, who: Identity = 'client'): AgentClient {
  const ca = Buffer.from(certs.caCertPem);
  const creds =
    who === 'none'
      ? grpc.credentials.createSsl(ca)
      : who === 'client'
        ? grpc.credentials.createSsl(ca, Buffer.from(certs.clientKeyPem), Buffer.from(certs.clientCertPem))
        : who === 'other'
          ? grpc.credentials.createSsl(ca, Buffer.from(certs.otherClientKeyPem), Buffer.from(certs.otherClientCertPem))
          : grpc.credentials.createSsl(ca, Buffer.from(certs.foreignClientKeyPem), Buffer.from(certs.foreignClientCertPem));
  // The test server certificate names localhost; TLS SNI must not carry the IP address.
  return new (agentProto().Agent)(address, creds, { 'grpc.ssl_target_name_override': 'localhost' });
}

function nodeStatus(client: AgentClient, nodeName: string, images: string[] = []): Promise<NodeStatusResponse__Output> {
  return new Promise((resolve, reject) => {
    client.nodeStatus({ nodeName, images }, { deadline: Date.now() + 15_000 }, (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res)));
  });
}

function cancel(client: AgentClient, taskId: string, nodeName = NODE): Promise<CancelResponse__Output> {
  return new Promise((resolve, reject) => {
    client.Cancel({ taskId, nodeName }, { deadline: Date.now() + 15_000 }, (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res)));
  });
}

/** Bytes written so far into each blob containerd is ingesting. */
async function ingestOffsets(containerd: Containerd): Promise<Map<string, number>> {
  return new Map((await containerd.ingests()).map((i) => [i.ref, i.offset]));
}

interface WarmOutcome {
  events: WarmEvent__Output[];
  result: WarmResult__Output | undefined;
  error: grpc.ServiceError | undefined;
}

/** Runs one Warm call to its end; `onEvent` may cancel it. */
function warm(
  client: AgentClient,
  request: WarmRequest,
  onEvent?: (e: WarmEvent__Output, call: grpc.ClientReadableStream<WarmEvent__Output>) => void,
): Promise<WarmOutcome> {
  return new Promise((resolve) => {
    const events: WarmEvent__Output[] = [];
    const call = client.warm(request);
    let result: WarmResult__Output | undefined;
    call.on('data', (e: WarmEvent__Output) => {
      events.push(e);
      if (e.result) result = e.result;
      onEvent?.(e, call);
    });
    call.on('error', (error: grpc.ServiceError) => resolve({ events, result, error }));
    call.on('end', () => resolve({ events, result, error: undefined }));
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function agentFlags(certs: Certificates, containerd: Containerd, extra: AgentFlagInput = {}): AgentFlagInput {
  return {
    nodeName: NODE,
    criEndpoint: containerd.endpoint,
    grpcListen: '127.0.0.1:0',
    httpListen: '127.0.0.1:0',
    tlsCertFile: certs.serverCert,
    tlsPrivateKeyFile: certs.serverKey,
    clientCaFile: certs.caCert,
    runtimeProbeInterval: '500ms',
    logLevel: 'warn',
    ...extra,
  };
}

describe('stoker agent', () => {
  let dir: string;
  let certs: Certificates;
  let containerd: Containerd;
  let registry: Registry;
  let locked: Registry;
  let proxy: ThrottledProxy;
  let stalling: StallingRegistry;
  let agent: RunningAgent;
  let client: AgentClient;
  let models: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-agent-test-'));
    [certs, containerd, registry, locked, stalling] = await Promise.all([
      makeCertificates(join(dir, 'pki')),
      startContainerd(),
      startRegistry(),
      startRegistry({ auth: AUTH }),
      startStallingRegistry(),
    ]);
    proxy = await startThrottledProxy(registry, 512 * 1024);
    await registry.addTo(containerd);
    await addRegistryHost(containerd, locked);
    await addRegistryHost(containerd, proxy);
    await addRegistryHost(containerd, stalling);
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logLines.push(chunk.toString());
        cb();
      },
    });
    models = join(dir, 'models');
    await mkdir(join(models, 'llama'), { recursive: true });
    await writeFile(join(models, 'llama', 'weights.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    await writeFile(join(models, 'llama', 'notes.txt'), 'hello');
    agent = await startAgent(resolveAgentConfig(agentFlags(certs, containerd, { allowedRoot: [models] })), {
      logger: createLogger({ name: 'stoker-agent', level: 'info', destination }),
    });
    client = agentClient(agent.grpcAddress, certs);
  });

  afterAll(async () => {
    client?.close();
    await agent?.stop();
    await Promise.allSettled([containerd?.stop(), registry?.stop(), locked?.stop(), proxy?.stop(), stalling?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('mutual TLS', () => {
    it('answers a client whose certificate chains to the client CA', async () => {
      const status = await nodeStatus(client, NODE);
      expect(status.nodeName).toBe(NODE);
      expect(status.runtimeReady).toBe(true);
      expect(status.runtimeName).toBe('containerd');
      expect(status.runtimeVersion).not.toBe('');
    });

    it('gives nothing to a client without a certificate', async () => {
      const anonymous = agentClient(agent.grpcAddress, certs, 'none');
      try {
        const err = await nodeStatus(anonymous, NODE).then(() => undefined, (e: grpc.ServiceError) => e);
        expect(err).toBeDefined();
        expect(err?.code).toBe(grpc.status.UNAVAILABLE);
      } finally {
        anonymous.close();
      }
    });

    it('gives nothing to a client whose certificate comes from another CA', async () => {
      const foreign = agentClient(agent.grpcAddress, certs, 'foreign');
      try {
        const err = await nodeStatus(foreign, NODE).then(() => undefined, (e: grpc.ServiceError) => e);
        expect(err).toBeDefined();
        expect(err?.code).toBe(grpc.status.UNAVAILABLE);
        const outcome = await warm(foreign, { taskId: 'foreign-1', nodeName: NODE, images: [{ image: `${registry.host}/never/pulled:v1` }] });
        expect(outcome.events).toEqual([]);
        expect(outcome.error?.code).toBe(grpc.status.UNAVAILABLE);
      } finally {
        foreign.close();
      }
    });

    it('refuses a certificate of the same CA that does not name the controller: PERMISSION_DENIED on every method, nothing pulled', async () => {
      const image = await pushRandomImage(registry, 'agent/intruder', { layerSizeBytes: 64 * 1024 });
      const intruder = agentClient(agent.grpcAddress, certs, 'other');
      const denied = 'this agent serves only "stoker-controller"; the client certificate names "stoker-intruder"';
      try {
        const err = await nodeStatus(intruder, NODE, [image]).then(() => undefined, (e: grpc.ServiceError) => e);
        expect({ code: err?.code, details: err?.details }).toEqual({ code: grpc.status.PERMISSION_DENIED, details: denied });
        const outcome = await warm(intruder, { taskId: 'intruder-1', nodeName: NODE, images: [{ image }] });
        expect(outcome.events).toEqual([]);
        expect({ code: outcome.error?.code, details: outcome.error?.details }).toEqual({ code: grpc.status.PERMISSION_DENIED, details: denied });
        const refused = await cancel(intruder, 'intruder-1').then(() => undefined, (e: grpc.ServiceError) => e);
        expect({ code: refused?.code, details: refused?.details }).toEqual({ code: grpc.status.PERMISSION_DENIED, details: denied });
      } finally {
        intruder.close();
      }
      // The controller's certificate sees that nothing was pulled.
      expect((await nodeStatus(client, NODE, [image])).images[0]?.present).toBe(false);
    });
  });

  it('takes rotated TLS files without a restart, and keeps the current ones when the new files are broken', async () => {
    const pki = join(dir, 'rotating');
    await mkdir(pki);
    for (const f of ['server.crt', 'server.key', 'ca.crt']) await copyFile(join(certs.dir, f), join(pki, f));
    const rotating = await startAgent(
      resolveAgentConfig(
        agentFlags(certs, containerd, {
          tlsCertFile: join(pki, 'server.crt'),
          tlsPrivateKeyFile: join(pki, 'server.key'),
          clientCaFile: join(pki, 'ca.crt'),
          tlsReloadInterval: '200ms',
        }),
      ),
      { logger: createLogger({ name: 'stoker-agent', level: 'silent' }), processMetrics: false },
    );
    /** NodeStatus through a fresh connection: the node name, or the gRPC error. */
    const ask = async (who: Identity): Promise<string> => {
      const c = agentClient(rotating.grpcAddress, certs, who);
      try {
        return (await nodeStatus(c, NODE)).nodeName;
      } catch (err) {
        return `error ${(err as grpc.ServiceError).code}`;
      } finally {
        c.close();
      }
    };
    try {
      expect(await ask('client')).toBe(NODE);
      expect(await ask('foreign')).toBe(`error ${grpc.status.UNAVAILABLE}`);

      // The client CA is rotated to the other CA: its clients get answers, the old ones nothing.
      await writeFile(join(pki, 'ca.crt'), certs.foreignCaCertPem);
      await waitFor('the rotated client CA to be taken', async () => ((await ask('foreign')) === NODE ? true : undefined));
      expect(await ask('client')).toBe(`error ${grpc.status.UNAVAILABLE}`);

      // A broken file is not taken: the agent keeps answering with what it has.
      await writeFile(join(pki, 'ca.crt'), 'not a certificate\n');
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await ask('foreign')).toBe(NODE);
    } finally {
      await rotating.stop();
    }
  });

  it('refuses a request meant for another node, naming both nodes', async () => {
    const image = `${registry.host}/wrong/node:v1`;
    const outcome = await warm(client, { taskId: 'wrong-node-1', nodeName: 'node-b', images: [{ image }] });
    expect(outcome.error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(outcome.error?.details).toContain('"node-b"');
    expect(outcome.error?.details).toContain(`"${NODE}"`);
    expect(outcome.error?.metadata.get('stoker-error-code')).toEqual(['WRONG_NODE']);
    expect(outcome.result?.succeeded).toBe(false);
    expect(outcome.result?.failure?.code).toBe('WRONG_NODE');

    const err = await nodeStatus(client, 'node-b').then(() => undefined, (e: grpc.ServiceError) => e);
    expect(err?.code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('refuses a malformed request with a message naming the bad value', async () => {
    const outcome = await warm(client, { taskId: 'bad id with spaces', nodeName: NODE, images: [{ image: 'busybox' }] });
    expect(outcome.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(outcome.error?.details).toContain('"bad id with spaces"');
    expect(outcome.result?.failure?.code).toBe('INVALID_REQUEST');
  });

  it('pulls an image, streams its progress and ends with one result', async () => {
    const image = await pushRandomImage(registry, 'agent/progress', { layers: 2, layerSizeBytes: 1024 * 1024 });
    const slow = image.replace(registry.host, proxy.host);
    const outcome = await warm(client, { taskId: 'progress-1', nodeName: NODE, images: [{ image: slow }] });
    expect(outcome.error).toBeUndefined();
    const results = outcome.events.filter((e) => e.result);
    expect(results).toHaveLength(1);
    expect(outcome.events.at(-1)?.result).toBeDefined();
    expect(outcome.result?.succeeded).toBe(true);
    expect(outcome.result?.images[0]?.state).toBe('DONE');
    const progress = outcome.events.flatMap((e) => (e.image ? [e.image] : []));
    expect(progress.some((p) => p.image === slow && p.state === 'RUNNING')).toBe(true);
    expect(progress.some((p) => p.bytesKnown && p.bytesDone > 0)).toBe(true);
    expect(await containerd.imagePresent(slow)).toBe(true);

    const metrics = await (await fetch(`${agent.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^stoker_image_pulls_total\{outcome="pulled"\} [1-9]/m);
    expect(metrics).toMatch(/^stoker_image_pull_duration_seconds_count [1-9]/m);
    expect(metrics).toMatch(/^stoker_tasks_in_flight 0$/m);
  });

  it('joins a running task with the same task id and never pulls it twice', async () => {
    const image = (await pushRandomImage(registry, 'agent/join', { layers: 1, layerSizeBytes: 2 * 1024 * 1024 })).replace(registry.host, proxy.host);
    const request = { taskId: 'join-1', nodeName: NODE, images: [{ image }] };
    let second: Promise<WarmOutcome> | undefined;
    const first = await warm(client, request, (e) => {
      // The second call comes while the first is pulling.
      if (!second && e.image?.state === 'RUNNING') {
        second = warm(client, request);
      }
    });
    expect(second).toBeDefined();
    const joined = await second!;
    expect(first.result?.images[0]?.state).toBe('DONE');
    expect(joined.result).toEqual(first.result);
    expect(joined.events.filter((e) => e.image).length).toBeGreaterThan(0);

    // The same id again after it finished: the remembered result, and no pull (the image stays gone).
    await containerd.removeImage(image);
    const again = await warm(client, request);
    expect(again.result).toEqual(first.result);
    expect(await containerd.imagePresent(image)).toBe(false);

    const status = (await (await fetch(`${agent.httpUrl}/status`)).json()) as { nodeName: string; tasksInFlight: number };
    expect(status).toMatchObject({ nodeName: NODE, tasksInFlight: 0 });
  });

  it('keeps a task running when its caller goes away, so a re-attaching caller gets the result', async () => {
    const image = (await pushRandomImage(registry, 'agent/detach', { layers: 1, layerSizeBytes: 1024 * 1024 })).replace(registry.host, proxy.host);
    const request = { taskId: 'detach-1', nodeName: NODE, images: [{ image }] };
    const cancelled = await warm(client, request, (e, call) => {
      if (e.image?.state === 'RUNNING') call.cancel();
    });
    expect(cancelled.error?.code).toBe(grpc.status.CANCELLED);
    const reattached = await warm(client, request);
    expect(reattached.result?.succeeded).toBe(true);
    expect(reattached.result?.images[0]?.state).toBe('DONE');
    expect(await containerd.imagePresent(image)).toBe(true);
  });

  describe('Cancel', () => {
    it('stops a task mid-pull: its caller gets CANCELLED, it leaves /status, and containerd stops fetching', async () => {
      const image = (await pushRandomImage(registry, 'agent/cancel', { layers: 1, layerSizeBytes: 8 * 1024 * 1024 })).replace(registry.host, proxy.host);
      const request = { taskId: 'cancel-1', nodeName: NODE, images: [{ image }] };
      let started: () => void = () => undefined;
      const pulling = new Promise<void>((r) => (started = r));
      const outcome = warm(client, request, (e) => {
        if (e.image?.state === 'RUNNING' && e.image.bytesDone > 0) started();
      });
      await pulling;
      const before = await ingestOffsets(containerd);
      expect(before.size).toBeGreaterThan(0);
      const status = (await (await fetch(`${agent.httpUrl}/status`)).json()) as { tasks: { taskId: string }[] };
      expect(status.tasks.map((t) => t.taskId)).toContain('cancel-1');

      const t0 = Date.now();
      // CANCELLED: the task ended before the agent answered (it waits up to 3 s).
      expect(await cancel(client, 'cancel-1')).toEqual({ taskId: 'cancel-1', outcome: 'CANCEL_OUTCOME_CANCELLED' });
      const cancelledMs = Date.now() - t0;
      const ended = await outcome;
      expect(ended.error).toBeUndefined();
      expect(ended.result?.succeeded).toBe(false);
      expect(ended.result?.images[0]?.failure?.code).toBe('CANCELLED');
      const after = (await (await fetch(`${agent.httpUrl}/status`)).json()) as { tasksInFlight: number; tasks: { taskId: string }[] };
      expect(after).toMatchObject({ tasksInFlight: 0, tasks: [] });
      expect((await nodeStatus(client, NODE)).tasksInFlight).toBe(0);

      // containerd's ingest of the layer stands still (or is gone): nothing is fetched any more.
      const settled = await ingestOffsets(containerd);
      const forwarded = proxy.bytesForwarded();
      await new Promise((r) => setTimeout(r, 1_500));
      const later = await ingestOffsets(containerd);
      for (const [ref, offset] of later) expect({ ref, offset }).toEqual({ ref, offset: settled.get(ref) ?? offset });
      expect(proxy.bytesForwarded() - forwarded).toBeLessThan(64 * 1024);
      expect(await containerd.imagePresent(image)).toBe(false);
      console.log(`Cancel answered in ${cancelledMs} ms; ingests before ${JSON.stringify([...before.values()])}, after ${JSON.stringify([...later.values()])}`);

      // A Warm with the same id gets the remembered, cancelled result: it does not run again.
      const again = await warm(client, request);
      expect(again.result?.images[0]?.failure?.code).toBe('CANCELLED');
      expect(await containerd.imagePresent(image)).toBe(false);
    });

    it('keeps a merged pull going while another live task still needs it', async () => {
      // 8 MiB through the 512 KiB/s proxy: the pull lasts about 16 s, well past the checks below.
      const image = (await pushRandomImage(registry, 'agent/merged', { layers: 1, layerSizeBytes: 8 * 1024 * 1024 })).replace(registry.host, proxy.host);
      let bothRunning: () => void = () => undefined;
      const running = new Promise<void>((r) => (bothRunning = r));
      const seen = new Set<string>();
      const onEvent = (id: string) => (e: WarmEvent__Output) => {
        if (e.image?.state === 'RUNNING' && e.image.bytesDone > 0) seen.add(id);
        if (seen.size === 2) bothRunning();
      };
      const a = warm(client, { taskId: 'merged-a', nodeName: NODE, images: [{ image }] }, onEvent('a'));
      const b = warm(client, { taskId: 'merged-b', nodeName: NODE, images: [{ image }] }, onEvent('b'));
      await running;
      expect(await cancel(client, 'merged-a')).toMatchObject({ outcome: 'CANCEL_OUTCOME_CANCELLED' });
      expect((await a).result?.images[0]?.failure?.code).toBe('CANCELLED');

      // The pull goes on for merged-b: containerd keeps fetching the layer from the registry.
      const first = await ingestOffsets(containerd);
      const forwarded = proxy.bytesForwarded();
      await new Promise((r) => setTimeout(r, 1_500));
      const second = await ingestOffsets(containerd);
      expect([...second].some(([ref, offset]) => offset > (first.get(ref) ?? 0))).toBe(true);
      expect(proxy.bytesForwarded() - forwarded).toBeGreaterThan(256 * 1024);
      const status = (await (await fetch(`${agent.httpUrl}/status`)).json()) as { tasks: { taskId: string }[] };
      expect(status.tasks.map((t) => t.taskId)).toEqual(['merged-b']);

      proxy.setRate(Infinity);
      try {
        const done = await b;
        expect(done.result?.succeeded).toBe(true);
        expect(done.result?.images[0]?.state).toBe('DONE');
        expect(await containerd.imagePresent(image)).toBe(true);
      } finally {
        proxy.setRate(512 * 1024);
      }
    });

    it('is idempotent, and checks the node like Warm', async () => {
      expect(await cancel(client, 'never-started')).toEqual({ taskId: 'never-started', outcome: 'CANCEL_OUTCOME_UNKNOWN_TASK' });
      // Finished before (the previous test), and cancelled before.
      expect(await cancel(client, 'merged-b')).toEqual({ taskId: 'merged-b', outcome: 'CANCEL_OUTCOME_ALREADY_FINISHED' });
      expect(await cancel(client, 'merged-a')).toEqual({ taskId: 'merged-a', outcome: 'CANCEL_OUTCOME_ALREADY_FINISHED' });
      const wrong = await cancel(client, 'merged-b', 'node-b').then(() => undefined, (e: grpc.ServiceError) => e);
      expect(wrong?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(wrong?.metadata.get('stoker-error-code')).toEqual(['WRONG_NODE']);
      const bad = await cancel(client, 'two words').then(() => undefined, (e: grpc.ServiceError) => e);
      expect(bad?.code).toBe(grpc.status.INVALID_ARGUMENT);
      const foreign = agentClient(agent.grpcAddress, certs, 'foreign');
      try {
        const refused = await cancel(foreign, 'merged-b').then(() => undefined, (e: grpc.ServiceError) => e);
        expect(refused?.code).toBe(grpc.status.UNAVAILABLE);
      } finally {
        foreign.close();
      }
    });
  });

  it('cancels a pull from a registry that accepts and then sends nothing, after the progress timeout', async () => {
    const image = `${stalling.host}/agent/stalled:v1`;
    const outcome = await warm(client, { taskId: 'stall-1', nodeName: NODE, images: [{ image }], progressTimeoutSeconds: 2 });
    expect(outcome.error).toBeUndefined();
    expect(outcome.result?.succeeded).toBe(false);
    expect(outcome.result?.images[0]?.state).toBe('FAILED');
    expect(outcome.result?.images[0]?.failure?.code).toBe('PROGRESS_TIMEOUT');
    expect(outcome.result?.images[0]?.failure?.message).toContain(image);
    expect(stalling.connections()).toBeGreaterThan(0);
  });

  it('reads files under an allowed root into the page cache, and refuses a path outside every root', async () => {
    const outside = join(dir, 'pki');
    const outcome = await warm(client, {
      taskId: 'files-1',
      nodeName: NODE,
      paths: [
        { path: join(models, 'llama'), include: ['*.bin'] },
        { path: outside, include: [] },
      ],
    });
    expect(outcome.error).toBeUndefined();
    const [inside, refused] = outcome.result?.paths ?? [];
    expect(inside).toMatchObject({ path: join(models, 'llama'), state: 'DONE', files: 1, bytes: 3 * 1024 * 1024 });
    expect(refused?.state).toBe('FAILED');
    expect(refused?.failure?.code).toBe('PATH_OUTSIDE_ROOT');
    expect(refused?.failure?.message).toContain(outside);
    expect(outcome.events.some((e) => e.file?.path === join(models, 'llama'))).toBe(true);
    const status = await nodeStatus(client, NODE);
    expect(status.allowedRoots).toEqual([models]);
    const metrics = await (await fetch(`${agent.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^stoker_file_bytes_read_total ${3 * 1024 * 1024}$`, 'm'));
  });

  it('shows allowed roots and running task ids on /status to a loopback caller', async () => {
    // Callers from other addresses get the summary only (agent/http.test.ts); tests send no traffic
    // off loopback, so the real listener is asked from 127.0.0.1 here.
    const open = await startAgent(resolveAgentConfig(agentFlags(certs, containerd, { allowedRoot: [models], httpListen: '127.0.0.1:0' })), {
      logger: createLogger({ name: 'stoker-agent', level: 'silent' }),
      processMetrics: false,
    });
    const openClient = agentClient(open.grpcAddress, certs);
    try {
      const image = (await pushRandomImage(registry, 'agent/status', { layers: 1, layerSizeBytes: 1024 * 1024 })).replace(registry.host, proxy.host);
      let local: string | undefined;
      let asked: Promise<void> | undefined;
      const outcome = await warm(openClient, { taskId: 'status-secret-task', nodeName: NODE, images: [{ image }] }, (e) => {
        if (!asked && e.image?.state === 'RUNNING') {
          asked = (async () => {
            local = await (await fetch(`http://127.0.0.1:${open.httpPort}/status`)).text();
          })();
        }
      });
      await asked;
      expect(outcome.result?.succeeded).toBe(true);
      expect(local).toContain('status-secret-task');
      expect(local).toContain(models);
    } finally {
      openClient.close();
      await open.stop();
    }
  });

  it('reports which images are present', async () => {
    const present = await pushRandomImage(registry, 'agent/present', { layerSizeBytes: 64 * 1024 });
    await containerd.ctrPull(present);
    const absent = `${registry.host}/agent/absent:v1`;
    const status = await nodeStatus(client, NODE, [present, absent]);
    expect(status.images.find((i) => i.image === present)?.present).toBe(true);
    expect(status.images.find((i) => i.image === absent)?.present).toBe(false);
  });

  it('flips /readyz when containerd stops and starts, and keeps serving meanwhile', async () => {
    const ready = await fetch(`${agent.httpUrl}/readyz`);
    expect(ready.status).toBe(200);

    await containerd.kill();
    const down = await waitFor('/readyz to answer 503', async () => {
      const res = await fetch(`${agent.httpUrl}/readyz`);
      return res.status === 503 ? ((await res.json()) as { reason: string; criEndpoint: string }) : undefined;
    });
    expect(down.criEndpoint).toBe(containerd.endpoint);
    expect(down.reason).toContain(containerd.endpoint);
    expect((await fetch(`${agent.httpUrl}/healthz`)).status).toBe(200);
    const status = await nodeStatus(client, NODE);
    expect(status.runtimeReady).toBe(false);
    const image = `${registry.host}/agent/while-down:v1`;
    const outcome = await warm(client, { taskId: 'down-1', nodeName: NODE, images: [{ image }] });
    expect(outcome.result?.images[0]?.failure?.code).toBe('RUNTIME_UNAVAILABLE');
    expect(outcome.result?.images[0]?.failure?.message).toContain(containerd.endpoint);

    await containerd.restart();
    await waitFor('/readyz to answer 200', async () => ((await fetch(`${agent.httpUrl}/readyz`)).status === 200 ? true : undefined));
    expect((await nodeStatus(client, NODE)).runtimeReady).toBe(true);
    // Pulls work again on the recovered connection.
    const after = await pushRandomImage(registry, 'agent/after-restart', { layerSizeBytes: 64 * 1024 });
    const pulled = await warm(client, { taskId: 'after-restart-1', nodeName: NODE, images: [{ image: after }] });
    expect(pulled.result?.images[0]?.state).toBe('DONE');
  });

  describe('the stoker agent command', () => {
    const cli = join(REPO_ROOT, 'dist', 'bin', 'stoker.cjs');

    beforeAll(async () => {
      await run('npm', ['run', 'build']);
      expect(existsSync(cli)).toBe(true);
    });

    function spawnAgent(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
      const child = spawn(process.execPath, [cli, 'agent', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STOKER_LOG_LEVEL: '' } });
      const chunks: string[] = [];
      child.stdout?.on('data', (b: Buffer) => chunks.push(b.toString()));
      child.stderr?.on('data', (b: Buffer) => chunks.push(b.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, output: () => chunks.join(''), exited };
    }

    function flags(extra: string[] = []): string[] {
      return [
        '--node-name', NODE,
        '--cri-endpoint', containerd.endpoint,
        '--grpc-listen', '127.0.0.1:0',
        '--http-listen', '127.0.0.1:0',
        '--tls-cert-file', certs.serverCert,
        '--tls-private-key-file', certs.serverKey,
        '--client-ca-file', certs.caCert,
        ...extra,
      ];
    }

    async function started(output: () => string): Promise<{ grpc: string; http: string }> {
      return waitFor('the agent to start', () => {
        const line = output().split('\n').find((l) => l.includes('"agent started"'));
        return Promise.resolve(line ? (JSON.parse(line) as { grpc: string; http: string }) : undefined);
      });
    }

    it('does not start without its TLS flags and names the missing flag', async () => {
      const all = flags();
      const without = all.filter((_, i) => all[i] !== '--tls-private-key-file' && all[i - 1] !== '--tls-private-key-file');
      const { output, exited } = spawnAgent(without);
      expect(await exited).toBe(2);
      expect(output()).toBe('stoker agent: --tls-private-key-file is required (or set STOKER_TLS_PRIVATE_KEY_FILE) (see stoker agent --help)\n');
    });

    it('drains on SIGTERM: open streams end UNAVAILABLE and the process exits 0', async () => {
      proxy.setRate(64 * 1024);
      const image = (await pushRandomImage(registry, 'agent/drain', { layerSizeBytes: 4 * 1024 * 1024 })).replace(registry.host, proxy.host);
      const proc = spawnAgent(flags());
      try {
        const { grpc: address } = await started(proc.output);
        const c = agentClient(address, certs);
        let signalled = false;
        const outcome = await warm(c, { taskId: 'drain-1', nodeName: NODE, images: [{ image }] }, (e) => {
          if (!signalled && e.image?.state === 'RUNNING') {
            signalled = true;
            proc.child.kill('SIGTERM');
          }
        });
        c.close();
        expect(signalled).toBe(true);
        expect(outcome.error?.code).toBe(grpc.status.UNAVAILABLE);
        expect(outcome.error?.details).toContain('shutting down');
        // The command exits 1 if its drain takes more than 9.5 s; 0 means it drained in time.
        expect(await proc.exited).toBe(0);
        expect(proc.output()).toContain('"agent stopped"');
      } finally {
        proc.child.kill('SIGKILL');
        proxy.setRate(512 * 1024);
      }
    });

    it('never logs a registry password, its auth string, a token or a plugin\'s password, error paths included', async () => {
      const ok = await pushRandomImage(locked, 'agent/secret-ok', { layerSizeBytes: 64 * 1024 });
      const auth = Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64');
      const token = 'Kn0wn-identity-token-for-redaction-test';
      // A credential provider plugin: the right password for the locked registry, a wrong one for its plugin-wrong/ repositories.
      const pluginWrong = 'Kn0wn-plugin-password-for-redaction-test';
      const binDir = join(dir, 'credential-plugins');
      await mkdir(binDir, { recursive: true });
      await writeProviderPlugin(binDir, 'redaction-plugin', [
        { when: `*'"image":"${locked.host}/agent/plugin-wrong'*`, auth: { [locked.host]: { username: AUTH.username, password: pluginWrong } } },
        { when: '*', auth: { [locked.host]: { username: AUTH.username, password: AUTH.password } } },
      ]);
      const providerConfig = await writeProviderConfig(join(dir, 'redaction-providers.yaml'), { name: 'redaction-plugin', matchImages: [locked.host] });
      const proc = spawnAgent(
        flags(['--log-level', 'trace', '--image-credential-provider-config', providerConfig, '--image-credential-provider-bin-dir', binDir]),
      );
      try {
        const { grpc: address } = await started(proc.output);
        const c = agentClient(address, certs);
        const good = await warm(c, {
          taskId: 'secret-ok',
          nodeName: NODE,
          images: [{ image: ok }],
          credentials: [{ registry: locked.host, username: AUTH.username, password: AUTH.password }],
        });
        expect(good.result?.images[0]?.state).toBe('DONE');
        // Error paths: a wrong user with the known password, a missing repository, an auth string and a token.
        const bad = await warm(c, {
          taskId: 'secret-bad',
          nodeName: NODE,
          images: [{ image: `${locked.host}/agent/secret-missing:v1`, pullPolicy: 'ALWAYS' }],
          credentials: [{ registry: locked.host, username: 'nobody', password: AUTH.password }],
        });
        expect(bad.result?.images[0]?.state).toBe('FAILED');
        const badAuth = await warm(c, {
          taskId: 'secret-auth',
          nodeName: NODE,
          images: [{ image: ok, pullPolicy: 'ALWAYS' }, { image: `${stalling.host}/x/y:v1` }],
          credentials: [
            { registry: locked.host, auth },
            { registry: stalling.host, identityToken: token },
          ],
          progressTimeoutSeconds: 1,
        });
        expect(badAuth.result?.images.map((i) => i.state)).toEqual(['DONE', 'FAILED']);
        const refused = await warm(c, {
          taskId: 'secret refused',
          nodeName: NODE,
          images: [{ image: ok }],
          credentials: [{ registry: locked.host, username: AUTH.username, password: AUTH.password }],
        });
        expect(refused.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
        // The plugin's passwords: one the registry takes, one it refuses.
        const byPlugin = await warm(c, { taskId: 'secret-plugin', nodeName: NODE, images: [{ image: ok, pullPolicy: 'ALWAYS' }] });
        expect(byPlugin.result?.images[0]?.state).toBe('DONE');
        const byWrongPlugin = await warm(c, { taskId: 'secret-plugin-wrong', nodeName: NODE, images: [{ image: `${locked.host}/agent/plugin-wrong:v1` }] });
        expect(byWrongPlugin.result?.images[0]?.failure?.code).toBe('UNAUTHORIZED');
        c.close();
        proc.child.kill('SIGTERM');
        expect(await proc.exited).toBe(0);
        const everything = [proc.output(), JSON.stringify([good, bad, badAuth, refused, byPlugin, byWrongPlugin])].join('\n');
        expect(proc.output()).toContain('secret-bad');
        expect(proc.output()).toContain('secret-plugin-wrong');
        for (const secret of [AUTH.password, auth, token, pluginWrong]) expect(everything).not.toContain(secret);
      } finally {
        proc.child.kill('SIGKILL');
      }
    });
  });

  it('logged nothing secret in process either', () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('')).not.toContain(AUTH.password);
  });
});
