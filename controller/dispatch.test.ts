import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { AgentCallError, type AgentConnection, type WarmOptions } from './agent-client.js';
import { nodeToken } from './api/types.js';
import { WarmupRun, cancelTasks, type NodeTarget, type RunOptions } from './dispatch.js';
import { FakeClock } from './testing/fake-clock.js';
import type { WarmRequest } from '../proto/gen/stoker/v1/WarmRequest.js';
import type { WarmResult__Output } from '../proto/agent.js';

const PINNED = `r/x@sha256:${'0'.repeat(64)}`;
const log = pino({ level: 'silent' });

function okResult(id: string): WarmResult__Output {
  return { taskId: id, succeeded: true, images: [], paths: [], failure: null, seconds: 0 };
}

function failResult(id: string, code: 'UNAUTHORIZED' | 'PATH_OUTSIDE_ROOT' | 'NO_SPACE', message: string): WarmResult__Output {
  return { taskId: id, succeeded: false, images: [], paths: [], failure: { code, message, needBytes: 0 }, seconds: 0 };
}

/**
 * A fake agent fleet: records every request, answers with `answer(node, request)` after `delayMs`
 * of the clock's time. `calls` lists Warm and Cancel calls in order ("warm <id>", "cancel <id>");
 * the agent at "unreachable" never answers a Cancel.
 */
function fakeFleet(clock: FakeClock, answer: (node: string, req: WarmRequest) => WarmResult__Output | Error, delayMs = 20) {
  const requests: WarmRequest[] = [];
  const calls: string[] = [];
  const cancels: string[] = [];
  let active = 0;
  let maxActive = 0;
  const connect = (endpoint: string): AgentConnection => ({
    async warm(req: WarmRequest, opts: WarmOptions) {
      requests.push(req);
      calls.push(`warm ${req.taskId ?? ''}`);
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        opts.onEvent?.({ image: { image: 'x', state: 'RUNNING', bytesDone: 5, bytesTotal: 10, bytesKnown: true, elapsedSeconds: 0 }, event: 'image' });
        await clock.sleep(delayMs, opts.signal);
        if (opts.signal.aborted) throw new AgentCallError('Cancelled', 'cancelled');
        const a = answer(endpoint, req);
        if (a instanceof Error) throw a;
        return a;
      } finally {
        active--;
      }
    },
    nodeStatus: () => Promise.reject(new Error('not used')),
    cancel(req) {
      if (req.nodeName !== endpoint) return Promise.reject(new AgentCallError('AgentRefused', `agent at ${endpoint} is not on node ${req.nodeName}`));
      calls.push(`cancel ${req.taskId ?? ''}`);
      cancels.push(req.taskId ?? '');
      if (endpoint === 'unreachable') return Promise.reject(new AgentCallError('AgentUnavailable', 'agent at unreachable is unavailable'));
      return Promise.resolve({ taskId: req.taskId ?? '', outcome: 'CANCEL_OUTCOME_CANCELLED' });
    },
  });
  return { connect, requests, calls, cancels, maxActive: () => maxActive };
}

function targetsOf(names: string[], live = names): () => Map<string, NodeTarget> {
  return () => new Map(names.map((n) => [n, { endpoint: live.includes(n) ? n : undefined }]));
}

function baseOptions(clock: FakeClock, over: Partial<RunOptions>): RunOptions {
  return {
    uid: 'uid1',
    generation: 1,
    // By digest: no node resolves a tag before the others start (see 'one digest on every node').
    images: [{ image: PINNED, pullPolicy: 'IF_NOT_PRESENT' }],
    paths: [],
    credentials: [],
    parallelism: 10,
    backoffLimit: 2,
    timeoutMs: 5000,
    agentWaitMs: 200,
    backoffBaseMs: 10,
    targets: targetsOf([]),
    nodeExists: () => true,
    connect: () => {
      throw new Error('no fleet');
    },
    onChange: () => undefined,
    log,
    clock,
    tickMs: 5,
    ...over,
  };
}

