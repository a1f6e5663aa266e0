// Original file: proto/stoker/v1/agent.proto

import type { ErrorCode as _stoker_v1_ErrorCode, ErrorCode__Output as _stoker_v1_ErrorCode__Output } from '../../stoker/v1/ErrorCode.js';

export interface Failure {
  'code'?: (_stoker_v1_ErrorCode);
  'message'?: (string);
}

export interface Failure__Output {
  'code': (_stoker_v1_ErrorCode__Output);
  'message': (string);
}
