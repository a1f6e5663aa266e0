// spec.pin on containerd: the CRI plugin's image label "io.cri-containerd.pinned=pinned", set and
// removed through containerd's images API (agent/cri/image-names.ts). containerd 1.7 on reports a
// labelled image as CRI Image.pinned and the kubelet's image garbage collection leaves it; before
// 1.7 the label is kept but nothing honours it, which CRI's `pinned` (read again after labelling)
// shows. The CRI plugin keeps one containerd record per tag, per repo digest and per image id, so
// each of them is labelled (and unlabelled), whichever name a later reader goes by.
//
//   const outcome = await pinImage(runtime, 'reg.io/app:1', true, signal);   // { label, pinned }
//   await pinImage(runtime, 'reg.io/app:1', false, signal);                  // the label is removed
import type { PinLabel__Output } from '../../proto/agent.js';
import type { CriImage } from '../../proto/cri.js';
import type { ImageLabels } from '../cri/image-names.js';

export const PIN_LABEL_KEY = 'io.cri-containerd.pinned';
export const PIN_LABEL_VALUE = 'pinned';

/** What pinImage needs of the runtime: CRI ImageStatus and, on containerd, image labels. */
export interface PinRuntime {
  readonly labels: ImageLabels | undefined;
  imageStatus(image: string, signal?: AbortSignal): Promise<CriImage | undefined>;
}

export interface PinOutcome {
  /** SET (pin) or the label gone (unpin); UNSUPPORTED when the runtime has no image labels. */
  label: PinLabel__Output;
  /** CRI Image.pinned after the change; false when the image is absent. */
  pinned: boolean;
  /** Whether the image was present. */
  present: boolean;
  /** Records whose label changed. */
  changed: number;
}

/** containerd's names for one CRI image: its tags, repo digests and id, each once. */
export function recordNames(image: CriImage): string[] {
  return [...new Set([...image.repoTags, ...image.repoDigests, image.id].filter((n) => n !== ''))];
}

/**
 * Sets (`pin` true) or removes containerd's pin label on every record of `image`. Throws what the
 * images API threw; the caller reports it as PIN_LABEL_FAILED.
 */
export async function pinImage(runtime: PinRuntime, image: string, pin: boolean, signal?: AbortSignal): Promise<PinOutcome> {
  const status = await runtime.imageStatus(image, signal);
  if (!status) return { label: 'PIN_LABEL_UNSPECIFIED', pinned: false, present: false, changed: 0 };
  if (!runtime.labels) return { label: 'PIN_LABEL_UNSUPPORTED', pinned: status.pinned, present: true, changed: 0 };
  let changed = 0;
  for (const name of recordNames(status)) {
    const labels = await runtime.labels.labels(name, signal);
    if (!labels) continue;
    const has = labels[PIN_LABEL_KEY] === PIN_LABEL_VALUE;
    if (has === pin && (pin || labels[PIN_LABEL_KEY] === undefined)) continue;
    if (await runtime.labels.setLabel(name, PIN_LABEL_KEY, pin ? PIN_LABEL_VALUE : undefined, signal)) changed++;
  }
  const after = await runtime.imageStatus(image, signal);
  return { label: pin ? 'PIN_LABEL_SET' : 'PIN_LABEL_UNSPECIFIED', pinned: after?.pinned === true, present: after !== undefined, changed };
}
