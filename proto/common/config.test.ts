import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as z from 'zod/mini';
import {
  addFlags,
  bool,
  ConfigError,
  configOrExit,
  defineFlags,
  durationMs,
  hostPort,
  listFlag,
  listOf,
  parseDuration,
  parseFlags,
  parseHostPort,
  switchFlag,
  valueFlag,
  wholeNumber,
  type CheckContext,
  type ConfigOf,
} from './config.js';

const FLAGS = defineFlags({
  port: valueFlag({ flag: '--listen-port', env: 'STOKER_LISTEN_PORT', arg: 'n', default: '80', help: 'port', schema: wholeNumber(1, 65535) }),
  name: valueFlag({ flag: '--name', env: ['STOKER_NAME', 'NAME'], arg: 'name', required: true, help: 'name', schema: z.string() }),
  timeoutMs: valueFlag({ flag: '--timeout', env: 'STOKER_TIMEOUT', arg: 'duration', help: 'timeout', schema: durationMs(0, 60_000) }),
  items: listFlag({ flag: '--item', env: 'STOKER_ITEMS', arg: 'item', separator: /[\s,]+/, help: 'items', schema: listOf(z.string().check(z.regex(/^[a-z]+$/, 'is not lower-case letters'))) }),
  verbose: switchFlag({ flag: '--verbose', env: 'STOKER_VERBOSE', help: 'talk more' }),
});

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('no ConfigError');
}

describe('parseFlags', () => {
  it('falls back to the variable, then to the default; absent optional values stay undefined', () => {
    const c = parseFlags(FLAGS, {}, { STOKER_NAME: 'from-env' });
    expect(c).toEqual({ port: 80, name: 'from-env', timeoutMs: undefined, items: [], verbose: false });
  });

  it('takes the flag over the variable, and the first variable set of several', () => {
    expect(parseFlags(FLAGS, { name: 'flag', listenPort: '8080' }, { STOKER_NAME: 'env', STOKER_LISTEN_PORT: '9090' })).toMatchObject({ name: 'flag', port: 8080 });
    expect(parseFlags(FLAGS, {}, { NAME: 'second', STOKER_NAME: '' }).name).toBe('second');
    expect(parseFlags(FLAGS, {}, { NAME: 'second', STOKER_NAME: 'first' }).name).toBe('first');
  });

  it('reads lists from repeated flags, or the variable split by the separator, trimmed', () => {
    expect(parseFlags(FLAGS, { name: 'n', item: ['a', ' b '] }, { STOKER_ITEMS: 'x' }).items).toEqual(['a', 'b']);
    expect(parseFlags(FLAGS, { name: 'n' }, { STOKER_ITEMS: 'x, y z,,' }).items).toEqual(['x', 'y', 'z']);
  });

  it('reads a switch from its flag or as a boolean variable', () => {
    expect(parseFlags(FLAGS, { name: 'n', verbose: true }).verbose).toBe(true);
    expect(parseFlags(FLAGS, { name: 'n' }, { STOKER_VERBOSE: 'yes' }).verbose).toBe(true);
    expect(parseFlags(FLAGS, { name: 'n' }, { STOKER_VERBOSE: 'FALSE' }).verbose).toBe(false);
    expect(message(() => parseFlags(FLAGS, { name: 'n' }, { STOKER_VERBOSE: 'on' }))).toBe('--verbose (from STOKER_VERBOSE) "on" is not true or false');
  });

  it('returns a frozen object, lists and nested values included', () => {
    const c = parseFlags(FLAGS, { name: 'n', item: ['a'] });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.items)).toBe(true);
    expect(() => {
      (c as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('names the flag and the bad value, and the variable when the value came from there', () => {
    expect(message(() => parseFlags(FLAGS, { name: 'n', listenPort: '0' }))).toBe('--listen-port "0" is not a whole number from 1 to 65535');
    expect(message(() => parseFlags(FLAGS, { name: 'n' }, { STOKER_LISTEN_PORT: 'x' }))).toBe('--listen-port (from STOKER_LISTEN_PORT) "x" is not a whole number from 1 to 65535');
    expect(message(() => parseFlags(FLAGS, { name: 'n', timeout: '2m' }))).toBe('--timeout "2m" is out of range (0s to 60s)');
    // A list names the item at fault, not the whole variable.
    expect(message(() => parseFlags(FLAGS, { name: 'n' }, { STOKER_ITEMS: 'ok,Bad' }))).toBe('--item (from STOKER_ITEMS) "Bad" is not lower-case letters');
    expect(message(() => parseFlags(FLAGS, {}))).toBe('--name is required (or set STOKER_NAME or NAME)');
  });

  it('carries the flag, the variable and the value on the error', () => {
    let error: unknown;
    try {
      parseFlags(FLAGS, { name: 'n' }, { STOKER_TIMEOUT: 'soon' });
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ name: 'ConfigError', flag: '--timeout', env: 'STOKER_TIMEOUT', value: 'soon' });
  });

  it('computes a function default at parse time and checks it', () => {
    const flags = defineFlags({ id: valueFlag({ flag: '--id', env: 'STOKER_ID', arg: 'id', default: () => 'computed', help: 'id', schema: z.string() }) });
    expect(parseFlags(flags, {}).id).toBe('computed');
  });

  it('runs cross-checks that name both flags with their sources', () => {
    const check = (c: ConfigOf<typeof FLAGS>, { fail, show }: CheckContext<typeof FLAGS>) => {
      if (c.timeoutMs !== undefined && c.timeoutMs < c.port) fail('timeoutMs', `must be at least ${show('port')} ms`);
    };
    expect(message(() => parseFlags(FLAGS, { name: 'n', timeout: '50ms' }, {}, check))).toBe('--timeout "50ms" must be at least --listen-port (default) "80" ms');
    expect(parseFlags(FLAGS, { name: 'n', timeout: '1s' }, {}, check).timeoutMs).toBe(1000);
  });
});

describe('addFlags', () => {
  it('adds every flag with its variable and default in the help, lists repeatable', () => {
    const cmd = addFlags(new Command('x').exitOverride(), FLAGS);
    expect(cmd.options.map((o) => o.flags)).toEqual(['--listen-port <n>', '--name <name>', '--timeout <duration>', '--item <item>', '--verbose']);
    expect(cmd.options[0]?.description).toBe('port (env STOKER_LISTEN_PORT, default 80)');
    expect(cmd.options[1]?.description).toBe('name (env STOKER_NAME or NAME)');
    cmd.parse(['--item', 'a', '--item', 'b', '--verbose', '--listen-port', '81'], { from: 'user' });
    expect(parseFlags(FLAGS, cmd.opts(), { NAME: 'n' })).toMatchObject({ items: ['a', 'b'], verbose: true, port: 81 });
  });
});

describe('configOrExit', () => {
  afterEach(() => vi.restoreAllMocks());

  it('prints a ConfigError for the command and exits 2; passes other errors on', () => {
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    });
    const exit = vi.spyOn(process, 'exit').mockImplementation(() => {
      throw new Error('exited');
    });
    expect(() => configOrExit('demo', () => parseFlags(FLAGS, {}))).toThrow('exited');
    expect(exit).toHaveBeenCalledWith(2);
    expect(stderr).toEqual(['stoker demo: --name is required (or set STOKER_NAME or NAME) (see stoker demo --help)\n']);
    expect(() =>
      configOrExit('demo', () => {
        throw new RangeError('not a config error');
      }),
    ).toThrow(RangeError);
    expect(configOrExit('demo', () => 7)).toBe(7);
  });
});

