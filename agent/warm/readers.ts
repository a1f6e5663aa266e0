// Streams files into the page cache. Readers draw a slot and a buffer from a ReaderPool, which an
// agent shares between all its tasks, so 64 tasks at once hold no more buffers than one pool's
// worth; file contents never live beyond those buffers.
//
// Each file is opened below its root's descriptor without following any symlink on the way
// (beneath.ts), with O_NONBLOCK (a FIFO swapped in after the walk cannot block the open), then
// fstat'ed: the reader refuses anything that is not the regular file, device and inode the walk
// checked (paths.ts), so a swap between check and open reads nothing.
// Node's callback fs API is used rather than FileHandle: it costs less per call, which matters
// for trees of many small files. Every call runs on libuv's thread pool (UV_THREADPOOL_SIZE,
// 4 by default), which bounds how many reads are really in flight.
import fs from 'node:fs';
import type { Beneath } from './beneath.js';
import type { Native } from './native.js';
import type { FileEntry, Issue } from './paths.js';
import { errnoCode, errnoText } from './paths.js';

export const DEFAULT_READERS = 32;
export const DEFAULT_BUFFER_BYTES = 8 * 1024 * 1024;

/** Files from this size up are streamed through the big buffers by a few readers. */
export const LARGE_FILE_BYTES = 1024 * 1024;
/** A small file's cost is its calls, not its bytes: small buffers let many be in flight. */
const SMALL_BUFFER_BYTES = 256 * 1024;
/**
 * Streams of large files one task reads at once. One sequential stream per file already keeps
 * the disk busy through the kernel's read-ahead; on a virtio disk 2 streams beat 1 and 4 add
 * nothing but buffers (test/bench/files.ts --only sweep).
 */
export const MAX_LARGE_READERS = 2;
/** Streams of large files an agent reads at once over all its tasks (two tasks may read two disks). */
export const DEFAULT_POOL_LARGE_READERS = 4;
/** A file is read as concurrent ranges (ReadAllOptions.ranges) only from this size up. */
export const RANGED_FILE_BYTES = 64 * 1024 * 1024;
/** No range's buffer is smaller than this: ranges share one lent buffer, so they are fewer when it is small. */
const MIN_RANGE_BUFFER_BYTES = 1024 * 1024;
/** A pool that has lent nothing for this long drops its free buffers (an idle agent stays small). */
const DEFAULT_IDLE_MS = 10_000;

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;

function fstatFd(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
}
function readFd(fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n))));
}
function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

/** Opens a checked file as the readers do: below its root, no symlink on the way, never blocking. */
export function openEntry(entry: FileEntry, beneath: Beneath): Promise<number> {
  return beneath.open(entry.root.fd, entry.rel, OPEN_FLAGS);
}

export interface ReaderPoolOptions {
  /** Files read at once over every task (default DEFAULT_READERS). */
  readers?: number;
  /** Of those, large files (default DEFAULT_POOL_LARGE_READERS, at most `readers`). */
  largeReaders?: number;
  /** Buffer of a large-file reader (default DEFAULT_BUFFER_BYTES); a small-file reader's is at most 256 KiB. */
  bufferBytes?: number;
  /** Free buffers are dropped once nothing was lent for this long (default 10 s; Infinity: kept). */
  idleMs?: number;
}

/** A reader slot and its buffer, lent for one file. */
export interface ReaderLease {
  readonly buf: Buffer;
  release(): void;
}

interface Waiter {
  large: boolean;
  signal: AbortSignal;
  grant: (lease: ReaderLease) => void;
  fail: (reason: unknown) => void;
}

/**
 * File readers and their buffers, shared by every task that reads through it: at most `readers`
 * files are read at once, at most `largeReaders` of them large ones, and the buffers (at most
 * largeReaders x bufferBytes + readers x 256 KiB) are reused from file to file and task to task.
 * Slots are granted in the order they were asked for, so tasks take turns file by file.
 */
