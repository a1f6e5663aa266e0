import { describe, expect, it } from 'vitest';
import { ConfigError, resolveControllerConfig, type ControllerFlagInput } from './config.js';

const tls = { tlsCertFile: '/pki/client.crt', tlsPrivateKeyFile: '/pki/client.key', agentCaFile: '/pki/ca.crt' };

describe('resolveControllerConfig', () => {
  it('applies defaults and freezes the result', () => {
    const c = resolveControllerConfig({ ...tls });
    expect(c).toMatchObject({
      kubeconfig: undefined,
      namespace: 'stoker-system',
      agentService: 'stoker-agent',
      watchNamespace: '',
      warmupNamespaces: [],
      agentServerName: undefined,
      httpListen: { host: '0.0.0.0', port: 8080 },
      maxConcurrentReconciles: 4,
      leaderElect: true,
      leaderLeaseName: 'stoker-controller',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      statusIntervalMs: 1_000,
      relistIntervalMs: 300_000,
      watchdogMs: 90_000,
      shutdownTimeoutMs: 10_000,
      logLevel: 'info',
    });
    expect(c.leaderElectionId).toMatch(/_[0-9a-f]{8}$/);
    expect(c.registryPolicy).toEqual({ allow: [], deny: [] });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.httpListen)).toBe(true);
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
    expect(resolveControllerConfig({}, { ...env, STOKER_KUBECONFIG: '/e/stoker' }).kubeconfig).toBe('/e/stoker');
  });

  it('reads the served namespaces from repeated flags or a comma-separated variable', () => {
    expect(resolveControllerConfig({ ...tls, warmupNamespaces: ['team-a', 'team-b', 'team-a'] }).warmupNamespaces).toEqual(['team-a', 'team-b']);
    expect(resolveControllerConfig(tls, { STOKER_WARMUP_NAMESPACES: 'stoker-system,team-a' }).warmupNamespaces).toEqual(['stoker-system', 'team-a']);
    expect(() => resolveControllerConfig(tls, { STOKER_WARMUP_NAMESPACES: 'ok,Not_OK' })).toThrow('--warmup-namespaces (from STOKER_WARMUP_NAMESPACES) "Not_OK" is not a valid namespace name');
  });

  it('reads the chart\'s empty variables as absent', () => {
    const c = resolveControllerConfig(tls, { STOKER_WATCH_NAMESPACE: '', STOKER_AGENT_SERVER_NAME: '', STOKER_LEADER_ELECTION_ID: 'pod-1' });
    expect(c.watchNamespace).toBe('');
    expect(c.agentServerName).toBeUndefined();
    expect(c.leaderElectionId).toBe('pod-1');
  });

  it.each([
    [{ namespace: 'Bad_NS' }, '--namespace "Bad_NS" is not a valid namespace name'],
    [{ watchNamespace: 'Bad_NS' }, '--watch-namespace "Bad_NS" is not a valid namespace name'],
    [{ agentService: 'agents.stoker' }, '--agent-service "agents.stoker" is not a valid Service name'],
    [{ leaderLeaseName: 'a..b' }, '--leader-lease-name "a..b" is not a valid object name'],
    [{ leaderElectionId: 'a b' }, '--leader-election-id "a b" must be at most 253 characters without spaces'],
    [{ httpListen: 'localhost' }, '--http-listen "localhost" is not HOST:PORT'],
    [{ maxConcurrentReconciles: '0' }, '--max-concurrent-reconciles "0" is not a whole number from 1 to 1000'],
    [{ leaseDuration: 'soon' }, '--lease-duration "soon" is not a duration like 90s, 5m or 1h'],
    [{ renewDeadline: '20s' }, '--renew-deadline "20s" must be shorter than --lease-duration (default) "15s"'],
    [{ leaseDuration: '5s', retryPeriod: '1s' }, '--renew-deadline (default) "10s" must be shorter than --lease-duration "5s"'],
    [{ retryPeriod: '10s' }, '--retry-period "10s" must be shorter than --renew-deadline (default) "10s"'],
    [{ leaderElect: 'maybe' }, '--leader-elect "maybe" is not true or false'],
    [{ leaderElect: 'on' }, '--leader-elect "on" is not true or false'],
    [{ logLevel: 'loud' }, '--log-level "loud" is not one of'],
  ] satisfies [ControllerFlagInput, string][])('rejects %j with a message naming the value', (input, message) => {
    expect(() => resolveControllerConfig({ ...tls, ...input })).toThrow(ConfigError);
    expect(() => resolveControllerConfig({ ...tls, ...input })).toThrow(message);
  });

  it('names the variable a bad value came from', () => {
    expect(() => resolveControllerConfig(tls, { STOKER_LEASE_DURATION: '5s' })).toThrow(
      '--renew-deadline (default) "10s" must be shorter than --lease-duration (from STOKER_LEASE_DURATION) "5s"',
    );
  });

  it('requires the TLS files for talking to agents', () => {
    expect(() => resolveControllerConfig({ tlsCertFile: '/a', tlsPrivateKeyFile: '/b' })).toThrow('--agent-ca-file is required (or set STOKER_AGENT_CA_FILE)');
  });
});

describe('the registry policy flags', () => {
  it('are the agent\'s: --registry-allow and --registry-deny, or their STOKER_* variables', () => {
    const c = resolveControllerConfig({ ...tls, registryAllow: ['reg.io'] }, { STOKER_REGISTRY_DENY: '10.0.0.0/8' });
    expect(c.registryPolicy.allow.map((p) => p.text)).toEqual(['reg.io']);
    expect(c.registryPolicy.deny.map((p) => p.text)).toEqual(['10.0.0.0/8']);
    expect(() => resolveControllerConfig({ ...tls, registryDeny: ['.bad'] })).toThrow('--registry-deny ".bad" is not a host name');
  });
});
