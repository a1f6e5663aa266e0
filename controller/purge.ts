// spec.onDelete: Purge and spec.pin. When a Warmup is deleted (the stoker.io/cancel finalizer holds
// the delete until its work is cancelled), each node it may have warmed is asked to let go, through
// the agent's Release call: with pin (whatever onDelete says), its images lose containerd's pin
// label; with Purge, its images are removed from the runtime (CRI RemoveImage) and its paths' files
// dropped from the page cache (posix_fadvise DONTNEED).
//
//   const plan = releasePlan(w, nodes, others, targetsOf);   // Map<node, { images, paths, kept }>
//   const totals = await purge(plan, agents, connect, log);
//   events.record(w, 'Normal', 'Purged', purgeMessage(totals));
//
// What another live Warmup still wants on a node is left there: an image it names (compared in
// normalised form: "nginx" and "docker.io/library/nginx:latest" are one image), and a path that
// lies inside, contains or equals one of its paths (dropping a parent would evict its files). An
// image keeps its pin label while another live Warmup with pin on that node names it.
// A node without a live agent is counted, not waited for: an unreachable agent does not hold up a
// deletion, as with Cancel.
import { formatBytes } from '../proto/common/bytes.js';
import { parseImageReference } from '../proto/common/image-reference.js';
import type { Logger } from '../proto/common/log.js';
import type { PathTask } from '../proto/gen/stoker/v1/PathTask.js';
import type { AgentConnection } from './agent-client.js';
import { nodeToken, readRecord, resolveSpec, type ResolvedSpec, type Warmup } from './api/types.js';

/** Deadline of one Release call: removing a large image deletes many snapshots. */
export const RELEASE_TIMEOUT_MS = 150_000;

export interface NodeRelease {
  /** Images to remove (Purge). */
  images: string[];
  /** Images that stay but lose the pin label (pin; not those removed anyway). */
  unpinImages: string[];
  /** Images left pinned because another live Warmup with pin targeting this node names them. */
  keptPins: number;
  paths: PathTask[];
  /** Images left because another live Warmup targeting this node names them. */
  keptImages: number;
  /** Paths left because another live Warmup targeting this node overlaps them. */
  keptPaths: number;
}

export interface PurgeTotals {
  nodes: number;
  unreachable: number;
  imagesRemoved: number;
  /** Images whose pin label was removed. */
  imagesUnpinned: number;
  /** Images left pinned for another Warmup. */
  keptPins: number;
  imageBytes: number;
  pageCacheBytes: number;
  keptImages: number;
  keptPaths: number;
  /** Items an agent could not release (its failure). */
  failures: number;
}

function normalise(image: string): string {
  try {
    return parseImageReference(image).normalized;
  } catch {
    return image;
  }
}

function overlaps(a: string, b: string): boolean {
  const inside = (child: string, parent: string): boolean => child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);
  return inside(a, b) || inside(b, a);
}

/**
 * The nodes the Warmup may have warmed (its targets now, and those status records as done,
 * failed or in flight) and, for each, what to release there.
 */
export function releasePlan(
  w: Warmup,
  nodeNames: readonly string[],
  others: readonly Warmup[],
  targetsOf: (spec: ResolvedSpec) => ReadonlySet<string>,
): Map<string, NodeRelease> {
  const spec = resolveSpec(w.spec);
  const purging = spec.onDelete === 'Purge';
  const recorded = new Set([...readRecord(w.status?.record?.succeeded), ...readRecord(w.status?.record?.failed)]);
  const active = new Set((w.status?.activeNodeList ?? []).map((a) => a.name));
  const targets = targetsOf(spec);
  const live = others.filter((o) => o.metadata.uid !== w.metadata.uid && !o.metadata.deletionTimestamp);
  const wanted = live.map((o) => {
    const s = resolveSpec(o.spec);
    return { targets: targetsOf(s), pin: s.pin, images: new Set(s.images.map((i) => normalise(i.image))), paths: s.paths.map((p) => p.path) };
  });
  const plan = new Map<string, NodeRelease>();
  for (const node of nodeNames) {
    if (!targets.has(node) && !active.has(node) && !recorded.has(nodeToken(node))) continue;
    const here = wanted.filter((o) => o.targets.has(node));
    const images: string[] = [];
    const unpinImages: string[] = [];
    let keptImages = 0;
    let keptPins = 0;
    for (const { image } of spec.images) {
      const removed = purging && !here.some((o) => o.images.has(normalise(image)));
      if (purging && !removed) keptImages++;
      if (removed) images.push(image);
      if (!spec.pin || removed) continue;
      if (here.some((o) => o.pin && o.images.has(normalise(image)))) keptPins++;
      else unpinImages.push(image);
    }
    const paths: PathTask[] = [];
    let keptPaths = 0;
    for (const p of purging ? spec.paths : []) {
      if (here.some((o) => o.paths.some((q) => overlaps(p.path, q)))) keptPaths++;
      else paths.push({ path: p.path, include: p.include, exclude: p.exclude });
    }
    plan.set(node, { images, unpinImages, paths, keptImages, keptPins, keptPaths });
  }
  return plan;
}

