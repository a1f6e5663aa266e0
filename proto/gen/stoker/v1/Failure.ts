// Original file: proto/stoker/v1/agent.proto

import type { ErrorCode as _stoker_v1_ErrorCode, ErrorCode__Output as _stoker_v1_ErrorCode__Output } from '../../stoker/v1/ErrorCode.js';
import type { Long } from '@grpc/proto-loader';

export interface Failure {
  'code'?: (_stoker_v1_ErrorCode);
  'message'?: (string);
  'needBytes'?: (number | string | Long);
}

export interface Failure__Output {
  'code': (_stoker_v1_ErrorCode__Output);
  'message': (string);
  'needBytes': (number);
}
