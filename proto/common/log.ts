// The one logger factory for the agent, the controller and the CLI: pino, JSON, object first,
// with every credential-bearing field redacted wherever it appears in a logged object.
import { pino, type Logger, type DestinationStream } from 'pino';

/** Field names that carry secrets, at any depth a log object may put them. */
const SECRET_KEYS = [
  'password',
  'auth',
  'identityToken',
  'identity_token',
  'registryToken',
  'registry_token',
  'token',
  'authorization',
  'Authorization',
  'dockerconfigjson',
  '.dockerconfigjson',
  'credentials',
];

export const REDACT_PATHS: readonly string[] = Object.freeze(
  SECRET_KEYS.flatMap((k) => {
    const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
    const dot = key.startsWith('[') ? key : `.${key}`;
    return [key.startsWith('[') ? key : k, `*${dot}`, `*.*${dot}`, `*.*.*${dot}`];
  }),
);

/** The levels a logger can be set to, most severe first ('silent' logs nothing). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogOptions {
  level?: string;
  name: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions): Logger {
  const options = {
    name: opts.name,
    level: opts.level ?? 'info',
    redact: { paths: [...REDACT_PATHS], censor: '[REDACTED]' },
    base: { pid: process.pid },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

export type { Logger };
