// `stoker agent`: the per-node daemon. Flags (with STOKER_* environment fallbacks) become one
// validated config; SIGTERM or SIGINT drain it and the process exits 0 within 10 s.
import { Option, type Command } from 'commander';
import { createLogger } from '../proto/common/log.js';
import { AGENT_OPTIONS, ConfigError, resolveAgentConfig, type AgentOptionsInput } from './config.js';
import type { AnnounceConfig, AnnounceOptionsInput } from './announce.js';

/** Past this, a stuck drain no longer holds the process: Kubernetes kills at 30 s by default. */
const EXIT_DEADLINE_MS = 9_500;

/**
 * The announcement's flags, as ANNOUNCE_OPTIONS in announce.ts has them (agent-command.test.ts keeps
 * the two equal). They are repeated here so that announce.ts and its Lease client load only when
 * the agent is asked to announce itself.
 */
export const ANNOUNCE_FLAGS = {
  kubeconfig: { flag: '--kubeconfig', env: 'STOKER_KUBECONFIG' },
  announceNamespace: { flag: '--announce-namespace', env: 'STOKER_ANNOUNCE_NAMESPACE' },
  advertiseAddress: { flag: '--advertise-address', env: 'STOKER_ADVERTISE_ADDRESS' },
} as const;

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function registerAgentCommand(program: Command): void {
  const o = AGENT_OPTIONS;
  const opt = (spec: { flag: string; env: string; default?: string }, arg: string, text: string) =>
    new Option(`${spec.flag} <${arg}>`, `${text} (env ${spec.env}${spec.default !== undefined ? `, default ${spec.default}` : ''})`);

  program
    .command('agent')
    .description('Run the node agent: the Agent gRPC API over mutual TLS, and HTTP /healthz /readyz /status /metrics.')
    .addOption(opt(o.nodeName, 'name', 'the Kubernetes node this agent runs on; requests for other nodes are refused'))
    .addOption(opt(o.criEndpoint, 'url', 'CRI endpoint of the container runtime: unix:///path, /path or tcp://host:port'))
    .addOption(opt(o.grpcListen, 'host:port', 'where the gRPC API listens (port 0 picks a free port)'))
    .addOption(opt(o.httpListen, 'host:port', 'where /healthz, /readyz, /status and /metrics listen'))
    .addOption(
      new Option(`${o.allowedRoot.flag} <dir>`, `a directory files may be warmed from; repeat for more (env ${o.allowedRoot.env}, comma-separated)`).argParser(collect),
    )
    .addOption(opt(o.tlsCertFile, 'file', "the agent's TLS certificate (PEM)"))
    .addOption(opt(o.tlsPrivateKeyFile, 'file', "the agent's TLS private key (PEM)"))
    .addOption(opt(o.clientCaFile, 'file', 'CA that client certificates must chain to (PEM)'))
    .addOption(opt(o.tlsReloadInterval, 'duration', 'how often the TLS files are re-read, so rotated certificates take effect without a restart (0: never)'))
    .addOption(opt(o.progressTimeout, 'duration', 'cancel a pull when no new bytes arrive for this long'))
    .addOption(opt(o.pullConcurrency, 'n', 'images pulled at once per task'))
    .addOption(opt(o.maxRunningTasks, 'n', 'tasks run at once; more are refused'))
    .addOption(opt(o.taskRetention, 'duration', 'how long a finished task is remembered, so its task id is not run again'))
    .addOption(opt(o.taskRetentionCount, 'n', 'how many finished tasks are remembered'))
    .addOption(opt(o.runtimeProbeInterval, 'duration', "how often the runtime's Version is probed"))
    .addOption(opt(o.shutdownTimeout, 'duration', 'how long work may drain at shutdown (at most 9s)'))
    .addOption(opt(o.logLevel, 'level', 'fatal, error, warn, info, debug, trace or silent'))
    .addOption(opt(ANNOUNCE_FLAGS.announceNamespace, 'namespace', 'announce this agent with a Lease in this namespace, for the controller to find (off when absent)'))
    .addOption(opt(ANNOUNCE_FLAGS.kubeconfig, 'file', 'kubeconfig for the announcement (default: in-cluster)'))
    .addOption(opt(ANNOUNCE_FLAGS.advertiseAddress, 'host', 'IP or host name the controller dials (default: the gRPC listen address)'))
    .action(async (allFlags: AgentOptionsInput & AnnounceOptionsInput) => {
      const { kubeconfig, announceNamespace, advertiseAddress, ...flags } = allFlags;
      let config;
      let announce: AnnounceConfig | undefined;
      let announceModule: typeof import('./announce.js') | undefined;
      try {
        config = resolveAgentConfig(flags, process.env);
        const announceInput = { kubeconfig, announceNamespace, advertiseAddress };
        const wanted = Object.values(announceInput).some((v) => v) || Object.values(ANNOUNCE_FLAGS).some((f) => process.env[f.env]);
        if (wanted) {
          announceModule = await import('./announce.js');
          announce = announceModule.resolveAnnounceConfig(announceInput, process.env);
        }
      } catch (err) {
        if (!(err instanceof ConfigError || (err instanceof Error && err.name === 'AnnounceConfigError'))) throw err;
        process.stderr.write(`stoker agent: ${err.message} (see stoker agent --help)\n`);
        process.exit(2);
      }
      const log = createLogger({ name: 'stoker-agent', level: config.logLevel });
      const { startAgent } = await import('./run.js');
      let agent;
      try {
        agent = await startAgent(config, { logger: log });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log.fatal({ err: message }, 'agent failed to start');
        process.stderr.write(`stoker agent: ${message}\n`);
        process.exit(1);
      }
      const running = agent;
      let announcer;
      try {
        announcer = announce && announceModule ? announceModule.announceAgent(announce, running, log) : undefined;
      } catch (err) {
        // A kubeconfig that cannot be used: say which, and leave (the agent is not yet announced).
        const message = err instanceof Error ? err.message : String(err);
        log.fatal({ err: message }, 'agent cannot announce itself');
        process.stderr.write(`stoker agent: ${message}\n`);
        await running.stop('cannot announce').catch(() => undefined);
        process.exit(2);
      }
      const onSignal = (signal: NodeJS.Signals) => {
        const deadline = setTimeout(() => {
          log.error({ signal, ms: EXIT_DEADLINE_MS }, 'shutdown did not finish in time; exiting');
          process.exit(1);
        }, EXIT_DEADLINE_MS);
        deadline.unref();
        // Withdraw the announcement first, so the controller stops sending work here.
        (announcer?.stop() ?? Promise.resolve())
          .then(() => running.stop(`received ${signal}`))
          .then(
            () => process.exit(0),
            (err: unknown) => {
              log.error({ err: err instanceof Error ? err.message : String(err) }, 'shutdown failed');
              process.exit(1);
            },
          );
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    });
}
