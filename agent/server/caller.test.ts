import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentProto, type AgentHandlers } from '../../proto/agent.js';
import { createLogger } from '../../proto/common/log.js';
import { makeCertificates, type Certificates } from '../../test/support/certs.js';
import { certificateNames, controllerOnly } from './caller.js';
import { startGrpcServer, type GrpcServerHandle } from './grpc.js';

describe('certificateNames', () => {
  it('gives the subject CN, then DNS names and URIs; not IP addresses or e-mail', () => {
    expect(
      certificateNames({
        subject: { CN: 'stoker-controller' },
        subjectaltname: 'DNS:a.example, IP Address:10.0.0.1, email:x@example.com, URI:spiffe://cluster.local/ns/s/sa/c',
      }),
    ).toEqual(['stoker-controller', 'a.example', 'spiffe://cluster.local/ns/s/sa/c']);
  });

  it('reads every CN when the subject has several, and no SAN text at all', () => {
    expect(certificateNames({ subject: { CN: ['one', 'two'] }, subjectaltname: undefined as never })).toEqual(['one', 'two']);
  });

  it('reads a quoted value as one name: a comma inside cannot add another', () => {
    expect(certificateNames({ subject: {}, subjectaltname: 'DNS:"evil, DNS:stoker-controller", DNS:b' })).toEqual(['evil, DNS:stoker-controller', 'b']);
  });
});

/** Handlers that record being reached (the interceptor must stop refused calls before them). */
function recordingHandlers(reached: string[]): AgentHandlers {
  return {
    Warm(call) {
      reached.push(`Warm ${call.request.taskId}`);
      call.write({ result: { taskId: call.request.taskId, succeeded: true } });
      call.end();
    },
    NodeStatus(call, cb) {
      reached.push('NodeStatus');
      cb(null, { nodeName: call.request.nodeName, runtimeReady: true });
    },
    Cancel(call, cb) {
      reached.push(`Cancel ${call.request.taskId}`);
      cb(null, { taskId: call.request.taskId, outcome: 'CANCEL_OUTCOME_CANCELLED' });
    },
    Release(call, cb) {
      reached.push('Release');
      cb(null, { nodeName: call.request.nodeName });
    },
  };
}

const SPIFFE_ID = 'spiffe://cluster.local/ns/stoker/sa/controller';

describe('controllerOnly on a real server over mutual TLS', () => {
  let dir: string;
  let certs: Certificates;
  let sanCerts: Certificates;
  let uriCerts: Certificates;
  let server: GrpcServerHandle;
  let spiffeServer: GrpcServerHandle;
  const reached: string[] = [];
  const Agent = agentProto().Agent;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-caller-'));
    certs = await makeCertificates(join(dir, 'a'));
    sanCerts = await makeCertificates(join(dir, 'b'), { otherClientName: 'controller-pod-7', otherClientSans: ['stoker-controller'] });
    uriCerts = await makeCertificates(join(dir, 'c'), { otherClientName: 'x', otherClientSans: [`uri:${SPIFFE_ID}`] });
    // One server trusting all three CAs, so each set's clients reach the interceptor.
    const ca = Buffer.from([certs, sanCerts, uriCerts].map((c) => c.caCertPem.trim()).join('\n'));
    const creds = grpc.ServerCredentials.createSsl(ca, [{ cert_chain: Buffer.from(certs.serverCertPem), private_key: Buffer.from(certs.serverKeyPem) }], true);
    const log = createLogger({ name: 'caller-test', level: 'silent' });
    server = await startGrpcServer(recordingHandlers(reached), creds, '127.0.0.1', 0, [controllerOnly('stoker-controller', log)]);
    spiffeServer = await startGrpcServer(recordingHandlers(reached), creds, '127.0.0.1', 0, [controllerOnly(SPIFFE_ID, log)]);
  });

  afterAll(async () => {
    await server?.stop(0);
    await spiffeServer?.stop(0);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function client(from: Certificates, which: 'client' | 'other', to = server) {
    const cert = which === 'client' ? from.clientCertPem : from.otherClientCertPem;
    const key = which === 'client' ? from.clientKeyPem : from.otherClientKeyPem;
    return new Agent(`127.0.0.1:${to.port}`, grpc.credentials.createSsl(Buffer.from(certs.caCertPem), Buffer.from(key), Buffer.from(cert)));
  }

  function nodeStatus(c: InstanceType<typeof Agent>): Promise<{ code: number; details: string }> {
    return new Promise((resolve) => {
      c.NodeStatus({ nodeName: 'n', images: [] }, (err, res) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: res?.nodeName ?? '' }));
    });
  }

  function cancel(c: InstanceType<typeof Agent>, taskId: string): Promise<{ code: number; details: string }> {
    return new Promise((resolve) => {
      c.Cancel({ taskId, nodeName: 'n' }, (err, res) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: res?.outcome ?? '' }));
    });
  }

  function release(c: InstanceType<typeof Agent>): Promise<{ code: number; details: string }> {
    return new Promise((resolve) => {
      c.Release({ nodeName: 'n', images: ['r/x:1'] }, (err, res) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: res?.nodeName ?? '' }));
    });
  }

  function warm(c: InstanceType<typeof Agent>, taskId: string): Promise<{ code: number; details: string }> {
    return new Promise((resolve) => {
      const stream = c.Warm({ taskId, nodeName: 'n' });
      stream.on('data', () => undefined);
      stream.on('error', (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details }));
      stream.on('end', () => resolve({ code: 0, details: '' }));
    });
  }

  it('serves the certificate named stoker-controller (its CN)', async () => {
    const c = client(certs, 'client');
    expect(await nodeStatus(c)).toEqual({ code: 0, details: 'n' });
    expect(await warm(c, 'ok-1')).toEqual({ code: 0, details: '' });
    expect(await release(c)).toEqual({ code: 0, details: 'n' });
    c.close();
    expect(reached).toEqual(['NodeStatus', 'Warm ok-1', 'Release']);
  });

  it('refuses another certificate of the same CA with PERMISSION_DENIED, on every method, before any handler', async () => {
    reached.length = 0;
    const c = client(certs, 'other');
    const denied = { code: grpc.status.PERMISSION_DENIED, details: 'this agent serves only "stoker-controller"; the client certificate names "stoker-intruder"' };
    expect(await nodeStatus(c)).toEqual(denied);
    expect(await warm(c, 'intruder-1')).toEqual(denied);
    expect(await cancel(c, 'ok-1')).toEqual(denied);
    expect(await release(c)).toEqual(denied);
    c.close();
    expect(reached).toEqual([]);
  });

  it('serves a certificate that carries the name as a DNS name or as a URI', async () => {
    reached.length = 0;
    const dns = client(sanCerts, 'other');
    expect((await nodeStatus(dns)).code).toBe(0);
    dns.close();
    // An agent told to serve a SPIFFE ID serves the certificate whose URI is that ID, and no other.
    const uri = client(uriCerts, 'other', spiffeServer);
    expect((await nodeStatus(uri)).code).toBe(0);
    uri.close();
    const byName = client(certs, 'client', spiffeServer);
    expect((await nodeStatus(byName)).code).toBe(grpc.status.PERMISSION_DENIED);
    byName.close();
    expect(reached).toEqual(['NodeStatus', 'NodeStatus']);
  });
});
