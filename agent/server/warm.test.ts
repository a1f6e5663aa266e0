import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { WarmEvent, WarmResult } from '../../proto/agent.js';
import { createLogger } from '../../proto/common/log.js';
import { compileRegistryPolicy, DEFAULT_REGISTRY_POLICY, type RegistryPolicy } from '../../proto/common/registry-policy.js';
import { listenHttp } from '../../proto/common/http-server.js';
import { agentRoutes } from '../http.js';
import { createAgentMetrics } from '../metrics.js';
import { RuntimeProbe, type AgentRuntime } from './runtime.js';
import { TaskRegistry, type TaskListener } from './tasks.js';
import { runWarmTask, type WarmContext, type WarmFilesFn, type WarmImagesFn } from './warm.js';
import { validateWarmRequest } from './validate.js';

const SECRET = 'Fake-Pa55word-xyz';

/** A runtime that answers Version while `up` is true. */
function fakeRuntime(state: { up: boolean }): AgentRuntime {
  return {
    endpoint: 'unix:///fake/containerd.sock',
    version: () => (state.up ? Promise.resolve({ runtimeName: 'containerd', runtimeVersion: '1.7.0' }) : Promise.reject(new Error('connect ENOENT'))),
    imageStatus: () => Promise.resolve({ present: false, imageRef: '', sizeBytes: 0 }),
    removeImage: () => Promise.resolve(),
    unpin: () => Promise.resolve({ supported: true, unpinned: false }),
    imageFilesystem: () => Promise.resolve({ known: false, mountpoint: undefined, reason: 'fake runtime' }),
    close: () => undefined,
  };
}

function setup(opts: { up?: boolean; warmImages?: WarmImagesFn; warmFiles?: WarmFilesFn; roots?: string[]; policy?: RegistryPolicy; knownSecrets?: string[] } = {}) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const log = createLogger({ name: 'test', level: 'debug', destination });
  const state = { up: opts.up ?? true };
  const runtime = fakeRuntime(state);
  const probe = new RuntimeProbe(runtime, { intervalMs: 60_000, timeoutMs: 1_000, log });
  const tasks = new TaskRegistry({ retentionMs: 1_000, retentionCount: 10, maxRunning: 4, onRunError: () => { throw new Error('unused'); } });
  const metrics = createAgentMetrics({ tasksInFlight: () => tasks.inFlight, processMetrics: false });
  const ctx: WarmContext = {
    nodeName: 'node-a',
    allowedRoots: opts.roots ?? ['/models'],
    pullConcurrency: 2,
    defaultProgressTimeoutMs: 120_000,
    registryPolicy: opts.policy ?? DEFAULT_REGISTRY_POLICY,
    knownSecrets: () => opts.knownSecrets ?? [],
    probe,
    endpoint: runtime.endpoint,
    warmImages: opts.warmImages,
    warmFiles: opts.warmFiles,
    metrics,
    log,
  };
  return { ctx, lines, state, probe, tasks, metrics, log };
}

const request = validateWarmRequest(
  {
    taskId: 't1',
    nodeName: 'node-a',
    images: [
      { image: 'r.example.com/a:v1', pullPolicy: 'IF_NOT_PRESENT', tag: '' },
      { image: 'r.example.com/b:v1', pullPolicy: 'ALWAYS', tag: '' },
    ],
    paths: [{ path: '/models/m', include: [], exclude: [] }],
    credentials: [{ registry: 'r.example.com', username: 'u', password: SECRET, auth: '', identityToken: '', registryToken: '' }],
    progressTimeoutSeconds: 7,
    checkOnly: false,
    pin: false,
    minResidentPercent: 0,
  },
  'node-a',
);

