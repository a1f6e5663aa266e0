import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../proto/gen/stoker/v1/ErrorCode.js';
import { CONDITION_REASONS, EVENT_REASONS, VOLUME_REASONS, FATAL_REASON_BY_CODE, NODE_REASONS, REASON_BY_CODE, fatalReason } from './reasons.js';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));

/** The `| Reason | Meaning |` tables under README.md's "## Reasons", keyed by their "### " heading. */
function readmeReasonTables(): Map<string, Map<string, string>> {
  if (!existsSync(README)) throw new Error(`README.md not found at ${README}`);
  const text = readFileSync(README, 'utf8');
  const start = text.search(/^## Reasons\s*$/m);
  if (start < 0) throw new Error('README.md has no "## Reasons" section');
  const lines = text.slice(start).split('\n').slice(1);
  const end = lines.findIndex((l) => /^#{1,2} /.test(l));
  const tables = new Map<string, Map<string, string>>();
  let rows: Map<string, string> | undefined;
  for (const line of end < 0 ? lines : lines.slice(0, end)) {
    const heading = /^### (.+?)\s*$/.exec(line);
    if (heading?.[1]) {
      rows = new Map();
      tables.set(heading[1], rows);
      continue;
    }
    const m = /^\|\s*`?([A-Za-z]+)`?\s*\|\s*(.*?)\s*\|\s*$/.exec(line);
    if (m?.[1] && m[1] !== 'Reason') rows?.set(m[1], (m[2] ?? '').replaceAll('`', ''));
  }
  return tables;
}

const catalogues: [string, Readonly<Record<string, string>>][] = [
  ['Warmup conditions', CONDITION_REASONS],
  ['Failed nodes', NODE_REASONS],
  ['Events', EVENT_REASONS],
  ['Volumes', VOLUME_REASONS],
];

describe('reason catalogue', () => {
  it.each(catalogues)("README.md's %s table lists every reason with the catalogue's meaning, and no other", (heading, catalogue) => {
    const rows = readmeReasonTables().get(heading);
    expect(rows, `README.md "## Reasons" lacks a "### ${heading}" table`).toBeDefined();
    for (const [reason, meaning] of Object.entries(catalogue)) {
      expect(rows?.get(reason), `README.md "### ${heading}": meaning of ${reason}`).toBe(meaning);
    }
    expect([...(rows?.keys() ?? [])].filter((r) => !Object.hasOwn(catalogue, r)), `reasons in README.md "### ${heading}" but not in controller/api/reasons.ts`).toEqual([]);
  });

  it('gives every agent ErrorCode a failed-node reason', () => {
    expect(Object.keys(REASON_BY_CODE).sort()).toEqual(Object.keys(ErrorCode).sort());
    for (const reason of Object.values(REASON_BY_CODE)) expect(NODE_REASONS).toHaveProperty(reason);
  });

  it('fails the whole Warmup only for bad input, with a reason that is both a condition and a node reason', () => {
    expect(Object.keys(FATAL_REASON_BY_CODE).sort()).toEqual(['INVALID_REFERENCE', 'INVALID_REQUEST', 'PATH_OUTSIDE_ROOT', 'REGISTRY_DENIED']);
    for (const [code, reason] of Object.entries(FATAL_REASON_BY_CODE)) {
      expect(REASON_BY_CODE[code as keyof typeof REASON_BY_CODE]).toBe(reason);
      expect(CONDITION_REASONS).toHaveProperty(reason);
    }
    expect(fatalReason('INVALID_REFERENCE')).toBe('InvalidImageReference');
    expect(fatalReason('UNAUTHORIZED')).toBeUndefined();
  });
});
