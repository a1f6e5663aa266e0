// Original file: proto/stoker/v1/agent.proto

import type { Failure as _stoker_v1_Failure, Failure__Output as _stoker_v1_Failure__Output } from '../../stoker/v1/Failure.js';
import type { Long } from '@grpc/proto-loader';

export interface PathRelease {
  'path'?: (string);
  'files'?: (number | string | Long);
  'bytes'?: (number | string | Long);
  'residentBytesBefore'?: (number | string | Long);
  'residentBytesAfter'?: (number | string | Long);
  'failure'?: (_stoker_v1_Failure | null);
}

export interface PathRelease__Output {
  'path': (string);
  'files': (number);
  'bytes': (number);
  'residentBytesBefore': (number);
  'residentBytesAfter': (number);
  'failure': (_stoker_v1_Failure__Output | null);
}
