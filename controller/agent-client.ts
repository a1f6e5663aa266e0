// The controller's client for Stoker agents: one grpc-js channel per agent endpoint over mutual
// TLS (proto/stoker/v1/agent.proto). `warm` follows one Warm stream to its WarmResult, bounded by
// a deadline and an AbortSignal; `nodeStatus` and `cancel` are unary calls with their own deadline.
// Ending a Warm stream only detaches from the task; `cancel` stops it on the agent.
//
//   const pool = new AgentClientPool({ ca, cert, key });
//   const result = await pool.get('10.0.0.7:7443').warm(request, { signal, timeoutMs, onEvent });
//
// Agents come and go (nodes scale, agent pods restart on new addresses): a channel with no call in
// flight that has not been used for `idleMs` is closed when the pool is next asked for a
// connection, so the pool holds channels for the agents in use, not for every endpoint ever seen.
//
// Failures surface as AgentCallError with a stable reason (AgentUnavailable, Timeout, ...) and a
// message that never carries the request's credentials.
import * as grpc from '@grpc/grpc-js';
import {
  agentProto,
  type AgentClient,
  type CancelResponse__Output,
  type ReleaseRequest,
  type ReleaseResponse__Output,
  type NodeStatusResponse,
  type WarmEvent__Output,
  type WarmResult__Output,
} from '../proto/agent.js';
import type { WarmRequest } from '../proto/gen/stoker/v1/WarmRequest.js';
import type { NodeStatusRequest } from '../proto/gen/stoker/v1/NodeStatusRequest.js';
import type { CancelRequest } from '../proto/gen/stoker/v1/CancelRequest.js';
import type { ErrorCode__Output } from '../proto/gen/stoker/v1/ErrorCode.js';
import { ERROR_CODE_TRAILER } from '../proto/errors.js';
import type { NodeReason } from './api/reasons.js';

export interface AgentTls {
  /** PEM of the CA that signed the agents' server certificates. */
  ca: Buffer;
  /** PEM of the controller's client certificate and key. */
  cert: Buffer;
  key: Buffer;
  /** Name to check the agents' certificates against instead of the endpoint's host. */
  serverName?: string;
}

/** The failed-node reasons (controller/api/reasons.ts) a call to an agent can end with. */
export type AgentCallReason = Extract<NodeReason, 'AgentUnavailable' | 'Timeout' | 'Cancelled' | 'AgentRefused' | 'AgentError'>;

export class AgentCallError extends Error {
  constructor(
    readonly reason: AgentCallReason,
    message: string,
    readonly grpcCode?: grpc.status,
    /** The agent's ErrorCode, when it named one. */
    readonly errorCode?: ErrorCode__Output,
  ) {
    super(message);
    this.name = 'AgentCallError';
  }
}

export interface WarmOptions {
  signal: AbortSignal;
  /** Deadline of the whole stream. */
  timeoutMs: number;
  onEvent?: (event: WarmEvent__Output) => void;
}

