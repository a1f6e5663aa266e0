// Original file: proto/stoker/v1/agent.proto


export interface PathTask {
  'path'?: (string);
  'include'?: (string)[];
  'exclude'?: (string)[];
}

export interface PathTask__Output {
  'path': (string);
  'include': (string)[];
  'exclude': (string)[];
}
