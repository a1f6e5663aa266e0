// Byte progress of CRI pulls, which CRI itself does not report: containerd's content service
// (same socket) lists its active ingests in the "k8s.io" namespace, each with an offset and a
// total. A blob's ingest disappears when the blob is committed.
//
// Attribution: ingests carry no image name (refs look like "layer-sha256:<digest>"), so an
// ingest is attributed to the pulls that were in flight when it first appeared (or, for an
// ingest left over from before, when it first moved). With one pull in flight the figures
// are exact. With several, an ingest that appeared while several ran is shared: it counts for
// each of them, and their progress is marked `exclusive: false` (callers then show bytes only
// in aggregate; the watchdog still uses them, a shared blob that moves is progress for all).
//
// Once a pull knows its image's blobs (the manifest in the content store, agent/cri/image-size.ts),
// it claims them: from then on it owns exactly the ingests of those digests (containerd's ingest
// refs end in the blob's digest), whoever was in flight when they appeared, and its figures are
// its own image's bytes, with the image's size as the total. A blob two images share counts for
// both, as it does for each image.
import type { Ingest } from './content-service.js';

export interface PullBytes {
  bytesDone: number;
  bytesTotal: number;
  /** Every ingest counted here appeared while this pull was the only one in flight. */
  exclusive: boolean;
  /** Ingests of this pull still being written. */
  active: number;
  /** Whether any ingest was ever attributed to this pull. */
  seenAny: boolean;
  /** Date.now() of the last new byte, new ingest or finished ingest; the pull's start before any. */
  lastProgressAt: number;
}

export interface PullProgressHandle {
  snapshot(): PullBytes;
  /** The image's blobs still to download (digest and size): its progress becomes its own. */
  claim(blobs: readonly { digest: string; size: number }[]): void;
  end(): void;
}

interface TrackedIngest {
  /** The blob's digest, from the ref's tail ("layer-sha256:<hex>"); undefined when the ref has none. */
  digest: string | undefined;
  offset: number;
  total: number;
  done: boolean;
  owners: Set<Tracked>;
}

interface Tracked {
  refs: Set<TrackedIngest>;
  lastProgressAt: number;
  /** Digest -> size of the blobs the pull claimed; undefined until it knows its manifest. */
  claimed?: Map<string, number>;
}

const DIGEST_TAIL = /(sha256|sha384|sha512):[0-9a-f]+$/;

function digestOfRef(ref: string): string | undefined {
  return DIGEST_TAIL.exec(ref)?.[0];
}

export interface TrackerOptions {
  intervalMs?: number;
  now?: () => number;
  /** Called when listing fails (the runtime may be gone); the pull itself reports the failure. */
  onError?: (err: unknown) => void;
}

/**
 * Polls the ingest list while at least one pull is in flight and keeps per-pull byte counts.
 * One tracker per runtime connection; `poll()` is public so tests can drive it without timers.
 */
export class PullProgressTracker {
  private readonly active = new Set<Tracked>();
  /** Ingests by ref; entries without owners are leftovers seen before any pull claimed them. */
  private readonly ingests = new Map<string, TrackedIngest>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  /** False until the first listing of a polling session (which only records leftovers). */
  private sessionStarted = false;
  private session = 0;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(
    private readonly list: () => Promise<Ingest[]>,
    private readonly opts: TrackerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 500;
    this.now = opts.now ?? Date.now;
  }

  begin(): PullProgressHandle {
    const tracked: Tracked = { refs: new Set(), lastProgressAt: this.now() };
    const firstPull = this.active.size === 0;
    this.active.add(tracked);
    if (firstPull && this.timer === undefined) {
      // Ingests present before this polling session belong to nobody until they move.
      this.timer = setInterval(() => void this.poll(), this.intervalMs);
      this.timer.unref();
      void this.poll();
    }
    return {
      snapshot: () => this.snapshot(tracked),
      claim: (blobs) => this.claim(tracked, blobs),
      end: () => {
        this.active.delete(tracked);
        for (const ingest of tracked.refs) ingest.owners.delete(tracked);
        if (this.active.size === 0) this.stop();
      },
    };
  }

  private claim(t: Tracked, blobs: readonly { digest: string; size: number }[]): void {
    t.claimed = new Map(blobs.map((b) => [b.digest, b.size]));
    for (const ingest of this.ingests.values()) this.attribute(ingest, t);
  }

