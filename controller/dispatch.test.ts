import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { AgentCallError, type AgentConnection, type WarmOptions } from './agent-client.js';
import { nodeToken } from './api/types.js';
import { WarmupRun, taskId, type NodeTarget, type RunOptions } from './dispatch.js';
import type { WarmRequest } from '../proto/gen/stoker/v1/WarmRequest.js';
import type { WarmResult__Output } from '../proto/agent.js';

const log = pino({ level: 'silent' });

function okResult(id: string): WarmResult__Output {
  return { taskId: id, succeeded: true, images: [], paths: [], failure: null, seconds: 0 };
}

function failResult(id: string, code: 'UNAUTHORIZED' | 'PATH_OUTSIDE_ROOT', message: string): WarmResult__Output {
  return { taskId: id, succeeded: false, images: [], paths: [], failure: { code, message }, seconds: 0 };
}

/** A fake agent fleet: records every request, answers with `answer(node, request)` after `delayMs`. */
function fakeFleet(answer: (node: string, req: WarmRequest) => WarmResult__Output | Error, delayMs = 20) {
  const requests: WarmRequest[] = [];
  let active = 0;
  let maxActive = 0;
  const connect = (endpoint: string): AgentConnection => ({
    async warm(req: WarmRequest, opts: WarmOptions) {
      requests.push(req);
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        opts.onEvent?.({ image: { image: 'x', state: 'RUNNING', bytesDone: 5, bytesTotal: 10, bytesKnown: true, elapsedSeconds: 0 }, event: 'image' });
        await new Promise<void>((r) => {
          const t = setTimeout(r, delayMs);
          opts.signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
        });
        if (opts.signal.aborted) throw new AgentCallError('Cancelled', 'cancelled');
        const a = answer(endpoint, req);
        if (a instanceof Error) throw a;
        return a;
      } finally {
        active--;
      }
    },
    nodeStatus: () => Promise.reject(new Error('not used')),
  });
  return { connect, requests, maxActive: () => maxActive };
}

function targetsOf(names: string[], live = names): () => Map<string, NodeTarget> {
  return () => new Map(names.map((n) => [n, { endpoint: live.includes(n) ? n : undefined }]));
}

function baseOptions(over: Partial<RunOptions>): RunOptions {
  return {
    uid: 'uid1',
    generation: 1,
    images: [{ image: 'r/x:1', pullPolicy: 'IF_NOT_PRESENT' }],
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
    tickMs: 5,
    ...over,
  };
}

