// Benchmark: pulling images with `stoker warm` against a bare CRI PullImage.
//
//   npx tsx test/bench/images.ts [--rounds N] [--size-mb MB] [--only single,present,parallel]
//
// A private containerd and registry on loopback (test/support). Every pull is cold: before each
// run the image is removed from containerd and its blobs garbage-collected. Within a round the
// contenders run interleaved, in an order that alternates between rounds; each scenario prints
// the median seconds and the ratio to the reference.
// - single:   one ~100 MB image (4 layers). `stoker warm` (the built CLI, a process) against a
//             bare CRI PullImage from a minimal grpc-js process (what crictl does); and, without
//             process start-up, warmImages() against PullImage in this process. Target <= 1.1.
// - present:  the same CLI when the image is already there (pull policy IfNotPresent, nothing to
//             pull): `stoker warm` (the bundled CLI, a process) against a bare Node gRPC client
//             process asking ImageStatus (test/bench/bare-image-status.js). Target <= 1.2. Nothing
//             is removed between runs; 3x the rounds, as each run is short.
// - parallel: 8 images of ~12 MB. `stoker warm` with all 8 at once against the same 8 pulled one
//             after another with bare PullImage calls. Target <= 0.5. Run twice: straight from
//             the loopback registry (bound by containerd's CPU work, which 8 pulls share), and
//             through a proxy that limits each connection to --conn-mbps MB/s (default 25), as a
//             remote registry does where one TCP stream is bound by round trips.
import { spawn } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parseEndpoint } from '../../agent/cri/endpoint.js';
import { connectRuntime } from '../../agent/cri/runtime.js';
import { warmImages } from '../../agent/warm/images.js';
import { criProto } from '../../proto/cri.js';
import { startContainerd } from '../support/containerd.js';
import { pushRandomImage } from '../support/images.js';
import { REPO_ROOT, run } from '../support/proc.js';
import { addRegistryHost, startRegistry } from '../support/registry.js';
import { flag } from './args.js';

/** A loopback proxy to `target` that limits every connection, on its own, to `bytesPerSecond`. */
async function perConnectionProxy(target: string, bytesPerSecond: number): Promise<{ host: string; stop: () => Promise<void> }> {
  const [targetHost = '', targetPort = ''] = target.split(/:(?=\d+$)/);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(targetPort), targetHost);
    let free = Date.now();
    const pace = new Transform({
      transform(chunk: Buffer, _enc, done) {
        free = Math.max(free, Date.now()) + (chunk.length * 1000) / bytesPerSecond;
        setTimeout(() => done(null, chunk), Math.max(0, free - Date.now()));
      },
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.pipe(pace).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('proxy has no address');
  return {
    host: `127.0.0.1:${address.port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const ROUNDS = Math.max(5, Number(flag('--rounds') ?? 5));
const SIZE_MB = Number(flag('--size-mb') ?? 100);
const ONLY = new Set((flag('--only') ?? 'single,present,parallel').split(','));
const CONN_MBPS = Number(flag('--conn-mbps') ?? 25);
const CLI = join(REPO_ROOT, 'dist', 'bin', 'stoker.cjs');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Runs a process to completion; rejects with its output on a non-zero exit. */
function proc(cmd: string, argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${Buffer.concat(out).toString()}`)),
    );
  });
}

/** A bare CRI PullImage client as its own process: grpc-js and the CRI proto, nothing else. */
const BARE_PULL = `
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
const [endpoint, ...images] = process.argv.slice(1);
const def = loader.loadSync('proto/runtime/v1/api.proto', { includeDirs: ['proto'] });
const Images = grpc.loadPackageDefinition(def).runtime.v1.ImageService;
const client = new Images(endpoint, grpc.credentials.createInsecure());
for (const image of images) {
  await new Promise((resolve, reject) => client.PullImage({ image: { image } }, (err, res) => (err ? reject(err) : resolve(res))));
}
client.close();
`;

const bareProcess = (endpoint: string, images: string[]): Promise<void> =>
  proc(process.execPath, ['--input-type=module', '-e', BARE_PULL, endpoint, ...images]);

const bareStatusProcess = (endpoint: string, images: string[]): Promise<void> =>
  proc(process.execPath, [join(REPO_ROOT, 'test', 'bench', 'bare-image-status.js'), endpoint, ...images]);

const stokerProcess = (endpoint: string, images: string[], concurrency: number, pullPolicy = 'Always'): Promise<void> =>
  proc(process.execPath, [
    CLI,
    'warm',
    '--cri-endpoint',
    endpoint,
    '--pull-policy',
    pullPolicy,
    '--concurrency',
    String(concurrency),
    '--json',
    ...images.flatMap((i) => ['--image', i]),
  ]);

