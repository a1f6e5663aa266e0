// How many bytes of a set of files sit in the page cache, measured with util-linux's `fincore`
// (mincore(2) over each file) where the native helper is not built. Where it cannot be measured
// (no fincore, a file it cannot open, a timeout) the answer is -1, "unknown", never 0.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { statfs } from 'node:fs/promises';
import type { Beneath } from './beneath.js';
import type { FileEntry } from './paths.js';
import { openEntry } from './readers.js';

export const UNKNOWN = -1;

/** Paths per fincore run: keeps each command line far below the kernel's argument limit. */
const BATCH_FILES = 512;
const BATCH_CHARS = 64 * 1024;
/** fincore opens each file; a file swapped for a FIFO would block it, so every run is bounded. */
const RUN_TIMEOUT_MS = 60_000;
/** fincore runs at once: over a network filesystem each open is a round trip, so overlap them. */
const PARALLEL_RUNS = 4;

let fincoreMissing = false;

/** Files opened at once for one fincore run over their descriptors. */
const FILES_PER_RUN = 256;

/**
 * Sum of resident bytes over checked files, or -1 when unknown. fincore opens what it is given
 * by path, following symlinks; so it is given none of the files' paths, but the
 * /proc/<pid>/fd/<n> links of descriptors this process opened as the readers do (below the
 * root, no symlink on the way, checked to be the file the walk found). Each such link leads to
 * the open file itself.
 */
export async function residentBytesOfFiles(files: readonly FileEntry[], beneath: Beneath, signal: AbortSignal): Promise<number> {
  let total = 0;
  for (let i = 0; i < files.length && total !== UNKNOWN; i += FILES_PER_RUN) {
    if (signal.aborted) return UNKNOWN;
    const batch = files.slice(i, i + FILES_PER_RUN);
    const fds = await Promise.all(
      batch.map(async (entry) => {
        const fd = await openEntry(entry, beneath).catch(() => undefined);
        if (fd === undefined) return undefined;
        const st = await new Promise<fs.Stats | undefined>((resolve) => fs.fstat(fd, (err, got) => resolve(err ? undefined : got)));
        if (st?.isFile() && st.dev === entry.dev && st.ino === entry.ino) return fd;
        fs.close(fd, () => undefined);
        return undefined;
      }),
    );
    try {
      if (fds.some((fd) => fd === undefined)) return UNKNOWN;
      const got = await residentBytes(fds.map((fd) => `/proc/${process.pid}/fd/${fd}`), signal);
      total = got === UNKNOWN ? UNKNOWN : total + got;
    } finally {
      for (const fd of fds) if (fd !== undefined) fs.close(fd, () => undefined);
    }
  }
  return total;
}

/** Sum of resident bytes over `paths` (regular files, opened by fincore as given), or -1 when unknown. */
export async function residentBytes(paths: readonly string[], signal: AbortSignal): Promise<number> {
  if (paths.length === 0) return 0;
  if (fincoreMissing) return UNKNOWN;
  const batches: string[][] = [];
  let batch: string[] = [];
  let chars = 0;
  for (const p of paths) {
    batch.push(p);
    chars += p.length + 1;
    if (batch.length >= BATCH_FILES || chars >= BATCH_CHARS) {
      batches.push(batch);
      batch = [];
      chars = 0;
    }
  }
  if (batch.length > 0) batches.push(batch);
  let total = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const b = batches[next++];
      if (!b || total === UNKNOWN) return;
      const got = await runFincore(b, signal);
      total = got === UNKNOWN || total === UNKNOWN ? UNKNOWN : total + got;
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_RUNS, batches.length) }, worker));
  return total;
}

interface FincoreJson {
  fincore?: { res?: number | string; file?: string }[];
}

function runFincore(paths: readonly string[], signal: AbortSignal): Promise<number> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(UNKNOWN);
      return;
    }
    const child = spawn('fincore', ['--json', '--bytes', '--output', 'RES,FILE', '--', ...paths], {
      stdio: ['ignore', 'pipe', 'ignore'],
      signal: AbortSignal.any([signal, AbortSignal.timeout(RUN_TIMEOUT_MS)]),
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') fincoreMissing = true;
      resolve(UNKNOWN);
    });
    child.on('close', (code) => {
      // Non-zero: at least one file could not be measured, so the sum would understate.
      if (code !== 0) {
        resolve(UNKNOWN);
        return;
      }
      try {
        const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as FincoreJson;
        const rows = parsed.fincore ?? [];
        if (rows.length !== paths.length) {
          resolve(UNKNOWN);
          return;
        }
        let sum = 0;
        for (const row of rows) {
          const res = Number(row.res);
          if (!Number.isFinite(res) || res < 0) {
            resolve(UNKNOWN);
            return;
          }
          sum += res;
        }
        resolve(sum);
      } catch {
        resolve(UNKNOWN);
      }
    });
  });
}

/**
 * statfs(2) magic numbers of filesystems whose opens and reads cross a network: FUSE (sshfs,
 * JuiceFS, s3fs, gcsfuse), NFS, SMB (CIFS and SMB2), SMB1, Ceph, 9p, AFS (OpenAFS and kAFS),
 * Lustre, GPFS, BeeGFS.
 */
const NETWORK_FS_TYPES = new Set([
  0x65735546, 0x6969, 0xff534d42, 0xfe534d42, 0x517b, 0x00c36400, 0x01021997, 0x5346414f, 0x6b414653, 0x0bd00bd0, 0x47504653, 0x19830326,
]);

/** True when `path` lies on a network filesystem; false when unknown. */
export async function isNetworkFilesystem(path: string): Promise<boolean> {
  try {
    return NETWORK_FS_TYPES.has((await statfs(path)).type);
  } catch {
    return false;
  }
}
