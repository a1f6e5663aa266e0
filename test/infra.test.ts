// Proves the real-parts test infrastructure: private containerd, registries with and without auth,
// random images, pulls through ctr and through the CRI, a stalling registry and a throttled proxy.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { criProto } from '../proto/cri.js';
import type { ImageStatusResponse__Output } from '../proto/gen/runtime/v1/ImageStatusResponse.js';
import type { PullImageResponse__Output } from '../proto/gen/runtime/v1/PullImageResponse.js';
import { makeCertificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { pushRandomImage, pushRandomImageDetailed } from './support/images.js';
import { run } from './support/proc.js';
import { startThrottledProxy } from './support/proxy.js';
import { addRegistryHost, startRegistry, startStallingRegistry, type Registry } from './support/registry.js';

const AUTH = { username: 'stoker', password: 'pa$$ w0rd:with-colon' };

/** A CRI PullImage straight through grpc-js, with optional registry credentials. */
function criPull(endpoint: string, image: string, auth?: { username: string; password: string }): Promise<string> {
  const client = new (criProto().ImageService)(endpoint, grpc.credentials.createInsecure());
  return new Promise<string>((resolve, reject) => {
    client.pullImage(
      { image: { image }, ...(auth ? { auth } : {}) },
      { deadline: Date.now() + 120_000 },
      (err: grpc.ServiceError | null, res?: PullImageResponse__Output) => {
        client.close();
        if (err) reject(err);
        else resolve(res?.imageRef ?? '');
      },
    );
  });
}

/** The CRI's ImageStatus: the image's id, or undefined when the runtime does not have it. */
function criImageId(endpoint: string, image: string): Promise<string | undefined> {
  const client = new (criProto().ImageService)(endpoint, grpc.credentials.createInsecure());
  return new Promise<string | undefined>((resolve, reject) => {
    client.imageStatus({ image: { image } }, { deadline: Date.now() + 30_000 }, (err: grpc.ServiceError | null, res?: ImageStatusResponse__Output) => {
      client.close();
      if (err) reject(err);
      else resolve(res?.image?.id);
    });
  });
}

describe('containerd and registries', () => {
  let containerd: Containerd;
  let open: Registry;
  let locked: Registry;

  beforeAll(async () => {
    [containerd, open, locked] = await Promise.all([startContainerd(), startRegistry(), startRegistry({ auth: AUTH })]);
    await open.addTo(containerd);
    await addRegistryHost(containerd, locked);
  });
  afterAll(async () => {
    await Promise.allSettled([containerd?.stop(), open?.stop(), locked?.stop()]);
  });

  it('runs a private containerd with its socket under its own directory', async () => {
    expect(containerd.endpoint).toBe(`unix://${join(containerd.dir, 'containerd.sock')}`);
    const { stdout } = await containerd.ctr(['version']);
    expect(stdout).toMatch(/Server:\s+Version:\s+\S+/);
  });

  it('pulls a random image from an open registry, and removeImage makes the next pull cold', async () => {
    const image = await pushRandomImageDetailed(open, 'infra/open', { layers: 2, layerSizeBytes: 256 * 1024 });
    expect(await containerd.imagePresent(image.ref)).toBe(false);
    await containerd.ctrPull(image.ref);
    expect(await containerd.imagePresent(image.ref)).toBe(true);
    expect(await containerd.contentDigests()).toContain(image.digest);

    await containerd.removeImage(image.ref);
    expect(await containerd.imagePresent(image.ref)).toBe(false);
    expect(await containerd.contentDigests()).not.toContain(image.digest);
  });

  it('refuses a wrong password and pulls with the right one (ctr)', async () => {
    const ref = await pushRandomImage(locked, 'infra/locked', { layerSizeBytes: 64 * 1024 });
    const wrong = await containerd.ctrPull(ref, { creds: { username: AUTH.username, password: 'wrong-password' } }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(wrong).toBeInstanceOf(Error);
    expect(String(wrong)).toMatch(/401 Unauthorized/);
    expect(String(wrong)).not.toContain('wrong-password');
    expect(await containerd.imagePresent(ref)).toBe(false);

    await containerd.ctrPull(ref, { creds: AUTH });
    expect(await containerd.imagePresent(ref)).toBe(true);
  });

  it('pulls from the auth registry through the CRI with AuthConfig, and not without it', async () => {
    const ref = await pushRandomImage(locked, 'infra/cri', { layerSizeBytes: 64 * 1024 });
    await expect(criPull(containerd.endpoint, ref)).rejects.toThrow(/401 Unauthorized|authorization failed|unauthorized/i);
    const imageRef = await criPull(containerd.endpoint, ref, AUTH);
    expect(imageRef).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await containerd.imagePresent(ref)).toBe(true);
    expect(await criImageId(containerd.endpoint, ref)).toBe(imageRef);

    // removeImage is seen by the CRI too: the runtime no longer reports the image.
    await containerd.removeImage(ref);
    expect(await criImageId(containerd.endpoint, ref)).toBeUndefined();
  });

  it('refuses a push without credentials to the auth registry', async () => {
    await expect(pushRandomImage({ host: locked.host }, 'infra/nocreds')).rejects.toThrow(/unauthorized|authentication required/i);
  });

  it('restarts on the same directory, keeping its images', async () => {
    const ref = await pushRandomImage(open, 'infra/restart', { layerSizeBytes: 32 * 1024 });
    await containerd.ctrPull(ref);
    await containerd.kill();
    await expect(containerd.ctr(['version'])).rejects.toThrow();
    await containerd.restart();
    expect(await containerd.imagePresent(ref)).toBe(true);
  });

  it('runs two containerd instances side by side', async () => {
    const second = await startContainerd();
    try {
      expect(second.socketPath).not.toBe(containerd.socketPath);
      await open.addTo(second);
      const ref = await pushRandomImage(open, 'infra/second', { layerSizeBytes: 32 * 1024 });
      await second.ctrPull(ref);
      expect(await second.imagePresent(ref)).toBe(true);
      expect(await containerd.imagePresent(ref)).toBe(false);
    } finally {
      await second.stop();
      await second.stop();
    }
    await expect(readFile(second.logPath)).rejects.toThrow(/ENOENT/);
  });
});

/** Whether this machine can mount overlayfs in its temp dir (not on every CI filesystem). */
async function overlaySupported(): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'stoker-overlay-probe-'));
  try {
    await run('bash', ['-c', 'cd "$1" && mkdir l u w m && mount -t overlay overlay -o lowerdir=l,upperdir=u,workdir=w m && umount m', 'probe', dir]);
    return true;
  } catch {
    return false;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('overlayfs snapshotter', async () => {
  it.skipIf(!(await overlaySupported()))('pulls and unpacks through the CRI with overlayfs', async () => {
    const registry = await startRegistry();
    const containerd = await startContainerd({ snapshotter: 'overlayfs' });
    try {
      await registry.addTo(containerd);
      const ref = await pushRandomImage(registry, 'infra/overlay', { layers: 3, layerSizeBytes: 64 * 1024 });
      const id = await criPull(containerd.endpoint, ref);
      expect(await criImageId(containerd.endpoint, ref)).toBe(id);
      const { stdout } = await containerd.ctr(['snapshots', '--snapshotter', 'overlayfs', 'ls']);
      expect(stdout.trim().split('\n').length - 1).toBe(3);
      await containerd.restart();
      expect(containerd.snapshotter).toBe('overlayfs');
      expect(await criImageId(containerd.endpoint, ref)).toBe(id);
    } finally {
      await Promise.allSettled([containerd.stop(), registry.stop()]);
    }
  });
});

describe('broken and slow registries', () => {
  it('a stalling registry accepts connections and never answers', async () => {
    const stalling = await startStallingRegistry();
    try {
      const [host, port] = stalling.host.split(':');
      const socket = connect(Number(port), host);
      const outcome = await new Promise<string>((resolve) => {
        socket.on('connect', () => socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'));
        socket.on('data', () => resolve('answered'));
        socket.on('error', (e) => resolve(`error ${e.message}`));
        // Two seconds of silence is what this test means by "never answers".
        setTimeout(() => resolve('silent'), 2000);
      });
      socket.destroy();
      expect(outcome).toBe('silent');
      expect(stalling.connections()).toBe(1);
    } finally {
      await stalling.stop();
      await stalling.stop();
    }
  });

  it('a throttled proxy forwards the registry and limits its throughput', async () => {
    const registry = await startRegistry();
    const containerd = await startContainerd();
    const rate = 256 * 1024;
    const proxy = await startThrottledProxy(registry, rate);
    try {
      const image = await pushRandomImageDetailed(registry, 'infra/slow', { layerSizeBytes: 1024 * 1024 });
      await addRegistryHost(containerd, proxy);
      const viaProxy = image.ref.replace(registry.host, proxy.host);
      const started = Date.now();
      await containerd.ctrPull(viaProxy);
      const seconds = (Date.now() - started) / 1000;
      expect(await containerd.imagePresent(viaProxy)).toBe(true);
      expect(proxy.bytesForwarded()).toBeGreaterThanOrEqual(image.layerBytes);
      // The limit is a floor on the duration (a lower bound, not a speed target): 1 MiB at 256 KiB/s.
      expect(seconds).toBeGreaterThanOrEqual((image.layerBytes / rate) * 0.9);
    } finally {
      await proxy.stop();
      await proxy.stop();
      await Promise.allSettled([containerd.stop(), registry.stop()]);
    }
  });
});

describe('a runtime killed mid-pull', () => {
  it('fails the pull in flight, and after restart the same pull completes', async () => {
    const registry = await startRegistry();
    const containerd = await startContainerd();
    const proxy = await startThrottledProxy(registry, 128 * 1024);
    try {
      const image = await pushRandomImageDetailed(registry, 'infra/killed', { layerSizeBytes: 4 * 1024 * 1024 });
      await addRegistryHost(containerd, proxy);
      const ref = image.ref.replace(registry.host, proxy.host);
      const pull = containerd.ctrPull(ref).then(
        () => 'completed',
        (err: unknown) => `failed: ${String(err)}`,
      );
      // Kill once some layer bytes have gone through: the pull is then certainly in flight.
      while (proxy.bytesForwarded() < 256 * 1024) await new Promise((r) => setTimeout(r, 50));
      await containerd.kill();
      expect(await pull).toMatch(/^failed: /);

      await containerd.restart();
      expect(await containerd.imagePresent(ref)).toBe(false);
      proxy.setRate(Number.POSITIVE_INFINITY);
      await containerd.ctrPull(ref);
      expect(await containerd.imagePresent(ref)).toBe(true);
      expect(await containerd.contentDigests()).toContain(image.digest);
    } finally {
      await proxy.stop();
      await Promise.allSettled([containerd.stop(), registry.stop()]);
    }
  });
});

describe('certificates', () => {
  it('issues server and client certificates from one CA and a client certificate from a foreign CA', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stoker-certs-'));
    try {
      const certs = await makeCertificates(dir, { serverNames: ['agent.example', '10.1.2.3'] });
      const ca = new X509Certificate(await readFile(certs.caCert));
      const server = new X509Certificate(await readFile(certs.serverCert));
      const client = new X509Certificate(await readFile(certs.clientCert));
      const foreign = new X509Certificate(await readFile(certs.foreignClientCert));
      expect(ca.ca).toBe(true);
      expect(server.verify(ca.publicKey)).toBe(true);
      expect(client.verify(ca.publicKey)).toBe(true);
      expect(foreign.verify(ca.publicKey)).toBe(false);
      expect(server.subjectAltName).toContain('IP Address:127.0.0.1');
      expect(server.subjectAltName).toContain('DNS:localhost');
      expect(server.subjectAltName).toContain('DNS:agent.example');
      expect(server.subjectAltName).toContain('IP Address:10.1.2.3');
      // openssl agrees that the chain verifies for its purpose.
      const ok = await run('openssl', ['verify', '-CAfile', certs.caCert, '-purpose', 'sslclient', certs.clientCert]);
      expect(ok.stdout).toContain(': OK');
      await expect(run('openssl', ['verify', '-CAfile', certs.caCert, certs.foreignClientCert])).rejects.toThrow(/unable to get local issuer/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
