// The Agent gRPC service (proto/stoker/v1/agent.proto) and its server.
//
// Warm: validated in one place (validate.ts). A request the agent refuses as a whole (malformed,
// or meant for another node) gets one WarmResult with `failure` set (INVALID_REQUEST, WRONG_NODE)
// and then the call ends with the matching gRPC status (INVALID_ARGUMENT, FAILED_PRECONDITION) and
// the code in the `stoker-error-code` trailer: callers may look at either. An accepted request
// joins the task registry: progress events stream back (coalesced per item when the caller reads
// slowly), then exactly one WarmResult, then OK. A caller that cancels only detaches from its task.
// At shutdown every open Warm call ends with UNAVAILABLE so the caller knows to come back.
//
// Cancel: checked like Warm (task id grammar, right node), then the task registry aborts the task
// and the call waits a moment for it to end. Always OK for a well-formed request to this node:
// the response's outcome says whether a running task was stopped, had already finished, or was
// never known here.
//
// Release (a deleted Warmup: spec.pin, onDelete: Purge): checked like the others (right node,
// image grammar, paths as Warm checks them), then each image to unpin loses containerd's pin label
// (warm/pin.ts), each image to remove is removed through CRI if the runtime holds it, and the paths' files are dropped from the page cache (warm/release.ts, the same walk below
// the allowed roots). An item that fails carries its Failure; the call itself is OK.
import * as grpc from '@grpc/grpc-js';
import {
  agentProto,
  type AgentHandlers,
  type CancelOutcome__Output,
  type CancelResponse,
  type NodeStatusResponse,
  type WarmEvent,
  type WarmResult,
} from '../../proto/agent.js';
import type { Logger } from '../../proto/common/log.js';
import { STOKER_VERSION } from '../../proto/common/version.js';
import { ERROR_CODE_TRAILER, ServerError, isUnexpected, toStatus } from './errors.js';
import { runtimeReason, type AgentRuntime, type ImagePresenceInfo, type RuntimeProbe } from './runtime.js';
import { RegistryClosedError, TaskCapacityError, type CancelOutcome, type TaskRegistry, type TaskRun } from './tasks.js';
import { validateCancelRequest, validateNodeStatusRequest, validateReleaseRequest, validateWarmRequest, type ValidWarmRequest } from './validate.js';
import type { ImageRelease, ImageUnpin, PathRelease__Output, ReleaseResponse } from '../../proto/agent.js';
import { releaseFiles } from '../warm/release.js';

type ValidRelease = ReturnType<typeof validateReleaseRequest>;

/** How long a Cancel call waits for the task to end before it answers STOPPING. */
export const CANCEL_WAIT_MS = 3_000;

const CANCEL_OUTCOME: Readonly<Record<CancelOutcome, CancelOutcome__Output>> = {
  cancelled: 'CANCEL_OUTCOME_CANCELLED',
  stopping: 'CANCEL_OUTCOME_STOPPING',
  finished: 'CANCEL_OUTCOME_ALREADY_FINISHED',
  unknown: 'CANCEL_OUTCOME_UNKNOWN_TASK',
};

export interface ServiceContext {
  readonly nodeName: string;
  readonly allowedRoots: readonly string[];
  readonly tasks: TaskRegistry;
  readonly runtime: AgentRuntime;
  readonly probe: RuntimeProbe;
  readonly log: Logger;
  /** Builds the run of a validated request (warm.ts in the agent, a fake in unit tests). */
  readonly runWarm: (req: ValidWarmRequest) => TaskRun;
  /** Drops paths' files from the page cache (warm/release.ts over allowedRoots unless given). */
  readonly releaseFiles?: (paths: ValidRelease['paths'], signal: AbortSignal) => Promise<PathRelease__Output[]>;
  /** How long Cancel waits for the task to end (default CANCEL_WAIT_MS). */
  readonly cancelWaitMs?: number;
}

/** Writes WarmEvents to one call; when the caller reads slowly, keeps only the latest per item. */
class EventWriter {
  private readonly pending = new Map<string, WarmEvent>();
  private blocked = false;
  private closed = false;

