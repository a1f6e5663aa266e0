import { describe, expect, it } from 'vitest';
import type { V1Node, V1PodSpec } from '@kubernetes/client-node';
import { requirementHolds, skipReason, tolerates } from './eligibility.js';

function node(name: string, labels: Record<string, string> = {}, taints: V1Node['spec'] = {}, annotations: Record<string, string> = {}): V1Node {
  return { metadata: { name, labels, annotations }, spec: taints };
}

const gpuTaint = { taints: [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }] };

describe('skipReason', () => {
  const cases: { name: string; spec: V1PodSpec; node: V1Node; want: string | undefined }[] = [
    { name: 'no rules: every node', spec: { containers: [] }, node: node('a'), want: undefined },
    { name: 'nodeSelector matches', spec: { containers: [], nodeSelector: { pool: 'gpu' } }, node: node('a', { pool: 'gpu' }), want: undefined },
    { name: 'nodeSelector differs', spec: { containers: [], nodeSelector: { pool: 'gpu' } }, node: node('a', { pool: 'cpu' }), want: 'selector' },
    { name: 'nodeSelector label absent', spec: { containers: [], nodeSelector: { pool: 'gpu' } }, node: node('a'), want: 'selector' },
    {
      name: 'affinity In matches one term',
      spec: { containers: [], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['x'] }] }, { matchExpressions: [{ key: 'zone', operator: 'In', values: ['y'] }] }] } } } },
      node: node('a', { zone: 'y' }),
      want: undefined,
    },
    {
      name: 'affinity NotIn excludes',
      spec: { containers: [], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['y'] }] }] } } } },
      node: node('a', { zone: 'y' }),
      want: 'affinity',
    },
    {
      name: 'affinity matchFields metadata.name',
      spec: { containers: [], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['b'] }] }] } } } },
      node: node('a'),
      want: 'affinity',
    },
    {
      name: 'affinity Gt',
      spec: { containers: [], affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'gpus', operator: 'Gt', values: ['4'] }] }] } } } },
      node: node('a', { gpus: '8' }),
      want: undefined,
    },
    { name: 'untolerated NoSchedule taint', spec: { containers: [] }, node: node('a', {}, gpuTaint), want: 'taint' },
    { name: 'tolerated by key Exists', spec: { containers: [], tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists' }] }, node: node('a', {}, gpuTaint), want: undefined },
    { name: 'tolerated by Equal value', spec: { containers: [], tolerations: [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }] }, node: node('a', {}, gpuTaint), want: undefined },
    { name: 'wrong value', spec: { containers: [], tolerations: [{ key: 'nvidia.com/gpu', value: 'absent' }] }, node: node('a', {}, gpuTaint), want: 'taint' },
    { name: 'PreferNoSchedule is not a hard rule', spec: { containers: [] }, node: node('a', {}, { taints: [{ key: 'k', effect: 'PreferNoSchedule' }] }), want: undefined },
    { name: 'excluded node, whatever the pod', spec: { containers: [] }, node: node('a', {}, {}, { 'stoker.io/exclude': 'true' }), want: 'excluded' },
  ];
  it.each(cases)('$name', ({ spec, node: n, want }) => {
    expect(skipReason([{ name: 't', spec }], n)?.reason).toBe(want);
  });

  it('names the taint and the selector in its message', () => {
    expect(skipReason([{ name: 't', spec: { containers: [] } }], node('a', {}, gpuTaint))?.message).toBe('taint nvidia.com/gpu=present:NoSchedule not tolerated');
    expect(skipReason([{ name: 't', spec: { containers: [], nodeSelector: { pool: 'gpu' } } }], node('a', { pool: 'cpu' }))?.message).toBe('nodeSelector pool=gpu (node has pool=cpu)');
  });

  it('a node any one template may use is eligible (leader and workers)', () => {
    const leader = { name: 'leader', spec: { containers: [], nodeSelector: { role: 'leader' } } };
    const worker = { name: 'worker', spec: { containers: [], nodeSelector: { role: 'worker' } } };
    expect(skipReason([leader, worker], node('w', { role: 'worker' }))).toBeUndefined();
    expect(skipReason([leader, worker], node('x', { role: 'other' }))?.reason).toBe('selector');
  });
});

describe('requirementHolds and tolerates', () => {
  it.each([
    ['Exists', undefined, [], false],
    ['Exists', 'v', [], true],
    ['DoesNotExist', undefined, [], true],
    ['NotIn', undefined, ['a'], true],
    ['Lt', '3', ['4'], true],
    ['Lt', 'x', ['4'], false],
    ['Bogus', 'a', ['a'], false],
  ] as const)('%s %s %j -> %s', (operator, value, values, want) => {
    expect(requirementHolds({ key: 'k', operator, values: [...values] }, value)).toBe(want);
  });
  it('an empty key with Exists tolerates every taint', () => {
    expect(tolerates({ operator: 'Exists' }, { key: 'any', effect: 'NoExecute' })).toBe(true);
    expect(tolerates({ operator: 'Exists', effect: 'NoSchedule' }, { key: 'any', effect: 'NoExecute' })).toBe(false);
  });
});
