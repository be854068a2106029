/**
 * Refusals of an account's or a key's own limits, typed: the CLI and the dashboard word
 * them from their fields (which window, by its place in the list given; which meter; why),
 * never by reading them back out of the message, which is the admin API's
 * (`limits.rateLimits[0].limit: expected more than 0`) and free to change its words.
 *
 * A window refused for what it holds (a limit of 0, a window that is not a duration) is a
 * WindowShapeError: the admin API adds how the profile writes a window (WINDOW_SHAPE_NOTE)
 * where it answers, its callers writing windows in those terms. The CLI's flags and the
 * dashboard's forms take windows as `10-per-1m` and say so in their own words: the note
 * is not theirs.
 */
import { OperationError } from '../operations/errors.js';
import { PER_ACCOUNT_WHY } from './key-windows.js';
import { MAX_REPORTED } from '../meters/cost.js';
import { meant } from '../config/closest-name.js';
import { orList } from '../list-words.js';

/** How the profile and the admin API write a window, told after a refusal of one. */
export const WINDOW_SHAPE_NOTE = '(a window is { limit: 100, window: "1s", scope: "key" or "account" })';

/** Where a request gives its windows: an account's own (`limits.rateLimits`), a key's own (`rateLimits`). */
export type WindowsField = 'limits.rateLimits' | 'rateLimits';

/**
 * Windows refused: one of them, by its place in the list given (`index`), or the list as a
 * whole (no index: not a list, more windows than it may hold). The message names the field
 * as the request gave it: `rateLimits[1].window: …`, `limits.rateLimits: at most 20 windows`.
 */
export class WindowsRefusal extends OperationError {
  constructor(
    /** Where the request gave the list. */
    readonly field: WindowsField,
    /** Why, in the profile's words: `expected more than 0`. */
    readonly why: string,
    /** The window refused, by its place in the list (0 the first); undefined: the list as a whole. */
    readonly index?: number,
    /** The part of that window refused, as a path after it (`.limit`); '' for the window itself. */
    readonly within = '',
  ) {
    super('invalid', `${field}${index === undefined ? '' : `[${index}]${within}`}: ${why}`);
    this.name = 'WindowsRefusal';
  }
}

/** One window refused for what it holds: `limits.rateLimits[0].limit: expected more than 0`. */
export class WindowShapeError extends WindowsRefusal {
  constructor(field: WindowsField, index: number, within: string, why: string) {
    super(field, why, index, within);
    this.name = 'WindowShapeError';
  }
}

/**
 * A key's own window that is per account (PER_ACCOUNT_WHY, which points to the CLI): the
 * dashboard says instead where its viewer finds the account's own limits.
 */
export class PerAccountKeyWindowError extends WindowsRefusal {
  constructor(index: number) {
    super('rateLimits', PER_ACCOUNT_WHY, index);
    this.name = 'PerAccountKeyWindowError';
  }
}

/**
 * Why an account's own limit of a meter was refused, with what each caller words it from
 * (the admin API, the CLI's `--meter-limit`, the dashboard's Limits and plan forms):
 * - `not_a_limit`: a limit given now that is not a number from 0 to MAX_REPORTED (nor null);
 *   `got`, the value as JSON, is echoed by the admin API alone, whose caller sent it so;
 * - `no_such_meter`: a limit given now for a meter the plan (`planId`) has not; `near`: the
 *   one a typo of it most likely meant; `others` (none where left out): every other meter given now that the
 *   plan has not, each with its own `near` (in the order given), named in the same
 *   refusal so that one try fixes them all;
 * - `kept_from_before`: the account's own limits of meters, not given now, that the plan it
 *   is on or moves to (`planId`) has not: `kept`, every one of them (in the order stored),
 *   named in one refusal so that one try gives them all back to the plan first.
 * `meters`: the plan's meters.
 */
