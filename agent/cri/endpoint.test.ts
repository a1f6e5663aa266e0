import { describe, expect, it } from 'vitest';
import { defaultEndpoint, InvalidEndpointError, parseEndpoint } from './endpoint.js';

describe('parseEndpoint', () => {
  it('accepts unix URLs, bare socket paths and tcp', () => {
    expect(parseEndpoint('unix:///run/containerd/containerd.sock')).toEqual({
      display: 'unix:///run/containerd/containerd.sock',
      target: 'unix:///run/containerd/containerd.sock',
      socketPath: '/run/containerd/containerd.sock',
    });
    expect(parseEndpoint('/run/crio/crio.sock').display).toBe('unix:///run/crio/crio.sock');
    expect(parseEndpoint('tcp://127.0.0.1:1234').target).toBe('127.0.0.1:1234');
  });
  it.each(['', 'unix://relative.sock', 'http://x', 'tcp://nohost', 'npipe:////./pipe/x'])('rejects %j, naming it', (bad) => {
    expect(() => parseEndpoint(bad)).toThrow(InvalidEndpointError);
    expect(() => parseEndpoint(bad)).toThrow(JSON.stringify(bad));
  });
});

describe('defaultEndpoint', () => {
  it('takes containerd, then CRI-O, as crictl does', () => {
    expect(defaultEndpoint(() => true).socketPath).toBe('/run/containerd/containerd.sock');
    expect(defaultEndpoint((p) => p.includes('crio')).socketPath).toBe('/run/crio/crio.sock');
    expect(defaultEndpoint(() => false).socketPath).toBe('/run/containerd/containerd.sock');
  });
});
