import { describe, expect, it } from 'vitest';
import {
  checkHostPath,
  checkImageReference,
  nodeToken,
  parseImageReference,
  readRecord,
  resolveSpec,
  validateSpec,
  writeRecord,
} from './types.js';

describe('image references', () => {
  it.each([
    ['busybox', 'docker.io', 'busybox'],
    ['library/busybox:1.36', 'docker.io', 'library/busybox'],
    ['127.0.0.1:5000/app/model:v1', '127.0.0.1:5000', 'app/model'],
    ['localhost/x', 'localhost', 'x'],
    ['ghcr.io/a/b-c__d.e@sha256:' + 'a'.repeat(64), 'ghcr.io', 'a/b-c__d.e'],
    ['[::1]:5000/x:y', '[::1]:5000', 'x'],
  ])('accepts %s', (ref, domain, path) => {
    const r = parseImageReference(ref);
    expect(r).toMatchObject({ domain, path });
  });

  it.each([
    ['', 'empty'],
    ['library/UPPER', 'lowercase'],
    ['busybox:', 'tag ""'],
    ['busybox:bad tag', 'whitespace'],
    ['a//b', 'empty path component'],
    ['busybox@sha256:xyz', 'digest "sha256:xyz"'],
    ['bad_host:x:y/z', 'malformed'],
    ['-x.io/y', 'malformed'],
  ])('rejects %j naming the problem', (ref, fragment) => {
    expect(checkImageReference(ref)).toContain(fragment);
  });
});

describe('host paths', () => {
  it('accepts absolute clean paths', () => {
    expect(checkHostPath('/models')).toBeUndefined();
    expect(checkHostPath('/')).toBeUndefined();
    expect(checkHostPath('/a/b.c')).toBeUndefined();
  });
  it('rejects relative, dotted and unclean paths', () => {
    expect(checkHostPath('models')).toBe('is not absolute');
    expect(checkHostPath('/a/../b')).toBe('contains ".."');
    expect(checkHostPath('/a//b')).toContain('not clean');
    expect(checkHostPath('/a/')).toContain('expected "/a"');
    expect(checkHostPath('/a/./b')).toContain('not clean');
  });
});

describe('spec', () => {
  it('applies defaults', () => {
    const s = resolveSpec({ images: [{ image: 'busybox' }] });
    expect(s).toMatchObject({ parallelism: 10, backoffLimit: 3, suspend: false, imagePullSecrets: [] });
    expect(s.images[0]?.pullPolicy).toBe('IfNotPresent');
  });
  it('names the bad value', () => {
    const p = validateSpec(resolveSpec({ images: [{ image: 'ok' }, { image: 'Not/Valid' }] }));
    expect(p?.reason).toBe('InvalidImageReference');
    expect(p?.message).toContain('"Not/Valid"');
    expect(p?.message).toContain('spec.images[1]');
    const q = validateSpec(resolveSpec({ paths: [{ path: 'rel/dir' }] }));
    expect(q).toMatchObject({ reason: 'InvalidPath', value: 'rel/dir' });
    expect(validateSpec(resolveSpec({}))?.reason).toBe('InvalidSpec');
  });
});

describe('node record', () => {
  it('round-trips tokens and stays 8 bytes per node', () => {
    const names = Array.from({ length: 200 }, (_, i) => `node-${i}.example.internal`);
    const rec = writeRecord(names.map(nodeToken));
    expect(rec.length).toBe(200 * 8);
    const back = readRecord(rec);
    expect(back.size).toBe(200);
    expect(back.has(nodeToken('node-7.example.internal'))).toBe(true);
    expect(back.has(nodeToken('node-999'))).toBe(false);
  });
});
