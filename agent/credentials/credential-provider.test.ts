import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseImageReference } from '../../proto/common/image-reference.js';
import {
  CredentialProviderConfigError,
  kubeletImageMatches,
  loadCredentialProviders,
  parseGoDuration,
  readCredentialProviderConfig,
} from './credential-provider.js';

describe('parseGoDuration', () => {
  it.each([
    ['0', 0],
    ['0s', 0],
    ['12h', 12 * 3600_000],
    ['1h30m', 90 * 60_000],
    ['1.5h', 90 * 60_000],
    ['300ms', 300],
    ['2m3s', 123_000],
    ['-1s', -1000],
    ['1500us', 1.5],
  ])('%s is %d ms', (text, ms) => expect(parseGoDuration(text)).toBe(ms));
  it.each(['', '12', '1d', 'h', '1h 30m', 'forever'])('%j is not a duration', (text) => expect(parseGoDuration(text)).toBeUndefined());
});

describe("the kubelet's image matching", () => {
  it.each([
    // [pattern, image, matches] as pkg/credentialprovider's URLsMatchStr decides
    ['*.dkr.ecr.*.amazonaws.com', '123456789.dkr.ecr.us-east-1.amazonaws.com/app', true],
    ['*.dkr.ecr.*.amazonaws.com', '123456789.dkr.ecr.us-east-1.amazonaws.com.cn/app', false],
    ['*.azurecr.io', 'team.azurecr.io/app', true],
    ['*.io', 'team.azurecr.io/app', false],
    ['app*.k8s.io', 'apps.k8s.io/x', true],
    ['k8s.*', 'k8s.io/x', true],
    ['gcr.io', 'gcr.io/project/app', true],
    ['gcr.io', 'eu.gcr.io/project/app', false],
    ['registry.io:8080/path', 'registry.io:8080/path/app', true],
    ['registry.io:8080/path', 'registry.io:8080/pathology/app', true],
    ['registry.io:8080/path', 'registry.io:8080/other/app', false],
    ['registry.io:8080/path', 'registry.io/path/app', false],
    ['registry.io', 'registry.io:8080/app', false],
    ['127.0.0.1:5000', '127.0.0.1:5000/team/app', true],
    ['127.0.0.*:5000', '127.0.0.1:5000/team/app', true],
    ['*', 'localhost/app', true],
    ['*', 'docker.io/library/busybox', false],
    ['docker.io', 'docker.io/library/busybox', true],
    ['reg-[a-c].io', 'reg-b.io/x', true],
    ['reg-[^a-c].io', 'reg-b.io/x', false],
    // "?" starts a URL query before any glob sees it, in the kubelet too.
    ['reg-?.io', 'reg-b.io/x', false],
    ['reg-[a.io', 'reg-a.io/x', false],
  ])('%s matches %s: %s', (pattern, image, want) => expect(kubeletImageMatches(pattern, image)).toBe(want));
});

