// Private OCI registries (hack/registry.sh) and broken ones (a registry that accepts and never answers).
import { mkdir, mkdtemp, rename, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runHack } from './proc.js';

export interface RegistryAuth {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Turn on basic auth (bcrypt htpasswd) with this one user. */
  auth?: RegistryAuth;
}

export interface Registry {
  /** `127.0.0.1:PORT`, plain HTTP. */
  readonly host: string;
  /** The registry's directory (storage, config, log). */
  readonly dir: string;
  /** The credentials the registry requires, if any. */
  readonly auth: RegistryAuth | undefined;
  /** Lets `containerd` pull from this registry over plain HTTP. */
  addTo(containerd: { dir: string }): Promise<void>;
  /** Stops the registry and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Anything with a `host` (HOST:PORT) a containerd can be told about: a registry, a proxy, a stalling server. */
export interface HasHost {
  readonly host: string;
}

/**
 * Starts a registry on 127.0.0.1 and a free port, with filesystem storage in a temp dir. If this
 * process dies without calling stop(), the registry is stopped and its directory removed anyway.
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const dir = await mkdtemp(join(tmpdir(), 'stoker-registry-'));
  const args = ['start', dir, '--owner-pid', String(process.pid), '--owner-cleanup'];
  if (opts.auth) args.push('--htpasswd', opts.auth.username, opts.auth.password);
  let host: string;
  try {
    host = await runHack('registry.sh', args, { secrets: opts.auth ? [opts.auth.password] : [] });
  } catch (err) {
    await runHack('registry.sh', ['clean', dir]).catch(() => undefined);
    throw err;
  }
  let stopped = false;
  return {
    host,
    dir,
    auth: opts.auth,
    addTo: (containerd) => addRegistryHost(containerd, host),
    async stop() {
      if (stopped) return;
      stopped = true;
      await runHack('registry.sh', ['clean', dir]);
    },
  };
}

/** Writes `certs.d/HOST:PORT/hosts.toml` so the containerd in `containerd.dir` pulls from `host` over plain HTTP. */
export async function addRegistryHost(containerd: { dir: string }, host: string | HasHost): Promise<void> {
  await runHack('containerd.sh', ['add-registry', containerd.dir, typeof host === 'string' ? host : host.host]);
}

/**
 * Makes the containerd in `containerd.dir` send whatever it would send to registry `name` (as an
 * image names it: "169.254.169.254", "metadata.google.internal") to `to` instead, over plain HTTP.
 * Tests that must never reach an address point it at a local trap first.
 */
export async function redirectRegistryHost(containerd: { dir: string }, name: string, to: HasHost): Promise<void> {
  const dir = join(containerd.dir, 'certs.d', name);
  await mkdir(dir, { recursive: true });
  const toml = `server = "http://${to.host}"\n\n[host."http://${to.host}"]\n  capabilities = ["pull", "resolve"]\n`;
  await writeFile(join(dir, 'hosts.toml.tmp'), toml);
  await rename(join(dir, 'hosts.toml.tmp'), join(dir, 'hosts.toml'));
}

export interface StallingRegistry {
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** How many connections it has accepted so far. */
  connections(): number;
  /** Closes the listener and every connection. Idempotent. */
  stop(): Promise<void>;
}

/** A TCP server on loopback that accepts connections, reads what is sent and never answers. */
export async function startStallingRegistry(): Promise<StallingRegistry> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.resume();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('stalling registry has no address');
  let stopped: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${address.port}`,
    connections: () => accepted,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return stopped;
    },
  };
}
