// The configuration of `stoker controller`: every flag with its STOKER_* variable, default and
// check (declared with proto/common/config.ts), parsed once into one frozen ControllerConfig that
// the rest of the controller receives. Nothing else in the controller reads process.env.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import * as z from 'zod/mini';
import {
  DAY_MS,
  absoluteDir,
  HOUR_MS,
  LOG_LEVEL_HELP,
  bool,
  defineFlags,
  dnsLabel,
  dnsSubdomain,
  durationMs,
  filePath,
  hostPort,
  listFlag,
  listOf,
  logLevel,
  parseFlags,
  valueFlag,
  wholeNumber,
  type ConfigOf,
  type Env,
  type FlagInput,
} from '../proto/common/config.js';

import { REGISTRY_POLICY_FLAGS, registryPolicyOf, type RegistryPolicy } from '../proto/common/registry-policy.js';

export { ConfigError } from '../proto/common/config.js';

const namespace = dnsLabel('is not a valid namespace name');

export const CONTROLLER_FLAGS = defineFlags({
  /** undefined: in-cluster (or the default kubeconfig outside a cluster). */
  kubeconfig: valueFlag({
    flag: '--kubeconfig', env: ['STOKER_KUBECONFIG', 'KUBECONFIG'], arg: 'file',
    help: 'kubeconfig file; in-cluster config when absent', schema: filePath,
  }),
  /** Namespace of the agents' Service and of the leader Lease. */
  namespace: valueFlag({
    flag: '--namespace', env: 'STOKER_NAMESPACE', arg: 'namespace', default: 'stoker-system',
    help: "namespace of the agents' Service and of the leader Lease", schema: namespace,
  }),
  /** Each node's agent is the ready endpoint on that node in this Service's EndpointSlices (k8s/agent-endpoints.ts). */
  agentService: valueFlag({
    flag: '--agent-service', env: 'STOKER_AGENT_SERVICE', arg: 'name', default: 'stoker-agent',
    help: "the agents' headless Service in --namespace: its EndpointSlices, written by Kubernetes, say where each node's agent is",
    schema: dnsLabel('is not a valid Service name'),
  }),
  /** '' means every namespace. */
  watchNamespace: valueFlag({
    flag: '--watch-namespace', env: 'STOKER_WATCH_NAMESPACE', arg: 'namespace', default: '',
    help: 'reconcile Warmups only in this namespace (default: all)', schema: z.union([z.literal(''), namespace]),
  }),
  /** Empty: every namespace. Elsewhere a Warmup fails NamespaceNotAllowed; the chart grants Secret reads only here. */
  warmupNamespaces: listFlag({
    flag: '--warmup-namespaces', env: 'STOKER_WARMUP_NAMESPACES', arg: 'namespace',
    help: 'serve Warmups (read their pull secrets, warm their nodes) only in these namespaces; repeat for more; others fail NamespaceNotAllowed (default: every namespace)',
    schema: listOf(namespace, { unique: true }),
  }),
  /** Network volumes (NFS, CSI) a Warmup names by claim are read under it, where a running pod mounts them. */
  kubeletPodsDir: valueFlag({
    flag: '--kubelet-pods-dir', env: 'STOKER_KUBELET_PODS_DIR', arg: 'dir', default: '/var/lib/kubelet/pods',
    help: "the kubelet's pods directory on the nodes: network volumes (NFS, CSI) are read through its mounts there (an allowed root of the agents)",
    schema: absoluteDir,
  }),
  tlsCertFile: valueFlag({
    flag: '--tls-cert-file', env: 'STOKER_TLS_CERT_FILE', arg: 'file', required: true,
    help: 'client certificate (PEM) for mutual TLS to agents', schema: filePath,
  }),
  tlsPrivateKeyFile: valueFlag({
    flag: '--tls-private-key-file', env: 'STOKER_TLS_PRIVATE_KEY_FILE', arg: 'file', required: true,
    help: 'private key (PEM) of the client certificate', schema: filePath,
  }),
  agentCaFile: valueFlag({
    flag: '--agent-ca-file', env: 'STOKER_AGENT_CA_FILE', arg: 'file', required: true,
    help: "CA (PEM) that signed the agents' server certificates", schema: filePath,
  }),
  /** Checked against agents' server certificates instead of the endpoint host. */
  agentServerName: valueFlag({
    flag: '--agent-server-name', env: 'STOKER_AGENT_SERVER_NAME', arg: 'name',
    help: "name to check agents' certificates against", schema: z.string(),
  }),
  httpListen: valueFlag({
    flag: '--http-listen', env: 'STOKER_HTTP_LISTEN', arg: 'host:port', default: '0.0.0.0:8080',
    help: 'HOST:PORT for /healthz, /readyz, /metrics', schema: hostPort,
  }),
  maxConcurrentReconciles: valueFlag({
    flag: '--max-concurrent-reconciles', env: 'STOKER_MAX_CONCURRENT_RECONCILES', arg: 'n', default: '4',
    help: 'Warmups reconciled at once', schema: wholeNumber(1, 1000),
  }),
  leaderElect: valueFlag({
    flag: '--leader-elect', env: 'STOKER_LEADER_ELECT', arg: 'bool', default: 'true',
    help: 'elect a leader through a Lease (true/false)', schema: bool,
  }),
  leaderElectionId: valueFlag({
    flag: '--leader-election-id', env: 'STOKER_LEADER_ELECTION_ID', arg: 'id',
    default: () => `${hostname()}_${randomBytes(4).toString('hex')}`,
    help: "this replica's identity (default: host name + random suffix)",
    schema: z.string().check(z.maxLength(253, 'must be at most 253 characters without spaces'), z.regex(/^\S+$/, 'must be at most 253 characters without spaces')),
  }),
  leaderLeaseName: valueFlag({
    flag: '--leader-lease-name', env: 'STOKER_LEADER_LEASE_NAME', arg: 'name', default: 'stoker-controller',
    help: 'name of the leader Lease', schema: dnsSubdomain('is not a valid object name'),
  }),
  leaseDurationMs: valueFlag({
    flag: '--lease-duration', env: 'STOKER_LEASE_DURATION', arg: 'duration', default: '15s',
    help: 'how long a leader Lease lasts without renewal', schema: durationMs(1_000, HOUR_MS),
  }),
  renewDeadlineMs: valueFlag({
    flag: '--renew-deadline', env: 'STOKER_RENEW_DEADLINE', arg: 'duration', default: '10s',
    help: 'a leader that cannot renew for this long steps down', schema: durationMs(500, HOUR_MS),
  }),
  retryPeriodMs: valueFlag({
    flag: '--retry-period', env: 'STOKER_RETRY_PERIOD', arg: 'duration', default: '2s',
    help: 'interval between leader election attempts', schema: durationMs(100, HOUR_MS),
  }),
  statusIntervalMs: valueFlag({
    flag: '--status-interval', env: 'STOKER_STATUS_INTERVAL', arg: 'duration', default: '1s',
    help: 'at most one status write per Warmup per interval', schema: durationMs(100, 600_000),
  }),
  relistIntervalMs: valueFlag({
    flag: '--relist-interval', env: 'STOKER_RELIST_INTERVAL', arg: 'duration', default: '5m',
    help: 'full relist of watched resources', schema: durationMs(0, DAY_MS),
  }),
  /** A watch silent (not even a bookmark) for this long is restarted. */
  watchdogMs: valueFlag({
    flag: '--watchdog', env: 'STOKER_WATCHDOG', arg: 'duration', default: '90s',
    help: 'restart a watch silent for this long', schema: durationMs(1_000, HOUR_MS),
  }),
  shutdownTimeoutMs: valueFlag({
    flag: '--shutdown-timeout', env: 'STOKER_SHUTDOWN_TIMEOUT', arg: 'duration', default: '10s',
    help: 'bound on draining at shutdown', schema: durationMs(0, 600_000),
  }),
  logLevel: valueFlag({
    flag: '--log-level', env: 'STOKER_LOG_LEVEL', arg: 'level', default: 'info', help: LOG_LEVEL_HELP, schema: logLevel,
  }),
  /** The agents' policy, checked before dispatch so a refused registry fails the Warmup at once. */
  ...REGISTRY_POLICY_FLAGS,
});

/** The options as commander hands them over (tests pass the same shape). */
export type ControllerFlagInput = FlagInput<typeof CONTROLLER_FLAGS>;
export type ControllerConfig = Omit<ConfigOf<typeof CONTROLLER_FLAGS>, 'registryAllow' | 'registryDeny'> & {
  /** The built-in rules plus --registry-allow and --registry-deny. */
  readonly registryPolicy: RegistryPolicy;
};

/** Flags over STOKER_* variables over defaults, validated and frozen; throws ConfigError. */
export function resolveControllerConfig(input: ControllerFlagInput, env: Env = {}): ControllerConfig {
  const { registryAllow, registryDeny, ...controller } = parseFlags(CONTROLLER_FLAGS, input, env, (c, { fail, show }) => {
    if (c.renewDeadlineMs >= c.leaseDurationMs) fail('renewDeadlineMs', `must be shorter than ${show('leaseDurationMs')}`);
    if (c.retryPeriodMs >= c.renewDeadlineMs) fail('retryPeriodMs', `must be shorter than ${show('renewDeadlineMs')}`);
  });
  return Object.freeze({ ...controller, registryPolicy: registryPolicyOf({ registryAllow, registryDeny }) });
}
