import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from './gen/stoker/v1/ErrorCode.js';
import { ERROR_CODES } from './errors.js';
import { protoRoot } from './load.js';

/** Enum values of ErrorCode in agent.proto with the comment lines right above each. */
function protoErrorCodes(): Map<string, string> {
  const text = readFileSync(join(protoRoot(), 'stoker', 'v1', 'agent.proto'), 'utf8');
  const body = /enum ErrorCode \{([\s\S]*?)\n\}/.exec(text)?.[1];
  if (!body) throw new Error('agent.proto has no "enum ErrorCode" block');
  const codes = new Map<string, string>();
  let comment: string[] = [];
  for (const raw of body.split('\n')) {
    const line = raw.trim();
    const c = /^\/\/\s?(.*)$/.exec(line);
    if (c) {
      comment.push(c[1] ?? '');
      continue;
    }
    const v = /^([A-Z_]+)\s*=\s*\d+;/.exec(line);
    if (v?.[1]) codes.set(v[1], comment.join(' ').trim());
    comment = [];
  }
  return codes;
}

/** Rows `| CODE | meaning |` of the table under README.md's "## Error codes" heading. */
function readmeErrorCodes(): Map<string, string> {
  const readme = join(protoRoot(), '..', 'README.md');
  if (!existsSync(readme)) throw new Error(`README.md not found at ${readme}`);
  const text = readFileSync(readme, 'utf8');
  const start = text.search(/^## Error codes\s*$/m);
  if (start < 0) throw new Error('README.md has no "## Error codes" section');
  const section = text.slice(start).split('\n').slice(1);
  const end = section.findIndex((l) => /^#{1,2} /.test(l));
  const rows = new Map<string, string>();
  for (const line of end < 0 ? section : section.slice(0, end)) {
    const m = /^\|\s*`?([A-Z_]+)`?\s*\|\s*(.*?)\s*\|\s*$/.exec(line);
    if (m?.[1] && m[1] !== 'CODE') rows.set(m[1], m[2] ?? '');
  }
  return rows;
}

const enumCodes = Object.keys(ErrorCode).filter((c) => c !== 'ERROR_CODE_UNSPECIFIED');

describe('error code catalogue', () => {
  it('the generated enum matches the codes in agent.proto', () => {
    const fromProto = [...protoErrorCodes().keys()].filter((c) => c !== 'ERROR_CODE_UNSPECIFIED');
    expect(fromProto.sort()).toEqual([...enumCodes].sort());
  });

  it('has every proto code, with the meaning its proto comment gives', () => {
    const proto = protoErrorCodes();
    for (const code of enumCodes) {
      expect(ERROR_CODES, `ERROR_CODES lacks ${code}`).toHaveProperty(code);
      expect(ERROR_CODES[code as keyof typeof ERROR_CODES], `meaning of ${code}`).toBe(proto.get(code));
    }
    expect(Object.keys(ERROR_CODES).sort()).toEqual([...enumCodes].sort());
  });

  it("is listed in README.md's Error codes table, one row per code", () => {
    const rows = readmeErrorCodes();
    for (const code of enumCodes) {
      expect(rows.has(code), `README.md "## Error codes" lacks a row for ${code}`).toBe(true);
      expect(rows.get(code), `README.md meaning of ${code}`).not.toBe('');
    }
    expect([...rows.keys()].filter((c) => !enumCodes.includes(c)), 'codes in README.md but not in the proto').toEqual([]);
  });
});