  constructor(private readonly call: grpc.ServerWritableStream<unknown, WarmEvent>) {
    call.on('drain', () => this.flush());
  }

  get open(): boolean {
    return !this.closed && !this.call.cancelled;
  }

  event(event: WarmEvent): void {
    if (!this.open) return;
    const key = event.image ? `i:${event.image.image ?? ''}` : `f:${event.file?.path ?? ''}`;
    if (this.blocked) {
      this.pending.delete(key);
      this.pending.set(key, event);
      return;
    }
    this.blocked = !this.call.write(event);
  }

  private flush(): void {
    this.blocked = false;
    for (const [key, event] of this.pending) {
      this.pending.delete(key);
      if (!this.open) return;
      if (!this.call.write(event)) {
        this.blocked = true;
        return;
      }
    }
  }

  result(result: WarmResult): void {
    if (!this.open) return;
    for (const event of this.pending.values()) this.call.write(event);
    this.pending.clear();
    this.closed = true;
    this.call.write({ result });
    this.call.end();
  }

  fail(err: unknown): void {
    if (!this.open) return;
    this.closed = true;
    this.pending.clear();
    const s = toStatus(err);
    this.call.emit('error', { code: s.code, details: s.details, metadata: s.metadata });
  }
}

function refusal(taskId: string, err: ServerError): WarmResult {
  return {
    taskId,
    succeeded: false,
    images: [],
    paths: [],
    seconds: 0,
    failure: { code: err.errorCode ?? 'INVALID_REQUEST', message: err.message },
  };
}

/** Runs `fn` over items with at most `limit` at once. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export interface AgentService {
  readonly handlers: AgentHandlers;
  /** Ends every open Warm call with UNAVAILABLE. */
  drain(message: string): void;
}

