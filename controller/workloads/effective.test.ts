import { describe, expect, it } from 'vitest';
import type { V1Node } from '@kubernetes/client-node';
import type { Warmup } from '../api/types.js';
import type { Derivation } from './derive.js';
import { effectiveSpec, skippedNodes, type WorkloadSource } from './effective.js';

const derivation: Derivation = {
  source: 'Deployment/vllm',
  templates: [{ name: 'spec.template', spec: { containers: [], nodeSelector: { pool: 'gpu' } } }],
  images: ['reg.example/app:1', 'reg.example/own:1'],
  imagePullSecrets: ['pull-sa'],
  paths: [{ path: '/models', include: [], exclude: [] }],
  claims: [{ claimName: 'datasets', include: [], exclude: [] }],
  key: 'k1',
};

/** A fake source that derives `derivation` for Deployment/vllm and nothing else. */
const fakeSource: WorkloadSource = {
  derive: (_ns, ref) => (ref.name === 'vllm' ? { derivation } : { problem: { reason: 'WorkloadNotFound', value: `${ref.kind}/${ref.name}`, message: 'gone' } }),
  event: () => undefined,
};

function warmup(name: string): Warmup {
  return { metadata: { name: 'w', namespace: 'ml' }, spec: { workloadRef: { apiVersion: 'apps/v1', kind: 'Deployment', name }, images: [{ image: 'reg.example/own:1', pullPolicy: 'Always' }], imagePullSecrets: [{ name: 'own' }] } };
}

describe('effectiveSpec', () => {
  it("adds the workload's images, secrets, paths and claims to the Warmup's own, once each", () => {
    const e = effectiveSpec(warmup('vllm'), fakeSource);
    if (!('spec' in e)) throw new Error(e.problem.message);
    expect(e.spec.images).toEqual([{ image: 'reg.example/own:1', pullPolicy: 'Always' }, { image: 'reg.example/app:1', pullPolicy: 'IfNotPresent' }]);
    expect(e.spec.imagePullSecrets).toEqual(['own', 'pull-sa']);
    expect(e.spec.paths.map((p) => p.path)).toEqual(['/models']);
    expect(e.spec.claims.map((c) => c.claimName)).toEqual(['datasets']);
    expect(e.derived?.source).toBe('Deployment/vllm');
  });
  it('passes a problem through, and leaves a Warmup without workloadRef as it is', () => {
    expect(effectiveSpec(warmup('other'), fakeSource)).toEqual({ problem: { reason: 'WorkloadNotFound', value: 'Deployment/other', message: 'gone' } });
    expect(effectiveSpec(warmup('vllm'), undefined)).toMatchObject({ problem: { reason: 'WorkloadNotFound' } });
    const plain = effectiveSpec({ metadata: {}, spec: { images: [{ image: 'a' }] } }, fakeSource);
    expect('spec' in plain && plain.derived).toBeUndefined();
  });
});

describe('skippedNodes', () => {
  it('counts every skipped node and lists the first 20 by name, with why', () => {
    const nodes: V1Node[] = Array.from({ length: 25 }, (_, i) => ({ metadata: { name: `n-${String(i).padStart(2, '0')}`, labels: { pool: i === 3 ? 'gpu' : 'cpu' } } }));
    nodes.push({ metadata: { name: 'gpu-x', labels: { pool: 'gpu' }, annotations: { 'stoker.io/exclude': 'true' } } });
    const s = skippedNodes(derivation.templates, nodes);
    expect(s.count).toBe(25);
    expect(s.list).toHaveLength(20);
    expect(s.list[0]).toEqual({ name: 'gpu-x', reason: 'excluded', message: 'annotated stoker.io/exclude=true' });
    expect(s.list.some((n) => n.name === 'n-03')).toBe(false);
  });
});
