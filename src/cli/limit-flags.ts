/**
 * `keygate accounts create`'s and `accounts update`'s `--rate-limit` and `--meter-limit`: an account's own limits
 * (limits/overrides.ts) as the admin API's merge patch, read by limits/limit-specs.ts, and its refusals told in the flags.
 */
import type { Command } from 'commander';
import type { LimitsChange } from '../operations/accounts.js';
import { OperationError } from '../operations/errors.js';
import { LimitSpecError, limitsRefusalPlace, readLimitSpecs, windowSpec, type WindowWritten } from '../limits/limit-specs.js';

/** Collects a repeatable option's values in the order given. */
function repeated(value: string, before: string[] | undefined): string[] {
  return [...(before ?? []), value];
}

/** Adds `--rate-limit` and `--meter-limit` (read by limitsOptions) to an accounts command. */
export function accountLimitOptions(command: Command): Command {
  return command
    .option('--rate-limit <window>', "the account's own window in place of the plan's: 100-per-1s (per key), 5000-per-1h-per-account (repeatable: give every window it should have); plan: the plan's again; none: no plan-level window", repeated)
    .option('--meter-limit <meter=n|plan>', "the account's own limit of a meter of its plan, as units=5000000; units=plan: the plan's again (repeatable)", repeated);
}

/**
 * `--rate-limit` and `--meter-limit` as a change of the account's own limits; undefined
 * where neither is given. `--rate-limit plan` gives the plan's windows back, `none` leaves
 * the account no plan-level window; otherwise every window it should have, as keygate
 * names them: `100-per-1s` (per key), `5000-per-1h-per-account`.
 */
export function limitsOptions(opts: { rateLimit?: string[]; meterLimit?: string[] }): LimitsChange | undefined {
  try {
    return readLimitSpecs({ ...(opts.rateLimit !== undefined ? { windows: opts.rateLimit } : {}), ...(opts.meterLimit !== undefined ? { meters: opts.meterLimit } : {}) });
  } catch (error) {
    if (!(error instanceof LimitSpecError)) throw error;
    const { refusal } = error;
    if (refusal.field === 'meter') throw new OperationError('invalid', `--meter-limit "${refusal.typed}": expected <meter>=<limit> (a number, 0 or more) or <meter>=plan, as units=5000000`);
    const alone = refusal.why === 'given_alone' ? `: "${refusal.typed}" is given alone` : '';
    throw new OperationError('invalid', `--rate-limit "${refusal.typed}": expected <limit>-per-<window>, as 100-per-1s or 5000-per-1h-per-account, or plan (the plan's windows) or none${alone}`);
  }
}

/** An error about `limits.…` (the admin API's fields) told in the flags that gave it. */
export function inFlags(error: unknown, change: LimitsChange | undefined): unknown {
  if (!(error instanceof OperationError) || change === undefined) return error;
  const place = limitsRefusalPlace(error);
  // The list as a whole (`limits.rateLimits: at most 20 windows`) is said as the operation says it.
  if (place === undefined || place.at === 'windows') return error;
  const windows = Array.isArray(change.rateLimits) ? change.rateLimits : [];
  let flag: string;
  if ('meter' in place.at) flag = `--meter-limit ${place.at.meter}`;
  else {
    const written = windows[place.at.window] as WindowWritten | undefined;
    flag = written ? `--rate-limit "${windowSpec(written)}"` : '--rate-limit';
  }
  const why = place.why.replace(/give "([^"]+)": null to drop it/, 'give --meter-limit $1=plan to drop it');
  return new OperationError(error.kind, `${flag}: ${why}`);
}
