// Typed access to the subset of containerd's content service (proto/containerd/...) that
// Stoker reads pull progress from.
import type { ProtoGrpcType } from './gen/content.js';
import { loadProto } from './load.js';

export function containerdContentProto(): ProtoGrpcType['containerd']['services']['content']['v1'] {
  return loadProto<ProtoGrpcType>('containerd/services/content/v1/content.proto').containerd.services.content.v1;
}

export type { ContentClient } from './gen/containerd/services/content/v1/Content.js';
export type { Status__Output as IngestStatus } from './gen/containerd/services/content/v1/Status.js';
