// Original file: proto/stoker/v1/agent.proto

import type { ImageRelease as _stoker_v1_ImageRelease, ImageRelease__Output as _stoker_v1_ImageRelease__Output } from '../../stoker/v1/ImageRelease.js';
import type { PathRelease as _stoker_v1_PathRelease, PathRelease__Output as _stoker_v1_PathRelease__Output } from '../../stoker/v1/PathRelease.js';
import type { ImageUnpin as _stoker_v1_ImageUnpin, ImageUnpin__Output as _stoker_v1_ImageUnpin__Output } from '../../stoker/v1/ImageUnpin.js';

export interface ReleaseResponse {
  'nodeName'?: (string);
  'images'?: (_stoker_v1_ImageRelease)[];
  'paths'?: (_stoker_v1_PathRelease)[];
  'unpinned'?: (_stoker_v1_ImageUnpin)[];
}

export interface ReleaseResponse__Output {
  'nodeName': (string);
  'images': (_stoker_v1_ImageRelease__Output)[];
  'paths': (_stoker_v1_PathRelease__Output)[];
  'unpinned': (_stoker_v1_ImageUnpin__Output)[];
}
