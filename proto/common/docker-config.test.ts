import { describe, expect, it } from 'vitest';
import {
  credentialFor,
  DockerConfigError,
  dockerCredentialHelpers,
  normaliseRegistryKey,
  parseDockerConfig,
  registryKeyMatches,
  type DockerConfigEntry,
} from './docker-config.js';
import { parseImageReference } from './image-reference.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const config = (auths: Record<string, unknown>): string => JSON.stringify({ auths });

describe('normaliseRegistryKey', () => {
  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['https://registry-1.docker.io/v2/', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['https://Registry.Example.com:5000/v2/', 'registry.example.com:5000'],
    ['http://127.0.0.1:5000', '127.0.0.1:5000'],
    ['http://127.0.0.1:5000/', '127.0.0.1:5000'],
    ['https://Registry.Example.com/team/', 'registry.example.com/team'],
    ['https://r.example.com/v2/team/app', 'r.example.com/team/app'],
    ['r.example.com/v10', 'r.example.com/v10'],
    ['*.example.com', '*.example.com'],
    ['ghcr.io', 'ghcr.io'],
  ])('%s -> %s', (key, want) => expect(normaliseRegistryKey(key)).toBe(want));
});

describe('parseDockerConfig: one entry', () => {
  // What Docker's CLI and the kubelet make of one "auths" entry: "auth" wins when present.
  it.each<[string, Record<string, unknown>, { username: string; password: string; identityToken?: string } | undefined]>([
    ['auth only', { auth: b64('alice:pw') }, { username: 'alice', password: 'pw' }],
    ['username and password only', { username: 'bob', password: 'pw2' }, { username: 'bob', password: 'pw2' }],
    ['auth wins over username and password', { auth: b64('alice:pw'), username: 'bob', password: 'pw2' }, { username: 'alice', password: 'pw' }],
    ['auth wins over a username alone', { auth: b64('alice:pw'), username: 'bob' }, { username: 'alice', password: 'pw' }],
    ['password split at the first colon', { auth: b64('alice:p:w') }, { username: 'alice', password: 'p:w' }],
    ['unpadded auth', { auth: b64('ab:c').replace(/=+$/, '') }, { username: 'ab', password: 'c' }],
    ['empty auth falls back to username and password', { auth: '', username: 'bob', password: 'pw2' }, { username: 'bob', password: 'pw2' }],
    ['field names in any case', { Username: 'bob', PASSWORD: 'pw2' }, { username: 'bob', password: 'pw2' }],
    ['identity token', { identitytoken: 'tok' }, { username: '', password: '', identityToken: 'tok' }],
    ['identityToken spelled in camel case', { identityToken: 'tok' }, { username: '', password: '', identityToken: 'tok' }],
    ['no user and no token', { email: 'a@example.com' }, undefined],
    ['empty entry', {}, undefined],
  ])('%s', (_kind, entry, want) => {
    const got = parseDockerConfig(config({ 'r.example.com': entry }), 'config.json');
    expect(got[0]).toEqual(want === undefined ? undefined : { registry: 'r.example.com', identityToken: '', registryToken: '', ...want });
  });

  it.each([
    ['auth without a colon', { auth: b64('alice') }, '"auth" of the entry for "r.example.com" is not base64 of "user:password"'],
    ['auth with an empty user', { auth: b64(':hunter2-secret') }, '"auth" of the entry for "r.example.com" is not base64 of "user:password"'],
    ['auth that is not base64', { auth: 'hunter2-secret!' }, '"auth" of the entry for "r.example.com" is not base64 of "user:password"'],
    ['a password that is not a string', { username: 'u', password: 12345 }, '"password" of the entry for "r.example.com" is not a string'],
    ['an entry that is not an object', 'hunter2-secret', 'the entry for "r.example.com" is not an object'],
  ])('refuses %s, naming the source and the key only', (_kind, entry, words) => {
    let error: unknown;
    try {
      parseDockerConfig(config({ 'r.example.com': entry }), 'ns/regcred');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(DockerConfigError);
    expect((error as Error).message).toBe(`cannot use Docker config ns/regcred: ${words}`);
    expect((error as Error).message).not.toContain('hunter2');
  });
});

describe('parseDockerConfig: the file', () => {
  it('reads every entry and normalises its key', () => {
    const entries = parseDockerConfig(
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
    );
    expect(entries).toEqual([
      { registry: 'docker.io', username: 'hubuser', password: 'hub:pass', identityToken: '', registryToken: '' },
      { registry: 'registry.example.com:5000', username: 'u', password: 'p', identityToken: '', registryToken: '' },
      { registry: 'ghcr.io', username: '', password: '', identityToken: 'id-token', registryToken: '' },
    ]);
  });

  it.each([
    ['the bare host wins over a URL', { 'https://r.example.com/v1/': { auth: b64('a:1') }, 'r.example.com': { auth: b64('b:2') } }, 'b'],
    ['the bare host wins in either order', { 'r.example.com': { auth: b64('b:2') }, 'https://r.example.com/': { auth: b64('a:1') } }, 'b'],
    ['otherwise the first', { 'https://r.example.com/': { auth: b64('a:1') }, 'http://r.example.com': { auth: b64('b:2') } }, 'a'],
    ["Docker Hub's own key wins", { 'docker.io': { auth: b64('a:1') }, 'https://index.docker.io/v1/': { auth: b64('b:2') } }, 'b'],
  ])('keys that normalise alike: %s', (_kind, auths, user) => {
    const entries = parseDockerConfig(config(auths), 'c');
    expect(entries.map((e) => e.username)).toEqual([user]);
  });

  it.each([
    ['no "auths"', '{}', []],
    ['"auths": null', '{"auths": null}', []],
  ])('%s gives no credentials', (_kind, text, want) => expect(parseDockerConfig(text, 'c')).toEqual(want));

  it('refuses malformed files without echoing their content', () => {
    const secret = 'hunter2-secret';
    for (const text of [`{"auths": {"x": {"password": "${secret}"`, '[]', `"${secret}"`, '{"auths": []}', `{"auths": "${secret}"}`]) {
      let error: unknown;
      try {
        parseDockerConfig(text, '/some/config.json');
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(DockerConfigError);
      expect((error as Error).message).toMatch(/^cannot use Docker config \/some\/config\.json: /);
      expect((error as Error).message).not.toContain(secret);
    }
  });
});

describe('dockerCredentialHelpers', () => {
  it('reads credsStore and credHelpers, keyed like "auths"', () => {
    const helpers = dockerCredentialHelpers(
      JSON.stringify({ credsStore: 'desktop', credHelpers: { 'https://index.docker.io/v1/': 'hub', 'GCR.io': 'gcloud', '123.dkr.ecr.eu-west-1.amazonaws.com': 'ecr-login' } }),
      'config.json',
    );
    expect(helpers.credsStore).toBe('desktop');
    expect([...helpers.credHelpers]).toEqual([
      ['docker.io', 'hub'],
      ['gcr.io', 'gcloud'],
      ['123.dkr.ecr.eu-west-1.amazonaws.com', 'ecr-login'],
    ]);
    expect(dockerCredentialHelpers('{"auths": {}}', 'c')).toEqual({ credsStore: undefined, credHelpers: new Map() });
  });

  it.each([
    ['{"credsStore": "../../bin/sh"}', '"credsStore" is not a credential helper name'],
    ['{"credsStore": 7}', '"credsStore" is not a credential helper name'],
    ['{"credHelpers": {"r.io": "a/b"}}', 'the credHelpers entry for "r.io" is not a credential helper name'],
    ['{"credHelpers": ["x"]}', '"credHelpers" is not an object'],
  ])('refuses %s', (text, words) => {
    expect(() => dockerCredentialHelpers(text, 'c')).toThrow(`cannot use Docker config c: ${words}`);
  });
});

describe('matching an entry to an image', () => {
  const entry = (registry: string, username = registry): DockerConfigEntry => ({ registry, username, password: 'p', identityToken: '', registryToken: '' });

  it.each([
    // key, image, matches
    ['docker.io', 'busybox', true],
    ['docker.io', 'index.docker.io/library/busybox', true],
    ['https://index.docker.io/v1/', 'docker.io/me/app', true],
    ['registry-1.docker.io', 'busybox', true],
    ['docker.io/library', 'busybox', true],
    ['docker.io/me', 'busybox', false],
    ['127.0.0.1:5000', '127.0.0.1:5000/app:v1', true],
    ['http://127.0.0.1:5000/', '127.0.0.1:5000/app:v1', true],
    ['127.0.0.1:5000', '127.0.0.1:5001/app:v1', false],
    ['127.0.0.1:5000', '127.0.0.1/app:v1', false],
    ['Registry.Example.com', 'registry.example.com/app', true],
    ['registry.example.com', 'Registry.Example.com/app', true],
    ['quay.io/team', 'quay.io/team/app', true],
    ['quay.io/team', 'quay.io/team', true],
    ['quay.io/team', 'quay.io/teamx/app', false],
    ['*.example.com', 'reg.example.com/a', true],
    ['*.example.com', 'a.b.example.com/a', false],
    ['*.example.com', 'reg.example.com:5000/a', false],
    ['*.example.com:5000', 'reg.example.com:5000/a', true],
    ['ghcr.io', 'docker.io/ghcr.io', false],
  ])('%s applies to %s: %s', (key, image, want) => {
    expect(registryKeyMatches(key, parseImageReference(image))).toBe(want);
  });

  it.each([
    ['quay.io/team/app', 'quay.io/team/app', 'quay.io/team/app'],
    ['quay.io/team/other', 'quay.io/team', 'quay.io/team'],
    ['quay.io/else/x', 'quay.io', 'quay.io'],
    ['reg.example.com/a', 'reg.example.com', 'reg.example.com'],
    ['other.example.com/a', '*.example.com', '*.example.com'],
    ['ghcr.io/a', 'none', undefined],
  ])('of several keys, %s uses %s', (image, _why, want) => {
    const entries = [entry('quay.io'), entry('*.example.com'), entry('quay.io/team'), entry('reg.example.com'), entry('quay.io/team/app')];
    expect(credentialFor(entries, parseImageReference(image))?.username).toBe(want);
  });

  it('takes the first of equally good keys, and skips credentials that name no registry', () => {
    const entries = [{ registry: '' }, { registry: 'r.io', username: 'first' }, { registry: 'https://r.io/', username: 'second' }];
    expect(credentialFor(entries, parseImageReference('r.io/app'))?.username).toBe('first');
  });
});
