import { describe, expect, it } from 'vitest';
import { createLogger } from '../../proto/common/log.js';
import type { Warmup, WorkloadRef } from '../api/types.js';
import { AnnotationController, derivedName, derivedWarmup } from './annotate.js';
import { WORKLOAD_KINDS, workloadKind, type Workload } from './templates.js';

const deployment = workloadKind('apps/v1', 'Deployment')!;

/** A fake cluster: workloads and Warmups in maps, calls recorded. */
function fakeCluster(workloads: Record<string, Workload>, warmups: Record<string, Warmup> = {}) {
  const calls: string[] = [];
  const events: string[] = [];
  const controller = new AnnotationController({
    directory: {
      get: (ns: string, ref: WorkloadRef) => workloads[`${ref.kind}/${ns}/${ref.name}`],
      list: (kind) => Object.entries(workloads).filter(([k]) => k.startsWith(`${kind.kind}/`)).map(([, w]) => w),
      watched: () => WORKLOAD_KINDS.filter((k) => !k.optional),
    },
    warmups: { get: (key) => warmups[key], list: () => Object.values(warmups) },
    createWarmup: (w) => {
      calls.push(`create ${w.metadata.namespace}/${w.metadata.name}`);
      warmups[`${w.metadata.namespace}/${w.metadata.name}`] = w;
      return Promise.resolve();
    },
    deleteWarmup: (ns, name) => {
      calls.push(`delete ${ns}/${name}`);
      delete warmups[`${ns}/${name}`];
      return Promise.resolve();
    },
    events: { record: (obj, type, reason) => events.push(`${obj.kind}/${obj.metadata?.name} ${type} ${reason}`) },
    log: createLogger({ name: 'test', level: 'silent' }),
  });
  return { controller, calls, events, warmups };
}

function vllm(annotations: Record<string, string>): Workload {
  return { metadata: { name: 'vllm', namespace: 'ml', uid: 'u-1', annotations }, spec: { template: { spec: { containers: [] } } } };
}

describe('derivedWarmup', () => {
  it('is named <kind>-<name>, owned by the workload without blocking its deletion, and keeps it warm', () => {
    const w = derivedWarmup(deployment, vllm({}));
    expect(w.metadata).toEqual({
      name: 'deployment-vllm',
      namespace: 'ml',
      labels: { 'stoker.io/derived-from': 'deployment' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'vllm', uid: 'u-1', controller: false, blockOwnerDeletion: false }],
    });
    expect(w.spec).toEqual({ workloadRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'vllm' }, keepWarm: true });
  });
  it('shortens a name too long for the API, stably', () => {
    const long = derivedName('LeaderWorkerSet', 'x'.repeat(250));
    expect(long.length).toBeLessThanOrEqual(253);
    expect(derivedName('LeaderWorkerSet', 'x'.repeat(250))).toBe(long);
  });
});

describe('AnnotationController', () => {
  it('creates the Warmup for an annotated workload once, and deletes it when the annotation goes', async () => {
    const c = fakeCluster({ 'Deployment/ml/vllm': vllm({ 'stoker.io/warm': 'true' }) });
    expect(c.controller.keys()).toEqual(['deployments/ml/vllm']);
    await c.controller.sync('deployments/ml/vllm');
    await c.controller.sync('deployments/ml/vllm');
    expect(c.calls).toEqual(['create ml/deployment-vllm']);
    expect(c.events).toEqual(['Deployment/vllm Normal WarmupCreated']);

    const d = fakeCluster({ 'Deployment/ml/vllm': vllm({}) }, c.warmups);
    // The Warmup made here keeps its workload's key in a full pass, so a removal while no controller ran is seen.
    expect(d.controller.keys()).toEqual(['deployments/ml/vllm']);
    await d.controller.sync('deployments/ml/vllm');
    expect(d.calls).toEqual(['delete ml/deployment-vllm']);
    expect(d.events).toEqual(['Deployment/vllm Normal WarmupDeleted']);
  });

  it('never deletes a Warmup it did not make, and leaves one whose workload is gone to the garbage collector', async () => {
    const mine = derivedWarmup(deployment, vllm({}));
    const theirs: Warmup = { metadata: { name: 'deployment-vllm', namespace: 'ml' }, spec: { images: [{ image: 'x' }] } };
    const a = fakeCluster({ 'Deployment/ml/vllm': vllm({}) }, { 'ml/deployment-vllm': theirs });
    await a.controller.sync('deployments/ml/vllm');
    const b = fakeCluster({ 'Deployment/ml/vllm': vllm({ 'stoker.io/warm': 'true' }) }, { 'ml/deployment-vllm': theirs });
    await b.controller.sync('deployments/ml/vllm');
    const gone = fakeCluster({}, { 'ml/deployment-vllm': mine });
    await gone.controller.sync('deployments/ml/vllm');
    expect([...a.calls, ...b.calls, ...gone.calls]).toEqual([]);
  });
});
