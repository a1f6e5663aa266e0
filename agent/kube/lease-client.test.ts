import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../proto/common/log.js';
import { makeCertificates, type Certificates } from '../../test/support/certs.js';
import { startAnnouncer } from '../announce.js';
import { loadKubeconfig, type ApiServerConfig } from './kubeconfig.js';
import { KubeApiError, leaseClient, microTime, type Lease, type LeaseClient } from './lease-client.js';

const TOKEN = 'fake-api-token-0123456789';
const NS = 'stoker-system';
const PREFIX = `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`;

/**
 * A fake API server on loopback speaking just the Lease REST calls, with resource versions and
 * Status errors, requiring a client certificate from the test CA and the bearer token. It records
 * the requests and can be told to answer strangely.
 */
interface FakeApiServer {
  url: string;
  leases: Map<string, Lease>;
  requests: { method: string; path: string; authorization: string | undefined; clientCert: string | undefined; userAgent: string | undefined }[];
  /** Answer the next requests with this instead (status, body), or not at all ('hang'). */
  override: { status: number; body: string } | 'hang' | undefined;
  close(): Promise<void>;
}

async function startFakeApiServer(certs: Certificates): Promise<FakeApiServer> {
  let rv = 0;
  const status = (code: number, reason: string, message: string) => ({ status: code, body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }) });
  const fake: Omit<FakeApiServer, 'url' | 'close'> = { leases: new Map(), requests: [], override: undefined };
  const answer = (method: string, path: string, body: string, authorization: string | undefined): { status: number; body: string } => {
    if (authorization !== `Bearer ${TOKEN}`) return status(401, 'Unauthorized', 'Unauthorized');
    if (!path.startsWith(PREFIX)) return status(404, 'NotFound', 'the server could not find the requested resource');
    const name = decodeURIComponent(path.slice(PREFIX.length + 1));
    const cur = fake.leases.get(name);
    const notFound = status(404, 'NotFound', `leases.coordination.k8s.io "${name}" not found`);
    const store = (l: Lease) => {
      const saved: Lease = { ...l, metadata: { ...l.metadata, namespace: NS, resourceVersion: String(++rv) } };
      fake.leases.set(saved.metadata?.name ?? '', saved);
      return { status: 200, body: JSON.stringify(saved) };
    };
    if (method === 'GET') return cur ? { status: 200, body: JSON.stringify(cur) } : notFound;
    if (method === 'DELETE') {
      if (!cur) return notFound;
      fake.leases.delete(name);
      return { status: 200, body: JSON.stringify({ kind: 'Status', status: 'Success' }) };
    }
    const lease = JSON.parse(body) as Lease;
    if (method === 'POST') {
      const n = lease.metadata?.name ?? '';
      if (fake.leases.has(n)) return status(409, 'AlreadyExists', `leases.coordination.k8s.io "${n}" already exists`);
      return { ...store(lease), status: 201 };
    }
    if (method === 'PUT') {
      if (!cur) return notFound;
      if (lease.metadata?.resourceVersion !== cur.metadata?.resourceVersion) {
        return status(409, 'Conflict', `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`);
      }
      return store(lease);
    }
    return status(405, 'MethodNotAllowed', 'method not allowed');
  };
  const server = https.createServer({ key: certs.serverKeyPem, cert: certs.serverCertPem, ca: certs.caCertPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      fake.requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        authorization: req.headers.authorization,
        clientCert: peer.subject ? String(peer.subject.CN) : undefined,
        userAgent: req.headers['user-agent'],
      });
      if (fake.override === 'hang') return;
      const a = fake.override ?? answer(req.method ?? '', req.url ?? '', Buffer.concat(chunks).toString('utf8'), req.headers.authorization);
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(fake, {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

let dir: string;
let certs: Certificates;
let fake: FakeApiServer;
let config: ApiServerConfig;
const clients: LeaseClient[] = [];
const open = (c: ApiServerConfig = config, timeoutMs?: number) => {
  const client = leaseClient(c, timeoutMs === undefined ? {} : { timeoutMs });
  clients.push(client);
  return client;
};

/** A kubeconfig for the fake server with relative paths, as a user would write one. */
async function writeKubeconfig(name: string, user: string, ca = 'ca.crt'): Promise<string> {
  const path = join(dir, name);
  await writeFile(
    path,
    `apiVersion: v1
kind: Config
clusters: [{ name: fake, cluster: { server: "${fake.url}", certificate-authority: ${ca} } }]
users: [{ name: u, user: ${user} }]
contexts: [{ name: fake, context: { cluster: fake, user: u } }]
current-context: fake
`,
  );
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-lease-client-'));
  certs = await makeCertificates(dir, { clientName: 'system:node:agent' });
  fake = await startFakeApiServer(certs);
  config = loadKubeconfig(await writeKubeconfig('kubeconfig', `{ client-certificate: client.crt, client-key: client.key, token: ${TOKEN} }`));
});
afterEach(() => {
  fake.override = undefined;
  fake.leases.clear();
  fake.requests.length = 0;
});
afterAll(async () => {
  for (const c of clients) c.close();
  await fake?.close();
  await rm(dir, { recursive: true, force: true });
});

const lease = (name: string, holder: string): Lease => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: { name, labels: { 'stoker.io/agent': 'true' } },
  spec: { holderIdentity: holder, leaseDurationSeconds: 30, renewTime: microTime(new Date()) },
});

