import { describe, expect, it } from 'vitest';
import type { WarmEvent, WarmResult } from '../../proto/agent.js';
import { RegistryClosedError, TaskCancelledError, TaskCapacityError, TaskRegistry, type TaskListener, type TaskRun } from './tasks.js';

/** A run the test drives by hand: it emits what the test asks and finishes when told. */
function fakeRun() {
  let emit: (e: WarmEvent) => void = () => undefined;
  let finish: (r: WarmResult) => void = () => undefined;
  let signal: AbortSignal | undefined;
  let starts = 0;
  const run: TaskRun = (s, e) => {
    starts++;
    signal = s;
    emit = e;
    return new Promise<WarmResult>((resolve) => {
      finish = resolve;
      s.addEventListener('abort', () => resolve(result('aborted', false)));
    });
  };
  return {
    run,
    emit: (e: WarmEvent) => emit(e),
    finish: (r: WarmResult) => finish(r),
    get signal() {
      return signal;
    },
    get starts() {
      return starts;
    },
  };
}

function result(taskId: string, succeeded = true): WarmResult {
  return { taskId, succeeded, images: [], paths: [], seconds: 1, failure: null };
}

function recorder() {
  const events: WarmEvent[] = [];
  const results: WarmResult[] = [];
  const listener: TaskListener = { event: (e) => events.push(e), result: (r) => results.push(r) };
  return { events, results, listener };
}

