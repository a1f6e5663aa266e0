import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { AgentClient as _stoker_v1_AgentClient, AgentDefinition as _stoker_v1_AgentDefinition } from './stoker/v1/Agent.js';
import type { CancelRequest as _stoker_v1_CancelRequest, CancelRequest__Output as _stoker_v1_CancelRequest__Output } from './stoker/v1/CancelRequest.js';
import type { CancelResponse as _stoker_v1_CancelResponse, CancelResponse__Output as _stoker_v1_CancelResponse__Output } from './stoker/v1/CancelResponse.js';
import type { Failure as _stoker_v1_Failure, Failure__Output as _stoker_v1_Failure__Output } from './stoker/v1/Failure.js';
import type { FileIssue as _stoker_v1_FileIssue, FileIssue__Output as _stoker_v1_FileIssue__Output } from './stoker/v1/FileIssue.js';
import type { FileProgress as _stoker_v1_FileProgress, FileProgress__Output as _stoker_v1_FileProgress__Output } from './stoker/v1/FileProgress.js';
import type { ImageFilesystem as _stoker_v1_ImageFilesystem, ImageFilesystem__Output as _stoker_v1_ImageFilesystem__Output } from './stoker/v1/ImageFilesystem.js';
import type { ImagePresence as _stoker_v1_ImagePresence, ImagePresence__Output as _stoker_v1_ImagePresence__Output } from './stoker/v1/ImagePresence.js';
import type { ImageProgress as _stoker_v1_ImageProgress, ImageProgress__Output as _stoker_v1_ImageProgress__Output } from './stoker/v1/ImageProgress.js';
import type { ImageRelease as _stoker_v1_ImageRelease, ImageRelease__Output as _stoker_v1_ImageRelease__Output } from './stoker/v1/ImageRelease.js';
import type { ImageResult as _stoker_v1_ImageResult, ImageResult__Output as _stoker_v1_ImageResult__Output } from './stoker/v1/ImageResult.js';
import type { ImageTask as _stoker_v1_ImageTask, ImageTask__Output as _stoker_v1_ImageTask__Output } from './stoker/v1/ImageTask.js';
import type { ImageUnpin as _stoker_v1_ImageUnpin, ImageUnpin__Output as _stoker_v1_ImageUnpin__Output } from './stoker/v1/ImageUnpin.js';
import type { NodeStatusRequest as _stoker_v1_NodeStatusRequest, NodeStatusRequest__Output as _stoker_v1_NodeStatusRequest__Output } from './stoker/v1/NodeStatusRequest.js';
import type { NodeStatusResponse as _stoker_v1_NodeStatusResponse, NodeStatusResponse__Output as _stoker_v1_NodeStatusResponse__Output } from './stoker/v1/NodeStatusResponse.js';
import type { PathRelease as _stoker_v1_PathRelease, PathRelease__Output as _stoker_v1_PathRelease__Output } from './stoker/v1/PathRelease.js';
import type { PathResult as _stoker_v1_PathResult, PathResult__Output as _stoker_v1_PathResult__Output } from './stoker/v1/PathResult.js';
import type { PathTask as _stoker_v1_PathTask, PathTask__Output as _stoker_v1_PathTask__Output } from './stoker/v1/PathTask.js';
import type { RegistryCredential as _stoker_v1_RegistryCredential, RegistryCredential__Output as _stoker_v1_RegistryCredential__Output } from './stoker/v1/RegistryCredential.js';
import type { ReleaseRequest as _stoker_v1_ReleaseRequest, ReleaseRequest__Output as _stoker_v1_ReleaseRequest__Output } from './stoker/v1/ReleaseRequest.js';
import type { ReleaseResponse as _stoker_v1_ReleaseResponse, ReleaseResponse__Output as _stoker_v1_ReleaseResponse__Output } from './stoker/v1/ReleaseResponse.js';
import type { WarmEvent as _stoker_v1_WarmEvent, WarmEvent__Output as _stoker_v1_WarmEvent__Output } from './stoker/v1/WarmEvent.js';
import type { WarmRequest as _stoker_v1_WarmRequest, WarmRequest__Output as _stoker_v1_WarmRequest__Output } from './stoker/v1/WarmRequest.js';
import type { WarmResult as _stoker_v1_WarmResult, WarmResult__Output as _stoker_v1_WarmResult__Output } from './stoker/v1/WarmResult.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  stoker: {
    v1: {
      Agent: SubtypeConstructor<typeof grpc.Client, _stoker_v1_AgentClient> & { service: _stoker_v1_AgentDefinition }
      CancelOutcome: EnumTypeDefinition
      CancelRequest: MessageTypeDefinition<_stoker_v1_CancelRequest, _stoker_v1_CancelRequest__Output>
      CancelResponse: MessageTypeDefinition<_stoker_v1_CancelResponse, _stoker_v1_CancelResponse__Output>
      ErrorCode: EnumTypeDefinition
      Failure: MessageTypeDefinition<_stoker_v1_Failure, _stoker_v1_Failure__Output>
      FileIssue: MessageTypeDefinition<_stoker_v1_FileIssue, _stoker_v1_FileIssue__Output>
      FileProgress: MessageTypeDefinition<_stoker_v1_FileProgress, _stoker_v1_FileProgress__Output>
      ImageFilesystem: MessageTypeDefinition<_stoker_v1_ImageFilesystem, _stoker_v1_ImageFilesystem__Output>
      ImagePresence: MessageTypeDefinition<_stoker_v1_ImagePresence, _stoker_v1_ImagePresence__Output>
      ImageProgress: MessageTypeDefinition<_stoker_v1_ImageProgress, _stoker_v1_ImageProgress__Output>
      ImageRelease: MessageTypeDefinition<_stoker_v1_ImageRelease, _stoker_v1_ImageRelease__Output>
      ImageResult: MessageTypeDefinition<_stoker_v1_ImageResult, _stoker_v1_ImageResult__Output>
      ImageTask: MessageTypeDefinition<_stoker_v1_ImageTask, _stoker_v1_ImageTask__Output>
      ImageUnpin: MessageTypeDefinition<_stoker_v1_ImageUnpin, _stoker_v1_ImageUnpin__Output>
      ItemState: EnumTypeDefinition
      NodeStatusRequest: MessageTypeDefinition<_stoker_v1_NodeStatusRequest, _stoker_v1_NodeStatusRequest__Output>
      NodeStatusResponse: MessageTypeDefinition<_stoker_v1_NodeStatusResponse, _stoker_v1_NodeStatusResponse__Output>
      PathRelease: MessageTypeDefinition<_stoker_v1_PathRelease, _stoker_v1_PathRelease__Output>
      PathResult: MessageTypeDefinition<_stoker_v1_PathResult, _stoker_v1_PathResult__Output>
      PathTask: MessageTypeDefinition<_stoker_v1_PathTask, _stoker_v1_PathTask__Output>
      PinLabel: EnumTypeDefinition
      PullPolicy: EnumTypeDefinition
      RegistryCredential: MessageTypeDefinition<_stoker_v1_RegistryCredential, _stoker_v1_RegistryCredential__Output>
      ReleaseRequest: MessageTypeDefinition<_stoker_v1_ReleaseRequest, _stoker_v1_ReleaseRequest__Output>
      ReleaseResponse: MessageTypeDefinition<_stoker_v1_ReleaseResponse, _stoker_v1_ReleaseResponse__Output>
      WarmEvent: MessageTypeDefinition<_stoker_v1_WarmEvent, _stoker_v1_WarmEvent__Output>
      WarmRequest: MessageTypeDefinition<_stoker_v1_WarmRequest, _stoker_v1_WarmRequest__Output>
      WarmResult: MessageTypeDefinition<_stoker_v1_WarmResult, _stoker_v1_WarmResult__Output>
    }
  }
}

