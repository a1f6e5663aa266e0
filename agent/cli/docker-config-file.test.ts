import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseImageReference } from '../../proto/common/image-reference.js';
import { CredentialHelperError, DockerConfigError, helperCredential, helperFor, helperServerUrl, loadDockerConfig } from './docker-config-file.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('loadDockerConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-dockercfg-'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'a.example.com': { auth: b64('x:y') } }, credHelpers: { 'b.example.com': 'b' } }));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads $DOCKER_CONFIG/config.json, its entries and its helpers', async () => {
    const docker = await loadDockerConfig({ dockerConfigDir: dir, home: '/nonexistent' });
    expect(docker.credentials).toEqual([{ registry: 'a.example.com', username: 'x', password: 'y', auth: '', identityToken: '', registryToken: '' }]);
    expect(docker.helpers.credHelpers.get('b.example.com')).toBe('b');
  });
  it('falls back to ~/.docker/config.json, and a missing default file means no credentials', async () => {
    expect(await loadDockerConfig({ home: join(dir, 'nohome') })).toMatchObject({ credentials: [], helpers: { credsStore: undefined } });
  });
  it('an explicit file wins, and a missing explicit file is an error naming it', async () => {
    expect((await loadDockerConfig({ authFile: join(dir, 'config.json'), dockerConfigDir: '/nonexistent' })).credentials.length).toBe(1);
    await expect(loadDockerConfig({ authFile: join(dir, 'missing.json') })).rejects.toThrow(/missing\.json: no such file/);
  });
  it('a malformed file is an error naming it', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"auths": [');
    const err = await loadDockerConfig({ authFile: bad }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockerConfigError);
    expect((err as Error).message).toBe(`cannot use Docker config ${bad}: it is not valid JSON`);
  });
});

describe('Docker credential helpers', () => {
  let dir: string;
  const env = (): NodeJS.ProcessEnv => ({ PATH: `${dir}:/usr/bin:/bin`, STOKER_HELPER_LOG: join(dir, 'calls.log') });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-helpers-'));
    // A helper as docker-credential-helpers writes them: `get`, the server URL on stdin.
    const helper = (name: string, body: string): Promise<void> =>
      writeFile(join(dir, `docker-credential-${name}`), `#!/bin/sh\nserver=$(cat)\nprintf '%s %s\\n' "$1" "$server" >> "$STOKER_HELPER_LOG"\n${body}\n`, { mode: 0o755 });
    await helper('store', `case "$server" in
  r.example.com) echo '{"ServerURL":"r.example.com","Username":"alice","Secret":"Helper-Pa55"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"id-token-123"}' ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac`);
    await helper('broken', "echo 'keychain locked' >&2; exit 3");
    await helper('noisy', "echo 'not json at all Helper-Pa55'");
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('runs `docker-credential-<name> get` with the server URL on stdin', async () => {
    expect(await helperCredential('store', 'r.example.com', { env: env() })).toEqual({
      registry: 'r.example.com',
      username: 'alice',
      password: 'Helper-Pa55',
      auth: '',
      identityToken: '',
      registryToken: '',
    });
    expect(await readFile(join(dir, 'calls.log'), 'utf8')).toBe('get r.example.com\n');
  });

  it('reads a "<token>" user as an identity token, and "credentials not found" as none', async () => {
    expect(await helperCredential('store', 'https://index.docker.io/v1/', { env: env() })).toMatchObject({ username: '', password: '', identityToken: 'id-token-123' });
    expect(await helperCredential('store', 'ghcr.io', { env: env() })).toBeUndefined();
  });

  it('names the helper and the server when it fails, never its output', async () => {
    await expect(helperCredential('broken', 'r.example.com', { env: env() })).rejects.toThrow(
      'credential helper failed for r.example.com: docker-credential-broken exited with 3: keychain locked',
    );
    const garbled = await helperCredential('noisy', 'r.example.com', { env: env() }).catch((e: unknown) => e);
    expect(garbled).toBeInstanceOf(CredentialHelperError);
    expect((garbled as Error).message).toBe('credential helper docker-credential-noisy answered for r.example.com with something that is not JSON');
    await expect(helperCredential('absent', 'r.example.com', { env: env() })).rejects.toThrow(
      'credential helper failed for r.example.com: docker-credential-absent cannot be run (ENOENT)',
    );
  });

  it('picks the credHelpers entry for the registry, else credsStore, and Docker Hub by its login URL', () => {
    const helpers = { credsStore: 'store', credHelpers: new Map([['gcr.io', 'gcloud']]) };
    expect(helperFor(helpers, parseImageReference('gcr.io/p/app'))).toBe('gcloud');
    expect(helperFor(helpers, parseImageReference('r.example.com/app'))).toBe('store');
    expect(helperFor({ credsStore: undefined, credHelpers: new Map() }, parseImageReference('r.example.com/app'))).toBeUndefined();
    expect(helperServerUrl(parseImageReference('busybox'))).toBe('https://index.docker.io/v1/');
    expect(helperServerUrl(parseImageReference('127.0.0.1:5000/app'))).toBe('127.0.0.1:5000');
  });
});
