import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialFor, DockerConfigError, loadDockerCredentials, parseDockerConfig, registryHost } from './docker-config.js';
import { parseImageReference } from '../../proto/common/image-reference.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('registryHost', () => {
  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['https://registry-1.docker.io/v2/', 'docker.io'],
    ['https://Registry.Example.com:5000/v2/', 'registry.example.com:5000'],
    ['http://127.0.0.1:5000', '127.0.0.1:5000'],
    ['ghcr.io', 'ghcr.io'],
  ])('%s -> %s', (key, host) => expect(registryHost(key)).toBe(host));
});

describe('parseDockerConfig', () => {
  it('reads auth, username/password and tokens, and folds Docker Hub aliases', () => {
    const warnings: string[] = [];
    const creds = parseDockerConfig(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass') },
          'registry.example.com:5000': { username: 'u', password: 'p' },
          'https://ghcr.io': { identitytoken: 'id-token' },
          'empty.example.com': {},
        },
        credsStore: 'desktop',
      }),
      'config.json',
      (w) => warnings.push(w),
    );
    expect(warnings).toEqual(['config.json names credential helpers (credsStore "desktop"), which Stoker does not run; only its "auths" entries are used']);
    expect(creds).toEqual([
      { registry: 'docker.io', username: 'hubuser', password: 'hub:pass', auth: '', identityToken: '', registryToken: '' },
      { registry: 'registry.example.com:5000', username: 'u', password: 'p', auth: '', identityToken: '', registryToken: '' },
      { registry: 'ghcr.io', username: '', password: '', auth: '', identityToken: 'id-token', registryToken: '' },
    ]);
  });

  it('prefers the entry whose key is the bare host', () => {
    const creds = parseDockerConfig(
      JSON.stringify({ auths: { 'https://r.example.com/v1/': { auth: b64('a:1') }, 'r.example.com': { auth: b64('b:2') } } }),
      'c',
    );
    expect(creds).toHaveLength(1);
    expect(creds[0]?.username).toBe('b');
  });

  it('rejects malformed files without echoing their content', () => {
    const secret = 'hunter2-secret';
    for (const text of [`{"auths": {"x": {"password": "${secret}"`, '[]', '{"auths": []}', `{"auths": {"x": {"auth": "${b64(secret)}"}}}`]) {
      let error: unknown;
      try {
        parseDockerConfig(text, '/some/config.json');
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(DockerConfigError);
      expect((error as Error).message).toContain('/some/config.json');
      expect((error as Error).message).not.toContain(secret);
    }
  });
});

describe('credentialFor', () => {
  const creds = parseDockerConfig(
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub:1') },
        'http://127.0.0.1:5000/': { auth: b64('local:2') },
      },
    }),
    'c',
  );
  it.each([
    ['busybox', 'hub'],
    ['docker.io/library/busybox', 'hub'],
    ['index.docker.io/library/busybox', 'hub'],
    ['127.0.0.1:5000/app:v1', 'local'],
    ['127.0.0.1:5001/app:v1', undefined],
    ['ghcr.io/a/b', undefined],
  ])('%s uses %s', (image, user) => {
    expect(credentialFor(parseImageReference(image).domain, creds)?.username).toBe(user);
  });
  it('matches the registry-1.docker.io alias too', () => {
    expect(credentialFor('registry-1.docker.io', creds)?.username).toBe('hub');
  });
});

describe('loadDockerCredentials', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-dockercfg-'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'a.example.com': { auth: b64('x:y') } } }));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads $DOCKER_CONFIG/config.json', async () => {
    const creds = await loadDockerCredentials({ dockerConfigDir: dir, home: '/nonexistent' });
    expect(creds.map((c) => c.registry)).toEqual(['a.example.com']);
  });
  it('falls back to ~/.docker/config.json, and a missing default file means no credentials', async () => {
    expect(await loadDockerCredentials({ home: join(dir, 'nohome') })).toEqual([]);
  });
  it('an explicit file wins, and a missing explicit file is an error naming it', async () => {
    expect((await loadDockerCredentials({ authFile: join(dir, 'config.json'), dockerConfigDir: '/nonexistent' })).length).toBe(1);
    await expect(loadDockerCredentials({ authFile: join(dir, 'missing.json') })).rejects.toThrow(/missing\.json: no such file/);
  });
});
