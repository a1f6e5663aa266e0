// Image references, the one parser both binaries use: the controller checks a Warmup's images
// with it before dispatch, the agent checks every request and `stoker warm` every --image with
// it before any call to the runtime, so a reference is refused in the same words everywhere.
//
// The grammar is distribution/reference's, with Docker's normalisation as Docker, containerd
// and the kubelet apply it (ParseNormalizedNamed, plus the "latest" tag when there is neither
// tag nor digest): "busybox" -> "docker.io/library/busybox:latest".
//
//   reference        := name [ ":" tag ] [ "@" digest ]
//   name             := [domain '/'] remote-name           (at most 255 characters, normalised)
//   domain           := host [':' port-number]
//   host             := domain-name | IPv4address | \[ IPv6address \]
//   domain-name      := domain-component ['.' domain-component]*
//   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//   remote-name      := path-component ['/' path-component]*
//   path-component   := alpha-numeric [separator alpha-numeric]*
//   alpha-numeric    := /[a-z0-9]+/
//   separator        := /[_.]|__|[-]+/
//   tag              := /[\w][\w.-]{0,127}/
//   digest           := algorithm ":" encoded
//
// Decisions where the grammar alone leaves room (each pinned by image-reference.test.ts):
// - A digest must be one go-digest validates, as Docker and containerd do after the grammar:
//   sha256 with exactly 64, sha384 with 96, sha512 with 128 lower-case hex digits. Any other
//   algorithm, length or upper-case hex is refused here, not by the registry after dispatch.
// - A bare 64-hex string is an image ID, not a reference: ParseNormalizedNamed refuses it, and
//   so does CRI PullImage; so is it refused here ("aaaa…" cannot be pulled by name).
// - The first component is a registry host only if it has a dot or a port, is "localhost", or
//   is not all lower-case; otherwise the image lives on Docker Hub, where "index.docker.io" is
//   folded into "docker.io" and a one-component path gets the "library/" prefix.
// - IPv6 registry hosts are written in brackets: "[::1]:5000/app".

export const DOCKER_HUB = 'docker.io';
const LEGACY_DOCKER_HUB = 'index.docker.io';
const NAME_MAX = 255;

const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6_HOST = /^\[[a-fA-F0-9:]+\]$/;
const PORT = /^[0-9]+$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
/** go-digest's registered algorithms and the lower-case hex each must have. */
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = Object.freeze({ sha256: 64, sha384: 96, sha512: 128 });
const IMAGE_ID = /^[a-f0-9]{64}$/;

export interface ImageReference {
  /** What the user wrote. */
  readonly original: string;
  /** Registry host as Docker names it: "docker.io", "registry.example.com:5000". */
  readonly domain: string;
  /** Repository path inside the registry: "library/busybox". */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: string;
  /** Fully qualified: "docker.io/library/busybox:latest", "host:5000/app@sha256:...". */
  readonly normalized: string;
}

/** A reference that does not follow the grammar; the message names it and says what is wrong. */
export class InvalidReferenceError extends Error {
  constructor(
    readonly reference: string,
    readonly reason: string,
  ) {
    super(`invalid image reference ${JSON.stringify(reference)}: ${reason}`);
    this.name = 'InvalidReferenceError';
  }
}

function digestProblem(digest: string): string | undefined {
  if (!DIGEST.test(digest)) return `"${digest}" is not a valid digest (algorithm:hex)`;
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) return `"${digest}" uses an unsupported digest algorithm "${algorithm}" (sha256, sha384 or sha512)`;
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    return `"${digest}" is not a valid ${algorithm} digest (${length} lower-case hex digits)`;
  }
  return undefined;
}

function domainProblem(domain: string): string | undefined {
  let host = domain;
  if (!host.startsWith('[')) {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) {
      if (!PORT.test(host.slice(colon + 1))) return `the port in "${domain}" is not a number`;
      host = host.slice(0, colon);
    }
    if (!host.split('.').every((c) => DOMAIN_COMPONENT.test(c))) return `"${domain}" is not a valid registry host`;
    return undefined;
  }
  const close = host.indexOf(']');
  const rest = host.slice(close + 1);
  if (close < 0 || !IPV6_HOST.test(host.slice(0, close + 1))) return `"${domain}" is not a valid registry host`;
  if (rest !== '' && !(rest.startsWith(':') && PORT.test(rest.slice(1)))) return `the port in "${domain}" is not a number`;
  return undefined;
}

/** Parses and normalises an image reference as Docker does. Throws InvalidReferenceError. */
export function parseImageReference(input: string): ImageReference {
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(input, reason);
  };
  if (input === '') fail('it is empty');
  if (input !== input.trim() || /\s/.test(input)) fail('it contains white space');
  if (IMAGE_ID.test(input)) fail('a 64-character hexadecimal string is an image id, not a reference');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const bad = digestProblem(digest);
    if (bad) fail(bad);
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) fail(`"${tag}" is not a valid tag`);
  }
  if (rest === '') fail('the repository name is missing');

  let domain: string = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first) {
      domain = first;
      path = rest.slice(slash + 1);
      const bad = domainProblem(domain);
      if (bad) fail(bad);
    }
  }
  if (domain === LEGACY_DOCKER_HUB) domain = DOCKER_HUB;
  if (path === '') fail('the repository name is missing');
  if (path.toLowerCase() !== path) fail('repository names must be lowercase');
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      fail(
        component === ''
          ? 'the repository path has an empty component'
          : `"${component}" is not a valid repository path component (lowercase letters, digits and separators . _ __ -)`,
      );
    }
  }
  if (domain === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  const name = `${domain}/${path}`;
  if (name.length > NAME_MAX) fail(`the repository name is longer than ${NAME_MAX} characters`);
  if (tag === undefined && digest === undefined) tag = 'latest';

  const normalized = `${name}${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`;
  return Object.freeze({
    original: input,
    domain,
    path,
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
    normalized,
  });
}

/** Why `input` is not a valid image reference, or undefined when it is. */
export function checkImageReference(input: string): string | undefined {
  try {
    parseImageReference(input);
    return undefined;
  } catch (err) {
    if (err instanceof InvalidReferenceError) return err.reason;
    throw err;
  }
}