export function createAgentService(ctx: ServiceContext): AgentService {
  const open = new Set<EventWriter>();

  const Warm: AgentHandlers['Warm'] = (call) => {
    const request = call.request;
    const writer = new EventWriter(call);
    let req: ValidWarmRequest;
    try {
      req = validateWarmRequest(request, ctx.nodeName);
    } catch (err) {
      if (err instanceof ServerError) {
        ctx.log.warn({ taskId: request.taskId, reason: err.message, code: err.errorCode }, 'warm request refused');
        call.write({ result: refusal(request.taskId, err) });
      } else {
        ctx.log.error({ err }, 'warm request validation failed');
      }
      writer.fail(err);
      return;
    }
    try {
      const attachment = ctx.tasks.attach(req.taskId, ctx.runWarm(req), {
        event: (e) => writer.event(e),
        result: (r) => {
          open.delete(writer);
          writer.result(r);
        },
      });
      if (attachment.kind !== 'started') ctx.log.info({ taskId: req.taskId, kind: attachment.kind }, 'warm call joined an existing task');
      if (writer.open) {
        open.add(writer);
        call.on('cancelled', () => {
          open.delete(writer);
          attachment.detach();
        });
      }
    } catch (err) {
      if (err instanceof TaskCapacityError) {
        writer.fail(new ServerError(grpc.status.RESOURCE_EXHAUSTED, `node "${ctx.nodeName}": ${err.message}; try again later`));
      } else if (err instanceof RegistryClosedError) {
        writer.fail(new ServerError(grpc.status.UNAVAILABLE, `the agent on node "${ctx.nodeName}" is shutting down`));
      } else {
        ctx.log.error({ err, taskId: req.taskId }, 'warm call failed');
        writer.fail(err);
      }
    }
  };

  const NodeStatus: AgentHandlers['NodeStatus'] = (call, callback) => {
    const answer = async (): Promise<NodeStatusResponse> => {
      const images = validateNodeStatusRequest(call.request, ctx.nodeName);
      const state = await ctx.probe.check();
      const response: NodeStatusResponse = {
        nodeName: ctx.nodeName,
        runtimeReady: state.ready,
        runtimeName: state.runtimeName,
        runtimeVersion: state.runtimeVersion,
        agentVersion: STOKER_VERSION,
        images: [],
        allowedRoots: [...ctx.allowedRoots],
        tasksInFlight: ctx.tasks.inFlight,
      };
      if (!state.ready) return response;
      const cancelled = new AbortController();
      call.on('cancelled', () => cancelled.abort());
      // The controller compares it before retrying a node that failed NO_SPACE.
      const fs = await ctx.runtime.imageFilesystem(AbortSignal.any([cancelled.signal, AbortSignal.timeout(10_000)]));
      if (fs.known) response.imageFilesystem = { mountpoint: fs.mountpoint, freeBytes: fs.freeBytes };
      if (images.length === 0) return response;
      const presence = await mapLimit(images, 8, async (image): Promise<ImagePresenceInfo> => {
        const signal = AbortSignal.any([cancelled.signal, AbortSignal.timeout(10_000)]);
        try {
          return await ctx.runtime.imageStatus(image, signal);
        } catch (err) {
          if (cancelled.signal.aborted) throw err;
          // The CRI client's errors carry a Stoker code and a sentence meant for users.
          const code = (err as { code?: unknown }).code;
          if (code === 'INVALID_REFERENCE') throw new ServerError(grpc.status.INVALID_ARGUMENT, (err as Error).message, 'INVALID_REFERENCE');
          if (code === 'RUNTIME_ERROR') {
            ctx.log.warn({ image, err: runtimeReason(err) }, 'ImageStatus failed');
            throw new ServerError(grpc.status.INTERNAL, `the container runtime at ${ctx.runtime.endpoint} failed ImageStatus for ${JSON.stringify(image)}`, 'RUNTIME_ERROR');
          }
          throw new ServerError(
            grpc.status.UNAVAILABLE,
            `the container runtime at ${ctx.runtime.endpoint} did not answer ImageStatus for ${JSON.stringify(image)}`,
            'RUNTIME_UNAVAILABLE',
          );
        }
      });
      response.images = images.map((image, i) => ({ image, ...presence[i] }));
      return response;
    };
    answer().then(
      (response) => callback(null, response),
      (err: unknown) => {
        if (isUnexpected(err)) ctx.log.error({ err }, 'NodeStatus failed');
        const s = toStatus(err);
        callback({ code: s.code, details: s.details, metadata: s.metadata });
      },
    );
  };

  const Cancel: AgentHandlers['Cancel'] = (call, callback) => {
    const answer = async (): Promise<CancelResponse> => {
      const taskId = validateCancelRequest(call.request, ctx.nodeName);
      const outcome = await ctx.tasks.cancel(taskId, ctx.cancelWaitMs ?? CANCEL_WAIT_MS);
      ctx.log.info({ taskId, outcome }, 'cancel requested');
      return { taskId, outcome: CANCEL_OUTCOME[outcome] };
    };
    answer().then(
      (response) => callback(null, response),
      (err: unknown) => {
        if (err instanceof ServerError) ctx.log.warn({ taskId: call.request.taskId, reason: err.message, code: err.errorCode }, 'cancel request refused');
        else if (isUnexpected(err)) ctx.log.error({ err }, 'Cancel failed');
        const s = toStatus(err);
        callback({ code: s.code, details: s.details, metadata: s.metadata });
      },
    );
  };

  /** Removes one image, reporting its size when the runtime held it; a failure is reported, not thrown. */
  async function releaseImage(image: string, signal: AbortSignal): Promise<ImageRelease> {
    try {
      const found = await ctx.runtime.imageStatus(image, signal);
      if (!found.present) return { image, removed: false, sizeBytes: 0 };
      await ctx.runtime.removeImage(image, signal);
      return { image, removed: true, sizeBytes: found.sizeBytes };
    } catch (err) {
      if (signal.aborted) throw err;
      ctx.log.warn({ image, err: runtimeReason(err) }, 'image not removed');
      const code = (err as { code?: unknown }).code === 'RUNTIME_ERROR' ? 'RUNTIME_ERROR' : 'RUNTIME_UNAVAILABLE';
      return { image, removed: false, sizeBytes: 0, failure: { code, message: `the container runtime at ${ctx.runtime.endpoint} did not remove ${JSON.stringify(image)}`, needBytes: 0 } };
    }
  }

  /** Removes containerd's pin label from one image; a failure is reported, not thrown. */
  async function unpinImage(image: string, signal: AbortSignal): Promise<ImageUnpin> {
    try {
      return { image, ...(await ctx.runtime.unpin(image, signal)) };
    } catch (err) {
      if (signal.aborted) throw err;
      ctx.log.warn({ image, err: runtimeReason(err) }, 'pin label not removed');
      return { image, unpinned: false, supported: true, failure: { code: 'RUNTIME_ERROR', message: `the container runtime at ${ctx.runtime.endpoint} did not remove the pin label of ${JSON.stringify(image)}`, needBytes: 0 } };
    }
  }

  const Release: AgentHandlers['Release'] = (call, callback) => {
    const answer = async (): Promise<ReleaseResponse> => {
      const req = validateReleaseRequest(call.request, ctx.nodeName);
      const cancelled = new AbortController();
      call.on('cancelled', () => cancelled.abort());
      const unpinned = await mapLimit(req.unpinImages, 4, (image) => unpinImage(image, cancelled.signal));
      const images = await mapLimit(req.images, 4, (image) => releaseImage(image, cancelled.signal));
      const drop = ctx.releaseFiles ?? ((paths, signal) => releaseFiles({ paths, allowedRoots: ctx.allowedRoots, signal }));
      const paths = req.paths.length > 0 ? await drop(req.paths, cancelled.signal) : [];
      const removed = images.filter((i) => i.removed === true);
      const dropped = paths.reduce((sum, p) => sum + droppedBytes(p), 0);
      ctx.log.info(
        { imagesUnpinned: unpinned.filter((u) => u.unpinned === true).length, imagesRemoved: removed.length, imageBytes: removed.reduce((s, i) => s + Number(i.sizeBytes ?? 0), 0), pageCacheBytesDropped: dropped },
        'released',
      );
      return { nodeName: ctx.nodeName, images, paths, unpinned };
    };
    answer().then(
      (response) => callback(null, response),
      (err: unknown) => {
        if (err instanceof ServerError) ctx.log.warn({ reason: err.message, code: err.errorCode }, 'release request refused');
        else if (isUnexpected(err)) ctx.log.error({ err }, 'Release failed');
        const s = toStatus(err);
        callback({ code: s.code, details: s.details, metadata: s.metadata });
      },
    );
  };

  return {
    handlers: { Warm, NodeStatus, Cancel, Release },
    drain(message) {
      const err = new ServerError(grpc.status.UNAVAILABLE, message);
      for (const writer of open) writer.fail(err);
      open.clear();
    },
  };
}

