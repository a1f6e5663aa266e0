import { describe, expect, it } from 'vitest';
import { ConfigError, resolveWarmConfig } from './config.js';

const none = (): boolean => false;

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveWarmConfig', () => {
  it('takes flags first, then STOKER_* variables, then defaults, and freezes the result', () => {
    const config = resolveWarmConfig({ image: ['a', 'b'], concurrency: '3' }, { STOKER_CONCURRENCY: '9', STOKER_PULL_POLICY: 'Always', DOCKER_CONFIG: '/cfg' }, none);
    expect(config).toMatchObject({
      images: ['a', 'b'],
      concurrency: 3,
      pullPolicy: 'ALWAYS',
      dockerConfigDir: '/cfg',
      progressTimeoutMs: 120_000,
      pullTimeoutMs: 0,
      json: false,
      logLevel: 'error',
      authFile: undefined,
    });
    expect(config.files).toEqual({ paths: [], allowedRoots: [], include: [], exclude: [], budget: 'warn', readers: 32 });
    expect(config.criEndpoint.display).toBe('unix:///run/containerd/containerd.sock');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.images)).toBe(true);
    expect(Object.isFrozen(config.files)).toBe(true);
  });

  it('reads everything from the environment', () => {
    const config = resolveWarmConfig(
      {},
      {
        STOKER_IMAGES: 'a, b,c d',
        STOKER_CRI_ENDPOINT: '/run/crio/crio.sock',
        STOKER_AUTH_FILE: '/auth.json',
        STOKER_PROGRESS_TIMEOUT: '5',
        STOKER_PULL_TIMEOUT: '1m',
        STOKER_JSON: 'yes',
        STOKER_LOG_LEVEL: 'debug',
      },
      none,
    );
    expect(config).toMatchObject({ images: ['a', 'b', 'c', 'd'], authFile: '/auth.json', progressTimeoutMs: 5_000, pullTimeoutMs: 60_000, json: true, logLevel: 'debug' });
    expect(config.criEndpoint.display).toBe('unix:///run/crio/crio.sock');
  });

  it('probes for the default CRI endpoint: containerd, then CRI-O', () => {
    const crio = resolveWarmConfig({ image: ['a'] }, {}, (p) => p === '/run/crio/crio.sock');
    expect(crio.criEndpoint.display).toBe('unix:///run/crio/crio.sock');
    const both = resolveWarmConfig({ image: ['a'] }, {}, () => true);
    expect(both.criEndpoint.display).toBe('unix:///run/containerd/containerd.sock');
  });

  it('takes durations for the timeouts (a bare number is seconds) and at most 64 pulls at once', () => {
    const config = resolveWarmConfig({ image: ['a'], progressTimeout: '5m', pullTimeout: '1.5', concurrency: '64' }, {}, none);
    expect(config).toMatchObject({ progressTimeoutMs: 300_000, pullTimeoutMs: 1_500, concurrency: 64 });
    expect(configError(() => resolveWarmConfig({ image: ['a'], concurrency: '65' }, {}, none))).toBe('--concurrency "65" is not a whole number from 1 to 64');
    expect(configError(() => resolveWarmConfig({ image: ['a'], pullTimeout: '2d' }, {}, none))).toBe('--pull-timeout "2d" is not a duration like 90s, 5m or 1h');
  });

  it('counts an empty flag or variable as unset', () => {
    const config = resolveWarmConfig({ image: ['a'], concurrency: '', logLevel: '' }, { STOKER_CONCURRENCY: '', STOKER_JSON: '' }, none);
    expect(config).toMatchObject({ concurrency: 4, logLevel: 'error', json: false });
  });

  it('reads STOKER_JSON as true/false, 1/0 or yes/no, and refuses anything else', () => {
    for (const [text, json] of [['true', true], ['1', true], ['YES', true], ['false', false], ['0', false], ['no', false]] as const) {
      expect(resolveWarmConfig({ image: ['a'] }, { STOKER_JSON: text }, none).json).toBe(json);
    }
    expect(configError(() => resolveWarmConfig({ image: ['a'] }, { STOKER_JSON: 'on' }, none))).toBe('--json (from STOKER_JSON) "on" is not true or false');
    expect(configError(() => resolveWarmConfig({ image: ['a'] }, { STOKER_JSON: 'off' }, none))).toBe('--json (from STOKER_JSON) "off" is not true or false');
  });

  it('names the flag, the variable when the value came from there, and the bad value', () => {
    expect(configError(() => resolveWarmConfig({ image: ['a'], concurrency: '0' }, {}, none))).toBe('--concurrency "0" is not a whole number from 1 to 64');
    expect(configError(() => resolveWarmConfig({ image: ['a'] }, { STOKER_PULL_POLICY: 'Sometimes' }, none))).toBe(
      '--pull-policy (from STOKER_PULL_POLICY) "Sometimes" is not IfNotPresent or Always',
    );
    expect(configError(() => resolveWarmConfig({ image: ['a'], criEndpoint: 'http://x' }, {}, none))).toBe(
      '--cri-endpoint "http://x" is not a CRI endpoint: use unix:///path/to/socket (or tcp://host:port)',
    );
    expect(configError(() => resolveWarmConfig({ image: ['a'], progressTimeout: '-1' }, {}, none))).toBe(
      '--progress-timeout "-1" is not a duration like 90s, 5m or 1h',
    );
    expect(configError(() => resolveWarmConfig({ image: ['a'] }, { STOKER_LOG_LEVEL: 'loud' }, none))).toMatch(
      /^--log-level \(from STOKER_LOG_LEVEL\) "loud" is not one of fatal, error, /,
    );
    expect(configError(() => resolveWarmConfig({}, {}, none))).toBe('--image or --path is required: nothing to warm (or set STOKER_IMAGES or STOKER_PATHS)');
  });
});

