// Value parsers shared by the agent's and the controller's configuration: each returns
// undefined for a value it cannot read, and the caller names the flag in its error.

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** "HOST:PORT", ":PORT" (all interfaces) or "[::1]:PORT"; port 0 to 65535. */
export function parseHostPort(value: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]*)):(\d{1,5})$/.exec(value);
  if (!m) return undefined;
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port > 65535) return undefined;
  return Object.freeze({ host: host === '' ? '0.0.0.0' : host, port });
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Milliseconds of "90s", "5m", "1h30m", "250ms", or a bare number of seconds. */
export function parseDuration(value: string): number | undefined {
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1_000);
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return undefined;
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * (UNIT_MS[p[2] ?? ''] ?? NaN), 0));
}
