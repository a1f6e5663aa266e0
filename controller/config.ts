// The controller's configuration: command-line flags with STOKER_* environment fallbacks,
// validated once and handed to the rest of the controller as one frozen object. Nothing else in
// the controller reads process.env.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseDuration, parseHostPort } from '../proto/common/options.js';

export interface ListenAddress {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
}

export interface ControllerConfig {
  /** Path of a kubeconfig; undefined means in-cluster (or the default kubeconfig outside a cluster). */
  readonly kubeconfig: string | undefined;
  /** Namespace of the agents' announcement Leases and of the leader Lease. */
  readonly namespace: string;
  /** Namespace whose Warmups are reconciled; '' means every namespace. */
  readonly watchNamespace: string;
  /** PEM files for mutual TLS to the agents. */
  readonly tlsCertFile: string;
  readonly tlsPrivateKeyFile: string;
  /** CA that signed the agents' server certificates. */
  readonly agentCaFile: string;
  /** Name checked against agents' server certificates instead of the endpoint host. */
  readonly agentServerName: string | undefined;
  /** /healthz, /readyz and /metrics. */
  readonly httpListen: ListenAddress;
  readonly maxConcurrentReconciles: number;
  readonly leaderElect: boolean;
  readonly leaderElectionId: string;
  readonly leaderLeaseName: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  /** At most one status write per Warmup per this interval. */
  readonly statusIntervalMs: number;
  /** Full relist of every informer at this interval. */
  readonly relistIntervalMs: number;
  /** A watch silent (not even a bookmark) for this long is restarted. */
  readonly watchdogMs: number;
  /** Bound on draining at shutdown. */
  readonly shutdownTimeoutMs: number;
  readonly logLevel: string;
}

/** Raw option values as commander (or a caller) hands them over: strings, or absent. */
export interface ControllerOptionsInput {
  kubeconfig?: string | undefined;
  namespace?: string | undefined;
  watchNamespace?: string | undefined;
  tlsCertFile?: string | undefined;
  tlsPrivateKeyFile?: string | undefined;
  agentCaFile?: string | undefined;
  agentServerName?: string | undefined;
  httpListen?: string | undefined;
  maxConcurrentReconciles?: string | undefined;
  leaderElect?: string | undefined;
  leaderElectionId?: string | undefined;
  leaderLeaseName?: string | undefined;
  leaseDuration?: string | undefined;
  renewDeadline?: string | undefined;
  retryPeriod?: string | undefined;
  statusInterval?: string | undefined;
  relistInterval?: string | undefined;
  watchdog?: string | undefined;
  shutdownTimeout?: string | undefined;
  logLevel?: string | undefined;
}

