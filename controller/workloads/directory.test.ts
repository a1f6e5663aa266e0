import { describe, expect, it } from 'vitest';
import { deriveWork } from './derive.js';
import { slim } from './directory.js';
import { workloadKind, type Workload } from './templates.js';

/** A Deployment as the API server sends it: much that derivation never reads. */
function fullDeployment(): Workload & Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'vllm',
      namespace: 'ml',
      uid: 'u-1',
      resourceVersion: '42',
      labels: { app: 'vllm' },
      annotations: { 'stoker.io/warm': 'true', 'stoker.io/warm-volumes': 'model', 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(4096) },
    },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: 'vllm' } },
      template: {
        metadata: { labels: { app: 'vllm' } },
        spec: {
          initContainers: [{ name: 'fetch', image: 'reg.example/fetch:1', command: ['sh', '-c', 'true'] }],
          containers: [{ name: 'app', image: 'reg.example/app:1', env: [{ name: 'BIG', value: 'y'.repeat(4096) }], resources: { limits: { 'nvidia.com/gpu': '1' } } }],
          imagePullSecrets: [{ name: 'pull-a' }],
          serviceAccountName: 'runner',
          nodeSelector: { gpu: 'a100' },
          affinity: {
            nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } },
            podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] },
          },
          tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
          volumes: [{ name: 'model', hostPath: { path: '/models/llama', type: 'Directory' } }, { name: 'shm', emptyDir: { medium: 'Memory' } }],
          terminationGracePeriodSeconds: 30,
        },
      },
    },
    status: { replicas: 3 },
  };
}

describe('slim', () => {
  it('keeps exactly what derivation reads of each pod template', () => {
    const kind = workloadKind('apps/v1', 'Deployment')!;
    const s = slim(fullDeployment(), kind);
    expect(s.metadata).toEqual({ name: 'vllm', namespace: 'ml', uid: 'u-1', resourceVersion: '42', annotations: { 'stoker.io/warm': 'true', 'stoker.io/warm-volumes': 'model' } });
    expect(s.spec).toEqual({
      replicas: 3,
      selector: { matchLabels: { app: 'vllm' } },
      template: {
        metadata: { labels: { app: 'vllm' } },
        spec: {
          initContainers: [{ name: 'fetch', image: 'reg.example/fetch:1' }],
          containers: [{ name: 'app', image: 'reg.example/app:1' }],
          imagePullSecrets: [{ name: 'pull-a' }],
          serviceAccountName: 'runner',
          nodeSelector: { gpu: 'a100' },
          affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } } },
          tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
          volumes: [{ name: 'model', hostPath: { path: '/models/llama', type: 'Directory' } }, { name: 'shm' }],
        },
      },
    });
    expect(JSON.stringify(s).length).toBeLessThan(JSON.stringify(fullDeployment()).length / 5);
  });

  it('derives the same work from the slimmed workload as from the whole one', () => {
    const kind = workloadKind('apps/v1', 'Deployment')!;
    const sa = () => ({ imagePullSecrets: [{ name: 'pull-sa' }] });
    const work = (w: Workload) => {
      const r = deriveWork(kind, w, sa);
      if (!('derivation' in r)) throw new Error(r.problem.message);
      // The templates themselves differ (slimmed); everything derived from them, its key included, does not.
      const { templates, ...rest } = r.derivation;
      return { ...rest, placement: templates.map((t) => [t.spec.nodeSelector, t.spec.affinity?.nodeAffinity, t.spec.tolerations]) };
    };
    const full = work(fullDeployment());
    expect(full.images).toEqual(['reg.example/fetch:1', 'reg.example/app:1']);
    expect(work(slim(fullDeployment(), kind))).toEqual(full);
  });

  it('slims a bare Pod, whose spec is its template', () => {
    const kind = workloadKind('v1', 'Pod')!;
    const s = slim({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'i:1', args: ['x'] }], nodeName: 'n1', restartPolicy: 'Never' } }, kind);
    expect(s.spec).toEqual({ containers: [{ name: 'c', image: 'i:1' }] });
  });
});