describe('WarmupRun', () => {
  it('warms every node with deterministic task ids, never more than parallelism at once', async () => {
    const clock = new FakeClock();
    const names = Array.from({ length: 7 }, (_, i) => `n${i}`);
    const fleet = fakeFleet(clock, (_n, req) => okResult(req.taskId ?? ''));
    const run = new WarmupRun(baseOptions(clock, { parallelism: 2, targets: targetsOf(names), connect: fleet.connect }));
    run.start();
    const outcome = await clock.run(run.done);
    expect(outcome).toEqual({ kind: 'finished', succeeded: 7, failed: 0, desired: 7 });
    expect(fleet.maxActive()).toBe(2);
    expect(fleet.requests.map((r) => `${r.nodeName} ${r.taskId}`).sort()).toEqual([
      'n0 uid1-g1-n0-a1',
      'n1 uid1-g1-n1-a1',
      'n2 uid1-g1-n2-a1',
      'n3 uid1-g1-n3-a1',
      'n4 uid1-g1-n4-a1',
      'n5 uid1-g1-n5-a1',
      'n6 uid1-g1-n6-a1',
    ]);
    const s = run.snapshot();
    expect(s.record.succeeded.length).toBe(7 * 8);
  });

  it('retries with new attempt ids up to backoffLimit, backing off 10 then 20 ms, then records the reason', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const sentAt: number[] = [];
    const fleet = fakeFleet(clock, (node, req) => {
      if (node !== 'bad') return okResult(req.taskId ?? '');
      sentAt.push(clock.now() - start - 20); // answered 20 ms after it was sent
      return failResult(req.taskId ?? '', 'UNAUTHORIZED', 'registry r refused the credentials for r/x:1');
    });
    const failed: string[] = [];
    const run = new WarmupRun(baseOptions(clock, { targets: targetsOf(['good', 'bad']), connect: fleet.connect, hooks: { nodeFailed: (f) => failed.push(`${f.name}:${f.reason}`) } }));
    run.start();
    expect(await clock.run(run.done)).toMatchObject({ kind: 'finished', succeeded: 1, failed: 1 });
    expect(fleet.requests.filter((r) => r.nodeName === 'bad').map((r) => r.taskId)).toEqual(['uid1-g1-bad-a1', 'uid1-g1-bad-a2', 'uid1-g1-bad-a3']);
    // Sent at 0; failed at 20, retried 10 ms later (the next tick after that, 5 ms apart); failed
    // at 50, retried 20 ms later.
    expect(sentAt).toEqual([0, 30, 70]);
    expect(failed).toEqual(['bad:RegistryUnauthorized']);
    expect(run.snapshot().failedNodeList[0]).toMatchObject({ name: 'bad', reason: 'RegistryUnauthorized', message: expect.stringContaining('r/x:1') as string });
  });

  it('stops the whole run on bad input reported by an agent', async () => {
    const clock = new FakeClock();
    const fleet = fakeFleet(clock, (_n, req) => failResult(req.taskId ?? '', 'PATH_OUTSIDE_ROOT', 'path /etc is outside every allowed root'));
    const run = new WarmupRun(baseOptions(clock, { parallelism: 1, targets: targetsOf(['a', 'b', 'c']), connect: fleet.connect }));
    run.start();
    expect(await clock.run(run.done)).toEqual({ kind: 'fatal', problem: { reason: 'PathOutsideRoot', message: 'path /etc is outside every allowed root' } });
    expect(fleet.requests).toHaveLength(1);
  });

  it('stops the whole run when an agent refuses the request naming a bad-input code', async () => {
    const clock = new FakeClock();
    const fleet = fakeFleet(clock, () => new AgentCallError('AgentRefused', 'agent at a refused the request: image reference "Bad" is malformed', 3, 'INVALID_REFERENCE'));
    const run = new WarmupRun(baseOptions(clock, { parallelism: 1, targets: targetsOf(['a', 'b']), connect: fleet.connect }));
    run.start();
    const outcome = await clock.run(run.done);
    expect(outcome).toMatchObject({ kind: 'fatal', problem: { reason: 'InvalidImageReference' } });
    expect(fleet.requests).toHaveLength(1);
  });

  it('fails a node whose agent never shows up within agentWaitMs, and an agent that does not answer after retries', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const fleet = fakeFleet(clock, (node) => (node === 'silent' ? new AgentCallError('AgentUnavailable', 'agent at silent is unavailable') : okResult('')));
    const failedAt = new Map<string, number>();
    const run = new WarmupRun(
      baseOptions(clock, {
        targets: targetsOf(['ok', 'silent', 'noagent'], ['ok', 'silent']),
        connect: fleet.connect,
        hooks: { nodeFailed: (f) => failedAt.set(f.name, clock.now() - start) },
      }),
    );
    run.start();
    expect(await clock.run(run.done)).toMatchObject({ kind: 'finished', succeeded: 1, failed: 2 });
    const reasons = Object.fromEntries(run.snapshot().failedNodeList.map((f) => [f.name, f.reason]));
    expect(reasons).toEqual({ silent: 'AgentUnavailable', noagent: 'AgentUnavailable' });
    expect(failedAt.get('noagent')).toBe(200); // agentWaitMs
    expect(failedAt.get('silent')).toBe(90); // three answers of 20 ms, two backoffs of 10 and 20 ms
  });

  it('fails a node deleted mid-task with NodeDeleted', async () => {
    const clock = new FakeClock();
    let exists = true;
    const names = ['stay', 'gone'];
    const fleet = fakeFleet(clock, (_n, req) => okResult(req.taskId ?? ''), 300);
    const run = new WarmupRun(
      baseOptions(clock, {
        targets: () => new Map(names.filter((n) => n !== 'gone' || exists).map((n) => [n, { endpoint: n }])),
        nodeExists: (n) => n !== 'gone' || exists,
        connect: fleet.connect,
      }),
    );
    run.start();
    await clock.advance(50);
    expect(run.snapshot()).toMatchObject({ activeNodes: 2 });
    exists = false;
    expect(await clock.run(run.done)).toMatchObject({ kind: 'finished', succeeded: 1, failed: 1 });
    expect(run.snapshot().failedNodeList).toEqual([{ name: 'gone', reason: 'NodeDeleted', message: 'node gone was deleted' }]);
  });

  it('resumes from status: recorded nodes are not redone, in-flight nodes keep their attempt', async () => {
    const clock = new FakeClock();
    const fleet = fakeFleet(clock, (_n, req) => okResult(req.taskId ?? ''));
    const run = new WarmupRun(
      baseOptions(clock, {
        targets: targetsOf(['done', 'inflight', 'new']),
        connect: fleet.connect,
        resume: { succeeded: new Set([nodeToken('done')]), failed: new Set(), failedList: [], attempts: new Map([['inflight', 2]]) },
      }),
    );
    run.start();
    expect(await clock.run(run.done)).toMatchObject({ kind: 'finished', succeeded: 3, failed: 0, desired: 3 });
    expect(fleet.requests.map((r) => r.taskId).sort()).toEqual(['uid1-g1-inflight-a2', 'uid1-g1-new-a1']);
  });

  it('fails a started node whose agent then disappears from the live set', async () => {
    const clock = new FakeClock();
    let live = true;
    const fleet = fakeFleet(clock, (_n, req) => (live ? new AgentCallError('AgentUnavailable', 'agent at a is unavailable') : okResult(req.taskId ?? '')));
    const run = new WarmupRun(
      baseOptions(clock, {
        backoffBaseMs: 50,
        targets: () => (live ? new Map([['a', { endpoint: 'a' }]]) : new Map<string, NodeTarget>()),
        connect: fleet.connect,
      }),
    );
    run.start();
    await clock.advance(40);
    expect(run.snapshot()).toMatchObject({ activeNodes: 0, activeNodeList: [{ name: 'a', attempt: 1 }] }); // backing off
    live = false; // the Lease lapsed: the node is no longer a target, but it was started
    expect(await clock.run(run.done)).toMatchObject({ kind: 'finished', failed: 1 });
    expect(run.snapshot().failedNodeList[0]).toMatchObject({ name: 'a', reason: 'AgentUnavailable' });
    expect(fleet.requests).toHaveLength(1);
  });

  it('finishes when every target is gone, counting what status had recorded', async () => {
    const clock = new FakeClock();
    const fleet = fakeFleet(clock, (_n, req) => okResult(req.taskId ?? ''));
    const run = new WarmupRun(
      baseOptions(clock, {
        targets: targetsOf([]),
        connect: fleet.connect,
        resume: { succeeded: new Set([nodeToken('old-1'), nodeToken('old-2')]), failed: new Set(), failedList: [], attempts: new Map() },
      }),
    );
    run.start();
    expect(await clock.run(run.done)).toEqual({ kind: 'finished', succeeded: 2, failed: 0, desired: 2 });
    expect(fleet.requests).toHaveLength(0);
  });

  it('counts bytes the runtime could not attribute to one image once per node', async () => {
    const clock = new FakeClock();
    const connect = (): AgentConnection => ({
      warm(_req, opts) {
        const ev = (image: string, bytesKnown: boolean, done: number, total: number) =>
          opts.onEvent?.({ image: { image, state: 'RUNNING', bytesDone: done, bytesTotal: total, bytesKnown, elapsedSeconds: 0 }, event: 'image' });
        ev('a', false, 30, 200); // both report the node's aggregate
        ev('b', false, 40, 200);
        ev('c', true, 5, 10); // attributed to c alone
        return new Promise(() => undefined);
      },
      nodeStatus: () => Promise.reject(new Error('unused')),
      cancel: (req) => Promise.resolve({ taskId: req.taskId ?? '', outcome: 'CANCEL_OUTCOME_UNKNOWN_TASK' }),
    });
    const run = new WarmupRun(baseOptions(clock, { targets: targetsOf(['n']), connect }));
    run.start();
    await clock.advance(30);
    expect(run.snapshot()).toMatchObject({ bytesDone: 45, bytesTotal: 210 });
    run.cancel();
    // The fake agent never ends its call: the run gives it 2 s after cancel, then resolves.
    expect(await clock.run(run.done)).toEqual({ kind: 'cancelled' });
  });

  it('cancel aborts attempts in flight and resolves cancelled, leaving the tasks to their agents', async () => {
    const clock = new FakeClock();
    const fleet = fakeFleet(clock, (_n, req) => okResult(req.taskId ?? ''), 5000);
    const run = new WarmupRun(baseOptions(clock, { targets: targetsOf(['a']), connect: fleet.connect }));
    run.start();
    await clock.advance(30);
    expect(run.snapshot()).toMatchObject({ activeNodes: 1, bytesDone: 5, bytesTotal: 10 });
    run.cancel();
    expect(await clock.run(run.done)).toEqual({ kind: 'cancelled' });
    expect(run.snapshot()).toMatchObject({ activeNodes: 0, succeededNodes: 0, failedNodes: 0 });
    // A successor re-attaches with the same ids: nothing is cancelled on the agents.
    expect(fleet.cancels).toEqual([]);
  });

  it('stop cancels every task in flight on its agent, and only those', async () => {
    const clock = new FakeClock();
    const fleet = fakeFleet(clock, (_n, req) => okResult(req.taskId ?? ''), 5000);
    const quick = fakeFleet(clock, (_n, req) => okResult(req.taskId ?? ''), 0);
    const run = new WarmupRun(
      baseOptions(clock, {
        parallelism: 2,
        targets: targetsOf(['done', 'a', 'b', 'waiting']),
        connect: (ep) => (ep === 'done' ? quick.connect(ep) : fleet.connect(ep)),
      }),
    );
    run.start();
    await clock.advance(30);
    expect(run.tasksInFlight().sort((x, y) => x.node.localeCompare(y.node))).toEqual([
      { node: 'a', taskId: 'uid1-g1-a-a1', endpoint: 'a' },
      { node: 'b', taskId: 'uid1-g1-b-a1', endpoint: 'b' },
    ]);
    expect(await clock.run(run.stop())).toEqual({ kind: 'cancelled' });
    expect(fleet.cancels.sort()).toEqual(['uid1-g1-a-a1', 'uid1-g1-b-a1']);
    // The node that finished has nothing to cancel; the one never started was never sent.
    expect(quick.cancels).toEqual([]);
    expect(fleet.requests.map((r) => r.nodeName)).not.toContain('waiting');
    expect(run.tasksInFlight()).toEqual([]);
  });

  it('an attempt past timeoutSeconds is cancelled on its agent before the retry', async () => {
    const clock = new FakeClock();
    let attempts = 0;
    const fleet = fakeFleet(clock, (_n, req) => (++attempts === 1 ? new AgentCallError('Timeout', 'agent at a did not finish before the deadline') : okResult(req.taskId ?? '')));
    const run = new WarmupRun(baseOptions(clock, { targets: targetsOf(['a']), connect: fleet.connect }));
    run.start();
    expect(await clock.run(run.done)).toMatchObject({ kind: 'finished', succeeded: 1 });
    expect(fleet.calls).toEqual(['warm uid1-g1-a-a1', 'cancel uid1-g1-a-a1', 'warm uid1-g1-a-a2']);
  });

  it('a task that ended with a result, or that the agent refused, is not cancelled', async () => {
    const clock = new FakeClock();
    const fleet = fakeFleet(clock, (node, req) =>
      node === 'refuses' ? new AgentCallError('AgentRefused', 'agent at refuses refused the request', 9, 'WRONG_NODE') : failResult(req.taskId ?? '', 'UNAUTHORIZED', 'denied'),
    );
    const run = new WarmupRun(baseOptions(clock, { backoffLimit: 0, targets: targetsOf(['fails', 'refuses']), connect: fleet.connect }));
    run.start();
    expect(await clock.run(run.done)).toMatchObject({ kind: 'finished', failed: 2 });
    expect(fleet.cancels).toEqual([]);
  });

  it('a Warmup failed for good by one node cancels the tasks in flight on the others', async () => {
    const clock = new FakeClock();
    const fleet = fakeFleet(clock, (node, req) => (node === 'bad' ? failResult(req.taskId ?? '', 'PATH_OUTSIDE_ROOT', 'path /etc is outside every allowed root') : okResult(req.taskId ?? '')), 0);
    const slow = fakeFleet(clock, (_n, req) => okResult(req.taskId ?? ''), 5000);
    const run = new WarmupRun(baseOptions(clock, { targets: targetsOf(['slow', 'bad']), connect: (ep) => (ep === 'slow' ? slow.connect(ep) : fleet.connect(ep)) }));
    run.start();
    expect(await clock.run(run.done)).toMatchObject({ kind: 'fatal' });
    expect(slow.cancels).toEqual(['uid1-g1-slow-a1']);
  });

  it('cancelTasks reaches each agent once and counts what they answered, an unreachable one included', async () => {
    const fleet = fakeFleet(new FakeClock(), () => okResult(''));
    const counts = await cancelTasks(
      fleet.connect,
      [
        { node: 'a', taskId: 't-a', endpoint: 'a' },
        { node: 'b', taskId: 't-b', endpoint: 'b' },
        { node: 'unreachable', taskId: 't-u', endpoint: 'unreachable' },
      ],
      { timeoutMs: 1000, log, concurrency: 2 },
    );
    expect(fleet.cancels.sort()).toEqual(['t-a', 't-b', 't-u']);
    expect(Object.fromEntries(counts)).toEqual({ CANCEL_OUTCOME_CANCELLED: 2, Unreachable: 1 });
  });

  describe('a node that failed NO_SPACE', () => {
    const MiB = 2 ** 20;
    const FULL = 'cannot pull r/x:1: it needs at least 27.0 GiB but the image filesystem /var/lib/containerd has 12.0 GiB free';

    /** Node "full" fails NO_SPACE until its free bytes (one answer per NodeStatus, the last repeats) reach 400 MiB; others succeed. */
    function fullNode(clock: FakeClock, free: number[]) {
      const start = clock.now();
      const log: string[] = [];
      let statusCalls = 0;
      let current = free[0] ?? 0;
      const at = (): number => clock.now() - start;
      const connect = (endpoint: string): AgentConnection => ({
        warm(req) {
          log.push(`${at()} warm ${req.taskId ?? ''}`);
          const ok = endpoint !== 'full' || current >= 400 * MiB;
          return Promise.resolve(ok ? okResult(req.taskId ?? '') : failResult(req.taskId ?? '', 'NO_SPACE', FULL));
        },
        nodeStatus(req) {
          current = free[Math.min(statusCalls++, free.length - 1)] ?? 0;
          log.push(`${at()} status ${req.nodeName ?? ''} ${current / MiB}`);
          return Promise.resolve({ nodeName: req.nodeName ?? '', imageFilesystem: { mountpoint: '/var/lib/containerd', freeBytes: current } });
        },
        cancel: (req) => Promise.resolve({ taskId: req.taskId ?? '', outcome: 'CANCEL_OUTCOME_UNKNOWN_TASK' }),
      });
      return { connect, log };
    }

    it('is not retried until its free space grows, then at once', async () => {
      const clock = new FakeClock();
      const node = fullNode(clock, [100 * MiB, 100 * MiB, 100 * MiB, 400 * MiB]);
      const run = new WarmupRun(baseOptions(clock, { targets: targetsOf(['full']), connect: node.connect, backoffBaseMs: 1_000, timeoutMs: 3_600_000 }));
      run.start();
      expect(await clock.run(run.done)).toEqual({ kind: 'finished', succeeded: 1, failed: 0, desired: 1 });
      // Free bytes right after the failure, then after 1, 2 and 4 s; the retry follows the growth.
      expect(node.log).toEqual([
        '0 warm uid1-g1-full-a1',
        '0 status full 100',
        '1000 status full 100',
        '3000 status full 100',
        '7000 status full 400',
        '7000 warm uid1-g1-full-a2',
      ]);
    });

    it('fails with NoSpace, without pulling again, when its free space does not grow within the attempt timeout', async () => {
      const clock = new FakeClock();
      const node = fullNode(clock, [100 * MiB]);
      const failed: string[] = [];
      const run = new WarmupRun(
        baseOptions(clock, {
          targets: targetsOf(['full', 'fine']),
          connect: node.connect,
          backoffBaseMs: 1_000,
          timeoutMs: 60_000,
          hooks: { nodeFailed: (f) => failed.push(`${f.name}: ${f.reason}: ${f.message}`) },
        }),
      );
      run.start();
      expect(await clock.run(run.done)).toEqual({ kind: 'finished', succeeded: 1, failed: 1, desired: 2 });
      expect(node.log.filter((l) => l.includes(' warm ') && l.includes('-full-'))).toEqual(['0 warm uid1-g1-full-a1']);
      expect(node.log.filter((l) => l.includes(' status ')).at(-1)).toBe('60000 status full 100');
      expect(failed).toEqual([`full: NoSpace: ${FULL}`]);
      expect(run.snapshot().failedNodeList).toEqual([{ name: 'full', reason: 'NoSpace', message: FULL }]);
    });
  });
});