  /** A claimed pull owns an ingest exactly when the ingest's blob is one of its claimed blobs. */
  private attribute(ingest: TrackedIngest, t: Tracked): void {
    if (!t.claimed) return;
    if (ingest.digest !== undefined && t.claimed.has(ingest.digest)) {
      ingest.owners.add(t);
      t.refs.add(ingest);
    } else {
      ingest.owners.delete(t);
      t.refs.delete(ingest);
    }
  }

  /** One listing; concurrent calls share it. */
  poll(): Promise<void> {
    const session = this.session;
    this.polling ??= this.list()
      .then((ingests) => {
        if (session === this.session && this.active.size > 0) this.apply(ingests);
      })
      .catch((err: unknown) => this.opts.onError?.(err))
      .finally(() => {
        this.polling = undefined;
      });
    return this.polling;
  }

  private apply(list: Ingest[]): void {
    const now = this.now();
    const seen = new Set<string>();
    for (const { ref, offset, total } of list) {
      seen.add(ref);
      let ingest = this.ingests.get(ref);
      if (!ingest) {
        // A ref first seen in the first listing of a session predates the pulls: unowned.
        const digest = digestOfRef(ref);
        const owners = new Set<Tracked>();
        for (const t of this.active) {
          // A claimed pull knows its blobs; the others take what appears while they run.
          const mine = t.claimed ? digest !== undefined && t.claimed.has(digest) : this.sessionStarted;
          if (mine) owners.add(t);
        }
        ingest = { digest, offset, total, done: false, owners };
        this.ingests.set(ref, ingest);
        for (const t of owners) {
          t.refs.add(ingest);
          t.lastProgressAt = now;
        }
        continue;
      }
      const moved = offset > ingest.offset || (total > 0 && total !== ingest.total);
      if (moved && ingest.owners.size === 0 && this.active.size > 0) {
        // A leftover ingest that moves again (a resumed blob) belongs to the pulls now running.
        for (const t of this.active) {
          if (t.claimed && !(ingest.digest !== undefined && t.claimed.has(ingest.digest))) continue;
          ingest.owners.add(t);
          t.refs.add(ingest);
        }
      }
      if (moved) for (const t of ingest.owners) t.lastProgressAt = now;
      ingest.offset = Math.max(ingest.offset, offset);
      if (total > 0) ingest.total = total;
    }
    for (const [ref, ingest] of this.ingests) {
      if (seen.has(ref)) continue;
      // Gone from the list: committed (or abandoned). Count it as complete for its owners.
      if (!ingest.done) {
        ingest.done = true;
        if (ingest.total > 0) ingest.offset = ingest.total;
        for (const t of ingest.owners) t.lastProgressAt = now;
      }
      if (ingest.owners.size === 0) this.ingests.delete(ref);
    }
    this.sessionStarted = true;
  }

  private snapshot(t: Tracked): PullBytes {
    let bytesDone = 0;
    let bytesTotal = 0;
    let exclusive = true;
    let active = 0;
    for (const ingest of t.refs) {
      bytesDone += ingest.offset;
      bytesTotal += Math.max(ingest.total, ingest.offset);
      if (ingest.owners.size > 1) exclusive = false;
      if (!ingest.done) active++;
    }
    if (t.claimed) {
      // Its own image's bytes; the total is the image's, blobs not seen yet included.
      let claimedTotal = 0;
      for (const size of t.claimed.values()) claimedTotal += size;
      return { bytesDone, bytesTotal: Math.max(bytesTotal, claimedTotal), exclusive: true, active, seenAny: t.refs.size > 0, lastProgressAt: t.lastProgressAt };
    }
    return { bytesDone, bytesTotal, exclusive, active, seenAny: t.refs.size > 0, lastProgressAt: t.lastProgressAt };
  }

  /** Aggregate over every ingest any running pull owns: the honest total while several run. */
  aggregate(): { bytesDone: number; bytesTotal: number } {
    const all = new Set<TrackedIngest>();
    for (const t of this.active) for (const i of t.refs) all.add(i);
    let bytesDone = 0;
    let bytesTotal = 0;
    for (const i of all) {
      bytesDone += i.offset;
      bytesTotal += Math.max(i.total, i.offset);
    }
    return { bytesDone, bytesTotal };
  }

  private stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.session++;
    this.sessionStarted = false;
    this.ingests.clear();
  }

  close(): void {
    this.active.clear();
    this.stop();
  }
}
