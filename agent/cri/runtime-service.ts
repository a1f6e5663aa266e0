// The CRI RuntimeService, thin: only Version, which proves the socket at start-up and names
// the runtime (containerd, cri-o) so the image layer knows whether byte progress exists.
import type * as grpc from '@grpc/grpc-js';
import { criProto, type CriVersion, type RuntimeServiceClient } from '../../proto/cri.js';
import { unary } from './call.js';
import { translateCallError } from './errors.js';

export const VERSION_TIMEOUT_MS = 10_000;
/** The kubelet's CRI API version, sent as VersionRequest.version. */
const KUBELET_API_VERSION = 'v1';

export class RuntimeService {
  private readonly client: RuntimeServiceClient;

  constructor(
    target: string,
    credentials: grpc.ChannelCredentials,
    options: grpc.ChannelOptions,
    private readonly endpoint: string,
  ) {
    this.client = new (criProto().RuntimeService)(target, credentials, options);
  }

  async version(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<CriVersion> {
    try {
      return await unary<CriVersion>((md, o, cb) => this.client.version({ version: KUBELET_API_VERSION }, md, o, cb), {
        timeoutMs: opts.timeoutMs ?? VERSION_TIMEOUT_MS,
        signal: opts.signal,
      });
    } catch (err) {
      throw translateCallError(err, 'asking the container runtime for its version', this.endpoint);
    }
  }

  close(): void {
    this.client.close();
  }
}
