import { describe, expect, it } from 'vitest';
import type { V1Node, V1PersistentVolume, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { kubeletMountPath, matchesNodeSelectorTerms, resolveClaims, type ClaimLookup } from './claims.js';
import { ClaimMounts, slimPod } from './claim-mounts.js';

const node = (name: string, labels: Record<string, string> = {}): V1Node => ({ metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } });
const bound = (name: string, volume: string): V1PersistentVolumeClaim => ({ metadata: { name, namespace: 'ml' }, spec: { volumeName: volume }, status: { phase: 'Bound' } });
const claim = (claimName: string, subPath?: string) => ({ claimName, ...(subPath ? { subPath } : {}), include: [], exclude: [] });

/** A fake lookup over fixed objects. */
function fakeLookup(pvcs: V1PersistentVolumeClaim[], pvs: V1PersistentVolume[], mounts = new ClaimMounts()): ClaimLookup {
  return {
    claim: (ns, name) => pvcs.find((c) => c.metadata?.namespace === ns && c.metadata?.name === name),
    volume: (name) => pvs.find((v) => v.metadata?.name === name),
    mounts: (ns, c) => mounts.mounts(ns, c),
  };
}

describe('resolveClaims', () => {
  it('names a claim that does not exist, is not bound, or is bound to a volume that does not exist', () => {
    const pending: V1PersistentVolumeClaim = { metadata: { name: 'p', namespace: 'ml' }, spec: {}, status: { phase: 'Pending' } };
    const lookup = fakeLookup([pending, bound('gone', 'pv-gone')], []);
    expect(resolveClaims([claim('x')], 'ml', lookup, '/pods')).toEqual({ problem: { reason: 'ClaimNotFound', claimName: 'x', message: 'persistentVolumeClaim "x" does not exist in namespace "ml"; warming waits for it' } });
    // Only the Warmup's namespace.
    expect(resolveClaims([claim('p')], 'other', lookup, '/pods')).toMatchObject({ problem: { reason: 'ClaimNotFound' } });
    expect(resolveClaims([claim('p')], 'ml', lookup, '/pods')).toMatchObject({ problem: { reason: 'ClaimNotBound', claimName: 'p' } });
    expect(resolveClaims([claim('gone')], 'ml', lookup, '/pods')).toMatchObject({ problem: { reason: 'ClaimNotBound', message: expect.stringContaining('"pv-gone", which does not exist') as string } });
  });

  it('refuses a subPath that leaves the volume', () => {
    const lookup = fakeLookup([bound('c', 'pv')], [{ metadata: { name: 'pv' }, spec: { hostPath: { path: '/srv' } } }]);
    expect(resolveClaims([claim('c', '../etc')], 'ml', lookup, '/pods')).toMatchObject({ problem: { reason: 'InvalidPath', claimName: 'c' } });
    expect(resolveClaims([claim('c', 'a/../../b')], 'ml', lookup, '/pods')).toMatchObject({ problem: { reason: 'InvalidPath' } });
  });

  it('reads hostPath on every node, local on the nodes of its affinity, network volumes where a running pod mounts the claim', () => {
    const mounts = new ClaimMounts();
    mounts.set(slimPod({ metadata: { name: 's-0', namespace: 'ml', uid: 'u0' }, spec: { nodeName: 'a', containers: [{ name: 'c' }], volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'net' } }] }, status: { phase: 'Running' } }));
    const lookup = fakeLookup(
      [bound('host', 'pv-host'), bound('local', 'pv-local'), bound('net', 'pv-csi')],
      [
        { metadata: { name: 'pv-host' }, spec: { hostPath: { path: '/srv/models/' } } },
        { metadata: { name: 'pv-local' }, spec: { local: { path: '/mnt/disk' }, nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['b'] }] }] } } } },
        { metadata: { name: 'pv-csi' }, spec: { csi: { driver: 'x', volumeHandle: 'h' } } },
      ],
      mounts,
    );
    const plan = resolveClaims([claim('host', 'llama'), claim('local'), claim('net', 'ds')], 'ml', lookup, '/var/lib/kubelet/pods', [{ path: '/etc/x', include: [], exclude: [] }]);
    if ('problem' in plan) throw new Error(plan.problem.message);
    expect(plan.forNode(node('a'))).toEqual({
      paths: [
        { path: '/etc/x', include: [], exclude: [] },
        { path: '/srv/models/llama', include: [], exclude: [] },
        { path: '/var/lib/kubelet/pods/u0/volumes/kubernetes.io~csi/pv-csi/mount/ds', include: [], exclude: [] },
      ],
      notes: [{ claimName: 'local', reason: 'VolumeNotOnNode' }],
    });
    expect(plan.forNode(node('b')).paths.map((x) => x.path)).toEqual(['/etc/x', '/srv/models/llama', '/mnt/disk']);
    expect(plan.forNode(node('b')).notes).toEqual([{ claimName: 'net', reason: 'VolumeNotMounted' }]);
    // The same object for the same node: runs compare node paths by identity.
    expect(plan.forNode(node('a'))).toBe(plan.forNode(node('a')));
  });
});

