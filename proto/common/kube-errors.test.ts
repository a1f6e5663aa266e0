import { describe, expect, it } from 'vitest';
import { kubeErrorStatus } from './kube-errors.js';

describe('kubeErrorStatus', () => {
  it.each([
    [{ code: 409 }, 409],
    [{ statusCode: 410 }, 410],
    [{ code: 404, statusCode: 500 }, 404],
    [{ code: 'ECONNREFUSED' }, undefined],
    [new Error('socket hang up'), undefined],
    [null, undefined],
    ['403', undefined],
  ])('%j -> %s', (err, want) => {
    expect(kubeErrorStatus(err)).toBe(want);
  });
});
