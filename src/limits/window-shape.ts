/**
 * A window of an account's (or a key's) own refused for what it holds (a limit of 0, a
 * window that is not a duration). The operation says where and why
 * (`limits.rateLimits[0].limit: expected more than 0`); the admin API adds how the profile
 * writes a window (WINDOW_SHAPE_NOTE) where it answers, its callers writing windows in
 * those terms. The CLI's flags and the dashboard's forms take windows as `10-per-1m` and
 * say so in their own words: the note is not theirs.
 */
import { OperationError } from '../operations/errors.js';

/** How the profile and the admin API write a window, told after a refusal of one. */
export const WINDOW_SHAPE_NOTE = '(a window is { limit: 100, window: "1s", scope: "key" or "account" })';

export class WindowShapeError extends OperationError {
  constructor(
    /** The field refused, as the request gave it: `limits.rateLimits[0].limit`, `rateLimits[1]`. */
    readonly place: string,
    /** Why, in the profile's words: `expected more than 0`. */
    readonly why: string,
  ) {
    super('invalid', `${place}: ${why}`);
    this.name = 'WindowShapeError';
  }
}

/** A refusal's message as the admin API answers it: with WINDOW_SHAPE_NOTE after it where `error` refused a window's shape. */
export function withWindowShape(error: OperationError): string {
  return error instanceof WindowShapeError ? `${error.message} ${WINDOW_SHAPE_NOTE}` : error.message;
}
