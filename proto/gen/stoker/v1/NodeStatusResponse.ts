// Original file: proto/stoker/v1/agent.proto

import type { ImagePresence as _stoker_v1_ImagePresence, ImagePresence__Output as _stoker_v1_ImagePresence__Output } from '../../stoker/v1/ImagePresence.js';
import type { ImageFilesystem as _stoker_v1_ImageFilesystem, ImageFilesystem__Output as _stoker_v1_ImageFilesystem__Output } from '../../stoker/v1/ImageFilesystem.js';

export interface NodeStatusResponse {
  'nodeName'?: (string);
  'runtimeReady'?: (boolean);
  'runtimeName'?: (string);
  'runtimeVersion'?: (string);
  'agentVersion'?: (string);
  'images'?: (_stoker_v1_ImagePresence)[];
  'allowedRoots'?: (string)[];
  'tasksInFlight'?: (number);
  'imageFilesystem'?: (_stoker_v1_ImageFilesystem | null);
}

export interface NodeStatusResponse__Output {
  'nodeName': (string);
  'runtimeReady': (boolean);
  'runtimeName': (string);
  'runtimeVersion': (string);
  'agentVersion': (string);
  'images': (_stoker_v1_ImagePresence__Output)[];
  'allowedRoots': (string)[];
  'tasksInFlight': (number);
  'imageFilesystem': (_stoker_v1_ImageFilesystem__Output | null);
}