/** Bytes a release took out of the page cache (0 when either measure is unknown). */
export function droppedBytes(p: Pick<PathRelease__Output, 'residentBytesBefore' | 'residentBytesAfter'>): number {
  const before = Number(p.residentBytesBefore);
  const after = Number(p.residentBytesAfter);
  return before >= 0 && after >= 0 && before > after ? before - after : 0;
}

export interface GrpcServerHandle {
  readonly port: number;
  /** Stops taking calls; waits for open calls up to timeoutMs, then cuts them. */
  stop(timeoutMs: number): Promise<void>;
}

/**
 * Binds the Agent service on host:port (port 0 picks a free one) with the given credentials; each
 * call passes the interceptors first (caller.ts: only the controller).
 */
export async function startGrpcServer(
  handlers: AgentHandlers,
  credentials: grpc.ServerCredentials,
  host: string,
  port: number,
  interceptors: grpc.ServerInterceptor[] = [],
): Promise<GrpcServerHandle> {
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    interceptors,
  });
  server.addService(agentProto().Agent.service, handlers);
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, credentials, (err, p) => (err ? reject(new Error(`cannot listen for gRPC on ${address}: ${err.message}`)) : resolve(p)));
  });
  return {
    port: bound,
    stop: (timeoutMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

export { ERROR_CODE_TRAILER };
