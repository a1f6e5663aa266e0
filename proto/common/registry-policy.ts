// Which registries a node may be told to pull from: the one policy the controller checks before
// it dispatches a Warmup, the agent checks before it calls the runtime, and `stoker warm` checks
// before it connects to the runtime. Whoever may write a Warmup may name any registry host, and
// every node's runtime would connect there; this keeps them off the addresses no registry lives at.
//
//   const policy = compileRegistryPolicy({ allow: [], deny: ['10.0.0.0/8', '*.internal'] });
//   const refusal = refuseRegistry(policy, parseImageReference('169.254.169.254/x:v1'));
//   // -> { registry: '169.254.169.254', rule: '169.254.0.0/16', ... message names both }
//
// Built-in rules (always on): the registry host may not be
//   - a link-local address: 169.254.0.0/16 (every cloud's metadata service, 169.254.169.254) or
//     fe80::/10;
//   - an unspecified or "this network" address: 0.0.0.0/8 (Linux connects 0.0.0.0 to the node
//     itself) or ::;
//   - a cloud metadata name or address: metadata.google.internal, metadata, fd00:ec2::254.
//
// Operator patterns (agent and controller flags, chart values, stoker warm flags), one per item:
//   registry.example.com        that host name, any port (case does not matter)
//   registry.example.com:5000   that host name on that port only (an image without a port
//                               matches only patterns without one)
//   *.example.com               a glob: "*" stands for any run of characters, dots included,
//                               so every name below example.com (not example.com itself); "*"
//                               alone matches every registry
//   10.1.2.3, [fd00::1]:5000    that address (any spelling of it: 0x0a010203 is 10.1.2.3)
//   10.0.0.0/8, fd00::/8        every address in that range, any port
// Docker Hub's names (index.docker.io, registry-1.docker.io) are folded into docker.io, the name
// Docker Hub images carry.
//
// Decision, in this order:
//   1. a deny pattern matches                         -> refused, naming the pattern;
//   2. a built-in rule matches                        -> refused, naming the rule, unless an allow
//      pattern names this very host or address (no glob, no range): an operator may lift a
//      built-in rule for one registry, never by accident with "*" or a range;
//   3. allow patterns are given and none matches      -> refused, naming them;
//   4. otherwise                                      -> allowed.
//
// Addresses are read the way a C resolver (inet_aton) reads them, so 2852039166, 0xa9fea9fe and
// 0251.0376.0251.0376 are all 169.254.169.254; an IPv6 address that carries an IPv4 one
// (::ffff:a9fe:a9fe, 64:ff9b::a9fe:a9fe) is also checked as that IPv4 address.
//
// Host names are not resolved: a lookup would itself be traffic a Warmup author chooses (and can
// observe), and the runtime resolves the name again when it pulls, possibly to another answer.
// So a name that resolves to a forbidden address is not caught here; an allow list (rule 3) is
// what keeps nodes on known registries.
import * as z from 'zod/mini';
import { defineFlags, listFlag } from './config.js';
import { DOCKER_HUB_ALIASES } from './docker-config.js';
import { DOCKER_HUB, type ImageReference } from './image-reference.js';

/** An operator pattern that cannot be read; the message names it and says why. */
export class RegistryPatternError extends Error {
  constructor(
    readonly pattern: string,
    readonly reason: string,
  ) {
    super(`registry pattern ${JSON.stringify(pattern)} ${reason}`);
    this.name = 'RegistryPatternError';
  }
}

type Bytes = readonly number[];

/** One compiled pattern: a name (exact or glob), an address, or an address range. */
export interface RegistryPattern {
  /** As written. */
  readonly text: string;
  readonly kind: 'name' | 'glob' | 'address' | 'range';
  /** name and glob: lower-case host text; glob as a RegExp. */
  readonly host?: string;
  readonly glob?: RegExp;
  /** address and range: 4 or 16 bytes, and the prefix length (32/128 for one address). */
  readonly bytes?: Bytes;
  readonly prefix?: number;
  /** The port the image must name; undefined: any. */
  readonly port?: string;
}

