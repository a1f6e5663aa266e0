// What each node's agent said about a Warmup's work beyond done or failed, kept per run in memory
// and folded into small status fields: whether the runtime reports the images pinned (spec.pin)
// and how much of the paths is resident in the page cache (status.residency). Built from each
// WarmResult the dispatch receives (a warm or a keepWarm check); a controller that restarts
// learns them again from the next results, and keeps the status written until then.
//
//   const facts = new NodeFacts();
//   facts.record('node-a', result);               // -> budget warnings not seen before for it
//   facts.pin(warmNodes)                          // PinStatus | undefined
//   facts.residency(warmNodes, minResidentPercent) // ResidencyStatus | undefined
import type { PinLabel__Output, WarmResult__Output } from '../proto/agent.js';
import { MAX_NODE_LIST, type PinStatus, type ResidencyStatus } from './api/types.js';

interface Facts {
  /** Every image present and reported pinned by the runtime; undefined without images. */
  pinned: boolean | undefined;
  /** What the agent did about the pin label (a check leaves the last warm's answer). */
  label: PinLabel__Output;
  /** Resident bytes and total of the paths; undefined without paths or when unknown. */
  resident: number | undefined;
  total: number | undefined;
}

export class NodeFacts {
  readonly #nodes = new Map<string, Facts>();
  readonly #warned = new Set<string>();

  /** Records a node's latest result; returns the budget warnings it brings that were not seen yet. */
  record(node: string, result: WarmResult__Output): string[] {
    const images = result.images.filter((i) => i.state === 'DONE' || i.state === 'PRESENT');
    let resident: number | undefined = 0;
    let total = 0;
    for (const p of result.paths) {
      const after = Number(p.residentBytesAfter);
      if (p.state === 'FAILED' || after < 0) resident = undefined;
      else if (resident !== undefined) resident += after;
      total += Number(p.bytes);
    }
    const labels = images.map((i) => i.pinLabel).filter((l) => l !== 'PIN_LABEL_UNSPECIFIED');
    const label = labels.find((l) => l !== 'PIN_LABEL_SET') ?? labels[0] ?? this.#nodes.get(node)?.label ?? 'PIN_LABEL_UNSPECIFIED';
    this.#nodes.set(node, {
      label,
      pinned: images.length > 0 ? images.every((i) => i.pinned) : undefined,
      resident: result.paths.length > 0 ? resident : undefined,
      total: result.paths.length > 0 && resident !== undefined ? total : undefined,
    });
    const fresh: string[] = [];
    for (const w of new Set(result.paths.flatMap((p) => p.warnings))) {
      if (this.#warned.has(w)) continue;
      this.#warned.add(w);
      fresh.push(w);
    }
    return fresh;
  }

  /** spec.pin over `nodes`: how many runtimes report the images pinned, and which do not. */
  pin(nodes: Iterable<string>): PinStatus | undefined {
    const known = [...nodes].sort().flatMap((n) => {
      const f = this.#nodes.get(n);
      return f?.pinned === undefined ? [] : [{ n, pinned: f.pinned, label: f.label }];
    });
    if (known.length === 0) return undefined;
    const notPinned = known.filter((k) => !k.pinned);
    const not = notPinned.map((k) => k.n);
    const count = (label: PinLabel__Output): number => notPinned.filter((k) => k.label === label).length;
    const why = [
      [count('PIN_LABEL_SET'), "containerd's pin label is set but not honoured by this runtime (containerd honours it from 1.7 on)"],
      [count('PIN_LABEL_UNSUPPORTED'), 'the runtime is not containerd and has no pin label'],
      [count('PIN_LABEL_FAILED'), "containerd's pin label could not be set (the agent's log says why)"],
    ] as const;
    const reasons = why.filter(([n]) => n > 0).map(([n, text]) => `on ${n}, ${text}`);
    const out: PinStatus = {
      pinnedNodes: known.length - not.length,
      notHonouredNodes: not.length,
      message:
        not.length === 0
          ? `the runtime on each of ${known.length} node(s) reports the images pinned`
          : `the runtime on ${not.length} of ${known.length} node(s) reports the images not pinned (CRI Image.pinned false), so its image garbage collection may remove them${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`,
    };
    if (not.length > 0) out.notHonouredNodeList = not.slice(0, MAX_NODE_LIST);
    return out;
  }

  /** Residency of the paths over `nodes`, and the nodes below `minPercent`. */
  residency(nodes: Iterable<string>, minPercent: number): ResidencyStatus | undefined {
    let residentBytes = 0;
    let totalBytes = 0;
    let count = 0;
    const below: { name: string; residentPercent: number }[] = [];
    for (const name of [...nodes].sort()) {
      const f = this.#nodes.get(name);
      if (f?.resident === undefined || f.total === undefined) continue;
      count++;
      residentBytes += f.resident;
      totalBytes += f.total;
      if (f.resident * 100 < f.total * minPercent) below.push({ name, residentPercent: f.total > 0 ? Math.floor((f.resident * 100) / f.total) : 100 });
    }
    if (count === 0) return undefined;
    const out: ResidencyStatus = { residentBytes, totalBytes, nodes: count, belowMinimum: below.length };
    if (below.length > 0) out.belowMinimumNodeList = below.slice(0, MAX_NODE_LIST);
    return out;
  }
}
