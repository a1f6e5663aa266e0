import { describe, expect, it } from 'vitest';
import type { V1Endpoint, V1EndpointSlice } from '@kubernetes/client-node';
import { AgentEndpointDirectory, agentSliceSelector, agentsFromSlices } from './agent-endpoints.js';

const SERVICE = 'stoker-agent';

/** A slice as Kubernetes' endpointslice controller writes it for the agents' Service. */
function slice(name: string, endpoints: V1Endpoint[], opts: { port?: number; addressType?: string; labels?: Record<string, string> } = {}): V1EndpointSlice {
  return {
    metadata: {
      name,
      namespace: 'stoker-system',
      labels: opts.labels ?? { 'kubernetes.io/service-name': SERVICE, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: opts.addressType ?? 'IPv4',
    ports: [{ name: 'grpc', port: opts.port ?? 7443, protocol: 'TCP' }],
    endpoints,
  };
}

function endpoint(node: string, address: string, ready = true, pod = `stoker-agent-${node}`): V1Endpoint {
  return { addresses: [address], nodeName: node, conditions: { ready, serving: ready, terminating: false }, targetRef: { kind: 'Pod', name: pod, namespace: 'stoker-system' } };
}

/** A fake slice informer: a list and its event handlers. */
class FakeSliceInformer {
  slices: V1EndpointSlice[] = [];
  handlers = new Map<string, Array<(s: V1EndpointSlice) => void>>();
  list = () => this.slices;
  on = (ev: string, fn: (s: V1EndpointSlice) => void) => this.handlers.set(ev, [...(this.handlers.get(ev) ?? []), fn]);
  off = (ev: string, fn: (s: V1EndpointSlice) => void) => this.handlers.set(ev, (this.handlers.get(ev) ?? []).filter((f) => f !== fn));
  emit(ev: 'add' | 'update' | 'delete', s: V1EndpointSlice) {
    for (const fn of this.handlers.get(ev) ?? []) fn(s);
  }
}

describe('agentsFromSlices', () => {
  it('maps each ready endpoint to its node, with the pod IP and the grpc port', () => {
    const agents = agentsFromSlices([slice('a', [endpoint('node-1', '10.0.0.1'), endpoint('node-2', '10.0.0.2')])], SERVICE);
    expect(agents).toEqual(
      new Map([
        ['node-1', { endpoint: '10.0.0.1:7443', pod: 'stoker-agent-node-1' }],
        ['node-2', { endpoint: '10.0.0.2:7443', pod: 'stoker-agent-node-2' }],
      ]),
    );
  });

  it('reads IPv6 slices and brackets the address', () => {
    expect(agentsFromSlices([slice('a', [endpoint('node-1', 'fd00::5')], { addressType: 'IPv6' })], SERVICE).get('node-1')?.endpoint).toBe('[fd00::5]:7443');
  });

  it('skips endpoints that are not ready, terminating, without a node or without an address of the family', () => {
    const terminating = { ...endpoint('node-3', '10.0.0.3'), conditions: { ready: false, serving: true, terminating: true } };
    const nodeless = { addresses: ['10.0.0.4'], conditions: { ready: true } };
    const wrongFamily = endpoint('node-5', 'fd00::5');
    const agents = agentsFromSlices([slice('a', [endpoint('node-1', '10.0.0.1'), endpoint('node-2', '10.0.0.2', false), terminating, nodeless, wrongFamily])], SERVICE);
    expect([...agents.keys()]).toEqual(['node-1']);
  });

  it('ignores slices of another Service, not written by the endpointslice controller, or without the grpc port', () => {
    const forged = slice('forged', [endpoint('node-1', '10.9.9.9')], { labels: { 'kubernetes.io/service-name': SERVICE } });
    const otherService = slice('other', [endpoint('node-2', '10.9.9.9')], {
      labels: { 'kubernetes.io/service-name': 'something-else', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    });
    const noPort = { ...slice('noport', [endpoint('node-3', '10.9.9.9')]), ports: [{ name: 'http-metrics', port: 7080 }] };
    const fqdn = slice('fqdn', [{ addresses: ['evil.example.com'], nodeName: 'node-4', conditions: { ready: true } }], { addressType: 'FQDN' });
    expect(agentsFromSlices([forged, otherService, noPort, fqdn], SERVICE).size).toBe(0);
  });

  it('picks the same endpoint whatever the order when a node has two ready agents', () => {
    const a = slice('a', [endpoint('node-1', '10.0.0.7', true, 'new')]);
    const b = slice('b', [endpoint('node-1', '10.0.0.1', true, 'old')]);
    expect(agentsFromSlices([a, b], SERVICE).get('node-1')).toEqual({ endpoint: '10.0.0.1:7443', pod: 'old' });
    expect(agentsFromSlices([b, a], SERVICE).get('node-1')).toEqual({ endpoint: '10.0.0.1:7443', pod: 'old' });
  });

  it('uses each slice its own port (agents whose grpc port differs land in different slices)', () => {
    const agents = agentsFromSlices([slice('a', [endpoint('node-1', '10.0.0.1')], { port: 7001 }), slice('b', [endpoint('node-2', '10.0.0.1')], { port: 7002 })], SERVICE);
    expect(agents.get('node-1')?.endpoint).toBe('10.0.0.1:7001');
    expect(agents.get('node-2')?.endpoint).toBe('10.0.0.1:7002');
  });
});

describe('agentSliceSelector', () => {
  it('asks for the Service and the endpointslice controller', () => {
    expect(agentSliceSelector('stoker-agent')).toBe('kubernetes.io/service-name=stoker-agent,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io');
  });
});

describe('AgentEndpointDirectory', () => {
  it("emits 'change' when an agent appears, moves, turns not ready or goes, and not for other updates", () => {
    const inf = new FakeSliceInformer();
    const dir = new AgentEndpointDirectory({ informer: inf, service: SERVICE });
    let changes = 0;
    dir.on('change', () => changes++);
    const set = (ev: 'add' | 'update' | 'delete', s: V1EndpointSlice[]) => {
      inf.slices = s;
      inf.emit(ev, s[0] ?? slice('a', []));
    };
    set('add', [slice('a', [endpoint('node-1', '10.0.0.1')])]);
    expect(changes).toBe(1);
    expect(dir.get('node-1')?.endpoint).toBe('10.0.0.1:7443');
    // The pod is replaced on the same node with the same IP: nothing a reader sees changed.
    set('update', [slice('a', [endpoint('node-1', '10.0.0.1', true, 'stoker-agent-xyz')])]);
    expect(changes).toBe(1);
    set('update', [slice('a', [endpoint('node-1', '10.0.0.9')])]);
    expect(changes).toBe(2);
    set('update', [slice('a', [endpoint('node-1', '10.0.0.9', false)])]);
    expect(changes).toBe(3);
    expect(dir.get('node-1')).toBeUndefined();
    set('update', [slice('a', [endpoint('node-1', '10.0.0.9')])]);
    set('delete', []);
    expect(changes).toBe(5);
    expect(dir.live().size).toBe(0);
    dir.stop();
    set('add', [slice('a', [endpoint('node-1', '10.0.0.1')])]);
    expect(changes).toBe(5);
  });

  it('keeps what it last saw while no event or list says otherwise (no clock runs out)', () => {
    const inf = new FakeSliceInformer();
    inf.slices = [slice('a', [endpoint('node-1', '10.0.0.1')])];
    const dir = new AgentEndpointDirectory({ informer: inf, service: SERVICE });
    expect(dir.get('node-1')?.endpoint).toBe('10.0.0.1:7443');
    expect(dir.live()).toEqual(new Map([['node-1', { endpoint: '10.0.0.1:7443', pod: 'stoker-agent-node-1' }]]));
    dir.stop();
  });
});
