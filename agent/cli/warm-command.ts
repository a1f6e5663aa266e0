// `stoker warm`: warms this machine directly, without an agent. This module declares the command
// with its flags (config.ts), chooses the parts, images (image-part.ts) and files (file-part.ts),
// and run.ts runs them together into one summary and one exit code.
import type { Command, CommanderError } from 'commander';
import { addFlags, configOrExit, EXIT_USAGE } from '../../proto/common/config.js';
import { CredentialProviderConfigError } from '../credentials/credential-provider.js';
import { DockerConfigError } from './docker-config-file.js';
import { resolveWarmConfig, WARM_FLAGS, type WarmFlagInput } from './config.js';
import { filesPart } from './file-part.js';
import { imagePart } from './image-part.js';
import { runWarm } from './run.js';

export function registerWarmCommand(program: Command): Command {
  const command = program
    .command('warm')
    .description('Warm this node now: pull images through the CRI and read files into the page cache (exit 0 only when all of it is warm)');
  return addFlags(command, WARM_FLAGS)
    .exitOverride((err: CommanderError) => {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) process.exit(0);
      process.exit(EXIT_USAGE);
    })
    .action(async (flags: WarmFlagInput) => {
      const config = configOrExit('warm', () => resolveWarmConfig(flags, process.env));
      const controller = new AbortController();
      const onSignal = (): void => controller.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const parts = [...(config.images.length > 0 ? [imagePart] : []), ...(config.files.paths.length > 0 ? [filesPart(config.files)] : [])];
        process.exitCode = await runWarm(config, parts, { stdout: process.stdout, stderr: process.stderr, isTTY: process.stdout.isTTY === true }, controller.signal);
      } catch (err) {
        if (err instanceof DockerConfigError || err instanceof CredentialProviderConfigError) {
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
