import { describe, expect, it } from 'vitest';
import { formatSelector, matchesSelector } from './label-selector.js';

describe('matchesSelector', () => {
  const labels = { pool: 'gpu', zone: 'a' };

  it.each([
    [{ matchLabels: { pool: 'gpu' } }, true],
    [{ matchLabels: { pool: 'cpu' } }, false],
    [{ matchLabels: { pool: 'gpu', zone: 'b' } }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] }, true],
    [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }, false],
    [{ matchExpressions: [{ key: 'rack', operator: 'In', values: [''] }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, false],
    [{ matchExpressions: [{ key: 'rack', operator: 'NotIn', values: ['r1'] }] }, true],
    [{ matchExpressions: [{ key: 'gpu', operator: 'Exists' }] }, false],
    [{ matchExpressions: [{ key: 'pool', operator: 'Exists' }] }, true],
    [{ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }, true],
    [{ matchExpressions: [{ key: 'pool', operator: 'DoesNotExist' }] }, false],
    [{ matchExpressions: [{ key: 'pool', operator: 'Gt', values: ['1'] }] }, false],
    [{ matchLabels: { pool: 'gpu' }, matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }, false],
    [{}, true],
  ])('%j -> %s', (selector, want) => {
    expect(matchesSelector(selector, labels)).toBe(want);
  });
});

describe('formatSelector', () => {
  it('writes the selector as kubectl does, quoted', () => {
    expect(
      formatSelector({
        matchLabels: { pool: 'gpu' },
        matchExpressions: [
          { key: 'zone', operator: 'In', values: ['a', 'b'] },
          { key: 'spot', operator: 'DoesNotExist' },
          { key: 'ssd', operator: 'Exists' },
        ],
      }),
    ).toBe('"pool=gpu,zone in (a,b),!spot,ssd"');
  });
});
