// An image's size before its layers are written, from containerd's content store. During a CRI
// pull containerd fetches the manifest first and labels it (containerd 1.6, pull handlers):
//   containerd.io/distribution.source.<registry host, no port> = <repository>[,<repository>...]
//   containerd.io/gc.ref.content.config = <config digest>, ...content.l.<i> = <layer digests>
// so a manifest of the image's repository that appeared since the pull started is the pull's own;
// it lists every layer with its size. Blobs the store held before the pull need no new space.
//
// Tags carry no label: two pulls of the same repository at once cannot be told apart, and then
// the smallest of their sizes is taken, so a pull is never refused for another image's size.
import type { ImageReference } from '../../proto/common/image-reference.js';
import type { ContentInfo, ContentStore } from './content-service.js';

const SOURCE_LABEL = 'containerd.io/distribution.source.';
const CONFIG_LABEL = 'containerd.io/gc.ref.content.config';
const INDEX_CHILD_LABEL = 'containerd.io/gc.ref.content.m.';
/** A manifest larger than this is not an image manifest Stoker reads. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** containerd and the agent share a clock; this covers the time between the pull call and the fetch. */
const CLOCK_SLACK_MS = 1_000;

export interface ImageSize {
  /** Digest of the image manifest (the platform's, for a multi-platform image). */
  manifest: string;
  /** Bytes of the manifest, its config and its layers, as the registry stores them (compressed). */
  totalBytes: number;
  /** Of those, bytes the content store did not hold before the pull: what the download adds to the disk. */
  newBytes: number;
  /** The config and layers the store did not hold before the pull: their ingests are this pull's own bytes (content-progress.ts). */
  blobs: { digest: string; size: number }[];
  /** Several recent manifests of the repository matched (two pulls of it at once): `blobs` may be another pull's. */
  ambiguous: boolean;
}

interface Descriptor {
  digest: string;
  size: number;
}

/** The registry host as containerd's distribution source label names it: no port, no brackets. */
export function sourceLabelHost(domain: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(domain);
  if (v6?.[1]) return v6[1];
  return domain.replace(/:\d+$/, '');
}

/** Whether a distribution source label's value (comma-separated repositories) names `path`. */
function namesRepository(value: string | undefined, path: string): boolean {
  return value !== undefined && value.split(',').includes(path);
}

function parseManifest(bytes: Buffer): Descriptor[] | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  const m = doc as { config?: Partial<Descriptor>; layers?: Partial<Descriptor>[] };
  if (!m.config || !Array.isArray(m.layers)) return undefined;
  const blobs = [m.config, ...m.layers];
  if (!blobs.every((b) => typeof b.digest === 'string' && typeof b.size === 'number' && b.size >= 0)) return undefined;
  return blobs as Descriptor[];
}

/**
 * The size of the image a pull that started at `since` (Date.now()) is fetching, once its manifest
 * is in the content store; undefined until then (or when the manifest cannot be read).
 */
export async function findImageSize(store: ContentStore, ref: ImageReference, since: number, signal?: AbortSignal): Promise<ImageSize | undefined> {
  const source = `${SOURCE_LABEL}${sourceLabelHost(ref.domain)}`;
  // Manifests (they name a config) of this repository. The regex only narrows what containerd
  // sends (a "." in the path matches any character; repository paths hold no other regex
  // characters, and backslashes would need the filter syntax's own escaping): the exact check follows.
  const filter = `labels."${source}"~="^(.*,)?${ref.path}(,.*)?$",labels."${CONFIG_LABEL}"`;
  let candidates = (await store.list([filter], signal)).filter((i) => namesRepository(i.labels[source], ref.path));
  if (ref.digest) {
    // By digest: that manifest, or, for an index, the platform manifest among its children.
    const pinned = await store.info(ref.digest, signal);
    if (!pinned) return undefined;
    const children = new Set(Object.entries(pinned.labels).filter(([k]) => k.startsWith(INDEX_CHILD_LABEL)).map(([, v]) => v));
    candidates = candidates.filter((c) => c.digest === ref.digest || children.has(c.digest));
  }
  // List leaves updated_at unset; Info tells when a manifest was fetched or relabelled.
  const infos = await Promise.all(candidates.map((c) => store.info(c.digest, signal)));
  const recent = infos.filter((i): i is ContentInfo => i !== undefined && Math.max(i.createdAt, i.updatedAt) >= since - CLOCK_SLACK_MS);
  const sizes = await Promise.all(recent.map((m) => sizeOf(store, m, since, signal)));
  let best: ImageSize | undefined;
  for (const s of sizes) if (s && (!best || s.newBytes < best.newBytes)) best = s;
  return best && { ...best, ambiguous: sizes.filter(Boolean).length > 1 };
}

async function sizeOf(store: ContentStore, manifest: ContentInfo, since: number, signal?: AbortSignal): Promise<ImageSize | undefined> {
  if (manifest.size > MAX_MANIFEST_BYTES) return undefined;
  const blobs = parseManifest(await store.read(manifest.digest, manifest.size, signal));
  if (!blobs) return undefined;
  const held = await Promise.all(blobs.map((b) => store.info(b.digest, signal)));
  let totalBytes = manifest.size;
  let newBytes = manifest.createdAt >= since - CLOCK_SLACK_MS ? manifest.size : 0;
  const fresh: { digest: string; size: number }[] = [];
  blobs.forEach((b, i) => {
    totalBytes += b.size;
    const info = held[i];
    // Committed before the pull: already on disk. Committed during it: its bytes are new.
    if (!info || info.createdAt >= since - CLOCK_SLACK_MS) {
      newBytes += b.size;
      fresh.push({ digest: b.digest, size: b.size });
    }
  });
  return { manifest: manifest.digest, totalBytes, newBytes, blobs: fresh, ambiguous: false };
}
