// Configuration for every `stoker` command, declared once per setting: its flag, its STOKER_*
// environment variable, its default, its help line and a zod schema that turns the text into the
// value. parseFlags takes the flag, else the variable, else the default (an empty text counts as
// absent), runs each through its schema, then the command's cross-checks, and returns one frozen
// object typed from the declaration. Anything wrong throws a ConfigError naming the flag (and the
// variable when the value came from there) and the bad value; configOrExit prints it as
// `stoker <command>: <message> (see stoker <command> --help)` and exits 2. Commands read
// process.env only to hand it to parseFlags.
//
//   export const WARM_FLAGS = defineFlags({
//     images: listFlag({ flag: '--image', env: 'STOKER_IMAGES', arg: 'ref', separator: /[\s,]+/,
//       help: 'an image to pull; repeat for more', schema: listOf(z.string()) }),
//     concurrency: valueFlag({ flag: '--concurrency', env: 'STOKER_CONCURRENCY', arg: 'n', default: '3',
//       help: 'images pulled at once', schema: wholeNumber(1, 64) }),
//     pullTimeoutMs: valueFlag({ flag: '--pull-timeout', env: 'STOKER_PULL_TIMEOUT', arg: 'duration', default: '0',
//       help: 'bound on one pull (0: none)', schema: durationMs(0, DAY_MS) }),
//     json: switchFlag({ flag: '--json', env: 'STOKER_JSON', help: 'print one JSON document' }),
//     logLevel: valueFlag({ flag: '--log-level', env: 'STOKER_LOG_LEVEL', arg: 'level', default: 'error',
//       help: LOG_LEVEL_HELP, schema: logLevel }),
//   });
//   export type WarmConfig = ConfigOf<typeof WARM_FLAGS>;   // { images: readonly string[]; concurrency: number; ... }
//
//   addFlags(program.command('warm'), WARM_FLAGS).action((flags: FlagInput<typeof WARM_FLAGS>) => {
//     const config = configOrExit('warm', () =>
//       parseFlags(WARM_FLAGS, flags, process.env, (c, { fail }) => {
//         if (c.images.length === 0) fail('images', 'is required: nothing to warm');
//       }),
//     );
//   });
//
// A schema's messages are read after the flag and the value, so they start with a verb:
// `--concurrency "0" is out of range (1 to 64)`.
import { isAbsolute, normalize } from 'node:path';
import { Option, type Command } from 'commander';
// zod/mini, not zod: the same checks, and a CLI run loads some 45 KB of it instead of 750 KB
// (about 0.1 s of start-up on a 2-core VM).
import * as z from 'zod/mini';
import { LOG_LEVELS } from './log.js';

/** The exit code of a usage error: a bad or missing flag or variable. */
export const EXIT_USAGE = 2;

export type Env = Readonly<Record<string, string | undefined>>;

interface FlagCommon {
  /** The long flag, e.g. '--node-name'; commander hands its value over as `nodeName`. */
  readonly flag: `--${string}`;
  /** The variable read when the flag is absent; with several, the first one set wins. */
  readonly env: string | readonly [string, ...string[]];
  readonly help: string;
}

/** A flag with one value: `--flag <arg>`. */
export interface ValueFlag<T = unknown> extends FlagCommon {
  readonly kind: 'value';
  readonly arg: string;
  /** Text parsed like a given value; a function for a default computed at start (not shown in help). */
  readonly default?: string | (() => string);
  /** Without a value and without a default: true refuses to start, false leaves it undefined. */
  readonly required?: boolean;
  readonly schema: z.ZodMiniType<T, string>;
}

/** A repeatable flag; its variable holds the items separated by `separator` (default ','). */
export interface ListFlag<T = unknown> extends FlagCommon {
  readonly kind: 'list';
  readonly arg: string;
  readonly separator?: string | RegExp;
  /** Gets the items, trimmed, empty ones dropped; an issue at index i names the i-th item. */
  readonly schema: z.ZodMiniType<T, string[]>;
}

/** A flag without a value; its variable is read as a boolean (see `bool`). */
export interface SwitchFlag extends FlagCommon {
  readonly kind: 'switch';
}

export type FlagSpec = ValueFlag | ListFlag | SwitchFlag;
export type Flags = Readonly<Record<string, FlagSpec>>;

