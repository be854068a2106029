/**
 * An account's own limits on the operator's account page: the plan's rate-limit windows
 * and meter limits, the account's own, and which are in effect, with a form to set or
 * clear them. The form's fields are written as the CLI's flags are (`25-per-1s`,
 * `5000-per-1h-per-account`, `none`; a meter's limit as a number) and read by the same
 * parser (limits/limit-specs.ts), then changed by the same operation (updateAccount), so a
 * change is checked, audited (`account.limits_changed`, the operator as actor) and drops
 * the account's cached keys as `keygate accounts update` does. Members never see it.
 */
import type { AccountRecord } from '../../store/store.js';
import type { Plan } from '../../config/schema.js';
import { formatDuration } from '../../config/duration.js';
import { accountPlan, type LimitsChange } from '../../operations/accounts.js';
import { OperationError } from '../../operations/errors.js';
import { windowText } from '../../operations/plans.js';
import { windowsOut } from '../../limits/overrides.js';
import { EMPTY_WINDOW_WHY, isEmptyWindow, keepWindowNames, LimitSpecError, limitsRefusalPlace, readLimitSpecs, windowSpec, type WindowWritten } from '../../limits/limit-specs.js';
import { tooLarge } from '../../config/amounts.js';
import { RepeatedWindowError, repeatedWindowWhy } from '../../limits/repeated-windows.js';
import { MeterLimitError, planMeters } from '../../limits/window-shape.js';
import { MAX_REPORTED } from '../../meters/cost.js';
import { field, notOffered, oneOf } from '../context.js';
import { html, type Html } from '../html.js';
import { number, profileNames, sentence } from '../format.js';
import { andList, orList } from '../../list-words.js';

/** The form's field for the windows, and the prefix of each meter's field (`meter.units`). */
const WINDOWS_FIELD = 'rateLimits';
const METER_FIELD = 'meter.';
/** The second button's value: every limit back to the plan's. */
const RESET = ['plan'] as const;

/** A limits form refused: what was typed (shown again as it was), and why. */
export interface RefusedLimits {
  typed: { rateLimits: string; meters: Record<string, string> };
  refusal: string;
}

/** Windows as the CLI's `--rate-limit` writes them: `25-per-1s, 5000-per-1h-per-account`; `none` for an empty list. */
function windowsSpec(windows: Plan['rateLimits']): string {
  if (windows.length === 0) return 'none';
  return windows.map((rl) => windowSpec({ ...rl, window: formatDuration(rl.window) })).join(', ');
}

/** Windows for people, as the plans table shows them; "none" where there are none. */
function windowsShown(windows: Plan['rateLimits']): Html {
  return windows.length === 0 ? html`<span class="muted">none</span>` : html`${windowsOut(windows).map(windowText).join(', ')}`;
}

/** What the form shows in a field before anything is typed: the account's own, or empty for the plan's. */
function ownTyped(account: AccountRecord): RefusedLimits['typed'] {
  const own = account.limits;
  return {
    rateLimits: own?.rateLimits == null ? '' : windowsSpec(own.rateLimits),
    meters: Object.fromEntries(Object.entries(own?.meters ?? {}).map(([meter, limit]) => [meter, String(limit)])),
  };
}

/**
 * The form as a change of the account's own limits (LimitsChange, as the admin API's
 * PATCH takes it), read as the CLI's flags are (readLimitSpecs): a field left as it was shown changes
 * nothing; in a changed one, a window written again keeps its name (keepWindowNames); an
 * empty one gives the plan's back. Null: the form's "Use the plan's limits". Undefined: nothing to change.
 */
export function limitsChangeOf(body: unknown, account: AccountRecord, plan: Plan | undefined): LimitsChange | null | undefined {
  // Only the button's own value: anything else is refused, never read as a save.
  const reset = oneOf<string>(body, 'reset', RESET, 'save');
  if (reset === undefined) throw new OperationError('invalid', notOffered('Use the plan’s limits', RESET));
  if (reset === 'plan') return null;
  const shown = ownTyped(account);
  const windows = field(body, WINDOWS_FIELD).trim();
  const entries = windows.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  const rateLimits = windows === shown.rateLimits ? undefined : windows === '' ? ['plan'] : entries.flatMap((entry) => entry.split(/\s+/));
  const meters: string[] = [];
  for (const meter of Object.keys(plan?.meters ?? {})) {
    const typed = field(body, `${METER_FIELD}${meter}`).trim();
    if (typed === (shown.meters[meter] ?? '')) continue;
    meters.push(`${meter}=${typed === '' ? 'plan' : typed}`);
  }
  // An own limit of a meter the plan no longer has (the profile changed): dropped, or every change would be refused for it.
  for (const meter of Object.keys(account.limits?.meters ?? {})) if (plan?.meters[meter] === undefined) meters.push(`${meter}=plan`);
  try {
    const change = readLimitSpecs({ ...(rateLimits !== undefined ? { windows: rateLimits } : {}), ...(meters.length > 0 ? { meters } : {}) });
    return keepWindowNames(change, account.limits?.rateLimits);
  } catch (error) {
    throw asWritten(error, entries);
  }
}

