import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { CreateImageRequest as _containerd_services_images_v1_CreateImageRequest, CreateImageRequest__Output as _containerd_services_images_v1_CreateImageRequest__Output } from './containerd/services/images/v1/CreateImageRequest.js';
import type { CreateImageResponse as _containerd_services_images_v1_CreateImageResponse, CreateImageResponse__Output as _containerd_services_images_v1_CreateImageResponse__Output } from './containerd/services/images/v1/CreateImageResponse.js';
import type { Descriptor as _containerd_services_images_v1_Descriptor, Descriptor__Output as _containerd_services_images_v1_Descriptor__Output } from './containerd/services/images/v1/Descriptor.js';
import type { GetImageRequest as _containerd_services_images_v1_GetImageRequest, GetImageRequest__Output as _containerd_services_images_v1_GetImageRequest__Output } from './containerd/services/images/v1/GetImageRequest.js';
import type { GetImageResponse as _containerd_services_images_v1_GetImageResponse, GetImageResponse__Output as _containerd_services_images_v1_GetImageResponse__Output } from './containerd/services/images/v1/GetImageResponse.js';
import type { Image as _containerd_services_images_v1_Image, Image__Output as _containerd_services_images_v1_Image__Output } from './containerd/services/images/v1/Image.js';
import type { ImagesClient as _containerd_services_images_v1_ImagesClient, ImagesDefinition as _containerd_services_images_v1_ImagesDefinition } from './containerd/services/images/v1/Images.js';
import type { UpdateImageRequest as _containerd_services_images_v1_UpdateImageRequest, UpdateImageRequest__Output as _containerd_services_images_v1_UpdateImageRequest__Output } from './containerd/services/images/v1/UpdateImageRequest.js';
import type { UpdateImageResponse as _containerd_services_images_v1_UpdateImageResponse, UpdateImageResponse__Output as _containerd_services_images_v1_UpdateImageResponse__Output } from './containerd/services/images/v1/UpdateImageResponse.js';
import type { FieldMask as _google_protobuf_FieldMask, FieldMask__Output as _google_protobuf_FieldMask__Output } from './google/protobuf/FieldMask.js';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from './google/protobuf/Timestamp.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  containerd: {
    services: {
      images: {
        v1: {
          CreateImageRequest: MessageTypeDefinition<_containerd_services_images_v1_CreateImageRequest, _containerd_services_images_v1_CreateImageRequest__Output>
          CreateImageResponse: MessageTypeDefinition<_containerd_services_images_v1_CreateImageResponse, _containerd_services_images_v1_CreateImageResponse__Output>
          Descriptor: MessageTypeDefinition<_containerd_services_images_v1_Descriptor, _containerd_services_images_v1_Descriptor__Output>
          GetImageRequest: MessageTypeDefinition<_containerd_services_images_v1_GetImageRequest, _containerd_services_images_v1_GetImageRequest__Output>
          GetImageResponse: MessageTypeDefinition<_containerd_services_images_v1_GetImageResponse, _containerd_services_images_v1_GetImageResponse__Output>
          Image: MessageTypeDefinition<_containerd_services_images_v1_Image, _containerd_services_images_v1_Image__Output>
          Images: SubtypeConstructor<typeof grpc.Client, _containerd_services_images_v1_ImagesClient> & { service: _containerd_services_images_v1_ImagesDefinition }
          UpdateImageRequest: MessageTypeDefinition<_containerd_services_images_v1_UpdateImageRequest, _containerd_services_images_v1_UpdateImageRequest__Output>
          UpdateImageResponse: MessageTypeDefinition<_containerd_services_images_v1_UpdateImageResponse, _containerd_services_images_v1_UpdateImageResponse__Output>
        }
      }
    }
  }
  google: {
    protobuf: {
      FieldMask: MessageTypeDefinition<_google_protobuf_FieldMask, _google_protobuf_FieldMask__Output>
      Timestamp: MessageTypeDefinition<_google_protobuf_Timestamp, _google_protobuf_Timestamp__Output>
    }
  }
}

