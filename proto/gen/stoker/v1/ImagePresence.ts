// Original file: proto/stoker/v1/agent.proto

import type { Long } from '@grpc/proto-loader';

export interface ImagePresence {
  'image'?: (string);
  'present'?: (boolean);
  'imageRef'?: (string);
  'sizeBytes'?: (number | string | Long);
}

export interface ImagePresence__Output {
  'image': (string);
  'present': (boolean);
  'imageRef': (string);
  'sizeBytes': (number);
}
