// Typed access to the Container Runtime Interface subset (proto/runtime/v1/api.proto).
import type { ProtoGrpcType } from './gen/api.js';
import { loadProto } from './load.js';

export function criProto(): ProtoGrpcType['runtime']['v1'] {
  return loadProto<ProtoGrpcType>('runtime/v1/api.proto').runtime.v1;
}

export type { RuntimeServiceClient } from './gen/runtime/v1/RuntimeService.js';
export type { ImageServiceClient } from './gen/runtime/v1/ImageService.js';
export type { VersionResponse__Output as CriVersion } from './gen/runtime/v1/VersionResponse.js';
export type { Image__Output as CriImage } from './gen/runtime/v1/Image.js';
export type { AuthConfig as CriAuthConfig } from './gen/runtime/v1/AuthConfig.js';
export type { ImageSpec as CriImageSpec } from './gen/runtime/v1/ImageSpec.js';
export type { FilesystemUsage__Output as CriFilesystemUsage } from './gen/runtime/v1/FilesystemUsage.js';
