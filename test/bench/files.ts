// Benchmark: warming files into the page cache with Stoker against the plain tools.
//
//   npx tsx test/bench/files.ts [--rounds N] [--only large,small,sshfs,shard,loader,sweep,shard-sweep] [--shard-mb MB] [--big-mb MB]
//
// Every round starts cold (sync, then `vmtouch -e` on every file; over sshfs also on the
// server's files), tools run interleaved within a round, and each scenario prints the medians
// and the ratio to the reference tool:
// - large:  4 shards of ~700 MB; Stoker vs `vmtouch -t` and `cat`, and its GB/s vs `fio`
//           O_DIRECT sequential reads of the same files (the disk's own limit);
// - small:  5,000 files of 64 KiB; Stoker vs `vmtouch -t`, and the bundled CLI as a whole process
//           (`node dist/bin/stoker.cjs warm --path`, start-up included) vs the `vmtouch -t` process;
// - sshfs:  the same small files over sshfs (-o kernel_cache) from a private sshd on 127.0.0.1;
// - shard:  one 2 GB file (--big-mb, default 2048) over sshfs on loopback; Stoker (on a network
//           filesystem it reads a large file as several ranges at once) vs `vmtouch -t`;
// - shard-sweep: the same file read as 1, 2, 4 and 8 ranges, over sshfs and on the local disk, to
//           choose the number of ranges (not run unless asked for);
// - loader: reading every byte of the shards, as a model loader does, after Stoker's warm vs
//           after eviction;
// - sweep:  readers x buffer size, to choose the defaults (not run unless asked for).
// Stoker is timed as the library call warmFiles() with its defaults (residency before and
// after included), in this process; "no residency" is the same call without measuring it;
// "stoker warm (process)" is the built CLI, timed from spawn to exit as a user runs it.
// Data lives in a temp dir that is removed at the end.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../support/proc.js';
import { flag, hasFlag } from './args.js';

// Readers run on libuv's thread pool, sized from the environment before the first file call:
// run again with the size Stoker's CLI uses unless the caller chose one.
if (process.env.UV_THREADPOOL_SIZE === undefined) {
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, UV_THREADPOOL_SIZE: '16' },
  });
  if (r.signal) process.stderr.write(`benchmark killed by ${r.signal}\n`);
  process.exit(r.status ?? 1);
}

const { warmFiles } = await import('../../agent/warm/files.js');
const exec = promisify(execFile);
const MB = 1e6;

const ROUNDS = Math.max(3, Number(flag('--rounds') ?? 5));
const ONLY = new Set((flag('--only') ?? 'large,small,sshfs,loader').split(','));
const SHARD_BYTES = Number(flag('--shard-mb') ?? 700) * 1024 * 1024;
const RESIDENCY = !hasFlag('--no-residency');
const BIG_BYTES = Number(flag('--big-mb') ?? 2048) * 1024 * 1024;
const SMALL_FILES = 5000;
const SMALL_BYTES = 64 * 1024;

const never = new AbortController().signal;
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

async function evict(...paths: string[]): Promise<void> {
  await exec('sync');
  await exec('vmtouch', ['-q', '-e', ...paths]);
}

async function listFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort().map((f) => join(dir, f));
}

/** Runs a command, failing loudly on a non-zero exit. */
async function sh(cmd: string, argv: string[]): Promise<void> {
  await exec(cmd, argv, { maxBuffer: 64 * 1024 * 1024 });
}

/** The bundled CLI as a user runs it: `stoker warm --path DIR`, from spawn to exit. */
async function stokerProcess(dir: string): Promise<void> {
  // Its own environment: the launcher sizes libuv's pool itself when the user has not.
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE;
  await exec(process.execPath, [CLI, 'warm', '--path', dir, '--allowed-root', dir, '--budget', 'off', '--json'], { env, maxBuffer: 64 * 1024 * 1024 });
}

async function stokerWarm(dir: string, extra: { readers?: number; bufferBytes?: number; residency?: boolean; ranges?: number } = {}): Promise<void> {
  const [r] = await warmFiles({ paths: [{ path: dir, include: [], exclude: [] }], allowedRoots: [dir], signal: never, budget: 'off', residency: RESIDENCY, ...extra });
  if (r?.state !== 'DONE' || r.issues.length > 0) throw new Error(`stoker warm of ${dir} failed: ${JSON.stringify(r)}`);
}

