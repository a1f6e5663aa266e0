// Where nodes may pull from, and with which credentials, against real parts: a private containerd,
// real registries (one behind htpasswd), real agents over mutual TLS and `stoker warm` run from
// source. No test sends traffic to a forbidden address: `stoker warm` gets a CRI endpoint that
// records any connection, and the agents' containerd sends whatever it would send to the
// metadata hosts to a local trap, which must see nothing.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveAgentConfig, type AgentFlagInput } from '../agent/config.js';
import { startAgent, type RunningAgent } from '../agent/run.js';
import { agentProto, type AgentClient, type WarmResult__Output } from '../proto/agent.js';
import type { ImageResult__Output } from '../proto/agent.js';
import { createLogger } from '../proto/common/log.js';
import type { WarmRequest } from '../proto/gen/stoker/v1/WarmRequest.js';
import { makeCertificates, type Certificates } from './support/certs.js';
import { startContainerd, type Containerd } from './support/containerd.js';
import { writeDockerHelper, writeProviderConfig, writeProviderPlugin, type CredentialProgram } from './support/credential-programs.js';
import { pushRandomImage } from './support/images.js';
import { REPO_ROOT } from './support/proc.js';
import { startRecordingSocket, type RecordingSocket } from './support/recording-socket.js';
import { addRegistryHost, redirectRegistryHost, startRegistry, startStallingRegistry, type Registry, type StallingRegistry } from './support/registry.js';

const NODE = 'node-r';
const AUTH = { username: 'puller', password: 'Plugin-Given-Pa55word-7' };
const WRONG = 'Wrong-Plugin-Pa55word-9';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `stoker warm` from source, with a clean environment (no STOKER_* or Docker config of the developer's). */
function warmCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bin', 'main.ts'), 'warm', ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', HOME: env.HOME ?? tmpdir(), ...env },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

function jsonImages(result: CliResult): ImageResult__Output[] {
  return (JSON.parse(result.stdout) as { images: ImageResult__Output[] }).images;
}

function agentClient(address: string, certs: Certificates): AgentClient {
  const creds = grpc.credentials.createSsl(Buffer.from(certs.caCertPem), Buffer.from(certs.clientKeyPem), Buffer.from(certs.clientCertPem));
  return new (agentProto().Agent)(address, creds, { 'grpc.ssl_target_name_override': 'localhost' });
}

function warmOn(client: AgentClient, request: WarmRequest): Promise<WarmResult__Output> {
  return new Promise((resolve, reject) => {
    let result: WarmResult__Output | undefined;
    const call = client.warm(request);
    call.on('data', (e: { result?: WarmResult__Output | null }) => {
      if (e.result) result = e.result;
    });
    call.on('error', reject);
    call.on('end', () => (result ? resolve(result) : reject(new Error('the stream ended without a result'))));
  });
}

