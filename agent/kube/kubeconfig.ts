// Where the agent finds the API server and how it proves who it is: a kubeconfig file's current
// context, or the pod's in-cluster ServiceAccount. Just enough for the agent's Lease, without the
// Kubernetes JavaScript client (which alone would cost the agent some 65 MB resident).
//
//   const server = loadKubeconfig('/etc/stoker/kubeconfig');   // or inClusterConfig(process.env)
//   const server = loadDefaultConfig(process.env);             // KUBECONFIG, ~/.kube/config, in-cluster
//   https.request(new URL(path, server.server), { ...server.tls, headers: { authorization: server.authorization() } })
//
// Supported: server, certificate-authority(-data), insecure-skip-tls-verify, tls-server-name;
// client-certificate(-data) + client-key(-data), token, tokenFile, username + password. A user
// that needs exec or auth-provider plug-ins, or a cluster behind proxy-url, is refused by name.
// Token files (a ServiceAccount's bound token rotates) are re-read every TOKEN_REREAD_MS.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';

/** Where a pod's ServiceAccount credentials are mounted. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** A token file's copy is trusted this long; kubelet rotates bound tokens well before they expire. */
export const TOKEN_REREAD_MS = 60_000;

export interface ApiServerTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly servername?: string;
  readonly rejectUnauthorized: boolean;
}

/** An API server and the credentials for it. Secrets stay inside: nothing here is meant for logs. */
export interface ApiServerConfig {
  /** Base URL, "https://host:port" (maybe with a path prefix), no trailing slash. */
  readonly server: string;
  /** Options for node:https (or its Agent). */
  readonly tls: ApiServerTls;
  /** Value for the Authorization header (re-reading a token file when due); undefined: none. */
  authorization(): string | undefined;
  /** Default namespace of the context or the ServiceAccount, if any. */
  readonly namespace: string | undefined;
  /** Where this came from, for messages: `kubeconfig "/path" context "x"` or "in-cluster ServiceAccount". Never a secret. */
  readonly source: string;
}

export class KubeconfigError extends Error {
  override readonly name = 'KubeconfigError';
}

/**
 * A cluster and user as the Kubernetes JavaScript client's KubeConfig has them (its getCurrentCluster() and
 * getCurrentUser()), so callers that hold one can hand it over; paths already absolute.
 */
export interface KubeConfigLike {
  getCurrentCluster(): {
    readonly name: string;
    readonly server: string;
    readonly caData?: string;
    readonly caFile?: string;
    readonly tlsServerName?: string;
    readonly skipTLSVerify: boolean;
    readonly proxyUrl?: string;
  } | null;
  getCurrentUser(): {
    readonly name: string;
    readonly certData?: string;
    readonly certFile?: string;
    readonly keyData?: string;
    readonly keyFile?: string;
    readonly token?: string;
    readonly username?: string;
    readonly password?: string;
    readonly exec?: unknown;
    readonly authProvider?: unknown;
  } | null;
}

/** The parts of a kubeconfig cluster and user this module uses, paths already absolute. */
interface ClusterEntry {
  server: string;
  caData?: string | undefined;
  caFile?: string | undefined;
  tlsServerName?: string | undefined;
  skipTLSVerify?: boolean | undefined;
  proxyUrl?: string | undefined;
}
interface UserEntry {
  certData?: string | undefined;
  certFile?: string | undefined;
  keyData?: string | undefined;
  keyFile?: string | undefined;
  token?: string | undefined;
  tokenFile?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  plugin?: 'exec' | 'auth-provider' | undefined;
}

type Doc = Record<string, unknown>;

function isDoc(v: unknown): v is Doc {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** yaml is loaded only when a kubeconfig file is read (in-cluster agents never need it; it costs ~8 MB). */
let yamlParse: ((text: string) => unknown) | undefined;
function parseYaml(text: string): unknown {
  yamlParse ??= (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse;
  return yamlParse(text);
}

/** "ENOENT (no such file)" for a failed read. */
function readFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  const words: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'a directory' };
  return code ? `${code}${words[code] ? ` (${words[code]})` : ''}` : (err as Error).message;
}

