import { describe, expect, it } from 'vitest';
import { deriveWork, type ServiceAccountView } from './derive.js';
import { podTemplatesOf, workloadKind, type Workload } from './templates.js';

const pod = {
  initContainers: [{ name: 'fetch', image: 'reg.example/fetch:1' }],
  containers: [{ name: 'app', image: 'reg.example/app:1' }, { name: 'side', image: 'reg.example/fetch:1' }],
  imagePullSecrets: [{ name: 'pull-a' }],
  volumes: [{ name: 'model', hostPath: { path: '/models/llama' } }, { name: 'data', persistentVolumeClaim: { claimName: 'datasets' } }, { name: 'tmp', emptyDir: {} }],
};

function deploy(annotations: Record<string, string> = {}, spec: object = pod): Workload {
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'vllm', namespace: 'ml', annotations }, spec: { template: { spec } } };
}

const noSA = (): ServiceAccountView | undefined => undefined;

function derive(w: Workload, sa: (ns: string, name: string) => ServiceAccountView | undefined = noSA) {
  const kind = workloadKind(w.apiVersion ?? '', w.kind ?? '');
  if (!kind) throw new Error('unknown kind');
  return deriveWork(kind, w, sa);
}

describe('podTemplatesOf', () => {
  const spec = { containers: [{ name: 'c', image: 'x' }] };
  it.each([
    ['apps/v1', 'Deployment', { template: { spec } }, ['spec.template']],
    ['apps/v1', 'StatefulSet', { template: { spec } }, ['spec.template']],
    ['apps/v1', 'DaemonSet', { template: { spec } }, ['spec.template']],
    ['apps/v1', 'ReplicaSet', { template: { spec } }, ['spec.template']],
    ['batch/v1', 'Job', { template: { spec } }, ['spec.template']],
    ['batch/v1', 'CronJob', { jobTemplate: { spec: { template: { spec } } } }, ['spec.jobTemplate.spec.template']],
    ['v1', 'Pod', spec, ['spec']],
    ['leaderworkerset.x-k8s.io/v1', 'LeaderWorkerSet', { leaderWorkerTemplate: { leaderTemplate: { spec }, workerTemplate: { spec } } }, ['spec.leaderWorkerTemplate.leaderTemplate', 'spec.leaderWorkerTemplate.workerTemplate']],
    ['leaderworkerset.x-k8s.io/v1', 'LeaderWorkerSet', { leaderWorkerTemplate: { workerTemplate: { spec } } }, ['spec.leaderWorkerTemplate.workerTemplate']],
    ['workloads.x-k8s.io/v1alpha1', 'RoleBasedGroup', { roles: [{ name: 'prefill', template: { spec } }, { name: 'decode', template: { spec } }] }, ['spec.roles[prefill].template', 'spec.roles[decode].template']],
  ])('%s %s', (apiVersion, kind, s, want) => {
    const k = workloadKind(apiVersion, kind);
    expect(k?.kind).toBe(kind);
    expect(podTemplatesOf(k!, { spec: s }).map((t) => t.name)).toEqual(want);
  });
  it('refuses kinds it does not know, by group too', () => {
    expect(workloadKind('apps/v1', 'Widget')).toBeUndefined();
    expect(workloadKind('example.com/v1', 'Deployment')).toBeUndefined();
  });
});

describe('deriveWork', () => {
  it('takes init and regular container images once each, then warm-images', () => {
    const r = derive(deploy({ 'stoker.io/warm-images': 'reg.example/app:2, reg.example/app:1' }));
    expect('derivation' in r && r.derivation.images).toEqual(['reg.example/fetch:1', 'reg.example/app:1', 'reg.example/app:2']);
    expect('derivation' in r && r.derivation.source).toBe('Deployment/vllm');
  });

  it("adds the ServiceAccount's pull secrets, the default one when none is named", () => {
    const asked: string[] = [];
    const r = derive(deploy(), (ns, name) => {
      asked.push(`${ns}/${name}`);
      return { imagePullSecrets: [{ name: 'pull-sa' }, { name: 'pull-a' }] };
    });
    expect(asked).toEqual(['ml/default']);
    expect('derivation' in r && r.derivation.imagePullSecrets).toEqual(['pull-a', 'pull-sa']);
    derive(deploy({}, { ...pod, serviceAccountName: 'runner' }), (ns, name) => (asked.push(`${ns}/${name}`), undefined));
    expect(asked.at(-1)).toBe('ml/runner');
  });

  it('maps warm-volumes to host paths and claims, with warm-include', () => {
    const r = derive(deploy({ 'stoker.io/warm-volumes': 'model,data', 'stoker.io/warm-include': '*.safetensors, *.json' }));
    if (!('derivation' in r)) throw new Error(r.problem.message);
    expect(r.derivation.paths).toEqual([{ path: '/models/llama', include: ['*.safetensors', '*.json'], exclude: [] }]);
    expect(r.derivation.claims).toEqual([{ claimName: 'datasets', include: ['*.safetensors', '*.json'], exclude: [] }]);
  });

  it.each([
    [{ 'stoker.io/warm-volumes': 'weights' }, pod, 'VolumeNotInTemplate', 'weights', 'Deployment/vllm annotation stoker.io/warm-volumes names volume "weights", which no pod template has (volumes: data, model, tmp)'],
    [{ 'stoker.io/warm-volumes': 'tmp' }, pod, 'VolumeNotWarmable', 'tmp', 'Deployment/vllm volume "tmp" is neither a hostPath nor a persistentVolumeClaim volume: Stoker cannot warm it'],
    [{}, { containers: [{ name: 'app', image: 'Bad Image' }] }, 'InvalidImageReference', 'Bad Image', undefined],
    [{ 'stoker.io/warm-images': 'reg.example/app:v1:v2' }, pod, 'InvalidImageReference', 'reg.example/app:v1:v2', undefined],
  ])('a problem names the value: %j', (annotations, spec, reason, value, message) => {
    const r = derive(deploy(annotations, spec));
    expect('problem' in r && r.problem).toMatchObject({ reason, value });
    if ('problem' in r && message) expect(r.problem.message).toBe(message);
    if ('problem' in r) expect(r.problem.message).toContain(`"${value}"`);
  });

  it('changes its key when an image or the placement changes, not otherwise', () => {
    const key = (w: Workload) => {
      const r = derive(w);
      return 'derivation' in r ? r.derivation.key : '';
    };
    const base = key(deploy());
    expect(key(deploy())).toBe(base);
    expect(key(deploy({}, { ...pod, containers: [{ name: 'app', image: 'reg.example/app:2' }] }))).not.toBe(base);
    expect(key(deploy({}, { ...pod, nodeSelector: { pool: 'gpu' } }))).not.toBe(base);
  });
});
