// CRI endpoints: parsing "unix:///run/containerd/containerd.sock" (or a bare socket path) into
// a gRPC target, and the default search order crictl uses (containerd's socket, then CRI-O's).
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';

export const DEFAULT_CRI_ENDPOINTS: readonly string[] = Object.freeze([
  'unix:///run/containerd/containerd.sock',
  'unix:///run/crio/crio.sock',
]);

export class InvalidEndpointError extends Error {
  constructor(
    readonly endpoint: string,
    /** What is wrong, without the endpoint: "a tcp endpoint is tcp://host:port". */
    readonly reason: string,
  ) {
    super(`invalid CRI endpoint ${JSON.stringify(endpoint)}: ${reason}`);
    this.name = 'InvalidEndpointError';
  }
}

export interface CriEndpoint {
  /** As the user should read it: "unix:///run/containerd/containerd.sock". */
  readonly display: string;
  /** The gRPC target grpc-js connects to. */
  readonly target: string;
  /** The socket path for unix endpoints. */
  readonly socketPath?: string;
}

/** Parses "unix:///path", "/path" or "tcp://host:port". Throws InvalidEndpointError. */
export function parseEndpoint(input: string): CriEndpoint {
  const value = input.trim();
  if (value === '') throw new InvalidEndpointError(input, 'it is empty');
  if (value.startsWith('unix://')) {
    const path = value.slice('unix://'.length);
    if (!isAbsolute(path)) throw new InvalidEndpointError(input, 'a unix endpoint needs an absolute socket path (unix:///path)');
    return Object.freeze({ display: `unix://${path}`, target: `unix://${path}`, socketPath: path });
  }
  if (value.startsWith('/')) return Object.freeze({ display: `unix://${value}`, target: `unix://${value}`, socketPath: value });
  if (value.startsWith('tcp://')) {
    const hostPort = value.slice('tcp://'.length);
    if (!/^[^/:]+:[0-9]+$/.test(hostPort) && !/^\[[0-9a-fA-F:]+\]:[0-9]+$/.test(hostPort)) {
      throw new InvalidEndpointError(input, 'a tcp endpoint is tcp://host:port');
    }
    return Object.freeze({ display: value, target: hostPort });
  }
  throw new InvalidEndpointError(input, 'use unix:///path/to/socket (or tcp://host:port)');
}

/**
 * The endpoint to use when none is given: the first default whose socket exists, as crictl
 * does; if none exists, containerd's (so the error names the usual place).
 */
export function defaultEndpoint(exists: (path: string) => boolean = existsSync): CriEndpoint {
  for (const candidate of DEFAULT_CRI_ENDPOINTS) {
    const endpoint = parseEndpoint(candidate);
    if (endpoint.socketPath !== undefined && exists(endpoint.socketPath)) return endpoint;
  }
  return parseEndpoint(DEFAULT_CRI_ENDPOINTS[0] ?? 'unix:///run/containerd/containerd.sock');
}
