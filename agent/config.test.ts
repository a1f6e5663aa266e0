import { describe, expect, it } from 'vitest';
import { parseImageReference } from '../proto/common/image-reference.js';
import { refuseRegistry } from '../proto/common/registry-policy.js';
import { ConfigError, resolveAgentConfig, type AgentFlagInput } from './config.js';

const TLS: AgentFlagInput = { tlsCertFile: '/pki/server.crt', tlsPrivateKeyFile: '/pki/server.key', clientCaFile: '/pki/ca.crt' };

describe('resolveAgentConfig', () => {
  it('takes flags over STOKER_* variables over defaults, and freezes the result', () => {
    const config = resolveAgentConfig(
      { ...TLS, nodeName: 'node-a', grpcListen: '127.0.0.1:0', allowedRoot: ['/models/', '/data', '/models'] },
      { STOKER_NODE_NAME: 'ignored', STOKER_HTTP_LISTEN: '[::1]:8080', STOKER_PROGRESS_TIMEOUT: '5m', STOKER_PULL_CONCURRENCY: '8' },
    );
    expect(config).toEqual({
      nodeName: 'node-a',
      criEndpoint: 'unix:///run/containerd/containerd.sock',
      grpcListen: { host: '127.0.0.1', port: 0 },
      httpListen: { host: '::1', port: 8080 },
      allowedRoots: ['/models', '/data'],
      tlsCertFile: '/pki/server.crt',
      tlsPrivateKeyFile: '/pki/server.key',
      clientCaFile: '/pki/ca.crt',
      controllerName: 'stoker-controller',
      tlsReloadIntervalMs: 60_000,
      progressTimeoutMs: 300_000,
      pullConcurrency: 8,
      maxRunningTasks: 64,
      taskRetentionMs: 3_600_000,
      taskRetentionCount: 1000,
      runtimeProbeIntervalMs: 5_000,
      shutdownTimeoutMs: 7_000,
      logLevel: 'info',
      registryPolicy: { allow: [], deny: [] },
      credentialProviders: undefined,
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.allowedRoots)).toBe(true);
    expect(Object.isFrozen(config.grpcListen)).toBe(true);
  });

  it('reads everything from the environment, roots comma-separated', () => {
    const config = resolveAgentConfig(
      {},
      {
        STOKER_NODE_NAME: 'node-b',
        STOKER_TLS_CERT_FILE: 'c',
        STOKER_TLS_PRIVATE_KEY_FILE: 'k',
        STOKER_CLIENT_CA_FILE: 'a',
        STOKER_ALLOWED_ROOTS: '/a, /b,',
        STOKER_CRI_ENDPOINT: '/run/crio/crio.sock',
      },
    );
    expect(config.nodeName).toBe('node-b');
    expect(config.allowedRoots).toEqual(['/a', '/b']);
    expect(config.criEndpoint).toBe('unix:///run/crio/crio.sock');
  });

  it('takes an empty flag or variable as absent', () => {
    const config = resolveAgentConfig({ ...TLS, nodeName: '', logLevel: '' }, { STOKER_NODE_NAME: 'node-c', STOKER_LOG_LEVEL: '' });
    expect(config.nodeName).toBe('node-c');
    expect(config.logLevel).toBe('info');
  });

  it.each([
    [{ ...TLS }, '--node-name is required (or set STOKER_NODE_NAME)'],
    [{ ...TLS, nodeName: 'n', tlsCertFile: undefined }, '--tls-cert-file is required (or set STOKER_TLS_CERT_FILE)'],
    [{ ...TLS, nodeName: 'n', tlsPrivateKeyFile: undefined }, '--tls-private-key-file is required (or set STOKER_TLS_PRIVATE_KEY_FILE)'],
    [{ ...TLS, nodeName: 'n', clientCaFile: undefined }, '--client-ca-file is required (or set STOKER_CLIENT_CA_FILE)'],
    [{ ...TLS, nodeName: 'Node_A' }, '--node-name "Node_A" is not a valid Kubernetes node name'],
    [{ ...TLS, nodeName: 'n', grpcListen: 'localhost' }, '--grpc-listen "localhost" is not HOST:PORT (PORT 0-65535; [::1]:PORT for IPv6)'],
    [{ ...TLS, nodeName: 'n', httpListen: ':70000' }, '--http-listen ":70000" is not HOST:PORT (PORT 0-65535; [::1]:PORT for IPv6)'],
    [{ ...TLS, nodeName: 'n', allowedRoot: ['/ok', 'models'] }, '--allowed-root "models" is not an absolute directory'],
    [{ ...TLS, nodeName: 'n', criEndpoint: 'http://x' }, '--cri-endpoint "http://x" is not unix:///PATH, /PATH or tcp://HOST:PORT'],
    [{ ...TLS, nodeName: 'n', criEndpoint: 'tcp://x' }, '--cri-endpoint "tcp://x" is not tcp://HOST:PORT'],
    [{ ...TLS, nodeName: 'n', tlsCertFile: 'a\0b' }, '--tls-cert-file "a\\u0000b" is not a file path'],
    [{ ...TLS, nodeName: 'n', progressTimeout: 'soon' }, '--progress-timeout "soon" is not a duration like 90s, 5m or 1h'],
    [{ ...TLS, nodeName: 'n', pullConcurrency: '0' }, '--pull-concurrency "0" is not a whole number from 1 to 64'],
    [{ ...TLS, nodeName: 'n', shutdownTimeout: '30s' }, '--shutdown-timeout "30s" is out of range (0s to 9s)'],
    [{ ...TLS, nodeName: 'n', controllerName: 'stoker controller' }, '--controller-name "stoker controller" is not a certificate name (printable characters, no spaces)'],
    [{ ...TLS, nodeName: 'n', logLevel: 'loud' }, '--log-level "loud" is not one of fatal, error, warn, info, debug, trace, silent'],
  ] satisfies [AgentFlagInput, string][])('refuses %o naming the flag and the value', (input, message) => {
    expect(() => resolveAgentConfig(input)).toThrow(ConfigError);
    expect(() => resolveAgentConfig(input)).toThrow(message);
  });

  it('names the variable when the bad value came from there', () => {
    expect(() => resolveAgentConfig({ ...TLS, nodeName: 'n' }, { STOKER_ALLOWED_ROOTS: '/ok,models' })).toThrow(
      '--allowed-root (from STOKER_ALLOWED_ROOTS) "models" is not an absolute directory',
    );
  });
});