/** The rejection of p, which must be an Error. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  const r = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(r).toBeInstanceOf(Error);
  return r as Error;
}

describe('leaseClient against a fake API server', () => {
  it('creates, reads, replaces with the resourceVersion it read, and deletes a Lease, over mutual TLS with the token', async () => {
    const c = open();
    expect(await c.get(NS, 'stoker-agent-a')).toBeUndefined();
    const created = await c.create(NS, lease('stoker-agent-a', 'a'));
    expect(created.metadata?.resourceVersion).toBe('1');
    const read = await c.get(NS, 'stoker-agent-a');
    expect(read?.spec?.holderIdentity).toBe('a');
    const replaced = await c.replace(NS, 'stoker-agent-a', { ...read, spec: { ...read?.spec, holderIdentity: 'b' } });
    expect(replaced.metadata?.resourceVersion).toBe('2');
    expect(fake.leases.get('stoker-agent-a')?.spec?.holderIdentity).toBe('b');
    await c.delete(NS, 'stoker-agent-a');
    expect(fake.leases.size).toBe(0);
    await c.delete(NS, 'stoker-agent-a'); // already gone: not an error

    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET ${PREFIX}/stoker-agent-a`,
      `POST ${PREFIX}`,
      `GET ${PREFIX}/stoker-agent-a`,
      `PUT ${PREFIX}/stoker-agent-a`,
      `DELETE ${PREFIX}/stoker-agent-a`,
      `DELETE ${PREFIX}/stoker-agent-a`,
    ]);
    for (const r of fake.requests) {
      expect(r.authorization).toBe(`Bearer ${TOKEN}`);
      expect(r.clientCert).toBe('system:node:agent');
      expect(r.userAgent).toMatch(/^stoker-agent\//);
    }
  });

  it('reports a refusal with the HTTP status and the Status reason and message', async () => {
    const c = open();
    const first = await c.create(NS, lease('stoker-agent-c', 'c'));
    await c.replace(NS, 'stoker-agent-c', { ...first, spec: { ...first.spec, holderIdentity: 'other' } });
    const stale = await rejection(c.replace(NS, 'stoker-agent-c', first));
    expect(stale).toBeInstanceOf(KubeApiError);
    expect(stale).toMatchObject({ code: 409, reason: 'Conflict' });
    expect(stale.message).toMatch(/^update Lease stoker-system\/stoker-agent-c: HTTP 409 Conflict: Operation cannot be fulfilled on leases/);

    const exists = await rejection(c.create(NS, lease('stoker-agent-c', 'c')));
    expect(exists.message).toMatch(/^create Lease stoker-system\/stoker-agent-c: HTTP 409 AlreadyExists: .*already exists/);

    fake.override = { status: 403, body: JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'leases.coordination.k8s.io "x" is forbidden: User "u" cannot get resource "leases"' }) };
    const forbidden = await rejection(c.get(NS, 'x'));
    expect(forbidden).toMatchObject({ code: 403, reason: 'Forbidden' });
    expect(forbidden.message).toMatch(/^get Lease stoker-system\/x: HTTP 403 Forbidden: .*cannot get resource "leases"/);

    fake.override = { status: 502, body: '<html>bad gateway</html>' };
    const proxy = await rejection(c.get(NS, 'x'));
    expect(proxy).toMatchObject({ code: 502, reason: undefined });
    expect(proxy.message).toBe('get Lease stoker-system/x: HTTP 502 Bad Gateway: <html>bad gateway</html>');
    for (const e of [stale, exists, forbidden, proxy]) expect(e.message).not.toContain(TOKEN);
  });

  it('says 401 Unauthorized for a wrong token, without showing it', async () => {
    const path = await writeKubeconfig('wrong-token', '{ client-certificate: client.crt, client-key: client.key, token: not-the-token-42 }');
    const err = await rejection(open(loadKubeconfig(path)).get(NS, 'x'));
    expect(err).toMatchObject({ code: 401 });
    expect(err.message).toBe('get Lease stoker-system/x: HTTP 401 Unauthorized: Unauthorized');
    expect(err.message).not.toContain('not-the-token-42');
  });

  it('sends a rotated tokenFile', async () => {
    const tokenPath = join(dir, 'token');
    await writeFile(tokenPath, 'old-token');
    let now = 0;
    const c = open(loadKubeconfig(await writeKubeconfig('token-file', '{ client-certificate: client.crt, client-key: client.key, tokenFile: token }'), { now: () => now }));
    expect(await rejection(c.get(NS, 'x'))).toMatchObject({ code: 401 });
    await writeFile(tokenPath, TOKEN);
    now += 60_000;
    expect(await c.get(NS, 'x')).toBeUndefined();
    expect(fake.requests.map((r) => r.authorization)).toEqual(['Bearer old-token', `Bearer ${TOKEN}`]);
  });

  it('refuses a server whose certificate the configured CA did not sign, naming the call', async () => {
    const path = await writeKubeconfig('foreign-ca', `{ token: ${TOKEN} }`, 'foreign-ca.crt');
    const err = await rejection(open(loadKubeconfig(path)).get(NS, 'x'));
    expect(err.message).toMatch(/^get Lease stoker-system\/x: .*(self-signed|unable to verify|certificate)/i);
    expect(fake.requests).toHaveLength(0);
  });

  it('gives up at its deadline, and at once when cancelled', async () => {
    fake.override = 'hang';
    const c = open(config, 300);
    expect((await rejection(c.get(NS, 'x'))).message).toBe('get Lease stoker-system/x: no answer within 0.3 s');
    const cancel = new AbortController();
    const pending = rejection(open().get(NS, 'y', cancel.signal));
    setTimeout(() => cancel.abort(), 50);
    expect((await pending).message).toBe('get Lease stoker-system/y: cancelled');
  });

  it('names an unreachable server', async () => {
    const path = join(dir, 'closed');
    await writeFile(path, `clusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]\ncontexts: [{ name: x, context: { cluster: c } }]\ncurrent-context: x\n`);
    expect((await rejection(open(loadKubeconfig(path)).get(NS, 'x'))).message).toMatch(/^get Lease stoker-system\/x: connect ECONNREFUSED 127\.0\.0\.1:1$/);
  });
});

describe('startAnnouncer with server config', () => {
  it('announces through the Lease client and withdraws on stop', async () => {
    const log = createLogger({ name: 'test', level: 'silent' });
    const announcer = startAnnouncer({ server: config, namespace: NS, nodeName: 'node-1', endpoint: '10.0.0.7:7443', leaseDurationSeconds: 30, log });
    try {
      await announcer.firstRenewal;
      const l = fake.leases.get('stoker-agent-node-1');
      expect(l?.spec?.holderIdentity).toBe('node-1');
      expect(l?.spec?.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      expect(l?.metadata?.annotations?.['stoker.io/grpc-endpoint']).toBe('10.0.0.7:7443');
    } finally {
      await announcer.stop();
    }
    expect(fake.leases.size).toBe(0);
  });
});
