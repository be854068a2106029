/**
 * `keygate accounts create`'s and `accounts update`'s `--rate-limit` and `--meter-limit`: an account's own limits
 * (limits/overrides.ts) as the admin API's merge patch, read by limits/limit-specs.ts, and its refusals told in the flags.
 */
import type { Command } from 'commander';
import type { LimitsChange } from '../operations/accounts.js';
import { OperationError, ordinal } from '../operations/errors.js';
import { EMPTY_WINDOW_WHY, isEmptyWindow, LimitSpecError, limitsRefusalPlace, METER_LIMIT_TOO_LARGE, readLimitSpecs, WINDOW_LIMIT_TOO_LARGE, windowSpec, type WindowWritten } from '../limits/limit-specs.js';
import { RepeatedWindowError, repeatedWindowWhy } from '../limits/repeated-windows.js';
import { lackedMeters, MeterLimitError, planMeters, WindowsRefusal } from '../limits/window-shape.js';
import { MAX_REPORTED } from '../meters/cost.js';
import { meant } from '../config/closest-name.js';
import { andList } from '../list-words.js';

/**
 * How a window is written, for a refusal of one: near misses (`10-per-1 hour`, `10 per 1h`,
 * `10-per-1hr`) are told what differs without the value being repeated.
 */
const WINDOW_WRITTEN = '<limit>-per-<window> as 100-per-1s or 5000-per-1h-per-account (no spaces; a window is a number and ms, s, m, h or d)';

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
    // The value is never repeated (a key pasted into the flag would land in a terminal's scrollback or a CI log): which one, by its place.
    const { refusal } = error;
    if (refusal.field === 'meter') {
      const flag = flagAt('--meter-limit', (opts.meterLimit ?? []).findIndex((spec) => spec === refusal.typed), opts.meterLimit?.length ?? 0);
      if (refusal.why === 'too_large') throw new OperationError('invalid', `${flag}: ${METER_LIMIT_TOO_LARGE}`);
      throw new OperationError('invalid', `${flag}: expected <meter>=<limit> (a number, 0 or more) or <meter>=plan, as units=5000000`);
    }
    const flag = flagAt('--rate-limit', (opts.rateLimit ?? []).findIndex((spec) => spec.trim() === refusal.typed), opts.rateLimit?.length ?? 0);
    if (refusal.why === 'too_large') throw new OperationError('invalid', `${flag}: ${WINDOW_LIMIT_TOO_LARGE}`);
    // Read as a window (digits, -per-, a duration), so no secret: named as typed.
    if (isEmptyWindow(refusal.why)) throw new OperationError('invalid', `${flag}: "${refusal.typed}": ${EMPTY_WINDOW_WHY[refusal.why]}`);
    // `plan` and `none` are keygate's words, not the user's value.
    const alone = refusal.why === 'given_alone' ? `: "${refusal.typed}" is given alone` : '';
    throw new OperationError('invalid', `${flag}: expected ${WINDOW_WRITTEN}, or plan (the plan's windows) or none${alone}`);
  }
}

/** A repeatable flag, and which of those given where there are several: `--rate-limit (the 2nd of 3)`. */
export function flagAt(flag: string, index: number, given: number): string {
  if (given < 2 || index < 0) return flag;
  return `${flag} (the ${ordinal(index + 1)} of ${given})`;
}

/** An error about `limits.…` (the admin API's fields) told in the flags that gave them, without the values given. */
export function inFlags(error: unknown, given: LimitsChange | undefined): unknown {
  if (!(error instanceof OperationError)) return error;
  // No limit flags (`accounts update --plan pro` alone) may still meet a limit kept from before.
  const change = given ?? {};
  if (error instanceof RepeatedWindowError) {
    // Both were read as windows (limitsOptions): neither can be a secret, and the earlier one is named as typed.
    const windows = Array.isArray(change.rateLimits) ? (change.rateLimits as WindowWritten[]) : [];
    const earlier = windows[error.earlier];
    const named = `the ${ordinal(error.earlier + 1)}${earlier ? ` (${windowSpec(earlier)})` : ''}`;
    return new OperationError(error.kind, `${flagAt('--rate-limit', error.at, windows.length)}: ${repeatedWindowWhy(named, error.shape)}`);
  }
  if (error instanceof MeterLimitError) return meterInFlags(error, Object.keys(change.meters ?? {}));
  const place = limitsRefusalPlace(error);
  // The list as a whole (`limits.rateLimits: at most 20 windows`) is said as the operation says it.
  if (place === undefined || place.at === 'windows') return error;
  const windows = Array.isArray(change.rateLimits) ? change.rateLimits : [];
  return new OperationError(error.kind, `${flagAt('--rate-limit', place.at.window, windows.length)}: ${place.why}`);
}

/**
 * A meter's limit refused, in `--meter-limit`'s words, from the refusal's reason: a meter
 * typed now by the place of its flag among `typed` (never repeated: it may be anything
 * pasted), those kept from before by their names as stored, every one of them, with the
 * flags that give them back.
 */
