// Original file: proto/stoker/v1/agent.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { CancelRequest as _stoker_v1_CancelRequest, CancelRequest__Output as _stoker_v1_CancelRequest__Output } from '../../stoker/v1/CancelRequest.js';
import type { CancelResponse as _stoker_v1_CancelResponse, CancelResponse__Output as _stoker_v1_CancelResponse__Output } from '../../stoker/v1/CancelResponse.js';
import type { NodeStatusRequest as _stoker_v1_NodeStatusRequest, NodeStatusRequest__Output as _stoker_v1_NodeStatusRequest__Output } from '../../stoker/v1/NodeStatusRequest.js';
import type { NodeStatusResponse as _stoker_v1_NodeStatusResponse, NodeStatusResponse__Output as _stoker_v1_NodeStatusResponse__Output } from '../../stoker/v1/NodeStatusResponse.js';
import type { ReleaseRequest as _stoker_v1_ReleaseRequest, ReleaseRequest__Output as _stoker_v1_ReleaseRequest__Output } from '../../stoker/v1/ReleaseRequest.js';
import type { ReleaseResponse as _stoker_v1_ReleaseResponse, ReleaseResponse__Output as _stoker_v1_ReleaseResponse__Output } from '../../stoker/v1/ReleaseResponse.js';
import type { WarmEvent as _stoker_v1_WarmEvent, WarmEvent__Output as _stoker_v1_WarmEvent__Output } from '../../stoker/v1/WarmEvent.js';
import type { WarmRequest as _stoker_v1_WarmRequest, WarmRequest__Output as _stoker_v1_WarmRequest__Output } from '../../stoker/v1/WarmRequest.js';

export interface AgentClient extends grpc.Client {
  Cancel(argument: _stoker_v1_CancelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_CancelResponse__Output>): grpc.ClientUnaryCall;
  Cancel(argument: _stoker_v1_CancelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stoker_v1_CancelResponse__Output>): grpc.ClientUnaryCall;
  Cancel(argument: _stoker_v1_CancelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_CancelResponse__Output>): grpc.ClientUnaryCall;
  Cancel(argument: _stoker_v1_CancelRequest, callback: grpc.requestCallback<_stoker_v1_CancelResponse__Output>): grpc.ClientUnaryCall;
  cancel(argument: _stoker_v1_CancelRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_CancelResponse__Output>): grpc.ClientUnaryCall;
  cancel(argument: _stoker_v1_CancelRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stoker_v1_CancelResponse__Output>): grpc.ClientUnaryCall;
  cancel(argument: _stoker_v1_CancelRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_CancelResponse__Output>): grpc.ClientUnaryCall;
  cancel(argument: _stoker_v1_CancelRequest, callback: grpc.requestCallback<_stoker_v1_CancelResponse__Output>): grpc.ClientUnaryCall;
  
  NodeStatus(argument: _stoker_v1_NodeStatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_NodeStatusResponse__Output>): grpc.ClientUnaryCall;
  NodeStatus(argument: _stoker_v1_NodeStatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stoker_v1_NodeStatusResponse__Output>): grpc.ClientUnaryCall;
  NodeStatus(argument: _stoker_v1_NodeStatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_NodeStatusResponse__Output>): grpc.ClientUnaryCall;
  NodeStatus(argument: _stoker_v1_NodeStatusRequest, callback: grpc.requestCallback<_stoker_v1_NodeStatusResponse__Output>): grpc.ClientUnaryCall;
  nodeStatus(argument: _stoker_v1_NodeStatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_NodeStatusResponse__Output>): grpc.ClientUnaryCall;
  nodeStatus(argument: _stoker_v1_NodeStatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stoker_v1_NodeStatusResponse__Output>): grpc.ClientUnaryCall;
  nodeStatus(argument: _stoker_v1_NodeStatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_NodeStatusResponse__Output>): grpc.ClientUnaryCall;
  nodeStatus(argument: _stoker_v1_NodeStatusRequest, callback: grpc.requestCallback<_stoker_v1_NodeStatusResponse__Output>): grpc.ClientUnaryCall;
  
  Release(argument: _stoker_v1_ReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  Release(argument: _stoker_v1_ReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stoker_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  Release(argument: _stoker_v1_ReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  Release(argument: _stoker_v1_ReleaseRequest, callback: grpc.requestCallback<_stoker_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _stoker_v1_ReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _stoker_v1_ReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stoker_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _stoker_v1_ReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stoker_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  release(argument: _stoker_v1_ReleaseRequest, callback: grpc.requestCallback<_stoker_v1_ReleaseResponse__Output>): grpc.ClientUnaryCall;
  
  Warm(argument: _stoker_v1_WarmRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_stoker_v1_WarmEvent__Output>;
  Warm(argument: _stoker_v1_WarmRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_stoker_v1_WarmEvent__Output>;
  warm(argument: _stoker_v1_WarmRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_stoker_v1_WarmEvent__Output>;
  warm(argument: _stoker_v1_WarmRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_stoker_v1_WarmEvent__Output>;
  
}

export interface AgentHandlers extends grpc.UntypedServiceImplementation {
  Cancel: grpc.handleUnaryCall<_stoker_v1_CancelRequest__Output, _stoker_v1_CancelResponse>;
  
  NodeStatus: grpc.handleUnaryCall<_stoker_v1_NodeStatusRequest__Output, _stoker_v1_NodeStatusResponse>;
  
  Release: grpc.handleUnaryCall<_stoker_v1_ReleaseRequest__Output, _stoker_v1_ReleaseResponse>;
  
  Warm: grpc.handleServerStreamingCall<_stoker_v1_WarmRequest__Output, _stoker_v1_WarmEvent>;
  
}

export interface AgentDefinition extends grpc.ServiceDefinition {
  Cancel: MethodDefinition<_stoker_v1_CancelRequest, _stoker_v1_CancelResponse, _stoker_v1_CancelRequest__Output, _stoker_v1_CancelResponse__Output>
  NodeStatus: MethodDefinition<_stoker_v1_NodeStatusRequest, _stoker_v1_NodeStatusResponse, _stoker_v1_NodeStatusRequest__Output, _stoker_v1_NodeStatusResponse__Output>
  Release: MethodDefinition<_stoker_v1_ReleaseRequest, _stoker_v1_ReleaseResponse, _stoker_v1_ReleaseRequest__Output, _stoker_v1_ReleaseResponse__Output>
  Warm: MethodDefinition<_stoker_v1_WarmRequest, _stoker_v1_WarmEvent, _stoker_v1_WarmRequest__Output, _stoker_v1_WarmEvent__Output>
}
