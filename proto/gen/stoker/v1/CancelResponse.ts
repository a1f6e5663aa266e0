// Original file: proto/stoker/v1/agent.proto

import type { CancelOutcome as _stoker_v1_CancelOutcome, CancelOutcome__Output as _stoker_v1_CancelOutcome__Output } from '../../stoker/v1/CancelOutcome.js';

export interface CancelResponse {
  'taskId'?: (string);
  'outcome'?: (_stoker_v1_CancelOutcome);
}

export interface CancelResponse__Output {
  'taskId': (string);
  'outcome': (_stoker_v1_CancelOutcome__Output);
}
