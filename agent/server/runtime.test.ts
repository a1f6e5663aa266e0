import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../proto/common/log.js';
import { RuntimeProbe, type AgentRuntime } from './runtime.js';

const log = createLogger({ name: 'test', level: 'silent' });

/** A fake runtime whose Version answers at once, or never (until its call is cancelled). */
function fakeRuntime(state: { answers: boolean; cancelled: number }): AgentRuntime {
  return {
    endpoint: 'unix:///fake/containerd.sock',
    unpin: () => Promise.resolve({ supported: true, unpinned: false }),
    version: (signal) =>
      state.answers
        ? Promise.resolve({ runtimeName: 'containerd', runtimeVersion: 'v1.6.20' })
        : new Promise((_, reject) =>
            signal.addEventListener('abort', () => {
              state.cancelled++;
              reject(new Error('1 CANCELLED: call cancelled by the caller'));
            }, { once: true }),
          ),
    imageStatus: () => Promise.reject(new Error('not used')),
    removeImage: () => Promise.resolve(),
    imageFilesystem: () => Promise.reject(new Error('not used')),
    close: () => undefined,
  };
}

/** What a signal holds on to: its listeners and, on Node 20, every signal AbortSignal.any() made from it. */
function heldBy(signal: AbortSignal): number {
  const dependants = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
  const set = dependants ? (signal as unknown as Record<symbol, Set<unknown> | undefined>)[dependants] : undefined;
  return getEventListeners(signal, 'abort').length + (set?.size ?? 0);
}

const stoppedSignal = (probe: RuntimeProbe): AbortSignal => (probe as unknown as { stopped: AbortController }).stopped.signal;

afterEach(() => {
  vi.useRealTimers();
});

describe('RuntimeProbe', () => {
  it('reports a runtime that does not answer as not ready once the deadline passes, and cancels the call', async () => {
    vi.useFakeTimers();
    const state = { answers: false, cancelled: 0 };
    const probe = new RuntimeProbe(fakeRuntime(state), { intervalMs: 60_000, timeoutMs: 2_000, log });
    const checked = probe.check();
    await vi.advanceTimersByTimeAsync(1_999);
    expect(state.cancelled).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    const s = await checked;
    expect(s.ready).toBe(false);
    expect(s.reason).toBe('the container runtime at unix:///fake/containerd.sock did not answer Version: no answer within 2000 ms');
    expect(state.cancelled).toBe(1);
  });

  it('stop() cancels a probe in flight', async () => {
    const state = { answers: false, cancelled: 0 };
    const probe = new RuntimeProbe(fakeRuntime(state), { intervalMs: 60_000, timeoutMs: 60_000, log });
    const checked = probe.check();
    probe.stop();
    expect((await checked).ready).toBe(false);
    expect(state.cancelled).toBe(1);
  });

  it('keeps nothing per probe: thousands of checks leave the agent-lifetime signal as it was', async () => {
    const state = { answers: true, cancelled: 0 };
    const probe = new RuntimeProbe(fakeRuntime(state), { intervalMs: 60_000, timeoutMs: 2_000, log });
    for (let i = 0; i < 2_000; i++) expect((await probe.check()).ready).toBe(true);
    state.answers = false;
    const slow = probe.check();
    expect(heldBy(stoppedSignal(probe))).toBe(1); // the probe in flight listens for stop()
    probe.stop();
    await slow;
    expect(heldBy(stoppedSignal(probe))).toBe(0);
  });
});
