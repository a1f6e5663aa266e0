// Registry credentials the way the kubelet gets them for cloud registries (ECR, GAR, ACR): exec
// credential provider plugins named by a CredentialProviderConfig (kubelet.config.k8s.io/v1, the
// file of kubelet's --image-credential-provider-config, plugins in --image-credential-provider-bin-dir).
// Used by the agent for images whose registry the controller sent no credential for, and by
// `stoker warm` after the Docker config.
//
//   const providers = await loadCredentialProviders({ configPath, binDir, onWarning });
//   const credential = await providers.lookup(parseImageReference('123.dkr.ecr.eu-west-1.amazonaws.com/app:v1'));
//
// What the kubelet does (pkg/credentialprovider/plugin), and so what this does:
// - The config is YAML or JSON: a file, or a directory whose *.json, *.yaml and *.yml files are
//   read in name order and merged (a provider name may appear once). Each provider: name (the
//   executable in the bin dir; no "/", not "." or ".."), matchImages (at least one),
//   defaultCacheDuration (required, >= 0), apiVersion (credentialprovider.kubelet.k8s.io/v1,
//   v1beta1 or v1alpha1), args, env. The bin dir and every provider's executable must exist.
//   Decided here: tokenAttributes (service account tokens for plugins) is refused, since Stoker
//   pulls for no pod; unknown fields are refused, as the kubelet's strict decoder does.
// - The image the plugins see is the repository without tag or digest, normalised as the kubelet
//   passes it: "docker.io/library/busybox", "123.dkr.ecr.eu-west-1.amazonaws.com/app".
// - A provider runs only for images one of its matchImages matches: same number of host labels,
//   each label a glob ("*" within the label, as Go's filepath.Match), the same port (a pattern
//   without a port matches only images without one), and the pattern's path a string prefix of
//   the image's path.
// - The plugin is run with the provider's args, this process's environment plus the provider's
//   env (the provider's wins), the CredentialProviderRequest as JSON on stdin
//   ({"kind":"CredentialProviderRequest","apiVersion":"<provider's>","image":"..."} and a
//   newline), and one minute to answer. Its stdout must be a CredentialProviderResponse of the
//   provider's apiVersion with cacheKeyType Image, Registry or Global; otherwise the answer is
//   not used. Concurrent lookups of the same image share one run.
// - Answers are cached in memory by image, by registry (host[:port]) or globally, for
//   cacheDuration, else the provider's defaultCacheDuration; a duration of 0 is not cached.
// - The auth maps of every provider that matched are merged (an earlier provider's key wins),
//   and the keys matched against the image like matchImages ("https://", a leading /v1/ or /v2/
//   and a trailing "/" dropped); of the keys that match, the greatest in reverse string order
//   (longer before shorter, names before globs) gives the credential; "index.docker.io" keys
//   apply to Docker Hub images. The kubelet tries every matching credential in turn until a pull
//   succeeds; Stoker uses that first one.
// - A plugin that fails, times out or answers badly gives no credential: a warning names the
//   provider and the image, never its output; the pull then goes ahead without credentials, as
//   the kubelet's would.
import { access, constants, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryCredential } from '../../proto/agent.js';
import { defineFlags, filePath, valueFlag, type CheckContext } from '../../proto/common/config.js';
import type { ImageReference } from '../../proto/common/image-reference.js';
import { loadYamlParser } from '../yaml.js';
import { runCredentialProgram } from './credential-exec.js';

export const CONFIG_API_VERSIONS: readonly string[] = Object.freeze(['kubelet.config.k8s.io/v1', 'kubelet.config.k8s.io/v1beta1', 'kubelet.config.k8s.io/v1alpha1']);
export const PLUGIN_API_VERSIONS: readonly string[] = Object.freeze([
  'credentialprovider.kubelet.k8s.io/v1',
  'credentialprovider.kubelet.k8s.io/v1beta1',
  'credentialprovider.kubelet.k8s.io/v1alpha1',
]);
const PLUGIN_TIMEOUT_MS = 60_000;

/** A config that cannot be used; the message names the file (and the provider and field). */
export class CredentialProviderConfigError extends Error {
  override readonly name = 'CredentialProviderConfigError';
}

