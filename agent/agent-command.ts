// `stoker agent`: the per-node daemon. Flags (with STOKER_* environment fallbacks) become one
// validated config; SIGTERM or SIGINT drain it and the process exits 0 within 10 s.
import type { Command } from 'commander';
import { addFlags, configOrExit } from '../proto/common/config.js';
import { createLogger } from '../proto/common/log.js';
import { AGENT_FLAGS, resolveAgentConfig, type AgentFlagInput } from './config.js';

/** Past this, a stuck drain no longer holds the process: Kubernetes kills at 30 s by default. */
const EXIT_DEADLINE_MS = 9_500;

export function registerAgentCommand(program: Command): void {
  const command = program
    .command('agent')
    .description('Run the node agent: the Agent gRPC API over mutual TLS, and HTTP /healthz /readyz /status /metrics.');
  addFlags(command, AGENT_FLAGS).action(async (flags: AgentFlagInput) => {
    const config = configOrExit('agent', () => resolveAgentConfig(flags, process.env));
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
    const onSignal = (signal: NodeJS.Signals) => {
      const deadline = setTimeout(() => {
        log.error({ signal, ms: EXIT_DEADLINE_MS }, 'shutdown did not finish in time; exiting');
        process.exit(1);
      }, EXIT_DEADLINE_MS);
      deadline.unref();
      running
        .stop(`received ${signal}`)
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