describe('registries and credentials', () => {
  let dir: string;
  let certs: Certificates;
  let containerd: Containerd;
  let registry: Registry;
  let locked: Registry;
  /** Where containerd would send what it sends to the metadata hosts: must see nothing. */
  let trap: StallingRegistry;
  /** A registry the operator's deny pattern names: must see nothing. */
  let denied: StallingRegistry;
  let recording: RecordingSocket;
  let plugin: CredentialProgram;
  let providerConfig: string;
  let binDir: string;
  const agents: RunningAgent[] = [];
  const logLines: string[] = [];

  async function agentWith(extra: AgentFlagInput): Promise<AgentClient> {
    const flags: AgentFlagInput = {
      nodeName: NODE,
      criEndpoint: containerd.endpoint,
      grpcListen: '127.0.0.1:0',
      httpListen: '127.0.0.1:0',
      tlsCertFile: certs.serverCert,
      tlsPrivateKeyFile: certs.serverKey,
      clientCaFile: certs.caCert,
      runtimeProbeInterval: '500ms',
      ...extra,
    };
    const logger = createLogger({ name: 'stoker-agent', level: 'debug', destination: { write: (line: string) => logLines.push(line) } });
    const agent = await startAgent(resolveAgentConfig(flags), { logger, processMetrics: false });
    agents.push(agent);
    return agentClient(agent.grpcAddress, certs);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stoker-registry-access-'));
    [certs, containerd, registry, locked, trap, denied, recording] = await Promise.all([
      makeCertificates(join(dir, 'pki')),
      startContainerd(),
      startRegistry(),
      startRegistry({ auth: { username: AUTH.username, password: AUTH.password } }),
      startStallingRegistry(),
      startStallingRegistry(),
      startRecordingSocket(),
    ]);
    await registry.addTo(containerd);
    await locked.addTo(containerd);
    await addRegistryHost(containerd, denied);
    for (const name of ['169.254.169.254', 'metadata.google.internal', 'redirect-check.invalid']) await redirectRegistryHost(containerd, name, trap);

    binDir = join(dir, 'plugins');
    await mkdir(binDir);
    // Right credentials for the locked registry, wrong ones for its "wrong/" repositories.
    plugin = await writeProviderPlugin(binDir, 'test-registry-plugin', [
      { when: `*'"image":"${locked.host}/wrong/'*`, auth: { [locked.host]: { username: AUTH.username, password: WRONG } } },
      { when: `*'"image":"${locked.host}/'*`, auth: { [locked.host]: { username: AUTH.username, password: AUTH.password } } },
    ]);
    providerConfig = await writeProviderConfig(join(dir, 'credential-provider-config.yaml'), { name: 'test-registry-plugin', matchImages: [locked.host] });
  });

  afterAll(async () => {
    await Promise.allSettled(agents.map((a) => a.stop()));
    await Promise.allSettled([containerd?.stop(), registry?.stop(), locked?.stop(), trap?.stop(), denied?.stop(), recording?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe('the registry policy', () => {
    it('stoker warm refuses link-local, metadata and unspecified registries before it connects to the runtime', async () => {
      const images = [
        '169.254.169.254/latest/meta-data:v1',
        '2852039166:80/latest/meta-data:v1',
        '[fe80::1]:5000/team/app:v1',
        'metadata.google.internal/computemetadata/v1:latest',
        '0.0.0.0:5000/team/app:v1',
      ];
      const result = await warmCli([...images.flatMap((i) => ['--image', i]), '--cri-endpoint', recording.endpoint, '--json']);
      expect(result.code, result.stderr).toBe(1);
      expect(jsonImages(result).map((r) => [r.image, r.state, r.failure?.code])).toEqual(images.map((i) => [i, 'FAILED', 'REGISTRY_DENIED']));
      const lines = result.stderr.trim().split('\n');
      expect(lines).toEqual([
        'error: REGISTRY_DENIED: cannot pull 169.254.169.254/latest/meta-data:v1: registry 169.254.169.254 is refused: it is a link-local address (built-in rule 169.254.0.0/16)',
        'error: REGISTRY_DENIED: cannot pull 2852039166:80/latest/meta-data:v1: registry 2852039166:80 is refused: it is a link-local address (built-in rule 169.254.0.0/16)',
        'error: REGISTRY_DENIED: cannot pull [fe80::1]:5000/team/app:v1: registry [fe80::1]:5000 is refused: it is a link-local address (built-in rule fe80::/10)',
        'error: REGISTRY_DENIED: cannot pull metadata.google.internal/computemetadata/v1:latest: registry metadata.google.internal is refused: it is a cloud metadata host name (built-in rule metadata.google.internal)',
        'error: REGISTRY_DENIED: cannot pull 0.0.0.0:5000/team/app:v1: registry 0.0.0.0:5000 is refused: it is an unspecified address (built-in rule 0.0.0.0/8)',
      ]);
      expect(recording.connections()).toBe(0);
    });

    it('stoker warm pulls what the policy allows and never contacts a registry it refuses', async () => {
      const ok = await pushRandomImage(registry, 'policy/ok', { layerSizeBytes: 64 * 1024 });
      const refused = `${denied.host}/policy/refused:v1`;
      const byDeny = await warmCli(['--image', ok, '--image', refused, '--cri-endpoint', containerd.endpoint, '--json', '--registry-deny', denied.host]);
      expect(byDeny.code).toBe(1);
      expect(jsonImages(byDeny).map((r) => [r.state, r.failure?.code])).toEqual([
        ['DONE', undefined],
        ['FAILED', 'REGISTRY_DENIED'],
      ]);
      expect(byDeny.stderr).toContain(`REGISTRY_DENIED: cannot pull ${refused}: registry ${denied.host} is refused: it matches the deny pattern "${denied.host}"`);
      expect(await containerd.imagePresent(ok)).toBe(true);

      const byAllow = await warmCli(['--image', refused, '--cri-endpoint', containerd.endpoint], { STOKER_REGISTRY_ALLOW: `${registry.host},*.example.com` });
      expect(byAllow.code).toBe(1);
      expect(byAllow.stderr).toContain(`registry ${denied.host} is refused: it matches no allow pattern ("${registry.host}", "*.example.com")`);
      expect(denied.connections()).toBe(0);
    });

    it('the agent refuses them before its runtime sees them, and pulls the rest', async () => {
      // The trap works: an allowed name redirected to it is pulled from it.
      const client = await agentWith({ registryDeny: [denied.host] });
      const check = await warmOn(client, { taskId: 'redirect-check', nodeName: NODE, images: [{ image: 'redirect-check.invalid/x:v1' }], progressTimeoutSeconds: 1 });
      expect(check.images[0]?.failure?.code).toBe('PROGRESS_TIMEOUT');
      expect(trap.connections()).toBeGreaterThan(0);
      const trapped = trap.connections();

      const ok = await pushRandomImage(registry, 'policy/agent-ok', { layerSizeBytes: 64 * 1024 });
      const result = await warmOn(client, {
        taskId: 'policy-1',
        nodeName: NODE,
        images: [
          { image: '169.254.169.254/latest/meta-data:v1', pullPolicy: 'ALWAYS' },
          { image: ok },
          { image: 'metadata.google.internal/computemetadata/v1:latest', pullPolicy: 'ALWAYS' },
          { image: `${denied.host}/policy/refused:v1`, pullPolicy: 'ALWAYS' },
        ],
      });
      client.close();
      expect(result.images.map((r) => [r.image, r.state, r.failure?.code])).toEqual([
        ['169.254.169.254/latest/meta-data:v1', 'FAILED', 'REGISTRY_DENIED'],
        [ok, 'DONE', ''],
        ['metadata.google.internal/computemetadata/v1:latest', 'FAILED', 'REGISTRY_DENIED'],
        [`${denied.host}/policy/refused:v1`, 'FAILED', 'REGISTRY_DENIED'],
      ].map(([image, state, code]) => [image, state, code === '' ? undefined : code]));
      expect(result.images[0]?.failure?.message).toContain('(built-in rule 169.254.0.0/16)');
      expect(result.images[3]?.failure?.message).toContain(`the deny pattern "${denied.host}"`);
      expect(await containerd.imagePresent(ok)).toBe(true);
      expect(trap.connections()).toBe(trapped);
      expect(denied.connections()).toBe(0);
    });
  });

  describe('kubelet credential provider plugins and Docker credential helpers', () => {
    it('the agent pulls with the credentials a plugin gives, and fails UNAUTHORIZED without the plugin', async () => {
      const image = await pushRandomImage(locked, 'team/agent-plugin', { layerSizeBytes: 64 * 1024 });
      const without = await agentWith({});
      const refused = await warmOn(without, { taskId: 'plugin-none', nodeName: NODE, images: [{ image }] });
      without.close();
      expect(refused.images[0]?.failure?.code).toBe('UNAUTHORIZED');
      expect(await containerd.imagePresent(image)).toBe(false);

      const client = await agentWith({ imageCredentialProviderConfig: providerConfig, imageCredentialProviderBinDir: binDir });
      const pulled = await warmOn(client, { taskId: 'plugin-1', nodeName: NODE, images: [{ image }] });
      expect(pulled.images[0]?.state, JSON.stringify(pulled.images[0]?.failure)).toBe('DONE');
      expect(await containerd.imagePresent(image)).toBe(true);
      expect((await plugin.calls()).at(-1)).toBe(
        `|{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"${locked.host}/team/agent-plugin"}`,
      );

      // Credentials the controller sent win over the plugin's, which is then not even run.
      const wrong = await pushRandomImage(locked, 'wrong/agent-precedence', { layerSizeBytes: 64 * 1024 });
      const runs = (await plugin.calls()).length;
      const precedence = await warmOn(client, {
        taskId: 'plugin-2',
        nodeName: NODE,
        images: [{ image: wrong }],
        credentials: [{ registry: locked.host, username: AUTH.username, password: AUTH.password }],
      });
      expect(precedence.images[0]?.state, JSON.stringify(precedence.images[0]?.failure)).toBe('DONE');
      expect(await plugin.calls()).toHaveLength(runs);

      // A plugin answer with a wrong password: the registry's refusal, and no password anywhere.
      const refusedByPlugin = await warmOn(client, { taskId: 'plugin-3', nodeName: NODE, images: [{ image: `${locked.host}/wrong/other:v1` }] });
      client.close();
      expect(refusedByPlugin.images[0]?.failure?.code).toBe('UNAUTHORIZED');
      const everything = [logLines.join(''), JSON.stringify([refused, pulled, precedence, refusedByPlugin])].join('\n');
      for (const secret of [AUTH.password, WRONG]) expect(everything).not.toContain(secret);
    });

    it('stoker warm pulls with a plugin of --image-credential-provider-config, and fails UNAUTHORIZED without', async () => {
      const image = await pushRandomImage(locked, 'team/cli-plugin', { layerSizeBytes: 64 * 1024 });
      const without = await warmCli(['--image', image, '--cri-endpoint', containerd.endpoint]);
      expect(without.code).toBe(1);
      expect(without.stderr).toContain(`UNAUTHORIZED: cannot pull ${image}: registry ${locked.host} requires credentials`);

      const result = await warmCli(['--image', image, '--cri-endpoint', containerd.endpoint, '--log-level', 'debug', '--image-credential-provider-config', providerConfig], {
        STOKER_IMAGE_CREDENTIAL_PROVIDER_BIN_DIR: binDir,
      });
      expect(result.code, result.stderr).toBe(0);
      expect(await containerd.imagePresent(image)).toBe(true);
      for (const secret of [AUTH.password, WRONG]) expect(result.stdout + result.stderr + without.stderr).not.toContain(secret);
    });

    it('stoker warm pulls with a Docker credential helper the config names, run as Docker runs it', async () => {
      const image = await pushRandomImage(locked, 'team/cli-helper', { layerSizeBytes: 64 * 1024 });
      const helperDir = join(dir, 'helpers');
      await mkdir(helperDir, { recursive: true });
      const helper = await writeDockerHelper(helperDir, 'stoker-test', locked.host, AUTH);
      const configDir = join(dir, 'docker');
      await mkdir(configDir, { recursive: true });
      await writeFile(join(configDir, 'config.json'), JSON.stringify({ auths: { [locked.host]: {} }, credsStore: 'stoker-test' }));
      const env = { DOCKER_CONFIG: configDir, PATH: `${helperDir}:${process.env.PATH ?? ''}` };

      const result = await warmCli(['--image', image, '--cri-endpoint', containerd.endpoint, '--log-level', 'debug'], env);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).not.toContain('warning');
      expect(await containerd.imagePresent(image)).toBe(true);
      expect(await helper.calls()).toEqual([`get|${locked.host}`]);

      // A helper the config names that is not installed: a warning naming it, and the registry's refusal.
      await writeFile(join(configDir, 'config.json'), JSON.stringify({ credHelpers: { [locked.host]: 'not-installed' } }));
      const missing = await warmCli(['--image', image, '--cri-endpoint', containerd.endpoint, '--pull-policy', 'Always'], env);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`warning: credential helper failed for ${locked.host}: docker-credential-not-installed cannot be run (ENOENT); pulling from ${locked.host} without its credentials`);
      expect(missing.stderr).toContain('error: UNAUTHORIZED');
      for (const r of [result, missing]) expect(r.stdout + r.stderr).not.toContain(AUTH.password);
    });
  });
});
