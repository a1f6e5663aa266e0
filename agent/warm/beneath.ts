// Opening what lies below an allowed root without following any symlink, and without trusting a
// path that was checked earlier: the file walk and the readers work on directory descriptors,
// openat-style. Every component of a relative path is opened relative to the one before, with
// O_NOFOLLOW (directories also with O_DIRECTORY), so no component can be a symlink, and a
// directory swapped for a symlink after it was opened changes nothing: the descriptor still
// names the directory that was opened. `..` is refused, so nothing above the root's descriptor
// is ever reached.
//
// Two ways to do it, the first that works:
// - native: the helper's openat/fdopendir/fstatat (agent/native), on libuv's thread pool;
// - procfs: Node's own calls on `/proc/self/fd/<dirfd>/<name>`. The kernel resolves the
//   `/proc/self/fd/<dirfd>` link to the open directory itself (not to its path), so looking up
//   one name there with O_NOFOLLOW is openat(dirfd, name, O_NOFOLLOW). Same guarantee, a few
//   more calls; it needs procfs at /proc, which is checked (statfs magic, and a descriptor's link
//   leads to the same directory) before it is used.
// Without either, nothing below a root is opened (callers report READ_FAILED): the old way, by
// path, cannot tell a component swapped after its check.
//
// Not covered, by design: a root's own path (configuration, trusted), mounts below a root
// (bind mounts are followed as the kernel does; mounting needs privilege), hard links (a file
// hard-linked into the root is read: its content is the root's file), and a directory moved out of
// the root while it is being listed (its descriptor still lists it; moving needs write access to
// the root).
import fs from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { loadNative, type Native } from './native.js';

export type EntryKind = 'file' | 'dir' | 'symlink' | 'FIFO' | 'socket' | 'character device' | 'block device' | 'special file';

/** What lstat says about one entry. */
export interface EntryStat {
  kind: EntryKind;
  dev: number;
  ino: number;
  size: number;
}

/** A failure of a call, with the errno's name as `code` (as Node's own errors have). */
export class ErrnoError extends Error {
  constructor(
    readonly code: string,
    what: string,
  ) {
    super(`${code}: ${what}`);
    this.name = 'ErrnoError';
  }
}

export interface Beneath {
  /** "native" or "procfs": how the guarantee is kept. */
  readonly how: string;
  /**
   * Opens `rel` (names joined by "/", no "", "." or ".."; "" is the directory itself) below the
   * open directory `dirFd` with `flags`, never following a symlink. Rejects with an ErrnoError:
   * ELOOP or ENOTDIR where a component is a symlink, ENOENT where one is missing.
   */
  open(dirFd: number, rel: string, flags: number): Promise<number>;
  /** Opens a directory below `dirFd` only to walk or list it. */
  openDir(dirFd: number, rel: string): Promise<number>;
  /** The names in an open directory, sorted. */
  list(dirFd: number): Promise<string[]>;
  /** lstat of each name in an open directory; an ErrnoError where it failed. */
  statAt(dirFd: number, names: readonly string[]): Promise<(EntryStat | ErrnoError)[]>;
}

const C = fs.constants;
/** Names per statAt call: one thread-pool task each, several in flight. */
const STAT_BATCH = 128;

function kindOfStats(st: fs.Stats): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'special file';
}

const NATIVE_KINDS: Readonly<Record<string, EntryKind>> = {
  f: 'file',
  d: 'dir',
  l: 'symlink',
  p: 'FIFO',
  s: 'socket',
  c: 'character device',
  b: 'block device',
  '?': 'special file',
};

/** What an fstat of an open descriptor says. */
export function entryStat(st: fs.Stats): EntryStat {
  return { kind: kindOfStats(st), dev: st.dev, ino: st.ino, size: st.size };
}

/** Splits a relative path into its names; throws EINVAL for "", "." or ".." components or a leading "/". */
export function components(rel: string): string[] {
  if (rel === '') return [];
  const parts = rel.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) throw new ErrnoError('EINVAL', `"${rel}" is not a plain relative path`);
  return parts;
}

function errnoOf(err: unknown, what: string): ErrnoError {
  if (typeof err === 'number') {
    let code: string;
    try {
      code = getSystemErrorName(-err);
    } catch {
      code = `errno ${err}`;
    }
    return new ErrnoError(code, what);
  }
  if (err instanceof ErrnoError) return err;
  const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : 'EIO';
  return new ErrnoError(code, what);
}

function nativeBeneath(native: Native): Beneath {
  return {
    how: 'native',
    async open(dirFd, rel, flags) {
      components(rel);
      return native.openBeneath(dirFd, rel, flags).catch((err: unknown) => Promise.reject(errnoOf(err, `opening "${rel}"`)));
    },
    async openDir(dirFd, rel) {
      components(rel);
      return native.openBeneath(dirFd, rel, native.O_PATH | C.O_DIRECTORY).catch((err: unknown) => Promise.reject(errnoOf(err, `opening "${rel}"`)));
    },
    async list(dirFd) {
      const names = await native.listDir(dirFd).catch((err: unknown) => Promise.reject(errnoOf(err, 'listing a directory')));
      return names.sort();
    },
    async statAt(dirFd, names) {
      const batches: Promise<(EntryStat | ErrnoError)[]>[] = [];
      for (let i = 0; i < names.length; i += STAT_BATCH) {
        const batch = names.slice(i, i + STAT_BATCH);
        batches.push(
          native.statAt(dirFd, batch).then(
            (rows) =>
              rows.map(([kind, dev, ino, size, errno], j) =>
                kind ? { kind: NATIVE_KINDS[kind] ?? 'special file', dev, ino, size } : errnoOf(errno, `examining "${batch[j] ?? ''}"`),
              ),
            (err: unknown) => Promise.reject(errnoOf(err, 'examining a directory')),
          ),
        );
      }
      return (await Promise.all(batches)).flat();
    },
  };
}