export interface CredentialProviderSpec {
  readonly name: string;
  readonly matchImages: readonly string[];
  readonly defaultCacheDurationMs: number;
  readonly apiVersion: string;
  readonly args: readonly string[];
  readonly env: readonly { readonly name: string; readonly value: string }[];
}

// ---------------------------------------------------------------------------------------------
// Flags: the kubelet's names, declared once for `stoker agent` and `stoker warm`.

export const CREDENTIAL_PROVIDER_FLAGS = defineFlags({
  imageCredentialProviderConfig: valueFlag({
    flag: '--image-credential-provider-config', env: 'STOKER_IMAGE_CREDENTIAL_PROVIDER_CONFIG', arg: 'path',
    help: 'a kubelet CredentialProviderConfig (file or directory) whose plugins give registry credentials',
    schema: filePath,
  }),
  imageCredentialProviderBinDir: valueFlag({
    flag: '--image-credential-provider-bin-dir', env: 'STOKER_IMAGE_CREDENTIAL_PROVIDER_BIN_DIR', arg: 'dir',
    help: 'directory of the credential provider plugins', schema: filePath,
  }),
});

/** Where the plugins are, from the two flags; undefined without them. */
export interface CredentialProviderPaths {
  /** A CredentialProviderConfig file, or a directory of them. */
  readonly configPath: string;
  readonly binDir: string;
}

type ProviderFlagValues = { readonly imageCredentialProviderConfig: string | undefined; readonly imageCredentialProviderBinDir: string | undefined };

/** The cross-check of a command that declares CREDENTIAL_PROVIDER_FLAGS: both or neither. */
export function checkCredentialProviderFlags(c: ProviderFlagValues, { fail }: Pick<CheckContext<typeof CREDENTIAL_PROVIDER_FLAGS>, 'fail'>): void {
  if ((c.imageCredentialProviderConfig === undefined) === (c.imageCredentialProviderBinDir === undefined)) return;
  if (c.imageCredentialProviderConfig === undefined) {
    fail('imageCredentialProviderBinDir', `needs --image-credential-provider-config (or ${CREDENTIAL_PROVIDER_FLAGS.imageCredentialProviderConfig.env})`);
  }
  fail('imageCredentialProviderConfig', `needs --image-credential-provider-bin-dir (or ${CREDENTIAL_PROVIDER_FLAGS.imageCredentialProviderBinDir.env})`);
}

/** The plugins' paths from the two flags' values. */
export function credentialProviderPaths(c: ProviderFlagValues): CredentialProviderPaths | undefined {
  return c.imageCredentialProviderConfig === undefined || c.imageCredentialProviderBinDir === undefined
    ? undefined
    : Object.freeze({ configPath: c.imageCredentialProviderConfig, binDir: c.imageCredentialProviderBinDir });
}

// ---------------------------------------------------------------------------------------------
// Go's duration syntax (metav1.Duration): "1h30m", "300ms", "1.5h", "0"; as milliseconds.

const GO_UNIT_MS: Readonly<Record<string, number>> = Object.freeze({ ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 });

export function parseGoDuration(text: string): number | undefined {
  if (text === '0' || text === '+0' || text === '-0') return 0;
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(text);
  if (!m) return undefined;
  let total = 0;
  for (const part of text.slice(m[1]?.length ?? 0).matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * (GO_UNIT_MS[part[2] ?? ''] ?? NaN);
  }
  return m[1] === '-' ? -total : total;
}

// ---------------------------------------------------------------------------------------------
// The kubelet's image matching (URLsMatchStr): host labels as globs, port equal, path a prefix.

interface SchemelessUrl {
  readonly labels: readonly string[];
  readonly port: string;
  readonly path: string;
}

