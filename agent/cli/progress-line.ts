// The text of one item's progress line, shared by the live and the plain display:
// "pulling  3.2s  12.0 MiB of 38.2 MiB  4.1 MiB/s", or the part's own text.
import { formatBytes } from '../../proto/common/bytes.js';
import { formatSeconds, stateWord } from './format.js';

export interface RateSample {
  readonly t: number;
  readonly bytes: number;
}

export interface ProgressRow {
  label: string;
  text?: string | undefined;
  state: string;
  elapsed: number;
  bytesDone: number;
  bytesTotal: number;
  bytesKnown: boolean;
  rate: number;
  samples: RateSample[];
}

/** Adds a sample and returns bytes per second over the last ~3 s of samples. */
export function updateRate(samples: RateSample[], bytes: number): number {
  const now = Date.now();
  samples.push({ t: now, bytes });
  while (samples.length > 2 && (samples[0]?.t ?? now) < now - 3_000) samples.shift();
  const first = samples[0];
  if (!first || now - first.t < 200) return 0;
  return Math.max(0, ((bytes - first.bytes) * 1000) / (now - first.t));
}

export function stateIcon(state: string): string {
  return state === 'DONE' || state === 'PRESENT' ? '✓' : state === 'FAILED' ? '✗' : state === 'RUNNING' ? '↓' : '·';
}

export function describeProgress(r: ProgressRow): string {
  if (r.text !== undefined) return r.text;
  const parts = [stateWord(r.state), formatSeconds(r.elapsed)];
  if (r.bytesKnown && (r.state === 'RUNNING' || r.state === 'DONE')) {
    parts.push(`${formatBytes(r.bytesDone)} of ${formatBytes(r.bytesTotal)}`);
    if (r.state === 'RUNNING' && r.rate > 0) parts.push(`${formatBytes(r.rate)}/s`);
  }
  return parts.join('  ');
}
