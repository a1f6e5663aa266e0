import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerControllerCommand } from './controller-command.js';
import { CONTROLLER_FLAGS } from './config.js';

class ExitCalled extends Error {
  constructor(readonly code: number | string | null | undefined) {
    super(`process.exit(${String(code)})`);
  }
}

function program(): Command {
  const p = new Command('stoker').exitOverride();
  registerControllerCommand(p);
  return p;
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe('stoker controller command', () => {
  it('has a flag for every setting, its help naming the variable', () => {
    const options = program().commands.find((c) => c.name() === 'controller')?.options ?? [];
    expect(options.map((o) => o.long)).toEqual(Object.values(CONTROLLER_FLAGS).map((f) => f.flag));
    expect(options.find((o) => o.long === '--kubeconfig')?.description).toContain('env STOKER_KUBECONFIG or KUBECONFIG');
  });

  it('prints a bad variable naming it and the value, and exits 2 before starting', async () => {
    vi.stubEnv('STOKER_LOG_LEVEL', 'loud');
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    });
    vi.spyOn(process, 'exit').mockImplementation((code) => {
      throw new ExitCalled(code);
    });
    const run = program().parseAsync(['controller', '--tls-cert-file', 'c', '--tls-private-key-file', 'k', '--agent-ca-file', 'ca'], { from: 'user' });
    await expect(run).rejects.toEqual(new ExitCalled(2));
    expect(stderr.join('')).toBe(
      'stoker controller: --log-level (from STOKER_LOG_LEVEL) "loud" is not one of fatal, error, warn, info, debug, trace, silent (see stoker controller --help)\n',
    );
  });
});
