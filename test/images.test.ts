// Stoker's own images as a user deploys them: built without a Docker engine (hack/images.sh),
// pushed to a registry, pulled by containerd, and run from the pulled root filesystem.
// The first run builds the bases and both images (about 15 minutes on 2 cores); later runs reuse
// them from the cache and take well under a minute.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, type Containerd } from './support/containerd.js';
import { REPO_ROOT, run, runHack } from './support/proc.js';
import { startRegistry, type Registry } from './support/registry.js';

const BUILD_TIMEOUT_MS = 45 * 60_000;

interface ImageConfig {
  config?: { User?: string; Entrypoint?: string[] };
}

let registry: Registry;
let containerd: Containerd;
let refs: Record<'agent' | 'controller', string>;
let version: string;
let mountRoot: string;

/** Fetches the image config of `ref` (HOST/NAME:TAG) from the registry, as a runtime reads it. */
async function registryConfig(ref: string): Promise<ImageConfig> {
  const m = /^([^/]+)\/(.+):([^:/]+)$/.exec(ref);
  if (!m) throw new Error(`not HOST/NAME:TAG: ${ref}`);
  const [, host, name, tag] = m as unknown as [string, string, string, string];
  const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
  const res = await fetch(`http://${host}/v2/${name}/manifests/${tag}`, { headers: { accept } });
  expect(res.status).toBe(200);
  const manifest = (await res.json()) as { config: { digest: string } };
  const blob = await fetch(`http://${host}/v2/${name}/blobs/${manifest.config.digest}`);
  expect(blob.status).toBe(200);
  return (await blob.json()) as ImageConfig;
}

/**
 * Mounts the root filesystem containerd unpacked for `ref` and runs `command` in it with chroot,
 * as USER (uid:gid), from /app, the images' working directory.
 */
async function runInImage(ref: string, user: string, command: string): Promise<string> {
  const dir = await mkdtemp(join(mountRoot, 'rootfs-'));
  await containerd.ctr(['images', 'mount', '--snapshotter', containerd.snapshotter, ref, dir]);
  try {
    const { stdout } = await run('chroot', ['--userspec', user, dir, '/bin/sh', '-c', `cd /app && ${command}`], {
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/tmp' },
    });
    return stdout.trim();
  } finally {
    await containerd.ctr(['images', 'unmount', dir]);
    await rm(dir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  version = (JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  mountRoot = await mkdtemp(join(tmpdir(), 'stoker-images-'));
  registry = await startRegistry();
  containerd = await startContainerd();
  await registry.addTo(containerd);
  const out = await runHack('images.sh', ['push', registry.host]);
  const lines = Object.fromEntries(out.split('\n').map((l) => l.split('=', 2) as [string, string]));
  refs = { agent: lines.agent ?? '', controller: lines.controller ?? '' };
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await containerd?.stop();
  await registry?.stop();
  if (mountRoot) await rm(mountRoot, { recursive: true, force: true });
});

describe('hack/images.sh push', () => {
  it('prints both references, in the registry it was given, tagged with the package version', () => {
    expect(refs.agent).toBe(`${registry.host}/stoker-agent:${version}`);
    expect(refs.controller).toBe(`${registry.host}/stoker-controller:${version}`);
  });

  it('pushes images containerd pulls and unpacks', async () => {
    await containerd.ctrPull(refs.agent);
    await containerd.ctrPull(refs.controller);
    expect(await containerd.imagePresent(refs.agent)).toBe(true);
    expect(await containerd.imagePresent(refs.controller)).toBe(true);
  });
});

describe('the agent image', () => {
  it('runs as root, to reach the CRI socket', async () => {
    const config = await registryConfig(refs.agent);
    expect(['', 'root', '0', '0:0', 'root:root']).toContain(config.config?.User ?? '');
    expect(config.config?.Entrypoint).toEqual(['node', 'dist/bin/stoker.cjs', 'agent']);
  });

  it('prints the package version from stoker --version', async () => {
    expect(await runInImage(refs.agent, '0:0', 'node dist/bin/stoker.cjs --version')).toBe(version);
  });

  it('carries the native helper, and Node.js loads it', async () => {
    const loaded = await runInImage(
      refs.agent,
      '0:0',
      `node -e 'console.log(Object.keys(require("/app/agent/native/build/stoker_native.node")).length > 0)'`,
    );
    expect(loaded).toBe('true');
  });
});

describe('the controller image', () => {
  it('runs as the unprivileged uid 1000', async () => {
    const config = await registryConfig(refs.controller);
    expect(config.config?.User).toBe('1000:1000');
  });

  it('prints the package version from stoker --version, as uid 1000', async () => {
    expect(await runInImage(refs.controller, '1000:1000', 'node dist/bin/stoker.cjs --version')).toBe(version);
  });

  it('has no compiler or npm: the build stage stays out of the image', async () => {
    expect(await runInImage(refs.controller, '1000:1000', 'command -v gcc npm || echo none')).toBe('none');
  });
});