function meterInFlags(error: MeterLimitError, typed: readonly string[]): OperationError {
  const { meter, refusal } = error;
  const flag = flagAt('--meter-limit', typed.indexOf(meter), typed.length);
  if (refusal.reason === 'not_a_limit') return new OperationError(error.kind, `${flag}: a meter's limit is a number from 0 to ${MAX_REPORTED}, or <meter>=plan for the plan's`);
  const meters = planMeters(refusal.meters);
  if (refusal.reason === 'kept_from_before') {
    const { lacks, them, own } = lackedMeters(refusal.kept.map((kept) => ({ meter: kept })));
    const giveBack = refusal.kept.map((name) => `--meter-limit ${name}=plan`).join(' ');
    const named = refusal.kept.length === 1 ? ` ${meter}` : '';
    return new OperationError(error.kind, `--meter-limit${named}: the ${refusal.planId} plan has ${lacks} (${own} for ${them}, kept from before: give ${giveBack} to drop ${them}); ${meters}`);
  }
  const others = refusal.others ?? [];
  if (others.length === 0) return new OperationError(error.kind, `${flag}: the ${refusal.planId} plan has no such meter${meant(refusal.near)}; ${meters}`);
  // Several: each by its flag's place, with the meter it likely meant, in one refusal.
  const placed = [{ meter, near: refusal.near }, ...others].map(({ meter: name, near }) => `the ${ordinal(typed.indexOf(name) + 1)} of ${typed.length}${meant(near)}`);
  return new OperationError(error.kind, `--meter-limit: ${andList(placed)} name no meter the ${refusal.planId} plan has; ${meters}`);
}

/**
 * Adds `--rate-limit` to a keys command: the key's own windows (limits/key-windows.ts).
 * `then`: what follows the examples (keys update: that they replace the key's own, and
 * `none`), so the examples stay beside the word "window" they illustrate.
 */
export function keyLimitOptions(command: Command, then = ''): Command {
  return command.option('--rate-limit <window>', `the key's own rate-limit window: 10-per-1m, 2-per-1s (per key; repeatable: give every window it should have), on top of its account's limits${then}`, repeated);
}

/**
 * `keys … --rate-limit` as the key's own windows, as the operation takes them (`[]` for
 * `none`); undefined where none is given. Refusals are told in the flag, by its place,
 * without the value (as limitsOptions does).
 */
export function keyWindowsOption(given: string[] | undefined): unknown[] | undefined {
  if (given === undefined) return undefined;
  const flagOf = (typed: string) => flagAt('--rate-limit', given.findIndex((spec) => spec.trim() === typed), given.length);
  let change: LimitsChange | undefined;
  try {
    change = readLimitSpecs({ windows: given });
  } catch (error) {
    if (!(error instanceof LimitSpecError)) throw error;
    const { refusal } = error;
    if (refusal.why === 'too_large') throw new OperationError('invalid', `${flagOf(refusal.typed)}: ${WINDOW_LIMIT_TOO_LARGE}`);
    if (isEmptyWindow(refusal.why)) throw new OperationError('invalid', `${flagOf(refusal.typed)}: "${refusal.typed}": ${EMPTY_WINDOW_WHY[refusal.why]}`);
    const alone = refusal.why === 'given_alone' ? `: "${refusal.typed}" is given alone` : '';
    throw new OperationError('invalid', `${flagOf(refusal.typed)}: expected ${KEY_WINDOW_WRITTEN}, or none (no windows of its own)${alone}`);
  }
  // `plan` gives an account its plan's windows back; a key has only its own, or none.
  if (change?.rateLimits === null) throw new OperationError('invalid', "--rate-limit: a key has no plan's windows of its own to give back: give none (the key has no windows of its own; its account's limits still hold), or its windows");
  return change?.rateLimits ?? [];
}

/** How a key's window is written, for a refusal of one. */
const KEY_WINDOW_WRITTEN = '<limit>-per-<window> as 10-per-1m or 2-per-1s (no spaces; a window is a number and ms, s, m, h or d)';

/** An error about a key's `rateLimits` (WindowsRefusal, RepeatedWindowError) told in `--rate-limit`, by the place of the flag. */
export function keyWindowsInFlags(error: unknown, given: unknown[] | undefined): unknown {
  if (!(error instanceof OperationError)) return error;
  const windows = (given ?? []) as WindowWritten[];
  if (error instanceof RepeatedWindowError) {
    const earlier = windows[error.earlier];
    const named = `the ${ordinal(error.earlier + 1)}${earlier ? ` (${windowSpec(earlier)})` : ''}`;
    return new OperationError(error.kind, `${flagAt('--rate-limit', error.at, windows.length)}: ${repeatedWindowWhy(named, error.shape)}`);
  }
  if (!(error instanceof WindowsRefusal) || error.field !== 'rateLimits') return error;
  // One window by the place of its flag; the list as a whole (`at most 20 windows`) in the flag alone.
  const flag = error.index === undefined ? '--rate-limit' : flagAt('--rate-limit', error.index, windows.length);
  return new OperationError(error.kind, `${flag}: ${error.why}`);
}
