// Original file: proto/stoker/v1/agent.proto

import type { ItemState as _stoker_v1_ItemState, ItemState__Output as _stoker_v1_ItemState__Output } from '../../stoker/v1/ItemState.js';
import type { Long } from '@grpc/proto-loader';

export interface ImageProgress {
  'image'?: (string);
  'state'?: (_stoker_v1_ItemState);
  'bytesDone'?: (number | string | Long);
  'bytesTotal'?: (number | string | Long);
  'bytesKnown'?: (boolean);
  'elapsedSeconds'?: (number | string);
}

export interface ImageProgress__Output {
  'image': (string);
  'state': (_stoker_v1_ItemState__Output);
  'bytesDone': (number);
  'bytesTotal': (number);
  'bytesKnown': (boolean);
  'elapsedSeconds': (number);
}