const PROC_SUPER_MAGIC = 0x9fa0;
const at = (dirFd: number, name: string): string => `/proc/self/fd/${dirFd}/${name}`;

function openP(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}
function closeP(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

function procfsBeneath(): Beneath {
  const walk = async (dirFd: number, rel: string, flags: number): Promise<number> => {
    const parts = components(rel);
    if (parts.length === 0) return openP(at(dirFd, '.'), flags | C.O_NOFOLLOW).catch((err: unknown) => Promise.reject(errnoOf(err, 'opening "."')));
    let cur = dirFd;
    try {
      for (let i = 0; i < parts.length; i++) {
        const last = i === parts.length - 1;
        const next = await openP(at(cur, parts[i] ?? ''), (last ? flags : C.O_RDONLY | C.O_DIRECTORY) | C.O_NOFOLLOW).finally(() => {
          if (cur !== dirFd) void closeP(cur);
        });
        cur = next;
      }
      return cur;
    } catch (err) {
      throw errnoOf(err, `opening "${rel}"`);
    }
  };
  return {
    how: 'procfs',
    open: walk,
    openDir: (dirFd, rel) => walk(dirFd, rel, C.O_RDONLY | C.O_DIRECTORY),
    async list(dirFd) {
      const names = await fs.promises.readdir(`/proc/self/fd/${dirFd}`).catch((err: unknown) => Promise.reject(errnoOf(err, 'listing a directory')));
      return names.sort();
    },
    async statAt(dirFd, names) {
      const out: (EntryStat | ErrnoError)[] = [];
      for (let i = 0; i < names.length; i += STAT_BATCH * 2) {
        const batch = names.slice(i, i + STAT_BATCH * 2);
        out.push(
          ...(await Promise.all(
            batch.map((name) => {
              if (name === '' || name === '.' || name === '..' || name.includes('/')) return Promise.resolve(new ErrnoError('EINVAL', `"${name}" is not a name`));
              return fs.promises.lstat(at(dirFd, name)).then(entryStat, (err: unknown) => errnoOf(err, `examining "${name}"`));
            }),
          )),
        );
      }
      return out;
    },
  };
}

/** Why procfs cannot stand in for openat here, or undefined when it can. */
function procfsProblem(): string | undefined {
  let fd: number | undefined;
  try {
    if (fs.statfsSync('/proc').type !== PROC_SUPER_MAGIC) return '/proc is not procfs';
    fd = fs.openSync('/', C.O_RDONLY | C.O_DIRECTORY);
    const own = fs.fstatSync(fd);
    const via = fs.statSync(at(fd, '.'));
    if (own.dev !== via.dev || own.ino !== via.ino) return '/proc/self/fd does not lead to the open directory';
    return undefined;
  } catch (err) {
    return `/proc/self/fd cannot be used: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

let chosen: { beneath: Beneath | undefined; reason: string } | undefined;

/** The way to open below a root, or undefined with the reason there is none. */
export function loadBeneath(opts: { native?: boolean } = {}): { beneath: Beneath | undefined; reason: string } {
  const useNative = opts.native ?? true;
  if (useNative && chosen) return chosen;
  const { native, reason } = loadNative();
  if (useNative && native) {
    chosen = { beneath: nativeBeneath(native), reason: `native helper (${reason})` };
    return chosen;
  }
  const problem = procfsProblem();
  const result = problem
    ? { beneath: undefined, reason: `the native helper is ${useNative ? reason : 'turned off'}, and ${problem}` }
    : { beneath: procfsBeneath(), reason: `procfs (the native helper is ${useNative ? reason : 'turned off'})` };
  if (useNative) chosen = result;
  return result;
}

/** Both ways that work here, for tests that must cover each. */
export function allBeneath(): Beneath[] {
  const out: Beneath[] = [];
  const { native } = loadNative();
  if (native) out.push(nativeBeneath(native));
  if (!procfsProblem()) out.push(procfsBeneath());
  return out;
}

/** lstat of `rel` below `dirFd`: its parent opened without following symlinks, its own name not followed. */
export async function statBeneath(b: Beneath, dirFd: number, rel: string): Promise<EntryStat> {
  if (rel === '') {
    return new Promise((resolve, reject) => fs.fstat(dirFd, (err, st) => (err ? reject(errnoOf(err, 'examining "."')) : resolve(entryStat(st)))));
  }
  const slash = rel.lastIndexOf('/');
  const parent = slash < 0 ? '' : rel.slice(0, slash);
  const name = rel.slice(slash + 1);
  const pfd = parent === '' ? dirFd : await b.openDir(dirFd, parent);
  try {
    const [st] = await b.statAt(pfd, [name]);
    if (!st) throw new ErrnoError('EIO', `examining "${rel}"`);
    if (st instanceof ErrnoError) throw st;
    return st;
  } finally {
    if (pfd !== dirFd) await closeP(pfd);
  }
}
