// The configuration of `stoker warm`: every flag with its STOKER_* variable, default and check
// (declared with proto/common/config.ts), parsed once into one frozen WarmConfig. Only where
// Docker keeps its config (DOCKER_CONFIG, HOME) is read from the environment outside the
// declaration, as Docker itself reads it.
import { homedir } from 'node:os';
import { isAbsolute } from 'node:path';
import * as z from 'zod/mini';
import {
  DAY_MS,
  LOG_LEVEL_HELP,
  absoluteDir,
  defineFlags,
  durationMs,
  filePath,
  listFlag,
  listOf,
  logLevel,
  parseFlags,
  switchFlag,
  valueFlag,
  wholeNumber,
  type ConfigOf,
  type Env,
  type FlagInput,
} from '../../proto/common/config.js';
import { REGISTRY_POLICY_FLAGS, registryPolicyOf, type RegistryPolicy } from '../../proto/common/registry-policy.js';
import {
  checkCredentialProviderFlags,
  CREDENTIAL_PROVIDER_FLAGS,
  credentialProviderPaths,
  type CredentialProviderPaths,
} from '../credentials/credential-provider.js';
import { defaultEndpoint, InvalidEndpointError, parseEndpoint, type CriEndpoint } from '../cri/endpoint.js';
import type { BudgetMode } from '../warm/budget.js';
import { DEFAULT_CONCURRENCY, DEFAULT_PROGRESS_TIMEOUT_MS, type ImagePullPolicy } from '../warm/images.js';
import { DEFAULT_READERS } from '../warm/readers.js';

export { ConfigError } from '../../proto/common/config.js';

const criEndpoint = z.pipe(
  z.string(),
  z.transform((value: string, ctx): CriEndpoint => {
    try {
      return parseEndpoint(value);
    } catch (err) {
      if (!(err instanceof InvalidEndpointError)) throw err;
      ctx.issues.push({ code: 'custom', input: value, message: `is not a CRI endpoint: ${err.reason}` });
      return z.NEVER;
    }
  }),
);

const PULL_POLICIES: Readonly<Record<string, ImagePullPolicy>> = { ifnotpresent: 'IF_NOT_PRESENT', always: 'ALWAYS' };
/** IfNotPresent or Always, in any case, with or without - or _. */
const pullPolicy = z.pipe(
  z.string(),
  z.transform((value: string, ctx): ImagePullPolicy => {
    const policy = PULL_POLICIES[value.trim().toLowerCase().replace(/[-_]/g, '')];
    if (policy) return policy;
    ctx.issues.push({ code: 'custom', input: value, message: 'is not IfNotPresent or Always' });
    return z.NEVER;
  }),
);

const BUDGETS = ['warn', 'refuse', 'off'] as const satisfies readonly BudgetMode[];
const budget = z.pipe(z.string().check(z.trim(), z.toLowerCase()), z.enum(BUDGETS, { error: `is not one of ${BUDGETS.join(', ')}` }));

/** Kept as given: the file walk itself refuses "..", so normalising here would hide it. */
const absolutePath = z.string().check(z.refine((s) => isAbsolute(s), 'is not an absolute path'));

export const WARM_FLAGS = defineFlags({
  images: listFlag({
    flag: '--image', env: 'STOKER_IMAGES', arg: 'ref', separator: /[\s,]+/,
    help: 'image to pull; repeat for more', schema: listOf(z.string()),
  }),
  /** The default is probed at start: containerd's socket when it exists, else CRI-O's, as crictl does. */
  criEndpoint: valueFlag({
    flag: '--cri-endpoint', env: 'STOKER_CRI_ENDPOINT', arg: 'endpoint', default: () => defaultEndpoint().display,
    help: "CRI socket: unix:///path, /path or tcp://host:port; default containerd's if present, else CRI-O's", schema: criEndpoint,
  }),
  /** Absent: $DOCKER_CONFIG/config.json, then ~/.docker/config.json (docker-config-file.ts). */
  authFile: valueFlag({
    flag: '--auth-file', env: 'STOKER_AUTH_FILE', arg: 'path',
    help: 'Docker config with registry credentials; default $DOCKER_CONFIG/config.json, else ~/.docker/config.json',
    schema: filePath,
  }),
  pullPolicy: valueFlag({
    flag: '--pull-policy', env: 'STOKER_PULL_POLICY', arg: 'policy', default: 'IfNotPresent',
    help: 'IfNotPresent skips images already present; Always pulls again', schema: pullPolicy,
  }),
  concurrency: valueFlag({
    flag: '--concurrency', env: 'STOKER_CONCURRENCY', arg: 'n', default: String(DEFAULT_CONCURRENCY),
    help: 'images pulled at once', schema: wholeNumber(1, 64),
  }),
  progressTimeoutMs: valueFlag({
    flag: '--progress-timeout', env: 'STOKER_PROGRESS_TIMEOUT', arg: 'duration', default: `${DEFAULT_PROGRESS_TIMEOUT_MS / 1000}s`,
    help: 'cancel a pull after this long without new bytes; a bare number is seconds; 0 never', schema: durationMs(0, DAY_MS),
  }),
  pullTimeoutMs: valueFlag({
    flag: '--pull-timeout', env: 'STOKER_PULL_TIMEOUT', arg: 'duration', default: '0',
    help: 'cap on one pull where byte progress is unknown; a bare number is seconds; 0 none', schema: durationMs(0, DAY_MS),
  }),
  ...REGISTRY_POLICY_FLAGS,
  ...CREDENTIAL_PROVIDER_FLAGS,
  paths: listFlag({
    flag: '--path', env: 'STOKER_PATHS', arg: 'path',
    help: 'file or directory to read into the page cache; repeat for more', schema: listOf(absolutePath),
  }),
  allowedRoots: listFlag({
    flag: '--allowed-root', env: 'STOKER_ALLOWED_ROOTS', arg: 'dir',
    help: 'directory every --path must really lie in (symlinks resolved); repeat for more', schema: listOf(absoluteDir, { unique: true }),
  }),
  include: listFlag({
    flag: '--include', env: 'STOKER_INCLUDE', arg: 'glob',
    help: 'read only files matching this glob, relative to each --path ("*.bin" matches at any depth)', schema: listOf(z.string()),
  }),
  exclude: listFlag({
    flag: '--exclude', env: 'STOKER_EXCLUDE', arg: 'glob',
    help: 'skip files and directories matching this glob, relative to each --path', schema: listOf(z.string()),
  }),
  budget: valueFlag({
    flag: '--budget', env: 'STOKER_BUDGET', arg: 'mode', default: 'warn',
    help: "when the files exceed available memory or Stoker's cgroup limit: warn, refuse or off", schema: budget,
  }),
  readers: valueFlag({
    flag: '--readers', env: 'STOKER_READERS', arg: 'n', default: String(DEFAULT_READERS),
    help: 'files read at once (UV_THREADPOOL_SIZE bounds how many really run)', schema: wholeNumber(1, 1024),
  }),
  json: switchFlag({ flag: '--json', env: 'STOKER_JSON', help: 'print one JSON summary on stdout instead of the display' }),
  logLevel: valueFlag({
    flag: '--log-level', env: 'STOKER_LOG_LEVEL', arg: 'level', default: 'error', help: `log level on stderr: ${LOG_LEVEL_HELP}`, schema: logLevel,
  }),
});

