// The agent's configuration: command-line flags with STOKER_* environment fallbacks, validated
// once and handed to the rest of the agent as one frozen object. Nothing else reads process.env.
import { isAbsolute, normalize } from 'node:path';
import { parseDuration, parseHostPort } from '../proto/common/options.js';

export interface ListenAddress {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
}

export interface AgentConfig {
  readonly nodeName: string;
  /** CRI endpoint as a gRPC target, e.g. unix:///run/containerd/containerd.sock. */
  readonly criEndpoint: string;
  readonly grpcListen: ListenAddress;
  readonly httpListen: ListenAddress;
  /** Absolute directories files may be warmed from. */
  readonly allowedRoots: readonly string[];
  readonly tlsCertFile: string;
  readonly tlsPrivateKeyFile: string;
  readonly clientCaFile: string;
  /** How often the TLS files are re-read (rotated certificates are taken without a restart); 0: never. */
  readonly tlsReloadIntervalMs: number;
  /** A pull with no new bytes for this long is cancelled (requests may ask for another value). */
  readonly progressTimeoutMs: number;
  /** Images pulled at once per task. */
  readonly pullConcurrency: number;
  /** Tasks running at once; more are refused with RESOURCE_EXHAUSTED. */
  readonly maxRunningTasks: number;
  /** How long, and how many, finished tasks are remembered so a repeated task id joins them. */
  readonly taskRetentionMs: number;
  readonly taskRetentionCount: number;
  /** How often the runtime's Version is probed for readiness. */
  readonly runtimeProbeIntervalMs: number;
  /** Bound on draining at shutdown before calls are cut. */
  readonly shutdownTimeoutMs: number;
  readonly logLevel: string;
}

/** Raw option values as commander (or a caller) hands them over: strings, or absent. */
export interface AgentOptionsInput {
  nodeName?: string | undefined;
  criEndpoint?: string | undefined;
  grpcListen?: string | undefined;
  httpListen?: string | undefined;
  allowedRoot?: readonly string[] | undefined;
  tlsCertFile?: string | undefined;
  tlsPrivateKeyFile?: string | undefined;
  clientCaFile?: string | undefined;
  tlsReloadInterval?: string | undefined;
  progressTimeout?: string | undefined;
  pullConcurrency?: string | undefined;
  maxRunningTasks?: string | undefined;
  taskRetention?: string | undefined;
  taskRetentionCount?: string | undefined;
  runtimeProbeInterval?: string | undefined;
  shutdownTimeout?: string | undefined;
  logLevel?: string | undefined;
}

/** Each option: its flag, its environment variable and its default (if it has one). */
export const AGENT_OPTIONS = {
  nodeName: { flag: '--node-name', env: 'STOKER_NODE_NAME' },
  criEndpoint: { flag: '--cri-endpoint', env: 'STOKER_CRI_ENDPOINT', default: 'unix:///run/containerd/containerd.sock' },
  grpcListen: { flag: '--grpc-listen', env: 'STOKER_GRPC_LISTEN', default: '0.0.0.0:7443' },
  httpListen: { flag: '--http-listen', env: 'STOKER_HTTP_LISTEN', default: '0.0.0.0:7080' },
  allowedRoot: { flag: '--allowed-root', env: 'STOKER_ALLOWED_ROOTS' },
  tlsCertFile: { flag: '--tls-cert-file', env: 'STOKER_TLS_CERT_FILE' },
  tlsPrivateKeyFile: { flag: '--tls-private-key-file', env: 'STOKER_TLS_PRIVATE_KEY_FILE' },
  clientCaFile: { flag: '--client-ca-file', env: 'STOKER_CLIENT_CA_FILE' },
  tlsReloadInterval: { flag: '--tls-reload-interval', env: 'STOKER_TLS_RELOAD_INTERVAL', default: '1m' },
  progressTimeout: { flag: '--progress-timeout', env: 'STOKER_PROGRESS_TIMEOUT', default: '120s' },
  pullConcurrency: { flag: '--pull-concurrency', env: 'STOKER_PULL_CONCURRENCY', default: '3' },
  maxRunningTasks: { flag: '--max-running-tasks', env: 'STOKER_MAX_RUNNING_TASKS', default: '64' },
  taskRetention: { flag: '--task-retention', env: 'STOKER_TASK_RETENTION', default: '1h' },
  taskRetentionCount: { flag: '--task-retention-count', env: 'STOKER_TASK_RETENTION_COUNT', default: '1000' },
  runtimeProbeInterval: { flag: '--runtime-probe-interval', env: 'STOKER_RUNTIME_PROBE_INTERVAL', default: '5s' },
  shutdownTimeout: { flag: '--shutdown-timeout', env: 'STOKER_SHUTDOWN_TIMEOUT', default: '7s' },
  logLevel: { flag: '--log-level', env: 'STOKER_LOG_LEVEL', default: 'info' },
} as const satisfies Record<keyof AgentOptionsInput, { flag: string; env: string; default?: string }>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
/** A Kubernetes node name: a DNS subdomain. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Merges flags over environment variables over defaults, validates every value and returns a
 * frozen config. Throws ConfigError naming the flag (and its variable) and the bad value.
 */
