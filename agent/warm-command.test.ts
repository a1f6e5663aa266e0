import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EXIT_FAILED, EXIT_OK, parseWarmConfig, runWarm, UsageError, type WarmPart } from './warm-command.js';

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

describe('runWarm', () => {
  const config = parseWarmConfig({ image: ['x'], json: true }, {}, none);
  const part =
    (ok: boolean): WarmPart =>
    () =>
      Promise.resolve({
        key: 'images',
        ok,
        header: ['IMAGE', 'STATE', 'TIME', 'SIZE'],
        warnings: ok ? [] : ['something to know'],
        rows: [['x', ok ? 'done' : 'failed', '1.0s', '-']],
        failures: ok ? [] : ['NOT_FOUND: cannot pull x: not found in registry docker.io'],
        json: [{ image: 'x' }],
        meta: { runtime: { name: 'fake' } },
      });

  it('prints exactly one JSON document and exits 0 when all parts succeed', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const code = await runWarm(config, [part(true)], { stdout, stderr, isTTY: false }, new AbortController().signal);
    expect(code).toBe(EXIT_OK);
    const text = (stdout.read() as Buffer).toString();
    expect(text.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(text)).toMatchObject({ ok: true, images: [{ image: 'x' }], runtime: { name: 'fake' } });
  });

  it('exits 1 with one failure line per failed item', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const plain = parseWarmConfig({ image: ['x'] }, {}, none);
    const code = await runWarm(plain, [part(false)], { stdout, stderr, isTTY: false }, new AbortController().signal);
    expect(code).toBe(EXIT_FAILED);
    expect((stderr.read() as Buffer).toString()).toBe(
      'warning: something to know\nerror: NOT_FOUND: cannot pull x: not found in registry docker.io\n',
    );
    expect((stdout.read() as Buffer).toString()).toMatch(/IMAGE\s+STATE\s+TIME\s+SIZE\nx\s+failed/);
  });
});