describe('resolveWarmConfig: registries and credential providers', () => {
  it('compiles --registry-allow and --registry-deny over the built-in rules', () => {
    const c = resolveWarmConfig({ image: ['a'], registryDeny: ['*.example.com'] }, { STOKER_REGISTRY_ALLOW: 'r.io, *.example.com' }, none);
    expect(c.registryPolicy.allow.map((p) => p.text)).toEqual(['r.io', '*.example.com']);
    expect(c.registryPolicy.deny.map((p) => p.text)).toEqual(['*.example.com']);
    expect(resolveWarmConfig({ image: ['a'] }, {}, none).registryPolicy).toEqual({ allow: [], deny: [] });
  });

  it('names a bad pattern and where it came from', () => {
    expect(configError(() => resolveWarmConfig({ image: ['a'], registryDeny: ['10.0.0.0/40'] }, {}, none))).toBe(
      '--registry-deny "10.0.0.0/40" has a prefix length that is not 0 to 32',
    );
    expect(configError(() => resolveWarmConfig({ image: ['a'] }, { STOKER_REGISTRY_ALLOW: 'https://r.io' }, none))).toBe(
      '--registry-allow (from STOKER_REGISTRY_ALLOW) "https://r.io" is not an address range (10.0.0.0/8, fd00::/8)',
    );
  });

  it('takes the credential provider config and bin dir together, or neither', () => {
    const c = resolveWarmConfig({ image: ['a'], imageCredentialProviderConfig: '/etc/cp.yaml' }, { STOKER_IMAGE_CREDENTIAL_PROVIDER_BIN_DIR: '/opt/cp' }, none);
    expect(c.credentialProviders).toEqual({ configPath: '/etc/cp.yaml', binDir: '/opt/cp' });
    expect(resolveWarmConfig({ image: ['a'] }, {}, none).credentialProviders).toBeUndefined();
    expect(configError(() => resolveWarmConfig({ image: ['a'], imageCredentialProviderConfig: '/etc/cp.yaml' }, {}, none))).toBe(
      '--image-credential-provider-config "/etc/cp.yaml" needs --image-credential-provider-bin-dir (or STOKER_IMAGE_CREDENTIAL_PROVIDER_BIN_DIR)',
    );
  });
});

describe('resolveWarmConfig: the file flags', () => {
  it('takes flags first, then comma-separated environment variables', () => {
    const c = resolveWarmConfig({ path: ['/models/a'] }, { STOKER_ALLOWED_ROOTS: '/models, /data/', STOKER_INCLUDE: '*.bin', STOKER_BUDGET: 'Refuse' }, none);
    expect(c.images).toEqual([]);
    expect(c.files).toMatchObject({ paths: ['/models/a'], allowedRoots: ['/models', '/data'], include: ['*.bin'], budget: 'refuse' });
  });

  it('keeps a path as given, so the walk can refuse its ".."', () => {
    const c = resolveWarmConfig({ path: ['/models/../etc'], allowedRoot: ['/models'] }, {}, none);
    expect(c.files.paths).toEqual(['/models/../etc']);
  });

  it('names the bad value', () => {
    expect(configError(() => resolveWarmConfig({ path: ['/m'] }, {}, none))).toBe(
      '--path needs at least one --allowed-root (or STOKER_ALLOWED_ROOTS): no file is read outside the roots it is given',
    );
    expect(configError(() => resolveWarmConfig({}, { STOKER_PATHS: '/m' }, none))).toMatch(/^--path \(from STOKER_PATHS\) "\/m" needs at least one --allowed-root/);
    expect(configError(() => resolveWarmConfig({ path: ['/m', 'models'], allowedRoot: ['/m'] }, {}, none))).toBe('--path "models" is not an absolute path');
    expect(configError(() => resolveWarmConfig({ path: ['/m'], allowedRoot: ['m'] }, {}, none))).toBe('--allowed-root "m" is not an absolute directory');
    expect(configError(() => resolveWarmConfig({ path: ['/m'], allowedRoot: ['/m'], budget: 'maybe' }, {}, none))).toBe(
      '--budget "maybe" is not one of warn, refuse, off',
    );
    expect(configError(() => resolveWarmConfig({ path: ['/m'], allowedRoot: ['/m'], readers: '0' }, {}, none))).toBe(
      '--readers "0" is not a whole number from 1 to 1024',
    );
    expect(configError(() => resolveWarmConfig({ image: ['a'], include: ['*.bin'] }, {}, none))).toBe('--include needs a --path');
    expect(configError(() => resolveWarmConfig({ image: ['a'], exclude: ['*.pt'] }, {}, none))).toBe('--exclude needs a --path');
  });
});
