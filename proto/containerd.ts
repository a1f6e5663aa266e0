// Typed access to the subsets of containerd's services (proto/containerd/...) Stoker uses: the
// content service it reads pull progress from, and the images service it names images with.
import type { ProtoGrpcType } from './gen/content.js';
import type { ProtoGrpcType as ImagesGrpcType } from './gen/images.js';
import { loadProto } from './load.js';

export function containerdContentProto(): ProtoGrpcType['containerd']['services']['content']['v1'] {
  return loadProto<ProtoGrpcType>('containerd/services/content/v1/content.proto').containerd.services.content.v1;
}

export type { ContentClient } from './gen/containerd/services/content/v1/Content.js';
export type { Status__Output as IngestStatus } from './gen/containerd/services/content/v1/Status.js';

export function containerdImagesProto(): ImagesGrpcType['containerd']['services']['images']['v1'] {
  return loadProto<ImagesGrpcType>('containerd/services/images/v1/images.proto').containerd.services.images.v1;
}

export type { ImagesClient } from './gen/containerd/services/images/v1/Images.js';
export type { Image__Output as ContainerdImage } from './gen/containerd/services/images/v1/Image.js';
