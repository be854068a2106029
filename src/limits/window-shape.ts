/**
 * A window of an account's (or a key's) own refused for what it holds (a limit of 0, a
 * window that is not a duration). The operation says where and why
 * (`limits.rateLimits[0].limit: expected more than 0`); the admin API and the CLI add
 * how the profile writes a window (WINDOW_SHAPE_NOTE) where they answer, their callers
 * writing windows in those terms or reading the profile's. The dashboard's forms take
 * windows as `10-per-1m` and say so in their own words: the note is not theirs.
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

/**
 * `message` (the refusal's own, or the caller's wording of it) as the admin API and the CLI
 * answer it: with WINDOW_SHAPE_NOTE after it where `error` refused a window's shape.
 */
export function withWindowShape(error: OperationError, message = error.message): string {
  return error instanceof WindowShapeError ? `${message} ${WINDOW_SHAPE_NOTE}` : message;
}
