import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './log.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, destination };
}

describe('createLogger', () => {
  it('redacts credentials at every depth a log object may hold them', () => {
    const { lines, destination } = capture();
    const log = createLogger({ name: 'test', destination });
    const secret = 'hunter2-very-secret';
    log.info({ password: secret }, 'top');
    log.info({ credential: { password: secret, auth: secret, username: 'alice' } }, 'nested');
    log.info({ request: { credentials: [{ password: secret }] } }, 'list');
    log.info({ a: { b: { identityToken: secret, registryToken: secret } } }, 'deep');
    const all = lines.join('');
    expect(lines).toHaveLength(4);
    expect(all).not.toContain(secret);
    expect(all).toContain('alice');
    expect(all).toContain('[REDACTED]');
  });
});
