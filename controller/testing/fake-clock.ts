// A fake DispatchClock for unit tests (controller/dispatch.ts, controller/reconcile.ts): time moves
// only when the test says so, and every sleep ends in time order, so a test that waits for a
// retry, a tick or the agent wait does not wait for real.
//
//   const clock = new FakeClock();
//   const run = new WarmupRun({ ...opts, clock });
//   run.start();
//   await clock.advance(50);                         // 50 ms of fake time, sleepers due wake up
//   await clock.until(() => run.snapshot().failedNodes === 1);
//   const outcome = await clock.run(run.done);       // moves time until the promise settles
//
// Between steps it lets pending promise callbacks run (one macrotask turn), so work a wake-up
// starts has happened before the next sleeper is woken. Not part of the build (tsconfig.build.json).
import type { DispatchClock } from '../dispatch.js';

interface Sleeper {
  at: number;
  wake: () => void;
}

/** Lets every promise callback already queued (and those they queue) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock implements DispatchClock {
  #now: number;
  readonly #sleepers = new Set<Sleeper>();

  constructor(start = Date.parse('2025-01-01T00:00:00.000Z')) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const sleeper: Sleeper = { at: this.#now + Math.max(0, ms), wake: done };
      function done(): void {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }
      const onAbort = (): void => {
        this.#sleepers.delete(sleeper);
        done();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#sleepers.add(sleeper);
    });
  }

  /** Moves time forward by `ms`, waking each sleeper that falls due, in time order. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await settle();
      const next = this.#earliest();
      if (!next || next.at > end) break;
      this.#wake(next);
    }
    this.#now = end;
    await settle();
  }

  /**
   * Moves time from one sleeper to the next until `cond()` holds. Throws when it does not hold
   * while nothing sleeps any more (nothing could change), or after `limitMs` of fake time.
   */
  async until(cond: () => boolean, limitMs = 10 * 60_000): Promise<void> {
    const end = this.#now + limitMs;
    for (;;) {
      await settle();
      if (cond()) return;
      const next = this.#earliest();
      if (!next) throw new Error('condition not met, and nothing is scheduled that could change it');
      if (next.at > end) throw new Error(`condition not met within ${limitMs} ms of fake time`);
      this.#wake(next);
    }
  }

  /** Moves time from one sleeper to the next until `promise` settles; returns its result. */
  async run<T>(promise: Promise<T>, limitMs?: number): Promise<T> {
    let settled = false;
    const watched = promise.finally(() => (settled = true));
    // The outcome is reported through `watched` below; this only keeps it from being unhandled.
    watched.catch(() => undefined);
    await this.until(() => settled, limitMs);
    return watched;
  }

  #earliest(): Sleeper | undefined {
    let first: Sleeper | undefined;
    for (const s of this.#sleepers) if (!first || s.at < first.at) first = s;
    return first;
  }

  #wake(s: Sleeper): void {
    this.#sleepers.delete(s);
    this.#now = Math.max(this.#now, s.at);
    s.wake();
  }
}
