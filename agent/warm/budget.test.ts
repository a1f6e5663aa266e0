import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { budgetWarnings, readMemoryFacts } from './budget.js';

// Fake /proc and /sys/fs/cgroup trees in a temp dir.
let base: string;
const MiB = 1024 * 1024;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'stoker-budget-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function fakeTree(name: string, files: Record<string, string>): Promise<{ procRoot: string; cgroupRoot: string }> {
  const dir = join(base, name);
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), text);
  }
  return { procRoot: join(dir, 'proc'), cgroupRoot: join(dir, 'cg') };
}

const MEMINFO = 'MemTotal:       24000000 kB\nMemFree:        1000 kB\nMemAvailable:    2048 kB\n';

describe('readMemoryFacts', () => {
  it('reads MemAvailable and a cgroup v1 limit from memory.stat', async () => {
    const src = await fakeTree('v1', {
      'proc/meminfo': MEMINFO,
      'proc/self/cgroup': '5:cpu:/\n4:memory:/pods/agent\n0::/\n',
      'cg/memory/pods/agent/memory.stat': `cache 0\nhierarchical_memory_limit ${256 * MiB}\n`,
    });
    const facts = await readMemoryFacts(src);
    expect(facts).toEqual({ memAvailable: 2048 * 1024, cgroupLimit: 256 * MiB, cgroupPath: '/pods/agent', cgroupVersion: 1 });
  });

  it('treats the v1 "no limit" value as unlimited', async () => {
    const src = await fakeTree('v1-unlimited', {
      'proc/meminfo': MEMINFO,
      'proc/self/cgroup': '4:memory:/x\n',
      'cg/memory/x/memory.stat': 'hierarchical_memory_limit 9223372036854771712\n',
    });
    expect((await readMemoryFacts(src)).cgroupLimit).toBeUndefined();
  });

  it('takes the smallest memory.max on the way up for cgroup v2', async () => {
    const src = await fakeTree('v2', {
      'proc/meminfo': MEMINFO,
      'proc/self/cgroup': '0::/kubepods/pod1/agent\n',
      'cg/kubepods/memory.max': `${512 * MiB}\n`,
      'cg/kubepods/pod1/memory.max': `${128 * MiB}\n`,
      'cg/kubepods/pod1/agent/memory.max': 'max\n',
    });
    const facts = await readMemoryFacts(src);
    expect(facts.cgroupVersion).toBe(2);
    expect(facts.cgroupLimit).toBe(128 * MiB);
  });

  it('says unknown rather than guessing when nothing can be read', async () => {
    const facts = await readMemoryFacts({ procRoot: join(base, 'none'), cgroupRoot: join(base, 'none') });
    expect(facts).toEqual({ memAvailable: undefined, cgroupLimit: undefined, cgroupPath: undefined, cgroupVersion: undefined });
  });
});

describe('budgetWarnings', () => {
  const facts = { memAvailable: 1024 * MiB, cgroupLimit: 256 * MiB, cgroupPath: '/agent', cgroupVersion: 2 as const };

  it('is silent when the tree fits both limits', () => {
    expect(budgetWarnings(100 * MiB, facts)).toEqual([]);
  });

  it('names both numbers when the tree exceeds the cgroup limit and available memory', () => {
    const w = budgetWarnings(2048 * MiB, facts);
    expect(w).toHaveLength(2);
    expect(w[0]).toContain('2.0 GiB');
    expect(w[0]).toContain('1.0 GiB available (MemAvailable)');
    expect(w[1]).toContain('memory cgroup /agent (v2) is limited to 256.0 MiB');
  });
});