describe('WarmupRun with keepWarm', () => {
  /** A fake fleet whose nodes hold images: a warm puts the image there, a check only asks. */
  function holdingFleet(clock: FakeClock) {
    const present = new Set<string>();
    const log: string[] = [];
    const fleet = fakeFleet(clock, (node, req) => {
      if (req.checkOnly) {
        log.push(`${clock.now()} check ${node}`);
        const here = present.has(node);
        return { ...okResult(req.taskId ?? ''), succeeded: here, images: [{ image: 'r/x:1', state: here ? 'PRESENT' : 'MISSING', imageRef: '', sizeBytes: 0, seconds: 0, failure: null, pinned: false, repoDigest: '', pinLabel: 'PIN_LABEL_UNSPECIFIED' }] };
      }
      log.push(`${clock.now()} warm ${node} ${req.taskId ?? ''}`);
      present.add(node);
      return okResult(req.taskId ?? '');
    });
    return { ...fleet, present, log };
  }

  it('never finishes, checks each warm node every recheck interval, and warms again a node whose image is gone', async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const fleet = holdingFleet(clock);
    const names = ['a', 'b'];
    const run = new WarmupRun(baseOptions(clock, { targets: targetsOf(names), connect: fleet.connect, keepWarm: { recheckMs: 5000, minResidentPercent: 90 } }));
    run.start();
    await clock.until(() => run.snapshot().succeededNodes === 2);
    expect(fleet.log.map((l) => l.replace(/^\d+ /, ''))).toEqual(['warm a uid1-g1-a-a1', 'warm b uid1-g1-b-a1']);

    // One recheck round: both nodes asked (check only, no credentials, the residency threshold passed on).
    await clock.advance(5100);
    expect(fleet.log.filter((l) => l.includes('check')).map((l) => l.split(' ').slice(1).join(' '))).toEqual(['check a', 'check b']);
    const check = fleet.requests.find((r) => r.checkOnly);
    expect(check).toMatchObject({ checkOnly: true, minResidentPercent: 90, credentials: [] });
    expect(run.snapshot().succeededNodes).toBe(2);

    // The image leaves node b: the next check finds it gone, b is cold, then warmed in a new round.
    fleet.present.delete('b');
    const seen: number[] = [];
    await clock.until(() => {
      seen.push(run.snapshot().succeededNodes);
      return fleet.log.filter((l) => l.includes('warm b')).length === 2;
    });
    expect(seen).toContain(1);
    await clock.until(() => run.snapshot().succeededNodes === 2);
    const rewarm = fleet.log.filter((l) => l.includes('warm b'))[1] ?? '';
    const at = Number(rewarm.split(' ')[0]) - start;
    expect(at).toBeGreaterThanOrEqual(10_000);
    expect(at).toBeLessThan(10_500);
    // A new task id: the agent's remembered result of the first warm is not joined.
    expect(rewarm).toMatch(/ uid1-g1-b-r[0-9a-z]+-a1$/);
    let done = false;
    void run.done.then(() => (done = true));
    await clock.advance(60_000);
    expect(done).toBe(false);
    await run.stop();
  });

  it('warms a node that joins later and drops one that leaves, cancelling its work, never failing it', async () => {
    const clock = new FakeClock();
    const fleet = holdingFleet(clock);
    let names = ['a'];
    const run = new WarmupRun(baseOptions(clock, { targets: () => targetsOf(names)(), connect: fleet.connect, keepWarm: { recheckMs: 5000, minResidentPercent: 90 } }));
    run.start();
    await clock.until(() => run.snapshot().succeededNodes === 1);
    names = ['a', 'c'];
    await clock.until(() => run.snapshot().succeededNodes === 2);
    expect(fleet.present.has('c')).toBe(true);
    names = ['c'];
    await clock.advance(50);
    expect(run.snapshot()).toMatchObject({ desiredNodes: 1, succeededNodes: 1, failedNodes: 0, record: { succeeded: nodeToken('c') } });
    await run.stop();
  });

  it('tries a failed node again at its next recheck, and recheckAll checks every warm node at once', async () => {
    const clock = new FakeClock();
    let refuse = true;
    const log: string[] = [];
    const fleet = fakeFleet(clock, (node, req) => {
      log.push(`${req.checkOnly ? 'check' : 'warm'} ${node}`);
      if (node === 'b' && refuse && !req.checkOnly) return failResult(req.taskId ?? '', 'UNAUTHORIZED', 'refused');
      return okResult(req.taskId ?? '');
    });
    const run = new WarmupRun(baseOptions(clock, { targets: targetsOf(['a', 'b']), connect: fleet.connect, backoffLimit: 0, keepWarm: { recheckMs: 60_000, minResidentPercent: 90 } }));
    run.start();
    await clock.until(() => run.snapshot().failedNodes === 1);
    expect(run.snapshot().failedNodeList).toEqual([{ name: 'b', reason: 'RegistryUnauthorized', message: 'refused' }]);
    refuse = false;
    run.recheckAll();
    await clock.until(() => run.snapshot().succeededNodes === 2);
    expect(run.snapshot()).toMatchObject({ failedNodes: 0, failedNodeList: [] });
    // Well before the 60 s recheck: a and b were both checked or warmed again at once.
    expect(clock.now() - Date.parse('2025-01-01T00:00:00.000Z')).toBeLessThan(1000);
    expect(log).toEqual(['warm a', 'warm b', 'check a', 'warm b']);
    await run.stop();
  });
});

