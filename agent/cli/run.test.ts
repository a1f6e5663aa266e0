import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { resolveWarmConfig } from './config.js';
import type { WarmPart } from './part.js';
import { EXIT_FAILED, EXIT_OK, runWarm } from './run.js';

const none = (): boolean => false;

describe('runWarm', () => {
  const config = resolveWarmConfig({ image: ['x'], json: true }, {}, none);
  const fakePart =
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
    const code = await runWarm(config, [fakePart(true)], { stdout, stderr, isTTY: false }, new AbortController().signal);
    expect(code).toBe(EXIT_OK);
    const text = (stdout.read() as Buffer).toString();
    expect(text.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(text)).toMatchObject({ ok: true, images: [{ image: 'x' }], runtime: { name: 'fake' } });
  });

  it('exits 1 with one failure line per failed item', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const plain = resolveWarmConfig({ image: ['x'] }, {}, none);
    const code = await runWarm(plain, [fakePart(false)], { stdout, stderr, isTTY: false }, new AbortController().signal);
    expect(code).toBe(EXIT_FAILED);
    expect((stderr.read() as Buffer).toString()).toBe(
      'warning: something to know\nerror: NOT_FOUND: cannot pull x: not found in registry docker.io\n',
    );
    expect((stdout.read() as Buffer).toString()).toMatch(/IMAGE\s+STATE\s+TIME\s+SIZE\nx\s+failed/);
  });

  it('draws plain progress lines, then one table per part in part order', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const plain = resolveWarmConfig({ image: ['x'] }, {}, none);
    const fakeImages: WarmPart = ({ display }) => {
      display.update('x', { state: 'WAITING', elapsed: 0 });
      display.update('x', { state: 'RUNNING', elapsed: 0.2, bytesDone: 0, bytesTotal: 1536, bytesKnown: true });
      display.update('x', { state: 'DONE', elapsed: 1.5, bytesDone: 1536, bytesTotal: 1536, bytesKnown: true });
      return Promise.resolve({ key: 'images', ok: true, header: ['IMAGE', 'STATE'], rows: [['x', 'done']], failures: [], json: [] });
    };
    const fakeFiles: WarmPart = ({ display }) => {
      display.update('/m', { state: 'DONE', elapsed: 2, text: 'done  [####]' });
      return Promise.resolve({ key: 'paths', ok: true, header: ['PATH', 'STATE'], rows: [['/models/a', 'done']], failures: [], json: [] });
    };
    const code = await runWarm(plain, [fakeImages, fakeFiles], { stdout, stderr, isTTY: false }, new AbortController().signal);
    expect(code).toBe(EXIT_OK);
    expect((stdout.read() as Buffer).toString()).toBe(
      'x: pulling  0.2s  0 B of 1.5 KiB\n' +
        'x: done  1.5s  1.5 KiB of 1.5 KiB\n' +
        '/m: done  [####]\n' +
        '\nIMAGE  STATE\nx      done\n' +
        '\nPATH       STATE\n/models/a  done\n',
    );
    expect(stderr.read()).toBeNull();
  });
});
