// Original file: proto/stoker/v1/agent.proto

import type { ImageTask as _stoker_v1_ImageTask, ImageTask__Output as _stoker_v1_ImageTask__Output } from '../../stoker/v1/ImageTask.js';
import type { PathTask as _stoker_v1_PathTask, PathTask__Output as _stoker_v1_PathTask__Output } from '../../stoker/v1/PathTask.js';
import type { RegistryCredential as _stoker_v1_RegistryCredential, RegistryCredential__Output as _stoker_v1_RegistryCredential__Output } from '../../stoker/v1/RegistryCredential.js';

export interface WarmRequest {
  'taskId'?: (string);
  'nodeName'?: (string);
  'images'?: (_stoker_v1_ImageTask)[];
  'paths'?: (_stoker_v1_PathTask)[];
  'credentials'?: (_stoker_v1_RegistryCredential)[];
  'progressTimeoutSeconds'?: (number);
  'checkOnly'?: (boolean);
  'minResidentPercent'?: (number);
  'pin'?: (boolean);
}

export interface WarmRequest__Output {
  'taskId': (string);
  'nodeName': (string);
  'images': (_stoker_v1_ImageTask__Output)[];
  'paths': (_stoker_v1_PathTask__Output)[];
  'credentials': (_stoker_v1_RegistryCredential__Output)[];
  'progressTimeoutSeconds': (number);
  'checkOnly': (boolean);
  'minResidentPercent': (number);
  'pin': (boolean);
}
