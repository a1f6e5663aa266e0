// Pull secrets: reads `kubernetes.io/dockerconfigjson` Secrets and picks, for each image, only
// the credentials of that image's registry, as the kubelet does. Parsing a Docker config and
// matching its keys to an image are proto/common/docker-config.ts, shared with the agent.
// Credentials are handed to an agent over mutual TLS and never logged: errors name the Secret
// and the registry, never a username, password or auth string.
//
//   const secrets = await loadPullSecrets(readSecret, namespace, ['regcred']);
//   const creds = credentialsForImages(secrets, ['127.0.0.1:5000/app:v1']);
import type { RegistryCredential } from '../proto/agent.js';
import { credentialFor, DockerConfigError, normaliseRegistryKey, parseDockerConfig, type DockerConfigEntry } from '../proto/common/docker-config.js';
import { InvalidReferenceError, parseImageReference, type ImageReference } from '../proto/common/image-reference.js';

export const DOCKER_CONFIG_JSON_TYPE = 'kubernetes.io/dockerconfigjson';

/** A Secret that could not be used; `reason` is a condition reason, `secret` names it. */
export class PullSecretError extends Error {
  constructor(
    readonly reason: 'PullSecretNotFound' | 'InvalidPullSecret',
    readonly secret: string,
    message: string,
  ) {
    super(message);
    this.name = 'PullSecretError';
  }
}

/** The part of a Secret this module reads. */
export interface SecretLike {
  type?: string;
  data?: Record<string, string>;
}

/** Reads one Secret; resolves undefined when it does not exist. */
export type ReadSecret = (namespace: string, name: string) => Promise<SecretLike | undefined>;

/** Loads and parses the named pull secrets, in order. Throws PullSecretError naming the Secret. */
export async function loadPullSecrets(read: ReadSecret, namespace: string, names: readonly string[]): Promise<DockerConfigEntry[]> {
  const out: DockerConfigEntry[] = [];
  for (const name of names) {
    const secret = await read(namespace, name);
    if (!secret) throw new PullSecretError('PullSecretNotFound', name, `image pull secret "${namespace}/${name}" does not exist`);
    out.push(...parseSecret(secret, `${namespace}/${name}`, name));
  }
  return out;
}

function parseSecret(secret: SecretLike, label: string, name: string): DockerConfigEntry[] {
  if (secret.type !== DOCKER_CONFIG_JSON_TYPE) {
    throw new PullSecretError('InvalidPullSecret', name, `image pull secret "${label}" has type "${secret.type ?? ''}", want "${DOCKER_CONFIG_JSON_TYPE}"`);
  }
  const b64 = secret.data?.['.dockerconfigjson'];
  if (!b64) throw new PullSecretError('InvalidPullSecret', name, `image pull secret "${label}" has no .dockerconfigjson key`);
  try {
    return parseDockerConfig(Buffer.from(b64, 'base64').toString('utf8'), label);
  } catch (err) {
    if (!(err instanceof DockerConfigError)) throw err;
    throw new PullSecretError('InvalidPullSecret', name, `image pull secret "${label}" has an unusable .dockerconfigjson: ${err.reason}`);
  }
}

/**
 * The credentials to send with a request for these images: at most one per registry, and only
 * for registries the images come from. `registry` is the image's registry as Docker names it
 * ("docker.io" for Docker Hub), so the agent's own match is by host. Images whose reference is
 * invalid are skipped: the spec check refuses them before any dispatch.
 */
export function credentialsForImages(entries: readonly DockerConfigEntry[], images: readonly string[]): RegistryCredential[] {
  const byRegistry = new Map<string, RegistryCredential>();
  for (const image of images) {
    const ref = parseOrSkip(image);
    if (!ref) continue;
    const registry = normaliseRegistryKey(ref.domain);
    if (byRegistry.has(registry)) continue;
    const e = credentialFor(entries, ref);
    if (!e) continue;
    byRegistry.set(registry, {
      registry,
      username: e.username,
      password: e.password,
      auth: e.username !== '' ? Buffer.from(`${e.username}:${e.password}`).toString('base64') : '',
      identityToken: e.identityToken,
      registryToken: e.registryToken,
    });
  }
  return [...byRegistry.values()];
}

function parseOrSkip(image: string): ImageReference | undefined {
  try {
    return parseImageReference(image);
  } catch (err) {
    if (err instanceof InvalidReferenceError) return undefined;
    throw err;
  }
}
