import { describe, expect, it } from 'vitest';
import { parseDuration, parseHostPort } from './options.js';

describe('parseDuration', () => {
  it.each([
    ['90', 90_000],
    ['1.5', 1_500],
    ['250ms', 250],
    ['90s', 90_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', 'soon', '5 m', '5d', '-1s', '1h x'])('%j is not a duration', (text) => expect(parseDuration(text)).toBeUndefined());
});

describe('parseHostPort', () => {
  it.each([
    ['127.0.0.1:7443', { host: '127.0.0.1', port: 7443 }],
    [':8080', { host: '0.0.0.0', port: 8080 }],
    ['[::1]:0', { host: '::1', port: 0 }],
    ['localhost:65535', { host: 'localhost', port: 65535 }],
  ])('%s', (text, want) => expect(parseHostPort(text)).toEqual(want));

  it.each(['', '7443', 'host:', 'host:65536', 'a b:1', '::1:80', 'host:port'])('%j is not HOST:PORT', (text) => expect(parseHostPort(text)).toBeUndefined());
});