export type MeterLimitReason =
  | { reason: 'not_a_limit'; got: string }
  | { reason: 'no_such_meter'; planId: string; meters: readonly string[]; near: string | undefined; others?: readonly MeterTypo[] }
  | { reason: 'kept_from_before'; planId: string; meters: readonly string[]; kept: readonly string[] };

/**
 * A meter the plan has not: one given now, with the one of the plan's a typo of it most
 * likely meant (`near`; undefined where none is near), or one kept from before (no `near`).
 */
export interface MeterTypo {
  meter: string;
  near?: string | undefined;
}

/**
 * An account's own limit of a meter refused (`limits.meters.units: …`): `meter` as given
 * (the first of several given now: `refusal.others` has the rest), or the first kept from
 * before (`refusal.kept` has them all); several are refused as `limits.meters: …`. The message is the admin API's; other callers word `refusal`.
 */
export class MeterLimitError extends OperationError {
  constructor(
    readonly meter: string,
    readonly refusal: MeterLimitReason,
  ) {
    const several = (refusal.reason === 'kept_from_before' && refusal.kept.length > 1) || (refusal.reason === 'no_such_meter' && (refusal.others?.length ?? 0) > 0);
    super('invalid', `limits.meters${several ? '' : `.${meter}`}: ${meterLimitWhy(meter, refusal)}`);
    this.name = 'MeterLimitError';
  }
}

/** The plan's meters, said after a meter it has not (by the admin API, the CLI and the dashboard alike): `its meters: units, credits`. */
export function planMeters(meters: readonly string[]): string {
  return meters.length > 0 ? `its meters: ${meters.join(', ')}` : 'it has no meters';
}

/**
 * Meters the plan has not, as the admin API and the CLI name them: `no meter "calls"`,
 * `no meters "units" or "calls"` (each with a `near` followed by the meter it likely
 * meant: `"Units" (did you mean "units"?)`); with `them`, what the sentence after them
 * calls them (`it`, `them`) and `own`, `the account's own limit(s)`.
 *
 * @example
 * lackedMeters([{ meter: 'Units', near: 'units' }, { meter: 'calls' }]).lacks;
 * // 'no meters "Units" (did you mean "units"?) or "calls"'
 */
export function lackedMeters(meters: readonly MeterTypo[]): { lacks: string; them: string; own: string } {
  const quoted = meters.map(({ meter, near }) => `"${meter}"${meant(near)}`);
  if (quoted.length === 1) return { lacks: `no meter ${quoted[0]}`, them: 'it', own: "the account's own limit" };
  return { lacks: `no meters ${orList(quoted)}`, them: 'them', own: "the account's own limits" };
}

/** A meter's limit refused, as the admin API says it (`give "credits": null`: a JSON merge patch's words). */
function meterLimitWhy(meter: string, refusal: MeterLimitReason): string {
  if (refusal.reason === 'not_a_limit') return `a meter's limit is a number from 0 to ${MAX_REPORTED}, or null for the plan's (got ${refusal.got})`;
  if (refusal.reason === 'no_such_meter') {
    const { lacks } = lackedMeters([{ meter, near: refusal.near }, ...(refusal.others ?? [])]);
    return `the ${refusal.planId} plan has ${lacks}; ${planMeters(refusal.meters)}`;
  }
  const { lacks, them, own } = lackedMeters(refusal.kept.map((kept) => ({ meter: kept })));
  const giveBack = refusal.kept.map((name) => `"${name}": null`).join(', ');
  return `the ${refusal.planId} plan has ${lacks} (${own} for ${them}, kept from before: give ${giveBack} to drop ${them}); ${planMeters(refusal.meters)}`;
}

/** A refusal's message as the admin API answers it: with WINDOW_SHAPE_NOTE after it where `error` refused a window's shape. */
export function withWindowShape(error: OperationError): string {
  return error instanceof WindowShapeError ? `${error.message} ${WINDOW_SHAPE_NOTE}` : error.message;
}
