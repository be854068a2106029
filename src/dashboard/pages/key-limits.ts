/**
 * A key's own rate-limit windows (limits/key-windows.ts) as the dashboard sets them: a field
 * of a member's create form, and a page of its own for a key in use to change or clear
 * them, for a member (/keys/:id/limits, their own account's keys: another account's key is
 * a 404) and for an operator (/accounts/:id/keys/:keyId/limits, from the account's page).
 * Written as `keygate keys … --rate-limit` takes them (`10-per-1m, 2-per-1s`), read by the
 * same parser (limits/limit-specs.ts), then checked, stored and audited by the operations
 * the admin API calls (createKey, updateKey: `key.updated`, the viewer as actor), so the
 * rules are one. They only tighten the account's limits. A refusal names the field, in
 * the form's words.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RateLimit } from '../../config/schema.js';
import type { AccountRecord, KeyRecord } from '../../store/store.js';
import { keyStatus, updateKey } from '../../operations/keys.js';
import { accountPlan } from '../../operations/accounts.js';
import { OperationError, OPERATION_STATUS } from '../../operations/errors.js';
import { windowText } from '../../operations/plans.js';
import { windowsOut } from '../../limits/overrides.js';
import { keyWindowsText } from '../../limits/key-windows.js';
import { EMPTY_WINDOW_WHY, isEmptyWindow, keepWindowNames, LimitSpecError, readLimitSpecs, windowSpec, type WindowWritten } from '../../limits/limit-specs.js';
import { RepeatedWindowError, repeatedWindowWhy } from '../../limits/repeated-windows.js';
import { PerAccountKeyWindowError, WindowsRefusal } from '../../limits/window-shape.js';
import { actorOf, csrfField, field, notOffered, oneOf, redirect, setNotice, type Dashboard } from '../context.js';
import { sendPage } from '../layout.js';
import { html, type Html } from '../html.js';
import { profileNames, sentence } from '../format.js';
import { asWritten, WINDOW_LIMIT_TOO_LARGE } from './account-limits.js';
import { isUsable, refusalText } from './key-views.js';
import { registerKeyPage, type KeyPage } from './key-page.js';

/** The forms' field for the windows, as the admin API names them. */
export const KEY_WINDOWS_FIELD = 'rateLimits';
/** Its label, which every refusal of it begins with. */
const LABEL = 'Rate limits';
/** How the field says a window is written. */
const WRITTEN = 'Write each as 10-per-1m or 2-per-1s (a number of requests, -per-, and a window: a number and ms, s, m, h or d; no spaces), separated by commas, or leave the field empty for none.';
/** Why a window shared by the account's keys is not a key's, in a member's terms (they cannot run the CLI that PerAccountKeyWindowError's message points to). */
const PER_ACCOUNT_FOR_MEMBERS = 'a key’s own limits are per key: a limit shared by all of the account’s keys is the account’s own, which the API’s operator sets';
/** The same, for an operator: where the account's own are set in the dashboard. */
const PER_ACCOUNT_FOR_OPERATORS = 'a key’s own limits are per key: a limit shared by all of the account’s keys is the account’s own, set under Limits on the account’s page';
/** The limits page's second button's value: no windows of its own. */
const CLEAR = ['none'] as const;

/** A key's own windows as the field shows them: `10-per-1m, 2-per-1s`; empty for none. */
export function keyWindowsTyped(key: Pick<KeyRecord, 'rateLimits'>): string {
  return keyWindowsText(key.rateLimits).join(', ');
}

/** The field's windows, as written between its commas (what a refusal quotes). */
function entriesOf(typed: string): string[] {
  return typed.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
}

/**
 * The field as the windows the operations take ([] for none: an empty field, or `none`),
 * a window written again as one of `before` (the key's own now) keeping its name
 * (keepWindowNames: a name given by the admin API, its label in the RateLimit headers).
 * Throws LimitSpecError, the entry refused quoted as written (see keyWindowsRefusal).
 */
