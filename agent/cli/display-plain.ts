// The display when stdout is not a terminal (logs, CI): a line per change of an item's state,
// and one every 10 s while it pulls.
import type { Display, ProgressUpdate } from './part.js';
import { describeProgress, updateRate, type ProgressRow, type RateSample } from './progress-line.js';

export class PlainDisplay implements Display {
  private readonly last = new Map<string, { state: string; printedAt: number; samples: RateSample[] }>();

  constructor(private readonly out: NodeJS.WritableStream) {}

  update(key: string, p: ProgressUpdate): void {
    const prev = this.last.get(key);
    const now = Date.now();
    const samples = prev?.samples ?? [];
    const rate = p.bytesKnown ? updateRate(samples, p.bytesDone ?? 0) : 0;
    if (prev?.state === p.state && (p.state !== 'RUNNING' || now - prev.printedAt < 10_000)) return;
    if (p.state === 'WAITING') {
      this.last.set(key, { state: p.state, printedAt: now, samples });
      return;
    }
    const row: ProgressRow = {
      label: key,
      state: p.state,
      elapsed: p.elapsed,
      bytesDone: p.bytesDone ?? 0,
      bytesTotal: p.bytesTotal ?? 0,
      bytesKnown: p.bytesKnown ?? false,
      rate,
      samples,
      text: p.text,
    };
    this.out.write(`${key}: ${describeProgress(row)}\n`);
    this.last.set(key, { state: p.state, printedAt: now, samples });
  }

  aggregate(): void {}

  close(): void {}
}
