// Benchmark: the agent's resident memory, idle and while it runs 8 pulls at once, or (--files)
// while it runs 64 file tasks at once.
//
//   npx tsx test/bench/agent-rss.ts [--rounds N] [--size-mb MB]
//   npx tsx test/bench/agent-rss.ts --files [--rounds N] [--file-mb MB] [--tasks N]
//   ... --cli PATH    another build's dist/bin/stoker.cjs instead of this checkout's
//
// The built CLI (`node dist/bin/stoker.cjs agent`) runs as its own process against a private
// containerd and registry on loopback (test/support), with real certificates; its RSS is read
// from /proc/<pid>/status. Each round first samples the idle agent, then interleaves (order
// alternating between rounds) two contenders, every pull cold (images removed and their blobs
// garbage-collected before each):
// - the agent: 8 concurrent Warm calls over mutual TLS, one image each; its RSS is sampled every
//   50 ms and the round's peak kept;
// - the plain tool: 8 concurrent bare CRI PullImage calls from a minimal grpc-js process.
// Prints the idle RSS 3 s after start (start-up garbage not yet collected) and medians over the
// rounds: idle RSS 3 s after start (target <= 70 MB), idle RSS before each round, settled
// (target <= 65 MB), peak RSS during the pulls (target <= 120 MB), and the wall time of the 8 pulls against the plain tool's.
// With --files the agent gets an allowed root holding 4 files of --file-mb MB (default 64); each
// round evicts them (sync, vmtouch -e), times one Warm call that reads them (cold), then starts
// --tasks (default 64) Warm calls for the same path at once, each its own task, and keeps the
// peak RSS (target <= 250 MB). Run it on two builds to compare one task's time.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { agentProto, type AgentClient, type WarmEvent__Output } from '../../proto/agent.js';
import { makeCertificates, type Certificates } from '../support/certs.js';
import { startContainerd } from '../support/containerd.js';
import { pushRandomImage } from '../support/images.js';
import { REPO_ROOT, run } from '../support/proc.js';
import { startRegistry } from '../support/registry.js';
import { flag, hasFlag } from './args.js';

const ROUNDS = Math.max(5, Number(flag('--rounds') ?? 5));
/** Size of each of the 8 images. */
const SIZE_MB = Number(flag('--size-mb') ?? 16);
const FILES = hasFlag('--files');
const FILE_MB = Number(flag('--file-mb') ?? 64);
const FILE_TASKS = Number(flag('--tasks') ?? 64);
const FILES_TARGET_MB = 250;
/** The bundled CLI to run: this checkout's build, or --cli PATH (another build, to compare two). */
const CLI = flag('--cli') ?? join(REPO_ROOT, 'dist', 'bin', 'stoker.cjs');
const NODE = 'bench-node';
/** The targets: 3 s after start, settled (between rounds), peak during 8 concurrent pulls. */
const START_TARGET_MB = 70;
const IDLE_TARGET_MB = 65;
const PULLS_TARGET_MB = 120;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident set size of a process in MB (VmRSS). */
function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m?.[1]) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Median of `n` RSS samples `everyMs` apart. */
async function sampleIdle(pid: number, n = 10, everyMs = 200): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    xs.push(rssMb(pid));
    await sleep(everyMs);
  }
  return median(xs);
}

/** Runs `fn` while sampling the RSS every 50 ms; resolves with its seconds and the peak RSS. */
async function withPeak(pid: number, fn: () => Promise<void>): Promise<{ seconds: number; peak: number }> {
  let peak = rssMb(pid);
  const timer = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 50);
  const t0 = performance.now();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return { seconds: (performance.now() - t0) / 1000, peak: Math.max(peak, rssMb(pid)) };
}

/** A bare CRI PullImage client as its own process: grpc-js and the CRI proto, 8 pulls at once. */
const BARE_PULL = `
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
const [endpoint, ...images] = process.argv.slice(1);
const def = loader.loadSync('proto/runtime/v1/api.proto', { includeDirs: ['proto'] });
const Images = grpc.loadPackageDefinition(def).runtime.v1.ImageService;
const client = new Images(endpoint, grpc.credentials.createInsecure());
await Promise.all(images.map((image) => new Promise((resolve, reject) => client.PullImage({ image: { image } }, (err, res) => (err ? reject(err) : resolve(res))))));
client.close();
`;

function bare(endpoint: string, images: string[]): Promise<void> {
  return run(process.execPath, ['--input-type=module', '-e', BARE_PULL, endpoint, ...images]).then(() => undefined);
}

/** One Warm call to its end; rejects unless the image ends DONE. */
function warmOne(client: AgentClient, taskId: string, image: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.warm({ taskId, nodeName: NODE, images: [{ image, pullPolicy: 'ALWAYS' }] });
    let state = '';
    call.on('data', (e: WarmEvent__Output) => {
      if (e.result) state = e.result.images[0]?.state ?? '';
    });
    call.on('error', reject);
    call.on('end', () => (state === 'DONE' ? resolve() : reject(new Error(`${image} ended ${state || 'without a result'}`))));
  });
}

