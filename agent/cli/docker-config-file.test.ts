import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerConfigError, loadDockerCredentials } from './docker-config-file.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('loadDockerCredentials', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-dockercfg-'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'a.example.com': { auth: b64('x:y') } } }));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads $DOCKER_CONFIG/config.json', async () => {
    const creds = await loadDockerCredentials({ dockerConfigDir: dir, home: '/nonexistent' });
    expect(creds).toEqual([{ registry: 'a.example.com', username: 'x', password: 'y', auth: '', identityToken: '', registryToken: '' }]);
  });
  it('falls back to ~/.docker/config.json, and a missing default file means no credentials', async () => {
    expect(await loadDockerCredentials({ home: join(dir, 'nohome') })).toEqual([]);
  });
  it('an explicit file wins, and a missing explicit file is an error naming it', async () => {
    expect((await loadDockerCredentials({ authFile: join(dir, 'config.json'), dockerConfigDir: '/nonexistent' })).length).toBe(1);
    await expect(loadDockerCredentials({ authFile: join(dir, 'missing.json') })).rejects.toThrow(/missing\.json: no such file/);
  });
  it('a malformed file is an error naming it', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"auths": [');
    const err = await loadDockerCredentials({ authFile: bad }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockerConfigError);
    expect((err as Error).message).toBe(`cannot use Docker config ${bad}: it is not valid JSON`);
  });
});
