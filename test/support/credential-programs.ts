// Credential programs of our own for tests, written as shell scripts into a temp dir: a kubelet
// credential provider plugin and a Docker credential helper, each handing out credentials for a
// test registry and logging every call (its arguments and its stdin) to a file the test reads.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CredentialProgram {
  /** The executable's path. */
  readonly path: string;
  /** One line per run: `argv|stdin`. */
  calls(): Promise<string[]>;
}

/** A shell string literal. */
function sh(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

async function writeProgram(path: string, log: string, body: string): Promise<CredentialProgram> {
  await writeFile(path, `#!/bin/sh\nrequest=$(cat)\nprintf '%s|%s\\n' "$*" "$request" >> ${sh(log)}\n${body}\n`, { mode: 0o755 });
  return {
    path,
    calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l !== ''),
  };
}

export interface PluginAnswer {
  /** A shell `case` pattern the requested image (the plugin's stdin) must match, e.g. `*"/team/"*`. */
  readonly when: string;
  readonly auth: Record<string, { username: string; password: string }>;
  readonly cacheKeyType?: 'Image' | 'Registry' | 'Global';
  readonly cacheDuration?: string;
}

/**
 * A kubelet credential provider plugin named `name` in `binDir`: answers the first matching
 * `answers` entry with a CredentialProviderResponse (credentialprovider.kubelet.k8s.io/v1), and
 * an empty auth map when none matches.
 */
export function writeProviderPlugin(binDir: string, name: string, answers: readonly PluginAnswer[]): Promise<CredentialProgram> {
  const response = (a: Omit<PluginAnswer, 'when'>): string =>
    JSON.stringify({
      kind: 'CredentialProviderResponse',
      apiVersion: 'credentialprovider.kubelet.k8s.io/v1',
      cacheKeyType: a.cacheKeyType ?? 'Image',
      ...(a.cacheDuration !== undefined ? { cacheDuration: a.cacheDuration } : { cacheDuration: '0s' }),
      auth: a.auth,
    });
  const cases = answers.map((a) => `  ${a.when}) printf '%s\\n' ${sh(response(a))} ;;`).join('\n');
  return writeProgram(join(binDir, name), join(binDir, `${name}.calls`), `case "$request" in\n${cases}\n  *) printf '%s\\n' ${sh(response({ auth: {} }))} ;;\nesac`);
}

/** A CredentialProviderConfig (kubelet.config.k8s.io/v1) naming one plugin. */
export async function writeProviderConfig(path: string, plugin: { name: string; matchImages: readonly string[]; defaultCacheDuration?: string }): Promise<string> {
  await writeFile(
    path,
    [
      'apiVersion: kubelet.config.k8s.io/v1',
      'kind: CredentialProviderConfig',
      'providers:',
      `  - name: ${plugin.name}`,
      `    matchImages: ${JSON.stringify(plugin.matchImages)}`,
      `    defaultCacheDuration: "${plugin.defaultCacheDuration ?? '0s'}"`,
      '    apiVersion: credentialprovider.kubelet.k8s.io/v1',
      '',
    ].join('\n'),
  );
  return path;
}

/** A Docker credential helper `docker-credential-<name>` in `dir` that knows one server's credentials. */
export function writeDockerHelper(dir: string, name: string, server: string, creds: { username: string; password: string }): Promise<CredentialProgram> {
  const answer = JSON.stringify({ ServerURL: server, Username: creds.username, Secret: creds.password });
  return writeProgram(
    join(dir, `docker-credential-${name}`),
    join(dir, `docker-credential-${name}.calls`),
    `if [ "$1" = get ] && [ "$request" = ${sh(server)} ]; then printf '%s\\n' ${sh(answer)}; else echo 'credentials not found in native keychain'; exit 1; fi`,
  );
}