describe('WarmupRun: one digest on every node', () => {
  const TAG = 'reg.io/app:1';
  const A = `sha256:${'a'.repeat(64)}`;
  const B = `sha256:${'b'.repeat(64)}`;

  /**
   * A fake fleet over a fake registry whose tag can move: a node given the tag gets what the tag
   * names at that moment and reports its repo digest; a node given a digest gets that digest.
   * `held` says which digest of reg.io/app each node ended with.
   */
  function registryFleet(clock: FakeClock, opts: { reportDigest?: boolean; fail?: (node: string) => boolean } = {}) {
    const registry = { tag: A };
    const held = new Map<string, string>();
    const fleet = fakeFleet(clock, (node, req) => {
      if (opts.fail?.(node)) return failResult(req.taskId ?? '', 'UNAUTHORIZED', `registry reg.io refused the credentials for ${TAG}`);
      const images = (req.images ?? []).map((i) => {
        const image = i.image ?? '';
        const digest = image.includes('@') ? (image.split('@')[1] ?? '') : registry.tag;
        const repo = image.split(/[@:]/)[0] ?? '';
        if (!req.checkOnly && repo === 'reg.io/app') held.set(node, digest);
        const repoDigest = opts.reportDigest === false ? '' : `${repo}@${digest}`;
        return { image, state: 'DONE' as const, imageRef: '', sizeBytes: 0, seconds: 0, failure: null, pinned: false, repoDigest, pinLabel: 'PIN_LABEL_UNSPECIFIED' as const };
      });
      // The tag moves as soon as the first node has pulled it.
      registry.tag = B;
      return { ...okResult(req.taskId ?? ''), images };
    });
    return { ...fleet, registry, held };
  }

  it('resolves a tag on one node, then sends its digest to every other node at full parallelism', async () => {
    const clock = new FakeClock();
    const fleet = registryFleet(clock);
    const pinned = `reg.io/other@${B}`;
    const names = ['n0', 'n1', 'n2', 'n3'];
    const run = new WarmupRun(baseOptions(clock, { images: [{ image: TAG }, { image: pinned }], parallelism: 3, targets: targetsOf(names), connect: fleet.connect }));
    expect(run.snapshot().images).toEqual([{ image: TAG }, { image: pinned, digest: B }]);
    run.start();
    await clock.run(run.done);
    // Every node holds the bytes the tag named when the first node pulled it, though it moved since.
    expect(new Set(fleet.held.values())).toEqual(new Set([A]));
    expect(fleet.held.size).toBe(4);
    expect(fleet.requests.map((r) => r.images?.map((i) => i.image))).toEqual([
      [TAG, pinned],
      [`reg.io/app@${A}`, pinned],
      [`reg.io/app@${A}`, pinned],
      [`reg.io/app@${A}`, pinned],
    ]);
    expect(fleet.maxActive()).toBe(3);
    // The agents name the image by its tag as well; an image given by digest is sent as it is.
    expect(fleet.requests[1]?.images).toEqual([{ image: `reg.io/app@${A}`, tag: TAG }, { image: pinned }]);
    expect(run.snapshot().images).toEqual([{ image: TAG, digest: A }, { image: pinned, digest: B }]);
  });

  it('never has two nodes on the tag at once: when the first node fails, the next one resolves it', async () => {
    const clock = new FakeClock();
    const fleet = registryFleet(clock, { fail: (node) => node === 'n0' });
    const run = new WarmupRun(baseOptions(clock, { images: [{ image: TAG }], parallelism: 5, backoffLimit: 0, targets: targetsOf(['n0', 'n1', 'n2']), connect: fleet.connect }));
    run.start();
    const outcome = await clock.run(run.done);
    expect(outcome).toEqual({ kind: 'finished', succeeded: 2, failed: 1, desired: 3 });
    const onTag = fleet.requests.filter((r) => r.images?.[0]?.image === TAG).map((r) => r.nodeName);
    expect(onTag).toEqual(['n0', 'n1']);
    expect(fleet.calls.slice(0, 2)).toEqual(['warm uid1-g1-n0-a1', 'warm uid1-g1-n1-a1']);
    expect(fleet.held.get('n2')).toBe(fleet.held.get('n1'));
  });

  it('leaves the tag to each node when the runtime reports no repo digest', async () => {
    const clock = new FakeClock();
    const fleet = registryFleet(clock, { reportDigest: false });
    const run = new WarmupRun(baseOptions(clock, { images: [{ image: TAG }], parallelism: 3, targets: targetsOf(['n0', 'n1', 'n2', 'n3']), connect: fleet.connect }));
    run.start();
    await clock.run(run.done);
    expect(fleet.requests.every((r) => r.images?.[0]?.image === TAG)).toBe(true);
    expect(fleet.maxActive()).toBe(3);
    expect(run.snapshot().images).toEqual([{ image: TAG }]);
  });

  it('a run resumed from status sends the digest it recorded, with no node resolving the tag again', async () => {
    const clock = new FakeClock();
    const fleet = registryFleet(clock);
    fleet.registry.tag = B;
    const resume = { succeeded: new Set([nodeToken('n0')]), failed: new Set<string>(), failedList: [], attempts: new Map<string, number>(), images: [{ image: TAG, digest: A }] };
    const run = new WarmupRun(baseOptions(clock, { images: [{ image: TAG }], parallelism: 3, resume, targets: targetsOf(['n0', 'n1', 'n2']), connect: fleet.connect }));
    run.start();
    await clock.run(run.done);
    expect(fleet.requests.map((r) => r.images?.[0]?.image)).toEqual([`reg.io/app@${A}`, `reg.io/app@${A}`]);
    expect(fleet.maxActive()).toBe(2);
  });

  it('keepWarm: checks ask for the digest; a schedule tick (rewarmAll) resolves the moved tag again', async () => {
    const clock = new FakeClock();
    const fleet = registryFleet(clock);
    const run = new WarmupRun(baseOptions(clock, { images: [{ image: TAG, pullPolicy: 'ALWAYS' }], targets: targetsOf(['n0', 'n1']), connect: fleet.connect, keepWarm: { recheckMs: 5000, minResidentPercent: 90 } }));
    run.start();
    await clock.until(() => run.snapshot().succeededNodes === 2);
    await clock.advance(5100);
    expect(fleet.requests.filter((r) => r.checkOnly).map((r) => r.images?.[0]?.image)).toEqual([`reg.io/app@${A}`, `reg.io/app@${A}`]);
    expect([...fleet.held.values()]).toEqual([A, A]);

    // The tag now names B: the next tick resolves it once more, and both nodes end with B.
    const before = fleet.requests.length;
    run.rewarmAll();
    expect(run.snapshot().images).toEqual([{ image: TAG }]);
    await clock.until(() => run.snapshot().succeededNodes === 2 && fleet.held.get('n0') === B && fleet.held.get('n1') === B);
    const warms = fleet.requests.slice(before).filter((r) => !r.checkOnly).map((r) => r.images?.[0]?.image);
    expect(warms).toEqual([TAG, `reg.io/app@${B}`]);
    expect(run.snapshot().images).toEqual([{ image: TAG, digest: B }]);
    await run.stop();
  });
});

