// A fake containerd content store for unit tests (not built into dist): blobs with sizes, times
// and labels, and images laid out as containerd 1.6 leaves them during a CRI pull (the manifest
// labelled with its repository and its children). `list` understands the two filter forms
// image-size.ts sends: `labels."KEY"` (present) and `labels."KEY"~="REGEX"`, comma-joined.
import { createHash, randomBytes } from 'node:crypto';
import type { ContentInfo, ContentStore } from '../content-service.js';

export interface FakeContentStore extends ContentStore {
  readonly blobs: Map<string, ContentInfo & { data?: Buffer }>;
  /** Filters of every list call. */
  readonly filters: string[][];
  /** How many blobs were read. */
  reads: number;
}

export function fakeDigest(): string {
  return `sha256:${createHash('sha256').update(randomBytes(16)).digest('hex')}`;
}

function matches(info: ContentInfo, filter: string): boolean {
  const terms = [...filter.matchAll(/labels\."([^"]+)"(?:~="((?:[^"\\]|\\.)*)")?/g)];
  if (terms.length === 0) throw new Error(`fake content store: filter not understood: ${filter}`);
  return terms.every(([, key, regex]) => {
    const value = info.labels[key ?? ''];
    return value !== undefined && (regex === undefined || new RegExp(regex).test(value));
  });
}

export function fakeContentStore(): FakeContentStore {
  const blobs = new Map<string, ContentInfo & { data?: Buffer }>();
  const store: FakeContentStore = {
    blobs,
    filters: [],
    reads: 0,
    info: (digest) => {
      const b = blobs.get(digest);
      return Promise.resolve(b && { digest: b.digest, size: b.size, createdAt: b.createdAt, updatedAt: b.updatedAt, labels: { ...b.labels } });
    },
    list: (filters) => {
      store.filters.push([...filters]);
      // Like containerd's List: updated_at is not filled in.
      const out = [...blobs.values()].filter((b) => filters.length === 0 || filters.some((f) => matches(b, f)));
      return Promise.resolve(out.map((b) => ({ digest: b.digest, size: b.size, createdAt: b.createdAt, updatedAt: 0, labels: { ...b.labels } })));
    },
    read: (digest, maxBytes) => {
      store.reads++;
      const data = blobs.get(digest)?.data;
      return data ? Promise.resolve(data.subarray(0, maxBytes)) : Promise.reject(new Error(`fake content store: ${digest} not found`));
    },
  };
  return store;
}

export interface FakeImageOptions {
  /** Registry host as the distribution source label names it (no port). */
  host: string;
  path: string;
  /** When the manifest was fetched (Date.now() scale). */
  createdAt: number;
  /** Layer sizes; the layers are not in the store unless listed in `present`. */
  layers: number[];
  /** Layer indexes the store holds already, committed at `presentAt`. */
  present?: number[];
  presentAt?: number;
}

/** Puts an image's manifest (and the layers named in `present`) into the store, as a pull would. */
export function fakeImage(store: FakeContentStore, o: FakeImageOptions): { manifest: string; config: string; layers: string[] } {
  const config = fakeDigest();
  const layers = o.layers.map(() => fakeDigest());
  const doc = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 300 },
    layers: o.layers.map((size, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layers[i], size })),
  };
  const data = Buffer.from(JSON.stringify(doc));
  const manifest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const labels: Record<string, string> = {
    [`containerd.io/distribution.source.${o.host}`]: o.path,
    'containerd.io/gc.ref.content.config': config,
  };
  layers.forEach((d, i) => (labels[`containerd.io/gc.ref.content.l.${i}`] = d));
  store.blobs.set(manifest, { digest: manifest, size: data.length, createdAt: o.createdAt, updatedAt: o.createdAt, labels, data });
  for (const i of o.present ?? []) {
    const at = o.presentAt ?? o.createdAt;
    const digest = layers[i] ?? '';
    store.blobs.set(digest, { digest, size: o.layers[i] ?? 0, createdAt: at, updatedAt: at, labels: { [`containerd.io/distribution.source.${o.host}`]: o.path } });
  }
  return { manifest, config, layers };
}