export class ReaderPool {
  readonly readers: number;
  readonly largeReaders: number;
  readonly bufferBytes: number;
  readonly smallBufferBytes: number;
  private readonly idleMs: number;
  private busy = 0;
  private busyLarge = 0;
  private readonly freeLarge: Buffer[] = [];
  private readonly freeSmall: Buffer[] = [];
  private readonly waiting: Waiter[] = [];
  /** The readers waiting per signal; a signal gets one abort listener for the pool's lifetime or its own. */
  private readonly bySignal = new WeakMap<AbortSignal, Set<Waiter>>();
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(opts: ReaderPoolOptions = {}) {
    this.readers = opts.readers ?? DEFAULT_READERS;
    this.largeReaders = Math.min(this.readers, opts.largeReaders ?? DEFAULT_POOL_LARGE_READERS);
    this.bufferBytes = opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
    this.smallBufferBytes = Math.min(this.bufferBytes, SMALL_BUFFER_BYTES);
    this.idleMs = opts.idleMs ?? DEFAULT_IDLE_MS;
    if (!Number.isInteger(this.readers) || this.readers < 1) throw new RangeError(`readers must be a whole number of at least 1, not ${this.readers}`);
    if (!Number.isInteger(this.largeReaders) || this.largeReaders < 1) throw new RangeError(`largeReaders must be a whole number of at least 1, not ${this.largeReaders}`);
  }

  /** Files being read now. */
  get inUse(): number {
    return this.busy;
  }

  /** Bytes of buffers the pool holds now, lent or free. */
  get bufferBytesHeld(): number {
    return (this.busyLarge + this.freeLarge.length) * this.bufferBytes + (this.busy - this.busyLarge + this.freeSmall.length) * this.smallBufferBytes;
  }

  /** Waits for a slot (a large-file one when `large`) and its buffer; rejects with the abort reason. */
  acquire(large: boolean, signal: AbortSignal): Promise<ReaderLease> {
    signal.throwIfAborted();
    if (this.waiting.length === 0 && this.fits(large)) return Promise.resolve(this.lend(large));
    return new Promise<ReaderLease>((resolve, reject) => {
      const waiter: Waiter = { large, signal, grant: resolve, fail: reject };
      this.waiting.push(waiter);
      // One abort listener per signal, however many of its readers wait.
      let waiters = this.bySignal.get(signal);
      if (!waiters) {
        const mine = new Set<Waiter>();
        waiters = mine;
        this.bySignal.set(signal, mine);
        signal.addEventListener('abort', () => this.abandon(signal), { once: true });
      }
      waiters.add(waiter);
    });
  }

  /** Rejects every reader still waiting with this signal, which has aborted. */
  private abandon(signal: AbortSignal): void {
    const waiters = this.bySignal.get(signal);
    if (!waiters) return;
    for (const w of [...waiters]) {
      waiters.delete(w);
      const i = this.waiting.indexOf(w);
      if (i >= 0) this.waiting.splice(i, 1);
      w.fail(signal.reason);
    }
    this.dispatch();
  }

  private fits(large: boolean): boolean {
    return this.busy < this.readers && (!large || this.busyLarge < this.largeReaders);
  }

  private lend(large: boolean): ReaderLease {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.busy++;
    if (large) this.busyLarge++;
    const buf = (large ? this.freeLarge.pop() : this.freeSmall.pop()) ?? Buffer.allocUnsafe(large ? this.bufferBytes : this.smallBufferBytes);
    let released = false;
    return {
      buf,
      release: () => {
        if (released) return;
        released = true;
        this.busy--;
        if (large) this.busyLarge--;
        (large ? this.freeLarge : this.freeSmall).push(buf);
        this.dispatch();
      },
    };
  }

  /** Grants waiting slots in order; a large-file waiter that cannot go yet does not hold up small ones. */
  private dispatch(): void {
    for (let i = 0; i < this.waiting.length && this.busy < this.readers; ) {
      const w = this.waiting[i];
      if (w && this.fits(w.large)) {
        this.waiting.splice(i, 1);
        this.bySignal.get(w.signal)?.delete(w);
        w.grant(this.lend(w.large));
      } else {
        i++;
      }
    }
    if (this.busy === 0 && this.waiting.length === 0 && Number.isFinite(this.idleMs) && !this.idleTimer) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = undefined;
        if (this.busy === 0) {
          this.freeLarge.length = 0;
          this.freeSmall.length = 0;
        }
      }, this.idleMs);
      this.idleTimer.unref();
    }
  }
}

/**
 * Page-cache residency of checked files, measured on descriptors opened as the readers open
 * them (so a swapped file is not measured), `readers` at a time; -1 when any cannot be measured.
 */
