// Warms files into the page cache: the file half of a WarmRequest (PathTask -> PathResult).
//
//   const results = await warmFiles({
//     paths: [{ path: '/models/llama', include: ['*.safetensors'], exclude: [] }],
//     allowedRoots: ['/models'],
//     signal,                       // abort stops every reader after its current read
//     onProgress: (p) => send(p),   // FileProgress per path: WAITING (totals), RUNNING, DONE/FAILED
//     readers: 16,                  // files in flight (default DEFAULT_READERS)
//     bufferBytes: 8 << 20,         // most bytes per read (default DEFAULT_BUFFER_BYTES)
//     pool,                         // readers and buffers shared with other calls (an agent's)
//     budget: 'warn',               // 'warn' | 'refuse' | 'off' (default 'warn')
//   });
//
// Order of work: every path is checked and walked first (paths.ts: roots, symlinks, loops,
// FIFOs, include/exclude; everything opened below a descriptor of its root, beneath.ts), then
// residency is measured (residency.ts), the total is compared with the memory budget
// (budget.ts), and each path's files are read (readers.ts), then residency is measured again.
// One result per requested path, in request order:
// - state DONE: the tree was read; `issues` lists files skipped or failed below it;
// - state FAILED with `failure`: the path was refused (PATH_OUTSIDE_ROOT, PATH_NOT_FOUND,
//   INVALID_REQUEST for a bad glob, READ_FAILED for a FIFO or device given as the path), the
//   budget refused it (OVER_BUDGET), or the signal aborted (CANCELLED; warmFiles resolves
//   promptly rather than throwing);
// - resident bytes before/after are -1 where they cannot be measured.
// With `checkOnly` nothing is read: each walked path is measured once (before = after) and ends
// PRESENT or MISSING against `minResidentPercent`.
// It throws only for a bad allowed root (a PathError with code INVALID_REQUEST): a caller
// should check its roots once at start-up with resolveRoots().
//
// Readers run on libuv's thread pool: a process that warms files should set UV_THREADPOOL_SIZE
// (e.g. to 16) before its first asynchronous file call, or at most 4 reads run at once.
import type { FileProgress__Output } from '../../proto/gen/stoker/v1/FileProgress.js';
import type { PathResult__Output } from '../../proto/gen/stoker/v1/PathResult.js';
import type { FileIssue__Output } from '../../proto/gen/stoker/v1/FileIssue.js';
import type { Failure__Output } from '../../proto/gen/stoker/v1/Failure.js';
import type { StokerErrorCode } from '../../proto/errors.js';
import { type BudgetMode, type MemoryFacts, budgetWarnings, readMemoryFacts } from './budget.js';
import { formatBytes } from '../../proto/common/bytes.js';
import { type Beneath, loadBeneath } from './beneath.js';
import { type Native, loadNative, residentBytesBeneath } from './native.js';
import { PathError, type FileEntry, type PathSpec, type Root, type Tree, closeRoots, openRoots, resolveRoots, walkTree } from './paths.js';
import { DEFAULT_BUFFER_BYTES, DEFAULT_READERS, type ReaderPool, measureResident, readAll } from './readers.js';
import { UNKNOWN, isNetworkFilesystem, residentBytesOfFiles } from './residency.js';

export { DEFAULT_BUFFER_BYTES, DEFAULT_READERS, ReaderPool } from './readers.js';
export { PathError, resolveRoots } from './paths.js';
export type { BudgetMode } from './budget.js';

/** The result of a path that was not read. */
export function failedPathResult(path: string, code: StokerErrorCode, message: string): PathResult__Output {
  return {
    path,
    state: 'FAILED',
    files: 0,
    bytes: 0,
    seconds: 0,
    residentBytesBefore: UNKNOWN,
    residentBytesAfter: UNKNOWN,
    issues: [],
    failure: { code, message, needBytes: 0 },
    warnings: [],
  };
}

