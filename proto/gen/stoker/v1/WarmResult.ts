// Original file: proto/stoker/v1/agent.proto

import type { ImageResult as _stoker_v1_ImageResult, ImageResult__Output as _stoker_v1_ImageResult__Output } from '../../stoker/v1/ImageResult.js';
import type { PathResult as _stoker_v1_PathResult, PathResult__Output as _stoker_v1_PathResult__Output } from '../../stoker/v1/PathResult.js';
import type { Failure as _stoker_v1_Failure, Failure__Output as _stoker_v1_Failure__Output } from '../../stoker/v1/Failure.js';

export interface WarmResult {
  'taskId'?: (string);
  'succeeded'?: (boolean);
  'images'?: (_stoker_v1_ImageResult)[];
  'paths'?: (_stoker_v1_PathResult)[];
  'failure'?: (_stoker_v1_Failure | null);
  'seconds'?: (number | string);
}

export interface WarmResult__Output {
  'taskId': (string);
  'succeeded': (boolean);
  'images': (_stoker_v1_ImageResult__Output)[];
  'paths': (_stoker_v1_PathResult__Output)[];
  'failure': (_stoker_v1_Failure__Output | null);
  'seconds': (number);
}
