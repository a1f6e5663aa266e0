import { describe, expect, it } from 'vitest';
import { parseWarmConfig, UsageError } from './config.js';

const none = (): boolean => false;

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('parseWarmConfig', () => {
  it('takes flags first, then STOKER_* variables, then defaults, and freezes the result', () => {
    const config = parseWarmConfig({ image: ['a', 'b'], concurrency: '3' }, { STOKER_CONCURRENCY: '9', STOKER_PULL_POLICY: 'Always', DOCKER_CONFIG: '/cfg' }, none);
    expect(config).toMatchObject({
      images: ['a', 'b'],
      concurrency: 3,
      pullPolicy: 'ALWAYS',
      dockerConfigDir: '/cfg',
      progressTimeoutMs: 120_000,
      pullTimeoutMs: 0,
      json: false,
    });
    expect(config.criEndpoint.display).toBe('unix:///run/containerd/containerd.sock');
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads everything from the environment', () => {
    const config = parseWarmConfig(
      {},
      {
        STOKER_IMAGES: 'a, b,c',
        STOKER_CRI_ENDPOINT: '/run/crio/crio.sock',
        STOKER_AUTH_FILE: '/auth.json',
        STOKER_PROGRESS_TIMEOUT: '5',
        STOKER_PULL_TIMEOUT: '60',
        STOKER_JSON: 'true',
      },
      none,
    );
    expect(config).toMatchObject({ images: ['a', 'b', 'c'], authFile: '/auth.json', progressTimeoutMs: 5_000, pullTimeoutMs: 60_000, json: true });
    expect(config.criEndpoint.display).toBe('unix:///run/crio/crio.sock');
  });

  it('names the bad value and where it came from', () => {
    expect(usageError(() => parseWarmConfig({ image: ['a'], concurrency: '0' }, {}, none))).toBe('--concurrency must be a whole number >= 1, got "0"');
    expect(usageError(() => parseWarmConfig({ image: ['a'] }, { STOKER_PULL_POLICY: 'Sometimes' }, none))).toBe(
      'STOKER_PULL_POLICY must be IfNotPresent or Always, got "Sometimes"',
    );
    expect(usageError(() => parseWarmConfig({ image: ['a'], criEndpoint: 'http://x' }, {}, none))).toContain('"http://x"');
    expect(usageError(() => parseWarmConfig({ image: ['a'] }, { STOKER_JSON: 'maybe' }, none))).toContain('"maybe"');
    expect(usageError(() => parseWarmConfig({}, {}, none))).toContain('--image');
  });
});

describe('parseWarmConfig: the file flags', () => {
  it('takes flags first, then comma-separated environment variables', () => {
    const c = parseWarmConfig({ path: ['/models/a'] }, { STOKER_ALLOWED_ROOTS: '/models, /data', STOKER_INCLUDE: '*.bin' }, none);
    expect(c.images).toEqual([]);
    expect(c.files).toMatchObject({ paths: ['/models/a'], allowedRoots: ['/models', '/data'], include: ['*.bin'], budget: 'warn' });
    expect(Object.isFrozen(c.files)).toBe(true);
  });

  it('names the bad value', () => {
    expect(usageError(() => parseWarmConfig({ path: ['/m'] }, {}, none))).toMatch(/--allowed-root/);
    expect(usageError(() => parseWarmConfig({ path: ['models'], allowedRoot: ['/m'] }, {}, none))).toBe('--path must be absolute, got "models"');
    expect(usageError(() => parseWarmConfig({ path: ['/m'], allowedRoot: ['/m'], budget: 'maybe' }, {}, none))).toBe(
      '--budget must be warn, refuse or off, got "maybe"',
    );
    expect(usageError(() => parseWarmConfig({ path: ['/m'], allowedRoot: ['/m'], readers: '0' }, {}, none))).toMatch(/--readers .* got "0"/);
    expect(usageError(() => parseWarmConfig({ image: ['a'], include: ['*.bin'] }, {}, none))).toMatch(/need a --path/);
  });
});
