// Loads Stoker's optional native helper (agent/native, built by agent/native/build.sh during
// `npm run build`). Absent or broken, it is simply not used: files below the allowed roots are
// then opened through /proc/self/fd (beneath.ts), residency is measured with fincore
// (residency.ts), and reading is unchanged.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Native {
  /** Bytes of an open file (of `size` bytes) in the page cache; -1 when it cannot be measured. */
  residentBytes(fd: number, size: number): number;
  /**
   * Bytes of regular files below an open directory in the page cache, summed; -1 when any cannot
   * be measured. Opens each as openBeneath does (no symlink on the way) and without blocking;
   * runs synchronously.
   */
  residentBytesBeneath(dirFd: number, rels: readonly string[]): number;
  /**
   * Opens `rel` below an open directory one component at a time, never following a symlink;
   * rejects with the errno (a number): ELOOP or ENOTDIR where a component is a symlink.
   */
  openBeneath(dirFd: number, rel: string, flags: number): Promise<number>;
  /** The names in an open directory, without "." and ".."; rejects with the errno. */
  listDir(dirFd: number): Promise<string[]>;
  /**
   * fstatat(AT_SYMLINK_NOFOLLOW) of each name in an open directory: [kind, dev, ino, size, errno],
   * kind one of f d l p s c b ?, or "" with errno set.
   */
  statAt(dirFd: number, names: readonly string[]): Promise<[string, number, number, number, number][]>;
  /**
   * posix_fadvise(POSIX_FADV_DONTNEED) over a whole open file: 0, or the errno. Absent from
   * builds older than Release (release.ts then drops pages through dd).
   */
  dropCache?(fd: number): number;
  /** The platform's O_PATH flag (Node's fs.constants lacks it). */
  readonly O_PATH: number;
}

const FUNCTIONS = ['residentBytes', 'residentBytesBeneath', 'openBeneath', 'listDir', 'statAt'] as const;

/** Files per synchronous native call: the event loop gets a turn between batches. */
const PATHS_PER_CALL = 256;

/**
 * Residency of regular files below an open directory through the native helper, yielding
 * between batches; -1 if unknown.
 */
export async function residentBytesBeneath(native: Native, dirFd: number, rels: readonly string[], signal: AbortSignal): Promise<number> {
  let total = 0;
  for (let i = 0; i < rels.length; i += PATHS_PER_CALL) {
    if (signal.aborted) return -1;
    const got = native.residentBytesBeneath(dirFd, rels.slice(i, i + PATHS_PER_CALL));
    if (got < 0) return -1;
    total += got;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return total;
}

const CANDIDATES = [join('agent', 'native', 'build', 'stoker_native.node'), join('agent', 'native', 'build', 'Release', 'stoker_native.node')];

let loaded: { native: Native | undefined; reason: string } | undefined;

/** The helper, or undefined with the reason it is not available. */
export function loadNative(): { native: Native | undefined; reason: string } {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  // From source (agent/warm/native.ts) or from the build (dist/agent/warm/native.js): look upwards.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5 && !loaded; i++) {
    for (const rel of CANDIDATES) {
      const file = join(dir, rel);
      if (!existsSync(file)) continue;
      try {
        const mod = require(file) as Partial<Record<string, unknown>>;
        const missing = FUNCTIONS.filter((f) => typeof mod[f] !== 'function');
        if (missing.length > 0 || typeof mod.O_PATH !== 'number') {
          throw new Error(`it lacks ${missing.join(', ') || 'O_PATH'} (an older build: rebuild it with bash agent/native/build.sh)`);
        }
        loaded = { native: mod as unknown as Native, reason: `loaded ${file}` };
      } catch (err) {
        loaded = { native: undefined, reason: `${file} cannot be loaded: ${(err as Error).message}` };
      }
      break;
    }
    dir = dirname(dir);
  }
  loaded ??= { native: undefined, reason: 'not built (run npm run build, or bash agent/native/build.sh)' };
  return loaded;
}
