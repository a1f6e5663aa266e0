import { describe, expect, it } from 'vitest';
import { resolveControllerConfig } from './config.js';

const tls = { tlsCertFile: '/pki/client.crt', tlsPrivateKeyFile: '/pki/client.key', agentCaFile: '/pki/ca.crt' };

describe('resolveControllerConfig', () => {
  it('applies defaults and freezes the result', () => {
    const c = resolveControllerConfig({ ...tls });
    expect(c).toMatchObject({
      namespace: 'stoker-system',
      watchNamespace: '',
      httpListen: { host: '0.0.0.0', port: 8080 },
      maxConcurrentReconciles: 4,
      leaderElect: true,
      leaderLeaseName: 'stoker-controller',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      statusIntervalMs: 1_000,
      logLevel: 'info',
      kubeconfig: undefined,
    });
    expect(c.leaderElectionId).toMatch(/_[0-9a-f]{8}$/);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('takes STOKER_* environment variables, and flags over them', () => {
    const env = {
      STOKER_NAMESPACE: 'from-env',
      STOKER_HTTP_LISTEN: '127.0.0.1:0',
      STOKER_TLS_CERT_FILE: '/e/c',
      STOKER_TLS_PRIVATE_KEY_FILE: '/e/k',
      STOKER_AGENT_CA_FILE: '/e/ca',
      STOKER_LEADER_ELECT: 'false',
      KUBECONFIG: '/e/kubeconfig',
    };
    const c = resolveControllerConfig({ namespace: 'from-flag' }, env);
    expect(c.namespace).toBe('from-flag');
    expect(c.httpListen).toEqual({ host: '127.0.0.1', port: 0 });
    expect(c.tlsCertFile).toBe('/e/c');
    expect(c.leaderElect).toBe(false);
    expect(c.kubeconfig).toBe('/e/kubeconfig');
  });

  it.each([
    [{ namespace: 'Bad_NS' }, /--namespace \(STOKER_NAMESPACE\) "Bad_NS" is not a valid namespace/],
    [{ httpListen: 'localhost' }, /--http-listen .* "localhost" is not HOST:PORT/],
    [{ maxConcurrentReconciles: '0' }, /--max-concurrent-reconciles .* "0" is not a whole number/],
    [{ leaseDuration: 'soon' }, /--lease-duration .* "soon" is not a duration/],
    [{ renewDeadline: '20s' }, /--renew-deadline .* must be shorter than --lease-duration/],
    [{ leaderElect: 'maybe' }, /--leader-elect .* "maybe" is not true or false/],
    [{ logLevel: 'loud' }, /--log-level .* "loud" is not one of/],
  ])('rejects %j with a message naming the value', (input, message) => {
    expect(() => resolveControllerConfig({ ...tls, ...input })).toThrow(message);
  });

  it('requires the TLS files for talking to agents', () => {
    expect(() => resolveControllerConfig({ tlsCertFile: '/a', tlsPrivateKeyFile: '/b' })).toThrow(/--agent-ca-file is required \(or set STOKER_AGENT_CA_FILE\)/);
  });
});
