import { execFileSync } from 'node:child_process';
import { truncateSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rename, rm, stat, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBeneath } from './beneath.js';
import { closeRoots, openRoots, type FileEntry, type Root } from './paths.js';
import { RANGED_FILE_BYTES, ReaderPool, readAll, readFile } from './readers.js';

let base: string;
let roots: Root[];
const never = new AbortController().signal;
const beneath = loadBeneath().beneath!;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'stoker-readers-')));
  roots = await openRoots([base]);
});
afterAll(async () => {
  closeRoots(roots);
  await rm(base, { recursive: true, force: true });
});

async function entry(name: string, bytes: number): Promise<FileEntry> {
  const p = join(base, name);
  await writeFile(p, Buffer.alloc(bytes, 7));
  const st = await stat(p);
  return { root: roots[0]!, rel: name, real: p, shown: p, size: st.size, dev: st.dev, ino: st.ino };
}

describe('readFile', () => {
  it('reads the whole file through a small buffer and reports every chunk', async () => {
    const e = await entry('whole', 100_000);
    const chunks: number[] = [];
    const r = await readFile(e, Buffer.alloc(4096), never, (n) => chunks.push(n), beneath);
    expect(r).toEqual({ bytes: 100_000 });
    expect(chunks.reduce((a, b) => a + b, 0)).toBe(100_000);
  });

  it('refuses a file replaced by another after the check (different inode)', async () => {
    const e = await entry('swapped', 1000);
    await writeFile(join(base, 'other'), 'x');
    await rename(join(base, 'other'), e.real);
    const r = await readFile(e, Buffer.alloc(4096), never, () => undefined, beneath);
    expect(r.bytes).toBe(0);
    expect(r.issue?.code).toBe('PATH_OUTSIDE_ROOT');
    expect(r.issue?.message).toContain('changed between check and open');
  });

  it('refuses a file replaced by a symlink after the check (O_NOFOLLOW)', async () => {
    const e = await entry('to-link', 1000);
    await unlink(e.real);
    await symlink('/etc/hostname', e.real);
    const r = await readFile(e, Buffer.alloc(4096), never, () => undefined, beneath);
    expect(r.issue?.code).toBe('PATH_OUTSIDE_ROOT');
    expect(r.issue?.message).toContain('replaced by a symlink');
  });

  it('does not block on a file replaced by a FIFO after the check', async () => {
    const e = await entry('to-fifo', 1000);
    await unlink(e.real);
    execFileSync('mkfifo', [e.real]);
    const r = await readFile(e, Buffer.alloc(4096), never, () => undefined, beneath);
    expect(r.issue?.code).toBe('PATH_OUTSIDE_ROOT');
  });

  it('refuses a file whose directory was replaced by a symlink after the check, and reads nothing outside', async () => {
    await mkdir(join(base, 'dir'));
    const e = await entry('dir/inside.bin', 1000);
    const outside = await realpath(await mkdtemp(join(tmpdir(), 'stoker-readers-outside-')));
    try {
      // The same name outside, a hard link of the very file checked: only the path is a lie.
      await rename(e.real, join(outside, 'inside.bin'));
      await rm(join(base, 'dir'), { recursive: true });
      await symlink(outside, join(base, 'dir'));
      const r = await readFile(e, Buffer.alloc(4096), never, () => undefined, beneath);
      expect(r.bytes).toBe(0);
      expect(r.issue?.code).toBe('PATH_OUTSIDE_ROOT');
      expect(r.issue?.message).toContain('replaced by a symlink');
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('reports a file that is gone before it is opened', async () => {
    const e = await entry('gone', 10);
    await unlink(e.real);
    const r = await readFile(e, Buffer.alloc(4096), never, () => undefined, beneath);
    expect(r.issue?.message).toMatch(/vanished/);
  });
});

describe('readFile in ranges', () => {
  const MiB = 1024 * 1024;
  /** A sparse file of `bytes`: read at memory speed, no disk space. */
  async function sparse(name: string, bytes: number): Promise<FileEntry> {
    const p = join(base, name);
    await writeFile(p, '');
    await truncate(p, bytes);
    const st = await stat(p);
    return { root: roots[0]!, rel: name, real: p, shown: p, size: st.size, dev: st.dev, ino: st.ino };
  }

  it('reads every byte of a large file as ranges, each through its share of the buffer', async () => {
    const size = RANGED_FILE_BYTES + 3 * MiB + 123;
    const e = await sparse('ranged', size);
    const chunks: number[] = [];
    const r = await readFile(e, Buffer.alloc(8 * MiB), never, (n) => chunks.push(n), beneath, undefined, 4);
    expect(r).toEqual({ bytes: size });
    expect(chunks.reduce((a, b) => a + b, 0)).toBe(size);
    expect(Math.max(...chunks)).toBe(2 * MiB);
  });

  it('reads a file below the threshold, or with too small a buffer to share, as one stream', async () => {
    const below = await sparse('below', RANGED_FILE_BYTES - 1);
    const chunks: number[] = [];
    expect(await readFile(below, Buffer.alloc(8 * MiB), never, (n) => chunks.push(n), beneath, undefined, 4)).toEqual({ bytes: RANGED_FILE_BYTES - 1 });
    expect(Math.max(...chunks)).toBe(8 * MiB);

    const large = await sparse('small-buffer', RANGED_FILE_BYTES);
    const one: number[] = [];
    expect(await readFile(large, Buffer.alloc(MiB), never, (n) => one.push(n), beneath, undefined, 8)).toEqual({ bytes: RANGED_FILE_BYTES });
    expect(Math.max(...one)).toBe(MiB);
    expect(one.length).toBe(RANGED_FILE_BYTES / MiB);
  });

  it('reports a large file that grew or shrank while its ranges were read', async () => {
    const grown = await sparse('grown', RANGED_FILE_BYTES);
    let once = false;
    const g = await readFile(grown, Buffer.alloc(8 * MiB), never, () => {
      if (!once) truncateSync(grown.real, RANGED_FILE_BYTES + 5 * MiB);
      once = true;
    }, beneath, undefined, 4);
    expect(g.bytes).toBe(RANGED_FILE_BYTES + 5 * MiB);
    expect(g.issue?.message).toContain(`grew from ${RANGED_FILE_BYTES}`);

    const shrunk = await sparse('shrunk', 2 * RANGED_FILE_BYTES);
    once = false;
    const s = await readFile(shrunk, Buffer.alloc(8 * MiB), never, () => {
      if (!once) truncateSync(shrunk.real, RANGED_FILE_BYTES);
      once = true;
    }, beneath, undefined, 4);
    expect(s.bytes).toBeLessThan(2 * RANGED_FILE_BYTES);
    expect(s.issue?.message).toContain(`shrank from ${2 * RANGED_FILE_BYTES}`);
  });

  it('stops every range when the signal aborts', async () => {
    const e = await sparse('aborted', 2 * RANGED_FILE_BYTES);
    const ac = new AbortController();
    let seen = 0;
    const read = readFile(e, Buffer.alloc(8 * MiB), ac.signal, (n) => {
      seen += n;
      if (seen >= 8 * MiB) ac.abort(new Error('stop'));
    }, beneath, undefined, 4);
    await expect(read).rejects.toThrow('stop');
    expect(seen).toBeLessThan(2 * RANGED_FILE_BYTES);
  });
});

describe('readAll', () => {
  it('reads every file with a bounded pool and stops on abort', async () => {
    const files = await Promise.all([1, 2, 3, 4, 5].map((i) => entry(`pool-${i}`, 64 * 1024 * i)));
    let bytes = 0;
    let done = 0;
    await readAll(files, { readers: 2, bufferBytes: 65536, signal: never, onBytes: (n) => (bytes += n), onFile: () => done++, beneath });
    expect([bytes, done]).toEqual([15 * 64 * 1024, 5]);

    const ac = new AbortController();
    let read = 0;
    const run = readAll(files, {
      readers: 1,
      bufferBytes: 65536,
      signal: ac.signal,
      onBytes: (n) => {
        read += n;
        ac.abort(new Error('stop'));
      },
      onFile: () => undefined,
      beneath,
    });
    await expect(run).rejects.toThrow('stop');
    expect(read).toBe(65536);
  });
});

describe('ReaderPool', () => {
  it('bounds reads and buffers over every task that shares it', async () => {
    const pool = new ReaderPool({ readers: 3, largeReaders: 1, bufferBytes: 2 * 1024 * 1024, idleMs: Infinity });
    const large = await Promise.all([1, 2, 3].map((i) => entry(`shared-large-${i}`, 1024 * 1024 + i)));
    const small = await Promise.all(Array.from({ length: 12 }, (_, i) => entry(`shared-small-${i}`, 4096 * (i + 1))));
    let most = 0;
    let mostBuffers = 0;
    const watch = (): void => {
      most = Math.max(most, pool.inUse);
      mostBuffers = Math.max(mostBuffers, pool.bufferBytesHeld);
    };
    const tasks = Array.from({ length: 4 }, () =>
      readAll([...large, ...small], { readers: 8, bufferBytes: 8 * 1024 * 1024, signal: never, onBytes: watch, onFile: () => undefined, beneath, pool }),
    );
    await Promise.all(tasks);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(3);
    // One large buffer and three small ones (256 KiB) at most.
    expect(mostBuffers).toBeLessThanOrEqual(2 * 1024 * 1024 + 3 * 256 * 1024);
    expect(pool.inUse).toBe(0);
  });

  it('grants slots in the order they were asked for, and an aborted wait gives up its turn', async () => {
    const pool = new ReaderPool({ readers: 1, idleMs: Infinity });
    const first = await pool.acquire(false, never);
    const ac = new AbortController();
    const order: string[] = [];
    const aborted = pool.acquire(false, ac.signal).then(
      () => order.push('aborted one'),
      () => order.push('gave up'),
    );
    const second = pool.acquire(false, never).then((lease) => {
      order.push('second');
      lease.release();
    });
    ac.abort(new Error('cancelled'));
    await aborted;
    first.release();
    await second;
    expect(order).toEqual(['gave up', 'second']);
  });
});
