// The memory budget for warming: will the files stay in the page cache once read?
//
// Two limits matter. The node's available memory (MemAvailable in /proc/meminfo): a tree larger
// than it evicts itself as it is read. And the memory limit of Stoker's own cgroup (v2
// `memory.max`, v1 `memory.limit_in_bytes`): page cache is charged to the cgroup that first
// reads it, so an agent limited to 256 MiB that reads 61 GB keeps only about 256 MiB of it
// resident and leaves the node cold.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatBytes } from '../../proto/common/bytes.js';

export type BudgetMode = 'warn' | 'refuse' | 'off';

export interface MemoryFacts {
  /** MemAvailable in bytes; undefined when /proc/meminfo cannot be read. */
  memAvailable: number | undefined;
  /** The effective memory limit of this process's cgroup; undefined when unlimited or unknown. */
  cgroupLimit: number | undefined;
  /** The cgroup the limit belongs to, as /proc/self/cgroup names it. */
  cgroupPath: string | undefined;
  cgroupVersion: 1 | 2 | undefined;
}

export interface FactSources {
  /** Defaults to /proc. */
  procRoot?: string;
  /** Defaults to /sys/fs/cgroup. */
  cgroupRoot?: string;
}

/** Limits at or above this are the kernel's way of saying "no limit" (cgroup v1: 2^63 rounded to a page). */
const UNLIMITED = 2 ** 60;

export async function readMemoryFacts(src: FactSources = {}): Promise<MemoryFacts> {
  const proc = src.procRoot ?? '/proc';
  const cg = src.cgroupRoot ?? '/sys/fs/cgroup';
  const memAvailable = await readMemAvailable(join(proc, 'meminfo'));
  const facts: MemoryFacts = { memAvailable, cgroupLimit: undefined, cgroupPath: undefined, cgroupVersion: undefined };
  let lines: string[];
  try {
    lines = (await readFile(join(proc, 'self', 'cgroup'), 'utf8')).split('\n');
  } catch {
    return facts;
  }
  // cgroup v1 (or hybrid): a line "N:memory[,other]:/path" names the memory controller's cgroup.
  for (const line of lines) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m || !m[1] || m[2] === undefined) continue;
    if (!m[1].split(',').includes('memory')) continue;
    facts.cgroupVersion = 1;
    facts.cgroupPath = m[2];
    facts.cgroupLimit = await v1Limit(join(cg, 'memory'), m[2]);
    return facts;
  }
  // cgroup v2: the line "0::/path"; the effective limit is the smallest memory.max on the way up.
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2 !== undefined) {
    const path = v2.slice(3);
    facts.cgroupVersion = 2;
    facts.cgroupPath = path;
    facts.cgroupLimit = await smallestLimitUpwards(cg, path, 'memory.max');
  }
  return facts;
}

async function readMemAvailable(file: string): Promise<number | undefined> {
  try {
    const m = /^MemAvailable:\s+(\d+)\s*kB/m.exec(await readFile(file, 'utf8'));
    return m?.[1] ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function v1Limit(hierarchy: string, path: string): Promise<number | undefined> {
  // memory.stat's hierarchical_memory_limit already takes the ancestors' limits into account.
  const dirs = candidateDirs(hierarchy, path);
  for (const dir of dirs) {
    try {
      const m = /^hierarchical_memory_limit\s+(\d+)/m.exec(await readFile(join(dir, 'memory.stat'), 'utf8'));
      if (m?.[1]) return limitOrUndefined(Number(m[1]));
    } catch {
      // try the next candidate
    }
  }
  return smallestLimitUpwards(hierarchy, path, 'memory.limit_in_bytes');
}

/** The cgroup's own directory first; inside a container whose cgroup namespace hides the path, the mount's root. */
function candidateDirs(hierarchy: string, path: string): string[] {
  const own = join(hierarchy, path);
  return own === hierarchy ? [hierarchy] : [own, hierarchy];
}

async function smallestLimitUpwards(hierarchy: string, path: string, file: string): Promise<number | undefined> {
  let smallest: number | undefined;
  const parts = path.split('/').filter(Boolean);
  let found = false;
  for (let depth = parts.length; depth >= 0; depth--) {
    const dir = join(hierarchy, ...parts.slice(0, depth));
    let text: string;
    try {
      text = (await readFile(join(dir, file), 'utf8')).trim();
    } catch {
      continue;
    }
    found = true;
    if (text === 'max') continue;
    const n = Number(text);
    if (Number.isFinite(n) && n < UNLIMITED) smallest = smallest === undefined ? n : Math.min(smallest, n);
  }
  return found ? smallest : undefined;
}

function limitOrUndefined(n: number): number | undefined {
  return Number.isFinite(n) && n > 0 && n < UNLIMITED ? n : undefined;
}

/** Warnings, with the numbers, when a tree of `treeBytes` cannot stay in the page cache; empty when it fits. */
export function budgetWarnings(treeBytes: number, facts: MemoryFacts): string[] {
  const out: string[] = [];
  if (facts.memAvailable !== undefined && treeBytes > facts.memAvailable) {
    out.push(
      `the files take ${formatBytes(treeBytes)} but the node has only ${formatBytes(facts.memAvailable)} available ` +
        `(MemAvailable): the tree will evict itself as it is read`,
    );
  }
  if (facts.cgroupLimit !== undefined && treeBytes > facts.cgroupLimit) {
    out.push(
      `the files take ${formatBytes(treeBytes)} but Stoker's memory cgroup ` +
        `${facts.cgroupPath ?? ''} (v${facts.cgroupVersion ?? '?'}) is limited to ${formatBytes(facts.cgroupLimit)}: page cache is charged ` +
        `to the cgroup that reads it, so at most about ${formatBytes(facts.cgroupLimit)} will stay resident; raise the agent's memory limit`,
    );
  }
  return out;
}
