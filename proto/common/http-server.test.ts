import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listenHttp, type HttpListener } from './http-server.js';

// A real listener on a loopback port 0; raw requests where fetch would hide what goes on the wire.
let open: HttpListener | undefined;
afterEach(async () => {
  await open?.close();
  open = undefined;
});

async function start(onError?: (err: unknown, path: string) => void): Promise<HttpListener> {
  open = await listenHttp(
    '127.0.0.1',
    0,
    {
      '/json': () => ({ body: { a: 1 } }),
      '/text': () => Promise.resolve({ status: 503, body: 'not yet' }),
      '/typed': () => ({ body: 'x 1\n', contentType: 'text/plain; version=0.0.4; charset=utf-8' }),
      '/broken': () => {
        throw new Error('the registry is gone');
      },
    },
    onError ? { onError } : {},
  );
  return open;
}

/** Sends `request` as is and returns everything the server wrote before closing or 1 s passed. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let out = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(`${out}<still open>`);
    }, 1_000);
    socket.on('data', (d: Buffer) => (out += d.toString()));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

describe('listenHttp', () => {
  it('answers GET with JSON, text or the route’s own type, and ignores the query', async () => {
    const { port } = await start();
    const json = await fetch(`http://127.0.0.1:${port}/json?verbose=1`);
    expect(json.status).toBe(200);
    expect(json.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await json.text()).toBe('{"a":1}');
    const text = await fetch(`http://127.0.0.1:${port}/text`);
    expect(text.status).toBe(503);
    expect(text.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await text.text()).toBe('not yet');
    const typed = await fetch(`http://127.0.0.1:${port}/typed`);
    expect(typed.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await typed.text()).toBe('x 1\n');
  });

  it('answers HEAD with the headers and no body', async () => {
    const { port } = await start();
    const out = await raw(port, 'HEAD /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(out).toContain('content-length: 7\r\n');
    expect(out.endsWith('\r\n\r\n')).toBe(true);
  });

  it('answers 404 for unknown paths, other methods and a trailing slash', async () => {
    const { port } = await start();
    for (const [method, path] of [['GET', '/nope'], ['POST', '/json'], ['DELETE', '/json'], ['GET', '/json/']] as const) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ message: `Route ${method}:${path} not found`, error: 'Not Found', statusCode: 404 });
    }
  });

  it('answers 500 with the message when a route throws, and reports it', async () => {
    const seen: string[] = [];
    const { port } = await start((err, path) => seen.push(`${path}: ${err instanceof Error ? err.message : String(err)}`));
    const res = await fetch(`http://127.0.0.1:${port}/broken`);
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ message: 'the registry is gone', error: 'Internal Server Error', statusCode: 500 });
    expect(seen).toEqual(['/broken: the registry is gone']);
  });

  it('does not read a request body: it answers and closes the connection', async () => {
    const { port } = await start();
    // Announces 1 MiB and sends 5 bytes: a server that read the body would still be waiting.
    const out = await raw(port, 'GET /json HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\nhello');
    expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(out.toLowerCase()).toContain('connection: close\r\n');
    expect(out).not.toContain('<still open>');
  });

  it('close with forceClose cuts a request still in progress', async () => {
    let arrived!: () => void;
    const inRoute = new Promise<void>((resolve) => (arrived = resolve));
    open = await listenHttp(
      '127.0.0.1',
      0,
      {
        '/slow': () => {
          arrived();
          return new Promise(() => undefined);
        },
      },
      { forceClose: true },
    );
    const listener = open;
    open = undefined;
    const cut = raw(listener.port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await inRoute;
    await listener.close();
    expect(await cut).toBe('');
  });

  it('fails to listen on a port already taken', async () => {
    const { port } = await start();
    await expect(listenHttp('127.0.0.1', port, {})).rejects.toThrow(/EADDRINUSE/);
  });
});
