// `stoker warm`: warms this machine directly, without an agent. This module declares the command
// and its flags; the config (config.ts) chooses the parts, images (image-part.ts) and files
// (file-part.ts), and run.ts runs them together into one summary and one exit code.
import { Command, CommanderError, Option } from 'commander';
import { DockerConfigError } from './docker-config-file.js';
import { DEFAULT_CONCURRENCY, DEFAULT_PROGRESS_TIMEOUT_MS } from '../warm/images.js';
import { DEFAULT_READERS } from '../warm/readers.js';
import { FILE_ENV, parseWarmConfig, UsageError, WARM_ENV, type WarmConfig, type WarmFlags } from './config.js';
import { filesPart } from './file-part.js';
import { imagePart } from './image-part.js';
import { EXIT_USAGE, runWarm } from './run.js';

export function registerWarmCommand(program: Command): Command {
  const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
  return program
    .command('warm')
    .description('Warm this node now: pull images through the CRI and read files into the page cache (exit 0 only when all of it is warm)')
    .addOption(new Option('--image <ref>', `image to pull; repeat for more [env: ${WARM_ENV.images}, comma-separated]`).argParser(collect))
    .option('--cri-endpoint <endpoint>', `CRI socket; default: containerd's, then CRI-O's [env: ${WARM_ENV.criEndpoint}]`)
    .option('--auth-file <path>', `Docker config with registry credentials; default $DOCKER_CONFIG/config.json, then ~/.docker/config.json [env: ${WARM_ENV.authFile}]`)
    .option('--pull-policy <policy>', `IfNotPresent (default) or Always [env: ${WARM_ENV.pullPolicy}]`)
    .option('--concurrency <n>', `images pulled at once (default ${DEFAULT_CONCURRENCY}) [env: ${WARM_ENV.concurrency}]`)
    .option('--progress-timeout <seconds>', `cancel a pull after this long without new bytes; 0 never (default ${DEFAULT_PROGRESS_TIMEOUT_MS / 1000}) [env: ${WARM_ENV.progressTimeout}]`)
    .option('--pull-timeout <seconds>', `cap on one pull where byte progress is unknown; 0 none (default 0) [env: ${WARM_ENV.pullTimeout}]`)
    .addOption(new Option('--path <path>', `file or directory to read into the page cache; repeat for more [env: ${FILE_ENV.paths}, comma-separated]`).argParser(collect))
    .addOption(new Option('--allowed-root <dir>', `directory every --path must really lie in (symlinks resolved); repeat for more [env: ${FILE_ENV.allowedRoots}]`).argParser(collect))
    .addOption(new Option('--include <glob>', `read only files matching this glob, relative to each --path ("*.bin" matches at any depth) [env: ${FILE_ENV.include}]`).argParser(collect))
    .addOption(new Option('--exclude <glob>', `skip files and directories matching this glob, relative to each --path [env: ${FILE_ENV.exclude}]`).argParser(collect))
    .option('--budget <mode>', `when the files exceed available memory or Stoker's cgroup limit: warn (default), refuse or off [env: ${FILE_ENV.budget}]`)
    .option('--readers <n>', `files read at once (default ${DEFAULT_READERS}; UV_THREADPOOL_SIZE bounds how many really run) [env: ${FILE_ENV.readers}]`)
    .option('--json', `print one JSON summary on stdout instead of the display [env: ${WARM_ENV.json}]`)
    .option('--log-level <level>', `log level on stderr (default error) [env: ${WARM_ENV.logLevel}]`)
    .exitOverride((err: CommanderError) => {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) process.exit(0);
      process.exit(EXIT_USAGE);
    })
    .action(async (flags: WarmFlags) => {
      let config: WarmConfig;
      try {
        config = parseWarmConfig(flags, process.env);
      } catch (err) {
        if (err instanceof UsageError) {
          process.stderr.write(`error: ${err.message}\n`);
          process.exitCode = EXIT_USAGE;
          return;
        }
        throw err;
      }
      const controller = new AbortController();
      const onSignal = (): void => controller.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const parts = [...(config.images.length > 0 ? [imagePart] : []), ...(config.files.paths.length > 0 ? [filesPart(config.files)] : [])];
        process.exitCode = await runWarm(config, parts, { stdout: process.stdout, stderr: process.stderr, isTTY: process.stdout.isTTY === true }, controller.signal);
      } catch (err) {
        if (err instanceof DockerConfigError) {
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
