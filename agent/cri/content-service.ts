// containerd's content service (proto/containerd/services/content/v1), thin, on the CRI socket:
// the active ingests (byte progress of pulls, content-progress.ts) and committed blobs (an image's
// manifest and layer sizes, image-size.ts). Every call carries the CRI plugin's namespace "k8s.io"
// and its own deadline. CRI-O has no such service; callers only build this for containerd.
import * as grpc from '@grpc/grpc-js';
import { containerdContentProto, type ContentClient } from '../../proto/containerd.js';
import type { Info__Output } from '../../proto/gen/containerd/services/content/v1/Info.js';
import type { InfoResponse__Output } from '../../proto/gen/containerd/services/content/v1/InfoResponse.js';
import type { ListContentResponse__Output } from '../../proto/gen/containerd/services/content/v1/ListContentResponse.js';
import type { ListStatusesResponse__Output } from '../../proto/gen/containerd/services/content/v1/ListStatusesResponse.js';
import type { ReadContentResponse__Output } from '../../proto/gen/containerd/services/content/v1/ReadContentResponse.js';
import type { Timestamp__Output } from '../../proto/gen/google/protobuf/Timestamp.js';
import { unary } from './call.js';

export const CRI_NAMESPACE = 'k8s.io';
const CALL_TIMEOUT_MS = 5_000;

export interface Ingest {
  ref: string;
  offset: number;
  total: number;
}

/** A committed blob. */
export interface ContentInfo {
  digest: string;
  size: number;
  /** Milliseconds since the epoch (0 when containerd did not say). */
  createdAt: number;
  updatedAt: number;
  labels: Record<string, string>;
}

/** What image-size.ts reads from the content store; a fake in unit tests. */
export interface ContentStore {
  /** The blob, or undefined when the store does not hold it (committed). */
  info(digest: string, signal?: AbortSignal): Promise<ContentInfo | undefined>;
  /** Blobs matching any of the filters (containerd's filter syntax). */
  list(filters: readonly string[], signal?: AbortSignal): Promise<ContentInfo[]>;
  /** The first `maxBytes` of a blob (a manifest is small; the caller refuses larger ones). */
  read(digest: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer>;
}

function millis(t: Timestamp__Output | null): number {
  return t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
}

function toInfo(i: Info__Output): ContentInfo {
  return { digest: i.digest, size: Number(i.size), createdAt: millis(i.createdAt), updatedAt: millis(i.updatedAt), labels: { ...i.labels } };
}

function namespaced(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('containerd-namespace', CRI_NAMESPACE);
  return metadata;
}

/** Collects a server stream's messages, with a deadline and cancellation. */
function collect<T>(start: (metadata: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientReadableStream<T>, signal?: AbortSignal): Promise<T[]> {
  return new Promise<T[]>((resolve, reject) => {
    if (signal?.aborted) {
      reject(Object.assign(new Error('1 CANCELLED: call cancelled by the caller'), { code: grpc.status.CANCELLED, details: 'call cancelled by the caller' }));
      return;
    }
    const call = start(namespaced(), { deadline: new Date(Date.now() + CALL_TIMEOUT_MS) });
    const onAbort = (): void => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    const out: T[] = [];
    call.on('data', (m: T) => out.push(m));
    call.on('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    call.on('end', () => {
      signal?.removeEventListener('abort', onAbort);
      resolve(out);
    });
  });
}

export class ContentService implements ContentStore {
  private readonly client: ContentClient;

  constructor(target: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) {
    this.client = new (containerdContentProto().Content)(target, credentials, options);
  }

  async listIngests(signal?: AbortSignal): Promise<Ingest[]> {
    const res = await unary<ListStatusesResponse__Output>((md, o, cb) => this.client.listStatuses({ filters: [] }, md, o, cb), {
      timeoutMs: CALL_TIMEOUT_MS,
      signal,
      metadata: namespaced(),
    });
    return res.statuses.map((s) => ({ ref: s.ref, offset: s.offset, total: s.total }));
  }

  async info(digest: string, signal?: AbortSignal): Promise<ContentInfo | undefined> {
    try {
      const res = await unary<InfoResponse__Output>((md, o, cb) => this.client.info({ digest }, md, o, cb), { timeoutMs: CALL_TIMEOUT_MS, signal, metadata: namespaced() });
      return res.info ? toInfo(res.info) : undefined;
    } catch (err) {
      if ((err as { code?: unknown }).code === grpc.status.NOT_FOUND) return undefined;
      throw err;
    }
  }

  async list(filters: readonly string[], signal?: AbortSignal): Promise<ContentInfo[]> {
    const pages = await collect<ListContentResponse__Output>((md, o) => this.client.list({ filters: [...filters] }, md, o), signal);
    return pages.flatMap((p) => p.info.map(toInfo));
  }

  async read(digest: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
    const chunks = await collect<ReadContentResponse__Output>((md, o) => this.client.read({ digest, offset: 0, size: maxBytes }, md, o), signal);
    return Buffer.concat(chunks.map((c) => c.data));
  }

  close(): void {
    this.client.close();
  }
}
