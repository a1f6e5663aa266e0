// `stoker controller`: parses flags (with STOKER_* environment fallbacks), starts the controller,
// and stops it gracefully on SIGTERM or SIGINT (exit 0), as Kubernetes does on every rollout.
import type { Command } from 'commander';
import { addFlags, configOrExit } from '../proto/common/config.js';
import { CONTROLLER_FLAGS, resolveControllerConfig, type ControllerFlagInput } from './config.js';

export function registerControllerCommand(program: Command): void {
  const cmd = program
    .command('controller')
    .description('Run the Warmup controller: watches Warmups, Nodes and agent Leases and warms matching nodes through their agents.');
  addFlags(cmd, CONTROLLER_FLAGS);
  cmd.action(async (opts: ControllerFlagInput) => {
    const config = configOrExit('controller', () => resolveControllerConfig(opts, process.env));
    const { startController } = await import('./main.js');
    let controller;
    try {
      controller = await startController(config);
    } catch (err) {
      process.stderr.write(`stoker controller: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
      return;
    }
    const onSignal = (signal: NodeJS.Signals): void => {
      process.stderr.write(`stoker controller: ${signal} received, stopping\n`);
      controller.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    await controller.done;
  });
}