describe('schemas', () => {
  it.each([
    ['90', 90_000],
    ['1.5', 1_500],
    ['250ms', 250],
    ['90s', 90_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
  ])('duration %s is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', 'soon', '5 m', '5d', '-1s', '1h x'])('%j is not a duration', (text) => expect(parseDuration(text)).toBeUndefined());

  it.each([
    ['127.0.0.1:7443', { host: '127.0.0.1', port: 7443 }],
    [':8080', { host: '0.0.0.0', port: 8080 }],
    ['[::1]:0', { host: '::1', port: 0 }],
    ['localhost:65535', { host: 'localhost', port: 65535 }],
  ])('HOST:PORT %s', (text, want) => {
    expect(parseHostPort(text)).toEqual(want);
    expect(hostPort.parse(text)).toEqual(want);
  });

  it.each(['', '7443', 'host:', 'host:65536', 'a b:1', '::1:80', 'host:port'])('%j is not HOST:PORT', (text) => {
    expect(parseHostPort(text)).toBeUndefined();
    expect(hostPort.safeParse(text).success).toBe(false);
  });

  it.each(['1e3', '0x10', '-1', '1.5', ''])('%j is not a whole number', (text) => expect(wholeNumber(0, 10_000).safeParse(text).success).toBe(false));

  it.each([
    ['true', true],
    ['YES', true],
    ['1', true],
    ['False', false],
    ['no', false],
    ['0', false],
  ])('boolean %s', (text, want) => expect(bool.parse(text)).toBe(want));

  it.each(['on', 'off', '', ' true', 'maybe'])('%j is not a boolean', (text) => expect(bool.safeParse(text).success).toBe(false));
});
