// containerd's images service (proto/containerd/services/images/v1), thin, on the CRI socket: it
// gives an image pulled by digest the tag that digest was resolved from, so that a pod naming the
// tag finds the image on every node (one digest on every node, controller/dispatch.ts), and sets
// or removes one label on an image record (spec.pin, agent/warm/pin.ts) with a field-masked Update
// that touches no other field. CRI has
// no call for this; containerd's CRI plugin sees the new name through its image events. Every
// call carries the CRI plugin's namespace "k8s.io" and its own deadline. CRI-O has no such
// service; callers only build this for containerd.
import * as grpc from '@grpc/grpc-js';
import { containerdImagesProto, type ContainerdImage, type ImagesClient } from '../../proto/containerd.js';
import type { CreateImageResponse__Output } from '../../proto/gen/containerd/services/images/v1/CreateImageResponse.js';
import type { GetImageResponse__Output } from '../../proto/gen/containerd/services/images/v1/GetImageResponse.js';
import type { UpdateImageResponse__Output } from '../../proto/gen/containerd/services/images/v1/UpdateImageResponse.js';
import { unary } from './call.js';
import { CRI_NAMESPACE } from './content-service.js';

const CALL_TIMEOUT_MS = 5_000;

function namespaced(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('containerd-namespace', CRI_NAMESPACE);
  return metadata;
}

/** Labels on containerd's image records; a fake in unit tests. */
export interface ImageLabels {
  /** The record's labels, or undefined when containerd has no record of that name. */
  labels(name: string, signal?: AbortSignal): Promise<Record<string, string> | undefined>;
  /**
   * Sets `key` to `value` on the named record, or removes it when `value` is undefined.
   * False when containerd has no record of that name.
   */
  setLabel(name: string, key: string, value: string | undefined, signal?: AbortSignal): Promise<boolean>;
}

export class ImageNames implements ImageLabels {
  private readonly client: ImagesClient;

  constructor(target: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) {
    this.client = new (containerdImagesProto().Images)(target, credentials, options);
  }

  async get(name: string, signal?: AbortSignal): Promise<ContainerdImage | undefined> {
    try {
      const res = await unary<GetImageResponse__Output>((md, o, cb) => this.client.get({ name }, md, o, cb), { timeoutMs: CALL_TIMEOUT_MS, signal, metadata: namespaced() });
      return res.image ?? undefined;
    } catch (err) {
      if ((err as { code?: unknown }).code === grpc.status.NOT_FOUND) return undefined;
      throw err;
    }
  }

  /**
   * Names the image `source` (e.g. "host/app@sha256:...") also `name` (e.g. "host/app:v1"), with
   * the same target and labels: created, or moved when `name` names another image. Throws when
   * `source` is not there.
   */
  async alias(source: string, name: string, signal?: AbortSignal): Promise<void> {
    const from = await this.get(source, signal);
    if (!from?.target) throw Object.assign(new Error(`image ${source} not found`), { code: grpc.status.NOT_FOUND });
    const current = await this.get(name, signal);
    if (current?.target?.digest === from.target.digest) return;
    const image = { name, labels: { ...from.labels }, target: from.target };
    const opts = { timeoutMs: CALL_TIMEOUT_MS, signal, metadata: namespaced() };
    if (current) {
      await unary<UpdateImageResponse__Output>((md, o, cb) => this.client.update({ image }, md, o, cb), opts);
      return;
    }
    try {
      await unary<CreateImageResponse__Output>((md, o, cb) => this.client.create({ image }, md, o, cb), opts);
    } catch (err) {
      // Created meanwhile (another task, the CRI): move it.
      if ((err as { code?: unknown }).code !== grpc.status.ALREADY_EXISTS) throw err;
      await unary<UpdateImageResponse__Output>((md, o, cb) => this.client.update({ image }, md, o, cb), opts);
    }
  }

  async labels(name: string, signal?: AbortSignal): Promise<Record<string, string> | undefined> {
    const image = await this.get(name, signal);
    return image ? { ...image.labels } : undefined;
  }

  async setLabel(name: string, key: string, value: string | undefined, signal?: AbortSignal): Promise<boolean> {
    const labels = value === undefined ? {} : { [key]: value };
    try {
      await unary<UpdateImageResponse__Output>(
        (md, o, cb) => this.client.update({ image: { name, labels }, updateMask: { paths: [`labels.${key}`] } }, md, o, cb),
        { timeoutMs: CALL_TIMEOUT_MS, signal, metadata: namespaced() },
      );
      return true;
    } catch (err) {
      if ((err as { code?: unknown }).code === grpc.status.NOT_FOUND) return false;
      throw err;
    }
  }

  close(): void {
    this.client.close();
  }
}