export async function measureResident(files: readonly FileEntry[], native: Native, beneath: Beneath, readers: number, signal: AbortSignal): Promise<number> {
  let total = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (signal.aborted || total < 0) return;
      const entry = files[next++];
      if (!entry) return;
      let fd: number;
      try {
        fd = await openEntry(entry, beneath);
      } catch {
        total = -1;
        return;
      }
      try {
        const st = await fstatFd(fd);
        const n = st.isFile() && st.dev === entry.dev && st.ino === entry.ino ? native.residentBytes(fd, st.size) : -1;
        total = n < 0 || total < 0 ? -1 : total + n;
      } catch {
        total = -1;
      } finally {
        await closeFd(fd);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(readers, files.length)) }, worker));
  return signal.aborted ? -1 : total;
}

export interface ReadResult {
  /** Bytes read from the file (also when an issue is reported). */
  bytes: number;
  /** Set when the file was refused, vanished or changed while being read. */
  issue?: Issue;
  /** Page-cache residency measured on the open descriptor before reading (with the native helper); -1 unknown. */
  residentBefore?: number;
}

/**
 * Reads the file behind `fd`, of `size` bytes at open, as `ranges` contiguous ranges at once,
 * each through its own slice of `buf`: over a network filesystem one sequential stream waits a
 * round trip per request, and several keep the link busy. The last range reads on past `size`
 * until the end of the file, so a file that grew shows as more bytes; one that shrank, as fewer.
 */
async function readRanges(
  fd: number,
  buf: Buffer,
  size: number,
  ranges: number,
  signal: AbortSignal,
  onBytes: (n: number) => void,
): Promise<{ reads: number }> {
  const slice = Math.floor(buf.length / ranges);
  // Range boundaries on 1 MiB, so that every read but a range's last is a whole page multiple.
  const step = Math.ceil(size / ranges / MIN_RANGE_BUFFER_BYTES) * MIN_RANGE_BUFFER_BYTES;
  let reads = 0;
  const range = async (i: number): Promise<void> => {
    const own = buf.subarray(i * slice, (i + 1) * slice);
    const start = i * step;
    const end = i === ranges - 1 ? Infinity : Math.min(size, start + step);
    let pos = start;
    while (pos < end) {
      signal.throwIfAborted();
      const want = Math.min(own.length, end - pos);
      const n = await readFd(fd, want === own.length ? own : own.subarray(0, want), pos);
      reads++;
      if (n === 0) return;
      pos += n;
      onBytes(n);
      // The last range stops at a short read that reaches the size seen at open: no extra call.
      if (end === Infinity && n < want && pos >= size) return;
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: ranges }, (_, i) => range(i)));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return { reads };
}

/**
 * Reads one file to its end into `buf`, reporting each chunk through `onBytes`; a file of at
 * least RANGED_FILE_BYTES is read as up to `ranges` concurrent ranges sharing `buf` (no range
 * with less than 1 MiB of it). Throws only when `signal` aborts; every other problem becomes the
 * result's issue.
 */