export interface RegistryPolicy {
  readonly allow: readonly RegistryPattern[];
  readonly deny: readonly RegistryPattern[];
}

/** Why a registry is refused: the rule (or pattern) and a sentence naming the registry and it. */
export interface RegistryRefusal {
  /** The registry host as the image names it ("169.254.169.254", "metadata:80"). */
  readonly registry: string;
  /** The rule that refused it: a built-in rule, a deny pattern, or "allow list". */
  readonly rule: string;
  /** "registry 169.254.169.254 is refused: it is a link-local address (built-in rule 169.254.0.0/16)" */
  readonly message: string;
}

interface BuiltInRule {
  readonly pattern: RegistryPattern;
  readonly what: string;
}

// ---------------------------------------------------------------------------------------------
// Addresses

/** One part of an inet_aton address: decimal, octal (leading 0) or hex (0x). */
function inetPart(text: string): number | undefined {
  let n: number;
  if (/^0x[0-9a-f]{1,8}$/i.test(text)) n = parseInt(text.slice(2), 16);
  else if (/^0[0-7]{0,11}$/.test(text)) n = parseInt(text, 8);
  else if (/^[1-9][0-9]{0,9}$/.test(text)) n = parseInt(text, 10);
  else return undefined;
  return n <= 0xffffffff ? n : undefined;
}

/** "a.b.c.d", "a.b.c", "a.b" or "a" with inet_aton's parts, as 4 bytes; undefined if not an address. */
export function parseIPv4(text: string): Bytes | undefined {
  const parts = text.split('.');
  if (parts.length > 4) return undefined;
  const nums = parts.map(inetPart);
  if (nums.some((n) => n === undefined)) return undefined;
  const values = nums as number[];
  const last = values[values.length - 1] ?? 0;
  const leading = values.slice(0, -1);
  if (leading.some((n) => n > 255) || last >= 2 ** (8 * (5 - values.length))) return undefined;
  const bytes = [...leading];
  for (let i = 4 - values.length; i >= 0; i--) bytes.push(Math.floor(last / 2 ** (8 * i)) % 256);
  return bytes;
}