/** A model loader: every byte of every file, in order, one 16 MiB read at a time. */
function loaderRead(files: string[]): void {
  const buf = Buffer.allocUnsafe(16 * 1024 * 1024);
  for (const f of files) {
    const fd = openSync(f, 'r');
    try {
      while (readSync(fd, buf, 0, buf.length, null) > 0);
    } finally {
      closeSync(fd);
    }
  }
}

interface Tool {
  name: string;
  run: () => Promise<unknown>;
}

/** Interleaved rounds, cold each time; returns the seconds per tool. */
async function rounds(title: string, coldPaths: string[], tools: Tool[]): Promise<Map<string, number[]>> {
  const times = new Map<string, number[]>(tools.map((t) => [t.name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate the order so no tool always runs first after a write-back.
    const order = tools.map((_, i) => tools[(i + r) % tools.length]).filter((t): t is Tool => t !== undefined);
    for (const t of order) {
      await evict(...coldPaths);
      times.get(t.name)?.push(await timed(t.run));
    }
    process.stderr.write(`${title}: round ${r + 1}/${ROUNDS}\r`);
  }
  process.stderr.write('\n');
  return times;
}

function report(title: string, bytes: number, times: Map<string, number[]>, reference: string, target?: string): void {
  console.log(`\n## ${title} (${ROUNDS} rounds, cold each round, medians)`);
  const ref = median(times.get(reference) ?? []);
  for (const [name, xs] of times) {
    const m = median(xs);
    const ratio = name.startsWith('stoker') && ref > 0 ? `  ${name}/${reference} = ${(m / ref).toFixed(2)}${target ? ` (target ${target})` : ''}` : '';
    console.log(`${name.padEnd(22)} ${m.toFixed(3)} s  ${(bytes / m / 1e9).toFixed(2)} GB/s   [${xs.map((x) => x.toFixed(2)).join(' ')}]${ratio}`);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket();
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
      s.connect(port, '127.0.0.1');
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd did not listen on 127.0.0.1:${port}`);
}

/** A private sshd on loopback and an sshfs mount of `remote` at a new mount point. */
async function sshfsMount(work: string, remote: string): Promise<{ mount: string; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(work, 'ssh-'));
  await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client_key')]);
  await sh('cp', [join(dir, 'client_key.pub'), join(dir, 'authorized_keys')]);
  await chmod(join(dir, 'authorized_keys'), 0o600);
  const port = await freePort();
  const sftp = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/sftp-server'];
  const sftpServer = (await Promise.all(sftp.map(async (p) => ((await exec('test', ['-x', p]).then(() => true, () => false)) ? p : undefined)))).find(Boolean);
  await writeFile(
    join(dir, 'sshd_config'),
    [
      `ListenAddress 127.0.0.1`,
      `Port ${port}`,
      `HostKey ${join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      `Subsystem sftp ${sftpServer ?? 'internal-sftp'}`,
    ].join('\n') + '\n',
  );
  await mkdir('/run/sshd', { recursive: true }); // sshd's privilege-separation directory
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let sshdErr = '';
  sshd.stderr?.on('data', (b: Buffer) => (sshdErr += b.toString()));
  try {
    await waitForPort(port, sshd);
  } catch (err) {
    sshd.kill();
    throw new Error(`${(err as Error).message}: ${sshdErr}`);
  }
  const mount = await mkdtemp(join(work, 'mnt-'));
  await sh('sshfs', [
    `root@127.0.0.1:${remote}`,
    mount,
    '-p',
    String(port),
    '-o',
    `kernel_cache,IdentityFile=${join(dir, 'client_key')},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes`,
  ]);
  return {
    mount,
    close: async () => {
      await exec('fusermount', ['-u', mount]).catch(() => exec('umount', ['-l', mount]).catch(() => undefined));
      sshd.kill();
    },
  };
}

/** Random-looking data without generating gigabytes of randomness: a random chunk, each copy salted. */
async function writeSalted(file: string, bytes: number, salt: number): Promise<void> {
  const chunk = randomBytes(16 * 1024 * 1024);
  const parts: Buffer[] = [];
  for (let off = 0; off < bytes; off += chunk.length) {
    const c = Buffer.from(chunk.subarray(0, Math.min(chunk.length, bytes - off)));
    c.writeUInt32LE(salt * 1_000_000 + off / chunk.length, 0);
    parts.push(c);
    if (parts.length === 8) await writeFile(file, Buffer.concat(parts.splice(0)), { flag: 'a' });
  }
  if (parts.length) await writeFile(file, Buffer.concat(parts), { flag: 'a' });
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) await sh('npm', ['run', 'build']);
  const work = await mkdtemp(join(tmpdir(), 'stoker-bench-files-'));
  const cleanups: (() => Promise<void>)[] = [];
  const onSignal = (): void => {
    void Promise.all(cleanups.map((c) => c())).finally(() => rm(work, { recursive: true, force: true }).finally(() => process.exit(130)));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    console.log(`# Stoker file warming benchmark (UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE})`);
    const large = join(work, 'large');
    const small = join(work, 'small');

    if (ONLY.has('large') || ONLY.has('loader') || ONLY.has('sweep')) {
      await mkdir(large);
      for (let i = 0; i < 4; i++) await writeSalted(join(large, `model-0000${i + 1}-of-00004.safetensors`), SHARD_BYTES, i);
    }
    const big = join(work, 'big');
    if (ONLY.has('shard') || ONLY.has('shard-sweep')) {
      await mkdir(big);
      await writeSalted(join(big, 'model.safetensors'), BIG_BYTES, 9);
    }
    if (ONLY.has('small') || ONLY.has('sshfs') || ONLY.has('sweep')) {
      await mkdir(small);
      for (let i = 0; i < SMALL_FILES; i++) await writeFile(join(small, `f${String(i).padStart(5, '0')}.bin`), randomBytes(SMALL_BYTES));
    }

    if (ONLY.has('large')) {
      const files = await listFiles(large);
      const bytes = 4 * SHARD_BYTES;
      const times = await rounds('large', [large], [
        { name: 'stoker', run: () => stokerWarm(large) },
        { name: 'vmtouch -t', run: () => sh('vmtouch', ['-q', '-t', large]) },
        { name: 'cat', run: () => sh('sh', ['-c', 'cat "$@" > /dev/null', 'cat', ...files]) },
        {
          name: 'fio O_DIRECT',
          run: () =>
            // One job per shard, all at once, as Stoker reads them: the disk's parallel limit.
            sh('fio', ['--rw=read', '--direct=1', '--bs=4M', '--ioengine=libaio', '--iodepth=8', '--readonly', '--group_reporting', '--output=/dev/null',
              ...files.flatMap((f, i) => [`--name=shard${i}`, `--filename=${f.replace(/:/g, '\\:')}`])]),
        },
      ]);
      report(`4 shards of ${(SHARD_BYTES / MB).toFixed(0)} MB`, bytes, times, 'vmtouch -t', '<= 1.05');
      const fio = median(times.get('fio O_DIRECT') ?? []);
      const st = median(times.get('stoker') ?? []);
      console.log(`stoker GB/s / fio O_DIRECT GB/s = ${(fio / st).toFixed(2)} (target >= 0.9)`);
      const cat = median(times.get('cat') ?? []);
      console.log(`stoker/cat = ${(st / cat).toFixed(2)}`);
    }

    if (ONLY.has('small')) {
      const times = await rounds('small', [small], [
        { name: 'stoker', run: () => stokerWarm(small) },
        { name: 'no residency', run: () => stokerWarm(small, { residency: false }) },
        { name: 'stoker warm (process)', run: () => stokerProcess(small) },
        { name: 'vmtouch -t', run: () => sh('vmtouch', ['-q', '-t', small]) },
      ]);
      report(`${SMALL_FILES} files of 64 KiB, local disk`, SMALL_FILES * SMALL_BYTES, times, 'vmtouch -t', '<= 0.75');
    }

    if (ONLY.has('sshfs')) {
      const m = await sshfsMount(work, small);
      cleanups.push(m.close);
      try {
        const times = await rounds('sshfs', [small, m.mount], [
          { name: 'stoker', run: () => stokerWarm(m.mount) },
          { name: 'no residency', run: () => stokerWarm(m.mount, { residency: false }) },
          { name: 'vmtouch -t', run: () => sh('vmtouch', ['-q', '-t', m.mount]) },
        ]);
        report(`${SMALL_FILES} files of 64 KiB over sshfs on loopback`, SMALL_FILES * SMALL_BYTES, times, 'vmtouch -t', '<= 0.6');
        if (ONLY.has('sweep')) {
          const sweep: Tool[] = [4, 8, 16, 32, 64].map((n) => ({ name: `readers ${n}`, run: () => stokerWarm(m.mount, { readers: n }) }));
          report('sshfs readers sweep', SMALL_FILES * SMALL_BYTES, await rounds('sshfs sweep', [small, m.mount], sweep), 'readers 32');
        }
      } finally {
        await m.close();
        cleanups.splice(cleanups.indexOf(m.close), 1);
      }
    }

    if (ONLY.has('shard') || ONLY.has('shard-sweep')) {
      const m = await sshfsMount(work, big);
      cleanups.push(m.close);
      const mb = (BIG_BYTES / MB).toFixed(0);
      try {
        if (ONLY.has('shard')) {
          const times = await rounds('shard', [big, m.mount], [
            { name: 'stoker', run: () => stokerWarm(m.mount) },
            { name: 'vmtouch -t', run: () => sh('vmtouch', ['-q', '-t', m.mount]) },
          ]);
          report(`one file of ${mb} MB over sshfs on loopback`, BIG_BYTES, times, 'vmtouch -t', '<= 0.6');
        }
        if (ONLY.has('shard-sweep')) {
          const sweep = (dir: string): Tool[] => [
            ...[1, 2, 4, 8].map((n) => ({ name: `stoker ranges ${n}`, run: () => stokerWarm(dir, { ranges: n }) })),
            { name: 'vmtouch -t', run: () => sh('vmtouch', ['-q', '-t', dir]) },
          ];
          report(`ranges sweep: one file of ${mb} MB over sshfs`, BIG_BYTES, await rounds('shard sweep sshfs', [big, m.mount], sweep(m.mount)), 'vmtouch -t');
          report(`ranges sweep: one file of ${mb} MB on the local disk`, BIG_BYTES, await rounds('shard sweep local', [big], sweep(big)), 'vmtouch -t');
        }
      } finally {
        await m.close();
        cleanups.splice(cleanups.indexOf(m.close), 1);
      }
    }

    if (ONLY.has('loader')) {
      const files = await listFiles(large);
      const cold: number[] = [];
      const warm: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        await evict(large);
        cold.push(await timed(() => Promise.resolve(loaderRead(files))));
        await evict(large);
        await stokerWarm(large);
        warm.push(await timed(() => Promise.resolve(loaderRead(files))));
        process.stderr.write(`loader: round ${r + 1}/${ROUNDS}\r`);
      }
      process.stderr.write('\n');
      console.log(`\n## model read, every byte of 4 shards (${ROUNDS} rounds, medians)`);
      console.log(`after eviction:      ${median(cold).toFixed(3)} s  [${cold.map((x) => x.toFixed(2)).join(' ')}]`);
      console.log(`after Stoker's warm: ${median(warm).toFixed(3)} s  [${warm.map((x) => x.toFixed(2)).join(' ')}]`);
      console.log(`speed-up: ${(median(cold) / median(warm)).toFixed(1)}x`);
    }

    if (ONLY.has('sweep')) {
      const bufs: Tool[] = [1, 4, 8, 16].map((mb) => ({ name: `buffer ${mb} MiB`, run: () => stokerWarm(large, { bufferBytes: mb * 1024 * 1024 }) }));
      bufs.push(...[1, 2, 4].map((n) => ({ name: `readers ${n}`, run: () => stokerWarm(large, { readers: n }) })));
      report('large: buffer and readers sweep', 4 * SHARD_BYTES, await rounds('sweep large', [large], bufs), 'buffer 8 MiB');
      const readers: Tool[] = [4, 8, 16, 32, 64].map((n) => ({ name: `readers ${n}`, run: () => stokerWarm(small, { readers: n }) }));
      report('small: readers sweep', SMALL_FILES * SMALL_BYTES, await rounds('sweep small', [small], readers), 'readers 32');
    }
  } finally {
    for (const c of cleanups) await c();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
