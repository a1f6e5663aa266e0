import { describe, expect, it } from 'vitest';
import type { PinLabel__Output, WarmResult__Output } from '../proto/agent.js';
import { NodeFacts } from './node-facts.js';

function result(opts: { pinned?: boolean[]; label?: PinLabel__Output; paths?: { resident: number; bytes: number; warnings?: string[] }[] }): WarmResult__Output {
  return {
    taskId: 't',
    succeeded: true,
    seconds: 0,
    failure: null,
    images: (opts.pinned ?? []).map((pinned, i) => ({ image: `r/x:${i}`, state: 'DONE', imageRef: '', sizeBytes: 1, seconds: 0, failure: null, pinned, repoDigest: '', pinLabel: opts.label ?? 'PIN_LABEL_SET' })),
    paths: (opts.paths ?? []).map((p) => ({
      path: '/models',
      state: 'DONE',
      files: 1,
      bytes: p.bytes,
      seconds: 0,
      residentBytesBefore: 0,
      residentBytesAfter: p.resident,
      issues: [],
      failure: null,
      warnings: p.warnings ?? [],
    })),
  };
}

describe('NodeFacts', () => {
  it('says which runtimes do not report the images pinned, never claiming pinning for them', () => {
    const f = new NodeFacts();
    f.record('b', result({ pinned: [true, false] }));
    f.record('a', result({ pinned: [true] }));
    f.record('c', result({ pinned: [false], label: 'PIN_LABEL_UNSUPPORTED' }));
    // A keepWarm check sets no label: the node's last answer about the label stands.
    f.record('c', result({ pinned: [false], label: 'PIN_LABEL_UNSPECIFIED' }));
    expect(f.pin(['a', 'b', 'c'])).toEqual({
      pinnedNodes: 1,
      notHonouredNodes: 2,
      notHonouredNodeList: ['b', 'c'],
      message:
        "the runtime on 2 of 3 node(s) reports the images not pinned (CRI Image.pinned false), so its image garbage collection may remove them: on 1, containerd's pin label is set but not honoured by this runtime (containerd honours it from 1.7 on); on 1, the runtime is not containerd and has no pin label",
    });
    expect(f.pin(['a'])?.message).toBe('the runtime on each of 1 node(s) reports the images pinned');
    expect(f.pin(['z'])).toBeUndefined();
  });

  it('totals residency over the given nodes and lists those below the minimum, at most 20', () => {
    const f = new NodeFacts();
    for (let i = 0; i < 25; i++) f.record(`n${String(i).padStart(2, '0')}`, result({ paths: [{ resident: i < 22 ? 50 : 100, bytes: 100 }] }));
    f.record('unknown', result({ paths: [{ resident: -1, bytes: 100 }] }));
    const all = [...Array(25).keys()].map((i) => `n${String(i).padStart(2, '0')}`);
    const r = f.residency([...all, 'unknown'], 90);
    expect(r).toMatchObject({ residentBytes: 22 * 50 + 3 * 100, totalBytes: 2500, nodes: 25, belowMinimum: 22 });
    expect(r?.belowMinimumNodeList).toHaveLength(20);
    expect(r?.belowMinimumNodeList?.[0]).toEqual({ name: 'n00', residentPercent: 50 });
  });

  it('returns each budget warning once, the first time a node reports it', () => {
    const f = new NodeFacts();
    const w = 'the tree (8.0 GiB) is larger than the cgroup memory limit (4.0 GiB)';
    expect(f.record('a', result({ paths: [{ resident: 1, bytes: 1, warnings: [w] }] }))).toEqual([w]);
    expect(f.record('a', result({ paths: [{ resident: 1, bytes: 1, warnings: [w] }] }))).toEqual([]);
  });
});
