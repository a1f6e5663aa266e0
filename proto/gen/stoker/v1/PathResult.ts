// Original file: proto/stoker/v1/agent.proto

import type { ItemState as _stoker_v1_ItemState, ItemState__Output as _stoker_v1_ItemState__Output } from '../../stoker/v1/ItemState.js';
import type { FileIssue as _stoker_v1_FileIssue, FileIssue__Output as _stoker_v1_FileIssue__Output } from '../../stoker/v1/FileIssue.js';
import type { Failure as _stoker_v1_Failure, Failure__Output as _stoker_v1_Failure__Output } from '../../stoker/v1/Failure.js';
import type { Long } from '@grpc/proto-loader';

export interface PathResult {
  'path'?: (string);
  'state'?: (_stoker_v1_ItemState);
  'files'?: (number | string | Long);
  'bytes'?: (number | string | Long);
  'seconds'?: (number | string);
  'residentBytesBefore'?: (number | string | Long);
  'residentBytesAfter'?: (number | string | Long);
  'issues'?: (_stoker_v1_FileIssue)[];
  'failure'?: (_stoker_v1_Failure | null);
  'warnings'?: (string)[];
}

export interface PathResult__Output {
  'path': (string);
  'state': (_stoker_v1_ItemState__Output);
  'files': (number);
  'bytes': (number);
  'seconds': (number);
  'residentBytesBefore': (number);
  'residentBytesAfter': (number);
  'issues': (_stoker_v1_FileIssue__Output)[];
  'failure': (_stoker_v1_Failure__Output | null);
  'warnings': (string)[];
}
