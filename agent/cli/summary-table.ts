// The summary after the live or plain display: one table per part that has rows, columns padded
// to their widest cell, two spaces apart, a blank line before each.
import type { PartOutcome } from './part.js';

export function summaryTables(outcomes: readonly PartOutcome[]): string {
  return outcomes
    .filter((o) => o.rows.length > 0)
    .map((o) => `\n${table(o.header, o.rows)}\n`)
    .join('');
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}
