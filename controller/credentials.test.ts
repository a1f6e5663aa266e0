import { describe, expect, it } from 'vitest';
import {
  credentialsForImages,
  loadPullSecrets,
  normaliseRegistryKey,
  parseDockerConfig,
  PullSecretError,
  type SecretLike,
} from './credentials.js';

const PASSWORD = 's3cr3t-Pa55';

function secret(auths: Record<string, unknown>, type = 'kubernetes.io/dockerconfigjson'): SecretLike {
  return { type, data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') } };
}

function fakeSecretStore(secrets: Record<string, SecretLike>) {
  return (namespace: string, name: string) => Promise.resolve(secrets[`${namespace}/${name}`]);
}

describe('normaliseRegistryKey', () => {
  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['http://127.0.0.1:5000', '127.0.0.1:5000'],
    ['https://Registry.Example.com/team/', 'registry.example.com/team'],
  ])('%s -> %s', (key, want) => expect(normaliseRegistryKey(key)).toBe(want));
});

describe('credentialsForImages', () => {
  const entries = parseDockerConfig(
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from(`hubuser:${PASSWORD}`).toString('base64') },
        '127.0.0.1:5000': { username: 'local', password: PASSWORD },
        '*.example.com': { username: 'wild', password: 'x' },
        'other.io': { username: 'other', password: 'y' },
      },
    }),
  );

  it('hands over only the registries the images come from', () => {
    const creds = credentialsForImages(entries, ['127.0.0.1:5000/app:v1', '127.0.0.1:5000/other:v2', 'quay.io/x/y']);
    expect(creds).toHaveLength(1);
    expect(creds[0]).toMatchObject({ registry: '127.0.0.1:5000', username: 'local', password: PASSWORD });
    expect(creds[0]?.auth).toBe(Buffer.from(`local:${PASSWORD}`).toString('base64'));
  });

  it('matches Docker Hub under its aliases and decodes auth', () => {
    for (const image of ['busybox', 'docker.io/library/busybox:1', 'index.docker.io/me/app']) {
      const creds = credentialsForImages(entries, [image]);
      expect(creds).toEqual([expect.objectContaining({ registry: 'docker.io', username: 'hubuser', password: PASSWORD })]);
    }
  });

  it('matches a wildcard host label', () => {
    expect(credentialsForImages(entries, ['reg.example.com/a'])[0]?.username).toBe('wild');
    expect(credentialsForImages(entries, ['a.b.example.com/a'])).toEqual([]);
  });
});

describe('loadPullSecrets', () => {
  it('reads the named secrets in order', async () => {
    const read = fakeSecretStore({ 'ns/a': secret({ 'r.io': { username: 'u', password: 'p' } }) });
    const got = await loadPullSecrets(read, 'ns', ['a']);
    expect(got.map((e) => e.key)).toEqual(['r.io']);
  });

  it('names a missing secret', async () => {
    const err = (await loadPullSecrets(fakeSecretStore({}), 'ns', ['regcred']).catch((e: unknown) => e)) as PullSecretError;
    expect(err).toBeInstanceOf(PullSecretError);
    expect(err.reason).toBe('PullSecretNotFound');
    expect(err.message).toContain('"ns/regcred"');
  });

  it('names a secret of the wrong type or with bad JSON, without its content', async () => {
    const read = fakeSecretStore({
      'ns/opaque': secret({}, 'Opaque'),
      'ns/garbage': { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(`{"auths": ${PASSWORD}`).toString('base64') } },
    });
    const e1 = (await loadPullSecrets(read, 'ns', ['opaque']).catch((e: unknown) => e)) as PullSecretError;
    expect(e1.reason).toBe('InvalidPullSecret');
    expect(e1.message).toContain('"Opaque"');
    const e2 = (await loadPullSecrets(read, 'ns', ['garbage']).catch((e: unknown) => e)) as PullSecretError;
    expect(e2.message).toContain('ns/garbage');
    expect(e2.message).not.toContain(PASSWORD);
  });
});
