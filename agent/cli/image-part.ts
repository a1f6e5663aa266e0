// The image part of `stoker warm`: the registry policy and reference checks before anything
// else, registry credentials (credentials.ts), the CRI connection, the image engine
// (agent/warm/images.ts), progress onto the display, and the IMAGE summary table.
//
// An image that is malformed or whose registry the policy refuses fails before any call to the
// runtime; when every image fails so, the runtime is not even connected to.
import type { ImageProgress__Output, ImageResult__Output } from '../../proto/agent.js';
import type { CriEndpoint } from '../cri/endpoint.js';
import { WarmError } from '../cri/errors.js';
import { connectRuntime, type CriRuntime } from '../cri/runtime.js';
import { loadCredentialProviders, type CredentialProviders } from '../credentials/credential-provider.js';
import { formatBytes } from '../../proto/common/bytes.js';
import { failedImageResult, refusedImage, warmImages } from '../warm/images.js';
import type { WarmConfig } from './config.js';
import { warmCredentialSource } from './credentials.js';
import { loadDockerConfig } from './docker-config-file.js';
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
  const refused = new Map<string, ImageResult__Output>();
  for (const image of config.images) {
    const why = refusedImage(image, config.registryPolicy);
    if (!why) continue;
    refused.set(image, failedImageResult(image, why.code, why.message));
    display.update(image, { state: 'FAILED', elapsed: 0 });
  }
  const inOrder = (pulled: readonly ImageResult__Output[]): ImageResult__Output[] => {
    const byImage = new Map(pulled.map((r) => [r.image, r]));
    return config.images.map((image) => refused.get(image) ?? byImage.get(image) ?? failedImageResult(image, 'INTERNAL', `no result for ${image}`));
  };
  const toPull = config.images.filter((image) => !refused.has(image));
  if (toPull.length === 0) return { ...imageOutcome(inOrder([]), undefined, config.criEndpoint), warnings };

  const docker = await loadDockerConfig({ authFile: config.authFile, dockerConfigDir: config.dockerConfigDir, home: config.home });
  let providers: CredentialProviders | undefined;
  if (config.credentialProviders) {
    providers = await loadCredentialProviders({ ...config.credentialProviders, onWarning: (w) => warnings.push(w) });
  }
  const credentialSource = warmCredentialSource({ docker, providers, signal, onWarning: (w) => warnings.push(w) });

  let runtime: CriRuntime | undefined;
  try {
    runtime = await connectRuntime(config.criEndpoint, { signal, onProgressError: (err) => log.debug({ err }, 'listing ingests failed') });
  } catch (err) {
    const cause = err instanceof WarmError ? err : new WarmError('RUNTIME_ERROR', String(err));
    log.debug({ detail: cause.detail }, 'runtime connection failed');
    // Refused images still say why; every other image fails with the runtime's reason.
    const results = inOrder(toPull.map((image) => failWithoutRuntime(image, config, cause)));
    return { ...imageOutcome(results, undefined, config.criEndpoint), warnings };
  }
  const connected = runtime;
  const latest = new Map<string, ImageProgress__Output>();
  const aggregateTimer = setInterval(() => {
    const running = [...latest.values()].filter((p) => p.state === 'RUNNING');
    const shared = running.some((p) => !p.bytesKnown);
    // Only while pulls run: the tracker is made on first use (containerd's content service).
    const agg = running.length > 1 && shared ? connected.progress?.aggregate() : undefined;
    display.aggregate(
      agg && agg.bytesTotal > 0
        ? `all pulls: ${formatBytes(agg.bytesDone)} of ${formatBytes(agg.bytesTotal)} (several pulls share the byte count)`
        : undefined,
    );
  }, 500);
  aggregateTimer.unref();
  try {
    const results = await warmImages(runtime, {
      images: toPull.map((image) => ({ image, pullPolicy: config.pullPolicy })),
      registryPolicy: config.registryPolicy,
      credentialSource,
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
    return { ...imageOutcome(inOrder(results), runtime, config.criEndpoint), warnings };
  } finally {
    clearInterval(aggregateTimer);
    display.aggregate(undefined);
    runtime.close();
  }
};

function failWithoutRuntime(image: string, config: WarmConfig, cause: WarmError): ImageResult__Output {
  const message =
    cause.code === 'RUNTIME_UNAVAILABLE'
      ? `cannot pull ${image}: the container runtime is unreachable at ${config.criEndpoint.display}`
      : `cannot pull ${image}: ${cause.message}`;
  return failedImageResult(image, cause.code, message);
}
