// Loads Stoker's optional native helper (agent/native, built by agent/native/build.sh during
// `npm run build`). Absent or broken, it is simply not used: residency is then measured with
// fincore (residency.ts) and reading is unchanged.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Native {
  /** Bytes of an open file (of `size` bytes) in the page cache; -1 when it cannot be measured. */
  residentBytes(fd: number, size: number): number;
  /**
   * Bytes of regular files in the page cache, summed; -1 when any cannot be measured. Opens each
   * without following a final symlink and without blocking; runs synchronously.
   */
  residentBytesOfPaths(paths: readonly string[]): number;
}

/** Paths per synchronous native call: the event loop gets a turn between batches. */
const PATHS_PER_CALL = 256;

/** Residency of many regular files through the native helper, yielding between batches; -1 if unknown. */
export async function residentBytesOfPaths(native: Native, paths: readonly string[], signal: AbortSignal): Promise<number> {
  let total = 0;
  for (let i = 0; i < paths.length; i += PATHS_PER_CALL) {
    if (signal.aborted) return -1;
    const got = native.residentBytesOfPaths(paths.slice(i, i + PATHS_PER_CALL));
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
        const mod = require(file) as Partial<Native>;
        if (typeof mod.residentBytes !== 'function' || typeof mod.residentBytesOfPaths !== 'function') {
          throw new Error('it lacks residentBytes or residentBytesOfPaths (rebuild it: bash agent/native/build.sh)');
        }
        loaded = { native: mod as Native, reason: `loaded ${file}` };
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