/** Sends each node its Release (up to `parallelism` at once) and adds up what they freed. */
export async function purge(
  plan: ReadonlyMap<string, NodeRelease>,
  agents: ReadonlyMap<string, { endpoint: string }>,
  connect: (endpoint: string) => AgentConnection,
  log: Logger,
  opts: { timeoutMs?: number; parallelism?: number } = {},
): Promise<PurgeTotals> {
  const totals: PurgeTotals = { nodes: 0, unreachable: 0, imagesRemoved: 0, imagesUnpinned: 0, keptPins: 0, imageBytes: 0, pageCacheBytes: 0, keptImages: 0, keptPaths: 0, failures: 0 };
  const queue = [...plan.entries()];
  const one = async (node: string, r: NodeRelease): Promise<void> => {
    totals.keptImages += r.keptImages;
    totals.keptPaths += r.keptPaths;
    totals.keptPins += r.keptPins;
    if (r.images.length === 0 && r.unpinImages.length === 0 && r.paths.length === 0) return;
    const endpoint = agents.get(node)?.endpoint;
    const agent = endpoint !== undefined ? connect(endpoint) : undefined;
    if (!agent?.release) {
      totals.unreachable++;
      return;
    }
    try {
      const res = await agent.release({ nodeName: node, images: r.images, unpinImages: r.unpinImages, paths: r.paths }, { timeoutMs: opts.timeoutMs ?? RELEASE_TIMEOUT_MS });
      totals.nodes++;
      for (const u of res.unpinned) {
        if (u.unpinned) totals.imagesUnpinned++;
        if (u.failure) totals.failures++;
      }
      for (const i of res.images) {
        if (i.removed) {
          totals.imagesRemoved++;
          totals.imageBytes += Number(i.sizeBytes);
        }
        if (i.failure) totals.failures++;
      }
      for (const p of res.paths) {
        const before = Number(p.residentBytesBefore);
        const after = Number(p.residentBytesAfter);
        if (before >= 0 && after >= 0 && before > after) totals.pageCacheBytes += before - after;
        if (p.failure) totals.failures++;
      }
    } catch (err) {
      totals.unreachable++;
      log.warn({ node, reason: err instanceof Error ? err.message : String(err) }, 'release not done on a node');
    }
  };
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next; next = queue.shift()) await one(...next);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.parallelism ?? 10, queue.length)) }, worker));
  return totals;
}

/** The Purged (or Unpinned) Event's message: what was freed, what was kept, and where it could not be done. */
export function purgeMessage(t: PurgeTotals, purged = true): string {
  const parts = [
    purged
      ? `released on ${t.nodes} node(s): removed ${t.imagesRemoved} image(s) (${formatBytes(t.imageBytes)}), dropped ${formatBytes(t.pageCacheBytes)} of page cache`
      : `released on ${t.nodes} node(s)`,
  ];
  if (t.imagesUnpinned > 0 || !purged) parts.push(`removed the pin label from ${t.imagesUnpinned} image(s)`);
  if (t.keptImages + t.keptPaths > 0) parts.push(`kept ${t.keptImages} image(s) and ${t.keptPaths} path(s) another Warmup still wants`);
  if (t.keptPins > 0) parts.push(`left ${t.keptPins} image(s) pinned for another Warmup with pin`);
  if (t.failures > 0) parts.push(`${t.failures} item(s) could not be released (the agents' logs say why)`);
  if (t.unreachable > 0) parts.push(`${t.unreachable} node(s) not reached`);
  return parts.join('; ');
}
