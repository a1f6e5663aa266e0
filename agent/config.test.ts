import { describe, expect, it } from 'vitest';
import { ConfigError, resolveAgentConfig, type AgentOptionsInput } from './config.js';

const TLS: AgentOptionsInput = { tlsCertFile: '/pki/server.crt', tlsPrivateKeyFile: '/pki/server.key', clientCaFile: '/pki/ca.crt' };

describe('resolveAgentConfig', () => {
  it('takes flags over STOKER_* variables over defaults, and freezes the result', () => {
    const config = resolveAgentConfig(
      { ...TLS, nodeName: 'node-a', grpcListen: '127.0.0.1:0', allowedRoot: ['/models/', '/data'] },
      { STOKER_NODE_NAME: 'ignored', STOKER_HTTP_LISTEN: '[::1]:8080', STOKER_PROGRESS_TIMEOUT: '5m', STOKER_PULL_CONCURRENCY: '8' },
    );
    expect(config).toMatchObject({
      nodeName: 'node-a',
      criEndpoint: 'unix:///run/containerd/containerd.sock',
      grpcListen: { host: '127.0.0.1', port: 0 },
      httpListen: { host: '::1', port: 8080 },
      allowedRoots: ['/models', '/data'],
      progressTimeoutMs: 300_000,
      pullConcurrency: 8,
      taskRetentionMs: 3_600_000,
      taskRetentionCount: 1000,
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.allowedRoots)).toBe(true);
  });

  it('reads everything from the environment, roots comma-separated', () => {
    const config = resolveAgentConfig(
      {},
      {
        STOKER_NODE_NAME: 'node-b',
        STOKER_TLS_CERT_FILE: 'c',
        STOKER_TLS_PRIVATE_KEY_FILE: 'k',
        STOKER_CLIENT_CA_FILE: 'a',
        STOKER_ALLOWED_ROOTS: '/a, /b',
        STOKER_CRI_ENDPOINT: '/run/crio/crio.sock',
      },
    );
    expect(config.nodeName).toBe('node-b');
    expect(config.allowedRoots).toEqual(['/a', '/b']);
    expect(config.criEndpoint).toBe('unix:///run/crio/crio.sock');
  });

  it.each([
    [{ ...TLS }, /--node-name is required \(or set STOKER_NODE_NAME\)/],
    [{ ...TLS, nodeName: 'n', tlsCertFile: undefined }, /--tls-cert-file is required/],
    [{ ...TLS, nodeName: 'n', tlsPrivateKeyFile: undefined }, /--tls-private-key-file is required/],
    [{ ...TLS, nodeName: 'n', clientCaFile: undefined }, /--client-ca-file is required/],
    [{ ...TLS, nodeName: 'Node_A' }, /--node-name \(STOKER_NODE_NAME\) "Node_A" is not a valid Kubernetes node name/],
    [{ ...TLS, nodeName: 'n', grpcListen: 'localhost' }, /--grpc-listen \(STOKER_GRPC_LISTEN\) "localhost" is not HOST:PORT/],
    [{ ...TLS, nodeName: 'n', httpListen: ':70000' }, /--http-listen \(STOKER_HTTP_LISTEN\) ":70000"/],
    [{ ...TLS, nodeName: 'n', allowedRoot: ['models'] }, /--allowed-root \(STOKER_ALLOWED_ROOTS\) "models" is not an absolute directory/],
    [{ ...TLS, nodeName: 'n', criEndpoint: 'http://x' }, /--cri-endpoint \(STOKER_CRI_ENDPOINT\) "http:\/\/x"/],
    [{ ...TLS, nodeName: 'n', progressTimeout: 'soon' }, /--progress-timeout \(STOKER_PROGRESS_TIMEOUT\) "soon" is not a duration/],
    [{ ...TLS, nodeName: 'n', pullConcurrency: '0' }, /--pull-concurrency \(STOKER_PULL_CONCURRENCY\) "0" is not a whole number from 1 to 64/],
    [{ ...TLS, nodeName: 'n', shutdownTimeout: '30s' }, /--shutdown-timeout \(STOKER_SHUTDOWN_TIMEOUT\) "30s" is out of range/],
    [{ ...TLS, nodeName: 'n', logLevel: 'loud' }, /--log-level \(STOKER_LOG_LEVEL\) "loud" is not one of/],
  ] satisfies [AgentOptionsInput, RegExp][])('refuses %o naming the flag and the value', (input, message) => {
    expect(() => resolveAgentConfig(input)).toThrow(ConfigError);
    expect(() => resolveAgentConfig(input)).toThrow(message);
  });
});
