/**
 * The rate-limit headers Kong's rate-limiting plugin sends, for clients written against Kong
 * (`rateLimitHeaders: kong` or `both`):
 *
 *   X-RateLimit-Limit-Minute: 60          one pair per window, named by its length
 *   X-RateLimit-Remaining-Minute: 57
 *   RateLimit-Limit: 60                   the window closest to its limit
 *   RateLimit-Remaining: 57
 *   RateLimit-Reset: 42
 *
 * Kong names a window by its unit (Second, Minute, Hour, Day, Month of 30 days, Year of 365);
 * a window of any other length by its seconds, as Kong's Rate Limiting Advanced does
 * (`X-RateLimit-Limit-10` for 10s, `-300` for 5m). The RateLimit-* trio is the window with the
 * fewest requests left, the longer one on a tie, as Kong chooses.
 */
import type { WindowState } from '../counters/counters.js';
import { DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS } from '../config/duration.js';

/** Kong's units, by their length (its EXPIRATIONS: a month is 30 days, a year 365). */
const KONG_UNITS: ReadonlyMap<number, string> = new Map([
  [SECOND_MS, 'Second'],
  [MINUTE_MS, 'Minute'],
  [HOUR_MS, 'Hour'],
  [DAY_MS, 'Day'],
  [30 * DAY_MS, 'Month'],
  [365 * DAY_MS, 'Year'],
]);

export const KONG_LIMIT = 'ratelimit-limit';
export const KONG_REMAINING = 'ratelimit-remaining';
export const KONG_RESET = 'ratelimit-reset';

/**
 * What a window's headers are called after `X-RateLimit-Limit-`: its Kong unit, else its
 * length in seconds, rounded up as RateLimit-Policy's `w` is (1500ms is `2`).
 */
export function kongWindowSuffix(windowMs: number): string {
  return KONG_UNITS.get(windowMs) ?? String(Math.max(1, Math.ceil(windowMs / 1000)));
}

/** One header pair, and the windows (by their place in the plan's list) it stands for. */
interface KongPair {
  limit: string;
  remaining: string;
  windows: number[];
}

/**
 * The header pairs of a list of windows, fixed for a plan and route: windows of one length
 * (a per-key and a per-account 1m, a plan's and a route's) share one pair, which Kong never
 * had to, and a client reads one value per name.
 */
export function kongPairs(windows: readonly { windowMs: number }[]): KongPair[] {
  const bySuffix = new Map<string, KongPair>();
  windows.forEach(({ windowMs }, i) => {
    const suffix = kongWindowSuffix(windowMs);
    const pair = bySuffix.get(suffix);
    if (pair) pair.windows.push(i);
    else bySuffix.set(suffix, { limit: `x-ratelimit-limit-${suffix.toLowerCase()}`, remaining: `x-ratelimit-remaining-${suffix.toLowerCase()}`, windows: [i] });
  });
  return [...bySuffix.values()];
}

/**
 * Kong's headers for the windows' current state (`pairs` from kongPairs of the same
 * windows), added to `out`. A shared pair shows the window with fewer left (the first on a
 * tie): the one that refuses first. RateLimit-Reset is whole seconds until the chosen window
 * has room for one more (its oldest admission leaves it), at least 1 as Kong's is.
 */
export function addKongHeaders(out: Record<string, string>, pairs: readonly KongPair[], windows: readonly WindowState[]): Record<string, string> {
  for (const pair of pairs) {
    let shown = windows[pair.windows[0] as number] as WindowState;
    for (let j = 1; j < pair.windows.length; j++) {
      const w = windows[pair.windows[j] as number] as WindowState;
      if (w.remaining < shown.remaining) shown = w;
    }
    out[pair.limit] = String(shown.limit);
    out[pair.remaining] = String(shown.remaining);
  }
  let closest = windows[0] as WindowState;
  for (let i = 1; i < windows.length; i++) {
    const w = windows[i] as WindowState;
    if (w.remaining < closest.remaining || (w.remaining === closest.remaining && w.windowMs > closest.windowMs)) closest = w;
  }
  out[KONG_LIMIT] = String(closest.limit);
  out[KONG_REMAINING] = String(closest.remaining);
  out[KONG_RESET] = String(Math.max(1, Math.ceil(closest.resetMs / 1000)));
  return out;
}
