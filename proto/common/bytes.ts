// Byte counts as people read them: one form for every message, progress line and summary table
// of the agent and `stoker warm`.

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB'] as const;

/**
 * Binary units, as the kernel counts memory, with one decimal above a KiB:
 * 1023 -> "1023 B", 1536 -> "1.5 KiB", 500 MiB -> "500.0 MiB". Fractions of a byte (rates) round
 * to whole bytes.
 */
export function formatBytes(n: number): string {
  const whole = Math.round(n);
  if (Math.abs(whole) < 1024) return `${whole} B`;
  let v = n / 1024;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${UNITS[i]}`;
}
