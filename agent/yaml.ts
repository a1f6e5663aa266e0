// The YAML parser, loaded on first use: most agents never read a YAML file, and it costs some
// 8 MB. Works from source and from the bundle, where a dynamic import of a CommonJS package
// gives its exports as `default` only.
import type * as Yaml from 'yaml';

let parse: typeof Yaml.parse | undefined;

/** The yaml package's `parse` (one YAML or JSON document; throws on bad input), loaded once. */
export async function loadYamlParser(): Promise<(text: string) => unknown> {
  if (!parse) {
    const mod = (await import('yaml')) as typeof Yaml & { default?: typeof Yaml };
    parse = typeof mod.parse === 'function' ? mod.parse : mod.default?.parse;
    if (!parse) throw new Error('the yaml package has no parse function');
  }
  return parse;
}
