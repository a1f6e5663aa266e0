// What the agent needs from the container runtime, and a probe that keeps asking it for its
// Version: readiness flips with the answers, and the agent keeps serving while the runtime is down.
import type { Logger } from '../../proto/common/log.js';
import type { ImageFilesystemSpace } from '../cri/image-fs.js';

export interface RuntimeVersion {
  readonly runtimeName: string;
  readonly runtimeVersion: string;
}

export interface ImagePresenceInfo {
  readonly present: boolean;
  readonly imageRef: string;
  readonly sizeBytes: number;
  /** CRI Image.pinned: the runtime exempts the image from its garbage collection. */
  readonly pinned?: boolean;
}

/** The agent's view of the runtime; run.ts adapts the CRI client to it, unit tests use fakes. */
export interface AgentRuntime {
  /** The CRI endpoint as the user wrote it, for messages. */
  readonly endpoint: string;
  version(signal: AbortSignal): Promise<RuntimeVersion>;
  imageStatus(image: string, signal: AbortSignal): Promise<ImagePresenceInfo>;
  /**
   * Removes containerd's pin label from the image's records (spec.pin on delete): `supported`
   * false where the runtime is not containerd; `unpinned` whether a label was removed.
   */
  unpin(image: string, signal: AbortSignal): Promise<{ supported: boolean; unpinned: boolean }>;
  /** CRI RemoveImage; an absent image is not an error. */
  removeImage(image: string, signal: AbortSignal): Promise<void>;
  /** The image filesystem's mount point and free bytes; never throws. */
  imageFilesystem(signal: AbortSignal): Promise<ImageFilesystemSpace>;
  close(): void;
}

export interface RuntimeState {
  readonly ready: boolean;
  readonly runtimeName: string;
  readonly runtimeVersion: string;
  /** Why the last probe failed (names the endpoint); "" when ready. */
  readonly reason: string;
  readonly checkedAt: number;
}

export interface RuntimeProbeOptions {
  intervalMs: number;
  /** Deadline of one Version call. */
  timeoutMs: number;
  log: Logger;
  onChange?: (state: RuntimeState) => void;
}

/** A short reason for a failed runtime call, safe to show: the message's first line, cut short. */
export function runtimeReason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const line = text.split('\n')[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

export class RuntimeProbe {
  private current: RuntimeState = { ready: false, runtimeName: '', runtimeVersion: '', reason: 'not probed yet', checkedAt: 0 };
  private inFlight: Promise<RuntimeState> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly stopped = new AbortController();

  constructor(
    private readonly runtime: AgentRuntime,
    private readonly opts: RuntimeProbeOptions,
  ) {}

  get state(): RuntimeState {
    return this.current;
  }

  /** Starts probing every intervalMs (the first probe at once). */
  start(): void {
    const loop = () => {
      void this.check().finally(() => {
        if (this.stopped.signal.aborted) return;
        this.timer = setTimeout(loop, this.opts.intervalMs);
        this.timer.unref();
      });
    };
    loop();
  }

  stop(): void {
    this.stopped.abort();
    clearTimeout(this.timer);
  }

  /** Asks the runtime for its Version now (joining a probe already under way). */
  check(): Promise<RuntimeState> {
    this.inFlight ??= this.probe().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async probe(): Promise<RuntimeState> {
    // Not AbortSignal.any([timeout, stopped]): on Node 20 each call leaves an entry on the
    // long-lived `stopped` signal for good, one per probe and per task, for the agent's lifetime.
    const attempt = new AbortController();
    const signal = attempt.signal;
    const onStop = (): void => attempt.abort();
    this.stopped.signal.addEventListener('abort', onStop, { once: true });
    const deadline = setTimeout(() => attempt.abort(), this.opts.timeoutMs);
    deadline.unref();
    let next: RuntimeState;
    try {
      const v = await this.runtime.version(signal);
      next = { ready: true, runtimeName: v.runtimeName, runtimeVersion: v.runtimeVersion, reason: '', checkedAt: Date.now() };
    } catch (err) {
      const why = signal.aborted && !this.stopped.signal.aborted ? `no answer within ${this.opts.timeoutMs} ms` : runtimeReason(err);
      next = {
        ready: false,
        runtimeName: this.current.runtimeName,
        runtimeVersion: this.current.runtimeVersion,
        // The CRI client's messages already name the endpoint; others get it added.
        reason: why.includes(this.runtime.endpoint) ? why : `the container runtime at ${this.runtime.endpoint} did not answer Version: ${why}`,
        checkedAt: Date.now(),
      };
    } finally {
      clearTimeout(deadline);
      this.stopped.signal.removeEventListener('abort', onStop);
    }
    const prev = this.current;
    this.current = next;
    if (prev.ready !== next.ready || prev.checkedAt === 0) {
      if (next.ready) {
        this.opts.log.info({ endpoint: this.runtime.endpoint, runtime: next.runtimeName, version: next.runtimeVersion }, 'container runtime ready');
      } else if (!this.stopped.signal.aborted) {
        this.opts.log.warn({ endpoint: this.runtime.endpoint, reason: next.reason }, 'container runtime not ready');
      }
      this.opts.onChange?.(next);
    }
    return next;
  }
}
