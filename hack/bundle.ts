// Bundles the `stoker` CLI with esbuild into dist/bin/: the CommonJS launcher (stoker.cjs) and
// main.mjs with one chunk per subcommand, dependencies included, so a run loads a handful of files
// instead of hundreds of modules. Source maps sit beside each file: with
// `NODE_OPTIONS=--enable-source-maps` stack traces point at the TypeScript (off by default: Node
// then keeps every map in memory, some 16 MB, and starts 0.15 s slower). Run by `npm run build`
// after the type check.
//
// At run time the bundle still finds, by walking up from its own directory, the .proto files
// (proto/) and the native helper (agent/native/build/); the images copy both beside dist/.
import { build, type BuildOptions } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'bin');

const common: BuildOptions = {
  absWorkingDir: root,
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  // Ignore the tsconfig's outDir and module settings: esbuild only strips types here.
  tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true } },
};

await rm(join(root, 'dist'), { recursive: true, force: true });

await build({
  ...common,
  entryPoints: { main: 'bin/main.ts' },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  chunkNames: 'chunks/[name]-[hash]',
  // .mjs: ES modules whatever package.json sits nearby (the images ship none).
  outExtension: { '.js': '.mjs' },
  // Some dependencies are CommonJS and call require(); give the ES module bundle one.
  banner: { js: "import { createRequire as __stokerRequire } from 'node:module'; const require = __stokerRequire(import.meta.url);" },
});

// The launcher stays a separate, unbundled CommonJS file: see bin/stoker.cts.
await build({
  ...common,
  entryPoints: ['bin/stoker.cts'],
  outfile: join(out, 'stoker.cjs'),
  bundle: false,
  format: 'cjs',
});
