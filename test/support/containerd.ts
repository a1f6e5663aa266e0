// A private containerd (hack/containerd.sh) per test file or per simulated node, with a typed handle.
import { mkdtemp, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ContentService, type Ingest } from '../../agent/cri/content-service.js';
import { run, runHack, type RunResult } from './proc.js';

export interface ContainerdOptions {
  /** Directory for everything of this instance; default: a new temp dir, removed by stop(). */
  dir?: string;
  /** The CRI's snapshotter: `native` (default, works anywhere) or `overlayfs` (what nodes use; much faster unpacking of many layers). */
  snapshotter?: 'native' | 'overlayfs';
  /**
   * Makes containerd's root (content store and snapshots) a tmpfs of this many bytes at `<dir>/root`,
   * a node whose image filesystem is small. Unmounted by stop(), and by `clean` if this process dies.
   */
  rootTmpfsBytes?: number;
}

export interface FilesystemUsage {
  sizeBytes: number;
  usedBytes: number;
  /** Bytes available to an unprivileged writer (f_bavail), what a pull can still use. */
  freeBytes: number;
}

export interface PullOptions {
  /** Registry credentials for the pull. */
  creds?: { username: string; password: string };
  signal?: AbortSignal;
}

export interface Containerd {
  /** The instance's directory (root, state, sockets, log, certs.d). */
  readonly dir: string;
  /** CRI endpoint, `unix:///.../containerd.sock`. */
  readonly endpoint: string;
  /** Path of the containerd gRPC socket. */
  readonly socketPath: string;
  /** Path of containerd's log file. */
  readonly logPath: string;
  /** The snapshotter images are unpacked with. */
  readonly snapshotter: 'native' | 'overlayfs';
  /** containerd's root directory (a tmpfs mount point with `rootTmpfsBytes`). */
  readonly rootDir: string;
  /** Size, used and free bytes of the filesystem that holds containerd's root. */
  rootUsage(): Promise<FilesystemUsage>;
  /** Stops containerd (SIGTERM, then SIGKILL) and removes its directory if it was created here. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs containerd at once (a crash); its directory stays, so restart() brings it back. */
  kill(): Promise<void>;
  /** Starts containerd again on the same directory, keeping its images (stops it first if running). */
  restart(): Promise<void>;
  /** Whether the k8s.io namespace (the CRI's) has an image named `ref` (e.g. 127.0.0.1:5000/a/b:v1). */
  imagePresent(ref: string): Promise<boolean>;
  /** Names of all images in the k8s.io namespace. */
  listImages(): Promise<string[]>;
  /** Removes `ref` and every other name of the same image, then garbage-collects so blobs and snapshots are gone. */
  removeImage(ref: string): Promise<void>;
  /** Pulls `ref` with `ctr` (plain HTTP, this instance's snapshotter and certs.d) into k8s.io, as the CRI would. */
  ctrPull(ref: string, opts?: PullOptions): Promise<void>;
  /** Runs `ctr -n k8s.io --address <socket> ...args`. */
  ctr(args: readonly string[], signal?: AbortSignal): Promise<RunResult>;
  /** Digests of all content blobs containerd holds (after removeImage, the image's are gone). */
  contentDigests(): Promise<string[]>;
  /** Blobs being written now (the content API's active ingests in k8s.io), with their byte offsets. */
  ingests(): Promise<Ingest[]>;
}

/**
 * Starts a private containerd and waits until it answers on its socket. If this process dies
 * without calling stop(), containerd is stopped anyway (and its directory removed if made here).
 */
export async function startContainerd(opts: ContainerdOptions = {}): Promise<Containerd> {
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'stoker-ctrd-')));
  const snapshotter = opts.snapshotter ?? 'native';
  // If this process dies without stop(), the daemon is stopped anyway, and a directory made here removed.
  const ownerArgs = ['--owner-pid', String(process.pid), ...(ownDir ? ['--owner-cleanup'] : [])];
  const tmpfsArgs = opts.rootTmpfsBytes !== undefined ? ['--root-tmpfs', String(opts.rootTmpfsBytes)] : [];
  let endpoint: string;
  try {
    endpoint = await runHack('containerd.sh', ['start', dir, ...ownerArgs, '--snapshotter', snapshotter, ...tmpfsArgs]);
  } catch (err) {
    if (ownDir) await runHack('containerd.sh', ['clean', dir]).catch(() => undefined);
    else if (tmpfsArgs.length > 0) await runHack('containerd.sh', ['unmount-root', dir]).catch(() => undefined);
    throw err;
  }
  const socketPath = endpoint.replace(/^unix:\/\//, '');
  let stopped = false;

  const ctr = (args: readonly string[], signal?: AbortSignal, secrets: readonly string[] = []): Promise<RunResult> =>
    run('ctr', ['-n', 'k8s.io', '--address', socketPath, ...args], { secrets, ...(signal ? { signal } : {}) });

  const listRows = async (): Promise<{ ref: string; digest: string }[]> => {
    const { stdout } = await ctr(['images', 'ls']);
    return stdout
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((cols): cols is [string, string, string, ...string[]] => cols.length >= 3 && cols[0] !== '')
      .map((cols) => ({ ref: cols[0], digest: cols[2] }));
  };

  const handle: Containerd = {
    dir,
    endpoint,
    socketPath,
    logPath: join(dir, 'containerd.log'),
    snapshotter,
    rootDir: join(dir, 'root'),
    async rootUsage() {
      const fs = await statfs(join(dir, 'root'));
      return { sizeBytes: fs.blocks * fs.bsize, usedBytes: (fs.blocks - fs.bfree) * fs.bsize, freeBytes: fs.bavail * fs.bsize };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await runHack('containerd.sh', [ownDir ? 'clean' : tmpfsArgs.length > 0 ? 'unmount-root' : 'stop', dir]);
    },
    async kill() {
      await runHack('containerd.sh', ['kill', dir]);
    },
    async restart() {
      if (stopped) throw new Error(`containerd in ${dir} was stopped for good; start a new one`);
      await runHack('containerd.sh', ['stop', dir]);
      await runHack('containerd.sh', ['start', dir, ...ownerArgs]);
    },
    async imagePresent(ref) {
      return (await listRows()).some((row) => row.ref === ref);
    },
    async listImages() {
      return (await listRows()).map((row) => row.ref);
    },
    async removeImage(ref) {
      const rows = await listRows();
      const target = rows.find((row) => row.ref === ref);
      if (!target) return;
      // The CRI names one image three ways (tag, repo@digest, config ID); all must go before GC frees the blobs.
      const names = rows.filter((row) => row.digest === target.digest).map((row) => row.ref);
      await ctr(['images', 'rm', '--sync', ...names]);
    },
    async ctrPull(ref, pullOpts = {}) {
      const args = ['images', 'pull', '--plain-http', '--snapshotter', snapshotter, '--hosts-dir', join(dir, 'certs.d')];
      const secrets: string[] = [];
      if (pullOpts.creds) {
        args.push('--user', `${pullOpts.creds.username}:${pullOpts.creds.password}`);
        secrets.push(pullOpts.creds.password);
      }
      await ctr([...args, ref], pullOpts.signal, secrets);
    },
    ctr,
    async contentDigests() {
      const { stdout } = await ctr(['content', 'ls', '-q']);
      return stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    },
    async ingests() {
      const content = new ContentService(endpoint, grpc.credentials.createInsecure(), {});
      try {
        return await content.listIngests();
      } finally {
        content.close();
      }
    },
  };
  return handle;
}