/** One Warm call for a path to its end; rejects unless the path ends DONE with every byte read. */
function warmPath(client: AgentClient, taskId: string, path: string, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client.warm({ taskId, nodeName: NODE, paths: [{ path }] });
    let outcome = '';
    call.on('data', (e: WarmEvent__Output) => {
      const r = e.result?.paths[0];
      if (r) outcome = r.state === 'DONE' && r.bytes === bytes ? 'ok' : `${r.state} ${r.bytes} bytes ${JSON.stringify(r.failure)}`;
    });
    call.on('error', reject);
    call.on('end', () => (outcome === 'ok' ? resolve() : reject(new Error(`${path} in task ${taskId} ended ${outcome || 'without a result'}`))));
  });
}

/** Starts the agent; resolves once the runtime is ready. */
function startAgentProcess(args: string[]): Promise<{ child: ChildProcess; grpcAddress: string }> {
  const child = spawn(process.execPath, [CLI, 'agent', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => l.includes('"container runtime ready"'));
      const started = out.split('\n').find((l) => l.includes('"agent started"'));
      if (line && started) resolve({ child, grpcAddress: (JSON.parse(started) as { grpc: string }).grpc });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code) => reject(new Error(`agent exited ${code}: ${out}`)));
    setTimeout(() => reject(new Error(`agent did not report ready within 60 s: ${out}`)), 60_000).unref();
  });
}

const verdict = (value: number, target: number) => (value <= target ? 'ok' : 'OVER TARGET');

if (!existsSync(CLI)) {
  if (flag('--cli')) throw new Error(`--cli ${CLI}: no such file`);
  await run('npm', ['run', 'build']);
}
const dir = await mkdtemp(join(tmpdir(), 'stoker-bench-rss-'));
const containerd = await startContainerd();
const registry = await startRegistry();
let agent: ChildProcess | undefined;
try {
  await registry.addTo(containerd);
  const certs = await makeCertificates(join(dir, 'pki'));
  if (FILES) await benchFiles(certs);
  else await benchPulls(certs);
} finally {
  if (agent && agent.exitCode === null) {
    const exited = new Promise((resolve) => agent?.once('exit', resolve));
    agent.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
  }
  await containerd.stop();
  await registry.stop();
  await rm(dir, { recursive: true, force: true });
}

function agentArgs(certs: Certificates, extra: string[]): string[] {
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

function clientFor(certs: Certificates, grpcAddress: string): AgentClient {
  return new (agentProto().Agent)(
    grpcAddress,
    grpc.credentials.createSsl(Buffer.from(certs.caCertPem), Buffer.from(certs.clientKeyPem), Buffer.from(certs.clientCertPem)),
    { 'grpc.ssl_target_name_override': 'localhost' },
  );
}


async function benchPulls(certs: Certificates): Promise<void> {
  const images: string[] = [];
  for (let i = 0; i < 8; i++) {
    images.push(await pushRandomImage(registry, `bench/rss-${i}`, { layers: 2, layerSizeBytes: Math.round((SIZE_MB * 1024 * 1024) / 2) }));
  }
  process.stderr.write(`8 images of ${SIZE_MB} MB (2 layers each)\n`);

  const started = await startAgentProcess(agentArgs(certs, ['--pull-concurrency', '8']));
  agent = started.child;
  const pid = started.child.pid ?? 0;
  await sleep(3_000);
  const idleAtStart = await sampleIdle(pid);
  process.stderr.write(`idle after start: ${idleAtStart.toFixed(1)} MB\n`);

  const client = clientFor(certs, started.grpcAddress);
  const removeAll = async () => {
    for (const i of images) await containerd.removeImage(i);
  };

  const idle: number[] = [];
  const peaks: number[] = [];
  const agentSeconds: number[] = [];
  const bareSeconds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await sleep(2_000);
    idle.push(await sampleIdle(pid));
    const contenders: [string, () => Promise<void>][] = [
      [
        'agent',
        async () => {
          const r = await withPeak(pid, () => Promise.all(images.map((image, i) => warmOne(client, `rss-${round}-${i}`, image))).then(() => undefined));
          peaks.push(r.peak);
          agentSeconds.push(r.seconds);
        },
      ],
      [
        'bare',
        async () => {
          const t0 = performance.now();
          await bare(containerd.endpoint, images);
          bareSeconds.push((performance.now() - t0) / 1000);
        },
      ],
    ];
    for (const [, fn] of round % 2 === 0 ? contenders : [...contenders].reverse()) {
      await removeAll();
      await fn();
    }
    process.stderr.write(
      `  round ${round + 1}/${ROUNDS}: idle ${idle.at(-1)?.toFixed(1)} MB, peak ${peaks.at(-1)?.toFixed(1)} MB, ` +
        `agent ${agentSeconds.at(-1)?.toFixed(2)} s, bare ${bareSeconds.at(-1)?.toFixed(2)} s\n`,
    );
  }
  client.close();

  console.log(`\nagent RSS, 8 concurrent pulls of ${SIZE_MB} MB images (${ROUNDS} rounds, medians)`);
  console.log(`  idle 3 s after start             ${idleAtStart.toFixed(1).padStart(6)} MB   target <= ${START_TARGET_MB} MB   ${verdict(idleAtStart, START_TARGET_MB)}`);
  console.log(`  idle between rounds              ${median(idle).toFixed(1).padStart(6)} MB   target <= ${IDLE_TARGET_MB} MB   ${verdict(median(idle), IDLE_TARGET_MB)}`);
  console.log(`  peak during 8 concurrent pulls   ${median(peaks).toFixed(1).padStart(6)} MB   target <= ${PULLS_TARGET_MB} MB   ${verdict(median(peaks), PULLS_TARGET_MB)}  (max ${Math.max(...peaks).toFixed(1)} MB)`);
  console.log(`  8 pulls through the agent        ${median(agentSeconds).toFixed(2).padStart(6)} s`);
  console.log(`  8 bare CRI PullImage calls       ${median(bareSeconds).toFixed(2).padStart(6)} s`);
  console.log(`  ratio agent / bare               ${(median(agentSeconds) / median(bareSeconds)).toFixed(2)}`);
}