export interface WarmFilesOptions {
  /** PathTask from the proto: an absolute path, include and exclude globs relative to it. */
  paths: readonly PathSpec[];
  allowedRoots: readonly string[];
  signal: AbortSignal;
  onProgress?: (p: FileProgress__Output) => void;
  /** Files of this call read at once (default DEFAULT_READERS). */
  readers?: number;
  /** Most bytes one read asks for (default DEFAULT_BUFFER_BYTES). */
  bufferBytes?: number;
  /**
   * Concurrent ranges each file of at least 64 MiB is read as (default: NETWORK_FS_RANGES on a
   * network filesystem, LOCAL_FS_RANGES elsewhere).
   */
  ranges?: number;
  /**
   * Readers and buffers shared with other calls (an agent passes one pool to every task, so
   * many tasks at once hold one pool's buffers); default: a pool of this call's own.
   */
  pool?: ReaderPool;
  budget?: BudgetMode;
  /** Least time between two RUNNING progress events of one path (default 500 ms; 0: every read). */
  progressIntervalMs?: number;
  /** Measure page-cache residency before and after (default true). */
  residency?: boolean;
  /**
   * Use the native helper (agent/native) when it is built (default true): files are then
   * opened below their roots with its openat calls, and residency before is measured with
   * mincore on the reader's own descriptor instead of running fincore, which opens every file
   * again. False forces /proc/self/fd and fincore.
   */
  native?: boolean;
  /** Memory facts for the budget; read from /proc and /sys/fs/cgroup when not given. */
  memoryFacts?: MemoryFacts;
  /**
   * Read nothing: walk each path and measure its residency, PRESENT while at least
   * `minResidentPercent` of its bytes are resident, MISSING otherwise (or when residency cannot
   * be measured). The budget is not checked.
   */
  checkOnly?: { minResidentPercent: number };
}

const DEFAULT_PROGRESS_INTERVAL_MS = 500;
/**
 * Ranges per file of 64 MiB or more (readers.ts RANGED_FILE_BYTES). Over sshfs on loopback one
 * file read as 1, 2, 4 and 8 ranges took 1.05, 0.85, 0.68 and 0.74 of `vmtouch -t`'s time; on the
 * local virtio disk one stream per file already keeps up with the disk (two files are read at
 * once), and more ranges only moved the figures within their noise (test/bench/files.ts
 * --only shard-sweep).
 */
export const NETWORK_FS_RANGES = 4;
export const LOCAL_FS_RANGES = 1;
const MAX_RANGES = 64;
const MAX_READERS = 1024;
const MAX_BUFFER_BYTES = 256 * 1024 * 1024;

interface Work {
  spec: PathSpec;
  tree?: Tree;
  failure?: Failure__Output;
  warnings: string[];
  residentBefore: number;
  residentAfter: number;
  filesDone: number;
  bytesDone: number;
  seconds: number;
  issues: FileIssue__Output[];
}

export async function warmFiles(opts: WarmFilesOptions): Promise<PathResult__Output[]> {
  const readers = opts.readers ?? DEFAULT_READERS;
  const bufferBytes = opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  if (!Number.isInteger(readers) || readers < 1 || readers > MAX_READERS) {
    throw new PathError('INVALID_REQUEST', '', `readers must be an integer from 1 to ${MAX_READERS}, not ${readers}`);
  }
  if (!Number.isInteger(bufferBytes) || bufferBytes < 4096 || bufferBytes > MAX_BUFFER_BYTES) {
    throw new PathError('INVALID_REQUEST', '', `bufferBytes must be an integer from 4096 to ${MAX_BUFFER_BYTES}, not ${bufferBytes}`);
  }
  if (opts.ranges !== undefined && (!Number.isInteger(opts.ranges) || opts.ranges < 1 || opts.ranges > MAX_RANGES)) {
    throw new PathError('INVALID_REQUEST', '', `ranges must be an integer from 1 to ${MAX_RANGES}, not ${opts.ranges}`);
  }
  const budget = opts.budget ?? 'warn';
  const measure = opts.residency ?? true;
  const native = measure && opts.native !== false ? loadNative().native : undefined;
  const interval = opts.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  const { signal } = opts;
  const realRoots = await resolveRoots(opts.allowedRoots);
  const { beneath, reason } = loadBeneath({ native: opts.native !== false });
  if (!beneath) {
    // Nothing below a root can be opened without a symlink swap slipping through: read nothing.
    return opts.paths.map((p) => failedPathResult(p.path, 'READ_FAILED', `"${p.path}" was not read: files cannot be opened safely here (${reason})`));
  }
  const roots = await openRoots(realRoots);
  try {
    return await warmTrees(opts, { readers, bufferBytes, budget, measure, native, interval, signal, roots, beneath });
  } finally {
    closeRoots(roots);
  }
}

