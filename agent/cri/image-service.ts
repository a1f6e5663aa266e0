// The CRI ImageService, thin: every call has its own deadline except PullImage, which is
// bounded by its AbortSignal (cancelled by the caller or by the progress watchdog) and never
// by a short per-call timeout, so a 27 GB pull that keeps moving is never cut off.
import type * as grpc from '@grpc/grpc-js';
import { criProto, type CriAuthConfig, type CriFilesystemUsage, type CriImage, type ImageServiceClient } from '../../proto/cri.js';
import type { ImageFsInfoResponse__Output } from '../../proto/gen/runtime/v1/ImageFsInfoResponse.js';
import type { ImageStatusResponse__Output } from '../../proto/gen/runtime/v1/ImageStatusResponse.js';
import type { ListImagesResponse__Output } from '../../proto/gen/runtime/v1/ListImagesResponse.js';
import type { PullImageResponse__Output } from '../../proto/gen/runtime/v1/PullImageResponse.js';
import type { RemoveImageResponse__Output } from '../../proto/gen/runtime/v1/RemoveImageResponse.js';
import { unary } from './call.js';
import { translateCallError } from './errors.js';

export const IMAGE_CALL_TIMEOUT_MS = 30_000;
/** RemoveImage may have to delete many snapshots. */
export const REMOVE_TIMEOUT_MS = 120_000;

export class ImageService {
  private readonly client: ImageServiceClient;

  constructor(
    target: string,
    credentials: grpc.ChannelCredentials,
    options: grpc.ChannelOptions,
    private readonly endpoint: string,
  ) {
    this.client = new (criProto().ImageService)(target, credentials, options);
  }

  /** The image if the runtime has it, else undefined. */
  async imageStatus(image: string, signal?: AbortSignal): Promise<CriImage | undefined> {
    try {
      const res = await unary<ImageStatusResponse__Output>((md, o, cb) => this.client.imageStatus({ image: { image }, verbose: false }, md, o, cb), {
        timeoutMs: IMAGE_CALL_TIMEOUT_MS,
        signal,
      });
      return res.image ?? undefined;
    } catch (err) {
      throw translateCallError(err, `asking the container runtime whether ${image} is present`, this.endpoint);
    }
  }

  async listImages(signal?: AbortSignal): Promise<CriImage[]> {
    try {
      const res = await unary<ListImagesResponse__Output>((md, o, cb) => this.client.listImages({}, md, o, cb), { timeoutMs: IMAGE_CALL_TIMEOUT_MS, signal });
      return res.images;
    } catch (err) {
      throw translateCallError(err, 'listing the container runtime\'s images', this.endpoint);
    }
  }

  /**
   * Pulls an image and returns the runtime's image reference. Raw gRPC errors are thrown as
   * they are: the caller (agent/warm/images.ts) translates them with the image's context.
   */
  async pullImage(image: string, auth: CriAuthConfig | undefined, signal: AbortSignal): Promise<string> {
    const res = await unary<PullImageResponse__Output>((md, o, cb) => this.client.pullImage({ image: { image }, ...(auth ? { auth } : {}) }, md, o, cb), { signal });
    return res.imageRef;
  }

  /** Removes an image; removing an absent image is not an error (CRI says so). */
  async removeImage(image: string, signal?: AbortSignal): Promise<void> {
    try {
      await unary<RemoveImageResponse__Output>((md, o, cb) => this.client.removeImage({ image: { image } }, md, o, cb), { timeoutMs: REMOVE_TIMEOUT_MS, signal });
    } catch (err) {
      throw translateCallError(err, `removing ${image} from the container runtime`, this.endpoint);
    }
  }

  async imageFsInfo(signal?: AbortSignal): Promise<CriFilesystemUsage[]> {
    try {
      const res = await unary<ImageFsInfoResponse__Output>((md, o, cb) => this.client.imageFsInfo({}, md, o, cb), { timeoutMs: IMAGE_CALL_TIMEOUT_MS, signal });
      return res.imageFilesystems;
    } catch (err) {
      throw translateCallError(err, 'asking the container runtime for its image filesystem', this.endpoint);
    }
  }

  close(): void {
    this.client.close();
  }
}
