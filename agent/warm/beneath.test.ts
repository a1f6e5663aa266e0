import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { mkdir, mkdtemp, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allBeneath, statBeneath, type Beneath } from './beneath.js';

let base: string;
let root: string;
let rootFd: number;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'stoker-beneath-')));
  root = join(base, 'root');
  await mkdir(join(root, 'a', 'b'), { recursive: true });
  await mkdir(join(base, 'outside'));
  await writeFile(join(root, 'a', 'b', 'f.bin'), 'inside');
  await writeFile(join(base, 'outside', 'f.bin'), 'outside');
  await symlink(join(base, 'outside'), join(root, 'a', 'out'));
  await symlink(join(root, 'a', 'b', 'f.bin'), join(root, 'a', 'link.bin'));
  execFileSync('mkfifo', [join(root, 'a', 'pipe')]);
  rootFd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
});

afterAll(async () => {
  fs.closeSync(rootFd);
  await rm(base, { recursive: true, force: true });
});

const ways = allBeneath();

it('has at least one way to open below a root on Linux', () => {
  expect(ways.map((b) => b.how)).toContain('procfs');
});

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (err: unknown) => (err as { code?: string }).code,
  );
}

describe.each(ways.map((b) => [b.how, b] as const))('opening below a root with %s', (how, b: Beneath) => {
  it('opens a file below the root and never follows a symlink on the way or at the end', async () => {
    const fd = await b.open(rootFd, 'a/b/f.bin', fs.constants.O_RDONLY);
    try {
      expect(fs.readFileSync(fd, 'utf8')).toBe('inside');
    } finally {
      fs.closeSync(fd);
    }
    expect(await codeOf(b.open(rootFd, 'a/out/f.bin', fs.constants.O_RDONLY))).toMatch(/^(ELOOP|ENOTDIR)$/);
    expect(await codeOf(b.open(rootFd, 'a/link.bin', fs.constants.O_RDONLY))).toBe('ELOOP');
    expect(await codeOf(b.open(rootFd, 'a/../a/b/f.bin', fs.constants.O_RDONLY))).toBe('EINVAL');
    expect(await codeOf(b.open(rootFd, '/etc/hostname', fs.constants.O_RDONLY))).toBe('EINVAL');
    expect(await codeOf(b.open(rootFd, 'a/missing', fs.constants.O_RDONLY))).toBe('ENOENT');
  });

  it('lists a directory and examines its entries without following them', async () => {
    const fd = await b.openDir(rootFd, 'a');
    try {
      const names = await b.list(fd);
      expect(names).toEqual(['b', 'link.bin', 'out', 'pipe']);
      const kinds = (await b.statAt(fd, [...names, 'gone'])).map((s) => ('kind' in s ? s.kind : s.code));
      expect(kinds).toEqual(['dir', 'symlink', 'symlink', 'FIFO', 'ENOENT']);
    } finally {
      fs.closeSync(fd);
    }
    expect((await statBeneath(b, rootFd, 'a/b/f.bin')).size).toBe(6);
    expect((await statBeneath(b, rootFd, 'a/out')).kind).toBe('symlink');
  });

  it('keeps listing the directory it opened after that directory is swapped for a symlink', async () => {
    await mkdir(join(root, `swap-${how}`));
    await writeFile(join(root, `swap-${how}`, 'mine.bin'), 'x');
    const fd = await b.openDir(rootFd, `swap-${how}`);
    try {
      await rename(join(root, `swap-${how}`), join(root, `moved-${how}`));
      await symlink(join(base, 'outside'), join(root, `swap-${how}`));
      expect(await b.list(fd)).toEqual(['mine.bin']);
      expect(await codeOf(b.openDir(rootFd, `swap-${how}`))).toMatch(/^(ELOOP|ENOTDIR)$/);
    } finally {
      fs.closeSync(fd);
    }
  });
});
