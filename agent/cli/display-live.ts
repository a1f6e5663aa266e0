// The display on a terminal: one line per item, redrawn in place five times a second, with an
// aggregate line below when several pulls share one byte count.
import type { Display, ProgressUpdate } from './part.js';
import { describeProgress, stateIcon, updateRate, type ProgressRow } from './progress-line.js';

export class LiveDisplay implements Display {
  private readonly rows = new Map<string, ProgressRow>();
  private drawn = 0;
  private aggregateLine: string | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.timer = setInterval(() => this.draw(), 200);
    this.timer.unref();
  }

  update(key: string, p: ProgressUpdate): void {
    const row = this.rows.get(key) ?? {
      label: key,
      state: 'WAITING',
      elapsed: 0,
      bytesDone: 0,
      bytesTotal: 0,
      bytesKnown: false,
      rate: 0,
      samples: [],
    };
    row.state = p.state;
    row.elapsed = p.elapsed;
    row.text = p.text;
    if (p.bytesKnown) {
      row.bytesKnown = true;
      row.bytesDone = p.bytesDone ?? 0;
      row.bytesTotal = p.bytesTotal ?? 0;
      row.rate = updateRate(row.samples, row.bytesDone);
    }
    this.rows.set(key, row);
  }

  aggregate(text: string | undefined): void {
    this.aggregateLine = text;
  }

  private draw(): void {
    const width = Math.max(...[...this.rows.keys()].map((k) => k.length), 10);
    const lines = [...this.rows.values()].map((r) => `${stateIcon(r.state)} ${r.label.padEnd(width)}  ${describeProgress(r)}`);
    if (this.aggregateLine !== undefined) lines.push(`  ${this.aggregateLine}`);
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const line of lines) text += `\x1b[2K${line.slice(0, (this.out.columns || 120) - 1)}\n`;
    for (let i = lines.length; i < this.drawn; i++) text += '\x1b[2K\n';
    this.drawn = Math.max(lines.length, this.drawn);
    this.out.write(text);
  }

  close(): void {
    clearInterval(this.timer);
    this.draw();
  }
}
