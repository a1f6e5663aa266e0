// Original file: proto/stoker/v1/agent.proto

import type { Failure as _stoker_v1_Failure, Failure__Output as _stoker_v1_Failure__Output } from '../../stoker/v1/Failure.js';

export interface ImageUnpin {
  'image'?: (string);
  'unpinned'?: (boolean);
  'supported'?: (boolean);
  'failure'?: (_stoker_v1_Failure | null);
}

export interface ImageUnpin__Output {
  'image': (string);
  'unpinned': (boolean);
  'supported': (boolean);
  'failure': (_stoker_v1_Failure__Output | null);
}
