/**
 * Durations in keygate.yaml are written the way people say them: `500ms`, `1s`, `10m`,
 * `24h`, `7d`, or `0`. A bare number is milliseconds.
 */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export const DURATION_PATTERN = /^(?:0|(\d+(?:\.\d+)?)\s*(ms|s|m|h|d))$/;

export const SECOND_MS = UNIT_MS.s;
export const MINUTE_MS = UNIT_MS.m;
export const HOUR_MS = UNIT_MS.h;
export const DAY_MS = UNIT_MS.d;

/** Parses `10m` into 600000; returns undefined for anything that is not a duration. */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text : undefined;
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match) return undefined;
  if (match[1] === undefined) return 0;
  const unit = match[2] as keyof typeof UNIT_MS;
  const ms = Math.round(Number(match[1]) * UNIT_MS[unit]);
  // Past 2^53 ms (285,000 years) milliseconds are no longer whole numbers: not a duration.
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/**
 * What a number given as text without its unit lacks, for a refused duration (`--overlap 1`,
 * `{"overlap": "90"}`): in the profile a bare number is milliseconds, but typed by hand `1`
 * could as well be meant as a minute or a day, so such text is refused and the units named.
 * `example`: the same field written well, in the caller's terms (`--overlap 10m`, `"10m"`).
 * Empty for any other text. Nothing typed is repeated.
 */
export function unitlessNumberHint(text: string, example: string): string {
  return /^\d+(?:\.\d+)?$/.test(text.trim()) ? `: a number is written with its unit (ms, s, m, h or d), as ${example}; only 0 goes without one` : '';
}

/** Formats 600000 as `10m`, choosing the largest unit that divides it evenly. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