function registry(overrides: Partial<ConstructorParameters<typeof TaskRegistry>[0]> = {}) {
  return new TaskRegistry({
    retentionMs: 60_000,
    retentionCount: 10,
    maxRunning: 4,
    progressIntervalMs: 0,
    onRunError: (taskId) => ({ ...result(taskId, false), failure: { code: 'INTERNAL', message: 'boom' } }),
    ...overrides,
  });
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const image = (name: string, state: 'RUNNING' | 'DONE', bytesDone = 0): WarmEvent => ({ image: { image: name, state, bytesDone } });

describe('TaskRegistry', () => {
  it('runs a task once and gives a second caller with the same id the latest progress, then the rest', async () => {
    const reg = registry();
    const work = fakeRun();
    const a = recorder();
    expect(reg.attach('t1', work.run, a.listener).kind).toBe('started');
    await tick();
    work.emit(image('x', 'RUNNING', 10));
    work.emit(image('x', 'RUNNING', 20));
    work.emit(image('y', 'RUNNING', 5));

    const b = recorder();
    const unused = fakeRun();
    expect(reg.attach('t1', unused.run, b.listener).kind).toBe('joined');
    expect(b.events).toEqual([image('x', 'RUNNING', 20), image('y', 'RUNNING', 5)]);
    expect(reg.inFlight).toBe(1);

    work.emit(image('x', 'DONE', 30));
    work.finish(result('t1'));
    await tick();
    expect(a.results).toEqual([result('t1')]);
    expect(b.results).toEqual([result('t1')]);
    expect(b.events.at(-1)).toEqual(image('x', 'DONE', 30));
    expect(work.starts).toBe(1);
    expect(unused.starts).toBe(0);
    expect(reg.inFlight).toBe(0);
  });

  it('answers a finished task id with its remembered result, without running it again', async () => {
    const reg = registry();
    const work = fakeRun();
    reg.attach('t1', work.run, recorder().listener);
    await tick();
    work.finish(result('t1'));
    await tick();

    const again = fakeRun();
    const late = recorder();
    expect(reg.attach('t1', again.run, late.listener).kind).toBe('finished');
    expect(late.results).toEqual([result('t1')]);
    expect(again.starts).toBe(0);
  });

  it('forgets finished tasks after the retention time and beyond the retention count', async () => {
    let now = 1_000;
    const reg = registry({ retentionMs: 5_000, retentionCount: 2, now: () => now });
    for (const id of ['a', 'b', 'c']) {
      const w = fakeRun();
      reg.attach(id, w.run, recorder().listener);
      await tick();
      w.finish(result(id));
      await tick();
    }
    expect(reg.result('a')).toBeUndefined();
    expect(reg.result('b')).toEqual(result('b'));
    now += 6_000;
    expect(reg.result('c')).toBeUndefined();
  });

  it('keeps a task running when its only caller detaches', async () => {
    const reg = registry();
    const work = fakeRun();
    const a = recorder();
    reg.attach('t1', work.run, a.listener).detach();
    await tick();
    work.emit(image('x', 'RUNNING', 1));
    expect(work.signal?.aborted).toBe(false);
    work.finish(result('t1'));
    await tick();
    expect(a.events).toEqual([]);
    expect(a.results).toEqual([]);
    expect(reg.result('t1')).toEqual(result('t1'));
  });

  it('cancel() stops a running task: every caller gets its result, which is remembered', async () => {
    const reg = registry();
    const work = fakeRun();
    const other = fakeRun();
    const a = recorder();
    const b = recorder();
    reg.attach('t1', work.run, a.listener);
    reg.attach('t1', fakeRun().run, b.listener);
    reg.attach('t2', other.run, recorder().listener);
    await tick();
    expect(reg.summaries().map((t) => t.taskId)).toEqual(['t1', 't2']);

    expect(await reg.cancel('t1', 1_000)).toBe('cancelled');
    expect(work.signal?.reason).toBeInstanceOf(TaskCancelledError);
    expect(a.results).toEqual([result('aborted', false)]);
    expect(b.results).toEqual([result('aborted', false)]);
    // Only that task: the other runs on.
    expect(other.signal?.aborted).toBe(false);
    expect(reg.summaries().map((t) => t.taskId)).toEqual(['t2']);

    // Idempotent: again, it has finished; the same id does not run again.
    expect(await reg.cancel('t1', 1_000)).toBe('finished');
    const again = fakeRun();
    const late = recorder();
    expect(reg.attach('t1', again.run, late.listener).kind).toBe('finished');
    expect(late.results).toEqual([result('aborted', false)]);
    expect(again.starts).toBe(0);
  });

  it('cancel() of a task that is not known or already finished changes nothing', async () => {
    const reg = registry();
    const work = fakeRun();
    reg.attach('done', work.run, recorder().listener);
    await tick();
    work.finish(result('done'));
    await tick();
    expect(await reg.cancel('done', 1_000)).toBe('finished');
    expect(reg.result('done')).toEqual(result('done'));
    expect(await reg.cancel('never-seen', 1_000)).toBe('unknown');
    expect(reg.result('never-seen')).toBeUndefined();
    expect(reg.inFlight).toBe(0);
  });

  it('cancel() answers stopping when the task has not ended within the wait', async () => {
    const reg = registry();
    let finish: (r: WarmResult) => void = () => undefined;
    let signal: AbortSignal | undefined;
    // A run that notices its signal only later (a reader in the middle of a long read).
    const slow: TaskRun = (s) => {
      signal = s;
      return new Promise<WarmResult>((resolve) => (finish = resolve));
    };
    const r = recorder();
    reg.attach('slow', slow, r.listener);
    await tick();
    expect(await reg.cancel('slow', 0)).toBe('stopping');
    expect(signal?.aborted).toBe(true);
    expect(reg.inFlight).toBe(1);
    finish(result('slow', false));
    await tick();
    expect(r.results).toEqual([result('slow', false)]);
    expect(await reg.cancel('slow', 0)).toBe('finished');
  });

  it('refuses more running tasks than its limit', async () => {
    const reg = registry({ maxRunning: 1 });
    reg.attach('t1', fakeRun().run, recorder().listener);
    await tick();
    expect(() => reg.attach('t2', fakeRun().run, recorder().listener)).toThrow(TaskCapacityError);
  });

  it('turns a run that throws into a result from onRunError', async () => {
    const reg = registry();
    const r = recorder();
    reg.attach('t1', () => Promise.reject(new Error('engine exploded')), r.listener);
    await tick();
    await tick();
    expect(r.results[0]?.failure).toEqual({ code: 'INTERNAL', message: 'boom' });
  });

  it('close() aborts running tasks, waits for them and refuses new ones', async () => {
    const reg = registry();
    const work = fakeRun();
    const r = recorder();
    reg.attach('t1', work.run, r.listener);
    await tick();
    await reg.close(new Error('shutting down'), 1_000);
    expect(work.signal?.aborted).toBe(true);
    expect(r.results).toEqual([result('aborted', false)]);
    expect(() => reg.attach('t2', fakeRun().run, recorder().listener)).toThrow(RegistryClosedError);
  });

  it('passes state changes at once and thins out byte updates of one item', async () => {
    let now = 0;
    const reg = registry({ progressIntervalMs: 1_000, now: () => now });
    const work = fakeRun();
    const r = recorder();
    reg.attach('t1', work.run, r.listener);
    await tick();
    work.emit(image('x', 'RUNNING', 1));
    now = 10;
    work.emit(image('x', 'RUNNING', 2));
    now = 20;
    work.emit(image('x', 'RUNNING', 3));
    now = 30;
    work.emit(image('x', 'DONE', 4));
    now = 1_100;
    work.emit(image('x', 'DONE', 5));
    expect(r.events).toEqual([image('x', 'RUNNING', 1), image('x', 'DONE', 4), image('x', 'DONE', 5)]);
    work.finish(result('t1'));
    await tick();
  });
});
