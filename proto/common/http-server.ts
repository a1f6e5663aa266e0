// The probe and metrics listener both binaries run (/healthz, /readyz, /metrics, and the agent's
// /status), on node:http alone: a table of GET routes, nothing else. Loading a web framework for
// four fixed paths cost the agent some 5 MB of resident memory.
//
// Bounded by construction: no request body is read (a request that carries one gets its answer and
// the connection is closed, so the body is never drained), only GET and HEAD match a route,
// everything else is 404, and the headers and the whole request have short deadlines. Answers:
// JSON objects as `application/json; charset=utf-8`, strings as `text/plain; charset=utf-8`, 404
// and 500 as `{ statusCode, error, message }` JSON.
import { createServer, type IncomingMessage, type Server } from 'node:http';

export interface HttpReply {
  /** Default 200. */
  readonly status?: number;
  /** An object is sent as JSON, a string as text/plain unless `contentType` says otherwise. */
  readonly body: string | object;
  readonly contentType?: string;
}

export type HttpRoute = (req: IncomingMessage) => HttpReply | Promise<HttpReply>;

export interface HttpRoutesOptions {
  /** Told about a route that threw; the caller got a 500. */
  readonly onError?: (err: unknown, path: string) => void;
  /** On close, also cut connections with a request in progress (default: only idle ones). */
  readonly forceClose?: boolean;
}

export interface HttpListener {
  readonly server: Server;
  /** The bound port (the one asked for, or the one picked for port 0). */
  readonly port: number;
  /** The bound address, as the socket reports it. */
  readonly address: string;
  /** Stops accepting, closes idle connections (and busy ones with forceClose) and waits. */
  close(): Promise<void>;
}

const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;

const STATUS_TEXT: Record<number, string> = { 404: 'Not Found', 500: 'Internal Server Error' };

/** Listens on host:port and answers GET/HEAD for `routes` (exact paths; the query is ignored). */
export async function listenHttp(
  host: string,
  port: number,
  routes: Readonly<Record<string, HttpRoute>>,
  opts: HttpRoutesOptions = {},
): Promise<HttpListener> {
  const table = new Map(Object.entries(routes));
  const server = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS }, (req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    const route = method === 'GET' || method === 'HEAD' ? table.get(path) : undefined;
    const send = (reply: HttpReply): void => {
      const status = reply.status ?? 200;
      const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
      const type = reply.contentType ?? (typeof reply.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8');
      const headers: Record<string, string | number> = { 'content-type': type, 'content-length': Buffer.byteLength(text) };
      if (hasBody(req)) headers.connection = 'close';
      res.writeHead(status, headers);
      res.end(method === 'HEAD' ? undefined : text);
    };
    const fail = (status: number, message: string): void =>
      send({ status, body: { message, error: STATUS_TEXT[status] ?? 'Error', statusCode: status } });
    if (!route) {
      fail(404, `Route ${method}:${url} not found`);
      return;
    }
    void (async () => route(req))().then(send, (err: unknown) => {
      opts.onError?.(err, path);
      if (res.headersSent) res.destroy();
      else fail(500, err instanceof Error ? err.message : String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  return {
    server,
    port: bound && typeof bound === 'object' ? bound.port : port,
    address: bound && typeof bound === 'object' ? bound.address : host,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        if (opts.forceClose) server.closeAllConnections();
      }),
  };
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