async function benchFiles(certs: Certificates): Promise<void> {
  const models = join(dir, 'models');
  const tree = join(models, 'llm');
  await mkdir(tree, { recursive: true });
  const chunk = randomBytes(16 * 1024 * 1024);
  for (let i = 0; i < 4; i++) {
    const f = join(tree, `shard-${i}.safetensors`);
    for (let off = 0; off < FILE_MB * 1024 * 1024; off += chunk.length) {
      chunk.writeUInt32LE(i * 1_000_000 + off / chunk.length, 0);
      await writeFile(f, chunk.subarray(0, Math.min(chunk.length, FILE_MB * 1024 * 1024 - off)), { flag: 'a' });
    }
  }
  const bytes = 4 * FILE_MB * 1024 * 1024;
  process.stderr.write(`a tree of 4 files of ${FILE_MB} MiB; ${FILE_TASKS} tasks at once\n`);

  const started = await startAgentProcess(agentArgs(certs, ['--allowed-root', models]));
  agent = started.child;
  const pid = started.child.pid ?? 0;
  await sleep(3_000);
  const idleAtStart = await sampleIdle(pid);
  process.stderr.write(`idle after start: ${idleAtStart.toFixed(1)} MB\n`);
  const client = clientFor(certs, started.grpcAddress);

  const idle: number[] = [];
  const single: number[] = [];
  const manySeconds: number[] = [];
  const peaks: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await sleep(2_000);
    idle.push(await sampleIdle(pid));
    await run('sync', []);
    await run('vmtouch', ['-q', '-e', tree]);
    const t0 = performance.now();
    await warmPath(client, `files-${round}-single`, tree, bytes);
    single.push((performance.now() - t0) / 1000);
    await run('sync', []);
    await run('vmtouch', ['-q', '-e', tree]);
    const many = await withPeak(pid, () =>
      Promise.all(Array.from({ length: FILE_TASKS }, (_, i) => warmPath(client, `files-${round}-${i}`, tree, bytes))).then(() => undefined),
    );
    peaks.push(many.peak);
    manySeconds.push(many.seconds);
    process.stderr.write(
      `  round ${round + 1}/${ROUNDS}: idle ${idle.at(-1)?.toFixed(1)} MB, one task ${single.at(-1)?.toFixed(2)} s, ` +
        `${FILE_TASKS} tasks ${many.seconds.toFixed(2)} s, peak ${many.peak.toFixed(1)} MB\n`,
    );
  }
  client.close();
  console.log(`\nagent RSS, file tasks over 4 files of ${FILE_MB} MiB (${ROUNDS} rounds, medians)`);
  console.log(`  idle 3 s after start             ${idleAtStart.toFixed(1).padStart(6)} MB`);
  console.log(`  idle between rounds              ${median(idle).toFixed(1).padStart(6)} MB`);
  console.log(`  one task, cold                   ${median(single).toFixed(2).padStart(6)} s   [${single.map((x) => x.toFixed(2)).join(' ')}]`);
  console.log(`  ${String(FILE_TASKS).padEnd(2)} tasks at once                 ${median(manySeconds).toFixed(2).padStart(6)} s`);
  console.log(
    `  peak during ${FILE_TASKS} tasks at once        ${median(peaks).toFixed(1).padStart(6)} MB   target <= ${FILES_TARGET_MB} MB   ${verdict(median(peaks), FILES_TARGET_MB)}  (max ${Math.max(...peaks).toFixed(1)} MB)`,
  );
}