/** Each option: its flag, its environment variable, its default (if any) and its help. */
export const CONTROLLER_OPTIONS = {
  kubeconfig: { flag: '--kubeconfig', env: 'STOKER_KUBECONFIG', help: 'kubeconfig file; in-cluster config when absent' },
  namespace: { flag: '--namespace', env: 'STOKER_NAMESPACE', default: 'stoker-system', help: 'namespace of the agent Leases and the leader Lease' },
  watchNamespace: { flag: '--watch-namespace', env: 'STOKER_WATCH_NAMESPACE', default: '', help: 'reconcile Warmups only in this namespace (default: all)' },
  tlsCertFile: { flag: '--tls-cert-file', env: 'STOKER_TLS_CERT_FILE', help: 'client certificate (PEM) for mutual TLS to agents' },
  tlsPrivateKeyFile: { flag: '--tls-private-key-file', env: 'STOKER_TLS_PRIVATE_KEY_FILE', help: 'private key (PEM) of the client certificate' },
  agentCaFile: { flag: '--agent-ca-file', env: 'STOKER_AGENT_CA_FILE', help: "CA (PEM) that signed the agents' server certificates" },
  agentServerName: { flag: '--agent-server-name', env: 'STOKER_AGENT_SERVER_NAME', help: "name to check agents' certificates against" },
  httpListen: { flag: '--http-listen', env: 'STOKER_HTTP_LISTEN', default: '0.0.0.0:8080', help: 'HOST:PORT for /healthz, /readyz, /metrics' },
  maxConcurrentReconciles: { flag: '--max-concurrent-reconciles', env: 'STOKER_MAX_CONCURRENT_RECONCILES', default: '4', help: 'Warmups reconciled at once' },
  leaderElect: { flag: '--leader-elect', env: 'STOKER_LEADER_ELECT', default: 'true', help: 'elect a leader through a Lease (true/false)' },
  leaderElectionId: { flag: '--leader-election-id', env: 'STOKER_LEADER_ELECTION_ID', help: 'this replica\'s identity (default: host name + random suffix)' },
  leaderLeaseName: { flag: '--leader-lease-name', env: 'STOKER_LEADER_LEASE_NAME', default: 'stoker-controller', help: 'name of the leader Lease' },
  leaseDuration: { flag: '--lease-duration', env: 'STOKER_LEASE_DURATION', default: '15s', help: 'how long a leader Lease lasts without renewal' },
  renewDeadline: { flag: '--renew-deadline', env: 'STOKER_RENEW_DEADLINE', default: '10s', help: 'a leader that cannot renew for this long steps down' },
  retryPeriod: { flag: '--retry-period', env: 'STOKER_RETRY_PERIOD', default: '2s', help: 'interval between leader election attempts' },
  statusInterval: { flag: '--status-interval', env: 'STOKER_STATUS_INTERVAL', default: '1s', help: 'at most one status write per Warmup per interval' },
  relistInterval: { flag: '--relist-interval', env: 'STOKER_RELIST_INTERVAL', default: '5m', help: 'full relist of watched resources' },
  watchdog: { flag: '--watchdog', env: 'STOKER_WATCHDOG', default: '90s', help: 'restart a watch silent for this long' },
  shutdownTimeout: { flag: '--shutdown-timeout', env: 'STOKER_SHUTDOWN_TIMEOUT', default: '10s', help: 'bound on draining at shutdown' },
  logLevel: { flag: '--log-level', env: 'STOKER_LOG_LEVEL', default: 'info', help: 'fatal, error, warn, info, debug, trace or silent' },
} as const satisfies Record<keyof ControllerOptionsInput, { flag: string; env: string; default?: string; help: string }>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Env = Readonly<Record<string, string | undefined>>;
type Key = keyof typeof CONTROLLER_OPTIONS;

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
/** A DNS-1123 label (namespaces). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A DNS-1123 subdomain (object names). */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function describe(key: Key): string {
  const { flag, env } = CONTROLLER_OPTIONS[key];
  return `${flag} (${env})`;
}

/**
 * Merges flags over environment variables over defaults, validates every value and returns a
 * frozen config. Throws ConfigError naming the flag (and its variable) and the bad value.
 */
