import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentProto, type AgentHandlers } from '../proto/agent.js';
import { makeCertificates, type Certificates } from '../test/support/certs.js';
import { AgentCallError, AgentClientPool } from './agent-client.js';

/** A fake agent: a real grpc-js server over mutual TLS whose Warm behaviour depends on the task id. */
function fakeAgentHandlers(): AgentHandlers {
  return {
    Warm(call) {
      const id = call.request.taskId;
      if (id === 'refuse') {
        const md = new grpc.Metadata();
        md.set('stoker-error-code', 'INVALID_REFERENCE');
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'image reference "Bad/Ref" is malformed', metadata: md });
        return;
      }
      if (id === 'hang') return; // never answers
      call.write({ image: { image: 'r/x:1', state: 'RUNNING', bytesDone: 1, bytesTotal: 2, bytesKnown: true } });
      call.write({ result: { taskId: id, succeeded: true } });
      call.end();
    },
    NodeStatus(call, cb) {
      cb(null, { nodeName: call.request.nodeName, runtimeReady: true, runtimeName: 'fake' });
    },
    Cancel(call, cb) {
      if (call.request.nodeName !== 'n') {
        const md = new grpc.Metadata();
        md.set('stoker-error-code', 'WRONG_NODE');
        cb({ code: grpc.status.FAILED_PRECONDITION, details: `the request is for node "${call.request.nodeName}"`, metadata: md });
        return;
      }
      cb(null, { taskId: call.request.taskId, outcome: call.request.taskId === 'running' ? 'CANCEL_OUTCOME_CANCELLED' : 'CANCEL_OUTCOME_UNKNOWN_TASK' });
    },
    Release(call, cb) {
      cb(null, { nodeName: call.request.nodeName, images: call.request.images.map((image) => ({ image, removed: true, sizeBytes: 10 })) });
    },
  };
}

describe('AgentClientPool', () => {
  let dir: string;
  let certs: Certificates;
  let server: grpc.Server;
  let endpoint: string;
  let pool: AgentClientPool;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-agent-client-'));
    certs = await makeCertificates(dir);
    server = new grpc.Server();
    server.addService(agentProto().Agent.service, fakeAgentHandlers());
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(certs.caCertPem), [{ cert_chain: Buffer.from(certs.serverCertPem), private_key: Buffer.from(certs.serverKeyPem) }], true);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
    endpoint = `127.0.0.1:${port}`;
    pool = new AgentClientPool({ ca: Buffer.from(certs.caCertPem), cert: Buffer.from(certs.clientCertPem), key: Buffer.from(certs.clientKeyPem) });
  });

  afterAll(async () => {
    pool?.close();
    server?.forceShutdown();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('follows a Warm stream to its result, passing progress on', async () => {
    const seen: string[] = [];
    const result = await pool.get(endpoint).warm({ taskId: 't1', nodeName: 'n' }, { signal: new AbortController().signal, timeoutMs: 5000, onEvent: (e) => seen.push(e.event ?? '') });
    expect(result).toMatchObject({ taskId: 't1', succeeded: true });
    expect(seen).toEqual(['image']);
  });

  it('carries the ErrorCode an agent names when it refuses', async () => {
    const err = await pool.get(endpoint).warm({ taskId: 'refuse', nodeName: 'n' }, { signal: new AbortController().signal, timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentCallError);
    expect(err).toMatchObject({ reason: 'AgentRefused', errorCode: 'INVALID_REFERENCE' });
    expect((err as Error).message).toContain('"Bad/Ref"');
  });

  it('ends a call at its deadline with Timeout, and on abort with Cancelled', async () => {
    const timeout = await pool.get(endpoint).warm({ taskId: 'hang', nodeName: 'n' }, { signal: new AbortController().signal, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(timeout).toMatchObject({ reason: 'Timeout' });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const cancelled = await pool.get(endpoint).warm({ taskId: 'hang', nodeName: 'n' }, { signal: ac.signal, timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(cancelled).toMatchObject({ reason: 'Cancelled' });
  });

  it('answers NodeStatus, and reports an agent nobody listens on as unavailable', async () => {
    expect(await pool.get(endpoint).nodeStatus({ nodeName: 'n1' }, { timeoutMs: 5000 })).toMatchObject({ nodeName: 'n1', runtimeName: 'fake' });
    const err = await pool.get('127.0.0.1:1').nodeStatus({ nodeName: 'n1' }, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentCallError);
    expect(['AgentUnavailable', 'Timeout']).toContain((err as AgentCallError).reason);
  });

  it('asks an agent to release images and reports what it removed', async () => {
    const res = await pool.get(endpoint).release?.({ nodeName: 'n', images: ['r/x:1'] }, { timeoutMs: 5000 });
    expect(res?.images).toEqual([{ image: 'r/x:1', removed: true, sizeBytes: 10, failure: null }]);
  });

  it('cancels a task and reports what the agent found; a refusal carries its ErrorCode', async () => {
    expect(await pool.get(endpoint).cancel({ taskId: 'running', nodeName: 'n' }, { timeoutMs: 5000 })).toEqual({ taskId: 'running', outcome: 'CANCEL_OUTCOME_CANCELLED' });
    expect(await pool.get(endpoint).cancel({ taskId: 'gone', nodeName: 'n' }, { timeoutMs: 5000 })).toEqual({ taskId: 'gone', outcome: 'CANCEL_OUTCOME_UNKNOWN_TASK' });
    const err = await pool.get(endpoint).cancel({ taskId: 'running', nodeName: 'other' }, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'AgentRefused', errorCode: 'WRONG_NODE' });
  });

  it('gets nothing from an agent whose certificate another CA signed', async () => {
    const foreign = new AgentClientPool({ ca: Buffer.from(certs.foreignCaCertPem), cert: Buffer.from(certs.clientCertPem), key: Buffer.from(certs.clientKeyPem) });
    try {
      const err = await foreign.get(endpoint).warm({ taskId: 't2', nodeName: 'n' }, { signal: new AbortController().signal, timeoutMs: 3000 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ reason: 'AgentUnavailable' });
    } finally {
      foreign.close();
    }
  });

  it('closes the channel of an agent left unused for idleMs, never one with a call in flight', async () => {
    let now = 0;
    const tls = { ca: Buffer.from(certs.caCertPem), cert: Buffer.from(certs.clientCertPem), key: Buffer.from(certs.clientKeyPem) };
    const p = new AgentClientPool(tls, { idleMs: 60_000, now: () => now });
    // The same agent under a second address, as after it moved.
    const moved = endpoint.replace('127.0.0.1', 'localhost');
    const run = (ep: string, taskId: string, signal = new AbortController().signal) => p.get(ep).warm({ taskId, nodeName: 'n' }, { signal, timeoutMs: 60_000 });
    try {
      await run(endpoint, 't3');
      const ac = new AbortController();
      const hanging = run(moved, 'hang', ac.signal).catch((e: unknown) => e);
      now = 60_000;
      await run(endpoint, 't4');
      expect(p.endpoints.sort()).toEqual([endpoint, moved].sort());
      ac.abort();
      expect(await hanging).toMatchObject({ reason: 'Cancelled' });
      now = 119_999;
      await run(endpoint, 't5');
      expect(p.endpoints.sort()).toEqual([endpoint, moved].sort());
      now = 120_000;
      await run(endpoint, 't6');
      expect(p.endpoints).toEqual([endpoint]);
      // Asked for again, the agent gets a new channel.
      expect(await run(moved, 't7')).toMatchObject({ taskId: 't7', succeeded: true });
    } finally {
      p.close();
    }
  });
});
