// `stoker warm --image` against a real containerd and real registries: the built CLI runs as a
// child process and the tests assert its exit code, its words and what containerd holds after.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageProgress__Output, ImageResult__Output } from '../proto/agent.js';
import { parseEndpoint } from '../agent/cri/endpoint.js';
import { connectRuntime } from '../agent/cri/runtime.js';
import { warmImages } from '../agent/warm/images.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { pushRandomImage, pushRandomImageDetailed } from './support/images.js';
import { freePort } from './support/ports.js';
import { REPO_ROOT, run } from './support/proc.js';
import { startFailingProxy, startThrottledProxy, type ThrottledProxy } from './support/proxy.js';
import { addRegistryHost, startRegistry, startStallingRegistry, type Registry, type StallingRegistry } from './support/registry.js';

const CLI = join(REPO_ROOT, 'dist', 'bin', 'stoker.cjs');
const AUTH = { username: 'warmer', password: 'Sup3r$ecret-pw:42' };

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  done: Promise<CliResult>;
  kill(): void;
}

function startCli(args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [CLI, 'warm', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // No STOKER_* or Docker config from the developer's environment.
    env: { PATH: process.env.PATH ?? '', HOME: env.HOME ?? tmpdir(), ...env },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
  return { done, kill: () => child.kill('SIGKILL') };
}

const warm = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => startCli(args, env).done;

interface Summary {
  ok: boolean;
  runtime: { endpoint: string; name: string | null };
  images: ImageResult__Output[];
}

function summary(result: CliResult): Summary {
  const lines = result.stdout.trim().split('\n');
  expect(lines, `stdout holds exactly one JSON document: ${result.stdout}`).toHaveLength(1);
  return JSON.parse(lines[0] ?? '') as Summary;
}

describe('stoker warm --image', () => {
  let containerd: Containerd;
  let registry: Registry;
  let locked: Registry;
  let stalling: StallingRegistry;
  let work: string;
  let endpoint: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'stoker-warm-images-'));
    [containerd, registry, locked, stalling] = await Promise.all([
      startContainerd(),
      startRegistry(),
      startRegistry({ auth: AUTH }),
      startStallingRegistry(),
      run('npm', ['run', 'build']),
    ]);
    endpoint = containerd.endpoint;
    await registry.addTo(containerd);
    await locked.addTo(containerd);
    await addRegistryHost(containerd, stalling);
    expect(existsSync(CLI)).toBe(true);
  });

  afterAll(async () => {
    await Promise.allSettled([containerd?.stop(), registry?.stop(), locked?.stop(), stalling?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pulls one image, says so, and containerd has it', async () => {
    const image = await pushRandomImage(registry, 'warm/one', { layerSizeBytes: 256 * 1024 });
    const result = await warm(['--image', image, '--cri-endpoint', endpoint]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`${image}: done`);
    expect(result.stdout).toMatch(/IMAGE\s+STATE\s+TIME\s+SIZE/);
    expect(result.stderr).toBe('');
    expect(await containerd.imagePresent(image)).toBe(true);
  });

  it('pulls several images at once and prints one JSON summary', async () => {
    const images = await Promise.all(['a', 'b', 'c'].map((n) => pushRandomImage(registry, `warm/several-${n}`, { layerSizeBytes: 128 * 1024 })));
    const result = await warm([...images.flatMap((i) => ['--image', i]), '--json', '--concurrency', '3'], { STOKER_CRI_ENDPOINT: endpoint });
    expect(result.code, result.stderr).toBe(0);
    const doc = summary(result);
    expect(doc.ok).toBe(true);
    expect(doc.runtime).toMatchObject({ endpoint, name: 'containerd' });
    expect(doc.images.map((r) => [r.image, r.state])).toEqual(images.map((i) => [i, 'DONE']));
    for (const r of doc.images) expect(r.sizeBytes).toBeGreaterThan(128 * 1024);
    for (const i of images) expect(await containerd.imagePresent(i)).toBe(true);
  });

  it('skips a present image with IfNotPresent and pulls it again with Always', async () => {
    const image = await pushRandomImage(registry, 'warm/policy', { layerSizeBytes: 64 * 1024 });
    const first = summary(await warm(['--image', image, '--cri-endpoint', endpoint, '--json']));
    expect(first.images[0]?.state).toBe('DONE');
    // The tag now names other content: a pull would change the image id, a skip would not.
    await pushRandomImage(registry, 'warm/policy', { layerSizeBytes: 64 * 1024 });

    const skipped = await warm(['--image', image, '--cri-endpoint', endpoint, '--json']);
    expect(skipped.code).toBe(0);
    expect(summary(skipped).images[0]).toMatchObject({ state: 'PRESENT', imageRef: first.images[0]?.imageRef });

    const again = await warm(['--image', image, '--cri-endpoint', endpoint, '--json', '--pull-policy', 'Always']);
    expect(again.code).toBe(0);
    const pulled = summary(again).images[0];
    expect(pulled?.state).toBe('DONE');
    expect(pulled?.imageRef).toMatch(/^sha256:/);
    expect(pulled?.imageRef).not.toBe(first.images[0]?.imageRef);
  });

  it('pulls with credentials from a Docker config file, and the password appears nowhere', async () => {
    const image = await pushRandomImage(locked, 'warm/private', { layerSizeBytes: 64 * 1024 });
    const auth = Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64');
    const configDir = join(work, 'docker');
    await rm(configDir, { recursive: true, force: true });
    await run('mkdir', ['-p', configDir]);
    await writeFile(join(configDir, 'config.json'), JSON.stringify({ auths: { [`http://${locked.host}/v2/`]: { auth } } }));

    // Without credentials the registry says 401.
    const refused = await warm(['--image', image, '--cri-endpoint', endpoint]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`cannot pull ${image}: registry ${locked.host} requires credentials`);

    // $DOCKER_CONFIG, with debug logs on to catch any leak.
    const viaEnv = await warm(['--image', image, '--cri-endpoint', endpoint, '--log-level', 'debug'], { DOCKER_CONFIG: configDir });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(await containerd.imagePresent(image)).toBe(true);

    // --auth-file with a wrong password: refused, named, and no password in any output.
    const wrongFile = join(work, 'wrong.json');
    const wrongPassword = `${AUTH.password}-wrong`;
    await writeFile(wrongFile, JSON.stringify({ auths: { [locked.host]: { username: AUTH.username, password: wrongPassword } } }));
    const wrong = await warm(['--image', image, '--cri-endpoint', endpoint, '--auth-file', wrongFile, '--pull-policy', 'Always', '--log-level', 'debug']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`UNAUTHORIZED: cannot pull ${image}: registry ${locked.host} refused the credentials`);

    for (const r of [refused, viaEnv, wrong]) {
      for (const secret of [AUTH.password, wrongPassword, auth]) {
        expect(r.stdout).not.toContain(secret);
        expect(r.stderr).not.toContain(secret);
      }
    }
  });

  it('names the image and the reason for every kind of failure, with exit code 1', async () => {
    const closedPort = await freePort();
    const cases: { image: string; code: string; words: string; extra?: string[] }[] = [
      { image: `${registry.host}/Warm/Bad`, code: 'INVALID_REFERENCE', words: 'repository names must be lowercase' },
      { image: `127.0.0.1:${closedPort}/warm/none:v1`, code: 'REGISTRY_UNREACHABLE', words: `registry 127.0.0.1:${closedPort} is unreachable (connection refused)` },
      { image: `${locked.host}/warm/private-nocreds:v1`, code: 'UNAUTHORIZED', words: 'requires credentials' },
      { image: `${registry.host}/warm/missing:v9`, code: 'NOT_FOUND', words: `not found in registry ${registry.host}` },
      { image: `${stalling.host}/warm/stalled:v1`, code: 'PROGRESS_TIMEOUT', words: 'timed out: no new bytes', extra: ['--progress-timeout', '2'] },
    ];
    const results = await Promise.all(
      cases.map((c) => warm(['--image', c.image, '--cri-endpoint', endpoint, '--json', ...(c.extra ?? [])])),
    );
    cases.forEach((c, i) => {
      const result = results[i];
      expect(result?.code, `${c.code}: ${result?.stderr}`).toBe(1);
      const lines = result?.stderr.trim().split('\n') ?? [];
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`error: ${c.code}:`);
      expect(lines[0]).toContain(c.image);
      expect(lines[0]).toContain(c.words);
      expect(result ? summary(result).images[0]?.failure?.code : undefined).toBe(c.code);
    });
    expect(stalling.connections()).toBeGreaterThan(0);

    // An unreachable runtime is named; a malformed reference is still reported as such.
    const socket = join(work, 'no-runtime.sock');
    const down = await warm(['--image', `${registry.host}/warm/one:v1`, '--image', 'upper/Case', '--cri-endpoint', `unix://${socket}`]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`RUNTIME_UNAVAILABLE: cannot pull ${registry.host}/warm/one:v1: the container runtime is unreachable at unix://${socket}`);
    expect(down.stderr).toContain('INVALID_REFERENCE: invalid image reference "upper/Case"');

    // Usage errors exit 2 and name the flag, the variable the value came from, and the value.
    const usage = await warm(['--image', 'busybox', '--pull-policy', 'Sometimes', '--cri-endpoint', endpoint]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toBe('stoker warm: --pull-policy "Sometimes" is not IfNotPresent or Always (see stoker warm --help)\n');
    const onOff = await warm(['--image', 'busybox', '--cri-endpoint', endpoint], { STOKER_JSON: 'on' });
    expect(onOff.code).toBe(2);
    expect(onOff.stderr).toBe('stoker warm: --json (from STOKER_JSON) "on" is not true or false (see stoker warm --help)\n');
  });

  it("reports a registry's HTTP 500 as the registry's error, naming it, whether the manifest or a layer fails", async () => {
    const image = await pushRandomImage(registry, 'warm/broken', { layerSizeBytes: 64 * 1024 });
    const [manifests, blobs] = await Promise.all([startFailingProxy(registry, 500, /\/manifests\//), startFailingProxy(registry, 500, /\/blobs\//)]);
    try {
      await addRegistryHost(containerd, manifests);
      await addRegistryHost(containerd, blobs);
      for (const proxy of [manifests, blobs]) {
        const through = image.replace(registry.host, proxy.host);
        const result = await warm(['--image', through, '--cri-endpoint', endpoint, '--json']);
        expect(result.code, result.stderr).toBe(1);
        expect(result.stderr.trim()).toBe(`error: REGISTRY_ERROR: cannot pull ${through}: registry ${proxy.host} answered HTTP 500 (Internal Server Error)`);
        expect(summary(result).images[0]?.failure?.code).toBe('REGISTRY_ERROR');
        expect(proxy.failed()).toBeGreaterThan(0);
        expect(await containerd.imagePresent(through)).toBe(false);
      }
    } finally {
      await Promise.all([manifests.stop(), blobs.stop()]);
    }
  });

  describe('through a throttled registry', () => {
    let proxy: ThrottledProxy;

    beforeAll(async () => {
      proxy = await startThrottledProxy(registry, 2 * 1024 * 1024);
      await addRegistryHost(containerd, proxy);
    });
    afterAll(async () => {
      await proxy?.stop();
    });

    it('reports byte progress that rises during a real pull, which the progress timeout does not cut off', async () => {
      proxy.setRate(2 * 1024 * 1024);
      const pushed = await pushRandomImageDetailed(registry, 'warm/large', { layers: 2, layerSizeBytes: 5 * 1024 * 1024 });
      const image = pushed.ref.replace(registry.host, proxy.host);
      const runtime = await connectRuntime(parseEndpoint(endpoint), { progressIntervalMs: 200 });
      const samples: ImageProgress__Output[] = [];
      try {
        const [result] = await warmImages(runtime, {
          images: [{ image, pullPolicy: 'ALWAYS' }],
          progressTimeoutMs: 2_000,
          progressIntervalMs: 250,
          onProgress: (p) => samples.push(p),
        });
        expect(result?.state, JSON.stringify(result?.failure)).toBe('DONE');
      } finally {
        runtime.close();
      }
      const moving = samples.filter((s) => s.state === 'RUNNING' && s.bytesKnown && s.bytesDone > 0);
      const distinct = [...new Set(moving.map((s) => s.bytesDone))];
      expect(distinct.length, JSON.stringify(samples.map((s) => [s.state, s.bytesDone, s.bytesTotal]))).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < moving.length; i++) expect(moving[i]?.bytesDone).toBeGreaterThanOrEqual(moving[i - 1]?.bytesDone ?? 0);
      // The pull took longer than the progress timeout, and the total is the image's size.
      expect(moving.at(-1)?.elapsedSeconds).toBeGreaterThan(2);
      expect(Math.max(...moving.map((s) => s.bytesTotal))).toBeGreaterThanOrEqual(pushed.layerBytes);
      expect(samples.at(-1)).toMatchObject({ state: 'DONE', bytesKnown: true });
      expect(samples.at(-1)?.bytesDone).toBeGreaterThanOrEqual(pushed.layerBytes);
    });

    it("reports each image's own bytes while two pulls run at once", async () => {
      proxy.setRate(4 * 1024 * 1024);
      const [small, big] = await Promise.all([
        pushRandomImageDetailed(registry, 'warm/pair-small', { layers: 1, layerSizeBytes: 3 * 1024 * 1024 }),
        pushRandomImageDetailed(registry, 'warm/pair-big', { layers: 2, layerSizeBytes: 5 * 1024 * 1024 }),
      ]);
      const images = [small, big].map((p) => p.ref.replace(registry.host, proxy.host));
      const runtime = await connectRuntime(parseEndpoint(endpoint), { progressIntervalMs: 200 });
      const samples = new Map<string, ImageProgress__Output[]>(images.map((i) => [i, []]));
      try {
        const results = await warmImages(runtime, {
          images: images.map((image) => ({ image, pullPolicy: 'ALWAYS' as const })),
          concurrency: 2,
          progressTimeoutMs: 10_000,
          progressIntervalMs: 250,
          onProgress: (p) => samples.get(p.image)?.push(p),
        });
        expect(results.map((r) => r.state), JSON.stringify(results.map((r) => r.failure))).toEqual(['DONE', 'DONE']);
      } finally {
        runtime.close();
      }
      const both = small.layerBytes + big.layerBytes;
      for (const [image, pushed] of [[images[0], small], [images[1], big]] as const) {
        const own = (samples.get(image ?? '') ?? []).filter((s) => s.state === 'RUNNING' && s.bytesKnown);
        const shown = JSON.stringify((samples.get(image ?? '') ?? []).map((s) => [s.state, s.bytesKnown, s.bytesDone, s.bytesTotal]));
        // Figures of its own while the other pull ran, with its own size as the total, not both images'.
        expect(own.length, shown).toBeGreaterThan(0);
        const total = Math.max(...own.map((s) => s.bytesTotal));
        expect(total, shown).toBeGreaterThanOrEqual(pushed.layerBytes);
        expect(total, shown).toBeLessThan(both);
      }
    });

    it('fails clearly when the runtime is killed mid-pull, and the same warm succeeds after a restart', async () => {
      proxy.setRate(1024 * 1024);
      const pushed = await pushRandomImageDetailed(registry, 'warm/crash', { layers: 1, layerSizeBytes: 8 * 1024 * 1024 });
      const image = pushed.ref.replace(registry.host, proxy.host);
      const before = proxy.bytesForwarded();
      const cli = startCli(['--image', image, '--cri-endpoint', endpoint, '--json']);
      try {
        const deadline = Date.now() + 60_000;
        while (proxy.bytesForwarded() - before < 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        expect(proxy.bytesForwarded() - before).toBeGreaterThanOrEqual(1024 * 1024);
        await containerd.kill();
        const crashed = await cli.done;
        expect(crashed.code).toBe(1);
        expect(crashed.stderr).toContain(`RUNTIME_UNAVAILABLE: cannot pull ${image}: the container runtime is unreachable at ${endpoint}`);
      } finally {
        cli.kill();
        await containerd.restart();
      }
      proxy.setRate(Infinity);
      const again = await warm(['--image', image, '--cri-endpoint', endpoint]);
      expect(again.code, again.stderr).toBe(0);
      expect(await containerd.imagePresent(image)).toBe(true);
    });
  });
});
