import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { WarmRequest } from '../../proto/agent.js';
import { ServerError } from './errors.js';
import { credentialSecrets, scrub, validateCancelRequest, validateNodeStatusRequest, validateWarmRequest } from './validate.js';

function request(overrides: Partial<WarmRequest> = {}): WarmRequest {
  return {
    taskId: 'warmup-1/node-a',
    nodeName: 'node-a',
    images: [{ image: 'registry.example.com/app:v1', pullPolicy: 'PULL_POLICY_UNSPECIFIED', tag: '' }],
    paths: [],
    credentials: [],
    progressTimeoutSeconds: 0,
    checkOnly: false,
    pin: false,
    minResidentPercent: 0,
    ...overrides,
  };
}

type Credential = WarmRequest['credentials'][number];
function cred(c: Partial<Credential>): Credential {
  return { registry: '', username: '', password: '', auth: '', identityToken: '', registryToken: '', ...c };
}

function refusal(fn: () => unknown): ServerError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ServerError) return err;
    throw err;
  }
  throw new Error('expected a ServerError');
}

describe('validateWarmRequest', () => {
  it('accepts a good request, merges duplicate images (ALWAYS wins) and converts the timeout', () => {
    const valid = validateWarmRequest(
      request({
        images: [
          { image: 'a:v1', pullPolicy: 'IF_NOT_PRESENT', tag: '' },
          { image: 'b:v1', pullPolicy: 'PULL_POLICY_UNSPECIFIED', tag: '' },
          { image: 'a:v1', pullPolicy: 'ALWAYS', tag: '' },
        ],
        paths: [{ path: '/models/llama', include: ['*.safetensors'], exclude: [] }],
        progressTimeoutSeconds: 30,
      }),
      'node-a',
    );
    expect(valid.images).toEqual([
      { image: 'a:v1', pullPolicy: 'ALWAYS' },
      { image: 'b:v1', pullPolicy: 'IF_NOT_PRESENT' },
    ]);
    expect(valid.paths).toEqual([{ path: '/models/llama', include: ['*.safetensors'], exclude: [] }]);
    expect(valid.progressTimeoutMs).toBe(30_000);
  });

  it('refuses a request for another node with FAILED_PRECONDITION naming both nodes', () => {
    const err = refusal(() => validateWarmRequest(request({ nodeName: 'node-b' }), 'node-a'));
    expect(err.status).toBe(status.FAILED_PRECONDITION);
    expect(err.errorCode).toBe('WRONG_NODE');
    expect(err.message).toBe('the request is for node "node-b" but this agent runs on node "node-a"');
  });

  it.each([
    [{ taskId: '' }, 'task_id is empty'],
    [{ taskId: 'has space' }, 'task_id "has space" is not'],
    [{ nodeName: '' }, 'node_name is empty'],
    [{ images: [] }, 'names no images and no paths'],
    [{ images: [{ image: ' ', pullPolicy: 'IF_NOT_PRESENT', tag: '' }] }, 'images[0] is empty'],
    [{ paths: [{ path: 'models', include: [], exclude: [] }] }, 'paths[0] "models" is not absolute'],
    [{ paths: [{ path: '/m', include: [''], exclude: [] }] }, 'paths[0] "/m" has an empty include or exclude pattern'],
    [{ credentials: [cred({ password: 'x' })] }, 'credentials[0] names no registry'],
    [{ credentials: [cred({ registry: 'r.example.com', username: 'u' })] }, 'credentials[0] for registry "r.example.com" carries no password, auth or token'],
    [{ progressTimeoutSeconds: 100_000 }, 'progress_timeout_seconds 100000 is more than 86400'],
    [{ checkOnly: true, minResidentPercent: 101 }, 'min_resident_percent 101 is more than 100'],
  ] satisfies [Partial<WarmRequest>, string][])('refuses %o with INVALID_ARGUMENT: %s', (overrides, message) => {
    const err = refusal(() => validateWarmRequest(request(overrides), 'node-a'));
    expect(err.status).toBe(status.INVALID_ARGUMENT);
    expect(err.errorCode).toBe('INVALID_REQUEST');
    expect(err.message).toContain(message);
  });

  it('never puts a credential value in a refusal', () => {
    const secret = 'hunter2-secret';
    const err = refusal(() =>
      validateWarmRequest(request({ credentials: [cred({ registry: 'bad host/x', username: 'u', password: secret })] }), 'node-a'),
    );
    expect(err.message).toContain('"bad host/x"');
    expect(err.message).not.toContain(secret);
  });
});

describe('validateNodeStatusRequest', () => {
  it('checks the node and de-duplicates images', () => {
    expect(validateNodeStatusRequest({ nodeName: 'node-a', images: ['a', ' a ', 'b'] }, 'node-a')).toEqual(['a', 'b']);
    expect(refusal(() => validateNodeStatusRequest({ nodeName: 'node-z', images: [] }, 'node-a')).status).toBe(status.FAILED_PRECONDITION);
    const bad = refusal(() => validateNodeStatusRequest({ nodeName: 'node-a', images: ['ok:v1', 'Bad/Upper:v1'] }, 'node-a'));
    expect(bad.status).toBe(status.INVALID_ARGUMENT);
    expect(bad.errorCode).toBe('INVALID_REFERENCE');
    expect(bad.message).toContain('"Bad/Upper:v1"');
  });
});

describe('validateCancelRequest', () => {
  it('checks the task id like Warm and refuses a request for another node', () => {
    expect(validateCancelRequest({ taskId: 'uid-g1-node-a-a1', nodeName: 'node-a' }, 'node-a')).toBe('uid-g1-node-a-a1');
    const wrong = refusal(() => validateCancelRequest({ taskId: 'uid-g1-node-b-a1', nodeName: 'node-b' }, 'node-a'));
    expect(wrong.status).toBe(status.FAILED_PRECONDITION);
    expect(wrong.errorCode).toBe('WRONG_NODE');
    expect(wrong.message).toContain('"node-b"');
    const bad = refusal(() => validateCancelRequest({ taskId: 'two words', nodeName: 'node-a' }, 'node-a'));
    expect(bad.status).toBe(status.INVALID_ARGUMENT);
    expect(bad.message).toContain('"two words"');
    expect(refusal(() => validateCancelRequest({ taskId: '', nodeName: 'node-a' }, 'node-a')).errorCode).toBe('INVALID_REQUEST');
  });
});

describe('credential scrubbing', () => {
  it('finds every secret form a credential carries, and scrub removes them', () => {
    const auth = Buffer.from('bob:s3cret-pass').toString('base64');
    const secrets = credentialSecrets([
      { registry: 'r', username: 'alice', password: 'pa55word', auth: '', identityToken: 'id-token-1', registryToken: '' },
      { registry: 'q', username: '', password: '', auth, identityToken: '', registryToken: 'reg-token-2' },
    ]);
    const basic = Buffer.from('alice:pa55word').toString('base64');
    const text = `pa55word ${basic} id-token-1 ${auth} s3cret-pass reg-token-2 alice`;
    expect(scrub(text, secrets)).toBe('[REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] alice');
  });
});
