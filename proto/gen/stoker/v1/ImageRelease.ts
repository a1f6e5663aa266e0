// Original file: proto/stoker/v1/agent.proto

import type { Failure as _stoker_v1_Failure, Failure__Output as _stoker_v1_Failure__Output } from '../../stoker/v1/Failure.js';
import type { Long } from '@grpc/proto-loader';

export interface ImageRelease {
  'image'?: (string);
  'removed'?: (boolean);
  'sizeBytes'?: (number | string | Long);
  'failure'?: (_stoker_v1_Failure | null);
}

export interface ImageRelease__Output {
  'image': (string);
  'removed': (boolean);
  'sizeBytes': (number);
  'failure': (_stoker_v1_Failure__Output | null);
}