export function keyWindowsOf(typed: string, before?: readonly RateLimit[]): WindowWritten[] {
  const entries = entriesOf(typed);
  if (entries.length === 0) return [];
  try {
    const change = readLimitSpecs({ windows: entries.flatMap((entry) => entry.split(/\s+/)) });
    // `plan` gives an account its plan's windows back: a key has none to give back.
    if (change?.rateLimits === null) throw new LimitSpecError({ field: 'window', typed: 'plan', why: 'not_a_window' });
    return (keepWindowNames({ rateLimits: change?.rateLimits ?? [] }, before).rateLimits ?? []) as WindowWritten[];
  } catch (error) {
    throw asWritten(error, entries);
  }
}

/**
 * A refusal of the windows in the form's words, naming the field and the window as typed:
 * the parser's (LimitSpecError), or the operation's about a key's `rateLimits` (WindowsRefusal,
 * RepeatedWindowError: a window by its place in `windows`, as given to it). Undefined for a
 * refusal of anything else.
 * `perAccount`: why a window shared by the account's keys is not a key's, in the viewer's terms.
 */
export function keyWindowsRefusal(error: OperationError, windows: readonly WindowWritten[], perAccount = PER_ACCOUNT_FOR_MEMBERS): string | undefined {
  if (error instanceof LimitSpecError) {
    const { refusal } = error;
    if (refusal.field !== 'window') return undefined;
    if (refusal.why === 'too_large') return sentence(`${LABEL}: “${refusal.typed}”: ${WINDOW_LIMIT_TOO_LARGE}`);
    if (isEmptyWindow(refusal.why)) return sentence(`${LABEL}: “${refusal.typed}”: ${EMPTY_WINDOW_WHY[refusal.why]}`);
    return `${LABEL}: “${refusal.typed}” is not a window. ${WRITTEN}`;
  }
  const quoted = (at: number) => {
    const written = windows[at];
    return written ? `“${windowSpec(written)}”: ` : '';
  };
  if (error instanceof RepeatedWindowError) {
    const earlier = windows[error.earlier];
    return sentence(`${LABEL}: ${quoted(error.at)}${repeatedWindowWhy(earlier ? `“${windowSpec(earlier)}”` : 'another', error.shape)}`);
  }
  if (!(error instanceof WindowsRefusal) || error.field !== 'rateLimits') return undefined;
  if (error.index === undefined) return sentence(`${LABEL}: ${error.why}`);
  const why = error instanceof PerAccountKeyWindowError ? perAccount : error.why;
  return sentence(`${LABEL}: ${quoted(error.index)}${why}`);
}

/**
 * The field, showing `typed`. `refused`: the id of the notice saying why it was refused
 * (the field is then marked invalid, described by it, and takes the focus).
 */
export function keyWindowsField(typed: string, hint: string, refused?: string): Html {
  return html`<div class="field">
    <label for="key-windows">${LABEL}</label>
    <span class="hint" id="key-windows-hint">${hint}</span>
    <input id="key-windows" name="${KEY_WINDOWS_FIELD}" type="text" value="${typed}" maxlength="1000" autocomplete="off" spellcheck="false" aria-describedby="key-windows-hint${refused ? ` ${refused}` : ''}"${refused ? html` aria-invalid="true" autofocus` : ''}>
  </div>`;
}

/** The create form's hint for the field. */
export const CREATE_HINT = 'Optional. Hold this key to less than the rest of the account: 10-per-1m, 2-per-1s (requests per window), separated by commas. The account’s own limits apply too; leave empty for those alone.';

/** The account's rate limits in words, for a page that says what a key's own come on top of. */
function accountWindows(account: AccountRecord, plans: Parameters<typeof accountPlan>[1]): string {
  const windows = accountPlan(account, plans).rateLimits;
  return windows.length === 0 ? 'none' : windowsOut(windows).map(windowText).join(', ');
}

