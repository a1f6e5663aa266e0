// spec.schedule and spec.timeZone: when a Warmup runs again. A cron expression of five fields
// (minute hour day-of-month month day-of-week) or six (with seconds first), in spec.timeZone (an
// IANA zone, default UTC), parsed by cron-parser.
//
//   checkSchedule('0 3 * * *', 'Europe/Berlin')             -> undefined, or why it is unusable
//   lastTick('0 3 * * *', 'Europe/Berlin', createdMs, now)  -> the latest tick in (createdMs, now], or undefined
//   nextTick('0 3 * * *', 'Europe/Berlin', now)             -> the first tick after now
//
// The reconciler runs a Warmup for the latest tick only: ticks missed while no controller ran
// start one run, not one each.
import { CronExpressionParser } from 'cron-parser';

export const DEFAULT_TIME_ZONE = 'UTC';

function parse(schedule: string, timeZone: string, at: number) {
  return CronExpressionParser.parse(schedule, { currentDate: new Date(at), tz: timeZone });
}

/** Why a schedule or time zone cannot be used, or undefined. */
export function checkSchedule(schedule: string, timeZone: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    return `spec.timeZone "${timeZone}" is not an IANA time zone (for example "Europe/Berlin" or "UTC")`;
  }
  const fields = schedule.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return `spec.schedule "${schedule}" has ${fields} fields; a cron expression has 5 (or 6, with seconds first)`;
  try {
    parse(schedule, timeZone, Date.now()).next();
  } catch (err) {
    return `spec.schedule "${schedule}" is not a cron expression: ${err instanceof Error ? err.message : String(err)}`;
  }
  return undefined;
}

/** The latest tick after `afterMs` and at or before `nowMs`; undefined when there is none (or the schedule is unusable). */
export function lastTick(schedule: string, timeZone: string, afterMs: number, nowMs: number): number | undefined {
  try {
    const t = parse(schedule, timeZone, nowMs + 1).prev().getTime();
    return t > afterMs ? t : undefined;
  } catch {
    return undefined;
  }
}

/** The first tick after `nowMs`; undefined when the schedule is unusable. */
export function nextTick(schedule: string, timeZone: string, nowMs: number): number | undefined {
  try {
    return parse(schedule, timeZone, nowMs).next().getTime();
  } catch {
    return undefined;
  }
}
