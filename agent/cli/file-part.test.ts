import { describe, expect, it } from 'vitest';
import { filesOutcome, progressText } from './file-part.js';

describe('progressText', () => {
  it('shows a bar, files, bytes, throughput and ETA', () => {
    const t = progressText({ filesDone: 1, filesTotal: 4, bytesDone: 512 * 1024 * 1024, bytesTotal: 1024 * 1024 * 1024, elapsedSeconds: 2 });
    expect(t).toBe('[##########----------]  1/4 files  512.0 MiB of 1.0 GiB  256.0 MiB/s  ETA 2s');
  });
});

describe('filesOutcome', () => {
  it('fails on a failed path, keeps issues and warnings apart, and says unknown for unknown residency', () => {
    const o = filesOutcome([
      { path: '/m/a', state: 'DONE', files: 2, bytes: 2e9, seconds: 1, residentBytesBefore: -1, residentBytesAfter: 2e9, issues: [{ path: '/m/a/p', code: 'READ_FAILED', message: 'a FIFO' }], failure: null, warnings: ['too big'] },
      { path: '/etc', state: 'FAILED', files: 0, bytes: 0, seconds: 0, residentBytesBefore: -1, residentBytesAfter: -1, issues: [], failure: { code: 'PATH_OUTSIDE_ROOT', message: 'outside', needBytes: 0 }, warnings: [] },
    ]);
    expect(o.ok).toBe(false);
    expect(o.rows[0]).toEqual(['/m/a', 'done', '2', '1.9 GiB', '1.0s', '2.00', 'unknown', '1.9 GiB (100%)']);
    expect(o.failures).toEqual(['PATH_OUTSIDE_ROOT: outside']);
    expect(o.warnings).toEqual(['too big', 'READ_FAILED: a FIFO']);
  });
});
