/**
 * A key's own rate-limit windows: a customer's front-end key or a partner's trial key held
 * to less than the rest of its account, without a plan or account of its own. They are
 * per key only, and apply on top of everything the key's account has (its plan's windows
 * or its own, and a route's extra windows), all windows or none: a key's windows can
 * only tighten its limits, never loosen them.
 *
 * Resolved as an account's own windows are (limits/overrides.ts): once per cached key and
 * route; a change drops the key from every process's cache.
 *
 * @example
 *   keyWindowsPlanKey('pro', [{ limit: 2, window: 1000, scope: 'key' }])
 *   // → 'pro\u0001key:2:1000:' (keys with the same windows share one entry)
 */
import type { RateLimit } from '../config/schema.js';
import { formatDuration } from '../config/duration.js';
import { keyWindowName } from './rate-limits.js';

/**
 * What the rate-limit planner keys a key's windows by: the account's entry (rateLimitPlanKey),
 * and for a key with windows of its own those windows. A \u0001 is in no plan id (schema.ts
 * identifier) nor in an account's windows' part (numbers, scopes, identifiers).
 */
export function keyWindowsPlanKey(accountPlanKey: string, windows: readonly RateLimit[] | undefined): string {
  if (windows === undefined || windows.length === 0) return accountPlanKey;
  return `${accountPlanKey}\u0001${windows.map((rl) => `${rl.scope}:${rl.limit}:${rl.window}:${rl.name ?? ''}`).join(',')}`;
}

/** Why a key's own window cannot be per account. */
export const PER_ACCOUNT_WHY =
  "a key's own windows are per key: a window shared by the account's keys (scope account, -per-account) is the account's own limit (accounts update <account> --rate-limit …-per-account)";

/** A key's own windows as the admin API and `--json` give them: name (as in the RateLimit fields), limit, window ("1s"), scope. */
export function keyWindowsOut(windows: readonly RateLimit[] | undefined) {
  return (windows ?? []).map((rl) => ({ name: keyWindowName(rl), limit: rl.limit, window: formatDuration(rl.window), scope: rl.scope }));
}

/** A key's own windows in words, as `--rate-limit` takes them: `2-per-1s`. */
export function keyWindowsText(windows: readonly RateLimit[] | undefined): string[] {
  return (windows ?? []).map((rl) => `${rl.limit}-per-${formatDuration(rl.window)}`);
}
