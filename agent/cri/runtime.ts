// A connection to one container runtime over its CRI socket: the image service, the runtime's
// name and version (asked once at connect, which proves the socket answers), the image
// filesystem's free space, and, where the runtime is containerd, its content service on the same
// socket (byte progress of pulls, an image's size from its manifest) and its images service (a
// second name for an image pulled by digest; the pin label, spec.pin).
import * as grpc from '@grpc/grpc-js';
import type { CriAuthConfig, CriFilesystemUsage, CriImage, CriVersion } from '../../proto/cri.js';
import { PullProgressTracker } from './content-progress.js';
import { ContentService, type ContentStore } from './content-service.js';
import type { CriEndpoint } from './endpoint.js';
import { imageFilesystemSpace, type ImageFilesystemSpace } from './image-fs.js';
import { ImageNames, type ImageLabels } from './image-names.js';
import { ImageService } from './image-service.js';
import { RuntimeService } from './runtime-service.js';

/** Pulls move large messages rarely; image lists on busy nodes can be large. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = Object.freeze({
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
  // Reconnect quickly after a runtime restart.
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 5_000,
});

export interface CriRuntime {
  readonly endpoint: CriEndpoint;
  readonly version: CriVersion;
  /** Byte progress of pulls; undefined where the runtime is not containerd. */
  readonly progress: PullProgressTracker | undefined;
  /** containerd's content store (manifests, blob sizes); undefined where the runtime is not containerd. */
  readonly content: ContentStore | undefined;
  /** containerd's image records' labels (the pin label); undefined where the runtime is not containerd. */
  readonly labels: ImageLabels | undefined;
  imageStatus(image: string, signal?: AbortSignal): Promise<CriImage | undefined>;
  /**
   * Names the image `source` (a digest reference) also `name` (the tag it was resolved from);
   * undefined where the runtime is not containerd (CRI has no such call).
   */
  readonly aliasImage: ((source: string, name: string, signal?: AbortSignal) => Promise<void>) | undefined;
  listImages(signal?: AbortSignal): Promise<CriImage[]>;
  /** Bounded only by `signal`; raw gRPC errors are thrown for the caller to translate. */
  pullImage(image: string, auth: CriAuthConfig | undefined, signal: AbortSignal): Promise<string>;
  removeImage(image: string, signal?: AbortSignal): Promise<void>;
  imageFsInfo(signal?: AbortSignal): Promise<CriFilesystemUsage[]>;
  /** The image filesystem's mount point and free bytes (ImageFsInfo + statfs); never throws. */
  imageFilesystem(signal?: AbortSignal): Promise<ImageFilesystemSpace>;
  close(): void;
}

export interface ConnectOptions {
  signal?: AbortSignal;
  versionTimeoutMs?: number;
  /** How often to list containerd's ingests while pulls run. */
  progressIntervalMs?: number;
  onProgressError?: (err: unknown) => void;
}

/** Connects and asks the runtime's version; throws a WarmError (RUNTIME_UNAVAILABLE names the endpoint). */
export async function connectRuntime(endpoint: CriEndpoint, opts: ConnectOptions = {}): Promise<CriRuntime> {
  const credentials = grpc.credentials.createInsecure();
  const runtimeService = new RuntimeService(endpoint.target, credentials, CHANNEL_OPTIONS, endpoint.display);
  let version: CriVersion;
  try {
    version = await runtimeService.version({
      ...(opts.versionTimeoutMs !== undefined ? { timeoutMs: opts.versionTimeoutMs } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    runtimeService.close();
    throw err;
  }
  const images = new ImageService(endpoint.target, credentials, CHANNEL_OPTIONS, endpoint.display);
  // containerd's own services, made on first use: their .proto files cost a run that finds
  // everything present (Version and ImageStatus only) about a third of its gRPC set-up.
  const isContainerd = version.runtimeName === 'containerd';
  let content: ContentService | undefined;
  let progress: PullProgressTracker | undefined;
  let names: ImageNames | undefined;
  const contentService = (): ContentService => (content ??= new ContentService(endpoint.target, credentials, CHANNEL_OPTIONS));
  const imageNames = (): ImageNames => (names ??= new ImageNames(endpoint.target, credentials, CHANNEL_OPTIONS));
  return {
    endpoint,
    version,
    get progress() {
      if (!isContainerd) return undefined;
      return (progress ??= new PullProgressTracker((signal?: AbortSignal) => contentService().listIngests(signal), {
        ...(opts.progressIntervalMs !== undefined ? { intervalMs: opts.progressIntervalMs } : {}),
        ...(opts.onProgressError ? { onError: opts.onProgressError } : {}),
      }));
    },
    get content() {
      return isContainerd ? contentService() : undefined;
    },
    get labels() {
      return isContainerd ? imageNames() : undefined;
    },
    imageStatus: (image, signal) => images.imageStatus(image, signal),
    aliasImage: isContainerd ? (source, name, signal) => imageNames().alias(source, name, signal) : undefined,
    listImages: (signal) => images.listImages(signal),
    pullImage: (image, auth, signal) => images.pullImage(image, auth, signal),
    removeImage: (image, signal) => images.removeImage(image, signal),
    imageFsInfo: (signal) => images.imageFsInfo(signal),
    imageFilesystem: (signal) => imageFilesystemSpace((s) => images.imageFsInfo(s), signal),
    close: () => {
      progress?.close();
      content?.close();
      names?.close();
      images.close();
      runtimeService.close();
    },
  };
}
