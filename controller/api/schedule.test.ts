import { describe, expect, it } from 'vitest';
import { checkSchedule, lastTick, nextTick } from './schedule.js';
import { resolveSpec, validateSpec } from './types.js';

const at = (iso: string) => Date.parse(iso);

describe('schedule', () => {
  it('takes 5-field and 6-field cron expressions in an IANA zone, and names what it refuses', () => {
    expect(checkSchedule('0 3 * * *', 'Europe/Berlin')).toBeUndefined();
    expect(checkSchedule('*/10 * * * * *', 'UTC')).toBeUndefined();
    expect(checkSchedule('61 * * * *', 'UTC')).toContain('spec.schedule "61 * * * *" is not a cron expression');
    expect(checkSchedule('* * *', 'UTC')).toBe('spec.schedule "* * *" has 3 fields; a cron expression has 5 (or 6, with seconds first)');
    expect(checkSchedule('0 3 * * *', 'Mars/Olympus')).toContain('spec.timeZone "Mars/Olympus" is not an IANA time zone');
    const p = validateSpec(resolveSpec({ images: [{ image: 'a' }], schedule: '0 25 * * *' }));
    expect(p).toMatchObject({ reason: 'InvalidSpec', value: '0 25 * * *' });
  });

  it('reads the expression in its time zone', () => {
    // 03:00 in Berlin is 02:00 UTC in winter.
    expect(new Date(nextTick('0 3 * * *', 'Europe/Berlin', at('2025-01-01T12:00:00Z'))!).toISOString()).toBe('2025-01-02T02:00:00.000Z');
    expect(new Date(nextTick('0 3 * * *', 'UTC', at('2025-01-01T12:00:00Z'))!).toISOString()).toBe('2025-01-02T03:00:00.000Z');
  });

  it('gives the latest tick since a time: ticks missed meanwhile fold into one, none before the start', () => {
    const created = at('2025-01-01T00:00:30Z');
    expect(lastTick('* * * * *', 'UTC', created, at('2025-01-01T00:00:59Z'))).toBeUndefined();
    expect(lastTick('* * * * *', 'UTC', created, at('2025-01-01T00:01:00Z'))).toBe(at('2025-01-01T00:01:00Z'));
    // Five ticks passed while nothing looked: only the latest counts.
    expect(lastTick('* * * * *', 'UTC', created, at('2025-01-01T00:05:30Z'))).toBe(at('2025-01-01T00:05:00Z'));
  });
});
