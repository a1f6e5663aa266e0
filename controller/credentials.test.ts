import { describe, expect, it } from 'vitest';
import { parseDockerConfig } from '../proto/common/docker-config.js';
import { credentialsForImages, loadPullSecrets, PullSecretError, type SecretLike } from './credentials.js';

const PASSWORD = 's3cr3t-Pa55';

function secret(auths: Record<string, unknown>, type = 'kubernetes.io/dockerconfigjson'): SecretLike {
  return { type, data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') } };
}

function fakeSecretStore(secrets: Record<string, SecretLike>) {
  return (namespace: string, name: string) => Promise.resolve(secrets[`${namespace}/${name}`]);
}

describe('credentialsForImages', () => {
  const entries = parseDockerConfig(
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from(`hubuser:${PASSWORD}`).toString('base64') },
        '127.0.0.1:5000': { username: 'local', password: PASSWORD },
        '*.example.com': { username: 'wild', password: 'x' },
        'other.io': { username: 'other', password: 'y' },
        'both.io': { auth: Buffer.from(`from-auth:${PASSWORD}`).toString('base64'), username: 'from-fields', password: 'z' },
        'quay.io/team': { username: 'team', password: 't' },
      },
    }),
    'test',
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

  it('sends what "auth" says when an entry also has username and password, as Docker and the kubelet do', () => {
    const [cred] = credentialsForImages(entries, ['both.io/app']);
    expect(cred).toMatchObject({ registry: 'both.io', username: 'from-auth', password: PASSWORD, auth: Buffer.from(`from-auth:${PASSWORD}`).toString('base64') });
  });

  it('matches a key with a repository path only below that path', () => {
    expect(credentialsForImages(entries, ['quay.io/team/app'])).toEqual([expect.objectContaining({ registry: 'quay.io', username: 'team' })]);
    expect(credentialsForImages(entries, ['quay.io/other/app'])).toEqual([]);
  });

  it('skips images whose reference is invalid', () => {
    expect(credentialsForImages(entries, ['127.0.0.1:5000/Bad', 'other.io/a'])).toEqual([expect.objectContaining({ registry: 'other.io' })]);
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
    expect(got.map((e) => e.registry)).toEqual(['r.io']);
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
    expect(e2.message).toBe('image pull secret "ns/garbage" has an unusable .dockerconfigjson: it is not valid JSON');
    expect(e2.message).not.toContain(PASSWORD);
  });
});