/** What the dispatcher needs of one agent; a fake in unit tests implements this. */
export interface AgentConnection {
  warm(request: WarmRequest, opts: WarmOptions): Promise<WarmResult__Output>;
  nodeStatus(request: NodeStatusRequest, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<NodeStatusResponse>;
  /** Stops a task on the agent; the outcome says whether it was running, finished or unknown. */
  cancel(request: CancelRequest, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<CancelResponse__Output>;
  /** Removes images and drops paths from the page cache on the agent's node (spec.onDelete: Purge). */
  release?(request: ReleaseRequest, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<ReleaseResponse__Output>;
}

export interface AgentClientPoolOptions {
  /** Close a channel with no call in flight after this long unused. Default 10 minutes. */
  idleMs?: number;
  now?: () => number;
}

/** One agent's channel and how it is used. */
interface PooledChannel {
  readonly client: AgentClient;
  calls: number;
  lastUsed: number;
}

/** Channels to agents keyed by endpoint; idle ones are closed (see above), all of them on `close`. */
export class AgentClientPool {
  readonly #clients = new Map<string, PooledChannel>();
  readonly #creds: grpc.ChannelCredentials;
  readonly #options: grpc.ChannelOptions;
  readonly #idleMs: number;
  readonly #now: () => number;

  constructor(tls: AgentTls, opts: AgentClientPoolOptions = {}) {
    this.#idleMs = opts.idleMs ?? 10 * 60_000;
    this.#now = opts.now ?? Date.now;
    this.#creds = grpc.credentials.createSsl(tls.ca, tls.key, tls.cert);
    this.#options = {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 0,
      ...(tls.serverName ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {}),
    };
  }

  get(endpoint: string): AgentConnection {
    const now = this.#now();
    for (const [ep, c] of this.#clients) {
      if (ep !== endpoint && c.calls === 0 && now - c.lastUsed >= this.#idleMs) this.drop(ep);
    }
    let channel = this.#clients.get(endpoint);
    if (!channel) {
      const Agent = agentProto().Agent;
      channel = { client: new Agent(endpoint, this.#creds, this.#options), calls: 0, lastUsed: now };
      this.#clients.set(endpoint, channel);
    }
    channel.lastUsed = now;
    return new GrpcAgentConnection(channel, endpoint, this.#now);
  }

  /** Endpoints with an open channel. */
  get endpoints(): string[] {
    return [...this.#clients.keys()];
  }

  /** Closes the channel of one endpoint (an agent that moved or went away). */
  drop(endpoint: string): void {
    this.#clients.get(endpoint)?.client.close();
    this.#clients.delete(endpoint);
  }

  close(): void {
    for (const c of this.#clients.values()) c.client.close();
    this.#clients.clear();
  }
}

class GrpcAgentConnection implements AgentConnection {
  private readonly client: AgentClient;

  constructor(
    private readonly channel: PooledChannel,
    private readonly endpoint: string,
    private readonly now: () => number,
  ) {
    this.client = channel.client;
  }

  /** Counts a call in flight on the channel until the returned promise settles. */
  private track<T>(call: Promise<T>): Promise<T> {
    this.channel.calls++;
    const done = (): void => {
      this.channel.calls--;
      this.channel.lastUsed = this.now();
    };
    call.then(done, done);
    return call;
  }

  warm(request: WarmRequest, opts: WarmOptions): Promise<WarmResult__Output> {
    return this.track(this.startWarm(request, opts));
  }

  private startWarm(request: WarmRequest, opts: WarmOptions): Promise<WarmResult__Output> {
    return new Promise((resolve, reject) => {
      if (opts.signal.aborted) {
        reject(new AgentCallError('Cancelled', `warm on ${this.endpoint} cancelled before it started`));
        return;
      }
      const call = this.client.Warm(request, { deadline: new Date(Date.now() + opts.timeoutMs) });
      let result: WarmResult__Output | undefined;
      let settled = false;
      const onAbort = (): void => call.cancel();
      opts.signal.addEventListener('abort', onAbort, { once: true });
      const finish = (err?: Error): void => {
        if (settled) return;
        settled = true;
        opts.signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else if (result) resolve(result);
        else reject(new AgentCallError('AgentError', `agent at ${this.endpoint} ended the Warm stream without a result`));
      };
      call.on('data', (event: WarmEvent__Output) => {
        if (event.result) {
          result = event.result;
          // The stream ends right after its result; do not wait for the trailers.
          finish();
          return;
        }
        opts.onEvent?.(event);
      });
      call.on('error', (err: grpc.ServiceError) => {
        if (result) {
          finish();
          return;
        }
        finish(translate(err, this.endpoint, opts.signal.aborted));
      });
      call.on('end', () => finish());
    });
  }

  nodeStatus(request: NodeStatusRequest, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<NodeStatusResponse> {
    return this.track(this.startNodeStatus(request, opts));
  }

  private startNodeStatus(request: NodeStatusRequest, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<NodeStatusResponse> {
    return new Promise((resolve, reject) => {
      const call = this.client.NodeStatus(request, { deadline: new Date(Date.now() + opts.timeoutMs) }, (err, res) => {
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(translate(err, this.endpoint, opts.signal?.aborted ?? false));
        else if (res) resolve(res);
        else reject(new AgentCallError('AgentError', `agent at ${this.endpoint} sent an empty NodeStatus answer`));
      });
      const onAbort = (): void => call.cancel();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  cancel(request: CancelRequest, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<CancelResponse__Output> {
    return new Promise((resolve, reject) => {
      const call = this.client.Cancel(request, { deadline: new Date(Date.now() + opts.timeoutMs) }, (err, res) => {
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(translate(err, this.endpoint, opts.signal?.aborted ?? false));
        else if (res) resolve(res);
        else reject(new AgentCallError('AgentError', `agent at ${this.endpoint} sent an empty Cancel answer`));
      });
      const onAbort = (): void => call.cancel();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  release(request: ReleaseRequest, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<ReleaseResponse__Output> {
    return this.track(unaryRelease(this.client, this.endpoint, request, opts));
  }
}

/** Same shape as GrpcAgentConnection.release, kept out of the class body for its length. */
function unaryRelease(client: AgentClient, endpoint: string, request: ReleaseRequest, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<ReleaseResponse__Output> {
  return new Promise((resolve, reject) => {
    const call = client.Release(request, { deadline: new Date(Date.now() + opts.timeoutMs) }, (err, res) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(translate(err, endpoint, opts.signal?.aborted ?? false));
      else if (res) resolve(res);
      else reject(new AgentCallError('AgentError', `agent at ${endpoint} sent an empty Release answer`));
    });
    const onAbort = (): void => call.cancel();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Maps a gRPC error to a reason; the agent's own message is kept (it names values, never secrets). */
export function translate(err: grpc.ServiceError, endpoint: string, aborted: boolean): AgentCallError {
  const detail = err.details || err.message;
  switch (err.code) {
    case grpc.status.CANCELLED:
      return new AgentCallError(aborted ? 'Cancelled' : 'AgentUnavailable', aborted ? `call to agent at ${endpoint} cancelled` : `agent at ${endpoint} cancelled the call: ${detail}`, err.code);
    case grpc.status.DEADLINE_EXCEEDED:
      return new AgentCallError('Timeout', `agent at ${endpoint} did not finish before the deadline`, err.code);
    case grpc.status.UNAVAILABLE:
      return new AgentCallError('AgentUnavailable', `agent at ${endpoint} is unavailable: ${detail}`, err.code);
    case grpc.status.INVALID_ARGUMENT:
    case grpc.status.FAILED_PRECONDITION:
    case grpc.status.PERMISSION_DENIED:
    case grpc.status.UNAUTHENTICATED: {
      const named = err.metadata?.get(ERROR_CODE_TRAILER)[0];
      const code = typeof named === 'string' && named ? (named as ErrorCode__Output) : undefined;
      return new AgentCallError('AgentRefused', `agent at ${endpoint} refused the request: ${detail}`, err.code, code);
    }
    default:
      return new AgentCallError('AgentError', `agent at ${endpoint} failed: ${detail}`, err.code);
  }
}
