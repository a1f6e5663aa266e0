// The configuration of `stoker warm`: flags, then STOKER_* environment variables, then defaults,
// validated once into a frozen WarmConfig. A bad value is a UsageError whose message names the
// flag or variable it came from; the command prints it and exits 2.
import { homedir } from 'node:os';
import { defaultEndpoint, InvalidEndpointError, parseEndpoint, type CriEndpoint } from '../cri/endpoint.js';
import type { BudgetMode } from '../warm/budget.js';
import { DEFAULT_CONCURRENCY, DEFAULT_PROGRESS_TIMEOUT_MS, type ImagePullPolicy } from '../warm/images.js';
import { DEFAULT_READERS } from '../warm/readers.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface WarmConfig {
  readonly images: readonly string[];
  readonly criEndpoint: CriEndpoint;
  /** Explicit Docker config file; undefined means $DOCKER_CONFIG/config.json, then ~/.docker/config.json. */
  readonly authFile: string | undefined;
  readonly dockerConfigDir: string | undefined;
  readonly home: string;
  readonly pullPolicy: ImagePullPolicy;
  readonly concurrency: number;
  readonly progressTimeoutMs: number;
  readonly pullTimeoutMs: number;
  readonly json: boolean;
  readonly logLevel: string;
  /** The file part (--path and friends); no paths means no file part. */
  readonly files: FilesConfig;
}

export interface FilesConfig {
  readonly paths: readonly string[];
  readonly allowedRoots: readonly string[];
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly budget: BudgetMode;
  readonly readers: number;
}

/** Flags as commander hands them over (all optional strings, booleans or lists). */
export interface WarmFlags {
  image?: string[];
  criEndpoint?: string;
  authFile?: string;
  pullPolicy?: string;
  concurrency?: string;
  progressTimeout?: string;
  pullTimeout?: string;
  json?: boolean;
  logLevel?: string;
  path?: string[];
  allowedRoot?: string[];
  include?: string[];
  exclude?: string[];
  budget?: string;
  readers?: string;
}

export const WARM_ENV = Object.freeze({
  images: 'STOKER_IMAGES',
  criEndpoint: 'STOKER_CRI_ENDPOINT',
  authFile: 'STOKER_AUTH_FILE',
  pullPolicy: 'STOKER_PULL_POLICY',
  concurrency: 'STOKER_CONCURRENCY',
  progressTimeout: 'STOKER_PROGRESS_TIMEOUT',
  pullTimeout: 'STOKER_PULL_TIMEOUT',
  json: 'STOKER_JSON',
  logLevel: 'STOKER_LOG_LEVEL',
});

export const FILE_ENV = Object.freeze({
  paths: 'STOKER_PATHS',
  allowedRoots: 'STOKER_ALLOWED_ROOTS',
  include: 'STOKER_INCLUDE',
  exclude: 'STOKER_EXCLUDE',
  budget: 'STOKER_BUDGET',
  readers: 'STOKER_READERS',
});

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const BUDGETS: readonly BudgetMode[] = ['warn', 'refuse', 'off'];

function wholeNumber(value: string, what: string, min: number): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isInteger(n) || n < min) {
    throw new UsageError(`${what} must be a whole number >= ${min}, got ${JSON.stringify(value)}`);
  }
  return n;
}

function bool(value: string, what: string): boolean {
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw new UsageError(`${what} must be true or false, got ${JSON.stringify(value)}`);
}

