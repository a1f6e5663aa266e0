import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fromKubeConfig, inClusterConfig, KubeconfigError, loadDefaultConfig, loadKubeconfig, TOKEN_REREAD_MS } from './kubeconfig.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const SECRET_TOKEN = 'sekret-token-value-123';
const SECRET_KEY = '-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stoker-kubeconfig-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Expects fn to throw a KubeconfigError matching `pattern` that shows no secret. */
function refusal(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KubeconfigError);
  const message = (caught as Error).message;
  expect(message).toMatch(pattern);
  expect(message).not.toContain(SECRET_TOKEN);
  expect(message).not.toContain('PRIVATE KEY');
}

describe('loadKubeconfig', () => {
  it('uses the current context, reading relative file paths from the kubeconfig directory', async () => {
    await mkdir(join(dir, 'pki'));
    await writeFile(join(dir, 'pki', 'ca.crt'), 'CA-PEM');
    await writeFile(join(dir, 'pki', 'client.crt'), 'CERT-PEM');
    await writeFile(join(dir, 'pki', 'client.key'), SECRET_KEY);
    const path = join(dir, 'config');
    await writeFile(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '  - name: other',
        '    cluster: { server: "https://10.9.9.9:6443" }',
        '  - name: main',
        '    cluster:',
        '      server: https://127.0.0.1:6443/',
        '      certificate-authority: pki/ca.crt',
        '      tls-server-name: api.internal',
        'users:',
        '  - name: admin',
        '    user:',
        '      client-certificate: pki/client.crt',
        '      client-key: ./pki/client.key',
        'contexts:',
        '  - name: a',
        '    context: { cluster: other, user: admin }',
        '  - name: b',
        '    context: { cluster: main, user: admin, namespace: team-b }',
        'current-context: b',
      ].join('\n'),
    );
    // The working directory is elsewhere: paths still resolve against the kubeconfig's directory.
    const s = loadKubeconfig(path);
    expect(s.server).toBe('https://127.0.0.1:6443');
    expect(s.tls.ca?.toString()).toBe('CA-PEM');
    expect(s.tls.cert?.toString()).toBe('CERT-PEM');
    expect(s.tls.key?.toString()).toBe(SECRET_KEY);
    expect(s.tls.servername).toBe('api.internal');
    expect(s.tls.rejectUnauthorized).toBe(true);
    expect(s.namespace).toBe('team-b');
    expect(s.authorization()).toBeUndefined();
    expect(s.source).toContain('context "b"');
    expect(loadKubeconfig(path, { context: 'a' }).server).toBe('https://10.9.9.9:6443');
  });

  it('decodes -data fields and sends a token as a bearer, basic auth as Basic', async () => {
    const path = join(dir, 'config');
    await writeFile(
      path,
      `clusters: [{ name: c, cluster: { server: "https://[::1]:6443", certificate-authority-data: "${b64('CA')}", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { client-certificate-data: "${b64('CERT')}", client-key-data: "${b64('KEY')}", token: ${SECRET_TOKEN} } }, { name: basic, user: { username: ann, password: pw } }]
contexts: [{ name: x, context: { cluster: c, user: u } }, { name: y, context: { cluster: c, user: basic } }]
current-context: x
`,
    );
    const s = loadKubeconfig(path);
    expect([s.tls.ca?.toString(), s.tls.cert?.toString(), s.tls.key?.toString()]).toEqual(['CA', 'CERT', 'KEY']);
    expect(s.tls.rejectUnauthorized).toBe(false);
    expect(s.authorization()).toBe(`Bearer ${SECRET_TOKEN}`);
    expect(JSON.stringify(s)).not.toContain(SECRET_TOKEN);
    expect(loadKubeconfig(path, { context: 'y' }).authorization()).toBe(`Basic ${b64('ann:pw')}`);
  });

  it('re-reads a tokenFile when its copy is a minute old, and keeps the last token if the file is briefly gone', async () => {
    const tokenPath = join(dir, 'token');
    await writeFile(tokenPath, 'first\n');
    const path = join(dir, 'config');
    await writeFile(path, 'clusters: [{ name: c, cluster: { server: "https://127.0.0.1:1" } }]\nusers: [{ name: u, user: { tokenFile: token } }]\ncontexts: [{ name: x, context: { cluster: c, user: u } }]\ncurrent-context: x\n');
    let now = 1_000_000;
    const s = loadKubeconfig(path, { now: () => now });
    expect(s.authorization()).toBe('Bearer first');
    await writeFile(tokenPath, 'second');
    now += TOKEN_REREAD_MS - 1;
    expect(s.authorization()).toBe('Bearer first');
    now += 1;
    expect(s.authorization()).toBe('Bearer second');
    await rm(tokenPath);
    now += TOKEN_REREAD_MS;
    expect(s.authorization()).toBe('Bearer second');
  });

  it('merges a KUBECONFIG list: the first file to name something wins', async () => {
    const one = join(dir, 'one');
    const two = join(dir, 'two');
    await writeFile(one, 'clusters: [{ name: c, cluster: { server: "https://first:1" } }]\ncurrent-context: x\n');
    await writeFile(two, 'clusters: [{ name: c, cluster: { server: "https://second:2" } }]\nusers: [{ name: u, user: { token: t2 } }]\ncontexts: [{ name: x, context: { cluster: c, user: u } }]\ncurrent-context: other\n');
    const s = loadDefaultConfig({ KUBECONFIG: [one, two].join(delimiter) }, { home: dir });
    expect(s.server).toBe('https://first:1');
    expect(s.authorization()).toBe('Bearer t2');
  });

  it('names what is wrong, never a secret', async () => {
    const path = join(dir, 'config');
    const write = (text: string) => writeFile(path, text);
    refusal(() => loadKubeconfig(join(dir, 'absent')), /^kubeconfig "[^"]*absent": cannot read it: ENOENT \(no such file\)$/);

    await write(`clusters: [{ name: c, cluster: { server: "https://h:1" } }]\nusers: [{ name: u, user: { token: ${SECRET_TOKEN} } }]\ncontexts: [{ name: x, context: { cluster: c, user: nobody } }]\ncurrent-context: x\n`);
    refusal(() => loadKubeconfig(path), /context "x" names user "nobody", which it does not have/);

    await write(`clusters: []\ncontexts: [{ name: x, context: { cluster: gone } }]\ncurrent-context: x\n`);
    refusal(() => loadKubeconfig(path), /context "x" names cluster "gone"/);

    await write(`clusters: [{ name: c, cluster: { server: "https://h:1" } }]\ncontexts: [{ name: x, context: { cluster: c } }]\n`);
    refusal(() => loadKubeconfig(path), /has no current-context/);
    refusal(() => loadKubeconfig(path, { context: 'nope' }), /has no context "nope"/);

    await write(`clusters: [{ name: c, cluster: { server: "https://h:1" } }]\nusers: [{ name: u, user: { exec: { command: aws }, token: ${SECRET_TOKEN} } }]\ncontexts: [{ name: x, context: { cluster: c, user: u } }]\ncurrent-context: x\n`);
    refusal(() => loadKubeconfig(path), /authenticates with exec, which stoker agent does not support/);

    await write(`clusters: [{ name: c, cluster: { server: "https://h:1", certificate-authority: missing-ca.crt } }]\ncontexts: [{ name: x, context: { cluster: c } }]\ncurrent-context: x\n`);
    refusal(() => loadKubeconfig(path), /cannot read certificate-authority ".*missing-ca\.crt": ENOENT \(no such file\)/);

    await write(`clusters: [{ name: c, cluster: { server: "ftp://h:1" } }]\ncontexts: [{ name: x, context: { cluster: c } }]\ncurrent-context: x\n`);
    refusal(() => loadKubeconfig(path), /server "ftp:\/\/h:1" is not an https:\/\/ URL/);

    await write(`clusters: [{ name: c, cluster: { server: "https://h:1" } }]\nusers: [{ name: u, user: { client-certificate-data: "${b64('CERT')}", client-key-data: "%%%not base64%%%" } }]\ncontexts: [{ name: x, context: { cluster: c, user: u } }]\ncurrent-context: x\n`);
    refusal(() => loadKubeconfig(path), /client-key-data is not base64 data/);

    await write(`clusters: [{ name: c, cluster: { server: "https://h:1" } }]\nusers: [{ name: u, user: { client-certificate-data: "${b64('CERT')}" } }]\ncontexts: [{ name: x, context: { cluster: c, user: u } }]\ncurrent-context: x\n`);
    refusal(() => loadKubeconfig(path), /client-certificate given without client-key/);

    await write('clusters: [ {');
    refusal(() => loadKubeconfig(path), /kubeconfig ".*config": not YAML/);
  });
});

