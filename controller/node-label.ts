// The node label a keepWarm Warmup puts on each node that is warm for it, so a workload can prefer
// warm nodes with an ordinary nodeAffinity (preferredDuringSchedulingIgnoredDuringExecution):
//
//   warm.stoker.io/<namespace>.<name>: "true"
//
// nodeLabelKey() gives the key; when "<namespace>.<name>" is longer than a label name may be (63
// characters) it keeps a prefix and appends a hash of the whole, so the key is stable and unique.
// status.nodeLabel always names the key.
//
//   const labeller = new NodeLabeller({ nodes, patch, log });
//   await labeller.sync(key, new Set(['node-1', 'node-2']));   // exactly these nodes carry it
//   await labeller.sync(key, new Set());                       // none (node cold, Warmup deleted)
//
// sync() is level-triggered: it compares what it wants with the labels in the node informer's
// cache and patches only the difference, so nothing is written while nothing changes, and a
// restarted controller picks up where the last one left off. A label it has just patched is
// trusted until the cache shows it (the informer lags a little behind the API server). Calls for
// one key run one at a time; a call made while one runs is folded into a run after it.
import { createHash } from 'node:crypto';
import type { V1Node } from '@kubernetes/client-node';
import type { Logger } from '../proto/common/log.js';
import { kubeErrorStatus } from '../proto/common/kube-errors.js';

export const NODE_LABEL_PREFIX = 'warm.stoker.io/';
const MAX_NAME = 63;
const HASH_CHARS = 10;

/** The label key of a Warmup: warm.stoker.io/<namespace>.<name>, shortened stably past 63 characters. */
export function nodeLabelKey(namespace: string, name: string): string {
  const full = `${namespace}.${name}`;
  if (full.length <= MAX_NAME) return `${NODE_LABEL_PREFIX}${full}`;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, HASH_CHARS);
  // A label name ends with an alphanumeric character: no "." or "-" before the hash's separator.
  const head = full.slice(0, MAX_NAME - HASH_CHARS - 1).replace(/[^a-z0-9]+$/, '');
  return `${NODE_LABEL_PREFIX}${head}-${hash}`;
}

/** Sets (value "true") or removes (null) one label on one Node; a Node that is gone is not an error. */
export type PatchNodeLabel = (node: string, key: string, value: 'true' | null) => Promise<void>;

export interface NodeLabellerOptions {
  nodes: { get(name: string): V1Node | undefined; list(): V1Node[] };
  patch: PatchNodeLabel;
  log: Logger;
  /** Patches in flight at once per key. Default 8. */
  concurrency?: number;
}

export class NodeLabeller {
  readonly #opts: NodeLabellerOptions;
  /** Per key: the nodes wanted with the label (the latest sync call). */
  readonly #wants = new Map<string, Set<string>>();
  /** Per key: node -> labelled or not, as last patched, until the cache shows the same. */
  readonly #patched = new Map<string, Map<string, boolean>>();
  readonly #running = new Map<string, Promise<void>>();
  readonly #dirty = new Set<string>();
  /** Label patches sent (for tests and benchmarks). */
  writes = 0;

  constructor(opts: NodeLabellerOptions) {
    this.#opts = opts;
  }

  /** Makes exactly `want` carry the label `key`; rejects when a patch failed (the next call retries). */
  sync(key: string, want: ReadonlySet<string>): Promise<void> {
    this.#wants.set(key, new Set(want));
    const running = this.#running.get(key);
    if (running) {
      this.#dirty.add(key);
      return running;
    }
    const run = (async () => {
      let failure: Error | undefined;
      do {
        this.#dirty.delete(key);
        failure = await this.#apply(key);
      } while (this.#dirty.has(key));
      if (failure) throw failure;
    })().finally(() => this.#running.delete(key));
    this.#running.set(key, run);
    return run;
  }

  /** The nodes carrying `key` as far as this labeller knows (the cache, and its own patches). */
  labelled(key: string): Set<string> {
    const patched = this.#patched.get(key) ?? new Map<string, boolean>();
    const out = new Set<string>();
    for (const n of this.#opts.nodes.list()) {
      const name = n.metadata?.name;
      if (!name) continue;
      const cached = n.metadata?.labels?.[key] !== undefined;
      const mine = patched.get(name);
      if (mine !== undefined && mine !== cached) {
        if (mine) out.add(name);
        continue;
      }
      patched.delete(name);
      if (cached) out.add(name);
    }
    return out;
  }

  async #apply(key: string): Promise<Error | undefined> {
    const want = this.#wants.get(key) ?? new Set<string>();
    const has = this.labelled(key);
    const ops: [string, 'true' | null][] = [];
    for (const n of want) if (!has.has(n) && this.#opts.nodes.get(n)) ops.push([n, 'true']);
    for (const n of has) if (!want.has(n)) ops.push([n, null]);
    let patched = this.#patched.get(key);
    if (!patched) {
      patched = new Map();
      this.#patched.set(key, patched);
    }
    let failure: Error | undefined;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < ops.length) {
        const [node, value] = ops[next++] as [string, 'true' | null];
        try {
          await this.#opts.patch(node, key, value);
          this.writes++;
          patched.set(node, value !== null);
          this.#opts.log.info({ node, label: key, present: value !== null }, value ? 'node labelled warm' : 'node label removed');
        } catch (err) {
          if (kubeErrorStatus(err) === 404) continue;
          failure ??= err instanceof Error ? err : new Error(`patching the label ${key} of node ${node} failed`);
          this.#opts.log.warn({ node, label: key, reason: err instanceof Error ? err.message : String(err) }, 'could not patch the node label');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#opts.concurrency ?? 8, ops.length) }, worker));
    // Nothing wanted any more (Warmup deleted, suspended, no longer keepWarm): keep nothing for it.
    if (want.size === 0 && !this.#dirty.has(key)) {
      this.#wants.delete(key);
      this.#patched.delete(key);
    }
    return failure;
  }
}
