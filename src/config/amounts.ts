/**
 * The bound on every limit and cost a profile, the CLI or the admin API gives, apart from
 * the schema (zod) that enforces it in a profile: the CLI reads it at start-up, where zod
 * is not loaded (test/cli-start.test.ts).
 */
import { MAX_REPORTED } from '../meters/cost.js';

/**
 * The largest limit or cost a profile may give: 15 digits, as the counts an upstream
 * reports and an account's own meter limits (MAX_REPORTED): one bound wherever a limit is
 * given, inside what a double holds exactly (2^53), where 400 nines would be Infinity.
 */
export const MAX_AMOUNT = MAX_REPORTED;

/** Why an amount past MAX_AMOUNT is refused: `too large: a meter's limit is at most 999999999999999`. */
export function tooLarge(what: string): string {
  return `too large: ${what} is at most ${MAX_AMOUNT}`;
}