/** As Go's url.Parse("https://" + text) then net.SplitHostPort: host labels, port, path. */
function parseSchemeless(text: string): SchemelessUrl {
  const end = text.search(/[?#]/);
  const s = end >= 0 ? text.slice(0, end) : text;
  const slash = s.indexOf('/');
  const hostPort = slash >= 0 ? s.slice(0, slash) : s;
  const path = slash >= 0 ? s.slice(slash) : '';
  const v6 = /^\[(.*)\]:([^:]*)$/.exec(hostPort);
  const plain = /^([^:[\]]*):([^:]*)$/.exec(hostPort);
  const [host, port] = v6 ? [v6[1] ?? '', v6[2] ?? ''] : plain ? [plain[1] ?? '', plain[2] ?? ''] : [hostPort, ''];
  return { labels: host.split('.'), port, path };
}

/** Go's filepath.Match for one label (no separators in it): * ? [class] and \ escapes; undefined for a bad pattern. */
function labelGlob(pattern: string): RegExp | undefined {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\') {
      i++;
      if (i >= pattern.length) return undefined;
      out += escapeRegExp(pattern[i] ?? '');
    } else if (c === '[') {
      let j = i + 1;
      let cls = '';
      if (pattern[j] === '^') {
        cls += '^';
        j++;
      }
      let closed = false;
      let first = true;
      for (; j < pattern.length; j++) {
        const d = pattern[j] ?? '';
        if (d === ']' && !first) {
          closed = true;
          break;
        }
        first = false;
        if (d === '\\') {
          j++;
          if (j >= pattern.length) return undefined;
          cls += escapeRegExp(pattern[j] ?? '');
        } else if (d === '-') cls += '-';
        else cls += escapeRegExp(d);
      }
      if (!closed) return undefined;
      out += `[${cls}]`;
      i = j;
    } else out += escapeRegExp(c);
  }
  try {
    return new RegExp(`^${out}$`);
  } catch {
    return undefined;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/** Whether a kubelet match pattern ("*.dkr.ecr.*.amazonaws.com", "registry.io:8080/path") matches an image. */
export function kubeletImageMatches(pattern: string, image: string): boolean {
  const glob = parseSchemeless(pattern);
  const target = parseSchemeless(image);
  if (glob.port !== target.port || glob.labels.length !== target.labels.length || !target.path.startsWith(glob.path)) return false;
  return glob.labels.every((label, i) => labelGlob(label)?.test(target.labels[i] ?? '') === true);
}

/** A response's auth key as the kubelet's keyring stores it: no scheme, no /v1/ or /v2/, no lone "/". */
function keyringKey(key: string): string {
  const rest = key.replace(/^https?:\/\//, '');
  const url = /^([^/?#]*)([^?#]*)/.exec(rest);
  let path = url?.[2] ?? '';
  if (path.startsWith('/v1/') || path.startsWith('/v2/')) path = path.slice(3);
  return `${url?.[1] ?? ''}${path === '/' ? '' : path}`;
}

/** Whether an image (as plugins see it) is on Docker Hub. */
function isDockerHub(image: string): boolean {
  const [first, ...rest] = image.split('/');
  return rest.length === 0 || first === 'docker.io' || first === 'index.docker.io' || !/[.:]/.test(first ?? '');
}

// ---------------------------------------------------------------------------------------------
// The config

type Doc = Record<string, unknown>;

function isObject(v: unknown): v is Doc {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeConfig(text: string, file: string, parseYaml: (text: string) => unknown): CredentialProviderSpec[] {
  const fail = (why: string): never => {
    throw new CredentialProviderConfigError(`credential provider config ${file}: ${why}`);
  };
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    fail(`it is not valid YAML or JSON: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  if (!isObject(doc)) return fail('it is not an object');
  if (doc.kind !== 'CredentialProviderConfig') fail(`kind is ${JSON.stringify(doc.kind ?? '')}, want "CredentialProviderConfig"`);
  if (typeof doc.apiVersion !== 'string' || !CONFIG_API_VERSIONS.includes(doc.apiVersion)) {
    fail(`apiVersion is ${JSON.stringify(doc.apiVersion ?? '')}, want one of ${CONFIG_API_VERSIONS.join(', ')}`);
  }
  for (const key of Object.keys(doc)) if (!['kind', 'apiVersion', 'providers'].includes(key)) fail(`unknown field "${key}"`);
  if (doc.providers !== undefined && doc.providers !== null && !Array.isArray(doc.providers)) fail('providers is not a list');
  return ((doc.providers as unknown[] | undefined | null) ?? []).map((p, i) => decodeProvider(p, `providers[${i}]`, fail));
}

function decodeProvider(p: unknown, at: string, fail: (why: string) => never): CredentialProviderSpec {
  if (!isObject(p)) return fail(`${at} is not an object`);
  const known = ['name', 'matchImages', 'defaultCacheDuration', 'apiVersion', 'args', 'env', 'tokenAttributes'];
  for (const key of Object.keys(p)) if (!known.includes(key)) fail(`${at}: unknown field "${key}"`);
  const name = p.name;
  if (typeof name !== 'string' || name === '') return fail(`${at}.name is required`);
  const where = `provider "${name}"`;
  if (name.includes('/') || name.includes(' ') || name === '.' || name === '..') fail(`${where}: the name may not contain "/" or spaces, or be "." or ".."`);
  if (p.tokenAttributes !== undefined && p.tokenAttributes !== null) {
    fail(`${where}: tokenAttributes (service account tokens for the plugin) is not supported: Stoker pulls for no pod`);
  }
  if (typeof p.apiVersion !== 'string' || p.apiVersion === '') return fail(`${where}: apiVersion is required`);
  if (!PLUGIN_API_VERSIONS.includes(p.apiVersion)) fail(`${where}: apiVersion "${p.apiVersion}" is not one of ${PLUGIN_API_VERSIONS.join(', ')}`);
  const strings = (v: unknown, field: string): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) return fail(`${where}: ${field} is not a list of strings`);
    return v as string[];
  };
  const matchImages = strings(p.matchImages, 'matchImages');
  if (matchImages.length === 0) fail(`${where}: matchImages needs at least one item`);
  for (const m of matchImages) {
    if (m === '' || /\s/.test(m) || [...m].some((c) => c.charCodeAt(0) < 0x20) || !/^(\[[^\]]*\]|[^:/[\]]*)(:\d*)?(\/|$)/.test(m)) fail(`${where}: match image ${JSON.stringify(m)} is invalid`);
  }
  if (p.defaultCacheDuration === undefined || p.defaultCacheDuration === null) fail(`${where}: defaultCacheDuration is required`);
  const defaultCacheDurationMs = typeof p.defaultCacheDuration === 'string' ? parseGoDuration(p.defaultCacheDuration) : undefined;
  if (defaultCacheDurationMs === undefined) return fail(`${where}: defaultCacheDuration ${JSON.stringify(p.defaultCacheDuration)} is not a duration like "12h" or "0s"`);
  if (defaultCacheDurationMs < 0) fail(`${where}: defaultCacheDuration must be 0 or more`);
  const env = (() => {
    if (p.env === undefined || p.env === null) return [];
    if (!Array.isArray(p.env)) return fail(`${where}: env is not a list`);
    return p.env.map((e, j) => {
      if (!isObject(e) || typeof e.name !== 'string' || e.name === '' || typeof e.value !== 'string') {
        return fail(`${where}: env[${j}] needs a name and a string value`);
      }
      return Object.freeze({ name: e.name, value: e.value });
    });
  })();
  return Object.freeze({
    name,
    matchImages: Object.freeze(matchImages),
    defaultCacheDurationMs,
    apiVersion: p.apiVersion,
    args: Object.freeze(strings(p.args, 'args')),
    env: Object.freeze(env),
  });
}

/** Reads a config file, or every *.json, *.yaml and *.yml file of a directory in name order. */
export async function readCredentialProviderConfig(path: string): Promise<CredentialProviderSpec[]> {
  const fail = (why: string): never => {
    throw new CredentialProviderConfigError(`credential provider config ${path}: ${why}`);
  };
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => fail(err.code === 'ENOENT' ? 'no such file or directory' : `cannot read it (${err.code ?? 'error'})`));
  let files = [path];
  if (info.isDirectory()) {
    files = (await readdir(path, { withFileTypes: true }))
      .filter((e) => !e.isDirectory() && /\.(json|ya?ml)$/.test(e.name))
      .map((e) => join(path, e.name))
      .sort();
    if (files.length === 0) fail('the directory has no *.json, *.yaml or *.yml file');
  }
  const parseYaml = await loadYamlParser();
  const providers: CredentialProviderSpec[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => fail(`cannot read ${file} (${err.code ?? 'error'})`));
    for (const p of decodeConfig(text, file, (t) => parseYaml(t))) {
      if (providers.some((q) => q.name === p.name)) fail(`provider "${p.name}" is named more than once`);
      providers.push(p);
    }
  }
  if (providers.length === 0) fail('it names no provider');
  return providers;
}

// ---------------------------------------------------------------------------------------------
// Plugins

interface AuthEntry {
  readonly username: string;
  readonly password: string;
}

interface CacheEntry {
  readonly expiresAt: number;
  readonly auth: ReadonlyMap<string, AuthEntry>;
}

export interface CredentialProvidersOptions {
  readonly configPath: string;
  readonly binDir: string;
  /** Hears every plugin failure, naming the provider and the image (never a credential). */
  readonly onWarning?: (message: string) => void;
  /** Milliseconds since the epoch; tests move it to expire cached answers. */
  readonly now?: () => number;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

class PluginProvider {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly running = new Map<string, Promise<ReadonlyMap<string, AuthEntry>>>();

  constructor(
    readonly spec: CredentialProviderSpec,
    private readonly bin: string,
    private readonly opts: CredentialProvidersOptions,
    private readonly remember: (secret: string) => void,
  ) {}

  matches(image: string): boolean {
    return this.spec.matchImages.some((m) => kubeletImageMatches(m, image));
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private cached(image: string): ReadonlyMap<string, AuthEntry> | undefined {
    for (const key of [`image:${image}`, `registry:${image.split('/')[0] ?? ''}`, 'global']) {
      const entry = this.cache.get(key);
      if (!entry) continue;
      if (this.now() > entry.expiresAt) this.cache.delete(key);
      else return entry.auth;
    }
    return undefined;
  }

  /** The plugin's auth map for an image, from the cache or a run (shared with concurrent lookups). */
  async provide(image: string, signal?: AbortSignal): Promise<ReadonlyMap<string, AuthEntry>> {
    const hit = this.cached(image);
    if (hit) return hit;
    let run = this.running.get(image);
    if (!run) {
      run = this.exec(image).finally(() => this.running.delete(image));
      this.running.set(image, run);
    }
    if (!signal) return run;
    const shared = run;
    // The caller may stop waiting; the run goes on for the others and fills the cache.
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(new Error(`looking up credentials for ${image} was cancelled`));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      shared.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private warn(image: string, why: string): ReadonlyMap<string, AuthEntry> {
    this.opts.onWarning?.(`credential provider "${this.spec.name}" gave no credentials for ${image}: ${why}`);
    return new Map();
  }

  private async exec(image: string): Promise<ReadonlyMap<string, AuthEntry>> {
    const request = `${JSON.stringify({ kind: 'CredentialProviderRequest', apiVersion: this.spec.apiVersion, image })}\n`;
    const env: NodeJS.ProcessEnv = { ...(this.opts.env ?? process.env) };
    for (const e of this.spec.env) env[e.name] = e.value;
    let stdout: string;
    try {
      stdout = await runCredentialProgram(this.bin, { args: this.spec.args, env, stdin: request, timeoutMs: this.opts.timeoutMs ?? PLUGIN_TIMEOUT_MS });
    } catch (err) {
      return this.warn(image, err instanceof Error ? err.message : String(err));
    }
    let doc: unknown;
    try {
      doc = JSON.parse(stdout);
    } catch {
      // The parser's message can quote the output, which holds secrets.
      return this.warn(image, 'its answer is not JSON');
    }
    if (!isObject(doc)) return this.warn(image, 'its answer is not a JSON object');
    if (doc.apiVersion !== this.spec.apiVersion) {
      return this.warn(image, `its answer has apiVersion ${JSON.stringify(doc.apiVersion ?? '')}, want "${this.spec.apiVersion}"`);
    }
    if (doc.kind !== 'CredentialProviderResponse') return this.warn(image, `its answer has kind ${JSON.stringify(doc.kind ?? '')}, want "CredentialProviderResponse"`);
    const keyType = doc.cacheKeyType;
    if (keyType !== 'Image' && keyType !== 'Registry' && keyType !== 'Global') {
      return this.warn(image, `its answer has cacheKeyType ${JSON.stringify(keyType ?? '')}, want Image, Registry or Global`);
    }
    let durationMs: number | undefined;
    if (doc.cacheDuration !== undefined && doc.cacheDuration !== null) {
      durationMs = typeof doc.cacheDuration === 'string' ? parseGoDuration(doc.cacheDuration) : undefined;
      if (durationMs === undefined || durationMs < 0) return this.warn(image, `its answer has cacheDuration ${JSON.stringify(doc.cacheDuration)}, not a duration`);
    }
    if (doc.auth !== undefined && doc.auth !== null && !isObject(doc.auth)) return this.warn(image, 'its answer\'s "auth" is not an object');
    const auth = new Map<string, AuthEntry>();
    for (const [key, value] of Object.entries(doc.auth ?? {})) {
      if (!isObject(value)) return this.warn(image, `its answer's entry for "${key}" is not an object`);
      const username = typeof value.username === 'string' ? value.username : '';
      const password = typeof value.password === 'string' ? value.password : '';
      if (password !== '') this.remember(password);
      auth.set(key, Object.freeze({ username, password }));
    }
    const ttl = durationMs ?? this.spec.defaultCacheDurationMs;
    if (ttl > 0) {
      const key = keyType === 'Image' ? `image:${image}` : keyType === 'Registry' ? `registry:${image.split('/')[0] ?? ''}` : 'global';
      this.cache.set(key, { expiresAt: this.now() + ttl, auth });
    }
    return auth;
  }
}

/** The configured providers of one process: looks up an image's credential, caching as the kubelet does. */
export class CredentialProviders {
  private readonly known = new Set<string>();
  private readonly providers: readonly PluginProvider[];

  constructor(specs: readonly CredentialProviderSpec[], opts: CredentialProvidersOptions) {
    const remember = (secret: string): void => {
      this.known.add(secret);
    };
    this.providers = specs.map((s) => new PluginProvider(s, join(opts.binDir, s.name), opts, remember));
  }

  /** The provider names, in config order. */
  get names(): readonly string[] {
    return this.providers.map((p) => p.spec.name);
  }

  /** Every password a plugin has answered with so far, so messages can be scrubbed of them. */
  secrets(): string[] {
    return [...this.known].filter((s) => s.length >= 4);
  }

  /** The credential for an image from the plugins whose matchImages match it; undefined when none gives one. */
  async lookup(ref: Pick<ImageReference, 'domain' | 'path'>, signal?: AbortSignal): Promise<RegistryCredential | undefined> {
    const image = `${ref.domain}/${ref.path}`;
    const merged = new Map<string, AuthEntry>();
    for (const provider of this.providers) {
      if (!provider.matches(image)) continue;
      const auth = await provider.provide(image, signal);
      for (const [key, entry] of auth) {
        const k = keyringKey(key);
        if (!merged.has(k)) merged.set(k, entry);
      }
    }
    const keys = [...merged.keys()].sort().reverse();
    const key = keys.find((k) => kubeletImageMatches(k, image)) ?? (isDockerHub(image) && merged.has('index.docker.io') ? 'index.docker.io' : undefined);
    const entry = key === undefined ? undefined : merged.get(key);
    if (!entry || (entry.username === '' && entry.password === '')) return undefined;
    return { registry: ref.domain, username: entry.username, password: entry.password, auth: '', identityToken: '', registryToken: '' };
  }
}

/** Reads the config, checks the bin dir and every provider's executable, and returns the providers. */
export async function loadCredentialProviders(opts: CredentialProvidersOptions): Promise<CredentialProviders> {
  const binInfo = await stat(opts.binDir).catch(() => undefined);
  if (!binInfo?.isDirectory()) throw new CredentialProviderConfigError(`credential provider bin dir ${opts.binDir} does not exist or is not a directory`);
  const specs = await readCredentialProviderConfig(opts.configPath);
  for (const spec of specs) {
    const bin = join(opts.binDir, spec.name);
    await access(bin, constants.X_OK).catch(() => {
      throw new CredentialProviderConfigError(`credential provider "${spec.name}": ${bin} does not exist or is not executable`);
    });
  }
  return new CredentialProviders(specs, opts);
}
