// `stoker warm`: warms this machine directly, without an agent. Images are pulled through the
// CRI (agent/warm/images.ts). The command is a list of parts (images now; files can join) that
// run together under one signal, share one display, and end in one summary and one exit code:
// 0 when every item is present, 1 when any failed, 2 for a usage error.
import { homedir } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { pino } from 'pino';
import type { ImageProgress__Output, ImageResult__Output } from '../proto/agent.js';
import { createLogger, type Logger } from '../proto/common/log.js';
import { defaultEndpoint, InvalidEndpointError, parseEndpoint, type CriEndpoint } from './cri/endpoint.js';
import { WarmError } from './cri/errors.js';
import { connectRuntime, type CriRuntime } from './cri/runtime.js';
import { DockerConfigError, loadDockerCredentials } from './images/docker-config.js';
import { DEFAULT_CONCURRENCY, DEFAULT_PROGRESS_TIMEOUT_MS, warmImages, type ImagePullPolicy } from './warm/images.js';
import { FILE_ENV, filesPart, parseFileFlags, type FileFlags, type FilesConfig } from './warm/files-part.js';
import { formatBytes } from './warm/bytes.js';
import { DEFAULT_READERS } from './warm/readers.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

// ---------------------------------------------------------------------------------------------
// Configuration: flags, then STOKER_* environment variables, then defaults; validated once.

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

