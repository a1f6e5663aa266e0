// Streams files into the page cache: a bounded pool of readers, each with one large buffer it
// reuses for every read; file contents never live beyond those buffers.
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
const MIN_BUFFER_BYTES = 64 * 1024;

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
 * Reads one file to its end into `buf`, reporting each chunk through `onBytes`.
 * Throws only when `signal` aborts; every other problem becomes the result's issue.
 */
export async function readFile(
  entry: FileEntry,
  buf: Buffer,
  signal: AbortSignal,
  onBytes: (n: number) => void,
  beneath: Beneath,
  native?: Native,
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
    let reads = 0;
    for (;;) {
      signal.throwIfAborted();
      const n = await readFd(fd, buf, pos);
      reads++;
      if (n === 0) break;
      pos += n;
      onBytes(n);
      // A short read that reaches the size seen at open is the end of the file: no extra call.
      if (n < buf.length && pos >= size) break;
    }
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

export interface PoolOptions {
  readers: number;
  bufferBytes: number;
  signal: AbortSignal;
  onBytes: (n: number) => void;
  onFile: (entry: FileEntry, result: ReadResult) => void;
  /** Opens the files below their roots. */
  beneath: Beneath;
  /** Measures residency on each open descriptor when given. */
  native?: Native | undefined;
}

/** Files from this size up are streamed through the big buffers by a few readers. */
export const LARGE_FILE_BYTES = 1024 * 1024;
/** A small file's cost is its calls, not its bytes: small buffers let many be in flight. */
const SMALL_BUFFER_BYTES = 256 * 1024;
/**
 * Streams of large files read at once. One sequential stream per file already keeps the disk
 * busy through the kernel's read-ahead; on a virtio disk 2 streams beat 1 and 4 add nothing
 * but buffers (test/bench/files.ts --only sweep).
 */
export const MAX_LARGE_READERS = 2;

/**
 * Reads every file with at most `readers` files in flight: first the large files (largest
 * first, at most MAX_LARGE_READERS at once, each reader with a `bufferBytes` buffer), then the
 * small ones (all `readers`, each with a buffer of at most 256 KiB). Buffer memory stays at
 * most max(MAX_LARGE_READERS x bufferBytes, readers x 256 KiB). Resolves when all are read;
 * rejects with the abort reason when cancelled, after every reader has stopped.
 */
export async function readAll(files: readonly FileEntry[], opts: PoolOptions): Promise<void> {
  const order = [...files].sort((a, b) => b.size - a.size);
  const large = order.filter((f) => f.size >= LARGE_FILE_BYTES);
  const small = order.filter((f) => f.size < LARGE_FILE_BYTES);
  if (large.length > 0) await pool(large, Math.min(opts.readers, MAX_LARGE_READERS), opts.bufferBytes, opts);
  if (small.length > 0) await pool(small, opts.readers, Math.min(opts.bufferBytes, SMALL_BUFFER_BYTES), opts);
}

async function pool(order: readonly FileEntry[], readers: number, maxBuffer: number, opts: PoolOptions): Promise<void> {
  const largest = order[0]?.size ?? 0;
  // No buffer larger than the largest file needs (plus one byte, so a file read in one call
  // ends with a short read).
  const bufBytes = Math.max(MIN_BUFFER_BYTES, Math.min(maxBuffer, roundUp(largest + 1, MIN_BUFFER_BYTES)));
  const workers = Math.max(1, Math.min(readers, order.length));
  let next = 0;
  const worker = async (): Promise<void> => {
    const buf = Buffer.allocUnsafe(bufBytes);
    for (;;) {
      opts.signal.throwIfAborted();
      const entry = order[next++];
      if (!entry) return;
      const result = await readFile(entry, buf, opts.signal, opts.onBytes, opts.beneath, opts.native);
      opts.onFile(entry, result);
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: workers }, worker));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
}

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}
