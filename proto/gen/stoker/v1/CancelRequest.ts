// Original file: proto/stoker/v1/agent.proto


export interface CancelRequest {
  'taskId'?: (string);
  'nodeName'?: (string);
}

export interface CancelRequest__Output {
  'taskId': (string);
  'nodeName': (string);
}