describe('runWarmTask', () => {
  it('runs images and paths, streams their progress, and passes the request through to the engines', async () => {
    const seen: unknown[] = [];
    const fakeWarmImages: WarmImagesFn = (input) => {
      seen.push({ images: input.images, progressTimeoutMs: input.progressTimeoutMs, concurrency: input.concurrency, credentials: input.credentials.length });
      input.onProgress({ image: 'r.example.com/a:v1', state: 'RUNNING', bytesDone: 5 });
      return Promise.resolve([
        { image: 'r.example.com/b:v1', state: 'PRESENT', imageRef: 'sha256:b', sizeBytes: 10, seconds: 0 },
        { image: 'r.example.com/a:v1', state: 'DONE', imageRef: 'sha256:a', sizeBytes: 20, seconds: 3 },
      ]);
    };
    const fakeWarmFiles: WarmFilesFn = (input) => {
      seen.push({ roots: input.allowedRoots });
      input.onProgress({ path: '/models/m', state: 'RUNNING', bytesDone: 1 });
      return Promise.resolve([{ path: '/models/m', state: 'DONE', files: 2, bytes: 100, seconds: 1 }]);
    };
    const { ctx, metrics } = setup({ warmImages: fakeWarmImages, warmFiles: fakeWarmFiles });
    const events: WarmEvent[] = [];
    const result = await runWarmTask(ctx, request, new AbortController().signal, (e) => events.push(e));
    expect(result.succeeded).toBe(true);
    expect(result.images?.map((i) => [i.image, i.state])).toEqual([
      ['r.example.com/a:v1', 'DONE'],
      ['r.example.com/b:v1', 'PRESENT'],
    ]);
    expect(seen).toHaveLength(2);
    expect(seen).toEqual(expect.arrayContaining([
      {
        images: [
          { image: 'r.example.com/a:v1', pullPolicy: 'IF_NOT_PRESENT' },
          { image: 'r.example.com/b:v1', pullPolicy: 'ALWAYS' },
        ],
        progressTimeoutMs: 7_000,
        concurrency: 2,
        credentials: 1,
      },
      { roots: ['/models'] },
    ]));
    expect(events).toHaveLength(2);
    expect(events).toEqual(
      expect.arrayContaining([{ image: { image: 'r.example.com/a:v1', state: 'RUNNING', bytesDone: 5 } }, { file: { path: '/models/m', state: 'RUNNING', bytesDone: 1 } }]),
    );
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/stoker_image_pulls_total\{outcome="pulled"\} 1/);
    expect(text).toMatch(/stoker_image_pulls_total\{outcome="present"\} 1/);
    expect(text).toMatch(/stoker_file_bytes_read_total 100/);
  });

  it('fails the images with RUNTIME_UNAVAILABLE naming the endpoint when the runtime is down, and still reads the paths', async () => {
    let pulled = false;
    const { ctx } = setup({
      up: false,
      warmImages: () => {
        pulled = true;
        return Promise.resolve([]);
      },
      warmFiles: () => Promise.resolve([{ path: '/models/m', state: 'DONE', files: 1, bytes: 1, seconds: 0 }]),
    });
    const result = await runWarmTask(ctx, request, new AbortController().signal, () => undefined);
    expect(pulled).toBe(false);
    expect(result.succeeded).toBe(false);
    for (const image of result.images ?? []) {
      expect(image.failure?.code).toBe('RUNTIME_UNAVAILABLE');
      expect(image.failure?.message).toContain('unix:///fake/containerd.sock');
    }
    expect(result.paths?.[0]?.state).toBe('DONE');
  });

  it('scrubs credentials from engine failures and logs, and gives every item a result', async () => {
    const { ctx, lines } = setup({
      warmImages: () =>
        Promise.resolve([{ image: 'r.example.com/a:v1', state: 'FAILED', failure: { code: 'UNAUTHORIZED', message: `registry said: bad password ${SECRET}` } }]),
      warmFiles: () => Promise.reject(new Error(`disk exploded near ${SECRET}`)),
    });
    const result = await runWarmTask(ctx, request, new AbortController().signal, () => undefined);
    expect(result.images?.[0]?.failure).toEqual({ code: 'UNAUTHORIZED', message: 'registry said: bad password [REDACTED]', needBytes: 0 });
    expect(result.images?.[1]?.failure?.code).toBe('INTERNAL');
    expect(result.images?.[1]?.failure?.message).toContain('r.example.com/b:v1');
    expect(result.paths?.[0]?.failure?.code).toBe('INTERNAL');
    expect(lines.length).toBeGreaterThan(3);
    expect(lines.join('')).not.toContain(SECRET);
    expect(JSON.stringify(result)).not.toContain(SECRET);
  });

  it('a task stopped by a Cancel call ends with every item CANCELLED, saying so, and both engines saw the abort', async () => {
    const seen: string[] = [];
    // Fake engines that run until their signal aborts, as the real ones do.
    const untilAborted = (what: string, signal: AbortSignal) =>
      new Promise<never>((_, reject) =>
        signal.addEventListener('abort', () => {
          seen.push(what);
          reject(new Error(`${what} aborted`));
        }),
      );
    const { ctx, tasks } = setup({ warmImages: (i) => untilAborted('images', i.signal), warmFiles: (i) => untilAborted('files', i.signal) });
    const results: WarmResult[] = [];
    const listener: TaskListener = { event: () => undefined, result: (r) => results.push(r) };
    tasks.attach('t1', (signal, emit) => runWarmTask(ctx, request, signal, emit), listener);
    await new Promise((r) => setTimeout(r, 10));
    expect(tasks.summaries().map((t) => t.taskId)).toEqual(['t1']);

    expect(await tasks.cancel('t1', 1_000)).toBe('cancelled');
    expect(seen.sort()).toEqual(['files', 'images']);
    expect(tasks.summaries()).toEqual([]);
    const result = results[0];
    expect(result?.succeeded).toBe(false);
    const failures = [...(result?.images ?? []), ...(result?.paths ?? [])].map((i) => i.failure);
    expect(failures).toHaveLength(3);
    for (const f of failures) expect(f).toEqual({ code: 'CANCELLED', message: 'the task was cancelled on node "node-a" (a Cancel call stopped it)', needBytes: 0 });
  });

  it('refuses images whose registry the policy refuses before asking the runtime anything', async () => {
    const asked: string[] = [];
    const { ctx } = setup({
      up: false,
      policy: compileRegistryPolicy({ deny: ['r.example.com'] }),
      warmImages: (input) => {
        asked.push(...input.images.map((i) => i.image));
        return Promise.resolve([]);
      },
    });
    const versions: string[] = [];
    const probeCheck = ctx.probe.check.bind(ctx.probe);
    ctx.probe.check = () => {
      versions.push('Version');
      return probeCheck();
    };
    const images = ['169.254.169.254:80/latest/meta-data:v1', 'r.example.com/a:v1'].map((image) => ({ image, pullPolicy: 'ALWAYS' as const }));
    const result = await runWarmTask(ctx, { ...request, images, paths: [] }, new AbortController().signal, () => undefined);
    expect(result.images?.map((i) => [i.image, i.failure?.code, i.failure?.message])).toEqual([
      [
        '169.254.169.254:80/latest/meta-data:v1',
        'REGISTRY_DENIED',
        'cannot pull 169.254.169.254:80/latest/meta-data:v1: registry 169.254.169.254:80 is refused: it is a link-local address (built-in rule 169.254.0.0/16)',
      ],
      ['r.example.com/a:v1', 'REGISTRY_DENIED', 'cannot pull r.example.com/a:v1: registry r.example.com is refused: it matches the deny pattern "r.example.com"'],
    ]);
    expect(asked).toEqual([]);
    expect(versions).toEqual([]);
  });

  it('scrubs passwords a credential plugin gave from failures and logs', async () => {
    const pluginPassword = 'Plugin-Pa55word-abc';
    const { ctx, lines } = setup({
      knownSecrets: [pluginPassword],
      warmImages: () => Promise.resolve([{ image: 'r.example.com/a:v1', state: 'FAILED', failure: { code: 'UNAUTHORIZED', message: `refused ${pluginPassword}` } }]),
    });
    const result = await runWarmTask(ctx, { ...request, images: [request.images[0]!], paths: [] }, new AbortController().signal, () => undefined);
    expect(result.images?.[0]?.failure?.message).toBe('refused [REDACTED]');
    expect(lines.join('')).not.toContain(pluginPassword);
  });

  it('refuses paths outright when the agent has no allowed root', async () => {
    const { ctx } = setup({ roots: [], warmImages: () => Promise.resolve([]), warmFiles: () => Promise.reject(new Error('not called')) });
    const result = await runWarmTask(ctx, { ...request, images: [] }, new AbortController().signal, () => undefined);
    expect(result.paths?.[0]?.failure?.code).toBe('PATH_OUTSIDE_ROOT');
    expect(result.paths?.[0]?.failure?.message).toContain('"/models/m"');
  });
});

