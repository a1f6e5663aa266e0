// The page cache of a file as the plain tools see it, for tests that check what Stoker warmed or
// dropped: util-linux's fincore counts resident bytes, vmtouch evicts.
import { spawnSync } from 'node:child_process';

/** Bytes of `file` in the page cache, as fincore counts them. */
export function residentBytes(file: string): number {
  const out = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`fincore failed: ${out.stderr}`);
  return Number(out.stdout.trim());
}

/** Drops `file`'s pages from the page cache, as memory pressure would. */
export function evictFromPageCache(file: string): void {
  const out = spawnSync('vmtouch', ['-e', file], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`vmtouch -e failed: ${out.stderr}`);
}