function readFile(path: string, what: string, fail: (m: string) => KubeconfigError): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw fail(`cannot read ${what} "${path}": ${readFailure(err)}`);
  }
}

function base64(value: string, what: string, fail: (m: string) => KubeconfigError): Buffer {
  const out = Buffer.from(value, 'base64');
  if (out.length === 0 || !/^[A-Za-z0-9+/=\s]+$/.test(value)) throw fail(`${what} is not base64 data`);
  return out;
}

/** One file's clusters, users and contexts by name, paths resolved against the file's directory. */
interface ParsedKubeconfig {
  path: string;
  currentContext: string | undefined;
  clusters: Map<string, ClusterEntry>;
  users: Map<string, UserEntry>;
  contexts: Map<string, { cluster: string; user: string | undefined; namespace: string | undefined }>;
}

function parseKubeconfigFile(path: string): ParsedKubeconfig {
  const fail = (m: string) => new KubeconfigError(`kubeconfig "${path}": ${m}`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw fail(`cannot read it: ${readFailure(err)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw fail(`not YAML: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (!isDoc(doc)) throw fail('is not a mapping');
  const dir = dirname(resolve(path));
  const abs = (p: string | undefined) => (p === undefined ? undefined : resolve(dir, p));

  const list = (key: string): [string, Doc][] => {
    const items = doc[key] ?? [];
    if (!Array.isArray(items)) throw fail(`${key} is not a list`);
    return items.map((item: unknown, i) => {
      if (!isDoc(item) || typeof item.name !== 'string' || item.name === '') throw fail(`${key}[${i}] has no name`);
      const body = item[key.slice(0, -1)] ?? {};
      if (!isDoc(body)) throw fail(`${key}[${i}] "${item.name}": ${key.slice(0, -1)} is not a mapping`);
      return [item.name, body];
    });
  };
  const str = (body: Doc, key: string, where: string): string | undefined => {
    const v = body[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw fail(`${where}: ${key} is not a string`);
    return v;
  };

  const clusters = new Map<string, ClusterEntry>();
  for (const [name, c] of list('clusters')) {
    const where = `cluster "${name}"`;
    const server = str(c, 'server', where);
    if (server === undefined) throw fail(`${where} has no server`);
    const skip = c['insecure-skip-tls-verify'];
    if (skip !== undefined && typeof skip !== 'boolean') throw fail(`${where}: insecure-skip-tls-verify is not true or false`);
    if (!clusters.has(name)) {
      clusters.set(name, {
        server,
        caData: str(c, 'certificate-authority-data', where),
        caFile: abs(str(c, 'certificate-authority', where)),
        tlsServerName: str(c, 'tls-server-name', where),
        skipTLSVerify: skip,
        proxyUrl: str(c, 'proxy-url', where),
      });
    }
  }
  const users = new Map<string, UserEntry>();
  for (const [name, u] of list('users')) {
    const where = `user "${name}"`;
    if (users.has(name)) continue;
    users.set(name, {
      certData: str(u, 'client-certificate-data', where),
      certFile: abs(str(u, 'client-certificate', where)),
      keyData: str(u, 'client-key-data', where),
      keyFile: abs(str(u, 'client-key', where)),
      token: str(u, 'token', where),
      tokenFile: abs(str(u, 'tokenFile', where)),
      username: str(u, 'username', where),
      password: str(u, 'password', where),
      plugin: u.exec ? 'exec' : u['auth-provider'] ? 'auth-provider' : undefined,
    });
  }
  const contexts: ParsedKubeconfig['contexts'] = new Map();
  for (const [name, c] of list('contexts')) {
    const where = `context "${name}"`;
    const cluster = str(c, 'cluster', where);
    if (cluster === undefined) throw fail(`${where} has no cluster`);
    if (!contexts.has(name)) contexts.set(name, { cluster, user: str(c, 'user', where), namespace: str(c, 'namespace', where) });
  }
  const currentContext = doc['current-context'];
  if (currentContext !== undefined && currentContext !== null && typeof currentContext !== 'string') throw fail('current-context is not a string');
  return { path, currentContext: currentContext || undefined, clusters, users, contexts };
}

/** A token read from a file, re-read when its copy is older than TOKEN_REREAD_MS; the last good copy outlives a failed read. */
function tokenFromFile(path: string, what: string, now: () => number): () => string {
  let token: string | undefined;
  let readAt = 0;
  const read = (): string => {
    const t = readFileSync(path, 'utf8').trim();
    if (t === '') throw new KubeconfigError(`${what} "${path}" is empty`);
    return t;
  };
  return () => {
    if (token === undefined || now() - readAt >= TOKEN_REREAD_MS) {
      try {
        token = read();
        readAt = now();
      } catch (err) {
        if (token === undefined) {
          if (err instanceof KubeconfigError) throw err;
          throw new KubeconfigError(`cannot read ${what} "${path}": ${readFailure(err)}`);
        }
      }
    }
    return token;
  };
}

interface BuildOptions {
  now?: () => number;
}

function build(cluster: ClusterEntry, user: UserEntry | undefined, namespace: string | undefined, source: string, opts: BuildOptions): ApiServerConfig {
  const fail = (m: string) => new KubeconfigError(`${source}: ${m}`);
  let url: URL;
  try {
    url = new URL(cluster.server);
  } catch {
    throw fail(`server "${cluster.server}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw fail(`server "${cluster.server}" is not an https:// URL`);
  if (cluster.proxyUrl) throw fail('proxy-url is not supported by stoker agent; reach the API server directly');
  if (user?.plugin) throw fail(`the user authenticates with ${user.plugin}, which stoker agent does not support; give it a token, tokenFile or client certificate`);

  const ca = cluster.caData !== undefined ? base64(cluster.caData, 'certificate-authority-data', fail) : cluster.caFile ? readFile(cluster.caFile, 'certificate-authority', fail) : undefined;
  const cert = user?.certData !== undefined ? base64(user.certData, 'client-certificate-data', fail) : user?.certFile ? readFile(user.certFile, 'client-certificate', fail) : undefined;
  const key = user?.keyData !== undefined ? base64(user.keyData, 'client-key-data', fail) : user?.keyFile ? readFile(user.keyFile, 'client-key', fail) : undefined;
  if ((cert === undefined) !== (key === undefined)) throw fail(cert ? 'client-certificate given without client-key' : 'client-key given without client-certificate');

  let authorization: () => string | undefined = () => undefined;
  if (user?.token !== undefined) {
    const header = `Bearer ${user.token}`;
    authorization = () => header;
  } else if (user?.tokenFile !== undefined) {
    const token = tokenFromFile(user.tokenFile, 'tokenFile', opts.now ?? Date.now);
    try {
      token(); // a missing file is a configuration error now, not at the first request
    } catch (err) {
      throw fail((err as Error).message);
    }
    authorization = () => `Bearer ${token()}`;
  } else if (user?.username !== undefined) {
    const header = `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}`;
    authorization = () => header;
  }
  return {
    server: cluster.server.replace(/\/+$/, ''),
    tls: {
      ...(ca ? { ca } : {}),
      ...(cert && key ? { cert, key } : {}),
      ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
      rejectUnauthorized: cluster.skipTLSVerify !== true,
    },
    authorization,
    namespace,
    source,
  };
}

export interface LoadOptions extends BuildOptions {
  /** A context other than current-context. */
  context?: string;
}

/**
 * The current context of one kubeconfig file, or of several merged the way kubectl merges a
 * KUBECONFIG list (the first file to name a cluster, user, context or current-context wins).
 */
export function loadKubeconfig(paths: string | readonly string[], opts: LoadOptions = {}): ApiServerConfig {
  const files = (typeof paths === 'string' ? [paths] : paths).map(parseKubeconfigFile);
  const shown = files.map((f) => `"${f.path}"`).join(', ');
  const fail = (m: string) => new KubeconfigError(`kubeconfig ${shown}: ${m}`);
  const first = <T>(pick: (f: ParsedKubeconfig) => T | undefined): T | undefined => {
    for (const f of files) {
      const v = pick(f);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  const contextName = opts.context ?? first((f) => f.currentContext);
  if (contextName === undefined) throw fail('has no current-context');
  const context = first((f) => f.contexts.get(contextName));
  if (!context) throw fail(`has no context "${contextName}"`);
  const cluster = first((f) => f.clusters.get(context.cluster));
  if (!cluster) throw fail(`context "${contextName}" names cluster "${context.cluster}", which it does not have`);
  const userName = context.user;
  const user = userName === undefined ? undefined : first((f) => f.users.get(userName));
  if (userName !== undefined && !user) throw fail(`context "${contextName}" names user "${userName}", which it does not have`);
  return build(cluster, user, context.namespace, `kubeconfig ${shown} context "${contextName}"`, opts);
}

export interface InClusterOptions extends BuildOptions {
  /** Where the ServiceAccount's token, ca.crt and namespace are; default SERVICE_ACCOUNT_DIR. */
  dir?: string;
}

/** True when a pod's ServiceAccount token is mounted (the in-cluster config can be used). */
export function hasServiceAccount(dir = SERVICE_ACCOUNT_DIR): boolean {
  return existsSync(join(dir, 'token'));
}

/** The pod's own ServiceAccount: KUBERNETES_SERVICE_HOST/PORT, and token, ca.crt and namespace under dir. */
export function inClusterConfig(env: Readonly<Record<string, string | undefined>>, opts: InClusterOptions = {}): ApiServerConfig {
  const dir = opts.dir ?? SERVICE_ACCOUNT_DIR;
  const source = 'in-cluster ServiceAccount';
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new KubeconfigError(`${source}: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a pod?)`);
  if (!/^\d{1,5}$/.test(port)) throw new KubeconfigError(`${source}: KUBERNETES_SERVICE_PORT "${port}" is not a port number`);
  const namespaceFile = join(dir, 'namespace');
  const namespace = existsSync(namespaceFile) ? readFileSync(namespaceFile, 'utf8').trim() || undefined : undefined;
  return build(
    { server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`, caFile: join(dir, 'ca.crt') },
    { tokenFile: join(dir, 'token') },
    namespace,
    source,
    opts,
  );
}

/** As kubectl looks: the KUBECONFIG list, else ~/.kube/config, else the in-cluster ServiceAccount. */
export function loadDefaultConfig(env: Readonly<Record<string, string | undefined>>, opts: InClusterOptions & { home?: string } = {}): ApiServerConfig {
  const list = (env.KUBECONFIG ?? '').split(delimiter).filter((p) => p !== '');
  if (list.length > 0) return loadKubeconfig(list, opts);
  const home = opts.home ?? (env.HOME || homedir());
  const userConfig = home ? join(home, '.kube', 'config') : undefined;
  if (userConfig && existsSync(userConfig)) return loadKubeconfig(userConfig, opts);
  if (hasServiceAccount(opts.dir)) return inClusterConfig(env, opts);
  throw new KubeconfigError(`no kubeconfig: give --kubeconfig, set KUBECONFIG, or run in a pod with a ServiceAccount token (${join(opts.dir ?? SERVICE_ACCOUNT_DIR, 'token')})`);
}

/** An already loaded KubeConfig of the Kubernetes JavaScript client (or anything shaped like it), current context. */
export function fromKubeConfig(kc: KubeConfigLike, opts: BuildOptions = {}): ApiServerConfig {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeconfigError('KubeConfig has no current cluster');
  const user = kc.getCurrentUser();
  const provider = user?.authProvider as { name?: unknown; config?: { tokenFile?: unknown } } | undefined;
  // That client's in-cluster config keeps the token file as a "tokenFile" auth provider.
  const tokenFile = provider?.name === 'tokenFile' && typeof provider.config?.tokenFile === 'string' ? provider.config.tokenFile : undefined;
  return build(
    { server: cluster.server, caData: cluster.caData, caFile: cluster.caFile, tlsServerName: cluster.tlsServerName, skipTLSVerify: cluster.skipTLSVerify, proxyUrl: cluster.proxyUrl },
    user
      ? {
          certData: user.certData,
          certFile: user.certFile,
          keyData: user.keyData,
          keyFile: user.keyFile,
          token: user.token,
          tokenFile,
          username: user.username,
          password: user.password,
          plugin: user.exec ? 'exec' : provider && !tokenFile ? 'auth-provider' : undefined,
        }
      : undefined,
    undefined,
    `KubeConfig cluster "${cluster.name}"`,
    opts,
  );
}
