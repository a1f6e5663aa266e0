import { describe, expect, it } from 'vitest';
import {
  checkHostPath,
  nodeToken,
  readRecord,
  resolveSpec,
  validateSpec,
  writeRecord,
} from './types.js';

// The grammar itself is tested in proto/common/image-reference.test.ts; these are the inputs the
// controller once let through and the agent refused only after dispatch.
describe('image references in a spec', () => {
  it.each([
    ['a'.repeat(64), 'image id'],
    [`busybox@sha256:${'a'.repeat(32)}`, 'not a valid sha256 digest'],
    [`busybox@sha256:${'A'.repeat(64)}`, 'not a valid sha256 digest'],
    [`busybox@sha512:${'a'.repeat(64)}`, 'not a valid sha512 digest'],
  ])('refuses %s before dispatch, naming it', (image, why) => {
    const p = validateSpec(resolveSpec({ images: [{ image }] }));
    expect(p).toMatchObject({ reason: 'InvalidImageReference', value: image });
    expect(p?.message).toContain(`spec.images[0].image "${image}" is not a valid image reference: `);
    expect(p?.message).toContain(why);
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
    expect(s).toMatchObject({ keepWarm: false, recheckSeconds: 300, minResidentPercent: 90 });
  });
  it('keeps recheckSeconds at 5 or more and minResidentPercent at 100 or less', () => {
    expect(resolveSpec({ images: [{ image: 'a' }], keepWarm: true, policy: { recheckSeconds: 1, minResidentPercent: 150 } })).toMatchObject({
      keepWarm: true,
      recheckSeconds: 5,
      minResidentPercent: 100,
    });
  });
  it('refuses keepWarm with activeDeadlineSeconds, which could never apply', () => {
    const p = validateSpec(resolveSpec({ images: [{ image: 'a' }], keepWarm: true, policy: { activeDeadlineSeconds: 60 } }));
    expect(p).toMatchObject({ reason: 'InvalidSpec', value: '60' });
    expect(p?.message).toContain('spec.keepWarm');
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