describe('WarmupRun', () => {
  it('warms every node with deterministic task ids, never more than parallelism at once', async () => {
    const names = Array.from({ length: 7 }, (_, i) => `n${i}`);
    const fleet = fakeFleet((_n, req) => okResult(req.taskId ?? ''));
    const run = new WarmupRun(baseOptions({ parallelism: 2, targets: targetsOf(names), connect: fleet.connect }));
    run.start();
    const outcome = await run.done;
    expect(outcome).toEqual({ kind: 'finished', succeeded: 7, failed: 0, desired: 7 });
    expect(fleet.maxActive()).toBe(2);
    expect(fleet.requests.map((r) => r.taskId).sort()).toEqual(names.map((n) => taskId('uid1', 1, n, 1)).sort());
    expect(fleet.requests.every((r) => r.nodeName === names.find((n) => r.taskId?.includes(`-${n}-`)))).toBe(true);
    const s = run.snapshot();
    expect(s.record.succeeded.length).toBe(7 * 8);
  });

  it('retries with new attempt ids up to backoffLimit, then records the reason', async () => {
    const fleet = fakeFleet((node, req) => (node === 'bad' ? failResult(req.taskId ?? '', 'UNAUTHORIZED', 'registry r refused the credentials for r/x:1') : okResult(req.taskId ?? '')));
    const failed: string[] = [];
    const run = new WarmupRun(baseOptions({ targets: targetsOf(['good', 'bad']), connect: fleet.connect, hooks: { nodeFailed: (f) => failed.push(`${f.name}:${f.reason}`) } }));
    run.start();
    expect(await run.done).toMatchObject({ kind: 'finished', succeeded: 1, failed: 1 });
    expect(fleet.requests.filter((r) => r.nodeName === 'bad').map((r) => r.taskId)).toEqual([1, 2, 3].map((a) => taskId('uid1', 1, 'bad', a)));
    expect(failed).toEqual(['bad:RegistryUnauthorized']);
    expect(run.snapshot().failedNodeList[0]).toMatchObject({ name: 'bad', reason: 'RegistryUnauthorized', message: expect.stringContaining('r/x:1') as string });
  });

  it('stops the whole run on bad input reported by an agent', async () => {
    const fleet = fakeFleet((_n, req) => failResult(req.taskId ?? '', 'PATH_OUTSIDE_ROOT', 'path /etc is outside every allowed root'));
    const run = new WarmupRun(baseOptions({ parallelism: 1, targets: targetsOf(['a', 'b', 'c']), connect: fleet.connect }));
    run.start();
    expect(await run.done).toEqual({ kind: 'fatal', problem: { reason: 'PathOutsideRoot', message: 'path /etc is outside every allowed root' } });
    expect(fleet.requests).toHaveLength(1);
  });

  it('stops the whole run when an agent refuses the request naming a bad-input code', async () => {
    const fleet = fakeFleet(() => new AgentCallError('AgentRefused', 'agent at a refused the request: image reference "Bad" is malformed', 3, 'INVALID_REFERENCE'));
    const run = new WarmupRun(baseOptions({ parallelism: 1, targets: targetsOf(['a', 'b']), connect: fleet.connect }));
    run.start();
    const outcome = await run.done;
    expect(outcome).toMatchObject({ kind: 'fatal', problem: { reason: 'InvalidImageReference' } });
    expect(fleet.requests).toHaveLength(1);
  });

  it('fails a node whose agent never shows up, and an agent that does not answer after retries', async () => {
    const fleet = fakeFleet((node) => (node === 'silent' ? new AgentCallError('AgentUnavailable', 'agent at silent is unavailable') : okResult('')));
    const run = new WarmupRun(baseOptions({ targets: targetsOf(['ok', 'silent', 'noagent'], ['ok', 'silent']), connect: fleet.connect }));
    run.start();
    expect(await run.done).toMatchObject({ kind: 'finished', succeeded: 1, failed: 2 });
    const reasons = Object.fromEntries(run.snapshot().failedNodeList.map((f) => [f.name, f.reason]));
    expect(reasons).toEqual({ silent: 'AgentUnavailable', noagent: 'AgentUnavailable' });
  });

  it('fails a node deleted mid-task with NodeDeleted', async () => {
    let exists = true;
    const names = ['stay', 'gone'];
    const fleet = fakeFleet((_n, req) => okResult(req.taskId ?? ''), 300);
    const run = new WarmupRun(
      baseOptions({
        targets: () => new Map(names.filter((n) => n !== 'gone' || exists).map((n) => [n, { endpoint: n }])),
        nodeExists: (n) => n !== 'gone' || exists,
        connect: fleet.connect,
      }),
    );
    run.start();
    setTimeout(() => (exists = false), 50);
    expect(await run.done).toMatchObject({ kind: 'finished', succeeded: 1, failed: 1 });
    expect(run.snapshot().failedNodeList).toEqual([{ name: 'gone', reason: 'NodeDeleted', message: 'node gone was deleted' }]);
  });

  it('resumes from status: recorded nodes are not redone, in-flight nodes keep their attempt', async () => {
    const fleet = fakeFleet((_n, req) => okResult(req.taskId ?? ''));
    const run = new WarmupRun(
      baseOptions({
        targets: targetsOf(['done', 'inflight', 'new']),
        connect: fleet.connect,
        resume: { succeeded: new Set([nodeToken('done')]), failed: new Set(), failedList: [], attempts: new Map([['inflight', 2]]) },
      }),
    );
    run.start();
    expect(await run.done).toMatchObject({ kind: 'finished', succeeded: 3, failed: 0, desired: 3 });
    expect(fleet.requests.map((r) => r.taskId).sort()).toEqual([taskId('uid1', 1, 'inflight', 2), taskId('uid1', 1, 'new', 1)].sort());
  });

  it('fails a started node whose agent then disappears from the live set', async () => {
    let live = true;
    const fleet = fakeFleet((_n, req) => (live ? new AgentCallError('AgentUnavailable', 'agent at a is unavailable') : okResult(req.taskId ?? '')));
    const run = new WarmupRun(
      baseOptions({
        backoffBaseMs: 50,
        targets: () => (live ? new Map([['a', { endpoint: 'a' }]]) : new Map<string, NodeTarget>()),
        connect: fleet.connect,
      }),
    );
    run.start();
    await new Promise((r) => setTimeout(r, 40));
    live = false; // the Lease lapsed: the node is no longer a target, but it was started
    expect(await run.done).toMatchObject({ kind: 'finished', failed: 1 });
    expect(run.snapshot().failedNodeList[0]).toMatchObject({ name: 'a', reason: 'AgentUnavailable' });
  });

  it('finishes when every target is gone, counting what status had recorded', async () => {
    const fleet = fakeFleet((_n, req) => okResult(req.taskId ?? ''));
    const run = new WarmupRun(
      baseOptions({
        targets: targetsOf([]),
        connect: fleet.connect,
        resume: { succeeded: new Set([nodeToken('old-1'), nodeToken('old-2')]), failed: new Set(), failedList: [], attempts: new Map() },
      }),
    );
    run.start();
    expect(await run.done).toEqual({ kind: 'finished', succeeded: 2, failed: 0, desired: 2 });
    expect(fleet.requests).toHaveLength(0);
  });

  it('counts bytes the runtime could not attribute to one image once per node', async () => {
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
    });
    const run = new WarmupRun(baseOptions({ targets: targetsOf(['n']), connect }));
    run.start();
    await new Promise((r) => setTimeout(r, 30));
    expect(run.snapshot()).toMatchObject({ bytesDone: 45, bytesTotal: 210 });
    run.cancel();
  });

  it('cancel aborts attempts in flight and resolves cancelled', async () => {
    const fleet = fakeFleet((_n, req) => okResult(req.taskId ?? ''), 5000);
    const run = new WarmupRun(baseOptions({ targets: targetsOf(['a']), connect: fleet.connect }));
    run.start();
    await new Promise((r) => setTimeout(r, 30));
    expect(run.snapshot()).toMatchObject({ activeNodes: 1, bytesDone: 5, bytesTotal: 10 });
    run.cancel();
    expect(await run.done).toEqual({ kind: 'cancelled' });
  });
});
