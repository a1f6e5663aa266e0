// Pull secrets: reads `kubernetes.io/dockerconfigjson` Secrets and picks, for each image, only
// the credentials of that image's registry (Docker Hub under any of its names), as the kubelet
// does. Credentials are handed to an agent over mutual TLS and never logged: errors name the
// Secret and the registry, never a username, password or auth string.
//
//   const secrets = await loadPullSecrets(readSecret, namespace, ['regcred']);
//   const creds = credentialsForImages(secrets, ['127.0.0.1:5000/app:v1']);
import type { RegistryCredential } from '../proto/agent.js';
import { InvalidReferenceError, parseImageReference, type ImageReference } from '../proto/common/image-reference.js';
import { DOCKER_HUB_ALIASES } from './api/types.js';

export const DOCKER_CONFIG_JSON_TYPE = 'kubernetes.io/dockerconfigjson';

/** One registry's entry from a Docker config. */
export interface RegistryAuth {
  /** Normalised key: host[:port][/path], Docker Hub as "docker.io". */
  key: string;
  username: string;
  password: string;
  auth: string;
  identityToken: string;
  registryToken: string;
}

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
export async function loadPullSecrets(read: ReadSecret, namespace: string, names: readonly string[]): Promise<RegistryAuth[]> {
  const out: RegistryAuth[] = [];
  for (const name of names) {
    const secret = await read(namespace, name);
    if (!secret) throw new PullSecretError('PullSecretNotFound', name, `image pull secret "${namespace}/${name}" does not exist`);
    out.push(...parseSecret(secret, `${namespace}/${name}`, name));
  }
  return out;
}

function parseSecret(secret: SecretLike, label: string, name: string): RegistryAuth[] {
  if (secret.type !== DOCKER_CONFIG_JSON_TYPE) {
    throw new PullSecretError('InvalidPullSecret', name, `image pull secret "${label}" has type "${secret.type ?? ''}", want "${DOCKER_CONFIG_JSON_TYPE}"`);
  }
  const b64 = secret.data?.['.dockerconfigjson'];
  if (!b64) throw new PullSecretError('InvalidPullSecret', name, `image pull secret "${label}" has no .dockerconfigjson key`);
  try {
    return parseDockerConfig(Buffer.from(b64, 'base64').toString('utf8'));
  } catch (err) {
    // The parse error may quote the content; say only what is wrong in general.
    throw new PullSecretError('InvalidPullSecret', name, `image pull secret "${label}": ${(err as Error).name === 'DockerConfigError' ? (err as Error).message : '.dockerconfigjson is not valid JSON'}`);
  }
}

class DockerConfigError extends Error {
  override name = 'DockerConfigError';
}

/** Parses a Docker config.json text ({"auths": {...}}); never puts its content in an error. */
export function parseDockerConfig(text: string): RegistryAuth[] {
  const doc = JSON.parse(text) as unknown;
  if (typeof doc !== 'object' || doc === null) throw new DockerConfigError('.dockerconfigjson is not a JSON object');
  const auths = (doc as { auths?: unknown }).auths;
  if (typeof auths !== 'object' || auths === null) throw new DockerConfigError('.dockerconfigjson has no "auths" object');
  const out: RegistryAuth[] = [];
  for (const [rawKey, value] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null) throw new DockerConfigError(`.dockerconfigjson entry "${rawKey}" is not an object`);
    const v = value as Record<string, unknown>;
    const str = (k: string): string => (typeof v[k] === 'string' ? (v[k]) : '');
    let username = str('username');
    let password = str('password');
    const auth = str('auth');
    if (auth && !username && !password) {
      const decoded = Buffer.from(auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i < 0) throw new DockerConfigError(`.dockerconfigjson entry "${rawKey}" has an "auth" that is not base64 of user:password`);
      username = decoded.slice(0, i);
      password = decoded.slice(i + 1);
    }
    out.push({
      key: normaliseRegistryKey(rawKey),
      username,
      password,
      auth,
      identityToken: str('identitytoken') || str('identityToken'),
      registryToken: str('registrytoken') || str('registryToken'),
    });
  }
  return out;
}

