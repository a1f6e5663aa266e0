import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiHealth } from './api-health.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A fake probe: answers, fails, or never answers (until aborted). */
function fakeProbe() {
  const state = { mode: 'ok' as 'ok' | 'fail' | 'hang', calls: 0, aborted: 0 };
  const probe = (signal: AbortSignal): Promise<unknown> => {
    state.calls++;
    if (state.mode === 'ok') return Promise.resolve({});
    if (state.mode === 'fail') return Promise.reject(Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' }));
    return new Promise((_, reject) => signal.addEventListener('abort', () => {
      state.aborted++;
      reject(new Error('aborted'));
    }, { once: true }));
  };
  return { state, probe };
}

describe('ApiHealth', () => {
  it('is healthy from the first answered probe, until one fails, and again from the next answered one', async () => {
    const { state, probe } = fakeProbe();
    const health = new ApiHealth({ probe, intervalMs: 1000, timeoutMs: 3000 });
    expect(health.healthySince()).toBeUndefined();
    const t0 = Date.now();
    health.start();
    await vi.advanceTimersByTimeAsync(1);
    expect(health.healthySince()).toBe(t0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(health.healthySince()).toBe(t0);
    state.mode = 'fail';
    await vi.advanceTimersByTimeAsync(1_000);
    expect(health.healthySince()).toBeUndefined();
    state.mode = 'ok';
    await vi.advanceTimersByTimeAsync(1_000);
    expect(health.healthySince()).toBeGreaterThan(t0 + 10_000);
    health.stop();
  });

  it('counts a probe that gets no answer (etcd gone behind the API server) as a failure, and cancels it', async () => {
    const { state, probe } = fakeProbe();
    const health = new ApiHealth({ probe, intervalMs: 1000, timeoutMs: 3000 });
    health.start();
    await vi.advanceTimersByTimeAsync(1);
    state.mode = 'hang';
    await vi.advanceTimersByTimeAsync(1_000);
    expect(health.healthySince()).toBeDefined();
    await vi.advanceTimersByTimeAsync(3_000);
    expect(health.healthySince()).toBeUndefined();
    expect(state.aborted).toBe(1);
    health.stop();
    const calls = state.calls;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(state.calls).toBe(calls);
  });
});
