import { describe, expect, it } from 'vitest';
import { InvalidReferenceError, parseImageReference } from './reference.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseImageReference', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest', 'docker.io', 'library/busybox'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'docker.io', 'library/busybox'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'docker.io', 'library/busybox'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', 'docker.io', 'library/busybox'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'docker.io', 'library/busybox'],
    ['bitnami/redis:7', 'docker.io/bitnami/redis:7', 'docker.io', 'bitnami/redis'],
    ['ghcr.io/org/app:v1.2.3', 'ghcr.io/org/app:v1.2.3', 'ghcr.io', 'org/app'],
    ['localhost/app', 'localhost/app:latest', 'localhost', 'app'],
    ['localhost:5000/a/b/c:dev', 'localhost:5000/a/b/c:dev', 'localhost:5000', 'a/b/c'],
    // Docker treats a first component that is not all lowercase as a registry host.
    ['MyRegistry/app', 'MyRegistry/app:latest', 'MyRegistry', 'app'],
    ['127.0.0.1:5000/x', '127.0.0.1:5000/x:latest', '127.0.0.1:5000', 'x'],
    ['[::1]:5000/x:t', '[::1]:5000/x:t', '[::1]:5000', 'x'],
    ['registry.example.com/a_b/c__d/e--f.g:T_1.x-y', 'registry.example.com/a_b/c__d/e--f.g:T_1.x-y', 'registry.example.com', 'a_b/c__d/e--f.g'],
    [`busybox@${DIGEST}`, `docker.io/library/busybox@${DIGEST}`, 'docker.io', 'library/busybox'],
    [`quay.io/a/b:v1@${DIGEST}`, `quay.io/a/b:v1@${DIGEST}`, 'quay.io', 'a/b'],
  ])('%s -> %s', (input, normalized, domain, path) => {
    const ref = parseImageReference(input);
    expect(ref.normalized).toBe(normalized);
    expect(ref.domain).toBe(domain);
    expect(ref.path).toBe(path);
    expect(ref.original).toBe(input);
  });

  it('keeps the tag and digest apart', () => {
    const ref = parseImageReference(`host:5000/app:v2@${DIGEST}`);
    expect(ref.tag).toBe('v2');
    expect(ref.digest).toBe(DIGEST);
    expect(parseImageReference(`app@${DIGEST}`).tag).toBeUndefined();
  });

  it.each([
    ['', 'empty'],
    ['Busybox', 'lowercase'],
    ['docker.io/Library/busybox', 'lowercase'],
    ['My_Registry/app', 'registry host'],
    ['app:', 'not a valid tag'],
    ['app:-bad', 'not a valid tag'],
    [`app:${'t'.repeat(129)}`, 'not a valid tag'],
    ['app@sha256:abc', 'not a valid digest'],
    [`app@sha256:${'A'.repeat(64)}`, 'sha256 digest'],
    [`app@sha256:${'a'.repeat(63)}`, 'sha256 digest'],
    ['host:port/app', 'port'],
    ['host.example.com/', 'missing'],
    ['a//b', 'empty component'],
    ['a/-b', 'path component'],
    ['a/b_', 'path component'],
    ['a/b...c', 'path component'],
    [' busybox', 'white space'],
    ['bad host.com/x', 'white space'],
    ['a'.repeat(64), 'image id'],
    [`${'a'.repeat(250)}/bbbbbbbb`, 'longer than 255'],
    ['-host.com/x', 'registry host'],
  ])('rejects %j (%s)', (input, why) => {
    let error: unknown;
    try {
      parseImageReference(input);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidReferenceError);
    const message = (error as Error).message;
    expect(message).toContain(JSON.stringify(input));
    expect(message).toContain(why);
  });
});
