// Original file: proto/stoker/v1/agent.proto


export interface NodeStatusRequest {
  'nodeName'?: (string);
  'images'?: (string)[];
}

export interface NodeStatusRequest__Output {
  'nodeName': (string);
  'images': (string)[];
}
