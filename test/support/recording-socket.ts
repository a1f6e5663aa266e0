// A unix socket that accepts connections, records them and answers nothing: a CRI endpoint for
// tests that prove a command refused its work before any call to the runtime.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RecordingSocket {
  /** `unix:///.../cri.sock`. */
  readonly endpoint: string;
  /** Connections accepted so far. */
  connections(): number;
  /** Bytes received so far, over all connections. */
  bytes(): number;
  stop(): Promise<void>;
}

export async function startRecordingSocket(): Promise<RecordingSocket> {
  const dir = await mkdtemp(join(tmpdir(), 'stoker-rec-'));
  const path = join(dir, 'cri.sock');
  const sockets = new Set<Socket>();
  let accepted = 0;
  let received = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('data', (b: Buffer) => (received += b.length));
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `unix://${path}`,
    connections: () => accepted,
    bytes: () => received,
    stop() {
      stopped ??= (async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
