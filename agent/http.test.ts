import { describe, expect, it } from 'vitest';
import { isLoopback } from './http.js';

// /status gives allowed roots and task ids only to callers for which isLoopback is true; everyone
// else gets the summary. The real listener is exercised from 127.0.0.1 in test/agent.test.ts.
describe('isLoopback', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.10.20.30', true],
    ['::ffff:127.0.0.1', true],
    ['::1', true],
    ['10.0.0.5', false],
    ['192.168.1.7', false],
    ['::ffff:10.0.0.5', false],
    ['fe80::1', false],
    ['128.0.0.1', false],
    ['', false],
    [undefined, false],
  ])('%s -> %s', (address, want) => {
    expect(isLoopback(address)).toBe(want);
  });
});