export function resolveControllerConfig(input: ControllerOptionsInput, env: Env = {}): ControllerConfig {
  const pick = (key: Key): string | undefined => {
    const spec: { env: string; default?: string } = CONTROLLER_OPTIONS[key];
    const fromFlag = input[key];
    if (fromFlag !== undefined && fromFlag !== '') return fromFlag;
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    return spec.default;
  };
  const required = (key: Key): string => {
    const value = pick(key);
    if (value === undefined || value === '') throw new ConfigError(`${CONTROLLER_OPTIONS[key].flag} is required (or set ${CONTROLLER_OPTIONS[key].env})`);
    if (value.includes('\0')) throw new ConfigError(`${describe(key)} "${value}" is not a file path`);
    return value;
  };

  const namespace = pick('namespace') ?? 'stoker-system';
  if (namespace.length > 63 || !DNS_LABEL.test(namespace)) throw new ConfigError(`${describe('namespace')} "${namespace}" is not a valid namespace name`);
  const watchNamespace = pick('watchNamespace') ?? '';
  if (watchNamespace !== '' && (watchNamespace.length > 63 || !DNS_LABEL.test(watchNamespace))) {
    throw new ConfigError(`${describe('watchNamespace')} "${watchNamespace}" is not a valid namespace name`);
  }
  const leaderLeaseName = pick('leaderLeaseName') ?? 'stoker-controller';
  if (leaderLeaseName.length > 253 || !DNS_SUBDOMAIN.test(leaderLeaseName)) {
    throw new ConfigError(`${describe('leaderLeaseName')} "${leaderLeaseName}" is not a valid object name`);
  }
  const leaderElectRaw = (pick('leaderElect') ?? 'true').toLowerCase();
  if (!['true', 'false', '1', '0', 'yes', 'no'].includes(leaderElectRaw)) {
    throw new ConfigError(`${describe('leaderElect')} "${leaderElectRaw}" is not true or false`);
  }
  const leaderElectionId = pick('leaderElectionId') ?? `${hostname()}_${randomBytes(4).toString('hex')}`;
  if (leaderElectionId.length > 253 || /\s/.test(leaderElectionId)) {
    throw new ConfigError(`${describe('leaderElectionId')} "${leaderElectionId}" must be at most 253 characters without spaces`);
  }

  const leaseDurationMs = durationOption('leaseDuration', pick('leaseDuration') ?? '15s', 1_000, 3600_000);
  const renewDeadlineMs = durationOption('renewDeadline', pick('renewDeadline') ?? '10s', 500, 3600_000);
  const retryPeriodMs = durationOption('retryPeriod', pick('retryPeriod') ?? '2s', 100, 3600_000);
  if (renewDeadlineMs >= leaseDurationMs) {
    throw new ConfigError(`${describe('renewDeadline')} (${renewDeadlineMs / 1000}s) must be shorter than ${describe('leaseDuration')} (${leaseDurationMs / 1000}s)`);
  }
  if (retryPeriodMs >= renewDeadlineMs) {
    throw new ConfigError(`${describe('retryPeriod')} (${retryPeriodMs / 1000}s) must be shorter than ${describe('renewDeadline')} (${renewDeadlineMs / 1000}s)`);
  }

  const logLevel = pick('logLevel') ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError(`${describe('logLevel')} "${logLevel}" is not one of ${[...LOG_LEVELS].join(', ')}`);

  const kubeconfig = pick('kubeconfig') ?? env['KUBECONFIG'];
  if (kubeconfig?.includes('\0')) throw new ConfigError(`${describe('kubeconfig')} "${kubeconfig}" is not a file path`);
  const agentServerName = pick('agentServerName');

  const config: ControllerConfig = {
    kubeconfig: kubeconfig === '' ? undefined : kubeconfig,
    namespace,
    watchNamespace,
    tlsCertFile: required('tlsCertFile'),
    tlsPrivateKeyFile: required('tlsPrivateKeyFile'),
    agentCaFile: required('agentCaFile'),
    agentServerName: agentServerName === '' ? undefined : agentServerName,
    httpListen: parseListen(pick('httpListen') ?? '0.0.0.0:8080'),
    maxConcurrentReconciles: intOption('maxConcurrentReconciles', pick('maxConcurrentReconciles') ?? '4', 1, 1000),
    leaderElect: ['true', '1', 'yes'].includes(leaderElectRaw),
    leaderElectionId,
    leaderLeaseName,
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    statusIntervalMs: durationOption('statusInterval', pick('statusInterval') ?? '1s', 100, 600_000),
    relistIntervalMs: durationOption('relistInterval', pick('relistInterval') ?? '5m', 0, 24 * 3600_000),
    watchdogMs: durationOption('watchdog', pick('watchdog') ?? '90s', 1_000, 3600_000),
    shutdownTimeoutMs: durationOption('shutdownTimeout', pick('shutdownTimeout') ?? '10s', 0, 600_000),
    logLevel,
  };
  return Object.freeze(config);
}

function parseListen(value: string): ListenAddress {
  const parsed = parseHostPort(value);
  if (!parsed) throw new ConfigError(`${describe('httpListen')} "${value}" is not HOST:PORT (PORT 0-65535; [::1]:PORT for IPv6)`);
  return parsed;
}

function intOption(key: Key, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ConfigError(`${describe(key)} "${value}" is not a whole number from ${min} to ${max}`);
  return n;
}

function durationOption(key: Key, value: string, minMs: number, maxMs: number): number {
  const ms = parseDuration(value);
  if (ms === undefined || !Number.isFinite(ms)) throw new ConfigError(`${describe(key)} "${value}" is not a duration like 90s, 5m or 1h`);
  if (ms < minMs || ms > maxMs) throw new ConfigError(`${describe(key)} "${value}" is out of range (${minMs / 1000}s to ${maxMs / 1000}s)`);
  return ms;
}
