import { describe, expect, it } from 'vitest';
import { formatBytes } from './bytes.js';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [512.4, '512 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [1.5 * 1024 ** 2, '1.5 MiB'],
    [500 * 1024 ** 2, '500.0 MiB'],
    [27e9, '25.1 GiB'],
    [61 * 1024 ** 3, '61.0 GiB'],
    [3 * 1024 ** 5, '3072.0 TiB'],
  ])('%d -> %s', (n, s) => expect(formatBytes(n)).toBe(s));
});
