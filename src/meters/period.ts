/**
 * Meter periods: a calendar month (UTC) or a month starting on a billing day. A period
 * is named by its first day, `YYYY-MM-DD`, which is also how balances are stored.
 */
import { DAY_MS } from '../config/duration.js';
import type { MeterPeriod } from '../config/schema.js';

export interface PeriodBounds {
  start: string;
  /** First instant of the period, ms since epoch. */
  startsAt: number;
  /** First instant of the next period. */
  endsAt: number;
}

export function periodBounds(period: MeterPeriod, now: number): PeriodBounds {
  const date = new Date(now);
  const day = period === 'month' ? 1 : period.billingDay;
  let year = date.getUTCFullYear();
  let month = date.getUTCMonth();
  if (date.getUTCDate() < day) month -= 1;
  if (month < 0) {
    month += 12;
    year -= 1;
  }
  const startsAt = Date.UTC(year, month, day);
  const endsAt = Date.UTC(year, month + 1, day);
  return { start: isoDay(startsAt), startsAt, endsAt };
}

/** The last day asked for: usage is recorded per day on every request. */
let lastDay = { from: 0, to: 0, text: '' };

/** `2026-12-03 14:05 UTC`: a moment as messages, the CLI and the dashboard write it. */
export function utcMinute(ms: number): string {
  return `${new Date(ms).toISOString().replace('T', ' ').slice(0, 16)} UTC`;
}

/**
 * `2026-12-03 14:06 UTC`: an end one waits for, to the minute and rounded up (as
 * utcSecondUp to the second): at the minute shown it has ended.
 */
export function utcMinuteUp(ms: number): string {
  return utcMinute(Math.ceil(ms / 60_000) * 60_000);
}

/**
 * `2026-12-03 14:05:07`: when something in force ends that one waits for (a block, a
 * pause, a retry), to the second and rounded up, so that at the time shown it has ended.
 * The CLI and the dashboard both write such ends this way, so both show the same one.
 */
export function utcSecondUp(ms: number): string {
  return utcSecond(Math.ceil(ms / 1000) * 1000);
}

/**
 * `2026-12-03 14:05:07`: when something happened (created, revoked, expired), to the
 * second and truncated: a key revoked at 14:05:07.414 is shown at 14:05:07, never at a
 * second (14:05:08) before which it had already happened. (An end still to come, a key's
 * too, is rounded up: utcSecondUp.)
 */
export function utcSecond(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('T', ' ').slice(0, 19);
}

export function isoDay(ms: number): string {
  if (ms >= lastDay.from && ms < lastDay.to) return lastDay.text;
  const from = Math.floor(ms / DAY_MS) * DAY_MS;
  lastDay = { from, to: from + DAY_MS, text: new Date(from).toISOString().slice(0, 10) };
  return lastDay.text;
}