type Spec<F> = Omit<F, 'kind'>;
export const valueFlag = <const S extends Spec<ValueFlag>>(spec: S): S & { kind: 'value' } => ({ ...spec, kind: 'value' });
export const listFlag = <const S extends Spec<ListFlag>>(spec: S): S & { kind: 'list' } => ({ ...spec, kind: 'list' });
export const switchFlag = <const S extends Spec<SwitchFlag>>(spec: S): S & { kind: 'switch' } => ({ ...spec, kind: 'switch' });
/** Freezes a command's declarations (keys are the names of the parsed values). */
export const defineFlags = <const F extends Flags>(flags: F): F => Object.freeze(flags);

type ValueOf<S> = S extends { kind: 'switch' }
  ? boolean
  : S extends { schema: z.ZodMiniType }
    ? S extends { kind: 'list' } | { default: unknown } | { required: true }
      ? z.output<S['schema']>
      : z.output<S['schema']> | undefined
    : never;

/** The frozen object parseFlags returns for a declaration. */
export type ConfigOf<F extends Flags> = { readonly [K in keyof F]: ValueOf<F[K]> };

type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type InputKey<S> = S extends { flag: `--${infer N}` } ? Camel<N> : never;
type InputValue<S> = S extends { kind: 'switch' } ? boolean : S extends { kind: 'list' } ? readonly string[] : string;

/** The options as commander hands them over (keyed by the flag in camelCase), all optional. */
export type FlagInput<F extends Flags> = { [K in keyof F as InputKey<F[K]>]?: InputValue<F[K]> | undefined };

/** A flag whose value cannot be used: names the flag, the variable it came from, and the value. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly flag: string;
  /** The variable the value was read from; undefined when it came from the flag or a default. */
  readonly env: string | undefined;
  readonly value: string | undefined;

  constructor(at: { flag: string; env?: string | undefined; value?: string | undefined; isDefault?: boolean }, problem: string) {
    const from = at.env !== undefined ? ` (from ${at.env})` : at.isDefault ? ' (default)' : '';
    super(`${at.flag}${from}${at.value !== undefined ? ` ${JSON.stringify(at.value)}` : ''} ${problem}`);
    this.flag = at.flag;
    this.env = at.env;
    this.value = at.value;
  }
}

/** Where a flag's value came from, and its text. */
interface Given {
  readonly source: 'flag' | 'env' | 'default' | 'absent';
  readonly env?: string;
  readonly text?: string;
  readonly items?: readonly string[];
}

/** Cross-checks get the parsed values and these. */
export interface CheckContext<F extends Flags> {
  /** Throws a ConfigError for this flag and its value: fail('renewDeadlineMs', `must be shorter than ${show('leaseDurationMs')}`). */
  readonly fail: (key: keyof F & string, problem: string) => never;
  /** The flag and its value as an error names them: `--lease-duration "15s"`. */
  readonly show: (key: keyof F & string) => string;
}

