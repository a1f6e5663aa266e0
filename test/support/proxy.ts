// Real proxies on loopback in front of a registry: one that limits throughput, so a pull stays in
// flight for seconds, and one that answers chosen requests with an HTTP error, as a broken registry does.
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import type { HasHost } from './registry.js';

export interface ThrottledProxy {
  /** `127.0.0.1:PORT` of the proxy; a containerd needs its own hosts.toml for it (addRegistryHost). */
  readonly host: string;
  /** Bytes sent from the target to clients so far. */
  bytesForwarded(): number;
  /** Changes the limit (bytes per second, shared by all connections); `Infinity` lifts it. */
  setRate(bytesPerSecond: number): void;
  /** Closes the listener and every connection. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a proxy in front of `target` (HOST:PORT). Data from the target to the client is limited to
 * `bytesPerSecond` in total over all connections; data towards the target passes unthrottled.
 */
export async function startThrottledProxy(target: string | HasHost, bytesPerSecond: number): Promise<ThrottledProxy> {
  const targetHost = typeof target === 'string' ? target : target.host;
  const m = /^(.+):(\d+)$/.exec(targetHost);
  if (!m?.[1] || !m[2]) throw new Error(`proxy target must be HOST:PORT, got: '${targetHost}'`);
  const [targetName, targetPort] = [m[1], Number(m[2])];
  checkRate(bytesPerSecond);

  let rate = bytesPerSecond;
  let nextFree = 0; // the time (ms) at which the shared budget is next free
  let forwarded = 0;
  let closed = false;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  /** Waits until `n` bytes may be sent, reserving them in the shared budget. */
  const reserve = async (n: number): Promise<void> => {
    if (!Number.isFinite(rate)) return;
    const now = Date.now();
    nextFree = Math.max(nextFree, now) + (n * 1000) / rate;
    const wait = nextFree - now;
    if (wait > 0) await sleep(wait);
  };

  /** A shaper for one connection; `gone()` says its client has closed, so nothing more is sent or counted. */
  const throttle = (gone: () => boolean): Transform =>
    new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
        void (async () => {
          // Pieces of ~1/20 s of budget keep the flow smooth.
          for (let off = 0; off < chunk.length && !closed && !gone(); ) {
            const piece = Math.max(1, Math.min(chunk.length - off, Number.isFinite(rate) ? Math.ceil(rate / 20) : chunk.length));
            await reserve(piece);
            if (closed || gone()) break;
            this.push(chunk.subarray(off, off + piece));
            forwarded += piece;
            off += piece;
          }
          done();
        })();
      },
    });

  const server = createServer((client) => {
    sockets.add(client);
    const upstream = connect(targetPort, targetName);
    sockets.add(upstream);
    let clientGone = false;
    const shaper = throttle(() => clientGone);
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
      shaper.destroy();
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    shaper.on('error', teardown);
    client.on('close', () => {
      clientGone = true;
      sockets.delete(client);
      upstream.destroy();
      shaper.destroy();
    });
    upstream.on('close', () => sockets.delete(upstream));
    client.pipe(upstream);
    upstream.pipe(shaper).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('proxy has no address');

  let stopped: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${address.port}`,
    bytesForwarded: () => forwarded,
    setRate(bytesPerSecond) {
      checkRate(bytesPerSecond);
      rate = bytesPerSecond;
      nextFree = 0;
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        closed = true;
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return stopped;
    },
  };
}

function checkRate(bytesPerSecond: number): void {
  if (!(bytesPerSecond > 0)) throw new Error(`proxy rate must be a positive number of bytes per second, got: ${bytesPerSecond}`);
}

export interface FailingProxy {
  /** `127.0.0.1:PORT` of the proxy; a containerd needs its own hosts.toml for it (addRegistryHost). */
  readonly host: string;
  /** Requests answered with the error status so far. */
  failed(): number;
  /** Closes the listener and every connection. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts an HTTP proxy in front of the registry at `target` (HOST:PORT) that answers every request
 * whose path matches `fail` with `status` and an empty body, as a broken registry does, and
 * forwards the rest unchanged.
 */
export async function startFailingProxy(target: string | HasHost, status: number, fail: RegExp = /^\/v2\/.+/): Promise<FailingProxy> {
  const targetHost = typeof target === 'string' ? target : target.host;
  const m = /^(.+):(\d+)$/.exec(targetHost);
  if (!m?.[1] || !m[2]) throw new Error(`proxy target must be HOST:PORT, got: '${targetHost}'`);
  const [targetName, targetPort] = [m[1], Number(m[2])];
  let failed = 0;
  const server = createHttpServer((req, res) => {
    if (fail.test(req.url ?? '')) {
      failed++;
      req.resume();
      res.writeHead(status, { 'content-length': '0' });
      res.end();
      return;
    }
    const upstream = httpRequest({ host: targetName, port: targetPort, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('proxy has no address');
  let stopped: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${address.port}`,
    failed: () => failed,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      return stopped;
    },
  };
}
