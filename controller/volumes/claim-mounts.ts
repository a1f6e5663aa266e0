// Which running pods mount which PersistentVolumeClaims, and on which node: where a network
// volume (NFS, CSI) can be read through the kubelet's mount (controller/volumes/claims.ts).
//
// Fed by the pods informer (controller/main.ts), which lists only Running pods (field selector
// status.phase=Running) and keeps each one slimmed by slimPod to what this needs: its uid, node,
// and the claims its volumes name. A pod that stops running leaves the watch as a delete.
//
//   const mounts = new ClaimMounts();
//   pods.on('add', (p) => mounts.set(p));  pods.on('delete', (p) => mounts.remove(p));
//   mounts.mounts('default', 'models')   // -> [{ node: 'gpu-1', podUid: '...' }]
import type { V1Pod } from '@kubernetes/client-node';
import { objectKey } from '../k8s/informer.js';

/** A pod reduced to what claim mounts need (the rest of a pod is large and changes often). */
export function slimPod(raw: unknown): V1Pod {
  const p = raw as V1Pod;
  const volumes = (p.spec?.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [{ name: v.name, persistentVolumeClaim: { claimName: v.persistentVolumeClaim.claimName } }] : []));
  const meta = p.metadata ?? {};
  return {
    metadata: { name: meta.name, namespace: meta.namespace, uid: meta.uid, resourceVersion: meta.resourceVersion } as NonNullable<V1Pod['metadata']>,
    spec: { nodeName: p.spec?.nodeName, volumes, containers: [] } as unknown as V1Pod['spec'],
    status: { phase: p.status?.phase } as V1Pod['status'],
  } as V1Pod;
}

interface Mount {
  node: string;
  podUid: string;
}

export class ClaimMounts {
  /** "namespace/claim" -> pod key -> mount. */
  readonly #byClaim = new Map<string, Map<string, Mount>>();
  /** pod key -> the claim keys it is indexed under. */
  readonly #byPod = new Map<string, string[]>();

  /** Indexes a pod (added or updated); returns the claim keys ("namespace/claim") whose mounts changed. */
  set(pod: V1Pod): string[] {
    const key = objectKey(pod);
    const before = this.#byPod.get(key) ?? [];
    const node = pod.spec?.nodeName;
    const uid = pod.metadata?.uid;
    const running = pod.status?.phase === 'Running' && !!node && !!uid;
    const ns = pod.metadata?.namespace ?? '';
    const claims = running ? [...new Set((pod.spec?.volumes ?? []).flatMap((v) => (v.persistentVolumeClaim ? [`${ns}/${v.persistentVolumeClaim.claimName}`] : [])))] : [];
    const changed = new Set<string>();
    for (const c of before) {
      if (claims.includes(c)) continue;
      this.#byClaim.get(c)?.delete(key);
      if (this.#byClaim.get(c)?.size === 0) this.#byClaim.delete(c);
      changed.add(c);
    }
    for (const c of claims) {
      let m = this.#byClaim.get(c);
      if (!m) this.#byClaim.set(c, (m = new Map<string, Mount>()));
      const prev = m.get(key);
      if (prev?.node !== node || prev?.podUid !== uid) changed.add(c);
      m.set(key, { node: node ?? '', podUid: uid ?? '' });
    }
    if (claims.length > 0) this.#byPod.set(key, claims);
    else this.#byPod.delete(key);
    return [...changed];
  }

  /** Drops a pod (deleted, or no longer running); returns the claim keys whose mounts changed. */
  remove(pod: V1Pod): string[] {
    return this.set({ ...pod, status: { phase: 'Unknown' } });
  }

  mounts(namespace: string, claim: string): Mount[] {
    return [...(this.#byClaim.get(`${namespace}/${claim}`)?.values() ?? [])];
  }
}
