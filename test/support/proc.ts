// Runs commands and the hack/ scripts for integration tests; failures reject with the command's stderr.
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root directory. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Absolute path of a script under hack/, e.g. hackScript('containerd.sh'). */
export function hackScript(name: string): string {
  return join(REPO_ROOT, 'hack', name);
}

export interface RunOptions {
  /** Aborting kills the command (SIGKILL) and rejects. */
  signal?: AbortSignal;
  /** Extra environment variables on top of this process's environment. */
  env?: Record<string, string>;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  cwd?: string;
  /** Strings (passwords) replaced by [REDACTED] in a CommandError's message. */
  secrets?: readonly string[];
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Error thrown when a command exits non-zero; `message` carries its stderr. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
    secrets: readonly string[] = [],
  ) {
    super(redact(`${command} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim() || stdout.trim() || 'no output'}`, secrets));
    this.name = 'CommandError';
  }
}

function redact(text: string, secrets: readonly string[]): string {
  return secrets.filter((s) => s !== '').reduce((t, s) => t.split(s).join('[REDACTED]'), text);
}

/** Runs a command to completion; resolves with its output, rejects with CommandError on a non-zero exit. */
export function run(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    opts.signal?.throwIfAborted();
    const child = spawn(command, args, {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const onAbort = (): void => {
      child.kill('SIGKILL');
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      opts.signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
    child.on('close', (code) => {
      opts.signal?.removeEventListener('abort', onAbort);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (opts.signal?.aborted) reject(opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
      else if (code === 0) resolvePromise({ stdout, stderr });
      else reject(new CommandError([command, ...args].join(' '), code, stdout, stderr, opts.secrets));
    });
    if (child.stdin) {
      // A command that exits without reading its input must not crash the test with EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

/** Runs hack/<name> with bash and resolves with its trimmed stdout. */
export async function runHack(name: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const { stdout } = await run('bash', [hackScript(name), ...args], opts);
  return stdout.trim();
}
