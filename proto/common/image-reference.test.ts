import { describe, expect, it } from 'vitest';
import { checkImageReference, InvalidReferenceError, parseImageReference } from './image-reference.js';

const HEX64 = 'a'.repeat(64);
const SHA256 = `sha256:${HEX64}`;
const SHA512 = `sha512:${'b'.repeat(128)}`;

// The inputs the controller's check and the agent's check once disagreed on are rows here: both
// binaries now call this parser, so each row is what a Warmup, an agent request and
// `stoker warm --image` all see.
describe('image reference grammar', () => {
  it.each([
    // kind, input, normalized, domain, path
    ['plain name', 'busybox', 'docker.io/library/busybox:latest', 'docker.io', 'library/busybox'],
    ['name:tag', 'busybox:1.36', 'docker.io/library/busybox:1.36', 'docker.io', 'library/busybox'],
    ['library/ prefix', 'library/busybox', 'docker.io/library/busybox:latest', 'docker.io', 'library/busybox'],
    ['docker.io normalisation', 'docker.io/busybox', 'docker.io/library/busybox:latest', 'docker.io', 'library/busybox'],
    ['legacy Hub name', 'index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'docker.io', 'library/busybox'],
    ['Hub user repository', 'bitnami/redis:7', 'docker.io/bitnami/redis:7', 'docker.io', 'bitnami/redis'],
    ['registry', 'ghcr.io/org/app:v1.2.3', 'ghcr.io/org/app:v1.2.3', 'ghcr.io', 'org/app'],
    ['localhost/name', 'localhost/app', 'localhost/app:latest', 'localhost', 'app'],
    ['registry:port/name', 'localhost:5000/a/b/c:dev', 'localhost:5000/a/b/c:dev', 'localhost:5000', 'a/b/c'],
    ['IPv4 registry', '127.0.0.1:5000/x', '127.0.0.1:5000/x:latest', '127.0.0.1:5000', 'x'],
    ['IPv6 registry', '[::1]:5000/x:t', '[::1]:5000/x:t', '[::1]:5000', 'x'],
    ['upper-case first component is a host', 'MyRegistry/app', 'MyRegistry/app:latest', 'MyRegistry', 'app'],
    ['separators', 'r.example.com/a_b/c__d/e--f.g:T_1.x-y', 'r.example.com/a_b/c__d/e--f.g:T_1.x-y', 'r.example.com', 'a_b/c__d/e--f.g'],
    ['digest', `busybox@${SHA256}`, `docker.io/library/busybox@${SHA256}`, 'docker.io', 'library/busybox'],
    ['tag+digest', `quay.io/a/b:v1@${SHA256}`, `quay.io/a/b:v1@${SHA256}`, 'quay.io', 'a/b'],
    ['sha512 digest', `busybox@${SHA512}`, `docker.io/library/busybox@${SHA512}`, 'docker.io', 'library/busybox'],
    ['64-hex name with a tag', `${HEX64}:v1`, `docker.io/library/${HEX64}:v1`, 'docker.io', `library/${HEX64}`],
  ])('accepts %s: %s -> %s', (_kind, input, normalized, domain, path) => {
    const ref = parseImageReference(input);
    expect(ref).toMatchObject({ original: input, normalized, domain, path });
    expect(checkImageReference(input)).toBeUndefined();
  });

  it('keeps the tag and the digest apart', () => {
    const ref = parseImageReference(`host:5000/app:v2@${SHA256}`);
    expect(ref.tag).toBe('v2');
    expect(ref.digest).toBe(SHA256);
    expect(parseImageReference(`app@${SHA256}`).tag).toBeUndefined();
  });

  it.each([
    // kind, input, what the message says
    ['64-hex image id', HEX64, 'a 64-character hexadecimal string is an image id, not a reference'],
    ['short digest', `busybox@sha256:${'a'.repeat(32)}`, 'is not a valid sha256 digest (64 lower-case hex digits)'],
    ['63-hex digest', `app@sha256:${'a'.repeat(63)}`, 'is not a valid sha256 digest'],
    ['upper-case hex', `busybox@sha256:${'A'.repeat(64)}`, 'is not a valid sha256 digest (64 lower-case hex digits)'],
    ['short sha512', `busybox@sha512:${'b'.repeat(64)}`, 'is not a valid sha512 digest (128 lower-case hex digits)'],
    ['unknown algorithm', `busybox@md5:${'c'.repeat(32)}`, 'unsupported digest algorithm "md5"'],
    ['malformed digest', 'app@sha256:abc', 'is not a valid digest (algorithm:hex)'],
    ['empty', '', 'it is empty'],
    ['white space', ' busybox', 'white space'],
    ['white space inside', 'bad host.com/x', 'white space'],
    ['upper-case repository', 'Busybox', 'repository names must be lowercase'],
    ['upper-case path component', 'docker.io/Library/busybox', 'repository names must be lowercase'],
    ['invalid chars in a host', 'My_Registry/app', 'is not a valid registry host'],
    ['host starting with a dash', '-host.com/x', 'is not a valid registry host'],
    ['invalid chars in a path', 'a/b$c', '"b$c" is not a valid repository path component'],
    ['path component ending in a separator', 'a/b_', 'path component'],
    ['three dots', 'a/b...c', 'path component'],
    ['leading dash', 'a/-b', 'path component'],
    ['empty tag', 'app:', '"" is not a valid tag'],
    ['tag starting with a dash', 'app:-bad', 'is not a valid tag'],
    ['too-long tag', `app:${'t'.repeat(129)}`, 'is not a valid tag'],
    ['port not a number', 'host:port/app', 'the port in "host:port" is not a number'],
    ['two colons', 'a:b:c', '"a:b" is not a valid repository path component'],
    ['bad IPv6 port', '[::1]:x/app', 'the port in "[::1]:x" is not a number'],
    ['missing repository', 'host.example.com/', 'the repository name is missing'],
    ['empty component', 'a//b', 'empty component'],
    ['too-long name', `${'a'.repeat(250)}/bbbbbbbb`, 'longer than 255 characters'],
    // Counted after normalisation, as Docker counts: "docker.io/library/" makes this 256.
    ['too long once normalised', 'a'.repeat(238), 'longer than 255 characters'],
  ])('refuses %s: %j', (_kind, input, words) => {
    let error: unknown;
    try {
      parseImageReference(input);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidReferenceError);
    const message = (error as Error).message;
    expect(message).toBe(`invalid image reference ${JSON.stringify(input)}: ${(error as InvalidReferenceError).reason}`);
    expect(message).toContain(words);
    expect(checkImageReference(input)).toBe((error as InvalidReferenceError).reason);
  });

  it('accepts a name of exactly 255 characters once normalised', () => {
    expect(parseImageReference('a'.repeat(237)).normalized).toBe(`docker.io/library/${'a'.repeat(237)}:latest`);
  });
});
