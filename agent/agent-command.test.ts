import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerAgentCommand } from './agent-command.js';
import { AGENT_FLAGS } from './config.js';

class ExitCalled extends Error {
  constructor(readonly code: number | string | null | undefined) {
    super(`process.exit(${String(code)})`);
  }
}

function agentCommand(): Command {
  const program = new Command('stoker').exitOverride();
  registerAgentCommand(program);
  const agent = program.commands.find((c) => c.name() === 'agent');
  if (!agent) throw new Error('no agent command');
  return agent;
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe('stoker agent command', () => {
  it('has a flag for every setting, its help naming the variable and the default', () => {
    const options = agentCommand().options;
    for (const spec of Object.values(AGENT_FLAGS)) {
      const option = options.find((o) => o.long === spec.flag);
      expect(option?.description).toContain(`env ${spec.env}`);
      if ('default' in spec) expect(option?.description).toContain(`default ${spec.default}`);
    }
  });

  it('prints a missing flag as the README shows it and exits 2', async () => {
    vi.stubEnv('STOKER_TLS_PRIVATE_KEY_FILE', '');
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    });
    vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new ExitCalled(code);
    });
    const program = agentCommand().parent;
    const run = program?.parseAsync(['agent', '--node-name', 'n1', '--tls-cert-file', 'server.crt', '--client-ca-file', 'ca.crt'], { from: 'user' });
    await expect(run).rejects.toEqual(new ExitCalled(2));
    expect(stderr.join('')).toBe('stoker agent: --tls-private-key-file is required (or set STOKER_TLS_PRIVATE_KEY_FILE) (see stoker agent --help)\n');
  });
});