/** Flags as commander hands them over (all optional strings, booleans or lists). */
export interface WarmFlags extends FileFlags {
  image?: string[];
  criEndpoint?: string;
  authFile?: string;
  pullPolicy?: string;
  concurrency?: string;
  progressTimeout?: string;
  pullTimeout?: string;
  json?: boolean;
  logLevel?: string;
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

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

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
  if (typeof files === 'string') throw new UsageError(files);
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

// ---------------------------------------------------------------------------------------------
// Display: live lines on a terminal, plain lines otherwise, nothing but JSON with --json.

function formatSeconds(s: number): string {
  return s < 60 ? `${s.toFixed(1)}s` : `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

const STATE_WORDS: Record<string, string> = {
  WAITING: 'waiting',
  RUNNING: 'pulling',
  DONE: 'done',
  PRESENT: 'present',
  FAILED: 'failed',
};

interface Row {
  label: string;
  text?: string | undefined;
  state: string;
  elapsed: number;
  bytesDone: number;
  bytesTotal: number;
  bytesKnown: boolean;
  rate: number;
  samples: { t: number; bytes: number }[];
}

/** What every part of the command reports to; one instance per run. */
export interface Display {
  /** `text`, when given, replaces the built-in description after the item's name. */
  update(
    key: string,
    p: { state: string; elapsed: number; bytesDone?: number; bytesTotal?: number; bytesKnown?: boolean; text?: string },
  ): void;
  /** A line of aggregate progress (several pulls sharing bytes), or undefined to drop it. */
  aggregate(text: string | undefined): void;
  close(): void;
}

class TerminalDisplay implements Display {
  private readonly rows = new Map<string, Row>();
  private drawn = 0;
  private aggregateLine: string | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.timer = setInterval(() => this.draw(), 200);
    this.timer.unref();
  }

  update(key: string, p: Parameters<Display['update']>[1]): void {
    const row = this.rows.get(key) ?? {
      label: key,
      state: 'WAITING',
      elapsed: 0,
      bytesDone: 0,
      bytesTotal: 0,
      bytesKnown: false,
      rate: 0,
      samples: [],
    };
    row.state = p.state;
    row.elapsed = p.elapsed;
    row.text = p.text;
    if (p.bytesKnown) {
      row.bytesKnown = true;
      row.bytesDone = p.bytesDone ?? 0;
      row.bytesTotal = p.bytesTotal ?? 0;
      row.rate = updateRate(row.samples, row.bytesDone);
    }
    this.rows.set(key, row);
  }

  aggregate(text: string | undefined): void {
    this.aggregateLine = text;
  }

  private draw(): void {
    const width = Math.max(...[...this.rows.keys()].map((k) => k.length), 10);
    const lines = [...this.rows.values()].map((r) => `${icon(r.state)} ${r.label.padEnd(width)}  ${describe(r)}`);
    if (this.aggregateLine !== undefined) lines.push(`  ${this.aggregateLine}`);
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const line of lines) text += `\x1b[2K${line.slice(0, (this.out.columns || 120) - 1)}\n`;
    for (let i = lines.length; i < this.drawn; i++) text += '\x1b[2K\n';
    this.drawn = Math.max(lines.length, this.drawn);
    this.out.write(text);
  }

  close(): void {
    clearInterval(this.timer);
    this.draw();
  }
}

class PlainDisplay implements Display {
  private readonly last = new Map<string, { state: string; printedAt: number; samples: { t: number; bytes: number }[] }>();

  constructor(private readonly out: NodeJS.WritableStream) {}

  update(key: string, p: Parameters<Display['update']>[1]): void {
    const prev = this.last.get(key);
    const now = Date.now();
    const samples = prev?.samples ?? [];
    const rate = p.bytesKnown ? updateRate(samples, p.bytesDone ?? 0) : 0;
    // A line per change of state; while pulling, one every 10 s.
    if (prev?.state === p.state && (p.state !== 'RUNNING' || now - prev.printedAt < 10_000)) return;
    if (p.state === 'WAITING') {
      this.last.set(key, { state: p.state, printedAt: now, samples });
      return;
    }
    const row: Row = {
      label: key,
      state: p.state,
      elapsed: p.elapsed,
      bytesDone: p.bytesDone ?? 0,
      bytesTotal: p.bytesTotal ?? 0,
      bytesKnown: p.bytesKnown ?? false,
      rate,
      samples,
      text: p.text,
    };
    this.out.write(`${key}: ${describe(row)}\n`);
    this.last.set(key, { state: p.state, printedAt: now, samples });
  }

  aggregate(): void {}

  close(): void {}
}

class SilentDisplay implements Display {
  update(): void {}
  aggregate(): void {}
  close(): void {}
}

/** Bytes per second over the last ~3 s of samples. */
function updateRate(samples: { t: number; bytes: number }[], bytes: number): number {
  const now = Date.now();
  samples.push({ t: now, bytes });
  while (samples.length > 2 && (samples[0]?.t ?? now) < now - 3_000) samples.shift();
  const first = samples[0];
  if (!first || now - first.t < 200) return 0;
  return Math.max(0, ((bytes - first.bytes) * 1000) / (now - first.t));
}

function icon(state: string): string {
  return state === 'DONE' || state === 'PRESENT' ? '✓' : state === 'FAILED' ? '✗' : state === 'RUNNING' ? '↓' : '·';
}

function describe(r: Row): string {
  if (r.text !== undefined) return r.text;
  const parts = [STATE_WORDS[r.state] ?? r.state.toLowerCase(), formatSeconds(r.elapsed)];
  if (r.bytesKnown && (r.state === 'RUNNING' || r.state === 'DONE')) {
    parts.push(`${formatBytes(r.bytesDone)} of ${formatBytes(r.bytesTotal)}`);
    if (r.state === 'RUNNING' && r.rate > 0) parts.push(`${formatBytes(r.rate)}/s`);
  }
  return parts.join('  ');
}

// ---------------------------------------------------------------------------------------------
// Parts

export interface PartOutcome {
  /** Key in the JSON summary ("images"). */
  readonly key: string;
  readonly ok: boolean;
  /** Column names of the summary table. */
  readonly header: readonly string[];
  /** Rows of the summary table: first cell is the item. */
  readonly rows: readonly string[][];
  /** One line per failed item, naming it and the reason. */
  readonly failures: readonly string[];
  /** Lines worth telling that do not fail the run. */
  readonly warnings?: readonly string[];
  readonly json: unknown;
  /** Extra top-level JSON fields (e.g. the runtime). */
  readonly meta?: Record<string, unknown>;
}

export interface PartContext {
  readonly config: WarmConfig;
  readonly signal: AbortSignal;
  readonly display: Display;
  readonly log: Logger;
}

export type WarmPart = (ctx: PartContext) => Promise<PartOutcome>;

const IMAGE_HEADER = ['IMAGE', 'STATE', 'TIME', 'SIZE'];

function imageOutcome(results: ImageResult__Output[], runtime: CriRuntime | undefined, endpoint: CriEndpoint): PartOutcome {
  return {
    key: 'images',
    header: IMAGE_HEADER,
    ok: results.every((r) => r.state === 'DONE' || r.state === 'PRESENT'),
    rows: results.map((r) => [
      r.image,
      STATE_WORDS[r.state] ?? r.state,
      formatSeconds(r.seconds),
      r.sizeBytes > 0 ? formatBytes(r.sizeBytes) : '-',
    ]),
    failures: results.filter((r) => r.failure).map((r) => `${r.failure?.code}: ${r.failure?.message}`),
    json: results,
    meta: {
      runtime: runtime
        ? { endpoint: endpoint.display, name: runtime.version.runtimeName, version: runtime.version.runtimeVersion }
        : { endpoint: endpoint.display, name: null, version: null },
    },
  };
}

/** The image part: credentials, runtime connection, the engine, progress onto the display. */
export const imagePart: WarmPart = async ({ config, signal, display, log }) => {
  const warnings: string[] = [];
  const credentials = await loadDockerCredentials({
    authFile: config.authFile,
    dockerConfigDir: config.dockerConfigDir,
    home: config.home,
    onWarning: (w) => warnings.push(w),
  });
  let runtime: CriRuntime | undefined;
  try {
    runtime = await connectRuntime(config.criEndpoint, { signal, onProgressError: (err) => log.debug({ err }, 'listing ingests failed') });
  } catch (err) {
    const cause = err instanceof WarmError ? err : new WarmError('RUNTIME_ERROR', String(err));
    log.debug({ detail: cause.detail }, 'runtime connection failed');
    // Invalid references still say so; every other image fails with the runtime's reason.
    const results = await warmImagesWithoutRuntime(config, cause);
    return { ...imageOutcome(results, undefined, config.criEndpoint), warnings };
  }
  const progress = runtime.progress;
  const latest = new Map<string, ImageProgress__Output>();
  const aggregateTimer = setInterval(() => {
    const agg = progress?.aggregate();
    const running = [...latest.values()].filter((p) => p.state === 'RUNNING');
    const shared = running.some((p) => !p.bytesKnown);
    display.aggregate(
      agg && running.length > 1 && shared && agg.bytesTotal > 0
        ? `all pulls: ${formatBytes(agg.bytesDone)} of ${formatBytes(agg.bytesTotal)} (several pulls share the byte count)`
        : undefined,
    );
  }, 500);
  aggregateTimer.unref();
  try {
    const results = await warmImages(runtime, {
      images: config.images.map((image) => ({ image, pullPolicy: config.pullPolicy })),
      credentials,
      concurrency: config.concurrency,
      progressTimeoutMs: config.progressTimeoutMs,
      pullTimeoutMs: config.pullTimeoutMs,
      signal,
      logger: log,
      progressIntervalMs: 250,
      onProgress: (p) => {
        latest.set(p.image, p);
        display.update(p.image, {
          state: p.state,
          elapsed: p.elapsedSeconds,
          bytesDone: p.bytesDone,
          bytesTotal: p.bytesTotal,
          bytesKnown: p.bytesKnown,
        });
      },
    });
    return { ...imageOutcome(results, runtime, config.criEndpoint), warnings };
  } finally {
    clearInterval(aggregateTimer);
    display.aggregate(undefined);
    runtime.close();
  }
};

async function warmImagesWithoutRuntime(config: WarmConfig, cause: WarmError): Promise<ImageResult__Output[]> {
  const { parseImageReference, InvalidReferenceError } = await import('./images/reference.js');
  return config.images.map((image) => {
    try {
      parseImageReference(image);
    } catch (err) {
      if (err instanceof InvalidReferenceError) {
        return { image, state: 'FAILED', imageRef: '', sizeBytes: 0, seconds: 0, failure: { code: 'INVALID_REFERENCE', message: err.message } };
      }
      throw err;
    }
    const message =
      cause.code === 'RUNTIME_UNAVAILABLE'
        ? `cannot pull ${image}: the container runtime is unreachable at ${config.criEndpoint.display}`
        : `cannot pull ${image}: ${cause.message}`;
    return { image, state: 'FAILED', imageRef: '', sizeBytes: 0, seconds: 0, failure: { code: cause.code, message } };
  });
}

// ---------------------------------------------------------------------------------------------
// The command

function table(header: readonly string[], rows: readonly string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

export interface RunIo {
  stdout: NodeJS.WriteStream | NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  isTTY: boolean;
}

/** Runs the parts together and prints one summary; resolves with the exit code. */
export async function runWarm(config: WarmConfig, parts: readonly WarmPart[], io: RunIo, signal: AbortSignal): Promise<number> {
  const log = createLogger({ name: 'stoker-warm', level: config.logLevel, destination: pino.destination({ dest: 2, sync: true }) });
  const display: Display = config.json
    ? new SilentDisplay()
    : io.isTTY
      ? new TerminalDisplay(io.stdout as NodeJS.WriteStream)
      : new PlainDisplay(io.stdout);
  const startedAt = Date.now();
  let outcomes: PartOutcome[];
  try {
    outcomes = await Promise.all(parts.map((part) => part({ config, signal, display, log })));
  } finally {
    display.close();
  }
  const ok = outcomes.every((o) => o.ok);
  const failures = outcomes.flatMap((o) => o.failures);
  if (config.json) {
    const doc: Record<string, unknown> = { ok, seconds: (Date.now() - startedAt) / 1000 };
    for (const o of outcomes) Object.assign(doc, o.meta ?? {}, { [o.key]: o.json });
    io.stdout.write(`${JSON.stringify(doc)}\n`);
  } else {
    for (const o of outcomes) if (o.rows.length > 0) io.stdout.write(`\n${table(o.header, o.rows)}\n`);
  }
  for (const line of outcomes.flatMap((o) => o.warnings ?? [])) io.stderr.write(`warning: ${line}\n`);
  for (const line of failures) io.stderr.write(`error: ${line}\n`);
  return ok ? EXIT_OK : EXIT_FAILED;
}

export function registerWarmCommand(program: Command): Command {
  const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
  return program
    .command('warm')
    .description('Warm this node now: pull images through the CRI and read files into the page cache (exit 0 only when all of it is warm)')
    .addOption(new Option('--image <ref>', `image to pull; repeat for more [env: ${WARM_ENV.images}, comma-separated]`).argParser(collect))
    .option('--cri-endpoint <endpoint>', `CRI socket; default: containerd's, then CRI-O's [env: ${WARM_ENV.criEndpoint}]`)
    .option('--auth-file <path>', `Docker config with registry credentials; default $DOCKER_CONFIG/config.json, then ~/.docker/config.json [env: ${WARM_ENV.authFile}]`)
    .option('--pull-policy <policy>', `IfNotPresent (default) or Always [env: ${WARM_ENV.pullPolicy}]`)
    .option('--concurrency <n>', `images pulled at once (default ${DEFAULT_CONCURRENCY}) [env: ${WARM_ENV.concurrency}]`)
    .option('--progress-timeout <seconds>', `cancel a pull after this long without new bytes; 0 never (default ${DEFAULT_PROGRESS_TIMEOUT_MS / 1000}) [env: ${WARM_ENV.progressTimeout}]`)
    .option('--pull-timeout <seconds>', `cap on one pull where byte progress is unknown; 0 none (default 0) [env: ${WARM_ENV.pullTimeout}]`)
    .addOption(new Option('--path <path>', `file or directory to read into the page cache; repeat for more [env: ${FILE_ENV.paths}, comma-separated]`).argParser(collect))
    .addOption(new Option('--allowed-root <dir>', `directory every --path must really lie in (symlinks resolved); repeat for more [env: ${FILE_ENV.allowedRoots}]`).argParser(collect))
    .addOption(new Option('--include <glob>', `read only files matching this glob, relative to each --path ("*.bin" matches at any depth) [env: ${FILE_ENV.include}]`).argParser(collect))
    .addOption(new Option('--exclude <glob>', `skip files and directories matching this glob, relative to each --path [env: ${FILE_ENV.exclude}]`).argParser(collect))
    .option('--budget <mode>', `when the files exceed available memory or Stoker's cgroup limit: warn (default), refuse or off [env: ${FILE_ENV.budget}]`)
    .option('--readers <n>', `files read at once (default ${DEFAULT_READERS}; UV_THREADPOOL_SIZE bounds how many really run) [env: ${FILE_ENV.readers}]`)
    .option('--json', `print one JSON summary on stdout instead of the display [env: ${WARM_ENV.json}]`)
    .option('--log-level <level>', `log level on stderr (default error) [env: ${WARM_ENV.logLevel}]`)
    .exitOverride((err: CommanderError) => {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) process.exit(0);
      process.exit(EXIT_USAGE);
    })
    .action(async (flags: WarmFlags) => {
      let config: WarmConfig;
      try {
        config = parseWarmConfig(flags, process.env);
      } catch (err) {
        if (err instanceof UsageError) {
          process.stderr.write(`error: ${err.message}\n`);
          process.exitCode = EXIT_USAGE;
          return;
        }
        throw err;
      }
      const controller = new AbortController();
      const onSignal = (): void => controller.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const parts = [...(config.images.length > 0 ? [imagePart] : []), ...(config.files.paths.length > 0 ? [filesPart(config.files)] : [])];
        process.exitCode = await runWarm(config, parts, { stdout: process.stdout, stderr: process.stderr, isTTY: process.stdout.isTTY === true }, controller.signal);
      } catch (err) {
        if (err instanceof DockerConfigError) {
          process.stderr.write(`error: ${err.message}\n`);
          process.exitCode = EXIT_USAGE;
          return;
        }
        throw err;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
