import { describe, expect, it } from 'vitest';
import { SPACE_GROWTH_BYTES, waitForMoreSpace, type SpaceWaitOptions } from './space-wait.js';

/** A fake clock: sleeping moves virtual time at once and records the pause. */
function fakeClock() {
  let now = 0;
  const pauses: number[] = [];
  return {
    pauses,
    now: () => now,
    sleep: (ms: number) => {
      pauses.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

/** Free bytes the fake agent reports, one answer per call (the last one repeats). */
function answers(...values: (number | undefined | Error)[]): SpaceWaitOptions['freeBytes'] {
  let i = 0;
  return () => {
    const v = values[Math.min(i++, values.length - 1)];
    return v instanceof Error ? Promise.reject(v) : Promise.resolve(v);
  };
}

function options(over: Partial<SpaceWaitOptions>): SpaceWaitOptions {
  return { freeBytes: answers(0), signal: new AbortController().signal, clock: fakeClock(), firstPauseMs: 1_000, maxPauseMs: 8_000, maxWaitMs: 60_000, ...over };
}

describe('waitForMoreSpace', () => {
  it('waits at doubling pauses until the free bytes grow, ignoring churn and an agent that does not answer for a moment', async () => {
    const clock = fakeClock();
    const base = 500 * 2 ** 20;
    const verdict = await waitForMoreSpace(
      options({ clock, freeBytes: answers(base, base - 4096, base + SPACE_GROWTH_BYTES - 1, new Error('agent restarting'), undefined, base + 300 * 2 ** 20) }),
    );
    expect(verdict).toBe('grown');
    expect(clock.pauses).toEqual([1_000, 2_000, 4_000, 8_000, 8_000]);
  });

  it('waits, when the image needs a known size, until that much is free: the failed pull\'s leftovers going away is not room', async () => {
    const clock = fakeClock();
    const MiB = 2 ** 20;
    // 48 MiB free after the failure; the runtime removes the pull's 5 MiB of leftovers; an
    // operator then frees space in two steps, the second enough for the image's 60 MiB.
    const verdict = await waitForMoreSpace(options({ clock, needBytes: 60 * MiB, freeBytes: answers(48 * MiB, 53 * MiB, 58 * MiB, 60 * MiB) }));
    expect(verdict).toBe('grown');
    expect(clock.pauses).toEqual([1_000, 2_000, 4_000]);
    // Without the size, the leftovers alone would have ended the wait at the first pause.
    const blind = fakeClock();
    expect(await waitForMoreSpace(options({ clock: blind, freeBytes: answers(48 * MiB, 53 * MiB) }))).toBe('grown');
    expect(blind.pauses).toEqual([1_000]);
  });

  it('gives up after maxWaitMs when nothing changes', async () => {
    const clock = fakeClock();
    expect(await waitForMoreSpace(options({ clock, freeBytes: answers(7), maxWaitMs: 20_000 }))).toBe('timeout');
    expect(clock.pauses).toEqual([1_000, 2_000, 4_000, 8_000, 5_000]);
    expect(clock.now()).toBe(20_000);
  });

  it('says unknown when the agent cannot measure its image filesystem, and stops when cancelled', async () => {
    expect(await waitForMoreSpace(options({ freeBytes: answers(undefined) }))).toBe('unknown');
    const cancel = new AbortController();
    const clock = fakeClock();
    const sleep = (ms: number) => {
      cancel.abort();
      return clock.sleep(ms);
    };
    expect(await waitForMoreSpace(options({ signal: cancel.signal, clock: { now: clock.now, sleep } }))).toBe('cancelled');
  });
});
