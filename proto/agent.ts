// Typed access to Stoker's own API (proto/stoker/v1/agent.proto).
import type { ProtoGrpcType } from './gen/agent.js';
import { loadProto } from './load.js';

export function agentProto(): ProtoGrpcType['stoker']['v1'] {
  return loadProto<ProtoGrpcType>('stoker/v1/agent.proto').stoker.v1;
}

export type { WarmRequest__Output as WarmRequest } from './gen/stoker/v1/WarmRequest.js';
export type { WarmEvent, WarmEvent__Output } from './gen/stoker/v1/WarmEvent.js';
export type { WarmResult, WarmResult__Output } from './gen/stoker/v1/WarmResult.js';
export type { ImageResult, ImageResult__Output } from './gen/stoker/v1/ImageResult.js';
export type { PathResult, PathResult__Output } from './gen/stoker/v1/PathResult.js';
export type { ImageProgress, ImageProgress__Output } from './gen/stoker/v1/ImageProgress.js';
export type { FileProgress, FileProgress__Output } from './gen/stoker/v1/FileProgress.js';
export type { ErrorCode, ErrorCode__Output } from './gen/stoker/v1/ErrorCode.js';
export type { ItemState, ItemState__Output } from './gen/stoker/v1/ItemState.js';
export type { PullPolicy, PullPolicy__Output } from './gen/stoker/v1/PullPolicy.js';
export type { RegistryCredential, RegistryCredential__Output } from './gen/stoker/v1/RegistryCredential.js';
export type { NodeStatusRequest__Output as NodeStatusRequest } from './gen/stoker/v1/NodeStatusRequest.js';
export type { NodeStatusResponse } from './gen/stoker/v1/NodeStatusResponse.js';
export type { CancelRequest__Output as CancelRequest } from './gen/stoker/v1/CancelRequest.js';
export type { CancelResponse, CancelResponse__Output } from './gen/stoker/v1/CancelResponse.js';
export type { CancelOutcome, CancelOutcome__Output } from './gen/stoker/v1/CancelOutcome.js';
export type { ReleaseRequest } from './gen/stoker/v1/ReleaseRequest.js';
export type { ReleaseResponse, ReleaseResponse__Output } from './gen/stoker/v1/ReleaseResponse.js';
export type { ImageRelease, ImageRelease__Output } from './gen/stoker/v1/ImageRelease.js';
export type { ImageUnpin, ImageUnpin__Output } from './gen/stoker/v1/ImageUnpin.js';
export type { PinLabel, PinLabel__Output } from './gen/stoker/v1/PinLabel.js';
export type { PathRelease, PathRelease__Output } from './gen/stoker/v1/PathRelease.js';
export type { AgentClient } from './gen/stoker/v1/Agent.js';
export type { AgentHandlers } from './gen/stoker/v1/Agent.js';
