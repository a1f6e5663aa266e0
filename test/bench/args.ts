// The command-line flags every benchmark reads: `--rounds 7`, `--only a,b`, `--files`.
const args = process.argv.slice(2);

/** The value after `name` on the command line (`--rounds 7` → '7'), or undefined. */
export function flag(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Whether `name` is on the command line (a switch without a value, e.g. `--files`). */
export function hasFlag(name: string): boolean {
  return args.includes(name);
}