export function resolveAgentConfig(input: AgentOptionsInput, env: Env = {}): AgentConfig {
  const pick = (key: Exclude<keyof AgentOptionsInput, 'allowedRoot'>): string | undefined => {
    const spec: { env: string; default?: string } = AGENT_OPTIONS[key];
    const fromFlag = input[key];
    if (fromFlag !== undefined && fromFlag !== '') return fromFlag;
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    return spec.default;
  };
  const required = (key: 'nodeName' | 'tlsCertFile' | 'tlsPrivateKeyFile' | 'clientCaFile'): string => {
    const value = pick(key);
    if (value === undefined) {
      const { flag, env: name } = AGENT_OPTIONS[key];
      throw new ConfigError(`${flag} is required (or set ${name})`);
    }
    return value;
  };
  const withDefault = (key: Exclude<keyof typeof AGENT_OPTIONS, 'nodeName' | 'allowedRoot' | 'tlsCertFile' | 'tlsPrivateKeyFile' | 'clientCaFile'>): string =>
    pick(key) ?? AGENT_OPTIONS[key].default;

  const nodeName = required('nodeName');
  if (nodeName.length > 253 || !NODE_NAME.test(nodeName)) {
    throw new ConfigError(`${describe('nodeName')} "${nodeName}" is not a valid Kubernetes node name`);
  }

  const tlsCertFile = filePath('tlsCertFile', required('tlsCertFile'));
  const tlsPrivateKeyFile = filePath('tlsPrivateKeyFile', required('tlsPrivateKeyFile'));
  const clientCaFile = filePath('clientCaFile', required('clientCaFile'));

  const rootsRaw = input.allowedRoot?.length
    ? [...input.allowedRoot]
    : (env[AGENT_OPTIONS.allowedRoot.env] ?? '').split(',').filter((r) => r.trim() !== '');
  const allowedRoots = [...new Set(rootsRaw.map((r) => parseRoot(r.trim())))];

  const logLevel = withDefault('logLevel');
  if (!LOG_LEVELS.has(logLevel)) {
    throw new ConfigError(`${describe('logLevel')} "${logLevel}" is not one of ${[...LOG_LEVELS].join(', ')}`);
  }

  const config: AgentConfig = {
    nodeName,
    criEndpoint: parseCriEndpoint(withDefault('criEndpoint')),
    grpcListen: parseListen('grpcListen', withDefault('grpcListen')),
    httpListen: parseListen('httpListen', withDefault('httpListen')),
    allowedRoots: Object.freeze(allowedRoots),
    tlsCertFile,
    tlsPrivateKeyFile,
    clientCaFile,
    tlsReloadIntervalMs: parseDurationOption('tlsReloadInterval', withDefault('tlsReloadInterval'), 0, 24 * 3600_000),
    progressTimeoutMs: parseDurationOption('progressTimeout', withDefault('progressTimeout'), 1_000, 24 * 3600_000),
    pullConcurrency: parseIntOption('pullConcurrency', withDefault('pullConcurrency'), 1, 64),
    maxRunningTasks: parseIntOption('maxRunningTasks', withDefault('maxRunningTasks'), 1, 10_000),
    taskRetentionMs: parseDurationOption('taskRetention', withDefault('taskRetention'), 0, 7 * 24 * 3600_000),
    taskRetentionCount: parseIntOption('taskRetentionCount', withDefault('taskRetentionCount'), 0, 1_000_000),
    runtimeProbeIntervalMs: parseDurationOption('runtimeProbeInterval', withDefault('runtimeProbeInterval'), 100, 3600_000),
    shutdownTimeoutMs: parseDurationOption('shutdownTimeout', withDefault('shutdownTimeout'), 0, 9_000),
    logLevel,
  };
  return Object.freeze(config);
}

function describe(key: keyof typeof AGENT_OPTIONS): string {
  const { flag, env } = AGENT_OPTIONS[key];
  return `${flag} (${env})`;
}

function filePath(key: keyof typeof AGENT_OPTIONS, value: string): string {
  if (value.includes('\0')) throw new ConfigError(`${describe(key)} "${value}" is not a file path`);
  return value;
}

function parseRoot(value: string): string {
  if (!isAbsolute(value)) {
    throw new ConfigError(`${describe('allowedRoot')} "${value}" is not an absolute directory`);
  }
  const root = normalize(value);
  return root.length > 1 && root.endsWith('/') ? root.slice(0, -1) : root;
}

/** Accepts unix:///path, a bare absolute socket path, or tcp://host:port. */
export function parseCriEndpoint(value: string): string {
  if (value.startsWith('/')) return `unix://${value}`;
  const unix = /^unix:\/\/(\/.+)$/.exec(value);
  if (unix) return value;
  const tcp = /^tcp:\/\/(.+)$/.exec(value);
  if (tcp?.[1]) {
    parseHostPortOrThrow(tcp[1], () => new ConfigError(`${describe('criEndpoint')} "${value}" is not tcp://HOST:PORT`));
    return value;
  }
  throw new ConfigError(`${describe('criEndpoint')} "${value}" is not unix:///PATH, /PATH or tcp://HOST:PORT`);
}

function parseListen(key: 'grpcListen' | 'httpListen', value: string): ListenAddress {
  return parseHostPortOrThrow(value, () => new ConfigError(`${describe(key)} "${value}" is not HOST:PORT (PORT 0-65535; [::1]:PORT for IPv6)`));
}

function parseHostPortOrThrow(value: string, error: () => ConfigError): ListenAddress {
  const parsed = parseHostPort(value);
  if (!parsed) throw error();
  return parsed;
}

function parseIntOption(key: keyof typeof AGENT_OPTIONS, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(`${describe(key)} "${value}" is not a whole number from ${min} to ${max}`);
  }
  return n;
}

function parseDurationOption(key: keyof typeof AGENT_OPTIONS, value: string, minMs: number, maxMs: number): number {
  const ms = parseDuration(value);
  if (ms === undefined || !Number.isFinite(ms)) {
    throw new ConfigError(`${describe(key)} "${value}" is not a duration like 90s, 5m or 1h`);
  }
  if (ms < minMs || ms > maxMs) {
    throw new ConfigError(`${describe(key)} "${value}" is out of range (${minMs / 1000}s to ${maxMs / 1000}s)`);
  }
  return ms;
}
