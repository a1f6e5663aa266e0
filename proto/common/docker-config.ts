// Docker config files ({"auths": {...}}), the one parser both binaries use: the controller
// reads them from `kubernetes.io/dockerconfigjson` pull secrets, `stoker warm` from the user's
// Docker config. Also the rule that picks an entry for an image, used by the controller to
// choose what each agent gets and by the agent to hand a credential to the runtime.
//
//   const entries = parseDockerConfig(text, 'ns/regcred');
//   const entry = credentialFor(entries, parseImageReference('ghcr.io/org/app:v1'));
//   const helpers = dockerCredentialHelpers(text, '~/.docker/config.json');   // stoker warm only
//
// An entry, as Docker's CLI (cli/config/configfile) and the kubelet (pkg/credentialprovider)
// read it:
// - "auth", when present, is base64 of "user:password" and wins over "username"/"password";
//   an "auth" that does not decode to a non-empty user, a colon and a password makes the whole
//   config unusable, as it does for both.
// - Field names match case-insensitively, as Go's encoding/json matches them ("identityToken"
//   is "identitytoken"). An entry with no user name and no token gives no credential.
// - Credential helpers ("credsStore", "credHelpers") are read by dockerCredentialHelpers, for
//   `stoker warm` to run (agent/images/docker-config.ts); pull secrets never run them, as the
//   kubelet never does. A helper name is a suffix of "docker-credential-": "/" is refused.
//
// Keys and matching, as the kubelet's keyring does it:
// - A key is normalised: scheme dropped, host lower-cased, a leading "v1"/"v2" path segment and
//   trailing slashes dropped, and Docker Hub's names folded into "docker.io", so
//   "https://index.docker.io/v1/" is "docker.io". When two keys normalise alike, the one Docker
//   itself would look up first wins: the bare host ("https://index.docker.io/v1/" for the Hub).
// - A key matches an image when its host equals the image's registry ("*" stands for one host
//   label, the port must be equal) and its path, if any, is the image's repository or one of its
//   parent folders: "quay.io/team" matches "quay.io/team/app", not "quay.io/teamx/app".
// - Of several matching keys the one with the longest path wins, then a host without "*".
//
// Errors name the source and the key, never a user name, password or token.
import { DOCKER_HUB, type ImageReference } from './image-reference.js';

