// Where `stoker warm` gets an image's registry credential, asked right before the image's pull
// (never for an image already present), first answer wins:
//   1. the Docker credential helper the Docker config names for the registry (credHelpers, else
//      credsStore), as `docker pull` would run it;
//   2. the Docker config's "auths" entry for the image (the most specific key);
//   3. the kubelet credential provider plugins (--image-credential-provider-config), as the
//      kubelet on this node would run them.
// A helper or plugin that fails is a warning, and the pull goes ahead without its credentials.
// Each helper runs at most once per registry in one run of the command.
import type { RegistryCredential } from '../../proto/agent.js';
import { credentialFor } from '../../proto/common/docker-config.js';
import type { CredentialProviders } from '../credentials/credential-provider.js';
import { helperCredential, helperFor, helperServerUrl, type DockerConfig } from './docker-config-file.js';
import type { CredentialSource } from '../warm/images.js';

export interface WarmCredentialOptions {
  readonly docker: DockerConfig;
  readonly providers?: CredentialProviders | undefined;
  /** The environment helpers are looked up (PATH) and run in. */
  readonly env?: NodeJS.ProcessEnv;
  /** The command's signal: helpers still running when it aborts are stopped. */
  readonly signal?: AbortSignal;
  readonly onWarning: (message: string) => void;
}

export function warmCredentialSource(opts: WarmCredentialOptions): CredentialSource {
  const helperRuns = new Map<string, Promise<RegistryCredential | undefined>>();
  return async (ref, signal) => {
    const helper = helperFor(opts.docker.helpers, ref);
    if (helper !== undefined) {
      const server = helperServerUrl(ref);
      const key = `${helper}\n${server}`;
      let run = helperRuns.get(key);
      if (!run) {
        run = helperCredential(helper, server, { ...(opts.env ? { env: opts.env } : {}), signal: opts.signal }).catch((err: unknown) => {
          opts.onWarning(`${err instanceof Error ? err.message : String(err)}; pulling from ${ref.domain} without its credentials`);
          return undefined;
        });
        helperRuns.set(key, run);
      }
      const found = await run;
      if (found) return found;
    }
    const entry = credentialFor(opts.docker.credentials, ref);
    if (entry) return entry;
    return opts.providers?.lookup(ref, signal);
  };
}
