/**
 * Two windows of one length and scope in one list (a plan's, a route's, an account's
 * own): the one with the larger limit can never refuse a request the other admits, so
 * the pair is almost always a typo (`1m` meant as `1h`). The profile, the admin API, the
 * CLI and the dashboard refuse such a list, each naming the window and the one before it
 * that already has that length, in its own terms. Lists saved before this check (an
 * account's own windows) still work: their second window is counted apart (see
 * `counterIds` in rate-limits.ts).
 *
 * @example
 *   repeatedWindow([{ limit: 100, window: 60_000, scope: 'key' }, { limit: 5000, window: 60_000, scope: 'key' }])
 *   // → { at: 1, earlier: 0 }
 */
import { formatDuration } from '../config/duration.js';
import { OperationError } from '../operations/errors.js';

/** A window as far as this check reads it: its length in milliseconds and its scope. */
export interface WindowShape {
  window: number;
  scope: 'key' | 'account';
}

/** The first window whose length and scope an earlier one in the list has (`at`), and that one (`earlier`); undefined if none. */
export function repeatedWindow(windows: readonly WindowShape[]): { at: number; earlier: number } | undefined {
  const first = new Map<string, number>();
  for (const [at, { window, scope }] of windows.entries()) {
    const shape = `${scope}:${window}`;
    const earlier = first.get(shape);
    if (earlier !== undefined) return { at, earlier };
    first.set(shape, at);
  }
  return undefined;
}

/**
 * Why a window of `shape` is refused, `earlier` naming the window before it in the
 * reader's terms (`rateLimits[0]`, `the 1st (100-per-1m)`).
 */
export function repeatedWindowWhy(earlier: string, shape: WindowShape): string {
  const scope = shape.scope === 'account' ? 'per-account' : 'per-key';
  return `${earlier} is already a ${scope} window of ${formatDuration(shape.window)}: of two windows of one length and scope, the one with the larger limit never refuses a request (was another length meant?); give each length one window per scope`;
}

/**
 * An account's (or a key's) own windows refused for a repeated length and scope (see repeatedWindow):
 * `at` and `earlier` are places in the list given. The message is the admin API's
 * (`limits.rateLimits[1]: limits.rateLimits[0] is already …`); the CLI and the dashboard
 * word it from the fields.
 */
export class RepeatedWindowError extends OperationError {
  constructor(
    readonly at: number,
    readonly earlier: number,
    readonly shape: WindowShape,
    /** Where the list was given: an account's `limits.rateLimits`, a key's `rateLimits`. */
    field = 'limits.rateLimits',
  ) {
    super('invalid', `${field}[${at}]: ${repeatedWindowWhy(`${field}[${earlier}]`, shape)}`);
    this.name = 'RepeatedWindowError';
  }
}