interface Settings {
  readers: number;
  bufferBytes: number;
  budget: BudgetMode;
  measure: boolean;
  native: Native | undefined;
  interval: number;
  signal: AbortSignal;
  roots: Root[];
  beneath: Beneath;
}

async function warmTrees(opts: WarmFilesOptions, settings: Settings): Promise<PathResult__Output[]> {
  const { readers, bufferBytes, budget, measure, native, interval, signal, roots, beneath } = settings;
  const work: Work[] = opts.paths.map((spec) => ({
    spec,
    warnings: [],
    residentBefore: UNKNOWN,
    residentAfter: UNKNOWN,
    filesDone: 0,
    bytesDone: 0,
    seconds: 0,
    issues: [],
  }));

  const emit = (w: Work, state: FileProgress__Output['state'], started: number): void => {
    opts.onProgress?.({
      path: w.spec.path,
      state,
      filesDone: w.filesDone,
      filesTotal: w.tree?.files.length ?? 0,
      bytesDone: w.bytesDone,
      bytesTotal: w.tree?.bytes ?? 0,
      elapsedSeconds: started ? (performance.now() - started) / 1000 : 0,
    });
  };
  const cancelled = (w: Work): Failure__Output => ({
    code: 'CANCELLED',
    message: `warming "${w.spec.path}" was cancelled after ${w.bytesDone} of ${w.tree?.bytes ?? 0} bytes`,
    needBytes: 0,
  });

  // 1. Check and walk every path.
  for (const w of work) {
    if (signal.aborted) {
      w.failure = cancelled(w);
      continue;
    }
    const t0 = performance.now();
    try {
      w.tree = await walkTree(w.spec, roots, signal, beneath);
      w.issues.push(...w.tree.issues);
    } catch (err) {
      w.failure = signal.aborted ? cancelled(w) : toFailure(err, w.spec.path);
    }
    w.seconds += (performance.now() - t0) / 1000;
    emit(w, w.failure ? 'FAILED' : 'WAITING', 0);
  }

  if (opts.checkOnly) return checkTrees(work, opts.checkOnly.minResidentPercent, settings, emit);

  // 2. Residency before, and the budget over everything that will be read.
  const live = work.filter((w) => w.tree && !w.failure);
  if (measure && !native) {
    for (const w of live) w.residentBefore = await residentBytesOfFiles(w.tree?.files ?? [], beneath, signal);
  }
  if (budget !== 'off' && live.length > 0) {
    const facts = opts.memoryFacts ?? (await readMemoryFacts());
    const treeBytes = live.reduce((s, w) => s + (w.tree?.bytes ?? 0), 0);
    const warnings = budgetWarnings(treeBytes, facts);
    for (const w of live) {
      w.warnings.push(...warnings);
      if (budget === 'refuse' && warnings.length > 0) {
        w.failure = { code: 'OVER_BUDGET', message: `warming "${w.spec.path}" refused (${formatBytes(treeBytes)} in all): ${warnings.join('; ')}`, needBytes: 0 };
        emit(w, 'FAILED', 0);
      }
    }
  }

  // 3. Read each path's files, then measure residency again.
  for (const w of work) {
    if (!w.tree || w.failure) continue;
    if (signal.aborted) {
      w.failure = cancelled(w);
      emit(w, 'FAILED', 0);
      continue;
    }
    const tree = w.tree;
    const started = performance.now();
    let lastEmit = started;
    // With the native helper, residency before is summed over the files as they are opened.
    let before = 0;
    const add = (acc: number, v: number | undefined): number => (acc < 0 || v === undefined || v < 0 ? UNKNOWN : acc + v);
    emit(w, 'RUNNING', started);
    // Known before reading: whether large files are read as several ranges, and how residency is measured after.
    const remote = await isNetworkFilesystem(tree.real);
    try {
      await readAll(tree.files, {
        readers,
        bufferBytes,
        ranges: opts.ranges ?? (remote ? NETWORK_FS_RANGES : LOCAL_FS_RANGES),
        pool: opts.pool,
        beneath,
        signal,
        onBytes: (n) => {
          w.bytesDone += n;
          const now = performance.now();
          if (now - lastEmit >= interval) {
            lastEmit = now;
            emit(w, 'RUNNING', started);
          }
        },
        onFile: (_entry, result) => {
          w.filesDone++;
          // A file refused or gone before it was opened is not part of the tree that was read.
          if (native && !(result.issue && result.residentBefore === undefined)) before = add(before, result.residentBefore);
          if (result.issue) w.issues.push(result.issue);
        },
        native,
      });
    } catch (err) {
      w.failure = signal.aborted ? cancelled(w) : toFailure(err, w.spec.path);
    }
    w.seconds += (performance.now() - started) / 1000;
    if (native && !w.failure) w.residentBefore = before;
    if (measure && !signal.aborted) {
      // After the whole tree is read, not file by file: a tree that evicts itself shows here.
      const failed = new Set(w.issues.map((i) => i.path));
      const read = tree.files.filter((f) => !failed.has(f.shown));
      // On a local filesystem one native pass over the paths is cheapest (no process per batch
      // as with fincore, no thread-pool round trip per file); over a network filesystem every
      // open is a round trip, and `readers` of them overlap. fincore measures where the helper
      // is not built or cannot.
      if (native && remote) w.residentAfter = await measureResident(read, native, beneath, readers, signal);
      else w.residentAfter = native ? await residentBelowRoots(native, read, signal) : UNKNOWN;
      if (w.residentAfter === UNKNOWN && !signal.aborted) w.residentAfter = await residentBytesOfFiles(read, beneath, signal);
    }
    emit(w, w.failure ? 'FAILED' : 'DONE', started);
  }

  return work.map((w) => ({
    path: w.spec.path,
    state: w.failure ? 'FAILED' : 'DONE',
    files: w.filesDone,
    bytes: w.bytesDone,
    seconds: w.seconds,
    residentBytesBefore: w.residentBefore,
    residentBytesAfter: w.residentAfter,
    issues: w.issues,
    failure: w.failure ?? null,
    warnings: w.warnings,
  }));
}

