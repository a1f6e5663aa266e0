// Original file: proto/stoker/v1/agent.proto

import type { ImageProgress as _stoker_v1_ImageProgress, ImageProgress__Output as _stoker_v1_ImageProgress__Output } from '../../stoker/v1/ImageProgress.js';
import type { FileProgress as _stoker_v1_FileProgress, FileProgress__Output as _stoker_v1_FileProgress__Output } from '../../stoker/v1/FileProgress.js';
import type { WarmResult as _stoker_v1_WarmResult, WarmResult__Output as _stoker_v1_WarmResult__Output } from '../../stoker/v1/WarmResult.js';

export interface WarmEvent {
  'image'?: (_stoker_v1_ImageProgress | null);
  'file'?: (_stoker_v1_FileProgress | null);
  'result'?: (_stoker_v1_WarmResult | null);
  'event'?: "image"|"file"|"result";
}

export interface WarmEvent__Output {
  'image'?: (_stoker_v1_ImageProgress__Output | null);
  'file'?: (_stoker_v1_FileProgress__Output | null);
  'result'?: (_stoker_v1_WarmResult__Output | null);
  'event'?: "image"|"file"|"result";
}
