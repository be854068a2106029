/**
 * `keygate accounts create`'s and `accounts update`'s `--rate-limit` and `--meter-limit`: an account's own limits
 * (limits/overrides.ts) as the admin API's merge patch, and its refusals told in the flags.
 */
import type { Command } from 'commander';
import type { LimitsChange } from '../operations/accounts.js';
import { OperationError } from '../operations/errors.js';
import { WINDOW_SPEC } from '../limits/overrides.js';

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
  if (opts.rateLimit === undefined && opts.meterLimit === undefined) return undefined;
  const change: LimitsChange = {};
  if (opts.rateLimit !== undefined) {
    const words = opts.rateLimit.map((spec) => spec.trim());
    if (words.length === 1 && (words[0] === 'plan' || words[0] === 'none')) change.rateLimits = words[0] === 'plan' ? null : [];
    else {
      change.rateLimits = words.map((spec) => {
        const match = WINDOW_SPEC.exec(spec);
        if (!match) {
          const alone = spec === 'plan' || spec === 'none' ? `: "${spec}" is given alone` : '';
          throw new OperationError('invalid', `--rate-limit "${spec}": expected <limit>-per-<window>, as 100-per-1s or 5000-per-1h-per-account, or plan (the plan's windows) or none${alone}`);
        }
        return { limit: Number(match[1]), window: match[2], scope: match[3] ?? 'key' };
      });
    }
  }
  if (opts.meterLimit !== undefined) {
    const meters: Record<string, number | null> = {};
    for (const spec of opts.meterLimit) {
      const match = /^([^=\s]+)=(.*)$/.exec(spec.trim());
      const value = match?.[2]?.trim();
      if (!match || value === undefined || (value !== 'plan' && !/^\d+(?:\.\d+)?$/.test(value))) {
        throw new OperationError('invalid', `--meter-limit "${spec}": expected <meter>=<limit> (a number, 0 or more) or <meter>=plan, as units=5000000`);
      }
      meters[match[1] as string] = value === 'plan' ? null : Number(value);
    }
    change.meters = meters;
  }
  return change;
}

/** An error about `limits.…` (the admin API's fields) told in the flags that gave it. */
export function inFlags(error: unknown, change: LimitsChange | undefined): unknown {
  if (!(error instanceof OperationError) || change === undefined) return error;
  const windows = Array.isArray(change.rateLimits) ? change.rateLimits : [];
  const message = error.message
    .replace(/^limits\.meters\.([^:]+):/, '--meter-limit $1:')
    .replace(/^limits\.rateLimits\[(\d+)\][^:]*:/, (_all, i: string) => {
      const w = windows[Number(i)] as { limit: number; window: string; scope: string } | undefined;
      return w ? `--rate-limit "${w.limit}-per-${w.window}${w.scope === 'account' ? '-per-account' : ''}":` : '--rate-limit:';
    })
    .replace(/give "([^"]+)": null to drop it/, 'give --meter-limit $1=plan to drop it');
  return message === error.message ? error : new OperationError(error.kind, message);
}