describe('the CredentialProviderConfig', () => {
  let dir: string;
  const write = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };
  const provider = (extra: string): string => `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: ecr-credential-provider
    matchImages: ["*.dkr.ecr.*.amazonaws.com"]
    defaultCacheDuration: "12h"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
${extra}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-cpconfig-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads YAML with args and env, and JSON', async () => {
    const yaml = await write('c.yaml', provider('    args: [get-credentials]\n    env:\n      - name: AWS_PROFILE\n        value: nodes\n'));
    expect(await readCredentialProviderConfig(yaml)).toEqual([
      {
        name: 'ecr-credential-provider',
        matchImages: ['*.dkr.ecr.*.amazonaws.com'],
        defaultCacheDurationMs: 12 * 3600_000,
        apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
        args: ['get-credentials'],
        env: [{ name: 'AWS_PROFILE', value: 'nodes' }],
      },
    ]);
    const json = await write(
      'c.json',
      JSON.stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'CredentialProviderConfig',
        providers: [{ name: 'acr', matchImages: ['*.azurecr.io'], defaultCacheDuration: '0s', apiVersion: 'credentialprovider.kubelet.k8s.io/v1beta1' }],
      }),
    );
    expect((await readCredentialProviderConfig(json)).map((p) => [p.name, p.defaultCacheDurationMs])).toEqual([['acr', 0]]);
  });

  it('reads a directory in name order and refuses a provider named twice', async () => {
    const sub = join(dir, 'conf.d');
    await mkdir(sub);
    await writeFile(join(sub, '20-b.yml'), provider('').replace('ecr-credential-provider', 'b'));
    await writeFile(join(sub, '10-a.json'), JSON.stringify({ apiVersion: 'kubelet.config.k8s.io/v1', kind: 'CredentialProviderConfig', providers: [{ name: 'a', matchImages: ['a.io'], defaultCacheDuration: '1m', apiVersion: 'credentialprovider.kubelet.k8s.io/v1' }] }));
    await writeFile(join(sub, 'README'), 'not config');
    expect((await readCredentialProviderConfig(sub)).map((p) => p.name)).toEqual(['a', 'b']);
    await writeFile(join(sub, '30-dup.yaml'), provider('').replace('ecr-credential-provider', 'a'));
    await expect(readCredentialProviderConfig(sub)).rejects.toThrow(`credential provider config ${sub}: provider "a" is named more than once`);
  });

  it.each([
    ['kind: Other\napiVersion: kubelet.config.k8s.io/v1\n', 'kind is "Other", want "CredentialProviderConfig"'],
    ['kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v2\n', 'apiVersion is "kubelet.config.k8s.io/v2"'],
    [provider('').replace('  - name: ecr-credential-provider', '  - name: ../bin/sh'), 'the name may not contain "/"'],
    [provider('').replace('    defaultCacheDuration: "12h"\n', ''), 'provider "ecr-credential-provider": defaultCacheDuration is required'],
    [provider('').replace('"12h"', '"-1h"'), 'defaultCacheDuration must be 0 or more'],
    [provider('').replace('"12h"', '"12 hours"'), 'defaultCacheDuration "12 hours" is not a duration'],
    [provider('').replace('["*.dkr.ecr.*.amazonaws.com"]', '[]'), 'matchImages needs at least one item'],
    [provider('').replace('credentialprovider.kubelet.k8s.io/v1', 'credentialprovider.kubelet.k8s.io/v2'), 'apiVersion "credentialprovider.kubelet.k8s.io/v2" is not one of'],
    [provider('    tokenAttributes:\n      serviceAccountTokenAudience: sts.amazonaws.com\n'), 'tokenAttributes (service account tokens for the plugin) is not supported'],
    [provider('    cacheDuration: 1h\n'), 'unknown field "cacheDuration"'],
    ['kind: CredentialProviderConfig\napiVersion: kubelet.config.k8s.io/v1\nproviders: []\n', 'it names no provider'],
    ['providers: [', 'it is not valid YAML or JSON'],
  ])('refuses a bad config, naming the file and the problem (%#)', async (text, words) => {
    const path = await write('bad.yaml', text);
    const err = await readCredentialProviderConfig(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CredentialProviderConfigError);
    expect((err as Error).message).toContain(`credential provider config ${path}`);
    expect((err as Error).message).toContain(words);
  });

  it('refuses a missing bin dir or plugin executable', async () => {
    const config = await write('ok.yaml', provider(''));
    await expect(loadCredentialProviders({ configPath: config, binDir: join(dir, 'nope') })).rejects.toThrow(`credential provider bin dir ${join(dir, 'nope')} does not exist`);
    await expect(loadCredentialProviders({ configPath: config, binDir: dir })).rejects.toThrow(
      `credential provider "ecr-credential-provider": ${join(dir, 'ecr-credential-provider')} does not exist or is not executable`,
    );
  });
});

describe('running plugins', () => {
  let dir: string;
  let bin: string;
  let clock = 0;
  const warnings: string[] = [];

  /** A plugin script: logs its argv, env and stdin, then prints what `answer` (shell) prints. */
  const plugin = (name: string, answer: string): Promise<void> =>
    writeFile(
      join(bin, name),
      `#!/bin/sh\nrequest=$(cat)\nprintf '%s|%s|%s|%s\\n' "${name}" "$*" "$PLUGIN_MODE" "$request" >> "${join(dir, 'calls.log')}"\n${answer}\n`,
      { mode: 0o755 },
    );
  const response = (auth: Record<string, { username: string; password: string }>, extra: Record<string, unknown> = {}): string =>
    `cat <<'JSON'\n${JSON.stringify({ kind: 'CredentialProviderResponse', apiVersion: 'credentialprovider.kubelet.k8s.io/v1', cacheKeyType: 'Registry', auth, ...extra })}\nJSON`;
  const calls = async (): Promise<string[]> => (await readFile(join(dir, 'calls.log'), 'utf8').catch(() => '')).trim().split('\n').filter((l) => l !== '');
  const providers = async (yaml: string) => {
    const config = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(config, `apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n${yaml}`);
    return loadCredentialProviders({ configPath: config, binDir: bin, now: () => clock, onWarning: (w) => warnings.push(w), env: { PATH: '/usr/bin:/bin', PLUGIN_MODE: 'from-agent' } });
  };
  const entry = (name: string, match: string[], cache = '1m', extra = ''): string =>
    `  - name: ${name}\n    matchImages: ${JSON.stringify(match)}\n    defaultCacheDuration: "${cache}"\n    apiVersion: credentialprovider.kubelet.k8s.io/v1\n${extra}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-plugins-'));
    bin = join(dir, 'bin');
    await mkdir(bin);
    await plugin('ecr', response({ '*.dkr.ecr.*.amazonaws.com': { username: 'AWS', password: 'Ecr-Pa55word' } }));
    await plugin('per-image', response({ 'reg.io/team': { username: 'team', password: 'Team-Pa55' }, 'reg.io': { username: 'any', password: 'Any-Pa55' } }, { cacheKeyType: 'Image', cacheDuration: '0s' }));
    await plugin('global', response({ 'reg.io': { username: 'global', password: 'Global-Pa55' }, 'docker.io': { username: 'hub', password: 'Hub-Pa55' } }, { cacheKeyType: 'Global' }));
    await plugin('failing', "echo 'no instance role' >&2; exit 1");
    await plugin('wrong-version', response({ 'reg.io': { username: 'x', password: 'Wrong-Pa55' } }, { apiVersion: 'credentialprovider.kubelet.k8s.io/v1beta1' }));
    await plugin('wrong-key-type', response({ 'reg.io': { username: 'x', password: 'Bad-Pa55' } }, { cacheKeyType: 'Pod' }));
    await plugin('garbage', "echo 'Leaky-Pa55 is not json'");
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('sends the CredentialProviderRequest on stdin with the args and env, and uses the answer', async () => {
    const p = await providers(entry('ecr', ['*.dkr.ecr.*.amazonaws.com'], '1m', '    args: [get-credentials, --verbose]\n    env:\n      - name: PLUGIN_MODE\n        value: from-config\n'));
    const cred = await p.lookup(parseImageReference('123.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1'));
    expect(cred).toEqual({ registry: '123.dkr.ecr.eu-west-1.amazonaws.com', username: 'AWS', password: 'Ecr-Pa55word', auth: '', identityToken: '', registryToken: '' });
    expect((await calls()).at(-1)).toBe(
      'ecr|get-credentials --verbose|from-config|{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"123.dkr.ecr.eu-west-1.amazonaws.com/team/app"}',
    );
    expect(p.secrets()).toEqual(['Ecr-Pa55word']);
    // An image no matchImages pattern matches runs no plugin.
    const before = (await calls()).length;
    expect(await p.lookup(parseImageReference('ghcr.io/team/app'))).toBeUndefined();
    expect(await calls()).toHaveLength(before);
  });

  it('caches an answer by registry for its duration, and runs concurrent lookups once', async () => {
    const p = await providers(entry('ecr', ['*.dkr.ecr.*.amazonaws.com'], '10m'));
    const before = (await calls()).length;
    const images = ['1.dkr.ecr.x.amazonaws.com/a', '1.dkr.ecr.x.amazonaws.com/a', '1.dkr.ecr.x.amazonaws.com/b'].map((i) => parseImageReference(i));
    await Promise.all(images.map((i) => p.lookup(i)));
    await p.lookup(parseImageReference('1.dkr.ecr.x.amazonaws.com/c'));
    // One run for /a (shared by two lookups), one for /b started before the first answer was cached.
    expect((await calls()).length - before).toBe(2);
    clock += 10 * 60_000;
    await p.lookup(parseImageReference('1.dkr.ecr.x.amazonaws.com/c'));
    expect((await calls()).length - before).toBe(2);
    clock += 1;
    await p.lookup(parseImageReference('1.dkr.ecr.x.amazonaws.com/c'));
    expect((await calls()).length - before).toBe(3);
  });

  it('picks the most specific key, does not cache a zero duration, and merges providers in order', async () => {
    const p = await providers(entry('per-image', ['reg.io']) + entry('global', ['reg.io', 'docker.io']));
    expect((await p.lookup(parseImageReference('reg.io/team/app')))?.username).toBe('team');
    expect((await p.lookup(parseImageReference('reg.io/other/app')))?.username).toBe('any');
    const before = (await calls()).filter((c) => c.startsWith('per-image')).length;
    await p.lookup(parseImageReference('reg.io/team/app'));
    expect((await calls()).filter((c) => c.startsWith('per-image')).length).toBe(before + 1);
    // The global plugin's answer is cached for every image: Docker Hub's comes from the cache.
    const globalRuns = (await calls()).filter((c) => c.startsWith('global')).length;
    expect((await p.lookup(parseImageReference('busybox')))?.username).toBe('hub');
    expect((await calls()).filter((c) => c.startsWith('global'))).toHaveLength(globalRuns);
    // A Docker Hub image reaches a plugin as the kubelet names it.
    const hub = await providers(entry('global', ['docker.io']));
    expect((await hub.lookup(parseImageReference('busybox:1.36')))?.password).toBe('Hub-Pa55');
    expect((await calls()).at(-1)).toContain('"image":"docker.io/library/busybox"}');
  });

  it('warns about a plugin that fails or answers badly, naming it and the image but never its output, and gives no credential', async () => {
    warnings.length = 0;
    const p = await providers(entry('failing', ['reg.io']) + entry('wrong-version', ['reg.io']) + entry('wrong-key-type', ['reg.io']) + entry('garbage', ['reg.io']));
    expect(await p.lookup(parseImageReference('reg.io/app'))).toBeUndefined();
    expect(warnings).toEqual([
      `credential provider "failing" gave no credentials for reg.io/app: ${join(bin, 'failing')} exited with 1: no instance role`,
      'credential provider "wrong-version" gave no credentials for reg.io/app: its answer has apiVersion "credentialprovider.kubelet.k8s.io/v1beta1", want "credentialprovider.kubelet.k8s.io/v1"',
      'credential provider "wrong-key-type" gave no credentials for reg.io/app: its answer has cacheKeyType "Pod", want Image, Registry or Global',
      'credential provider "garbage" gave no credentials for reg.io/app: its answer is not JSON',
    ]);
    expect(warnings.join('\n')).not.toMatch(/Pa55/);
  });
});
