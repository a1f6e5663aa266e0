// The source layout the README's "Developing" section draws, checked: the import graph of Stoker's
// own modules has no cycle, the two binaries share code only through proto/ (never by importing
// each other), and proto/ holds protocol (the .proto files, generated types, their loader and the
// error catalogue) plus the one folder of shared code, proto/common/.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = ['agent', 'controller', 'proto', 'bin'];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const rel = join(dir, name);
    if (name === 'node_modules' || name === 'gen' || name === 'build') continue;
    if (statSync(join(root, rel)).isDirectory()) out.push(...sourceFiles(rel));
    else if (/\.(c|m)?ts$/.test(name) && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** Relative imports of one file (static `import`/`export ... from` and dynamic `import()`), resolved to repo paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8').replace(/^\s*(\/\/|\*).*$/gm, '');
  const specs = [...text.matchAll(/(?:^|\s)(?:import|export)\s[^;]*?from\s+['"](\.{1,2}\/[^'"]+)['"]/g), ...text.matchAll(/import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)]
    .map((m) => m[1] ?? '');
  return specs.map((s) => normalize(join(dirname(file), s)).replace(/\.(c|m)?js$/, '.$1ts'));
}

const files = SOURCE_DIRS.flatMap(sourceFiles);
const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => !t.startsWith('proto/gen/'))]));

describe('source layout', () => {
  it('finds the sources it checks', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(files).toContain('controller/reconcile.ts');
  });

  it('every relative import names a file that exists', () => {
    const missing = [...graph].flatMap(([f, targets]) => targets.filter((t) => !graph.has(t) && !t.endsWith('.json')).map((t) => `${f} -> ${t}`));
    expect(missing).toEqual([]);
  });

  it('has no import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const t of graph.get(f) ?? []) {
        if (!graph.has(t)) continue;
        if (state.get(t) === 'open') cycles.push([...stack.slice(stack.indexOf(t)), t].join(' -> '));
        else if (!state.has(t)) visit(t);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it('the agent and the controller share code only through proto/', () => {
    const crossing = [...graph].flatMap(([f, targets]) => {
      const side = f.split('/')[0];
      return targets
        .filter((t) => (side === 'agent' && t.startsWith('controller/')) || (side === 'controller' && t.startsWith('agent/')) || (side === 'proto' && !t.startsWith('proto/')))
        .map((t) => `${f} -> ${t}`);
    });
    expect(crossing).toEqual([]);
  });

  it('proto/ holds protocol and proto/common/, nothing else', () => {
    const allowed = new Set(['common', 'gen', 'stoker', 'runtime', 'containerd', 'load.ts', 'errors.ts', 'errors.test.ts', 'agent.ts', 'cri.ts', 'containerd.ts']);
    const extra = readdirSync(join(root, 'proto')).filter((n) => !allowed.has(n));
    expect(extra).toEqual([]);
    expect(relative(root, join(root, 'proto', 'common'))).toBe('proto/common');
  });
});
