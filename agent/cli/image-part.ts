// The image part of `stoker warm`: registry credentials, the CRI connection, the image engine
// (agent/warm/images.ts), progress onto the display, and the IMAGE summary table.
import type { ImageProgress__Output, ImageResult__Output } from '../../proto/agent.js';
import { InvalidReferenceError, parseImageReference } from '../../proto/common/image-reference.js';
import type { CriEndpoint } from '../cri/endpoint.js';
import { WarmError } from '../cri/errors.js';
import { connectRuntime, type CriRuntime } from '../cri/runtime.js';
import { loadDockerCredentials } from './docker-config-file.js';
import { formatBytes } from '../warm/bytes.js';
import { failedImageResult, warmImages } from '../warm/images.js';
import type { WarmConfig } from './config.js';
import { formatSeconds, stateWord } from './format.js';
import type { PartOutcome, WarmPart } from './part.js';

const IMAGE_HEADER = ['IMAGE', 'STATE', 'TIME', 'SIZE'];

function imageOutcome(results: ImageResult__Output[], runtime: CriRuntime | undefined, endpoint: CriEndpoint): PartOutcome {
  return {
    key: 'images',
    header: IMAGE_HEADER,
    ok: results.every((r) => r.state === 'DONE' || r.state === 'PRESENT'),
    rows: results.map((r) => [
      r.image,
      stateWord(r.state),
      formatSeconds(r.seconds),
      r.sizeBytes > 0 ? formatBytes(r.sizeBytes) : '-',
    ]),
    failures: results.filter((r) => r.failure).map((r) => `${r.failure?.code}: ${r.failure?.message}`),
    json: results,
    meta: {
      runtime: runtime
        ? { endpoint: endpoint.display, name: runtime.version.runtimeName, version: runtime.version.runtimeVersion }
        : { endpoint: endpoint.display, name: null, version: null },
    },
  };
}

export const imagePart: WarmPart = async ({ config, signal, display, log }) => {
  const warnings: string[] = [];
  const credentials = await loadDockerCredentials({
    authFile: config.authFile,
    dockerConfigDir: config.dockerConfigDir,
    home: config.home,
    onWarning: (w) => warnings.push(w),
  });
  let runtime: CriRuntime | undefined;
  try {
    runtime = await connectRuntime(config.criEndpoint, { signal, onProgressError: (err) => log.debug({ err }, 'listing ingests failed') });
  } catch (err) {
    const cause = err instanceof WarmError ? err : new WarmError('RUNTIME_ERROR', String(err));
    log.debug({ detail: cause.detail }, 'runtime connection failed');
    // Invalid references still say so; every other image fails with the runtime's reason.
    const results = failWithoutRuntime(config, cause);
    return { ...imageOutcome(results, undefined, config.criEndpoint), warnings };
  }
  const progress = runtime.progress;
  const latest = new Map<string, ImageProgress__Output>();
  const aggregateTimer = setInterval(() => {
    const agg = progress?.aggregate();
    const running = [...latest.values()].filter((p) => p.state === 'RUNNING');
    const shared = running.some((p) => !p.bytesKnown);
    display.aggregate(
      agg && running.length > 1 && shared && agg.bytesTotal > 0
        ? `all pulls: ${formatBytes(agg.bytesDone)} of ${formatBytes(agg.bytesTotal)} (several pulls share the byte count)`
        : undefined,
    );
  }, 500);
  aggregateTimer.unref();
  try {
    const results = await warmImages(runtime, {
      images: config.images.map((image) => ({ image, pullPolicy: config.pullPolicy })),
      credentials,
      concurrency: config.concurrency,
      progressTimeoutMs: config.progressTimeoutMs,
      pullTimeoutMs: config.pullTimeoutMs,
      signal,
      logger: log,
      progressIntervalMs: 250,
      onProgress: (p) => {
        latest.set(p.image, p);
        display.update(p.image, {
          state: p.state,
          elapsed: p.elapsedSeconds,
          bytesDone: p.bytesDone,
          bytesTotal: p.bytesTotal,
          bytesKnown: p.bytesKnown,
        });
      },
    });
    return { ...imageOutcome(results, runtime, config.criEndpoint), warnings };
  } finally {
    clearInterval(aggregateTimer);
    display.aggregate(undefined);
    runtime.close();
  }
};

function failWithoutRuntime(config: WarmConfig, cause: WarmError): ImageResult__Output[] {
  return config.images.map((image) => {
    try {
      parseImageReference(image);
    } catch (err) {
      if (err instanceof InvalidReferenceError) {
        return failedImageResult(image, 'INVALID_REFERENCE', err.message);
      }
      throw err;
    }
    const message =
      cause.code === 'RUNTIME_UNAVAILABLE'
        ? `cannot pull ${image}: the container runtime is unreachable at ${config.criEndpoint.display}`
        : `cannot pull ${image}: ${cause.message}`;
    return failedImageResult(image, cause.code, message);
  });
}
