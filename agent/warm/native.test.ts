import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNative, residentBytesBeneath } from './native.js';

const { native, reason } = loadNative();
const dir = mkdtempSync(join(tmpdir(), 'stoker-native-'));
const dirFd = openSync(dir, 'r');
afterAll(() => {
  closeSync(dirFd);
  rmSync(dir, { recursive: true, force: true });
});
const below = (paths: string[]) => paths.map((p) => p.slice(dir.length + 1));
const never = new AbortController().signal;

/** fincore's count of resident bytes, for an independent check. */
function fincore(path: string): number {
  const out = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' });
  return Number(out.trim());
}

// `npm run build` builds the helper wherever a C compiler and Node's headers exist (CI installs
// both); without it Stoker falls back to fincore, and these tests have nothing to check.
describe.skipIf(!native)(`native residency helper (${reason})`, () => {
  it('sums the resident bytes of regular files as fincore counts them', async () => {
    const a = join(dir, 'a.bin');
    const b = join(dir, 'b.bin');
    writeFileSync(a, Buffer.alloc(64 * 1024, 1));
    writeFileSync(b, Buffer.alloc(3 * 4096, 2));
    const expected = fincore(a) + fincore(b);
    expect(expected).toBeGreaterThan(0);
    expect(await residentBytesBeneath(native!, dirFd, below([a, b]), never)).toBe(expected);
    execFileSync('sync');
    execFileSync('vmtouch', ['-q', '-e', a, b]);
    expect(await residentBytesBeneath(native!, dirFd, below([a, b]), never)).toBe(0);
  });

  it('says unknown (-1) for a missing file, a symlink and a FIFO, without blocking on the FIFO', async () => {
    const real = join(dir, 'real.bin');
    writeFileSync(real, 'x');
    const link = join(dir, 'link.bin');
    symlinkSync(real, link);
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(await residentBytesBeneath(native!, dirFd, ['missing'], never)).toBe(-1);
    expect(await residentBytesBeneath(native!, dirFd, below([real, link]), never)).toBe(-1);
    expect(await residentBytesBeneath(native!, dirFd, below([fifo]), never)).toBe(-1);
    // A symlink anywhere on the way, not only at the end.
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'x.bin'), 'x');
    symlinkSync(join(dir, 'sub'), join(dir, 'via'));
    expect(await residentBytesBeneath(native!, dirFd, ['sub/x.bin'], never)).toBeGreaterThanOrEqual(0);
    expect(await residentBytesBeneath(native!, dirFd, ['via/x.bin'], never)).toBe(-1);
    expect(await residentBytesBeneath(native!, dirFd, ['sub/../sub/x.bin'], never)).toBe(-1);
    expect(await residentBytesBeneath(native!, dirFd, [], never)).toBe(0);
  });

  it('works through many paths in batches and stops when aborted', async () => {
    const paths = Array.from({ length: 600 }, (_, i) => {
      const p = join(dir, `many-${i}`);
      writeFileSync(p, 'y');
      return p;
    });
    expect(await residentBytesBeneath(native!, dirFd, below(paths), never)).toBe(600);
    const ac = new AbortController();
    ac.abort();
    expect(await residentBytesBeneath(native!, dirFd, below(paths), ac.signal)).toBe(-1);
  });
});
