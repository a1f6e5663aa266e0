// Runs a credential program (a kubelet credential provider plugin, a Docker credential helper):
// writes its request on stdin, reads its answer from stdout, and bounds it in time and size. The
// answer holds secrets: it is handed back as bytes and never put into an error or a log; stderr,
// which programs use for their own errors, is kept (clipped) for the caller's message.
import { spawn } from 'node:child_process';

/** A program that could not be run, or that failed; the message names it, never its stdout. */
export class CredentialProgramError extends Error {
  constructor(
    message: string,
    /** The exit code, when it exited. */
    readonly exitCode: number | null,
    /** What it printed on stdout (may hold secrets, or a helper's "credentials not found"): not for logs. */
    readonly stdout: string,
  ) {
    super(message);
    this.name = 'CredentialProgramError';
  }
}

export interface RunProgramOptions {
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly stdin: string;
  /** Killed (SIGKILL) after this long. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
  /** stdout beyond this many bytes fails the call (default 1 MiB). */
  readonly maxStdoutBytes?: number;
}

const STDERR_KEEP = 4096;

/** The first line of a program's stderr, clipped, for an error message. */
function stderrLine(stderr: string): string {
  const line = stderr.trim().split('\n')[0]?.trim() ?? '';
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

/** Runs `path` and resolves with its stdout when it exits 0; rejects with a CredentialProgramError otherwise. */
export function runCredentialProgram(path: string, opts: RunProgramOptions): Promise<string> {
  const maxStdout = opts.maxStdoutBytes ?? 1024 * 1024;
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(path, [...(opts.args ?? [])], { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      reject(new CredentialProgramError(`${path} cannot be run (${(err as NodeJS.ErrnoException).code ?? String(err)})`, null, ''));
      return;
    }
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = '';
    let failure: string | undefined;
    const kill = (why: string): void => {
      failure ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(`did not answer within ${Math.round(opts.timeoutMs / 1000)} s`), opts.timeoutMs);
    const onAbort = (): void => kill('was cancelled');
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (b: Buffer) => {
      outBytes += b.length;
      if (outBytes > maxStdout) kill(`wrote more than ${maxStdout} bytes`);
      else out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < STDERR_KEEP) stderr += b.toString('utf8').slice(0, STDERR_KEEP - stderr.length);
    });
    // A program that exits without reading its stdin is not an error of ours.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.stdin);

    let spawnError: NodeJS.ErrnoException | undefined;
    child.on('error', (err: NodeJS.ErrnoException) => {
      spawnError = err;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const stdout = Buffer.concat(out).toString('utf8');
      if (spawnError) {
        reject(new CredentialProgramError(`${path} cannot be run (${spawnError.code ?? spawnError.message})`, null, ''));
      } else if (failure) {
        reject(new CredentialProgramError(`${path} ${failure}`, code, ''));
      } else if (code !== 0) {
        const said = stderrLine(stderr);
        reject(new CredentialProgramError(`${path} exited with ${code ?? `signal ${signal ?? '?'}`}${said ? `: ${said}` : ''}`, code, stdout));
      } else {
        resolve(stdout);
      }
    });
  });
}