describe('HTTP endpoints', () => {
  it('/readyz flips with the runtime and names the CRI endpoint; /status and /metrics answer', async () => {
    const { state, probe, tasks, metrics } = setup();
    const routes = agentRoutes({
      nodeName: 'node-a',
      criEndpoint: 'unix:///fake/containerd.sock',
      allowedRoots: ['/models'],
      probe,
      tasks,
      metrics,
      stopping: () => false,
    });
    const http = await listenHttp('127.0.0.1', 0, routes);
    const get = (path: string) => fetch(`http://127.0.0.1:${http.port}${path}`);
    try {
      const health = await get('/healthz');
      expect(health.status).toBe(200);
      expect(health.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(await health.json()).toEqual({ status: 'ok' });
      expect((await get('/readyz')).status).toBe(200);
      state.up = false;
      const down = await get('/readyz');
      expect(down.status).toBe(503);
      const downBody = (await down.json()) as { reason: string };
      expect(downBody).toMatchObject({ ready: false, criEndpoint: 'unix:///fake/containerd.sock' });
      expect(downBody.reason).toContain('unix:///fake/containerd.sock');
      const status = (await (await get('/status')).json()) as Record<string, unknown>;
      expect(status).toMatchObject({ nodeName: 'node-a', runtimeReady: false, runtimeName: 'containerd', tasksInFlight: 0, allowedRoots: ['/models'] });
      expect(typeof status.agentVersion).toBe('string');
      const scrape = await get('/metrics');
      expect(scrape.headers.get('content-type')).toContain('text/plain');
      expect(await scrape.text()).toContain('stoker_tasks_in_flight 0');
      state.up = true;
      expect((await get('/readyz')).status).toBe(200);
    } finally {
      await http.close();
    }
  });
});