export function registerKeyLimitPages(app: FastifyInstance, dash: Dashboard): void {
  const { rt } = dash;

  registerKeyPage(app, dash, 'limits', { show: (request, reply, page) => sendLimitsForm(request, reply, page, keyWindowsTyped(page.key)), send: changeLimits });

  /** The form sent: the key's own windows saved or cleared (audited as `key.updated`, the viewer as actor), or why not. */
  async function changeLimits(request: FastifyRequest, reply: FastifyReply, page: KeyPage): Promise<FastifyReply> {
    const { account, key, named } = page;
    // Only the button's own value: anything else is refused, never read as a save.
    const clear = oneOf<string>(request.body, 'clear', CLEAR, 'save');
    const typed = clear === 'none' ? '' : field(request.body, KEY_WINDOWS_FIELD);
    // Sent from a page shown before the key stopped working: said so, nothing changed.
    if (!isUsable(key, rt.clock())) return sendLimitsForm(request, reply, page, typed);
    if (clear === undefined) return sendLimitsForm(request, reply, page, typed, notOffered('Remove its own limits', CLEAR), 400);
    // Sent as shown (or cleared twice): nothing to change, nothing audited.
    if (entriesOf(typed).join(', ') === keyWindowsTyped(key)) {
      setNotice(dash, reply, { kind: 'info', text: `Nothing changed: key ${named} ${key.rateLimits?.length ? `already has the rate limits ${keyWindowsTyped(key)}` : 'already has no rate limits of its own'}.`, code: [key.hint] });
      return redirect(reply, page.back);
    }
    let windows: WindowWritten[] = [];
    try {
      windows = keyWindowsOf(typed, key.rateLimits);
      const updated = await updateKey(rt, key.id, { rateLimits: windows }, actorOf(dash, request), account.id);
      const now = keyWindowsTyped(updated);
      setNotice(dash, reply, {
        kind: 'success',
        text:
          now === ''
            ? `Key ${named} has no rate limits of its own now: the account’s limits alone apply, from its next request.`
            : `The rate limits of key ${named} are saved: ${now}, on top of the account’s, from its next request.`,
        code: [key.hint],
      });
      return redirect(reply, page.back);
    } catch (error) {
      if (!(error instanceof OperationError) || error.kind === 'not_found') throw error;
      return sendLimitsForm(request, reply, page, typed, keyWindowsRefusal(error, windows, page.byOperator ? PER_ACCOUNT_FOR_OPERATORS : PER_ACCOUNT_FOR_MEMBERS) ?? refusalText(error, profileNames(rt.config)), OPERATION_STATUS[error.kind]);
    }
  }

  function sendLimitsForm(request: FastifyRequest, reply: FastifyReply, page: KeyPage, typed: string, error?: string, status = 200): FastifyReply {
    const { account, key } = page;
    const title = `Rate limits of ${key.name}`;
    if (!isUsable(key, rt.clock())) {
      const body = html`${page.lead}<h1>Key “${key.name}” is ${keyStatus(key, rt.clock())}</h1>
${error ? html`<div class="notice error" role="alert"><p>${error}</p></div>` : ''}
<p>It no longer works, so it has no rate limits to change.</p>
<div class="actions"><a class="button secondary" href="${page.back}">Back to the keys</a></div>`;
      return sendPage(dash, request, reply, { title, body, status: 409 });
    }
    const hasOwn = (key.rateLimits?.length ?? 0) > 0;
    const body = html`${page.lead}<h1>Rate limits of key “${key.name}”</h1>
${error ? html`<div class="notice error" role="alert" id="limits-error"><p>${error}</p></div>` : ''}
<p>Requests with <code>${key.hint}</code> are held to the account’s rate limits (${accountWindows(account, rt.config.plans)}) and to the key’s own, if it has any: a key’s own limits can make it stricter than the rest of the account, never looser. A change holds from the key’s next request.</p>
<form method="post" action="${page.path}" class="stack">
  ${csrfField(request)}
  ${keyWindowsField(typed, 'The key’s own windows, written as 10-per-1m, 2-per-1s for example (requests per window), separated by commas; empty: none of its own.', error ? 'limits-error' : undefined)}
  <div class="actions">
    <button type="submit">Save rate limits</button>
    ${hasOwn ? html`<button type="submit" class="secondary" name="clear" value="none">Remove its own limits</button>` : ''}
    <a class="button secondary" href="${page.back}">Cancel</a>
  </div>
</form>`;
    return sendPage(dash, request, reply, { title, body, status });
  }
}
