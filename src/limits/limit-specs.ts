/**
 * An account's own limits written as words: windows as keygate names them (`25-per-1s`
 * per key, `5000-per-1h-per-account`; `none` for no window, `plan` for the plan's) and a
 * meter's limit as `units=5000000` (`units=plan`: the plan's). Read into the change the
 * operation takes (LimitsChange, the admin API's merge patch) by the CLI's `--rate-limit`
 * and `--meter-limit` and by the dashboard's limits form. A refusal says which field,
 * what was typed and why (LimitSpecError), and each of them words it in its own terms.
 */
import { MAX_AMOUNT, tooLarge } from '../config/amounts.js';
import type { RateLimit } from '../config/schema.js';
import { parseDuration } from '../config/duration.js';
import type { LimitsChange } from '../operations/accounts.js';
import { OperationError } from '../operations/errors.js';
import { WINDOW_SPEC } from './overrides.js';
import { WindowsRefusal } from './window-shape.js';

/** A window as the profile writes it (`window` as text: `1s`), as far as its words go. */
export interface WindowWritten {
  limit: number;
  window: string;
  scope: string;
}

/** A window in words: `25-per-1s`, `5000-per-1h-per-account`. */
export function windowSpec(window: WindowWritten): string {
  return `${window.limit}-per-${window.window}${window.scope === 'account' ? '-per-account' : ''}`;
}

/**
 * What was refused, and why: a window that is none (`not_a_window`), `plan` or `none` among
 * other windows (`given_alone`: each is a whole list by itself), a window written right
 * that admits nothing (`zero_limit`: `0-per-1s`; `zero_window`: `5-per-0s`), or a meter's
 * limit that is no `<meter>=<number>` (`not_a_limit`; `meter` and `value` where it was
 * written as one); either with a limit past MAX_AMOUNT (`too_large`: hundreds of digits
 * would be read as Infinity, and named so).
 */
export type LimitSpecRefusal =
  | { field: 'window'; typed: string; why: 'not_a_window' | 'given_alone' | 'too_large' | EmptyWindow }
  | { field: 'meter'; typed: string; meter?: string; value?: string; why: 'not_a_limit' | 'too_large' };

/** Why a limit past MAX_AMOUNT is refused, in the profile's words (schema.ts). */
export const WINDOW_LIMIT_TOO_LARGE = tooLarge("a window's limit");
export const METER_LIMIT_TOO_LARGE = tooLarge("a meter's limit");

/** A window written right that admits nothing: a limit of 0, or a window of no length. */
export type EmptyWindow = 'zero_limit' | 'zero_window';

/**
 * Why such a window is refused, said after the window as typed by every surface that takes
 * windows as words (the CLI's flags, the dashboard's forms): `“0-per-1s”: the number of
 * requests (before -per-) must be at least 1`. The profile's and the admin API's windows
 * are fields (`limit: 0`), refused as such in their own words.
 */
export const EMPTY_WINDOW_WHY: Record<EmptyWindow, string> = {
  zero_limit: 'the number of requests (before -per-) must be at least 1',
  zero_window: 'the window (after -per-) must be longer than 0, as 1s or 1m',
};

/** Whether a window refusal is of one that admits nothing (EMPTY_WINDOW_WHY says why). */
export function isEmptyWindow(why: LimitSpecRefusal['why']): why is EmptyWindow {
  return why === 'zero_limit' || why === 'zero_window';
}

export class LimitSpecError extends OperationError {
  constructor(readonly refusal: LimitSpecRefusal) {
    super('invalid', refusalText(refusal));
    this.name = 'LimitSpecError';
  }
}

function refusalText(refusal: LimitSpecRefusal): string {
  if (refusal.why === 'too_large') return `"${refusal.typed}": ${refusal.field === 'window' ? WINDOW_LIMIT_TOO_LARGE : METER_LIMIT_TOO_LARGE}`;
  if (refusal.field === 'meter') return `"${refusal.typed}" is not a meter's limit`;
  if (isEmptyWindow(refusal.why)) return `"${refusal.typed}": ${EMPTY_WINDOW_WHY[refusal.why]}`;
  return `"${refusal.typed}" is not a rate-limit window${refusal.why === 'given_alone' ? ` among others: "${refusal.typed}" is given alone` : ''}`;
}

/** A meter's limit: a whole or decimal number, 0 or more, without separators or exponent. */
const METER_LIMIT = /^\d+(?:\.\d+)?$/;

