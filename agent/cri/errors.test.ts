import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { imageTooLargeError, scrubDetail, translateCallError, translatePullError, WarmError, type FailureContext } from './errors.js';

const ctx: FailureContext = {
  image: '127.0.0.1:5000/team/app:v1',
  registry: '127.0.0.1:5000',
  endpoint: 'unix:///run/containerd/containerd.sock',
  withCredentials: false,
};

function grpcError(code: status, details: string): Error {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

// Messages as containerd 1.6 returns them from CRI PullImage (seen in test/warm-images.test.ts).
const PREFIX = 'failed to pull and unpack image "127.0.0.1:5000/team/app:v1": failed to resolve reference "127.0.0.1:5000/team/app:v1": ';

describe('translatePullError', () => {
  it.each([
    [
      'REGISTRY_UNREACHABLE',
      `${PREFIX}failed to do request: Head "http://127.0.0.1:5000/v2/team/app/manifests/v1": dial tcp 127.0.0.1:5000: connect: connection refused`,
      /registry 127\.0\.0\.1:5000 is unreachable \(connection refused\)/,
    ],
    [
      'REGISTRY_UNREACHABLE',
      `${PREFIX}failed to do request: Head "https://reg.invalid/v2/a/manifests/v1": dial tcp: lookup reg.invalid on 127.0.0.53:53: no such host`,
      /unreachable \(host name not found\)/,
    ],
    [
      'REGISTRY_UNREACHABLE',
      `${PREFIX}failed to do request: Head "https://127.0.0.1:5000/v2/a/manifests/v1": http: server gave HTTP response to HTTPS client`,
      /plain HTTP/,
    ],
    [
      'UNAUTHORIZED',
      `${PREFIX}pulling from host 127.0.0.1:5000 failed with status code [manifests v1]: 401 Unauthorized`,
      /requires credentials and none were given/,
    ],
    ['UNAUTHORIZED', `${PREFIX}unexpected status from HEAD request to http://127.0.0.1:5000/v2/x/manifests/v1: 403 Forbidden`, /401\/403/],
    ['NOT_FOUND', `${PREFIX}127.0.0.1:5000/team/app:v1: not found`, /not found in registry 127\.0\.0\.1:5000/],
    ['TIMED_OUT', `${PREFIX}context deadline exceeded`, /timed out/],
    ['RUNTIME_ERROR', 'failed to pull and unpack image "x": failed to extract layer sha256:0b1f: exit status 1: unknown', /runtime failed the pull/],
    [
      'REGISTRY_ERROR',
      `${PREFIX}pulling from host 127.0.0.1:5000 failed with status code [manifests v1]: 500 Internal Server Error`,
      /registry 127\.0\.0\.1:5000 answered HTTP 500 \(Internal Server Error\)/,
    ],
    [
      'REGISTRY_ERROR',
      'failed to pull and unpack image "127.0.0.1:5000/team/app:v1": failed to copy: httpReadSeeker: failed open: unexpected status code http://127.0.0.1:5000/v2/team/app/blobs/sha256:04: 502 Bad Gateway',
      /registry 127\.0\.0\.1:5000 answered HTTP 502 \(Bad Gateway\)/,
    ],
    ['REGISTRY_ERROR', `${PREFIX}unexpected status from HEAD request to http://127.0.0.1:5000/v2/a/manifests/v1: 504 Gateway Timeout`, /answered HTTP 504 \(Gateway Timeout\)/],
    ['REGISTRY_ERROR', `${PREFIX}pulling from host 127.0.0.1:5000 failed with status code [manifests v1]: 429 Too Many Requests`, /answered HTTP 429/],
  ])('%s from %j', (code, details, message) => {
    const err = translatePullError(grpcError(status.UNKNOWN, details), ctx);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect(err.message).toContain(ctx.image);
    // Raw runtime words stay out of the user's message, and in the debug detail.
    expect(err.message).not.toContain('failed to resolve reference');
    expect(err.detail).toContain('failed to pull');
  });

  it('does not read words inside references: an image named eof that is not found', () => {
    const details = 'failed to pull and unpack image "127.0.0.1:5000/x509/eof:v1": failed to resolve reference "127.0.0.1:5000/x509/eof:v1": 127.0.0.1:5000/x509/eof:v1: not found';
    expect(translatePullError(grpcError(status.UNKNOWN, details), { ...ctx, image: '127.0.0.1:5000/x509/eof:v1' }).code).toBe('NOT_FOUND');
  });

  it('says the credentials were refused when some were sent', () => {
    const err = translatePullError(grpcError(status.UNKNOWN, `${PREFIX}pulling from host h failed with status code [manifests v1]: 401 Unauthorized`), {
      ...ctx,
      withCredentials: true,
    });
    expect(err.message).toBe(`cannot pull ${ctx.image}: registry 127.0.0.1:5000 refused the credentials (401/403)`);
  });

  it('names the endpoint when the runtime is unreachable', () => {
    const err = translatePullError(grpcError(status.UNAVAILABLE, 'No connection established. Last error: connect ENOENT /run/containerd/containerd.sock'), ctx);
    expect(err.code).toBe('RUNTIME_UNAVAILABLE');
    expect(err.message).toBe(`cannot pull ${ctx.image}: the container runtime is unreachable at ${ctx.endpoint}`);
  });

  it('maps cancellation, deadlines and unimplemented APIs', () => {
    expect(translatePullError(grpcError(status.CANCELLED, 'Cancelled on client'), ctx).code).toBe('CANCELLED');
    expect(translatePullError(grpcError(status.DEADLINE_EXCEEDED, 'Deadline exceeded'), ctx).code).toBe('TIMED_OUT');
    expect(translatePullError(grpcError(status.UNIMPLEMENTED, 'unknown service runtime.v1.ImageService'), ctx).message).toMatch(/does not serve the CRI v1/);
  });

  it('passes WarmErrors through and wraps anything else', () => {
    const own = new WarmError('PROGRESS_TIMEOUT', 'x');
    expect(translatePullError(own, ctx)).toBe(own);
    expect(translatePullError(new TypeError('boom'), ctx).code).toBe('RUNTIME_ERROR');
  });
});

describe('translatePullError: a full disk', () => {
  // containerd 1.6 when its root fills up while downloading a blob, and while unpacking a layer.
  const DOWNLOAD =
    'failed to pull and unpack image "127.0.0.1:5000/team/app:v1": failed to copy: write /var/lib/containerd/io.containerd.content.v1.content/ingest/5d8a/data: no space left on device';
  const UNPACK =
    'failed to pull and unpack image "127.0.0.1:5000/team/app:v1": failed to extract layer sha256:0b1f: write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/41/fs/x: no space left on device: unknown';
  const MOUNT = '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs';

  it.each([DOWNLOAD, UNPACK, 'writing blob: ENOSPC', 'write /x: disk quota exceeded'])('is NO_SPACE, whatever else the words say: %j', (details) => {
    const err = translatePullError(grpcError(status.UNKNOWN, details), ctx);
    expect(err.code).toBe('NO_SPACE');
    expect(err.message).toBe(`cannot pull ${ctx.image}: the container runtime ran out of space on its image filesystem`);
    expect(err.detail).toBe(details);
  });

  it('names the image filesystem, its free bytes and the image size where known', () => {
    const withFs = translatePullError(grpcError(status.UNKNOWN, UNPACK), { ...ctx, space: { mountpoint: MOUNT, freeBytes: 1536 * 1024 } });
    expect(withFs.message).toBe(`cannot pull ${ctx.image}: the image filesystem ${MOUNT} ran out of space (1.5 MiB free after the failed pull)`);
    const all = translatePullError(grpcError(status.UNKNOWN, DOWNLOAD), { ...ctx, space: { mountpoint: MOUNT, freeBytes: 2 ** 30, needBytes: 3 * 2 ** 30 } });
    expect(all.message).toBe(`cannot pull ${ctx.image}: the image filesystem ${MOUNT} ran out of space (1.0 GiB free after the failed pull; the image needs at least 3.0 GiB)`);
    expect([withFs.needBytes, all.needBytes]).toEqual([undefined, 3 * 2 ** 30]);
    const noFree = translatePullError(grpcError(status.UNKNOWN, DOWNLOAD), { ...ctx, space: { mountpoint: MOUNT } });
    expect(noFree.message).toBe(`cannot pull ${ctx.image}: the image filesystem ${MOUNT} ran out of space (free space unknown)`);
  });

  it('does not read the words in a reference as a full disk', () => {
    const details = 'failed to pull and unpack image "127.0.0.1:5000/enospc/app:v1": failed to resolve reference "127.0.0.1:5000/enospc/app:v1": 127.0.0.1:5000/enospc/app:v1: not found';
    expect(translatePullError(grpcError(status.UNKNOWN, details), ctx).code).toBe('NOT_FOUND');
  });

  it('says both sizes when Stoker refuses the pull itself', () => {
    const err = imageTooLargeError(ctx.image, { mountpoint: MOUNT, freeBytes: 12 * 2 ** 30, needBytes: 27 * 2 ** 30 });
    expect(err.code).toBe('NO_SPACE');
    expect(err.message).toBe(`cannot pull ${ctx.image}: it needs at least 27.0 GiB but the image filesystem ${MOUNT} has 12.0 GiB free`);
    // The controller waits for that much free space before it tries the node again.
    expect(err.needBytes).toBe(27 * 2 ** 30);
  });
});

describe('translateCallError', () => {
  it('names the endpoint for an unreachable runtime', () => {
    const err = translateCallError(grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'), 'asking for the version', ctx.endpoint);
    expect(err.code).toBe('RUNTIME_UNAVAILABLE');
    expect(err.message).toContain(ctx.endpoint);
  });
});

describe('scrubDetail', () => {
  it('removes credentials from URLs and headers', () => {
    const out = scrubDetail('GET https://user:s3cret@reg/v2/ Authorization: Basic dXNlcjpzM2NyZXQ= password=hunter2');
    expect(out).not.toMatch(/s3cret|dXNlcjpzM2NyZXQ|hunter2/);
    expect(out).toContain('[REDACTED]');
  });
});
