// Where `stoker warm` finds registry credentials: the Docker config file Docker itself would
// read, and the credential helpers it names. Parsing the file and matching its entries to images
// is proto/common/docker-config.ts, shared with the controller's pull secrets; running helpers is
// here, for `stoker warm` only.
//
// A helper is run as Docker runs one (docker/docker-credential-helpers' client): the program
// `docker-credential-<name>` from PATH, argument `get`, the server URL on stdin (no newline),
// and its stdout {"ServerURL": ..., "Username": ..., "Secret": ...} read back; a Username of
// "<token>" means Secret is an identity token. A helper that answers "credentials not found"
// has none for that server. The server URL is what `docker login` stored: the registry host
// ("ghcr.io", "127.0.0.1:5000"), or "https://index.docker.io/v1/" for Docker Hub.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RegistryCredential } from '../../proto/agent.js';
import {
  DockerConfigError,
  dockerCredentialHelpers,
  normaliseRegistryKey,
  parseDockerConfig,
  type DockerCredentialHelpers,
} from '../../proto/common/docker-config.js';
import { DOCKER_HUB, type ImageReference } from '../../proto/common/image-reference.js';
import { CredentialProgramError, runCredentialProgram } from '../credentials/credential-exec.js';

export { DockerConfigError };

const HELPER_TIMEOUT_MS = 60_000;
const DOCKER_HUB_SERVER = 'https://index.docker.io/v1/';

/** Where Docker looks: an explicit file, else $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(opts: { authFile?: string | undefined; dockerConfigDir?: string | undefined; home?: string }): {
  path: string;
  explicit: boolean;
} {
  if (opts.authFile) return { path: opts.authFile, explicit: true };
  if (opts.dockerConfigDir) return { path: join(opts.dockerConfigDir, 'config.json'), explicit: false };
  return { path: join(opts.home ?? homedir(), '.docker', 'config.json'), explicit: false };
}

/** What a Docker config gives: its "auths" entries and the helpers it names. */
export interface DockerConfig {
  readonly path: string;
  /** One per "auths" key (`registry` is the normalised key, matched to each image by the engine). */
  readonly credentials: readonly RegistryCredential[];
  readonly helpers: DockerCredentialHelpers;
}

const NO_HELPERS: DockerCredentialHelpers = Object.freeze({ credsStore: undefined, credHelpers: new Map<string, string>() });

/**
 * Reads the Docker config. A missing default file means no credentials; a missing explicit file
 * (--auth-file) is an error that names it.
 */
export async function loadDockerConfig(opts: { authFile?: string | undefined; dockerConfigDir?: string | undefined; home?: string }): Promise<DockerConfig> {
  const { path, explicit } = dockerConfigPath(opts);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return { path, credentials: [], helpers: NO_HELPERS };
    throw new DockerConfigError(path, code === 'ENOENT' ? 'no such file' : `cannot read it (${code ?? 'error'})`);
  }
  return {
    path,
    credentials: parseDockerConfig(text, path).map((e) => ({ ...e, auth: '' })),
    helpers: dockerCredentialHelpers(text, path),
  };
}

/** The helper a Docker config names for an image's registry: its credHelpers entry, else credsStore. */
export function helperFor(helpers: DockerCredentialHelpers, ref: Pick<ImageReference, 'domain'>): string | undefined {
  return helpers.credHelpers.get(normaliseRegistryKey(ref.domain)) ?? helpers.credsStore;
}

/** The server URL Docker stores a registry's credentials under. */
export function helperServerUrl(ref: Pick<ImageReference, 'domain'>): string {
  return normaliseRegistryKey(ref.domain) === DOCKER_HUB ? DOCKER_HUB_SERVER : ref.domain;
}

/** A helper that could not give an answer; the message names it and the server, never its output. */
export class CredentialHelperError extends Error {
  override readonly name = 'CredentialHelperError';
}

/**
 * Runs `docker-credential-<helper> get` for a server; resolves undefined when the helper has no
 * credentials for it. `env` gives the PATH the program is looked up in.
 */
export async function helperCredential(
  helper: string,
  serverUrl: string,
  opts: { env?: NodeJS.ProcessEnv; signal?: AbortSignal | undefined; timeoutMs?: number } = {},
): Promise<RegistryCredential | undefined> {
  const program = `docker-credential-${helper}`;
  let stdout: string;
  try {
    stdout = await runCredentialProgram(program, {
      args: ['get'],
      stdin: serverUrl,
      env: opts.env ?? process.env,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? HELPER_TIMEOUT_MS,
      maxStdoutBytes: 64 * 1024,
    });
  } catch (err) {
    if (err instanceof CredentialProgramError && /credentials not found/i.test(err.stdout)) return undefined;
    throw new CredentialHelperError(`credential helper failed for ${serverUrl}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new CredentialHelperError(`credential helper ${program} answered for ${serverUrl} with something that is not JSON`);
  }
  const { Username, Secret } = (typeof doc === 'object' && doc !== null ? doc : {}) as { Username?: unknown; Secret?: unknown };
  if (typeof Username !== 'string' || typeof Secret !== 'string') {
    throw new CredentialHelperError(`credential helper ${program} answered for ${serverUrl} without a Username and a Secret`);
  }
  if (Secret === '') return undefined;
  const token = Username === '<token>';
  return {
    registry: serverUrl,
    username: token ? '' : Username,
    password: token ? '' : Secret,
    auth: '',
    identityToken: token ? Secret : '',
    registryToken: '',
  };
}