describe('kubeletMountPath', () => {
  it("names the kubelet's directory for NFS and CSI (and CSI-migrated types); none for unknown types", () => {
    expect(kubeletMountPath('/k', 'u', { metadata: { name: 'pv' }, spec: { nfs: { server: 's', path: '/e' } } })).toBe('/k/u/volumes/kubernetes.io~nfs/pv');
    expect(kubeletMountPath('/k', 'u', { metadata: { name: 'pv' }, spec: { csi: { driver: 'd', volumeHandle: 'h' } } })).toBe('/k/u/volumes/kubernetes.io~csi/pv/mount');
    expect(kubeletMountPath('/k', 'u', { metadata: { name: 'pv' }, spec: { awsElasticBlockStore: { volumeID: 'v' } } })).toBe('/k/u/volumes/kubernetes.io~csi/pv/mount');
    expect(kubeletMountPath('/k', 'u', { metadata: { name: 'pv' }, spec: {} })).toBeUndefined();
  });
});

describe('matchesNodeSelectorTerms', () => {
  it('holds when any term holds, each with all its requirements (labels and metadata.name)', () => {
    const n = node('gpu-1', { zone: 'a', gen: '5' });
    expect(matchesNodeSelectorTerms([{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] }, { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['gpu-1'] }] }], n)).toBe(true);
    expect(matchesNodeSelectorTerms([{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }, { key: 'gen', operator: 'Gt', values: ['5'] }] }], n)).toBe(false);
    expect(matchesNodeSelectorTerms([{ matchExpressions: [{ key: 'spot', operator: 'DoesNotExist' }, { key: 'gen', operator: 'Lt', values: ['6'] }] }], n)).toBe(true);
    // An empty term matches nothing, as in Kubernetes.
    expect(matchesNodeSelectorTerms([{}], n)).toBe(false);
  });
});

describe('ClaimMounts', () => {
  it('indexes running pods by the claims they mount, and forgets a pod that stops running or is deleted', () => {
    const m = new ClaimMounts();
    const pod = (phase: string) => slimPod({ metadata: { name: 'p', namespace: 'ml', uid: 'u' }, spec: { nodeName: 'a', containers: [{ name: 'c', image: 'big' }], volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'c1' } }, { name: 'e', emptyDir: {} }] }, status: { phase } });
    expect(pod('Running').spec?.volumes).toEqual([{ name: 'd', persistentVolumeClaim: { claimName: 'c1' } }]);
    expect(m.set(pod('Running'))).toEqual(['ml/c1']);
    expect(m.mounts('ml', 'c1')).toEqual([{ node: 'a', podUid: 'u' }]);
    expect(m.set(pod('Running'))).toEqual([]);
    expect(m.set(pod('Succeeded'))).toEqual(['ml/c1']);
    expect(m.mounts('ml', 'c1')).toEqual([]);
    m.set(pod('Running'));
    expect(m.remove(pod('Running'))).toEqual(['ml/c1']);
    expect(m.mounts('ml', 'c1')).toEqual([]);
  });
});
