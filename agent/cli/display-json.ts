// The display with --json: nothing while the parts run, then exactly one JSON document on stdout,
// { ok, seconds, <part meta>..., <part key>: <part results> }.
import type { Display, PartOutcome } from './part.js';

export class JsonDisplay implements Display {
  update(): void {}
  aggregate(): void {}
  close(): void {}
}

/** The one JSON document of a run, without a trailing newline. */
export function jsonSummary(outcomes: readonly PartOutcome[], ok: boolean, seconds: number): string {
  const doc: Record<string, unknown> = { ok, seconds };
  for (const o of outcomes) Object.assign(doc, o.meta ?? {}, { [o.key]: o.json });
  return JSON.stringify(doc);
}