/**
 * A window refused as the field has it: the whole entry between commas that held the
 * word refused (`10-per-1 hour` or `10 per 1h`, not `10-per-1` or `10`). Words of one
 * entry apart by spaces alone are still read as windows of their own.
 */
export function asWritten(error: unknown, entries: readonly string[]): unknown {
  if (!(error instanceof LimitSpecError) || error.refusal.field !== 'window') return error;
  const { typed } = error.refusal;
  const entry = entries.find((written) => written.split(/\s+/).includes(typed));
  return entry === undefined || entry === typed ? error : new LimitSpecError({ ...error.refusal, typed: entry });
}

/** What was typed in the form, to show it again with a refusal. */
export function typedLimits(body: unknown, plan: Plan | undefined): RefusedLimits['typed'] {
  return {
    rateLimits: field(body, WINDOWS_FIELD),
    meters: Object.fromEntries(Object.keys(plan?.meters ?? {}).map((meter) => [meter, field(body, `${METER_FIELD}${meter}`)])),
  };
}

/**
 * A meter's limit as the form, its table and its refusals name it: `Limit of “units”`. The
 * meter's name as the profile gives it (as the refusals, the CLI and the admin API name
 * it), quoted as a name: `Limit of dataRows` or `Limit of api_calls` read as a slip.
 */
function meterLabel(meter: string): string {
  return `Limit of “${meter}”`;
}

/** Several meters' limits, as a refusal about them all names them: `Limits of “units” and “rows”`. */
function meterLabels(meters: readonly string[]): string {
  return `Limits of ${andList(meters.map((meter) => `“${meter}”`))}`;
}

/** A limit past the most there is, as limit-specs.ts says it, in the dashboard's prose (its apostrophe curly). */
export const WINDOW_LIMIT_TOO_LARGE = tooLarge('a window’s limit');
const METER_LIMIT_TOO_LARGE = tooLarge('a meter’s limit');

/** How the form says what a window or a limit should look like. */
const WINDOWS_WRITTEN = 'Write each as 25-per-1s (per key) or 5000-per-1h-per-account (no spaces; a window is a number and ms, s, m, h or d), separated by commas; none for no window; or leave the field empty for the plan’s.';
const LIMIT_WRITTEN = 'Write a whole or decimal number, 0 or more, without separators (5000000), or leave the field empty for the plan’s.';

/**
 * A refusal of the limits in the form's words, each naming the field it is about: the
 * parser's (LimitSpecError: which field, what was typed, why), or the operation's about
 * `limits.…` (a window by its place in the list, a meter by its name and the refusal's
 * reason). `account`: as it was before the change (its plan's fields are the form's);
 * `plans`: the profile's, named as the page names them. Any other refusal as it is said.
 */
