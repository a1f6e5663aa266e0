// A node whose agent failed NO_SPACE is not retried until its image filesystem has more room:
// pulling again onto a disk that has not changed cannot succeed, and would only fill it again
// (hurting the pods on that node). controller/dispatch.ts holds such a node and asks its agent
// (NodeStatus.image_filesystem) for the free bytes, first right after the failure and then at
// growing pauses (the node's backoff delay, doubling up to the backoff cap); the node is retried as
// soon as the image can fit: its agent said how many free bytes it needs at least (Failure.need_bytes),
// and that many are free. When the agent could not tell, as soon as the free bytes have grown by
// SPACE_GROWTH_BYTES (less is log churn on a shared filesystem, not room for an image). Failed
// NoSpace when neither happens within the attempt timeout. Waiting for the image's size, not for
// any growth, keeps the failed pull's own leftovers, which the runtime removes afterwards, from
// looking like room.
//
// An agent that cannot measure its image filesystem (it reports none) gives "unknown": the node
// is then retried on the usual backoff. A freshly failed pull whose leftovers the runtime removes
// afterwards frees space too; that retry fails fast (the agent checks the image's size before
// downloading) and counts against backoffLimit like any other; with need_bytes known, it does not
// happen. The hold lives in this controller's memory: after a restart, the node is retried once
// before it is held again.
import type { AgentConnection } from './agent-client.js';

/** Growth of the free bytes that counts as a change. */
export const SPACE_GROWTH_BYTES = 1024 * 1024;
const NODE_STATUS_TIMEOUT_MS = 10_000;

export type SpaceVerdict = 'grown' | 'unknown' | 'timeout' | 'cancelled';

export interface SpaceWaitOptions {
  /** The node's free bytes now; undefined when its agent cannot tell (or cannot be reached). */
  freeBytes: (signal: AbortSignal) => Promise<number | undefined>;
  /** Free bytes the image needs at least (its agent's Failure.need_bytes); 0 or absent: unknown. */
  needBytes?: number;
  signal: AbortSignal;
  clock: { now(): number; sleep(ms: number, signal: AbortSignal): Promise<void> };
  firstPauseMs: number;
  maxPauseMs: number;
  /** Give up after this long: the node fails NoSpace. */
  maxWaitMs: number;
}

/**
 * Waits until the node has `needBytes` free (when known) or its free bytes grow (from what they
 * are now), the wait times out, or `signal` aborts.
 */
export async function waitForMoreSpace(o: SpaceWaitOptions): Promise<SpaceVerdict> {
  const start = o.clock.now();
  const need = o.needBytes ?? 0;
  const baseline = await o.freeBytes(o.signal).catch(() => undefined);
  if (o.signal.aborted) return 'cancelled';
  if (baseline === undefined) return 'unknown';
  for (let pause = Math.max(1, o.firstPauseMs); ; pause = Math.min(o.maxPauseMs, pause * 2)) {
    const left = o.maxWaitMs - (o.clock.now() - start);
    if (left <= 0) return 'timeout';
    await o.clock.sleep(Math.min(pause, left), o.signal);
    if (o.signal.aborted) return 'cancelled';
    // An agent that does not answer for a moment (restarting) does not end the wait.
    const free = await o.freeBytes(o.signal).catch(() => undefined);
    if (free !== undefined && (need > 0 ? free >= need : free - baseline >= SPACE_GROWTH_BYTES)) return 'grown';
  }
}

/** The free bytes a node's agent reports in NodeStatus; undefined when it reports no image filesystem. */
export async function agentFreeBytes(conn: AgentConnection, node: string, signal: AbortSignal): Promise<number | undefined> {
  const res = await conn.nodeStatus({ nodeName: node, images: [] }, { signal, timeoutMs: NODE_STATUS_TIMEOUT_MS });
  return res.imageFilesystem ? Number(res.imageFilesystem.freeBytes ?? 0) : undefined;
}