describe('WarmupRun: per-node paths (claims resolved for each node)', () => {
  const p = (path: string) => ({ path, include: [], exclude: [] });

  it('sends each node its own paths under a task id that names their variant; a node with nothing to read is done without a task', async () => {
    const clock = new FakeClock();
    const fleet = fakeFleet(clock, (_n, req) => okResult(req.taskId ?? ''));
    const own = new Map<string, NodeTarget>([
      ['a', { endpoint: 'a', paths: [p('/pods/u1/volumes/kubernetes.io~nfs/pv')] }],
      ['b', { endpoint: 'b', paths: [] }],
      ['c', { endpoint: 'c', paths: [p('/pods/u1/volumes/kubernetes.io~nfs/pv')] }],
    ]);
    const run = new WarmupRun(baseOptions(clock, { images: [], targets: () => own, connect: fleet.connect }));
    run.start();
    expect(await clock.run(run.done)).toEqual({ kind: 'finished', succeeded: 3, failed: 0, desired: 3 });
    expect(fleet.requests.map((r) => r.nodeName).sort()).toEqual(['a', 'c']);
    const ids = fleet.requests.map((r) => r.taskId ?? '').sort();
    expect(ids[0]).toMatch(/^uid1-g1-a-v[A-Za-z0-9]{8}-a1$/);
    // Equal paths, equal variant.
    expect(ids[1]?.replace('-c-', '-a-')).toBe(ids[0]);
    expect(fleet.requests[0]?.paths).toEqual([p('/pods/u1/volumes/kubernetes.io~nfs/pv')]);
  });

  it('keepWarm: a warm node whose paths change is checked at once with the new paths and warmed again under another task id', async () => {
    const clock = new FakeClock();
    const resident = new Set<string>();
    const fleet = fakeFleet(clock, (node, req) => {
      const paths = (req.paths ?? []).map((x) => x.path ?? '');
      if (req.checkOnly) return { ...okResult(req.taskId ?? ''), succeeded: paths.every((x) => resident.has(`${node}:${x}`)) };
      for (const x of paths) resident.add(`${node}:${x}`);
      return okResult(req.taskId ?? '');
    });
    const start = clock.now();
    let paths = [p('/data/one')];
    const run = new WarmupRun(baseOptions(clock, { images: [], targets: () => new Map([['a', { endpoint: 'a', paths }]]), connect: fleet.connect, keepWarm: { recheckMs: 60_000, minResidentPercent: 90 } }));
    run.start();
    await clock.until(() => run.snapshot().succeededNodes === 1);
    paths = [p('/data/one'), p('/data/two')];
    await clock.until(() => resident.has('a:/data/two'));
    const warms = fleet.requests.filter((r) => !r.checkOnly);
    expect(warms).toHaveLength(2);
    expect(warms[1]?.taskId).not.toBe(warms[0]?.taskId);
    expect(fleet.requests.some((r) => r.checkOnly && r.paths?.length === 2)).toBe(true);
    // Well before the 60 s recheck.
    expect(clock.now() - start).toBeLessThan(60_000);
    await run.stop();
  });
});
