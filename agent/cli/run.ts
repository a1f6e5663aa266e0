// One run of `stoker warm`: the parts run together on one display, then one summary (tables, or
// one JSON document with --json), warnings and failures on stderr, and one exit code:
// 0 when every item is present, 1 when any failed (2, a usage error, is the command's).
import { pino } from 'pino';
import { createLogger } from '../../proto/common/log.js';
import type { WarmConfig } from './config.js';
import { JsonDisplay, jsonSummary } from './display-json.js';
import { LiveDisplay } from './display-live.js';
import { PlainDisplay } from './display-plain.js';
import type { Display, PartOutcome, WarmPart } from './part.js';
import { summaryTables } from './summary-table.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;

export interface RunIo {
  stdout: NodeJS.WriteStream | NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  isTTY: boolean;
}

/** Runs the parts together and prints one summary; resolves with the exit code. */
export async function runWarm(config: WarmConfig, parts: readonly WarmPart[], io: RunIo, signal: AbortSignal): Promise<number> {
  const log = createLogger({ name: 'stoker-warm', level: config.logLevel, destination: pino.destination({ dest: 2, sync: true }) });
  const display: Display = config.json
    ? new JsonDisplay()
    : io.isTTY
      ? new LiveDisplay(io.stdout as NodeJS.WriteStream)
      : new PlainDisplay(io.stdout);
  const startedAt = Date.now();
  let outcomes: PartOutcome[];
  try {
    outcomes = await Promise.all(parts.map((part) => part({ config, signal, display, log })));
  } finally {
    display.close();
  }
  const ok = outcomes.every((o) => o.ok);
  if (config.json) {
    io.stdout.write(`${jsonSummary(outcomes, ok, (Date.now() - startedAt) / 1000)}\n`);
  } else {
    const tables = summaryTables(outcomes);
    if (tables !== '') io.stdout.write(tables);
  }
  for (const line of outcomes.flatMap((o) => o.warnings ?? [])) io.stderr.write(`warning: ${line}\n`);
  for (const line of outcomes.flatMap((o) => o.failures)) io.stderr.write(`error: ${line}\n`);
  return ok ? EXIT_OK : EXIT_FAILED;
}
