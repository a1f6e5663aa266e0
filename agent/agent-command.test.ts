import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { ANNOUNCE_FLAGS, registerAgentCommand } from './agent-command.js';
import { ANNOUNCE_OPTIONS } from './announce.js';
import { AGENT_OPTIONS } from './config.js';

describe('stoker agent command', () => {
  it('repeats the announcement flags exactly as announce.ts defines them', () => {
    expect(ANNOUNCE_FLAGS).toEqual(ANNOUNCE_OPTIONS);
  });

  it('has a flag for every agent option and every announcement option', () => {
    const program = new Command('stoker');
    registerAgentCommand(program);
    const agent = program.commands.find((c) => c.name() === 'agent');
    const flags = agent?.options.map((o) => o.long) ?? [];
    for (const spec of [...Object.values(AGENT_OPTIONS), ...Object.values(ANNOUNCE_OPTIONS)]) expect(flags).toContain(spec.flag);
  });
});
