import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNetworkFilesystem, residentBytes } from './residency.js';

let base: string;
const never = new AbortController().signal;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'stoker-residency-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('residentBytes', () => {
  it('sums what fincore reports for files just written (resident) and is 0 for no files', async () => {
    const a = join(base, 'a');
    await writeFile(a, Buffer.alloc(8192, 1));
    expect(await residentBytes([a], never)).toBe(8192);
    expect(await residentBytes([], never)).toBe(0);
  });

  it('is unknown (-1), never 0, when a file cannot be measured', async () => {
    expect(await residentBytes([join(base, 'missing')], never)).toBe(-1);
  });

  it('is unknown (-1) when fincore is not installed', async () => {
    const a = join(base, 'b');
    await writeFile(a, 'x');
    const path = process.env.PATH;
    process.env.PATH = join(base, 'empty-bin');
    try {
      expect(await residentBytes([a], never)).toBe(-1);
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('isNetworkFilesystem', () => {
  it('is false for a local directory and for a path that does not exist', async () => {
    expect(await isNetworkFilesystem(base)).toBe(false);
    expect(await isNetworkFilesystem(join(base, 'missing'))).toBe(false);
  });
});