/** "https://index.docker.io/v1/" -> "docker.io"; "http://h:5000/" -> "h:5000"; keeps a repository path. */
export function normaliseRegistryKey(key: string): string {
  let k = key.trim().replace(/^[a-z]+:\/\//i, '');
  k = k.replace(/\/+$/, '');
  const slash = k.indexOf('/');
  let host = slash >= 0 ? k.slice(0, slash) : k;
  let path = slash >= 0 ? k.slice(slash + 1) : '';
  host = host.toLowerCase();
  if (DOCKER_HUB_ALIASES.includes(host)) {
    host = 'docker.io';
    if (path === 'v1' || path === 'v2') path = '';
  }
  return path ? `${host}/${path}` : host;
}

/** The registry an image is pulled from, as Docker names it ("docker.io" for Docker Hub). */
export function registryOf(image: string): string | undefined {
  const r = parseOrSkip(image);
  return r ? canonicalHost(r.domain) : undefined;
}

function parseOrSkip(image: string): ImageReference | undefined {
  try {
    return parseImageReference(image);
  } catch (err) {
    if (err instanceof InvalidReferenceError) return undefined;
    throw err;
  }
}

function canonicalHost(domain: string): string {
  const h = domain.toLowerCase();
  return DOCKER_HUB_ALIASES.includes(h) ? 'docker.io' : h;
}

function hostMatches(pattern: string, host: string): boolean {
  if (!pattern.includes('*')) return pattern === host;
  const [pHost, pPort] = splitPort(pattern);
  const [hHost, hPort] = splitPort(host);
  if (pPort !== hPort) return false;
  const pl = pHost.split('.');
  const hl = hHost.split('.');
  if (pl.length !== hl.length) return false;
  return pl.every((p, i) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^.]*')}$`).test(hl[i] ?? ''));
}

function splitPort(h: string): [string, string] {
  const m = /^(.*):(\d+)$/.exec(h);
  return m ? [m[1] ?? '', m[2] ?? ''] : [h, ''];
}

/** The best entry for one image: the longest key that matches its registry (and repository path prefix). */
export function credentialFor(entries: readonly RegistryAuth[], image: string): RegistryAuth | undefined {
  const r = parseOrSkip(image);
  if (!r) return undefined;
  const host = canonicalHost(r.domain);
  const repo = host === 'docker.io' && !r.path.includes('/') ? `library/${r.path}` : r.path;
  let best: RegistryAuth | undefined;
  for (const e of entries) {
    const slash = e.key.indexOf('/');
    const keyHost = slash >= 0 ? e.key.slice(0, slash) : e.key;
    const keyPath = slash >= 0 ? e.key.slice(slash + 1) : '';
    if (!hostMatches(keyHost, host)) continue;
    if (keyPath && repo !== keyPath && !repo.startsWith(`${keyPath}/`)) continue;
    if (!best || e.key.length > best.key.length) best = e;
  }
  return best;
}

/**
 * The credentials to send with a request for these images: at most one per registry, and only
 * for registries the images come from. `registry` is the image's registry as Docker names it.
 */
export function credentialsForImages(entries: readonly RegistryAuth[], images: readonly string[]): RegistryCredential[] {
  const byRegistry = new Map<string, RegistryCredential>();
  for (const image of images) {
    const registry = registryOf(image);
    if (!registry || byRegistry.has(registry)) continue;
    const e = credentialFor(entries, image);
    if (!e) continue;
    byRegistry.set(registry, {
      registry,
      username: e.username,
      password: e.password,
      auth: e.auth || (e.username || e.password ? Buffer.from(`${e.username}:${e.password}`).toString('base64') : ''),
      identityToken: e.identityToken,
      registryToken: e.registryToken,
    });
  }
  return [...byRegistry.values()];
}