/**
 * `windows` and `meters` as a change of the account's own limits; undefined where neither
 * is given. `windows` is every window the account should have, or `plan` or `none` alone;
 * `meters` is `<meter>=<limit>` or `<meter>=plan`, each. Throws LimitSpecError.
 */
export function readLimitSpecs(specs: { windows?: readonly string[]; meters?: readonly string[] }): LimitsChange | undefined {
  if (specs.windows === undefined && specs.meters === undefined) return undefined;
  const change: LimitsChange = {};
  if (specs.windows !== undefined) {
    const words = specs.windows.map((spec) => spec.trim());
    if (words.length === 1 && (words[0] === 'plan' || words[0] === 'none')) change.rateLimits = words[0] === 'plan' ? null : [];
    else {
      change.rateLimits = words.map((spec) => {
        const match = WINDOW_SPEC.exec(spec);
        if (!match) throw new LimitSpecError({ field: 'window', typed: spec, why: spec === 'plan' || spec === 'none' ? 'given_alone' : 'not_a_window' });
        const limit = Number(match[1]);
        if (limit > MAX_AMOUNT) throw new LimitSpecError({ field: 'window', typed: spec, why: 'too_large' });
        // Read as a window, so said here, in the words it was typed in, not as the operation's `limit: expected more than 0`.
        if (limit === 0) throw new LimitSpecError({ field: 'window', typed: spec, why: 'zero_limit' });
        if (parseDuration(match[2] as string) === 0) throw new LimitSpecError({ field: 'window', typed: spec, why: 'zero_window' });
        return { limit, window: match[2], scope: match[3] ?? 'key' };
      });
    }
  }
  if (specs.meters !== undefined) {
    const meters: Record<string, number | null> = {};
    for (const spec of specs.meters) {
      const match = /^([^=\s]+)=(.*)$/.exec(spec.trim());
      const meter = match?.[1];
      const value = match?.[2]?.trim();
      if (meter === undefined || value === undefined || (value !== 'plan' && !METER_LIMIT.test(value))) {
        throw new LimitSpecError({ field: 'meter', typed: spec, why: 'not_a_limit', ...(meter !== undefined && value !== undefined ? { meter, value } : {}) });
      }
      const limit = value === 'plan' ? null : Number(value);
      if (limit !== null && limit > MAX_AMOUNT) throw new LimitSpecError({ field: 'meter', typed: spec, why: 'too_large', meter, value });
      meters[meter] = limit;
    }
    change.meters = meters;
  }
  return change;
}

/**
 * `change` with the names its windows had: the words carry no name (only the admin API
 * gives one), so a window written again with the length, scope and limit of one of
 * `before` (the account's own windows now; null: the plan's) keeps that one's name, and
 * with it its `RateLimit` fields, its label in `/metrics` and the logs. A changed window
 * gets none. Each window of `before` names one window of `change` at most, the first
 * that matches.
 *
 * @example
 *   keepWindowNames({ rateLimits: [{ limit: 20, window: '1s', scope: 'key' }] }, [{ name: 'burst', limit: 20, window: 1000, scope: 'key' }])
 *   // → { rateLimits: [{ limit: 20, window: '1s', scope: 'key', name: 'burst' }] }
 */
export function keepWindowNames<C extends LimitsChange | undefined>(change: C, before: readonly RateLimit[] | null | undefined): C {
  if (change === undefined || !Array.isArray(change.rateLimits) || !before?.some((rl) => rl.name !== undefined)) return change;
  const unclaimed = [...before];
  const rateLimits = (change.rateLimits as WindowWritten[]).map((written) => {
    const at = unclaimed.findIndex((rl) => rl.limit === written.limit && rl.scope === written.scope && rl.window === parseDuration(written.window));
    if (at < 0) return written;
    const [kept] = unclaimed.splice(at, 1);
    return kept?.name === undefined ? written : { ...written, name: kept.name };
  });
  return { ...change, rateLimits };
}

/**
 * Where an operation's refusal of an account's windows (`limits.rateLimits`, see
 * changedLimits) points, and why, read from the refusal's fields (WindowsRefusal), not its
 * message: one window of the change (by its place in the list), or the windows as a whole.
 * Undefined for any other refusal (a key's `rateLimits` among them; a meter's limit,
 * MeterLimitError, is worded from its reason by each caller).
 */
export function limitsRefusalPlace(error: OperationError): { at: { window: number } | 'windows'; why: string } | undefined {
  if (!(error instanceof WindowsRefusal) || error.field !== 'limits.rateLimits') return undefined;
  return { at: error.index === undefined ? 'windows' : { window: error.index }, why: error.why };
}
