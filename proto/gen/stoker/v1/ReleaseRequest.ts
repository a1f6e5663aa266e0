// Original file: proto/stoker/v1/agent.proto

import type { PathTask as _stoker_v1_PathTask, PathTask__Output as _stoker_v1_PathTask__Output } from '../../stoker/v1/PathTask.js';

export interface ReleaseRequest {
  'nodeName'?: (string);
  'images'?: (string)[];
  'paths'?: (_stoker_v1_PathTask)[];
  'unpinImages'?: (string)[];
}

export interface ReleaseRequest__Output {
  'nodeName': (string);
  'images': (string)[];
  'paths': (_stoker_v1_PathTask__Output)[];
  'unpinImages': (string)[];
}
