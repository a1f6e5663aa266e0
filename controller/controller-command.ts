// `stoker controller`: parses flags (with STOKER_* environment fallbacks), starts the controller,
// and stops it gracefully on SIGTERM or SIGINT (exit 0), as Kubernetes does on every rollout.
import type { Command } from 'commander';
import { ConfigError, CONTROLLER_OPTIONS, resolveControllerConfig, type ControllerOptionsInput } from './config.js';

export function registerControllerCommand(program: Command): void {
  const cmd = program
    .command('controller')
    .description('Run the Warmup controller: watches Warmups, Nodes and agent Leases and warms matching nodes through their agents.');
  for (const [, spec] of Object.entries(CONTROLLER_OPTIONS)) {
    const placeholder = spec.flag === '--leader-elect' ? '<bool>' : '<value>';
    const defaultText = 'default' in spec && spec.default !== '' ? `, default ${spec.default}` : '';
    cmd.option(`${spec.flag} ${placeholder}`, `${spec.help} (env ${spec.env}${defaultText})`);
  }
  cmd.action(async (opts: ControllerOptionsInput) => {
    let config;
    try {
      config = resolveControllerConfig(opts, process.env);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`stoker controller: ${err.message}\n`);
        process.exitCode = 2;
        return;
      }
      throw err;
    }
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