/** The options as commander hands them over (tests pass the same shape). */
export type WarmFlagInput = FlagInput<typeof WARM_FLAGS>;

type WarmFlagValues = ConfigOf<typeof WARM_FLAGS>;
type FileKey = 'paths' | 'allowedRoots' | 'include' | 'exclude' | 'budget' | 'readers';
type Grouped = 'registryAllow' | 'registryDeny' | 'imageCredentialProviderConfig' | 'imageCredentialProviderBinDir';

/** The file part (--path and friends); no paths means no file part. */
export type FilesConfig = Pick<WarmFlagValues, FileKey>;

export type WarmConfig = Omit<WarmFlagValues, FileKey | Grouped> & {
  /** The built-in rules plus --registry-allow and --registry-deny. */
  readonly registryPolicy: RegistryPolicy;
  /** Kubelet credential provider plugins; undefined without their two flags. */
  readonly credentialProviders: CredentialProviderPaths | undefined;
  /** Where Docker keeps its config when there is no --auth-file: DOCKER_CONFIG, else HOME/.docker. */
  readonly dockerConfigDir: string | undefined;
  readonly home: string;
  readonly files: FilesConfig;
};

/**
 * Flags over STOKER_* variables over defaults, validated and frozen; throws ConfigError.
 * `exists` replaces the file system when the default CRI endpoint is probed.
 */
export function resolveWarmConfig(input: WarmFlagInput, env: Env = {}, exists?: (path: string) => boolean): WarmConfig {
  const flags = exists
    ? { ...WARM_FLAGS, criEndpoint: { ...WARM_FLAGS.criEndpoint, default: () => defaultEndpoint(exists).display } }
    : WARM_FLAGS;
  const parsed = parseFlags(flags, input, env, (c, { fail }) => {
    if (c.images.length === 0 && c.paths.length === 0) {
      fail('images', `or --path is required: nothing to warm (or set ${WARM_FLAGS.images.env} or ${WARM_FLAGS.paths.env})`);
    }
    if (c.paths.length > 0 && c.allowedRoots.length === 0) {
      fail('paths', `needs at least one --allowed-root (or ${WARM_FLAGS.allowedRoots.env}): no file is read outside the roots it is given`);
    }
    if (c.paths.length === 0) {
      if (c.include.length > 0) fail('include', 'needs a --path');
      if (c.exclude.length > 0) fail('exclude', 'needs a --path');
    }
    checkCredentialProviderFlags(c, { fail });
  });
  const { paths, allowedRoots, include, exclude, budget: budgetMode, readers, registryAllow, registryDeny, imageCredentialProviderConfig, imageCredentialProviderBinDir, ...rest } = parsed;
  return Object.freeze({
    ...rest,
    registryPolicy: registryPolicyOf({ registryAllow, registryDeny }),
    credentialProviders: credentialProviderPaths({ imageCredentialProviderConfig, imageCredentialProviderBinDir }),
    dockerConfigDir: env.DOCKER_CONFIG === '' ? undefined : env.DOCKER_CONFIG,
    home: env.HOME ?? homedir(),
    files: Object.freeze({ paths, allowedRoots, include, exclude, budget: budgetMode, readers }),
  });
}
