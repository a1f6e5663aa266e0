// Registry credentials from a Docker config file ("auths" entries with "auth" or
// username/password, identity or registry tokens) and Docker's way of matching an entry to an
// image's registry: a key matches when its host (scheme and path stripped) equals the
// registry, and Docker Hub answers to all of its historical names.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RegistryCredential } from '../../proto/agent.js';
import { DOCKER_HUB } from '../../proto/common/image-reference.js';

/** Every name Docker Hub goes by in Docker config files and image references. */
export const DOCKER_HUB_ALIASES: readonly string[] = Object.freeze([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'https://index.docker.io/v1/',
]);

export class DockerConfigError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`cannot use Docker config ${path}: ${reason}`);
    this.name = 'DockerConfigError';
  }
}

/** The registry host a config key or a credential names: scheme, path and case dropped, Hub aliases folded. */
export function registryHost(key: string): string {
  let host = key.trim();
  if (DOCKER_HUB_ALIASES.includes(host)) return DOCKER_HUB;
  host = host.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  host = host.toLowerCase();
  return DOCKER_HUB_ALIASES.includes(host) ? DOCKER_HUB : host;
}

/** The credential for an image's registry (its domain, as parseImageReference gives it), if any. */
export function credentialFor(
  registry: string,
  credentials: readonly RegistryCredential[],
): RegistryCredential | undefined {
  const wanted = registryHost(registry);
  return credentials.find((c) => c.registry !== undefined && registryHost(c.registry) === wanted);
}

/** Where Docker looks: an explicit file, else $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(opts: { authFile?: string | undefined; dockerConfigDir?: string | undefined; home?: string }): {
  path: string;
  explicit: boolean;
} {
  if (opts.authFile) return { path: opts.authFile, explicit: true };
  if (opts.dockerConfigDir) return { path: join(opts.dockerConfigDir, 'config.json'), explicit: false };
  return { path: join(opts.home ?? homedir(), '.docker', 'config.json'), explicit: false };
}

/**
 * Parses the text of a Docker config file into credentials, one per registry. Credential
 * helpers (credsStore, credHelpers) are not run; `onWarning` hears about them.
 */
export function parseDockerConfig(text: string, path: string, onWarning?: (message: string) => void): RegistryCredential[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The parser's message can quote the file's content, which holds secrets.
    throw new DockerConfigError(path, 'it is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new DockerConfigError(path, 'it is not a JSON object');
  const { auths, credsStore, credHelpers } = doc as { auths?: unknown; credsStore?: unknown; credHelpers?: unknown };
  const helpers = [
    ...(typeof credsStore === 'string' && credsStore !== '' ? [`credsStore "${credsStore}"`] : []),
    ...(typeof credHelpers === 'object' && credHelpers !== null ? Object.keys(credHelpers).map((k) => `credHelpers for ${k}`) : []),
  ];
  if (helpers.length > 0) {
    onWarning?.(`${path} names credential helpers (${helpers.join(', ')}), which Stoker does not run; only its "auths" entries are used`);
  }
  if (auths === undefined) return [];
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) {
    throw new DockerConfigError(path, '"auths" is not an object');
  }
  const byRegistry = new Map<string, RegistryCredential>();
  for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null) throw new DockerConfigError(path, `the entry for "${key}" is not an object`);
    const entry = value as Record<string, unknown>;
    const str = (name: string): string => {
      const v = entry[name];
      if (v === undefined || v === null) return '';
      if (typeof v !== 'string') throw new DockerConfigError(path, `"${name}" of the entry for "${key}" is not a string`);
      return v;
    };
    let username = str('username');
    let password = str('password');
    const auth = str('auth');
    if (auth !== '') {
      const decoded = Buffer.from(auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) throw new DockerConfigError(path, `"auth" of the entry for "${key}" is not base64 of "user:password"`);
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
    const identityToken = str('identitytoken');
    const registryToken = str('registrytoken');
    if (username === '' && identityToken === '' && registryToken === '') continue;
    const registry = registryHost(key);
    // Docker prefers an entry whose key is the bare host; among other aliases the first wins.
    if (byRegistry.has(registry) && key !== registry) continue;
    byRegistry.set(registry, { registry, username, password, auth: '', identityToken, registryToken });
  }
  return [...byRegistry.values()];
}

/**
 * Reads credentials from the Docker config. A missing default file means no credentials; a
 * missing explicit file (--auth-file) is an error that names it.
 */
export async function loadDockerCredentials(opts: {
  authFile?: string | undefined;
  dockerConfigDir?: string | undefined;
  home?: string;
  onWarning?: (message: string) => void;
}): Promise<RegistryCredential[]> {
  const { path, explicit } = dockerConfigPath(opts);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return [];
    throw new DockerConfigError(path, code === 'ENOENT' ? 'no such file' : `cannot read it (${code ?? 'error'})`);
  }
  return parseDockerConfig(text, path, opts.onWarning);
}
