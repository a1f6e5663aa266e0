// The one Stoker CLI (started by bin/stoker.cts): `stoker warm`, `stoker agent`, `stoker controller`.
// Each subcommand's module is loaded only when it runs.
import { Command } from 'commander';
import { STOKER_VERSION } from '../proto/common/version.js';

const program = new Command('stoker')
  .description('Warms Kubernetes nodes: pre-pulls images through the CRI and reads files into the page cache.')
  .version(STOKER_VERSION)
  .showHelpAfterError();

const subcommands: Record<string, () => Promise<unknown>> = {
  warm: async () => (await import('../agent/cli/warm-command.js')).registerWarmCommand(program),
  agent: async () => (await import('../agent/agent-command.js')).registerAgentCommand(program),
  controller: async () => (await import('../controller/controller-command.js')).registerControllerCommand(program),
};
// Only the subcommand that runs is loaded (the controller's Kubernetes client alone takes
// seconds to load); `--version` loads none, help and unknown commands load them all.
const first = process.argv[2] ?? '';
const load = subcommands[first];
if (load) await load();
else if (first !== '--version' && first !== '-V') for (const register of Object.values(subcommands)) await register();

await program.parseAsync(process.argv);
