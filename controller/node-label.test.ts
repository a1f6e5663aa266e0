import { describe, expect, it } from 'vitest';
import { nodeLabelKey } from './node-label.js';

describe('nodeLabelKey', () => {
  it('is warm.stoker.io/<namespace>.<name> while that fits a label name', () => {
    expect(nodeLabelKey('default', 'llama')).toBe('warm.stoker.io/default.llama');
    const fits = nodeLabelKey('ml', 'a'.repeat(60));
    expect(fits).toBe(`warm.stoker.io/ml.${'a'.repeat(60)}`);
  });

  it('past 63 characters keeps a prefix and a hash of the whole: stable, distinct, a valid label name', () => {
    const long = nodeLabelKey('inference-production', 'meta-llama-3-70b-instruct-weights-and-tokenizer-v2');
    const other = nodeLabelKey('inference-production', 'meta-llama-3-70b-instruct-weights-and-tokenizer-v3');
    const name = long.slice('warm.stoker.io/'.length);
    expect(long).toBe(nodeLabelKey('inference-production', 'meta-llama-3-70b-instruct-weights-and-tokenizer-v2'));
    expect(long).not.toBe(other);
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$/);
    expect(name.startsWith('inference-production.meta-llama')).toBe(true);
    // A prefix that would end in "." or "-" is cut back so the name still ends alphanumeric before the hash.
    const dotted = nodeLabelKey('a'.repeat(51), `b.${'c'.repeat(30)}`).slice('warm.stoker.io/'.length);
    expect(dotted).toMatch(/^a{51}-[0-9a-f]{10}$/);
  });
});