/** The property commander uses for a flag: --node-name -> nodeName. */
export function inputKey(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function envNames(spec: FlagSpec): readonly string[] {
  return typeof spec.env === 'string' ? [spec.env] : spec.env;
}

function fromEnv(spec: FlagSpec, env: Env): { env: string; text: string } | undefined {
  for (const name of envNames(spec)) {
    const text = env[name];
    if (text !== undefined && text !== '') return { env: name, text };
  }
  return undefined;
}

function given(spec: FlagSpec, input: unknown, env: Env): Given {
  if (spec.kind === 'list') {
    const clean = (items: readonly string[]) => items.map((s) => s.trim()).filter((s) => s !== '');
    const flagItems = Array.isArray(input) ? clean(input as string[]) : [];
    if (flagItems.length > 0) return { source: 'flag', items: flagItems };
    const e = fromEnv(spec, env);
    const items = e ? clean(e.text.split(spec.separator ?? ',')) : [];
    return e && items.length > 0 ? { source: 'env', env: e.env, text: e.text, items } : { source: 'absent', items: [] };
  }
  if (spec.kind === 'switch') {
    if (input === true) return { source: 'flag', text: 'true' };
    const e = fromEnv(spec, env);
    return e ? { source: 'env', env: e.env, text: e.text } : { source: 'absent' };
  }
  if (typeof input === 'string' && input !== '') return { source: 'flag', text: input };
  const e = fromEnv(spec, env);
  if (e) return { source: 'env', env: e.env, text: e.text };
  if (spec.default !== undefined) return { source: 'default', text: typeof spec.default === 'function' ? spec.default() : spec.default };
  return { source: 'absent' };
}

function errorAt(spec: FlagSpec, g: Given, problem: string, value = g.text): ConfigError {
  return new ConfigError({ flag: spec.flag, env: g.env, value, isDefault: g.source === 'default' }, problem);
}

function firstIssue(error: z.core.$ZodError): { message: string; index: number | undefined } {
  const issue = error.issues[0];
  const at = issue?.path[0];
  return { message: issue?.message ?? 'is not valid', index: typeof at === 'number' ? at : undefined };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function parseOne(spec: FlagSpec, g: Given): unknown {
  if (spec.kind === 'switch') {
    if (g.source === 'absent') return false;
    const r = bool.safeParse(g.text);
    if (!r.success) throw errorAt(spec, g, firstIssue(r.error).message);
    return r.data;
  }
  if (spec.kind === 'list') {
    const items = [...(g.items ?? [])];
    const r = spec.schema.safeParse(items);
    if (!r.success) {
      const { message, index } = firstIssue(r.error);
      throw errorAt(spec, g, message, index !== undefined ? items[index] : g.text);
    }
    return r.data;
  }
  if (g.source === 'absent') {
    if (spec.required) throw new ConfigError({ flag: spec.flag }, `is required (or set ${envNames(spec).join(' or ')})`);
    return undefined;
  }
  const r = spec.schema.safeParse(g.text);
  if (!r.success) throw errorAt(spec, g, firstIssue(r.error).message);
  return r.data;
}

/**
 * Flag over variable over default for every declared setting, each validated by its schema, then
 * `check` for rules across settings; returns the values, frozen (nested objects and lists too).
 * Throws ConfigError for the first bad or missing value, in declaration order.
 */
export function parseFlags<F extends Flags>(
  flags: F,
  input: FlagInput<F>,
  env: Env = {},
  check?: (config: ConfigOf<F>, ctx: CheckContext<F>) => void,
): ConfigOf<F> {
  const raw = input as Readonly<Record<string, unknown>>;
  const seen = new Map<string, Given>();
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(flags)) {
    const g = given(spec, raw[inputKey(spec.flag)], env);
    seen.set(key, g);
    out[key] = parseOne(spec, g);
  }
  const config = deepFreeze(out) as ConfigOf<F>;
  if (check) {
    const at = (key: string): [FlagSpec, Given] => {
      const spec = flags[key];
      if (!spec) throw new Error(`no flag is declared as "${key}"`);
      return [spec, seen.get(key) ?? { source: 'absent' }];
    };
    check(config, {
      fail: (key, problem) => {
        throw errorAt(...at(key), problem);
      },
      show: (key) => errorAt(...at(key), '').message.trimEnd(),
    });
  }
  return config;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The commander Option for a declared flag; its help names the variable and the default. */
export function flagOption(spec: FlagSpec): Option {
  const separated = spec.kind !== 'list' ? '' : (spec.separator ?? ',') === ',' ? ', comma-separated' : ', a list';
  const notes = [`env ${envNames(spec).join(' or ')}${separated}`];
  if (spec.kind === 'value' && typeof spec.default === 'string' && spec.default !== '') notes.push(`default ${spec.default}`);
  const option = new Option(spec.kind === 'switch' ? spec.flag : `${spec.flag} <${spec.arg}>`, `${spec.help} (${notes.join(', ')})`);
  return spec.kind === 'list' ? option.argParser(collect) : option;
}

/** Adds every declared flag to a command, in declaration order. */
export function addFlags(command: Command, flags: Flags): Command {
  for (const spec of Object.values(flags)) command.addOption(flagOption(spec));
  return command;
}

/**
 * Runs `resolve` (a command's parseFlags); on a ConfigError prints
 * `stoker <command>: <message> (see stoker <command> --help)` on stderr and exits 2.
 */
export function configOrExit<T>(command: string, resolve: () => T): T {
  try {
    return resolve();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`stoker ${command}: ${err.message} (see stoker ${command} --help)\n`);
    process.exit(EXIT_USAGE);
  }
}

// ---------------------------------------------------------------------------------------------
// Schemas shared by the commands: each reads the text of one flag.

/** A value read from text by `read` (undefined: unreadable, reported as `problem`). */
export function readText<T>(read: (text: string) => T | undefined, problem: string): z.ZodMiniType<T, string> {
  return z.pipe(
    z.string(),
    z.transform((text: string, ctx) => {
      const value = read(text);
      if (value === undefined) {
        ctx.issues.push({ code: 'custom', message: problem, input: text });
        return z.NEVER;
      }
      return value;
    }),
  );
}

/** Where a server listens, or a peer is dialled. */
export interface ListenAddress {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
}

/** "HOST:PORT", ":PORT" (all interfaces) or "[::1]:PORT"; port 0 to 65535. */
export function parseHostPort(value: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]*)):(\d{1,5})$/.exec(value);
  if (!m) return undefined;
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port > 65535) return undefined;
  return Object.freeze({ host: host === '' ? '0.0.0.0' : host, port });
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Milliseconds of "90s", "5m", "1h30m", "250ms", or a bare number of seconds. */
export function parseDuration(value: string): number | undefined {
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1_000);
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return undefined;
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * (UNIT_MS[p[2] ?? ''] ?? NaN), 0));
}