/** Every name Docker Hub goes by in Docker config keys and image references. */
export const DOCKER_HUB_ALIASES: readonly string[] = Object.freeze(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** The key `docker login` writes for Docker Hub. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/** One registry's credentials from a Docker config. */
export interface DockerConfigEntry {
  /** The normalised key: host[:port][/path], Docker Hub as "docker.io", "*" for a host label. */
  readonly registry: string;
  readonly username: string;
  readonly password: string;
  readonly identityToken: string;
  readonly registryToken: string;
}

/** A Docker config that cannot be used; the message names its source, never its content. */
export class DockerConfigError extends Error {
  constructor(
    readonly source: string,
    readonly reason: string,
  ) {
    super(`cannot use Docker config ${source}: ${reason}`);
    this.name = 'DockerConfigError';
  }
}

/** "https://index.docker.io/v1/" -> "docker.io"; "http://H:5000/v2/team/" -> "h:5000/team". */
export function normaliseRegistryKey(key: string): string {
  const k = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = k.indexOf('/');
  let host = (slash >= 0 ? k.slice(0, slash) : k).toLowerCase();
  const path = (slash >= 0 ? k.slice(slash + 1) : '').replace(/^v[12](?:\/|$)/, '').replace(/\/+$/, '');
  if (DOCKER_HUB_ALIASES.includes(host)) host = DOCKER_HUB;
  return path === '' ? host : `${host}/${path}`;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function readDocument(text: string, source: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The parser's message can quote the content, which holds secrets.
    throw new DockerConfigError(source, 'it is not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new DockerConfigError(source, 'it is not a JSON object');
  return doc as Record<string, unknown>;
}

/** The credential helpers a Docker config names: "credHelpers" by normalised registry key, and "credsStore". */
export interface DockerCredentialHelpers {
  readonly credsStore: string | undefined;
  readonly credHelpers: ReadonlyMap<string, string>;
}

const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Reads the helper names of a Docker config; `source` names it in errors. */
export function dockerCredentialHelpers(text: string, source: string): DockerCredentialHelpers {
  const { credsStore, credHelpers } = readDocument(text, source);
  const helperName = (name: unknown, where: string): string => {
    if (typeof name !== 'string' || !HELPER_NAME.test(name)) {
      throw new DockerConfigError(source, `${where} is not a credential helper name (letters, digits, ".", "_" and "-")`);
    }
    return name;
  };
  const helpers = new Map<string, string>();
  if (credHelpers !== undefined && credHelpers !== null) {
    if (typeof credHelpers !== 'object' || Array.isArray(credHelpers)) throw new DockerConfigError(source, '"credHelpers" is not an object');
    for (const [key, name] of Object.entries(credHelpers as Record<string, unknown>)) {
      helpers.set(normaliseRegistryKey(key), helperName(name, `the credHelpers entry for "${key}"`));
    }
  }
  const store = credsStore === undefined || credsStore === null || credsStore === '' ? undefined : helperName(credsStore, '"credsStore"');
  return Object.freeze({ credsStore: store, credHelpers: helpers });
}

/** Parses the "auths" of a Docker config; `source` names it in errors. */
export function parseDockerConfig(text: string, source: string): DockerConfigEntry[] {
  const { auths } = readDocument(text, source);
  if (auths === undefined || auths === null) return [];
  if (typeof auths !== 'object' || Array.isArray(auths)) throw new DockerConfigError(source, '"auths" is not an object');

  const byRegistry = new Map<string, { key: string; entry: DockerConfigEntry }>();
  for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new DockerConfigError(source, `the entry for "${key}" is not an object`);
    }
    const entry = parseEntry(value as Record<string, unknown>, key, source);
    if (!entry) continue;
    const seen = byRegistry.get(entry.registry);
    if (seen && !prefer(key, seen.key, entry.registry)) continue;
    byRegistry.set(entry.registry, { key, entry });
  }
  return [...byRegistry.values()].map((e) => e.entry);
}

function parseEntry(fields: Record<string, unknown>, key: string, source: string): DockerConfigEntry | undefined {
  const str = (name: string): string => {
    const field = Object.hasOwn(fields, name) ? name : Object.keys(fields).find((k) => k.toLowerCase() === name);
    const v = field === undefined ? undefined : fields[field];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new DockerConfigError(source, `"${field ?? name}" of the entry for "${key}" is not a string`);
    return v;
  };
  let username = str('username');
  let password = str('password');
  const auth = str('auth').trim();
  if (auth !== '') {
    const decoded = BASE64.test(auth) ? Buffer.from(auth, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new DockerConfigError(source, `"auth" of the entry for "${key}" is not base64 of "user:password"`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const identityToken = str('identitytoken');
  const registryToken = str('registrytoken');
  if (username === '' && identityToken === '' && registryToken === '') return undefined;
  return Object.freeze({ registry: normaliseRegistryKey(key), username, password, identityToken, registryToken });
}

/** Whether `key` should replace `current` for the same normalised registry. */
function prefer(key: string, current: string, registry: string): boolean {
  const docker = registry === DOCKER_HUB ? DOCKER_HUB_KEY : registry;
  return key === docker && current !== docker;
}

function splitPort(host: string): [string, string] {
  const m = /^(.*):(\d+)$/.exec(host);
  return m ? [m[1] ?? '', m[2] ?? ''] : [host, ''];
}

function hostMatches(pattern: string, host: string): boolean {
  if (!pattern.includes('*')) return pattern === host;
  const [patternHost, patternPort] = splitPort(pattern);
  const [imageHost, imagePort] = splitPort(host);
  if (patternPort !== imagePort) return false;
  const want = patternHost.split('.');
  const have = imageHost.split('.');
  if (want.length !== have.length) return false;
  return want.every((label, i) => {
    const glob = new RegExp(`^${label.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^.]*')}$`);
    return glob.test(have[i] ?? '');
  });
}

/** Whether a config key (raw or normalised) applies to an image's registry and repository. */
export function registryKeyMatches(key: string, ref: Pick<ImageReference, 'domain' | 'path'>): boolean {
  const k = normaliseRegistryKey(key);
  const slash = k.indexOf('/');
  const keyHost = slash >= 0 ? k.slice(0, slash) : k;
  const keyPath = slash >= 0 ? k.slice(slash + 1) : '';
  if (!hostMatches(keyHost, normaliseRegistryKey(ref.domain))) return false;
  return keyPath === '' || ref.path === keyPath || ref.path.startsWith(`${keyPath}/`);
}

/**
 * The entry for an image: of the entries whose `registry` matches it, the one with the longest
 * repository path, then one without "*", then the first. Works on DockerConfigEntry and on the
 * agent's RegistryCredential alike.
 */
export function credentialFor<T extends { readonly registry?: string | undefined }>(
  entries: readonly T[],
  ref: Pick<ImageReference, 'domain' | 'path'>,
): T | undefined {
  let best: { entry: T; pathLength: number; wildcard: boolean } | undefined;
  for (const entry of entries) {
    if (entry.registry === undefined || entry.registry === '' || !registryKeyMatches(entry.registry, ref)) continue;
    const key = normaliseRegistryKey(entry.registry);
    const slash = key.indexOf('/');
    const pathLength = slash >= 0 ? key.length - slash : 0;
    const wildcard = (slash >= 0 ? key.slice(0, slash) : key).includes('*');
    if (!best || pathLength > best.pathLength || (pathLength === best.pathLength && best.wildcard && !wildcard)) {
      best = { entry, pathLength, wildcard };
    }
  }
  return best?.entry;
}