describe('the registry policy and credential provider flags', () => {
  const base = { ...TLS, nodeName: 'n' };

  it('compile --registry-allow and --registry-deny, flags over comma-separated STOKER_* variables', () => {
    const config = resolveAgentConfig({ ...base, registryDeny: ['10.0.0.0/8', '*.internal'] }, { STOKER_REGISTRY_ALLOW: 'reg.io, *.corp.example', STOKER_REGISTRY_DENY: 'ignored.io' });
    expect(config.registryPolicy.allow.map((p) => p.text)).toEqual(['reg.io', '*.corp.example']);
    expect(config.registryPolicy.deny.map((p) => [p.text, p.kind])).toEqual([
      ['10.0.0.0/8', 'range'],
      ['*.internal', 'glob'],
    ]);
    expect(Object.isFrozen(config.registryPolicy)).toBe(true);
    expect(refuseRegistry(config.registryPolicy, parseImageReference('a.b.internal/app'))?.rule).toBe('*.internal');
    expect(refuseRegistry(config.registryPolicy, parseImageReference('ghcr.io/app'))?.rule).toBe('allow list');
  });

  it('name a bad pattern', () => {
    expect(() => resolveAgentConfig({ ...base, registryDeny: ['ok.io', '10.0.0.0/99'] })).toThrow('--registry-deny "10.0.0.0/99" has a prefix length that is not 0 to 32');
    expect(() => resolveAgentConfig(base, { STOKER_REGISTRY_ALLOW: 'https://reg.io' })).toThrow('--registry-allow (from STOKER_REGISTRY_ALLOW) "https://reg.io" is not an address range');
  });

  it('take the credential provider config and bin dir together, or neither', () => {
    expect(resolveAgentConfig({ ...base, imageCredentialProviderConfig: '/etc/kubernetes/cp.yaml' }, { STOKER_IMAGE_CREDENTIAL_PROVIDER_BIN_DIR: '/opt/cp' }).credentialProviders).toEqual({
      configPath: '/etc/kubernetes/cp.yaml',
      binDir: '/opt/cp',
    });
    expect(() => resolveAgentConfig({ ...base, imageCredentialProviderBinDir: '/opt/cp' })).toThrow(
      '--image-credential-provider-bin-dir "/opt/cp" needs --image-credential-provider-config (or STOKER_IMAGE_CREDENTIAL_PROVIDER_CONFIG)',
    );
    expect(() => resolveAgentConfig({ ...base, imageCredentialProviderConfig: '/cp.yaml' })).toThrow(
      '--image-credential-provider-config "/cp.yaml" needs --image-credential-provider-bin-dir (or STOKER_IMAGE_CREDENTIAL_PROVIDER_BIN_DIR)',
    );
  });
});