/** Measures each walked tree's residency: PRESENT at or above `minPercent` of its bytes, MISSING below. */
async function checkTrees(
  work: Work[],
  minPercent: number,
  settings: Settings,
  emit: (w: Work, state: FileProgress__Output['state'], started: number) => void,
): Promise<PathResult__Output[]> {
  const { native, signal, beneath } = settings;
  const out: PathResult__Output[] = [];
  for (const w of work) {
    const started = performance.now();
    let state: PathResult__Output['state'] = 'FAILED';
    if (w.tree && !w.failure) {
      let resident = native ? await residentBelowRoots(native, w.tree.files, signal) : UNKNOWN;
      if (resident === UNKNOWN && !signal.aborted) resident = await residentBytesOfFiles(w.tree.files, beneath, signal);
      if (signal.aborted) w.failure = { code: 'CANCELLED', message: `checking "${w.spec.path}" was cancelled`, needBytes: 0 };
      else {
        w.residentBefore = resident;
        w.residentAfter = resident;
        state = resident !== UNKNOWN && resident * 100 >= w.tree.bytes * minPercent ? 'PRESENT' : 'MISSING';
      }
    }
    w.seconds += (performance.now() - started) / 1000;
    emit(w, w.failure ? 'FAILED' : state, started);
    out.push({
      path: w.spec.path,
      state: w.failure ? 'FAILED' : state,
      files: w.tree?.files.length ?? 0,
      bytes: w.tree?.bytes ?? 0,
      seconds: w.seconds,
      residentBytesBefore: w.residentBefore,
      residentBytesAfter: w.residentAfter,
      issues: w.issues,
      failure: w.failure ?? null,
      warnings: [],
    });
  }
  return out;
}

/** One native pass per root over the files below it; -1 when any cannot be measured. */
export async function residentBelowRoots(native: Native, files: readonly FileEntry[], signal: AbortSignal): Promise<number> {
  const byRoot = new Map<number, string[]>();
  for (const f of files) {
    const rels = byRoot.get(f.root.fd) ?? [];
    rels.push(f.rel);
    byRoot.set(f.root.fd, rels);
  }
  let total = 0;
  for (const [fd, rels] of byRoot) {
    const got = await residentBytesBeneath(native, fd, rels, signal);
    if (got === UNKNOWN) return UNKNOWN;
    total += got;
  }
  return total;
}

export function toFailure(err: unknown, path: string): Failure__Output {
  if (err instanceof PathError) return { code: err.code, message: err.message, needBytes: 0 };
  const code: StokerErrorCode = 'INTERNAL';
  return { code, message: `warming "${path}" failed: ${err instanceof Error ? err.message : String(err)}`, needBytes: 0 };
}
