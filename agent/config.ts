// The configuration of `stoker agent`: every flag with its STOKER_* variable, default and check
// (declared with proto/common/config.ts), parsed once into one frozen AgentConfig that the rest of
// the agent receives. Nothing else in the agent reads process.env.
import * as z from 'zod/mini';
import {
  DAY_MS,
  HOUR_MS,
  LOG_LEVEL_HELP,
  absoluteDir,
  defineFlags,
  dnsSubdomain,
  durationMs,
  filePath,
  hostPort,
  listFlag,
  listOf,
  logLevel,
  parseFlags,
  parseHostPort,
  valueFlag,
  wholeNumber,
  type ConfigOf,
  type Env,
  type FlagInput,
} from '../proto/common/config.js';

import { REGISTRY_POLICY_FLAGS, registryPolicyOf, type RegistryPolicy } from '../proto/common/registry-policy.js';
import {
  checkCredentialProviderFlags,
  CREDENTIAL_PROVIDER_FLAGS,
  credentialProviderPaths,
  type CredentialProviderPaths,
} from './credentials/credential-provider.js';

export { ConfigError } from '../proto/common/config.js';

/** A certificate name: printable, no spaces, at most 1024 characters (URIs can be long). */
const controllerName = z
  .string()
  .check(z.maxLength(1024, 'is longer than 1024 characters'), z.regex(/^[\x21-\x7e]+$/, 'is not a certificate name (printable characters, no spaces)'));

/** unix:///path, a bare absolute socket path (made unix://), or tcp://host:port. */
const criEndpoint = z.pipe(
  z.string(),
  z.transform((value: string, ctx) => {
    if (value.startsWith('/')) return `unix://${value}`;
    if (/^unix:\/\/(\/.+)$/.test(value)) return value;
    const tcp = /^tcp:\/\/(.+)$/.exec(value);
    if (tcp?.[1] && parseHostPort(tcp[1])) return value;
    ctx.issues.push({ code: 'custom', input: value, message: tcp ? 'is not tcp://HOST:PORT' : 'is not unix:///PATH, /PATH or tcp://HOST:PORT' });
    return z.NEVER;
  }),
);

