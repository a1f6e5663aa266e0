// Original file: proto/stoker/v1/agent.proto

import type { Long } from '@grpc/proto-loader';

export interface ImageFilesystem {
  'mountpoint'?: (string);
  'freeBytes'?: (number | string | Long);
}

export interface ImageFilesystem__Output {
  'mountpoint': (string);
  'freeBytes': (number);
}
