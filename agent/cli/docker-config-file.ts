// Where `stoker warm` finds registry credentials: the Docker config file Docker itself would
// read. Parsing it and matching its entries to images is proto/common/docker-config.ts, shared
// with the controller's pull secrets.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RegistryCredential } from '../../proto/agent.js';
import { DockerConfigError, parseDockerConfig } from '../../proto/common/docker-config.js';

export { DockerConfigError };

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
 * Reads credentials from the Docker config, one per config key (`registry` is the normalised
 * key, matched to each image by warmImages). A missing default file means no credentials; a
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
  return parseDockerConfig(text, path, opts.onWarning).map((e) => ({ ...e, auth: '' }));
}
