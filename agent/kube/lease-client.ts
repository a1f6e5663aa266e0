// A small coordination.k8s.io/v1 Lease client over node:https: get, create, replace (an update
// that carries the resourceVersion it read, so a concurrent change fails with 409) and delete.
// Everything the agent says to the API server goes through here.
//
//   const leases = leaseClient(loadKubeconfig(path));
//   const lease = await leases.get('stoker-system', 'stoker-agent-node-1');   // undefined: 404
//   await leases.replace('stoker-system', 'stoker-agent-node-1', { ...lease, spec: { ...lease.spec, renewTime } });
//   leases.close();
//
// A refusal is a KubeApiError with the HTTP status as `code` and the API's Status reason and
// message: `update Lease stoker-system/stoker-agent-node-1: HTTP 409 Conflict: Operation cannot
// be fulfilled ...`. Every call has its own deadline and takes an AbortSignal. Credentials never
// appear in an error.
import http from 'node:http';
import https from 'node:https';
import { STOKER_VERSION } from '../../proto/common/version.js';
import type { ApiServerConfig } from './kubeconfig.js';

/** coordination.k8s.io/v1 Lease, the fields Stoker reads and writes (others are kept as they come). */
export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: LeaseSpec;
}

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  /** MicroTime, e.g. "2026-01-02T03:04:05.678000Z". */
  acquireTime?: string;
  /** MicroTime, e.g. "2026-01-02T03:04:05.678000Z". */
  renewTime?: string;
  leaseTransitions?: number;
}

/** The API server refused a request: `code` is the HTTP status, `reason` the Status reason (e.g. "Conflict"). */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    message: string,
    readonly code: number,
    readonly reason: string | undefined,
  ) {
    super(message);
  }
}

/** The calls, as plain functions (they may be passed around unbound). */
export interface LeaseClient {
  /** The Lease, or undefined when it does not exist. */
  readonly get: (namespace: string, name: string, signal?: AbortSignal) => Promise<Lease | undefined>;
  readonly create: (namespace: string, lease: Lease, signal?: AbortSignal) => Promise<Lease>;
  /** PUT: lease.metadata.resourceVersion must be the one read, or the server answers 409 Conflict. */
  readonly replace: (namespace: string, name: string, lease: Lease, signal?: AbortSignal) => Promise<Lease>;
  /** Deleting a Lease that does not exist is not an error. */
  readonly delete: (namespace: string, name: string, signal?: AbortSignal) => Promise<void>;
  /** Closes idle connections. */
  readonly close: () => void;
}

export interface LeaseClientOptions {
  /** Deadline of each call (default 10 s). */
  timeoutMs?: number;
}

/** Responses larger than this are refused (a Lease is a few hundred bytes). */
const MAX_RESPONSE_BYTES = 1 << 20;

/** Matches MicroTime on the wire: six fractional digits, UTC. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** "Conflict" from a Status body, or the HTTP status text. */
function describeRefusal(status: number, body: string): { reason: string | undefined; text: string } {
  let reason: string | undefined;
  let message: string | undefined;
  try {
    const s = JSON.parse(body) as { kind?: unknown; reason?: unknown; message?: unknown };
    if (s.kind === 'Status') {
      if (typeof s.reason === 'string' && s.reason !== '') reason = s.reason;
      if (typeof s.message === 'string' && s.message !== '') message = s.message;
    }
  } catch {
    // not a Status object: fall back to the HTTP status text
  }
  const statusText = http.STATUS_CODES[status];
  const head = `HTTP ${status} ${reason ?? statusText ?? ''}`.trimEnd();
  const tail = message ?? body.replace(/\s+/g, ' ').trim().slice(0, 200);
  return { reason, text: tail ? `${head}: ${tail.slice(0, 500)}` : head };
}

export function leaseClient(config: ApiServerConfig, opts: LeaseClientOptions = {}): LeaseClient {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const base = new URL(`${config.server}/`);
  const secure = base.protocol === 'https:';
  // One keep-alive connection serves the heartbeat; idle sockets do not hold the process open.
  const agent = secure ? new https.Agent({ keepAlive: true, maxSockets: 4, ...config.tls }) : new http.Agent({ keepAlive: true, maxSockets: 4 });
  const userAgent = `stoker-agent/${STOKER_VERSION}`;

  const leasePath = (namespace: string, name?: string) =>
    `apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;

  /** One request; resolves with status and body, or rejects with a message naming `what`. Retries once on a reused socket the server had closed. */
  const send = (what: string, method: string, path: string, body: unknown, signal: AbortSignal | undefined): Promise<{ status: number; body: string }> => {
    const url = new URL(path, base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': userAgent };
    const authorization = config.authorization();
    if (authorization !== undefined) headers.authorization = authorization;
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const stopped = () => (signal?.aborted ? new Error(`${what}: cancelled`) : new Error(`${what}: no answer within ${timeoutMs / 1000} s`));
    if (signal?.aborted) return Promise.reject(stopped());
    // The deadline and the caller's signal end this request only; nothing stays attached to the
    // caller's long-lived signal afterwards (the heartbeat makes thousands of requests a day).
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), timeoutMs);
    const onCallerAbort = () => stop.abort();
    signal?.addEventListener('abort', onCallerAbort, { once: true });

    const attempt = (retry: boolean): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = (secure ? https : http).request(url, { method, agent, headers, signal: stop.signal }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) req.destroy(new Error(`answer larger than ${MAX_RESPONSE_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', onError);
        });
        function onError(err: Error): void {
          if (stop.signal.aborted) return reject(stopped());
          if (retry && req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET') return resolve(attempt(false));
          reject(new Error(`${what}: ${err.message}`, { cause: err }));
        }
        req.on('error', onError);
        req.end(payload);
      });
    return attempt(true).finally(() => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onCallerAbort);
    });
  };

  const call = async (what: string, method: string, path: string, body: unknown, signal: AbortSignal | undefined, allow404 = false): Promise<Lease | undefined> => {
    const res = await send(what, method, path, body, signal);
    if (res.status === 404 && allow404) return undefined;
    if (res.status < 200 || res.status > 299) {
      const { reason, text } = describeRefusal(res.status, res.body);
      throw new KubeApiError(`${what}: ${text}`, res.status, reason);
    }
    try {
      return JSON.parse(res.body) as Lease;
    } catch {
      throw new Error(`${what}: HTTP ${res.status} with a body that is not JSON`);
    }
  };

  const name = (namespace: string, leaseName: string | undefined) => `Lease ${namespace}/${leaseName ?? ''}`;
  return {
    get: (namespace, leaseName, signal) => call(`get ${name(namespace, leaseName)}`, 'GET', leasePath(namespace, leaseName), undefined, signal, true),
    create: async (namespace, lease, signal) =>
      (await call(`create ${name(namespace, lease.metadata?.name)}`, 'POST', leasePath(namespace), lease, signal)) as Lease,
    replace: async (namespace, leaseName, lease, signal) =>
      (await call(`update ${name(namespace, leaseName)}`, 'PUT', leasePath(namespace, leaseName), lease, signal)) as Lease,
    delete: async (namespace, leaseName, signal) => {
      await call(`delete ${name(namespace, leaseName)}`, 'DELETE', leasePath(namespace, leaseName), undefined, signal, true);
    },
    close: () => agent.destroy(),
  };
}
