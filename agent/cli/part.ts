// The part protocol of `stoker warm`. The command is a list of parts (images, files) that run
// together under one signal, report progress to one display, and each end in an outcome; the
// command folds the outcomes into one summary and one exit code.
import type { Logger } from '../../proto/common/log.js';
import type { WarmConfig } from './config.js';

/** One item's progress. `text`, when given, replaces the built-in description after the item's name. */
export interface ProgressUpdate {
  readonly state: string;
  readonly elapsed: number;
  readonly bytesDone?: number;
  readonly bytesTotal?: number;
  readonly bytesKnown?: boolean;
  readonly text?: string;
}

/** What every part reports its progress to; one instance per run. */
export interface Display {
  update(key: string, p: ProgressUpdate): void;
  /** A line of aggregate progress (several pulls sharing bytes), or undefined to drop it. */
  aggregate(text: string | undefined): void;
  close(): void;
}

export interface PartOutcome {
  /** Key in the JSON summary ("images"). */
  readonly key: string;
  readonly ok: boolean;
  /** Column names of the summary table. */
  readonly header: readonly string[];
  /** Rows of the summary table: first cell is the item. */
  readonly rows: readonly string[][];
  /** One line per failed item, naming it and the reason. */
  readonly failures: readonly string[];
  /** Lines worth telling that do not fail the run. */
  readonly warnings?: readonly string[];
  readonly json: unknown;
  /** Extra top-level JSON fields (e.g. the runtime). */
  readonly meta?: Record<string, unknown>;
}

export interface PartContext {
  readonly config: WarmConfig;
  readonly signal: AbortSignal;
  readonly display: Display;
  readonly log: Logger;
}

export type WarmPart = (ctx: PartContext) => Promise<PartOutcome>;
