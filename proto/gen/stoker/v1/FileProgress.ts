// Original file: proto/stoker/v1/agent.proto

import type { ItemState as _stoker_v1_ItemState, ItemState__Output as _stoker_v1_ItemState__Output } from '../../stoker/v1/ItemState.js';
import type { Long } from '@grpc/proto-loader';

export interface FileProgress {
  'path'?: (string);
  'state'?: (_stoker_v1_ItemState);
  'filesDone'?: (number | string | Long);
  'filesTotal'?: (number | string | Long);
  'bytesDone'?: (number | string | Long);
  'bytesTotal'?: (number | string | Long);
  'elapsedSeconds'?: (number | string);
}

export interface FileProgress__Output {
  'path': (string);
  'state': (_stoker_v1_ItemState__Output);
  'filesDone': (number);
  'filesTotal': (number);
  'bytesDone': (number);
  'bytesTotal': (number);
  'elapsedSeconds': (number);
}
