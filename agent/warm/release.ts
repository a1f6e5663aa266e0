// Lets go of warmed files: the file half of a Release request (PathTask -> PathRelease). Each
// path is checked and walked below the allowed roots exactly as warmFiles walks it (paths.ts,
// beneath.ts: no symlink on the way, FIFOs and devices skipped), its residency is measured, every
// file is opened as the readers open it (checked to be the file the walk found) and its pages are
// dropped from the page cache with posix_fadvise(POSIX_FADV_DONTNEED), then residency is measured
// again. Node has no fadvise: the native helper's dropCache does it; without the helper, GNU dd
// does (`iflag=nocache count=0` advises DONTNEED over the whole file) through the
// /proc/<pid>/fd link of the descriptor this process opened, so dd never resolves a path itself.
//
//   const results = await releaseFiles({ paths: [{ path: '/models/llama' }], allowedRoots: ['/models'], signal });
//   // [{ path, files, bytes, residentBytesBefore, residentBytesAfter, failure }]
//
// Only clean pages leave the cache (dirty ones are written back first by the kernel, or stay);
// pages mapped by a running process stay too. The measures before and after say what really left.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { PathRelease__Output } from '../../proto/gen/stoker/v1/PathRelease.js';
import type { StokerErrorCode } from '../../proto/errors.js';
import { type Beneath, loadBeneath } from './beneath.js';
import { residentBelowRoots, toFailure } from './files.js';
import { type Native, loadNative } from './native.js';
import { type FileEntry, type PathSpec, closeRoots, openRoots, resolveRoots, walkTree } from './paths.js';
import { openEntry } from './readers.js';
import { UNKNOWN, residentBytesOfFiles } from './residency.js';

export interface ReleaseFilesOptions {
  paths: readonly PathSpec[];
  allowedRoots: readonly string[];
  signal: AbortSignal;
  /** Use the native helper when it is built (default true); false forces dd and fincore. */
  native?: boolean;
}

/** Descriptors handed to one dd run each; dd takes one input file per run. */
const DD_TIMEOUT_MS = 30_000;

export async function releaseFiles(opts: ReleaseFilesOptions): Promise<PathRelease__Output[]> {
  const { signal } = opts;
  const realRoots = await resolveRoots(opts.allowedRoots);
  const { beneath, reason } = loadBeneath({ native: opts.native !== false });
  if (!beneath) {
    return opts.paths.map((p) => failed(p.path, 'READ_FAILED', `"${p.path}" was not released: files cannot be opened safely here (${reason})`));
  }
  const native = opts.native !== false ? loadNative().native : undefined;
  const roots = await openRoots(realRoots);
  try {
    const out: PathRelease__Output[] = [];
    for (const spec of opts.paths) {
      if (signal.aborted) {
        out.push(failed(spec.path, 'CANCELLED', `releasing "${spec.path}" was cancelled`));
        continue;
      }
      try {
        const tree = await walkTree(spec, roots, signal, beneath);
        const before = await measure(native, tree.files, beneath, signal);
        for (const f of tree.files) {
          if (signal.aborted) break;
          await dropFile(f, beneath, native);
        }
        const after = await measure(native, tree.files, beneath, signal);
        out.push({ path: spec.path, files: tree.files.length, bytes: tree.bytes, residentBytesBefore: before, residentBytesAfter: after, failure: null });
      } catch (err) {
        const failure = signal.aborted ? { code: 'CANCELLED' as const, message: `releasing "${spec.path}" was cancelled`, needBytes: 0 } : toFailure(err, spec.path);
        out.push({ ...failed(spec.path, 'CANCELLED', ''), failure });
      }
    }
    return out;
  } finally {
    closeRoots(roots);
  }
}

function failed(path: string, code: StokerErrorCode, message: string): PathRelease__Output {
  return { path, files: 0, bytes: 0, residentBytesBefore: UNKNOWN, residentBytesAfter: UNKNOWN, failure: { code, message, needBytes: 0 } };
}

async function measure(native: Native | undefined, files: readonly FileEntry[], beneath: Beneath, signal: AbortSignal): Promise<number> {
  let resident = native ? await residentBelowRoots(native, files, signal) : UNKNOWN;
  if (resident === UNKNOWN && !signal.aborted) resident = await residentBytesOfFiles(files, beneath, signal);
  return resident;
}

/** Drops one file's pages; a file that cannot be opened, or is no longer the one walked, is left. */
async function dropFile(entry: FileEntry, beneath: Beneath, native: Native | undefined): Promise<void> {
  let fd: number;
  try {
    fd = await openEntry(entry, beneath);
  } catch {
    return;
  }
  try {
    const st = await new Promise<fs.Stats | undefined>((resolve) => fs.fstat(fd, (err, got) => resolve(err ? undefined : got)));
    if (!st?.isFile() || st.dev !== entry.dev || st.ino !== entry.ino) return;
    if (native?.dropCache && native.dropCache(fd) === 0) return;
    await ddNocache(`/proc/${process.pid}/fd/${fd}`);
  } finally {
    fs.close(fd, () => undefined);
  }
}

/** `dd if=FILE iflag=nocache count=0`: GNU dd's way to advise DONTNEED over a whole file. */
function ddNocache(file: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'], { stdio: 'ignore', timeout: DD_TIMEOUT_MS });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}