describe('inClusterConfig', () => {
  async function serviceAccount(token: string): Promise<string> {
    const sa = join(dir, 'serviceaccount');
    await mkdir(sa, { recursive: true });
    await writeFile(join(sa, 'token'), token);
    await writeFile(join(sa, 'ca.crt'), 'CLUSTER-CA');
    await writeFile(join(sa, 'namespace'), 'stoker-system');
    return sa;
  }

  it('reads the service host and port, the CA, the namespace, and a rotating token', async () => {
    const sa = await serviceAccount('token-1');
    let now = 0;
    const s = inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, { dir: sa, now: () => now });
    expect(s.server).toBe('https://[fd00::1]:443');
    expect(s.tls.ca?.toString()).toBe('CLUSTER-CA');
    expect(s.namespace).toBe('stoker-system');
    expect(s.authorization()).toBe('Bearer token-1');
    await writeFile(join(sa, 'token'), 'token-2');
    now += TOKEN_REREAD_MS;
    expect(s.authorization()).toBe('Bearer token-2');
    expect(s.source).toBe('in-cluster ServiceAccount');
  });

  it('refuses to run outside a pod, naming what is missing', async () => {
    const sa = await serviceAccount('t');
    refusal(() => inClusterConfig({}, { dir: sa }), /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/);
    refusal(() => inClusterConfig({ KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: 'https' }, { dir: sa }), /KUBERNETES_SERVICE_PORT "https" is not a port number/);
    await rm(join(sa, 'token'));
    refusal(() => inClusterConfig({ KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '443' }, { dir: sa }), /^in-cluster ServiceAccount: cannot read tokenFile ".*token": ENOENT \(no such file\)$/);
  });

  it('is the default without KUBECONFIG or ~/.kube/config; with none of them the error says what to give', async () => {
    const sa = await serviceAccount('t');
    const env = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
    expect(loadDefaultConfig(env, { dir: sa, home: dir }).server).toBe('https://10.0.0.1:443');
    await mkdir(join(dir, '.kube'));
    await writeFile(join(dir, '.kube', 'config'), 'clusters: [{ name: c, cluster: { server: "https://home:1" } }]\ncontexts: [{ name: x, context: { cluster: c } }]\ncurrent-context: x\n');
    expect(loadDefaultConfig(env, { dir: sa, home: dir }).server).toBe('https://home:1');
    refusal(() => loadDefaultConfig({}, { dir: join(dir, 'none'), home: join(dir, 'nohome') }), /no kubeconfig: give --kubeconfig, set KUBECONFIG, or run in a pod/);
  });
});

describe('fromKubeConfig', () => {
  it('takes the current cluster and user of an already loaded KubeConfig', () => {
    const s = fromKubeConfig({
      getCurrentCluster: () => ({ name: 'c', server: 'https://127.0.0.1:6443', caData: b64('CA'), skipTLSVerify: false }),
      getCurrentUser: () => ({ name: 'u', token: SECRET_TOKEN }),
    });
    expect(s.server).toBe('https://127.0.0.1:6443');
    expect(s.tls.ca?.toString()).toBe('CA');
    expect(s.authorization()).toBe(`Bearer ${SECRET_TOKEN}`);
    refusal(
      () => fromKubeConfig({ getCurrentCluster: () => ({ name: 'c', server: 'https://h:1', skipTLSVerify: false }), getCurrentUser: () => ({ name: 'u', authProvider: { name: 'oidc' } }) }),
      /authenticates with auth-provider/,
    );
  });
});
