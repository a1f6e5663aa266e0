// Compares two V8 heap snapshots of one process (v8.writeHeapSnapshot, --heapsnapshot-signal):
// which objects were allocated after the first and are still alive in the second, grouped by
// constructor (or by kind: strings, code, closures by function name), with their bytes and the
// retainer chains that hold most of them. Object ids are stable across the snapshots of one
// process, so "new and alive" is exact, not a difference of counts (Node's own native objects
// are the exception: they are left out).
//
//   console.log(await compareSnapshots('a.heapsnapshot', 'b.heapsnapshot', { top: 15, chains: 3 }));
//   npx tsx test/support/heap-snapshot.ts a.heapsnapshot b.heapsnapshot [--top N] [--chains N]
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

interface RawSnapshot {
  snapshot: {
    meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Heap {
  count: number;
  ids: Float64Array;
  keys: string[];
  selfSize: Float64Array;
  /** Reverse edges in CSR form: retainers of node i are retainerNode[retainerStart[i] .. retainerStart[i+1]). */
  retainerStart: Uint32Array;
  retainerNode: Uint32Array;
  retainerEdge: string[];
}

const NAMED_KINDS = new Set(['object', 'native', 'hidden', 'array', 'synthetic', 'closure', 'object shape']);

async function load(file: string): Promise<Heap> {
  const raw = JSON.parse(await readFile(file, 'utf8')) as RawSnapshot;
  const { meta } = raw.snapshot;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const [nType, nName, nId, nSize, nEdges] = ['type', 'name', 'id', 'self_size', 'edge_count'].map((f) => meta.node_fields.indexOf(f)) as [number, number, number, number, number];
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((f) => meta.edge_fields.indexOf(f)) as [number, number, number];
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const count = raw.nodes.length / nf;
  const ids = new Float64Array(count);
  const selfSize = new Float64Array(count);
  const keys: string[] = new Array<string>(count);
  const firstEdge = new Uint32Array(count + 1);
  for (let i = 0, e = 0; i < count; i++) {
    const o = i * nf;
    ids[i] = raw.nodes[o + nId]!;
    selfSize[i] = raw.nodes[o + nSize]!;
    const kind = nodeTypes[raw.nodes[o + nType]!] ?? '?';
    keys[i] = NAMED_KINDS.has(kind) ? `${kind === 'object' ? '' : `(${kind}) `}${raw.strings[raw.nodes[o + nName]!] ?? '?'}` : `(${kind})`;
    firstEdge[i] = e;
    e += raw.nodes[o + nEdges]!;
    firstEdge[i + 1] = e;
  }
  const edgeCount = raw.edges.length / ef;
  const retainerCount = new Uint32Array(count + 1);
  for (let j = 0; j < edgeCount; j++) retainerCount[raw.edges[j * ef + eTo]! / nf]!++;
  const retainerStart = new Uint32Array(count + 1);
  for (let i = 0; i < count; i++) retainerStart[i + 1] = retainerStart[i]! + retainerCount[i]!;
  const fill = retainerStart.slice(0, count);
  const retainerNode = new Uint32Array(edgeCount);
  const retainerEdge: string[] = new Array<string>(edgeCount);
  for (let from = 0; from < count; from++) {
    for (let j = firstEdge[from]!; j < firstEdge[from + 1]!; j++) {
      const to = raw.edges[j * ef + eTo]! / nf;
      const type = edgeTypes[raw.edges[j * ef + eType]!] ?? '?';
      const nameOrIndex = raw.edges[j * ef + eName]!;
      const slot = fill[to]!++;
      retainerNode[slot] = from;
      retainerEdge[slot] = type === 'weak' ? '~weak' : type === 'element' || type === 'hidden' ? `[${nameOrIndex}]` : (raw.strings[nameOrIndex] ?? '?');
    }
  }
  return { count, ids, keys, selfSize, retainerStart, retainerNode, retainerEdge };
}

/** One retainer chain of node i, upwards: "Map <-table- EventRecorder <-seen- ...". */
function chainOf(heap: Heap, start: number, hops: number): string {
  const parts: string[] = [];
  const seen = new Set<number>([start]);
  let cur = start;
  for (let h = 0; h < hops; h++) {
    let next = -1;
    let edge = '';
    for (let j = heap.retainerStart[cur]!; j < heap.retainerStart[cur + 1]!; j++) {
      const from = heap.retainerNode[j]!;
      if (heap.retainerEdge[j] === '~weak' || seen.has(from)) continue;
      next = from;
      edge = heap.retainerEdge[j]!;
      // Prefer a named property over an array slot or a closure's context.
      if (!edge.startsWith('[')) break;
    }
    if (next < 0) break;
    seen.add(next);
    // Slots of arrays and hash tables are numbered; the number would only split equal chains.
    parts.push(`${/^\[?\d+\]?$/.test(edge) ? '[]' : `.${edge}`} of ${heap.keys[next]}`);
    cur = next;
    if (heap.keys[next]?.startsWith('(synthetic)')) break;
  }
  return parts.join(' ');
}

export interface CompareOptions {
  /** Groups to show, largest first. Default 20. */
  top?: number;
  /** Retainer chains shown per group. Default 3. */
  chains?: number;
  /** Hops per chain. Default 8. */
  hops?: number;
}

/** A text report of the objects in `after` that did not exist in `before`, by group. */
export async function compareSnapshots(before: string, after: string, opts: CompareOptions = {}): Promise<string> {
  const a = await load(before);
  const old = new Set<number>(a.ids);
  const b = await load(after);
  const groups = new Map<string, { count: number; bytes: number; nodes: number[] }>();
  let total = 0;
  let totalCount = 0;
  for (let i = 0; i < b.count; i++) {
    if (old.has(b.ids[i]!)) continue;
    const key = b.keys[i]!;
    // Node's own native objects (embedder nodes) get new ids in every snapshot: never "new".
    if (key.startsWith('(synthetic)') || key.startsWith('(native) Node /')) continue;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { count: 0, bytes: 0, nodes: [] }));
    g.count++;
    g.bytes += b.selfSize[i]!;
    if (g.nodes.length < 2000) g.nodes.push(i);
    total += b.selfSize[i]!;
    totalCount++;
  }
  const lines = [`  ${totalCount} new objects alive, ${(total / 1024).toFixed(0)} KiB (self sizes); by group, largest first:`];
  const sorted = [...groups].sort((x, y) => y[1].bytes - x[1].bytes).slice(0, opts.top ?? 20);
  for (const [key, g] of sorted) {
    lines.push(`  ${String(g.count).padStart(8)} ${(g.bytes / 1024).toFixed(0).padStart(7)} KiB  ${key}`);
    const chains = new Map<string, number>();
    for (const i of g.nodes) {
      const c = chainOf(b, i, opts.hops ?? 8);
      chains.set(c, (chains.get(c) ?? 0) + 1);
    }
    for (const [c, n] of [...chains].sort((x, y) => y[1] - x[1]).slice(0, opts.chains ?? 3)) {
      lines.push(`      ${String(n).padStart(5)}x ${c}`);
    }
  }
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [before, after, ...rest] = process.argv.slice(2);
  if (!before || !after) {
    process.stderr.write('usage: npx tsx test/support/heap-snapshot.ts BEFORE.heapsnapshot AFTER.heapsnapshot [--top N] [--chains N] [--hops N]\n');
    process.exit(2);
  }
  const num = (name: string) => {
    const i = rest.indexOf(name);
    return i >= 0 ? Number(rest[i + 1]) : undefined;
  };
  const top = num('--top');
  const chains = num('--chains');
  const hops = num('--hops');
  console.log(await compareSnapshots(before, after, { ...(top ? { top } : {}), ...(chains ? { chains } : {}), ...(hops ? { hops } : {}) }));
}
