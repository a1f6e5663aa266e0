import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allBeneath } from './beneath.js';
import { PathError, checkRequestedPath, closeRoots, compileFilter, isInside, openRoots, resolveRoots, walkTree, type Root } from './paths.js';

let base: string;
let root: string;
const never = new AbortController().signal;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'stoker-paths-'));
  root = join(base, 'root');
  await mkdir(join(root, 'm', 'sub'), { recursive: true });
  await writeFile(join(root, 'm', 'a.bin'), 'aaaa');
  await writeFile(join(root, 'm', 'sub', 'b.bin'), 'bb');
  await writeFile(join(root, 'm', '.hidden'), 'h');
  await writeFile(join(base, 'outside.bin'), 'secret');
  await symlink(join(base, 'outside.bin'), join(root, 'm', 'escape'));
  await symlink('sub/b.bin', join(root, 'm', 'again.bin'));
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<PathError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(PathError);
  return err as PathError;
}

describe('isInside', () => {
  it('accepts the root and paths below it, not siblings sharing a prefix', () => {
    expect(isInside('/data', '/data')).toBe(true);
    expect(isInside('/data/models/x', '/data')).toBe(true);
    expect(isInside('/data2/x', '/data')).toBe(false);
    expect(isInside('/etc', '/')).toBe(true);
  });
});

describe('compileFilter', () => {
  it('matches include globs against the basename or relative path and prunes excluded directories', () => {
    const f = compileFilter({ path: '/m', include: ['*.safetensors', 'tok/*.json'], exclude: ['cache/**', '*.tmp.safetensors'] });
    expect(f('model.safetensors', false)).toBe(true);
    expect(f('deep/dir/model.safetensors', false)).toBe(true);
    expect(f('tok/vocab.json', false)).toBe(true);
    expect(f('notes.txt', false)).toBe(false);
    expect(f('x.tmp.safetensors', false)).toBe(false);
    expect(f('cache', true)).toBe(false);
    expect(f('cache/a.safetensors', false)).toBe(false);
    expect(f('other', true)).toBe(true);
  });

  it('refuses empty and absolute globs, naming them', () => {
    expect(() => compileFilter({ path: '/m', include: [''] })).toThrow(/empty glob/);
    expect(() => compileFilter({ path: '/m', exclude: ['/etc/*'] })).toThrow(/"\/etc\/\*" for "\/m" is absolute/);
  });
});

describe('resolveRoots', () => {
  it('refuses a relative or missing root, naming it', async () => {
    expect((await refusal(resolveRoots(['data']))).message).toContain('"data"');
    const missing = join(base, 'nope');
    expect((await refusal(resolveRoots([missing]))).message).toContain(missing);
    expect((await refusal(resolveRoots([]))).code).toBe('INVALID_REQUEST');
  });
});

describe('checkRequestedPath', () => {
  it('refuses relative paths, "..", paths elsewhere and symlinks that leave the root', async () => {
    const roots = await resolveRoots([root]);
    expect((await refusal(checkRequestedPath('m/a.bin', roots))).code).toBe('INVALID_REQUEST');
    const dotdot = `${root}/m/../../outside.bin`;
    const e1 = await refusal(checkRequestedPath(dotdot, roots));
    expect([e1.code, e1.message]).toEqual(['PATH_OUTSIDE_ROOT', `path "${dotdot}" contains "..": refused`]);
    const e2 = await refusal(checkRequestedPath(join(base, 'outside.bin'), roots));
    expect(e2.code).toBe('PATH_OUTSIDE_ROOT');
    const e3 = await refusal(checkRequestedPath(join(root, 'm', 'escape'), roots));
    expect(e3.message).toContain(`resolves to "${join(base, 'outside.bin')}"`);
    expect((await refusal(checkRequestedPath(join(root, 'missing'), roots))).code).toBe('PATH_NOT_FOUND');
    expect(await checkRequestedPath(join(root, 'm', 'again.bin'), roots)).toBe(join(roots[0] ?? '', 'm', 'sub', 'b.bin'));
  });
});

describe.each(allBeneath().map((b) => [b.how, b] as const))('walkTree, opening with %s', (_how, beneath) => {
  let roots: Root[];
  beforeAll(async () => {
    roots = await openRoots(await resolveRoots([root]));
  });
  afterAll(() => closeRoots(roots));

  it('lists regular files once, with dot files, and reports the escaping symlink', async () => {
    const tree = await walkTree({ path: join(root, 'm') }, roots, never, beneath);
    // again.bin links to sub/b.bin: the file is listed once, under the name met first.
    expect(tree.files.map((f) => f.shown).sort()).toEqual([join(root, 'm', '.hidden'), join(root, 'm', 'a.bin'), join(root, 'm', 'again.bin')]);
    const again = tree.files.find((f) => f.shown.endsWith('again.bin'));
    expect(again?.real).toMatch(/\/m\/sub\/b\.bin$/);
    expect(again?.rel).toBe('m/sub/b.bin');
    expect(tree.bytes).toBe(7);
    expect(tree.issues).toHaveLength(1);
    expect(tree.issues[0]?.code).toBe('PATH_OUTSIDE_ROOT');
    expect(tree.issues[0]?.path).toBe(join(root, 'm', 'escape'));
  });

  it('applies include to a single requested file by its name', async () => {
    expect((await walkTree({ path: join(root, 'm', 'a.bin'), include: ['*.json'] }, roots, never, beneath)).files).toHaveLength(0);
    expect((await walkTree({ path: join(root, 'm', 'a.bin'), include: ['*.bin'] }, roots, never, beneath)).files).toHaveLength(1);
  });

  it('refuses a FIFO given as the path itself, naming it', async () => {
    const fifo = join(root, `fifo-${_how}`);
    execFileSync('mkfifo', [fifo]);
    const err = await refusal(walkTree({ path: fifo }, roots, never, beneath));
    expect([err.code, err.message]).toEqual(['READ_FAILED', `path "${fifo}" is a FIFO, not a regular file or a directory: not read`]);
  });

  it('stops when aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(walkTree({ path: join(root, 'm') }, roots, ac.signal, beneath)).rejects.toThrow();
  });
});