export async function readFile(
  entry: FileEntry,
  buf: Buffer,
  signal: AbortSignal,
  onBytes: (n: number) => void,
  beneath: Beneath,
  native?: Native,
  ranges = 1,
): Promise<ReadResult> {
  const shown = entry.shown;
  let fd: number;
  try {
    fd = await openEntry(entry, beneath);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return { bytes: 0, issue: { path: shown, code: 'READ_FAILED', message: `"${shown}" vanished before it could be read` } };
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      return {
        bytes: 0,
        issue: { path: shown, code: 'PATH_OUTSIDE_ROOT', message: `"${shown}" (or a directory above it) was replaced by a symlink after it was checked: refused` },
      };
    }
    return { bytes: 0, issue: { path: shown, code: 'READ_FAILED', message: `"${shown}" cannot be opened: ${errnoText(err)}` } };
  }
  let pos = 0;
  try {
    const st = await fstatFd(fd);
    if (!st.isFile() || st.dev !== entry.dev || st.ino !== entry.ino) {
      return {
        bytes: 0,
        issue: { path: shown, code: 'PATH_OUTSIDE_ROOT', message: `"${shown}" changed between check and open (not the file that was checked): refused` },
      };
    }
    const size = st.size;
    const residentBefore = native ? native.residentBytes(fd, size) : undefined;
    const measured = (r: ReadResult): ReadResult => (residentBefore !== undefined ? { ...r, residentBefore } : r);
    const split = size >= RANGED_FILE_BYTES ? Math.min(ranges, Math.floor(buf.length / MIN_RANGE_BUFFER_BYTES)) : 1;
    // One range is the plain sequential read: the whole buffer, to the end of the file. `pos`
    // counts every byte read, so a read that fails midway still says how far it got.
    const { reads } = await readRanges(fd, buf, size, split, signal, (n) => {
      pos += n;
      onBytes(n);
    });
    if (pos < size) {
      return measured({ bytes: pos, issue: { path: shown, code: 'READ_FAILED', message: `"${shown}" shrank from ${size} to ${pos} bytes while being read` } });
    }
    if (pos > size) {
      return measured({ bytes: pos, issue: { path: shown, code: 'READ_FAILED', message: `"${shown}" grew from ${size} to ${pos} bytes while being read` } });
    }
    if (reads > 1) {
      // A file read in several steps may have been deleted or rewritten meanwhile.
      const after = await fstatFd(fd);
      if (after.nlink === 0) {
        return measured({ bytes: pos, issue: { path: shown, code: 'READ_FAILED', message: `"${shown}" was deleted while being read` } });
      }
      if (after.size !== size) {
        return measured({ bytes: pos, issue: { path: shown, code: 'READ_FAILED', message: `"${shown}" changed size from ${size} to ${after.size} bytes while being read` } });
      }
    }
    return measured({ bytes: pos });
  } catch (err) {
    if (signal.aborted) throw err;
    return { bytes: pos, issue: { path: shown, code: 'READ_FAILED', message: `"${shown}" could not be read: ${errnoText(err)}` } };
  } finally {
    await closeFd(fd);
  }
}

export interface ReadAllOptions {
  /** Files of this task read at once (the pool may allow fewer while other tasks read). */
  readers: number;
  /** Most bytes one read of this task asks for (the pool's buffers may be smaller). */
  bufferBytes: number;
  signal: AbortSignal;
  onBytes: (n: number) => void;
  onFile: (entry: FileEntry, result: ReadResult) => void;
  /** Opens the files below their roots. */
  beneath: Beneath;
  /** Readers and buffers shared with other tasks; default: a pool of this task's own. */
  pool?: ReaderPool | undefined;
  /** Measures residency on each open descriptor when given. */
  native?: Native | undefined;
  /** Concurrent ranges per file of at least RANGED_FILE_BYTES (default 1: one sequential stream). */
  ranges?: number | undefined;
}

/**
 * Reads every file with at most `readers` files of this task in flight: first the large files
 * (largest first, at most MAX_LARGE_READERS at once), then the small ones. Each file is read
 * with a slot and buffer lent by the pool for that file alone, so tasks sharing a pool take
 * turns. Resolves when all are read; rejects with the abort reason when cancelled, after every
 * reader has stopped.
 */
export async function readAll(files: readonly FileEntry[], opts: ReadAllOptions): Promise<void> {
  const pool =
    opts.pool ?? new ReaderPool({ readers: opts.readers, largeReaders: Math.min(opts.readers, MAX_LARGE_READERS), bufferBytes: opts.bufferBytes, idleMs: Infinity });
  const order = [...files].sort((a, b) => b.size - a.size);
  const large = order.filter((f) => f.size >= LARGE_FILE_BYTES);
  const small = order.filter((f) => f.size < LARGE_FILE_BYTES);
  if (large.length > 0) await readWith(large, true, Math.min(opts.readers, MAX_LARGE_READERS), pool, opts);
  if (small.length > 0) await readWith(small, false, opts.readers, pool, opts);
}

async function readWith(order: readonly FileEntry[], large: boolean, readers: number, pool: ReaderPool, opts: ReadAllOptions): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      opts.signal.throwIfAborted();
      const entry = order[next++];
      if (!entry) return;
      const lease = await pool.acquire(large, opts.signal);
      try {
        // No read larger than this task asked for, nor than the file needs (plus one byte, so a
        // file read in one call ends with a short read).
        const bytes = Math.min(lease.buf.length, opts.bufferBytes, entry.size + 1);
        const result = await readFile(entry, lease.buf.subarray(0, Math.max(1, bytes)), opts.signal, opts.onBytes, opts.beneath, opts.native, large ? opts.ranges : 1);
        opts.onFile(entry, result);
      } finally {
        lease.release();
      }
    }
  };
  const workers = Math.max(1, Math.min(readers, order.length));
  const settled = await Promise.allSettled(Array.from({ length: workers }, worker));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
}