export const AGENT_FLAGS = defineFlags({
  nodeName: valueFlag({
    flag: '--node-name', env: 'STOKER_NODE_NAME', arg: 'name', required: true,
    help: 'the Kubernetes node this agent runs on; requests for other nodes are refused',
    schema: dnsSubdomain('is not a valid Kubernetes node name'),
  }),
  /** Becomes a gRPC target, e.g. unix:///run/containerd/containerd.sock. */
  criEndpoint: valueFlag({
    flag: '--cri-endpoint', env: 'STOKER_CRI_ENDPOINT', arg: 'url', default: 'unix:///run/containerd/containerd.sock',
    help: 'CRI endpoint of the container runtime: unix:///path, /path or tcp://host:port',
    schema: criEndpoint,
  }),
  grpcListen: valueFlag({
    flag: '--grpc-listen', env: 'STOKER_GRPC_LISTEN', arg: 'host:port', default: '0.0.0.0:7443',
    help: 'where the gRPC API listens (port 0 picks a free port)', schema: hostPort,
  }),
  httpListen: valueFlag({
    flag: '--http-listen', env: 'STOKER_HTTP_LISTEN', arg: 'host:port', default: '0.0.0.0:7080',
    help: 'where /healthz, /readyz, /status and /metrics listen', schema: hostPort,
  }),
  /** Absolute directories files may be warmed from, normalised, without repeats. */
  allowedRoots: listFlag({
    flag: '--allowed-root', env: 'STOKER_ALLOWED_ROOTS', arg: 'dir',
    help: 'a directory files may be warmed from; repeat for more', schema: listOf(absoluteDir, { unique: true }),
  }),
  tlsCertFile: valueFlag({
    flag: '--tls-cert-file', env: 'STOKER_TLS_CERT_FILE', arg: 'file', required: true,
    help: "the agent's TLS certificate (PEM)", schema: filePath,
  }),
  tlsPrivateKeyFile: valueFlag({
    flag: '--tls-private-key-file', env: 'STOKER_TLS_PRIVATE_KEY_FILE', arg: 'file', required: true,
    help: "the agent's TLS private key (PEM)", schema: filePath,
  }),
  clientCaFile: valueFlag({
    flag: '--client-ca-file', env: 'STOKER_CLIENT_CA_FILE', arg: 'file', required: true,
    help: 'CA that client certificates must chain to (PEM)', schema: filePath,
  }),
  /** The Subject CN, DNS name or URI the caller's certificate must carry (server/caller.ts). */
  controllerName: valueFlag({
    flag: '--controller-name', env: 'STOKER_CONTROLLER_NAME', arg: 'name', default: 'stoker-controller',
    help: 'serve only callers whose client certificate carries this name (its CN, a DNS name or a URI); others get PERMISSION_DENIED',
    schema: controllerName,
  }),
  /** 0: never re-read. */
  tlsReloadIntervalMs: valueFlag({
    flag: '--tls-reload-interval', env: 'STOKER_TLS_RELOAD_INTERVAL', arg: 'duration', default: '1m',
    help: 'how often the TLS files are re-read, so rotated certificates take effect without a restart (0: never)',
    schema: durationMs(0, DAY_MS),
  }),
  /** Requests may ask for another value. */
  progressTimeoutMs: valueFlag({
    flag: '--progress-timeout', env: 'STOKER_PROGRESS_TIMEOUT', arg: 'duration', default: '120s',
    help: 'cancel a pull when no new bytes arrive for this long', schema: durationMs(1_000, DAY_MS),
  }),
  pullConcurrency: valueFlag({
    flag: '--pull-concurrency', env: 'STOKER_PULL_CONCURRENCY', arg: 'n', default: '3',
    help: 'images pulled at once per task', schema: wholeNumber(1, 64),
  }),
  /** More are refused with RESOURCE_EXHAUSTED. */
  maxRunningTasks: valueFlag({
    flag: '--max-running-tasks', env: 'STOKER_MAX_RUNNING_TASKS', arg: 'n', default: '64',
    help: 'tasks run at once; more are refused', schema: wholeNumber(1, 10_000),
  }),
  /** A repeated task id joins a remembered task instead of running again. */
  taskRetentionMs: valueFlag({
    flag: '--task-retention', env: 'STOKER_TASK_RETENTION', arg: 'duration', default: '1h',
    help: 'how long a finished task is remembered, so its task id is not run again', schema: durationMs(0, 7 * DAY_MS),
  }),
  taskRetentionCount: valueFlag({
    flag: '--task-retention-count', env: 'STOKER_TASK_RETENTION_COUNT', arg: 'n', default: '1000',
    help: 'how many finished tasks are remembered', schema: wholeNumber(0, 1_000_000),
  }),
  runtimeProbeIntervalMs: valueFlag({
    flag: '--runtime-probe-interval', env: 'STOKER_RUNTIME_PROBE_INTERVAL', arg: 'duration', default: '5s',
    help: "how often the runtime's Version is probed", schema: durationMs(100, HOUR_MS),
  }),
  /** Bound on draining at shutdown before calls are cut; Kubernetes kills at 10 s in the chart. */
  shutdownTimeoutMs: valueFlag({
    flag: '--shutdown-timeout', env: 'STOKER_SHUTDOWN_TIMEOUT', arg: 'duration', default: '7s',
    help: 'how long work may drain at shutdown (at most 9s)', schema: durationMs(0, 9_000),
  }),
  logLevel: valueFlag({
    flag: '--log-level', env: 'STOKER_LOG_LEVEL', arg: 'level', default: 'info', help: LOG_LEVEL_HELP, schema: logLevel,
  }),
  ...REGISTRY_POLICY_FLAGS,
  /** The kubelet's flags of the same names: credentials for images the controller sent none for. */
  ...CREDENTIAL_PROVIDER_FLAGS,
});

/** The options as commander hands them over (tests pass the same shape). */
export type AgentFlagInput = FlagInput<typeof AGENT_FLAGS>;

type AgentFlagValues = ConfigOf<typeof AGENT_FLAGS>;
type Grouped = 'registryAllow' | 'registryDeny' | 'imageCredentialProviderConfig' | 'imageCredentialProviderBinDir';
export type AgentConfig = Omit<AgentFlagValues, Grouped> & {
  /** The built-in rules plus --registry-allow and --registry-deny. */
  readonly registryPolicy: RegistryPolicy;
  /** Kubelet credential provider plugins (agent/credentials/credential-provider.ts); absent without their flags. */
  readonly credentialProviders: CredentialProviderPaths | undefined;
};

/** Flags over STOKER_* variables over defaults, validated and frozen; throws ConfigError. */
export function resolveAgentConfig(input: AgentFlagInput, env: Env = {}): AgentConfig {
  const { registryAllow, registryDeny, imageCredentialProviderConfig, imageCredentialProviderBinDir, ...agent } = parseFlags(AGENT_FLAGS, input, env, (c, { fail }) => {
    checkCredentialProviderFlags(c, { fail });
  });
  const credentialProviders = credentialProviderPaths({ imageCredentialProviderConfig, imageCredentialProviderBinDir });
  return Object.freeze({ ...agent, registryPolicy: registryPolicyOf({ registryAllow, registryDeny }), credentialProviders });
}