function bareInProcess(endpoint: string, image: string): Promise<void> {
  const client = new (criProto().ImageService)(endpoint, grpc.credentials.createInsecure());
  return new Promise<void>((resolve, reject) => {
    client.pullImage({ image: { image } }, (err) => {
      client.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

async function stokerInProcess(endpoint: string, image: string): Promise<void> {
  const runtime = await connectRuntime(parseEndpoint(endpoint));
  try {
    const [result] = await warmImages(runtime, { images: [{ image, pullPolicy: 'ALWAYS' }] });
    if (result?.state !== 'DONE') throw new Error(`stoker failed: ${result?.failure?.message}`);
  } finally {
    runtime.close();
  }
}

interface Contender {
  name: string;
  run: () => Promise<void>;
}

/** Rounds of interleaved contenders, each after `reset`; returns the seconds per contender. */
async function rounds(contenders: Contender[], reset: () => Promise<void>, count = ROUNDS): Promise<Map<string, number[]>> {
  const times = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let round = 0; round < count; round++) {
    const order = round % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) {
      await reset();
      const t = await timed(c.run);
      times.get(c.name)?.push(t);
    }
    process.stderr.write(`  round ${round + 1}/${count}: ${order.map((c) => `${c.name} ${times.get(c.name)?.at(-1)?.toFixed(2)}s`).join(', ')}\n`);
  }
  return times;
}

function report(title: string, times: Map<string, number[]>, pairs: [string, string, string][], how = `${ROUNDS} rounds, cold pulls`): void {
  console.log(`\n${title} (${how}, medians)`);
  for (const [name, ts] of times) console.log(`  ${name.padEnd(34)} ${median(ts).toFixed(2)} s`);
  for (const [a, b, target] of pairs) {
    const ratio = median(times.get(a) ?? []) / median(times.get(b) ?? []);
    console.log(`  ratio ${a} / ${b}: ${ratio.toFixed(2)} (target ${target})`);
  }
}

if (!existsSync(CLI)) await run('npm', ['run', 'build']);
const containerd = await startContainerd();
const registry = await startRegistry();
try {
  await registry.addTo(containerd);
  const endpoint = containerd.endpoint;
  const removeAll = async (images: string[]): Promise<void> => {
    for (const i of images) await containerd.removeImage(i);
  };

  if (ONLY.has('single')) {
    const layer = Math.round((SIZE_MB * 1024 * 1024) / 4);
    const image = await pushRandomImage(registry, 'bench/single', { layers: 4, layerSizeBytes: layer });
    process.stderr.write(`single: ${image}, 4 layers of ${(layer / 1e6).toFixed(1)} MB\n`);
    const times = await rounds(
      [
        { name: 'stoker warm (process)', run: () => stokerProcess(endpoint, [image], 1) },
        { name: 'bare CRI PullImage (process)', run: () => bareProcess(endpoint, [image]) },
        { name: 'warmImages() (in process)', run: () => stokerInProcess(endpoint, image) },
        { name: 'bare PullImage (in process)', run: () => bareInProcess(endpoint, image) },
      ],
      () => removeAll([image]),
    );
    report(`single image, ${SIZE_MB} MB`, times, [
      ['stoker warm (process)', 'bare CRI PullImage (process)', '<= 1.1'],
      ['warmImages() (in process)', 'bare PullImage (in process)', '<= 1.1'],
    ]);
  }

  if (ONLY.has('present')) {
    const image = await pushRandomImage(registry, 'bench/present', { layers: 4, layerSizeBytes: 1024 * 1024 });
    await containerd.ctrPull(image);
    process.stderr.write(`present: ${image}, already in containerd\n`);
    const times = await rounds(
      [
        { name: 'stoker warm (process)', run: () => stokerProcess(endpoint, [image], 1, 'IfNotPresent') },
        { name: 'bare ImageStatus (process)', run: () => bareStatusProcess(endpoint, [image]) },
      ],
      () => Promise.resolve(),
      3 * ROUNDS,
    );
    report('image already present', times, [['stoker warm (process)', 'bare ImageStatus (process)', '<= 1.2']], `${3 * ROUNDS} rounds`);
  }

  if (ONLY.has('parallel')) {
    const images: string[] = [];
    for (let i = 0; i < 8; i++) images.push(await pushRandomImage(registry, `bench/parallel-${i}`, { layers: 1, layerSizeBytes: 12 * 1024 * 1024 }));
    const proxy = await perConnectionProxy(registry.host, CONN_MBPS * 1e6);
    try {
      await addRegistryHost(containerd, proxy.host);
      const viaProxy = images.map((i) => i.replace(registry.host, proxy.host));
      for (const [label, list] of [
        ['loopback registry', images],
        [`registry at ${CONN_MBPS} MB/s per connection`, viaProxy],
      ] as const) {
        process.stderr.write(`parallel: 8 images of 12.6 MB, ${label}\n`);
        const times = await rounds(
          [
            { name: 'stoker warm, 8 at once', run: () => stokerProcess(endpoint, [...list], 8) },
            { name: 'bare PullImage, one after another', run: () => bareProcess(endpoint, [...list]) },
          ],
          () => removeAll([...list]),
        );
        report(`8 images, ${label}`, times, [['stoker warm, 8 at once', 'bare PullImage, one after another', '<= 0.5']]);
      }
    } finally {
      await proxy.stop();
    }
  }
} finally {
  await containerd.stop();
  await registry.stop();
}
