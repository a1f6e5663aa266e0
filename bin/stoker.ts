#!/usr/bin/env node
// The one Stoker CLI: `stoker warm`, `stoker agent`, `stoker controller`.
// Each subcommand's module is loaded only when it runs.
import { Command } from 'commander';
import { STOKER_VERSION } from '../proto/version.js';

const program = new Command('stoker')
  .description('Warms Kubernetes nodes: pre-pulls images through the CRI and reads files into the page cache.')
  .version(STOKER_VERSION)
  .showHelpAfterError();

const { registerWarmCommand } = await import('../agent/warm-command.js');
registerWarmCommand(program);
const { registerAgentCommand } = await import('../agent/agent-command.js');
registerAgentCommand(program);
const { registerControllerCommand } = await import('../controller/controller-command.js');
registerControllerCommand(program);

await program.parseAsync(process.argv);
