import { open, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseFiles } from './release.js';
import { residentBytes } from './residency.js';

let base: string;
let root: string;
const never = new AbortController().signal;
const SIZE = 4 << 20;

/** Writes a file, makes it clean (fsync: dirty pages are never dropped) and reads it into the cache. */
async function cleanResident(path: string): Promise<void> {
  const fh = await open(path, 'w');
  await fh.writeFile(Buffer.alloc(SIZE, 7));
  await fh.sync();
  await fh.close();
  await readFile(path);
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'stoker-release-'));
  root = join(base, 'models');
  await mkdir(join(root, 'm'), { recursive: true });
  await mkdir(join(base, 'outside'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('releaseFiles', () => {
  it.each([
    ['the native helper', true],
    ['dd iflag=nocache', false],
  ])("drops a warmed tree's pages from the page cache through %s and reports before and after", async (_how, native) => {
    const file = join(root, 'm', native ? 'a.bin' : 'b.bin');
    await cleanResident(file);
    expect(await residentBytes([file], never)).toBe(SIZE);
    const [r] = await releaseFiles({ paths: [{ path: join(root, 'm'), include: [native ? 'a.bin' : 'b.bin'] }], allowedRoots: [root], signal: never, native });
    expect(r).toMatchObject({ files: 1, bytes: SIZE, failure: null });
    expect(Number(r?.residentBytesBefore)).toBe(SIZE);
    expect(Number(r?.residentBytesAfter)).toBe(0);
    expect(await residentBytes([file], never)).toBe(0);
  });

  it('refuses a path outside the allowed roots, and never follows a symlink out of them', async () => {
    const outside = join(base, 'outside', 'secret.bin');
    await cleanResident(outside);
    await symlink(join(base, 'outside'), join(root, 'link'));
    const [out, link] = await releaseFiles({ paths: [{ path: join(base, 'outside') }, { path: join(root, 'link') }], allowedRoots: [root], signal: never });
    expect(out?.failure?.code).toBe('PATH_OUTSIDE_ROOT');
    expect(link?.failure?.code).toBe('PATH_OUTSIDE_ROOT');
    expect(await residentBytes([outside], never)).toBe(SIZE);
  });
});
