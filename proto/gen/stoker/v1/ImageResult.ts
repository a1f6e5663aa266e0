// Original file: proto/stoker/v1/agent.proto

import type { ItemState as _stoker_v1_ItemState, ItemState__Output as _stoker_v1_ItemState__Output } from '../../stoker/v1/ItemState.js';
import type { Failure as _stoker_v1_Failure, Failure__Output as _stoker_v1_Failure__Output } from '../../stoker/v1/Failure.js';
import type { PinLabel as _stoker_v1_PinLabel, PinLabel__Output as _stoker_v1_PinLabel__Output } from '../../stoker/v1/PinLabel.js';
import type { Long } from '@grpc/proto-loader';

export interface ImageResult {
  'image'?: (string);
  'state'?: (_stoker_v1_ItemState);
  'imageRef'?: (string);
  'sizeBytes'?: (number | string | Long);
  'seconds'?: (number | string);
  'failure'?: (_stoker_v1_Failure | null);
  'pinned'?: (boolean);
  'repoDigest'?: (string);
  'pinLabel'?: (_stoker_v1_PinLabel);
}

export interface ImageResult__Output {
  'image': (string);
  'state': (_stoker_v1_ItemState__Output);
  'imageRef': (string);
  'sizeBytes': (number);
  'seconds': (number);
  'failure': (_stoker_v1_Failure__Output | null);
  'pinned': (boolean);
  'repoDigest': (string);
  'pinLabel': (_stoker_v1_PinLabel__Output);
}