/** An IPv6 address in hex groups with at most one "::", as 16 bytes; undefined if not one. */
export function parseIPv6(text: string): Bytes | undefined {
  if (!/^[0-9a-f:]+$/i.test(text) || !text.includes(':')) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): string[] | undefined => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0] ?? '');
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (!head || !tail || [...head, ...tail].some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const words = [...head, ...Array<string>(missing).fill('0'), ...tail].map((g) => parseInt(g, 16));
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

/** The IPv4 address an IPv6 one carries: IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96). */
function embeddedIPv4(bytes: Bytes): Bytes | undefined {
  if (bytes.length !== 16) return undefined;
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  const nat64 = bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && bytes.slice(4, 12).every((b) => b === 0);
  return mapped || nat64 ? bytes.slice(12) : undefined;
}

function inRange(address: Bytes, network: Bytes, prefix: number): boolean {
  if (address.length !== network.length) return false;
  for (let bit = 0; bit < prefix; bit += 8) {
    const take = Math.min(8, prefix - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if (((address[bit / 8] ?? 0) & mask) !== ((network[bit / 8] ?? 0) & mask)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Hosts

/** An image's registry host, split and read. */
interface Host {
  /** Lower-case, without brackets or port; Docker Hub's names folded into docker.io. */
  readonly name: string;
  readonly port: string | undefined;
  /** Every address the host stands for when it is an IP literal: itself, and an embedded IPv4. */
  readonly addresses: readonly Bytes[];
}

function splitHostPort(text: string): { host: string; port: string | undefined; bracketed: boolean } | undefined {
  if (text.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(\d+))?$/.exec(text);
    return m ? { host: m[1] ?? '', port: m[2], bracketed: true } : undefined;
  }
  const colons = text.split(':').length - 1;
  if (colons === 0) return { host: text, port: undefined, bracketed: false };
  if (colons === 1) {
    const [host = '', port = ''] = text.split(':');
    return /^\d+$/.test(port) ? { host, port, bracketed: false } : undefined;
  }
  return { host: text, port: undefined, bracketed: true };
}

function foldDockerHub(name: string): string {
  return DOCKER_HUB_ALIASES.includes(name) ? DOCKER_HUB : name;
}

function readHost(domain: string): Host {
  const split = splitHostPort(domain.toLowerCase()) ?? { host: domain.toLowerCase(), port: undefined, bracketed: false };
  const ip = split.bracketed ? parseIPv6(split.host) : parseIPv4(split.host);
  const addresses: Bytes[] = [];
  if (ip) {
    addresses.push(ip);
    const v4 = embeddedIPv4(ip);
    if (v4) addresses.push(v4);
  }
  return { name: foldDockerHub(split.host), port: split.port === undefined ? undefined : String(Number(split.port)), addresses };
}

// ---------------------------------------------------------------------------------------------
// Patterns

const NAME_GLOB = /^[a-z0-9*]([a-z0-9*-]*[a-z0-9*])?(\.[a-z0-9*]([a-z0-9*-]*[a-z0-9*])?)*$/;

/** Reads one operator pattern (see the grammar at the top). Throws RegistryPatternError. */
export function parseRegistryPattern(input: string): RegistryPattern {
  const text = input.trim();
  const fail = (reason: string): never => {
    throw new RegistryPatternError(input, reason);
  };
  if (text === '') fail('is empty');
  const lower = text.toLowerCase();
  const slash = lower.indexOf('/');
  if (slash >= 0) {
    const base = lower.slice(0, slash).replace(/^\[(.*)\]$/, '$1');
    const bits = lower.slice(slash + 1);
    const bytes = /^\d+\.\d+\.\d+\.\d+$/.test(base) ? parseIPv4(base) : parseIPv6(base);
    if (!bytes) fail('is not an address range (10.0.0.0/8, fd00::/8)');
    const max = (bytes as Bytes).length * 8;
    const prefix = /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
    if (!(prefix >= 0 && prefix <= max)) fail(`has a prefix length that is not 0 to ${max}`);
    return Object.freeze({ text, kind: 'range', bytes: bytes as Bytes, prefix });
  }
  const split = splitHostPort(lower);
  if (!split || split.host === '') return fail('is not HOST, HOST:PORT, an address or a range (10.0.0.0/8)');
  const { host, port, bracketed } = split;
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) fail('has a port that is not 1 to 65535');
  const withPort = port !== undefined ? { port: String(Number(port)) } : {};
  const v6 = bracketed ? parseIPv6(host) : undefined;
  if (bracketed && !v6) fail('is not a valid IPv6 address');
  const v4 = bracketed ? undefined : parseIPv4(host);
  const address = v6 ?? v4;
  if (address) return Object.freeze({ text, kind: 'address', bytes: address, prefix: address.length * 8, ...withPort });
  if (!NAME_GLOB.test(host)) fail('is not a host name (letters, digits, "-" and ".", with "*" for any run of characters)');
  if (!host.includes('*')) return Object.freeze({ text, kind: 'name', host: foldDockerHub(host), ...withPort });
  const glob = new RegExp(`^${host.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  return Object.freeze({ text, kind: 'glob', host, glob, ...withPort });
}

function matches(pattern: RegistryPattern, host: Host): boolean {
  if (pattern.port !== undefined && pattern.port !== host.port) return false;
  switch (pattern.kind) {
    case 'name':
      return host.addresses.length === 0 && pattern.host === host.name;
    case 'glob':
      return pattern.glob?.test(host.name) === true;
    case 'address':
    case 'range':
      return host.addresses.some((a) => inRange(a, pattern.bytes ?? [], pattern.prefix ?? 0));
  }
}

const BUILT_IN: readonly BuiltInRule[] = Object.freeze(
  (
    [
      ['169.254.0.0/16', 'a link-local address'],
      ['fe80::/10', 'a link-local address'],
      ['0.0.0.0/8', 'an unspecified address'],
      ['::/128', 'an unspecified address'],
      ['fd00:ec2::254/128', 'a cloud metadata address'],
      ['metadata.google.internal', 'a cloud metadata host name'],
      ['metadata', 'a cloud metadata host name'],
    ] as const
  ).map(([text, what]) => Object.freeze({ pattern: parseRegistryPattern(text), what })),
);

/** The built-in rules, as their patterns read ("169.254.0.0/16", "metadata", ...). */
export const BUILT_IN_RULES: readonly string[] = Object.freeze(BUILT_IN.map((r) => r.pattern.text));

/** Compiles operator patterns into a policy. Throws RegistryPatternError for the first bad one. */
export function compileRegistryPolicy(opts: { allow?: readonly string[] | undefined; deny?: readonly string[] | undefined } = {}): RegistryPolicy {
  return Object.freeze({
    allow: Object.freeze((opts.allow ?? []).map(parseRegistryPattern)),
    deny: Object.freeze((opts.deny ?? []).map(parseRegistryPattern)),
  });
}

/** Only the built-in rules. */
export const DEFAULT_REGISTRY_POLICY: RegistryPolicy = compileRegistryPolicy();

function listPatterns(patterns: readonly RegistryPattern[]): string {
  const shown = patterns.slice(0, 5).map((p) => JSON.stringify(p.text));
  return patterns.length > 5 ? `${shown.join(', ')} and ${patterns.length - 5} more` : shown.join(', ');
}

/** Why the policy refuses the image's registry, or undefined when it may be pulled from. */
export function refuseRegistry(policy: RegistryPolicy, ref: Pick<ImageReference, 'domain'>): RegistryRefusal | undefined {
  const host = readHost(ref.domain);
  const registry = ref.domain;
  const refused = (rule: string, why: string): RegistryRefusal =>
    Object.freeze({ registry, rule, message: `registry ${registry} is refused: ${why}` });

  const denied = policy.deny.find((p) => matches(p, host));
  if (denied) return refused(denied.text, `it matches the deny pattern ${JSON.stringify(denied.text)}`);

  const builtIn = BUILT_IN.find((r) => matches(r.pattern, host));
  const lifted = policy.allow.some((p) => (p.kind === 'name' || p.kind === 'address') && matches(p, host));
  if (builtIn && !lifted) return refused(builtIn.pattern.text, `it is ${builtIn.what} (built-in rule ${builtIn.pattern.text})`);

  if (policy.allow.length > 0 && !policy.allow.some((p) => matches(p, host))) {
    return refused('allow list', `it matches no allow pattern (${listPatterns(policy.allow)})`);
  }
  return undefined;
}

/** The message of a refused image, as every binary words it: names the image, the registry and the rule. */
export function registryDeniedMessage(image: string, refusal: RegistryRefusal): string {
  return `cannot pull ${image}: ${refusal.message}`;
}

// ---------------------------------------------------------------------------------------------
// Flags: the agent and the controller declare the same two (stoker warm reads the same names).

/** One pattern as a flag's item schema. */
const registryPattern = z.pipe(
  z.string(),
  z.transform((text: string, ctx) => {
    try {
      return parseRegistryPattern(text);
    } catch (err) {
      if (!(err instanceof RegistryPatternError)) throw err;
      ctx.issues.push({ code: 'custom', input: text, message: err.reason });
      return z.NEVER;
    }
  }),
);

export const REGISTRY_POLICY_FLAGS = defineFlags({
  registryAllow: listFlag({
    flag: '--registry-allow', env: 'STOKER_REGISTRY_ALLOW', arg: 'pattern',
    help: 'pull only from registries matching a pattern (host, *.glob, address or CIDR; HOST:PORT for one port); repeat for more',
    schema: z.array(registryPattern),
  }),
  registryDeny: listFlag({
    flag: '--registry-deny', env: 'STOKER_REGISTRY_DENY', arg: 'pattern',
    help: 'never pull from registries matching a pattern, on top of the built-in rules (link-local, unspecified and metadata addresses); repeat for more',
    schema: z.array(registryPattern),
  }),
});

/** The policy of the two flags' values. */
export function registryPolicyOf(flags: { readonly registryAllow: readonly RegistryPattern[]; readonly registryDeny: readonly RegistryPattern[] }): RegistryPolicy {
  return Object.freeze({ allow: flags.registryAllow, deny: flags.registryDeny });
}