export function limitsRefusal(error: OperationError, change: LimitsChange | null | undefined, account: Pick<AccountRecord, 'planId'>, plans: Record<string, Plan>): string {
  if (error instanceof LimitSpecError) {
    const { refusal } = error;
    if (refusal.why === 'too_large') {
      return refusal.field === 'window' ? sentence(`Rate-limit windows: “${refusal.typed}”: ${WINDOW_LIMIT_TOO_LARGE}`) : sentence(`${meterLabel(refusal.meter ?? refusal.typed)}: ${METER_LIMIT_TOO_LARGE}`);
    }
    if (refusal.field === 'window' && isEmptyWindow(refusal.why)) return sentence(`Rate-limit windows: “${refusal.typed}”: ${EMPTY_WINDOW_WHY[refusal.why]}`);
    if (refusal.field === 'window') return `Rate-limit windows: “${refusal.typed}” is not a window. ${WINDOWS_WRITTEN}`;
    // The form writes `<meter>=<typed>` itself: the meter and the value are always there.
    return `${meterLabel(refusal.meter ?? refusal.typed)}: “${refusal.value ?? refusal.typed}” is not a limit. ${LIMIT_WRITTEN}`;
  }
  const windows = Array.isArray(change?.rateLimits) ? (change.rateLimits as WindowWritten[]) : [];
  if (error instanceof RepeatedWindowError) {
    // Both as typed in the field (each read as a window, so neither can be a secret).
    const at = windows[error.at];
    const earlier = windows[error.earlier];
    return sentence(`Rate-limit windows: ${at ? `“${windowSpec(at)}”: ` : ''}${repeatedWindowWhy(earlier ? `“${windowSpec(earlier)}”` : 'another', error.shape)}`);
  }
  if (error instanceof MeterLimitError) return meterLimitRefusal(error, account, plans);
  const place = limitsRefusalPlace(error);
  if (place === undefined) return sentence(error.message, profileNames({ plans }));
  if (place.at === 'windows') return sentence(`Rate-limit windows: ${place.why}`);
  const written = windows[place.at.window];
  return sentence(`Rate-limit windows: ${written ? `“${windowSpec(written)}”: ` : ''}${place.why}`);
}

/**
 * A meter's limit refused, in the form's words (empty: the plan's), from the refusal's
 * reason. Those kept from before meet a move to a plan without their meters (the plan
 * form), all named at once: they are given back first, by emptying their fields in the
 * Limits form and saving it; one the account's plan has no field for any more is dropped
 * by that save too (limitsChangeOf), even with no field emptied. Met on the plan the
 * account is on, the save is all there is to do.
 */
function meterLimitRefusal(error: MeterLimitError, account: Pick<AccountRecord, 'planId'>, plans: Record<string, Plan>): string {
  const { meter, refusal } = error;
  if (refusal.reason === 'not_a_limit') return sentence(`${meterLabel(meter)}: a meter’s limit is a number from 0 to ${MAX_REPORTED}, or empty for the plan’s`);
  const planName = plans[refusal.planId]?.name ?? refusal.planId;
  if (refusal.reason === 'no_such_meter') {
    // Every one the form sent at once (a form from before the plan lost them), so that one try fixes them all.
    const typed = [{ meter, near: refusal.near }, ...(refusal.others ?? [])];
    const named = typed.map((typo) => `“${typo.meter}”${typo.near === undefined ? '' : ` (did you mean “${typo.near}”?)`}`);
    const subject = typed.length === 1 ? meterLabel(meter) : meterLabels(typed.map((typo) => typo.meter));
    return sentence(`${subject}: the ${planName} plan has no meter${typed.length === 1 ? '' : 's'} ${orList(named)}; ${planMeters(refusal.meters)}`, [planName, ...refusal.meters]);
  }
  const quoted = refusal.kept.map((name) => `“${name}”`);
  const one = quoted.length === 1;
  const withField = refusal.kept.filter((name) => plans[account.planId]?.meters[name] !== undefined);
  const withoutField = quoted.filter((_, i) => !withField.includes(refusal.kept[i] as string));
  const fields = andList(withField.map(meterLabel));
  const giveBack =
    withField.length === 0
      ? `save the limits under Limits, which drops ${one ? 'it' : 'them'}`
      : `empty the ${fields} field${withField.length === 1 ? '' : 's'} under Limits and save the limits${withoutField.length === 0 ? '' : `, which drops ${andList(withoutField)} too`}`;
  const then = refusal.planId === account.planId ? '' : ', then change the plan';
  const lacks = one ? `no meter ${quoted[0]}` : `no meters ${orList(quoted)}`;
  return sentence(`${one ? meterLabel(refusal.kept[0] as string) : meterLabels(refusal.kept)}: the ${planName} plan has ${lacks}, and this account has its own limit${one ? ' for it' : 's for them'}: ${giveBack}${then}`, [planName]);
}

/** The limits in effect after a change, in a sentence: each marked as the account's own or the plan's. */
export function limitsInEffect(account: AccountRecord, plans: Record<string, Plan>): string {
  const plan = accountPlan(account, plans);
  const ownWindows = account.limits?.rateLimits != null;
  const windows = plan.rateLimits.length === 0 ? 'no rate-limit window' : `rate limits ${windowsOut(plan.rateLimits).map(windowText).join(', ')}`;
  const meters = Object.entries(plan.meters).map(([meter, m]) => `${meter} ${number(m.limit)} (${account.limits?.meters[meter] !== undefined ? 'its own' : 'the plan’s'})`);
  return [`${windows} (${ownWindows ? 'its own' : 'the plan’s'})`, ...meters].join('; ');
}