/** Parses flags and environment into a frozen config. Throws UsageError naming the bad value. */
export function parseWarmConfig(
  flags: WarmFlags,
  env: NodeJS.ProcessEnv,
  fileExists?: (path: string) => boolean,
): WarmConfig {
  const pick = (flag: string | undefined, key: keyof typeof WARM_ENV): [string | undefined, string] => {
    if (flag !== undefined) return [flag, `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`];
    const fromEnv = env[WARM_ENV[key]];
    return [fromEnv === '' ? undefined : fromEnv, WARM_ENV[key]];
  };

  const images = flags.image && flags.image.length > 0
    ? flags.image
    : (env[WARM_ENV.images] ?? '').split(/[\s,]+/).filter((s) => s !== '');

  const [endpointValue, endpointName] = pick(flags.criEndpoint, 'criEndpoint');
  let criEndpoint: CriEndpoint;
  try {
    criEndpoint = endpointValue !== undefined ? parseEndpoint(endpointValue) : defaultEndpoint(fileExists);
  } catch (err) {
    if (err instanceof InvalidEndpointError) throw new UsageError(`${endpointName}: ${err.message}`);
    throw err;
  }

  const [policyValue, policyName] = pick(flags.pullPolicy, 'pullPolicy');
  let pullPolicy: ImagePullPolicy = 'IF_NOT_PRESENT';
  if (policyValue !== undefined) {
    const p = policyValue.trim().toLowerCase().replace(/[-_]/g, '');
    if (p === 'ifnotpresent') pullPolicy = 'IF_NOT_PRESENT';
    else if (p === 'always') pullPolicy = 'ALWAYS';
    else throw new UsageError(`${policyName} must be IfNotPresent or Always, got ${JSON.stringify(policyValue)}`);
  }

  const [concurrencyValue, concurrencyName] = pick(flags.concurrency, 'concurrency');
  const concurrency = concurrencyValue !== undefined ? wholeNumber(concurrencyValue, concurrencyName, 1) : DEFAULT_CONCURRENCY;
  const [progressValue, progressName] = pick(flags.progressTimeout, 'progressTimeout');
  const progressTimeoutMs =
    progressValue !== undefined ? wholeNumber(progressValue, progressName, 0) * 1000 : DEFAULT_PROGRESS_TIMEOUT_MS;
  const [pullValue, pullName] = pick(flags.pullTimeout, 'pullTimeout');
  const pullTimeoutMs = pullValue !== undefined ? wholeNumber(pullValue, pullName, 0) * 1000 : 0;

  const json = flags.json === true || (env[WARM_ENV.json] !== undefined && bool(env[WARM_ENV.json] ?? '', WARM_ENV.json));
  const [levelValue, levelName] = pick(flags.logLevel, 'logLevel');
  const logLevel = levelValue ?? 'error';
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`${levelName} must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);

  const [authFile] = pick(flags.authFile, 'authFile');
  const files = parseFileFlags(flags, env);
  if (images.length === 0 && files.paths.length === 0) {
    throw new UsageError(`nothing to warm: give at least one --image REF (or STOKER_IMAGES) or --path PATH (or ${FILE_ENV.paths})`);
  }

  return Object.freeze({
    images: Object.freeze([...images]),
    criEndpoint,
    authFile,
    dockerConfigDir: env.DOCKER_CONFIG === '' ? undefined : env.DOCKER_CONFIG,
    home: env.HOME ?? homedir(),
    pullPolicy,
    concurrency,
    progressTimeoutMs,
    pullTimeoutMs,
    json,
    logLevel,
    files,
  });
}

/** The file flags: flags first, then environment (lists comma-separated). */
function parseFileFlags(flags: WarmFlags, env: NodeJS.ProcessEnv): FilesConfig {
  const list = (flag: string[] | undefined, key: keyof typeof FILE_ENV): string[] =>
    flag && flag.length > 0 ? flag : (env[FILE_ENV[key]] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const paths = list(flags.path, 'paths');
  const allowedRoots = list(flags.allowedRoot, 'allowedRoots');
  const include = list(flags.include, 'include');
  const exclude = list(flags.exclude, 'exclude');
  if (paths.length > 0 && allowedRoots.length === 0) {
    throw new UsageError(`--path needs at least one --allowed-root (or ${FILE_ENV.allowedRoots}): no file is read outside the roots it is given`);
  }
  if (paths.length === 0 && (include.length > 0 || exclude.length > 0)) throw new UsageError('--include and --exclude need a --path');
  for (const p of [...paths, ...allowedRoots]) {
    if (!p.startsWith('/')) throw new UsageError(`${paths.includes(p) ? '--path' : '--allowed-root'} must be absolute, got ${JSON.stringify(p)}`);
  }
  const budgetValue = flags.budget ?? (env[FILE_ENV.budget] || undefined);
  const budget = (budgetValue ?? 'warn').trim().toLowerCase() as BudgetMode;
  if (!BUDGETS.includes(budget)) throw new UsageError(`--budget must be warn, refuse or off, got ${JSON.stringify(budgetValue)}`);
  const readersValue = flags.readers ?? (env[FILE_ENV.readers] || undefined);
  const readers = readersValue === undefined ? DEFAULT_READERS : Number(readersValue.trim());
  if (!Number.isInteger(readers) || readers < 1 || readers > 1024) {
    throw new UsageError(`--readers must be a whole number from 1 to 1024, got ${JSON.stringify(readersValue)}`);
  }
  return Object.freeze({
    paths: Object.freeze(paths),
    allowedRoots: Object.freeze(allowedRoots),
    include: Object.freeze(include),
    exclude: Object.freeze(exclude),
    budget,
    readers,
  });
}
