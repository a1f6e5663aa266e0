// Original file: proto/stoker/v1/agent.proto

import type { PullPolicy as _stoker_v1_PullPolicy, PullPolicy__Output as _stoker_v1_PullPolicy__Output } from '../../stoker/v1/PullPolicy.js';

export interface ImageTask {
  'image'?: (string);
  'pullPolicy'?: (_stoker_v1_PullPolicy);
  'tag'?: (string);
}

export interface ImageTask__Output {
  'image': (string);
  'pullPolicy': (_stoker_v1_PullPolicy__Output);
  'tag': (string);
}