export const HOST_PORT_PROBLEM = 'is not HOST:PORT (PORT 0-65535; [::1]:PORT for IPv6)';
export const hostPort = readText(parseHostPort, HOST_PORT_PROBLEM);

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** A duration (see parseDuration) in milliseconds, from minMs to maxMs. */
export function durationMs(minMs: number, maxMs: number): z.ZodMiniType<number, string> {
  const range = `is out of range (${minMs / 1000}s to ${maxMs / 1000}s)`;
  return z.pipe(readText(parseDuration, 'is not a duration like 90s, 5m or 1h'), z.number().check(z.gte(minMs, range), z.lte(maxMs, range)));
}

/** Digits only (no sign, no exponent), from min to max. */
export function wholeNumber(min: number, max: number): z.ZodMiniType<number, string> {
  const problem = `is not a whole number from ${min} to ${max}`;
  return z.pipe(
    z.pipe(z.string().check(z.trim(), z.regex(/^\d+$/, problem)), z.transform(Number)),
    z.number().check(z.gte(min, problem), z.lte(max, problem)),
  );
}

/** true/false, 1/0 or yes/no, in any case. */
export const bool: z.ZodMiniType<boolean, string> = readText((text) => {
  const v = text.toLowerCase();
  return ['true', '1', 'yes'].includes(v) ? true : ['false', '0', 'no'].includes(v) ? false : undefined;
}, 'is not true or false');

export const LOG_LEVEL_HELP = LOG_LEVELS.join(', ');
export const logLevel = z.enum(LOG_LEVELS, { error: `is not one of ${LOG_LEVEL_HELP}` });

/** A file name as given (read later); only a NUL byte is refused here. */
export const filePath = z.string().check(z.refine((s) => !s.includes('\0'), 'is not a file path'));

/** An absolute directory, normalised, without a trailing slash. */
export const absoluteDir = z.pipe(
  z.string().check(z.refine((s) => isAbsolute(s), 'is not an absolute directory')),
  z.transform((s: string) => {
    const dir = normalize(s);
    return dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir;
  }),
);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A DNS-1123 label, as namespaces are: `problem` says what it should have been. */
export function dnsLabel(problem: string): z.ZodMiniType<string, string> {
  return z.string().check(z.maxLength(63, problem), z.regex(DNS_LABEL, problem));
}

/** A DNS-1123 subdomain, as node and most object names are. */
export function dnsSubdomain(problem: string): z.ZodMiniType<string, string> {
  return z.string().check(z.maxLength(253, problem), z.regex(DNS_SUBDOMAIN, problem));
}

/** A list whose items each pass `item`; `unique` drops repeats (after the item's transform). */
export function listOf<T>(item: z.ZodMiniType<T, string>, opts: { unique?: boolean } = {}): z.ZodMiniType<readonly T[], string[]> {
  return z.pipe(z.array(item), z.transform((items: T[]) => (opts.unique ? [...new Set(items)] : items)));
}
