// The file part of `stoker warm`: the paths of the config run through the file engine
// (agent/warm/files.ts), drawn on the command's shared display (a progress bar, files and bytes
// done, throughput, ETA) and summed up in the PATH summary table.
import type { PathResult__Output } from '../../proto/gen/stoker/v1/PathResult.js';
import { formatBytes } from '../../proto/common/bytes.js';
import { DEFAULT_BUFFER_BYTES, PathError, failedPathResult, warmFiles } from '../warm/files.js';
import type { FilesConfig } from './config.js';
import type { PartOutcome, WarmPart } from './part.js';

export const FILE_HEADER = ['PATH', 'STATE', 'FILES', 'SIZE', 'TIME', 'GB/S', 'RESIDENT BEFORE', 'RESIDENT AFTER'];

function resident(n: number, total: number): string {
  if (n < 0) return 'unknown';
  return total > 0 ? `${formatBytes(n)} (${Math.round((n / total) * 100)}%)` : formatBytes(n);
}

function gbps(r: PathResult__Output): string {
  return r.seconds > 0 && r.bytes > 0 ? (r.bytes / r.seconds / 1e9).toFixed(2) : '-';
}

/** The summary rows, warnings and failures of the file part. */
export function filesOutcome(results: PathResult__Output[]): PartOutcome {
  const warnings = [...new Set(results.flatMap((r) => r.warnings))];
  for (const r of results) for (const i of r.issues) warnings.push(`${i.code}: ${i.message}`);
  return {
    key: 'paths',
    ok: results.every((r) => r.state === 'DONE'),
    header: FILE_HEADER,
    rows: results.map((r) => [
      r.path,
      r.state === 'DONE' ? 'done' : 'failed',
      String(r.files),
      formatBytes(r.bytes),
      `${r.seconds.toFixed(1)}s`,
      gbps(r),
      resident(r.residentBytesBefore, r.bytes),
      resident(r.residentBytesAfter, r.bytes),
    ]),
    failures: results.filter((r) => r.failure).map((r) => `${r.failure?.code}: ${r.failure?.message}`),
    warnings,
    json: results,
  };
}

const BAR_WIDTH = 20;

/** "[########------------]  3/10 files  1.2 GiB of 4.0 GiB  850.0 MiB/s  ETA 4s" */
export function progressText(p: { filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number; elapsedSeconds: number }): string {
  const frac = p.bytesTotal > 0 ? Math.min(1, p.bytesDone / p.bytesTotal) : p.filesTotal > 0 ? p.filesDone / p.filesTotal : 0;
  const full = Math.round(frac * BAR_WIDTH);
  const parts = [
    `[${'#'.repeat(full)}${'-'.repeat(BAR_WIDTH - full)}]`,
    `${p.filesDone}/${p.filesTotal} files`,
    `${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}`,
  ];
  const rate = p.elapsedSeconds > 0 ? p.bytesDone / p.elapsedSeconds : 0;
  if (rate > 0) {
    parts.push(`${formatBytes(rate)}/s`);
    parts.push(`ETA ${Math.max(0, Math.ceil((p.bytesTotal - p.bytesDone) / rate))}s`);
  }
  return parts.join('  ');
}

/** The file part for a parsed config. */
export function filesPart(files: FilesConfig): WarmPart {
  return async ({ signal, display }) => {
    let results: PathResult__Output[];
    try {
      results = await warmFiles({
        paths: files.paths.map((path) => ({ path, include: [...files.include], exclude: [...files.exclude] })),
        allowedRoots: files.allowedRoots,
        signal,
        readers: files.readers,
        bufferBytes: DEFAULT_BUFFER_BYTES,
        budget: files.budget,
        onProgress: (p) => {
          const words: Record<string, string> = { WAITING: 'waiting', RUNNING: 'reading', DONE: 'done', FAILED: 'failed' };
          display.update(p.path, {
            state: p.state,
            elapsed: p.elapsedSeconds,
            text: p.state === 'FAILED' ? 'failed' : `${words[p.state] ?? p.state}  ${progressText(p)}`,
          });
        },
      });
    } catch (err) {
      // A bad allowed root: every path fails with the same sentence.
      if (!(err instanceof PathError)) throw err;
      results = files.paths.map((path) => failedPathResult(path, err.code, err.message));
    }
    return filesOutcome(results);
  };
}