/**
 * The page's Limits section: a table of the plan's limits, the account's own and those in
 * effect, and the form. `refused`: a form refused, shown again as typed, with why.
 */
export function limitsSection(account: AccountRecord, plans: Record<string, Plan>, csrf: Html, refused?: RefusedLimits): Html {
  const plan = plans[account.planId];
  const planName = plan?.name ?? account.planId;
  const effective = accountPlan(account, plans);
  const own = account.limits;
  const typed = refused?.typed ?? ownTyped(account);
  const meters = Object.entries(plan?.meters ?? {});
  const ownMark = (isOwn: boolean) => (isOwn ? html` <span class="badge on">Own</span>` : '');
  // Named by the section's heading (accounts.ts): "Limits", on the account's own page.
  return html`<div class="table-wrap"><table class="data cards" aria-labelledby="limits">
  <thead><tr><th scope="col">Limit</th><th scope="col">${planName} plan</th><th scope="col">Account’s own</th><th scope="col">In effect</th></tr></thead>
  <tbody>
  <tr>
    <td data-label="Limit"><strong>Rate limits</strong></td>
    <td data-label="${planName} plan">${plan ? windowsShown(plan.rateLimits) : html`<span class="muted">no such plan</span>`}</td>
    <td data-label="Account’s own">${own?.rateLimits == null ? html`<span class="muted">the plan’s</span>` : windowsShown(own.rateLimits)}</td>
    <td data-label="In effect">${windowsShown(effective.rateLimits)}${ownMark(own?.rateLimits != null)}</td>
  </tr>${meters.map(
    ([meter, m]) => html`
  <tr>
    <td data-label="Limit"><strong>${meterLabel(meter)}</strong></td>
    <td data-label="${planName} plan">${number(m.limit)}</td>
    <td data-label="Account’s own">${own?.meters[meter] === undefined ? html`<span class="muted">the plan’s</span>` : number(own.meters[meter])}</td>
    <td data-label="In effect">${number(effective.meters[meter]?.limit ?? m.limit)}${ownMark(own?.meters[meter] !== undefined)}</td>
  </tr>`,
  )}
  </tbody></table></div>
<form method="post" action="/accounts/${account.id}/limits" class="stack" aria-labelledby="limits">
  ${csrf}
  ${refused ? html`<div class="notice error" role="alert" id="limits-error"><p>${refused.refusal}</p></div>` : ''}
  <div class="field">
    <label for="limits-windows">Rate-limit windows</label>
    <span class="hint" id="limits-windows-hint">For example 25-per-1s (per key), 5000-per-1h-per-account, separated by commas; none: no window. Empty: ${plan ? html`the ${planName} plan’s own, ${plan.rateLimits.length === 0 ? 'none' : windowsSpec(plan.rateLimits)}` : 'the plan’s'}.</span>
    <input id="limits-windows" name="${WINDOWS_FIELD}" type="text" value="${typed.rateLimits}" maxlength="1000" autocomplete="off" spellcheck="false" aria-describedby="limits-windows-hint${refused ? ' limits-error' : ''}"${refused ? html` aria-invalid="true" autofocus` : ''}>
  </div>${meters.map(
    ([meter, m]) => html`
  <div class="field">
    <label for="limits-meter-${meter}">${meterLabel(meter)}</label>
    <span class="hint" id="limits-meter-${meter}-hint">A number, 0 or more. Empty: the ${planName} plan’s own, ${number(m.limit)}.</span>
    <input id="limits-meter-${meter}" name="${METER_FIELD}${meter}" type="text" inputmode="decimal" value="${typed.meters[meter] ?? ''}" maxlength="30" autocomplete="off" spellcheck="false" aria-describedby="limits-meter-${meter}-hint">
  </div>`,
  )}
  <div class="actions">
    <button type="submit">Save limits</button>
    ${own !== undefined && (own.rateLimits !== null || Object.keys(own.meters).length > 0) ? html`<button type="submit" class="secondary" name="reset" value="plan">Use the plan’s limits</button>` : ''}
  </div>
</form>`;
}
