/**
 * Pieces of the key pages that members and operators share: the key table, the
 * one-time secret panel, the revoke confirmation, and the name and scope fields of the
 * create form and of a key's Edit page (key-edit.ts).
 */
import type { Runtime } from '../../runtime.js';
import type { KeyRecord } from '../../store/store.js';
import { allowedScopes, keyStatus, scopesNotOffered, type KeyStatus, type scopeNeeded } from '../../operations/keys.js';
import { keyWindowsText } from '../../limits/key-windows.js';
import type { KeyMoments, KeyNaming, OperationError } from '../../operations/errors.js';
import { html, type Html } from '../html.js';
import { tableNaming, type TableName } from '../table-name.js';
import { keyEnd, relative, sentence, when, whenInTable } from '../format.js';
import { confirmationForm, confirmationHeading, type ConfirmationTarget } from '../layout.js';
import { utcMinute, utcMinuteUp, utcSecondUp } from '../../meters/period.js';

const STATUS_LABEL: Record<KeyStatus, string> = { active: 'Active', expiring: 'Expiring', expired: 'Expired', revoked: 'Revoked', unbound: 'No account' };

/** A key as members see it on their pages, in a message: its name and display hint (they never see ids). */
export const keyAsShown: KeyNaming = (key) => `“${key.name}” ${key.hint}`;

/**
 * A key's moments in a refusal, to the minute as the dashboard shows every moment of a key
 * (`when`; the CLI and admin API give them to the second): when it stopped truncated, never
 * after it did; an end the refusal says to wait for rounded up, so that at the minute named
 * the same refusal does not come back.
 */
export const keyMomentsShown: KeyMoments = { stopped: utcMinute, end: utcMinuteUp };

/**
 * A refusal as the dashboard says it: a sentence, any keys it names named as members see
 * them, and their moments as the pages show them; `names` it repeats unquoted (the
 * profile's, profileNames(), and what the form sent) as they were written.
 */
export function refusalText(error: OperationError, names: Iterable<string>): string {
  return sentence(error.namingKeys(keyAsShown, keyMomentsShown), names);
}

export function isUsable(key: KeyRecord, now: number): boolean {
  const status = keyStatus(key, now);
  return status === 'active' || status === 'expiring';
}

/** `blockedUntil`: when its rate-limit block (or its account's) ends, if it is blocked now. */
export function statusBadge(key: KeyRecord, now: number, blockedUntil?: number): Html {
  const status = keyStatus(key, now);
  if (status === 'revoked' && key.revokedAt !== null) return revokedBadge(key.revokedAt, now);
  const detail = status === 'expiring' && key.expiresAt !== null ? ` ${relative(key.expiresAt, now)}` : '';
  const blocked = blockedUntil === undefined ? '' : blockedBadge(blockedUntil, now);
  return html`<span class="badge ${status}">${STATUS_LABEL[status]}${detail}</span>${blocked}`;
}

/** When a key was revoked goes with its status; its Expires column keeps the date it had. */
function revokedBadge(at: number, now: number): Html {
  const iso = new Date(at).toISOString();
  return html`<span class="badge revoked" title="Revoked ${utcMinute(at)}"><time datetime="${iso}">Revoked ${relative(at, now)}</time></span>`;
}

/** "Blocked, ends in 9 min", the exact end on hover: to the second, rounded up, as the CLI and the other ends on the page show it. */
export function blockedBadge(until: number, now: number): Html {
  const ends = new Date(until).toISOString();
  return html` <span class="badge blocked" title="Refused until ${utcSecondUp(until)} UTC for exceeding the rate limit repeatedly"><time datetime="${ends}">Blocked, ends ${relative(until, now)}</time></span>`;
}

/**
 * What keys of an account can differ by, besides their names: scopes (where its plan
 * allows any: without them its keys reach every route that needs none, and a "Scopes:
 * none" would say they reach nothing) and modes (where the profile has more than one).
 */
export interface KeyTraits {
  scopes: boolean;
  modes: readonly string[];
}

export function keyTraits(rt: Pick<Runtime, 'config' | 'keyFormat'>, planId: string): KeyTraits {
  return { scopes: allowedScopes(rt, planId).length > 0, modes: rt.keyFormat.modes };
}

/** A key's mode is worth saying where the profile has more than one (or the key has one the profile no longer issues). */
function showsMode(traits: KeyTraits, key: KeyRecord): boolean {
  return traits.modes.length > 1 || key.mode !== traits.modes[0];
}

export function scopeList(scopes: readonly string[]): Html {
  if (scopes.length === 0) return html`<span class="muted">none</span>`;
  return html`<span class="scopes">${scopes.map((s) => html`<code>${s === '*' ? '* (all)' : s}</code>`)}</span>`;
}

/** Why a key must be given a scope (see `scopeNeeded`), in the forms' words. */
export const SCOPE_NEEDED: Record<NonNullable<ReturnType<typeof scopeNeeded>>, string> = {
  'every key carries one': 'every key of this API carries one',
  'every route needs one': 'every route of this API needs one',
};

/** Why a form sent with an empty name (or only spaces) is refused. */
export const NO_NAME = 'Give the key a name, so you can tell it apart later.';

/** Why a form that ticked `*` beside other scopes is refused. */
export const WILDCARD_ALONE = 'Choose either * (all scopes) or the scopes the key needs, not both: * already grants every scope.';

/**
 * A key's name field, showing `name`. `invalid`: the refusal was about the name (the field
 * is marked); `autofocus`: the field takes the focus (no other field was refused).
 */
export function keyNameField(name: string, options: { invalid: boolean; autofocus: boolean }): Html {
  return html`<div class="field">
    <label for="name">Name</label>
    <span class="hint" id="name-hint">Where the key is used, e.g. “Production server” or “Reporting script”.</span>
    <input id="name" name="name" type="text" required maxlength="100" value="${name}" autocomplete="off" aria-describedby="name-hint" ${options.invalid ? html`aria-invalid="true"` : ''}${options.autofocus ? html` autofocus` : ''}>
  </div>`;
}

/** A scope as the forms show it: `* (all scopes)`. */
function scopeShown(scope: string): string {
  return scope === '*' ? '* (all scopes)' : scope;
}

/** Scopes a key has that its plan no longer offers, and who stopped offering them (`the Pro plan`, `This API`). */
export interface DroppedScopes {
  scopes: readonly string[];
  by: string;
}

/**
 * The scopes a key may be given, as checkboxes named `scope`, `ticked` ticked; nothing
 * where `offered` is empty (the plan allows none). `needed`: why at least one must be
 * ticked (scopeNeeded), if one must. `dropped`: those of `offered` that the key has but
 * its plan no longer offers (its Edit page), each marked, with a note saying what keeping
 * them does.
 */
export function scopeChoices(offered: readonly string[], ticked: readonly string[], needed: ReturnType<typeof scopeNeeded>, dropped?: DroppedScopes): Html {
  if (offered.length === 0) return html``;
  const isDropped = (scope: string) => dropped?.scopes.includes(scope) ?? false;
  return html`<fieldset>
    <legend>Scopes</legend>
    <span class="hint">What the key may do${offered.includes('*') ? '; * grants every scope, including ones added later, so it is chosen alone' : ''}. ${needed ? `Tick at least one: ${SCOPE_NEEDED[needed]}.` : 'With none ticked, the key reaches only the routes that need no scope.'}</span>
    <div class="choices">${offered.map(
      (scope) =>
        html`<label class="choice"><input type="checkbox" name="scope" value="${scope}"${ticked.includes(scope) ? html` checked` : ''}${isDropped(scope) ? html` aria-describedby="scopes-dropped"` : ''}> <code>${scopeShown(scope)}</code>${isDropped(scope) ? html` <span class="badge expired">no longer offered</span>` : ''}</label>`,
    )}</div>
    ${dropped && dropped.scopes.length > 0 ? droppedNote(dropped) : ''}
  </fieldset>`;
}

/**
 * Beside scopes a key has that its plan no longer offers: the gateway already refuses
 * what the plan does not offer, whatever the key holds, so keeping them changes nothing
 * now (they work again if the plan offers them again), and the key's other changes are
 * not refused for them (updateKey keeps scopes a key has).
 */
function droppedNote(dropped: DroppedScopes): Html {
  const one = dropped.scopes.length === 1;
  const them = one ? 'it' : 'them';
  return html`<p class="hint" id="scopes-dropped">${dropped.by} no longer offers ${dropped.scopes.map((s, i) => html`${i === 0 ? '' : i === dropped.scopes.length - 1 ? ' and ' : ', '}<code>${scopeShown(s)}</code>`)}. The key keeps ${them} while ticked, but is refused whatever the plan does not offer; untick ${them} to take ${them} off the key.</p>`;
}

/**
 * The scopes a key's Edit page shows: those its plan allows, then those the key has that
 * the plan no longer offers (marked, to keep or untick: not dropped unseen). None where
 * neither: the page is then the key's name alone, and its button says Rename (editLabel).
 */
export function editableScopes(rt: Pick<Runtime, 'config'>, planId: string, key: KeyRecord): { offered: string[]; dropped: DroppedScopes } {
  const allowed = allowedScopes(rt, planId);
  const scopes = scopesNotOffered(rt, planId, key.scopes);
  const plan = rt.config.plans[planId];
  // A plan with its own list stopped offering them; otherwise the profile's scopes did.
  const by = plan?.scopes ? `The ${plan.name ?? planId} plan` : 'This API';
  return { offered: [...allowed, ...scopes], dropped: { scopes, by } };
}

/** What a key's Edit button (and its page) says: Edit where it has scopes to choose, Rename where it is the name alone. */
export function editLabel(rt: Pick<Runtime, 'config'>, planId: string, key: KeyRecord): 'Edit' | 'Rename' {
  return editableScopes(rt, planId, key).offered.length > 0 ? 'Edit' : 'Rename';
}

/**
 * A key's own rate-limit windows (on top of its account's), where it has some. Members set
 * them on the create form and the key's Rate limits page (key-limits.ts); operators on that
 * page from the account's, with `keygate keys update --rate-limit` or the admin API.
 */
function ownLimits(key: KeyRecord): Html {
  const windows = keyWindowsText(key.rateLimits);
  if (windows.length === 0) return html``;
  return html`<span class="related own-limits">own rate limit${windows.length > 1 ? 's' : ''}: ${windows.map((w, i) => html`${i > 0 ? ', ' : ''}<code>${w}</code>`)}</span>`;
}

/** Newest first, so a freshly created or rotated key is at the top. */
export function newestFirst(keys: readonly KeyRecord[]): KeyRecord[] {
  return [...keys].sort((a, b) => b.createdAt - a.createdAt);
}

export interface KeyTableOptions {
  /** Each row's buttons; without it the table has no action column. */
  actions?: (key: KeyRecord) => Html;
  /** Every key of the account, where rotations are looked up (default: `keys`). */
  all?: readonly KeyRecord[];
  /** When each blocked key's block ends. */
  blocked?: ReadonlyMap<string, number>;
}

/** The keys of one account as a table (cards on a phone), named `name`. */
export function keyTable(keys: readonly KeyRecord[], now: number, name: TableName, traits: KeyTraits, options: KeyTableOptions = {}): Html {
  const { actions, all = keys, blocked } = options;
  const named = tableNaming(name);
  const byId = new Map(all.map((k) => [k.id, k]));
  // The latest replacement of each key (an earlier one may have been revoked since).
  const replacedBy = new Map<string, KeyRecord>();
  for (const k of all) {
    if (k.rotatedFrom === null) continue;
    const known = replacedBy.get(k.rotatedFrom);
    if (!known || k.createdAt > known.createdAt) replacedBy.set(k.rotatedFrom, k);
  }
  const related = (key: KeyRecord): Html => {
    const previous = key.rotatedFrom === null ? undefined : byId.get(key.rotatedFrom);
    const next = replacedBy.get(key.id);
    return html`${previous ? html`<span class="related">replaces <code class="hint">${previous.hint}</code></span>` : ''}${next ? html`<span class="related">replaced by <code class="hint">${next.hint}</code></span>` : ''}`;
  };
  return html`<div class="table-wrap"><table class="data cards"${named.attributes}>${named.caption}
  <thead><tr><th scope="col">Name and key</th>${traits.scopes ? html`<th scope="col">Scopes</th>` : ''}<th scope="col">Created (UTC)</th><th scope="col">Last used (UTC)</th><th scope="col">Expires (UTC)</th><th scope="col">Status</th>${actions ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : ''}</tr></thead>
  <tbody>${keys.map(
    (key) => html`<tr data-key-id="${key.id}">
    <td data-label="Key" class="key-cell"><span><span class="key-name">${key.name}</span><code class="hint">${key.hint}</code>${showsMode(traits, key) ? html` <span class="badge ${key.mode}">${key.mode}</span>` : ''}${related(key)}${ownLimits(key)}</span></td>
    ${traits.scopes ? html`<td data-label="Scopes">${scopeList(key.scopes)}</td>` : ''}
    <td data-label="Created (UTC)">${whenInTable(key.createdAt)}</td>
    <td data-label="Last used (UTC)">${whenInTable(key.lastUsedAt, 'Never')}</td>
    <td data-label="Expires (UTC)">${key.revokedAt !== null && key.expiresAt === null ? html`<span class="muted">—</span>` : keyEnd(key.expiresAt, now, { fallback: 'Never', inTable: true })}</td>
    <td data-label="Status"><span>${statusBadge(key, now, blocked?.get(key.id))}</span></td>
    ${actions ? html`<td data-label=""><div class="actions tight">${actions(key)}</div></td>` : ''}
  </tr>`,
  )}</tbody>
</table></div>`;
}

/**
 * How a program sends the key, from the profile's first credential location, and where
 * to (`dashboard.apiUrl`, with a curl line to try) when the operator said.
 */
export function usageHint(rt: Pick<Runtime, 'config'>): Html {
  const location = rt.config.auth.credentials[0];
  if (!location) return html``;
  const apiUrl = rt.config.dashboard.apiUrl;
  const to = apiUrl === undefined ? '' : html` to <code>${apiUrl}</code>`;
  if (location.in === 'query') {
    const sample = apiUrl === undefined ? '' : html`<pre class="try"><code>curl '${apiUrl}?${location.name}=&lt;your key&gt;'</code></pre>`;
    return html`<p>Send it with each request${to} as the <code>${location.name}</code> query parameter.</p>${sample}`;
  }
  const value = location.scheme.toLowerCase() === 'none' ? '<your key>' : `${location.scheme} <your key>`;
  const sample = apiUrl === undefined ? '' : html`<pre class="try"><code>curl -H '${location.name}: ${value}' '${apiUrl}'</code></pre>`;
  return html`<p>Send it with each request${to} in the header <code>${location.name}: ${value}</code>.</p>${sample}`;
}

/**
 * What to do if the secret of a key, shown once, is lost. `replaced`: the key it replaced
 * (a rotation), as stored now. A new key is revoked and another created. A replacement is
 * rotated in its turn (the next one keeps its name, scopes and end date), which is refused
 * while the key it replaced still works (rotationConflict): until then that key is rotated
 * again once this one is revoked, as the rotation allows (replacementEnd). Revoking it and
 * creating another would end that key's overlap no sooner and lose what the key kept.
 */
export function ifSecretLost(rt: Pick<Runtime, 'config'>, replaced: KeyRecord | undefined, now: number): Html {
  if (replaced === undefined || !rt.config.keys.rotation) return html`revoke it and create another`;
  if (isUsable(replaced, now) && rt.config.keys.rotation !== 'replace') {
    return html`revoke it and rotate the previous key <code>${replaced.hint}</code> again while that key still works; once it has stopped, rotate this one`;
  }
  return html`rotate it to get another`;
}

/**
 * Said beside a new key with no scope, where its plan allows some: the form opens with none
 * ticked, and such a key is refused by every route that needs one (the demo's first
 * dashboard key answered 403 to /v1/projects, with nothing on the page saying why). Its
 * scopes can be given on its Edit page: the same key, no new secret to hand out.
 */
function noScopeNotice(edit: string): Html {
  return html`<div class="notice" id="no-scope"><p>This key has no scope: it reaches only the routes that need none. To call the others, tick the scopes they need on <a href="${edit}">this key’s Edit page</a>: the same key keeps working, with no new secret to copy.</p></div>`;
}

/**
 * The secret, once: in a read-only field to select, with a copy button that the script
 * reveals. The field takes the focus as the page opens (autofocus, no script needed): the
 * keyboard is where the secret is, not seven Tabs away. `heading` names what happened
 * ("Copy your new key"); `replaced`, the key a replacement replaced, as it is now; `back`
 * and `backText`, the way back to the keys (a member's keys page by default); `edit`, the
 * key's Edit page as the viewer reaches it (a member's own by default).
 */
export function secretPanel(
  rt: Pick<Runtime, 'config' | 'keyFormat' | 'clock'>,
  key: KeyRecord,
  secret: string,
  options: { heading: string; extra?: Html; back: string; backText?: string; edit?: string; planId: string; replaced?: KeyRecord },
): Html {
  const traits = keyTraits(rt, options.planId);
  return html`<h1>${options.heading}</h1>
<section class="secret" aria-labelledby="secret-warning">
  <p id="secret-warning"><strong>This is the only time this key is shown.</strong> Copy it now and keep it somewhere safe, such as a secrets manager. Only a hash of it is stored; if you lose it, ${ifSecretLost(rt, options.replaced, rt.clock())}.</p>
  <label for="secret">Key “${key.name}”</label>
  <input id="secret" name="secret" type="text" readonly value="${secret}" autocomplete="off" spellcheck="false" autocapitalize="off" data-select-on-focus aria-describedby="secret-warning" autofocus>
  <div class="actions">
    <button type="button" data-copy="secret" hidden>Copy key</button>
  </div>
  <p id="secret-status" class="copy-status" role="status" aria-live="polite"></p>
</section>
${usageHint(rt)}
${options.extra ?? ''}
<dl class="facts">
  <div><dt>Name</dt><dd>${key.name}</dd></div>
  <div><dt>Shown from now on as</dt><dd><code>${key.hint}</code></dd></div>
  ${showsMode(traits, key) ? html`<div><dt>Mode</dt><dd>${key.mode}</dd></div>` : ''}
  ${traits.scopes ? html`<div><dt>Scopes</dt><dd>${scopeList(key.scopes)}</dd></div>` : ''}
  <div><dt>Expires</dt><dd>${keyEnd(key.expiresAt, rt.clock(), { fallback: 'Never' })}</dd></div>
  ${key.rateLimits?.length ? html`<div><dt>Own rate limits</dt><dd>${keyWindowsText(key.rateLimits).map((w, i) => html`${i > 0 ? ', ' : ''}<code>${w}</code>`)}</dd></div>` : ''}
</dl>
${traits.scopes && key.scopes.length === 0 ? noScopeNotice(options.edit ?? `/keys/${key.id}/edit`) : ''}
<div class="actions"><a class="button secondary" href="${options.back}">${options.backText ?? 'I have copied it — back to the keys'}</a></div>`;
}

/**
 * The title of a key's revoke page, saying what its heading says: a key that no longer
 * works has nothing to confirm ("production is already revoked"), not "Revoke production".
 */
export function revokeTitle(key: KeyRecord, now: number): string {
  return isUsable(key, now) ? `Revoke ${key.name}` : `${key.name} is already ${keyStatus(key, now)}`;
}

/**
 * The confirmation step before a key is revoked. `all`: every key of its account, to say
 * what becomes of the other key of a rotation still in its overlap: revoking the
 * replacement does not keep the key it replaces working (its end stands), and revoking
 * the key being replaced leaves its replacement working.
 */
export function revokeConfirmation(key: KeyRecord, now: number, options: ConfirmationTarget & { all: readonly KeyRecord[] }): Html {
  if (!isUsable(key, now)) {
    return html`<h1>Key “${key.name}” is already ${keyStatus(key, now)}</h1>
<p>It no longer works, so there is nothing to revoke.</p>
<div class="actions"><a class="button secondary" href="${options.cancel}">Back to the keys</a></div>`;
  }
  return html`${confirmationHeading(html`Revoke key “${key.name}”?`)}
<div class="notice warning"><p>Programs using <code>${key.hint}</code> will be refused from their next request. This cannot be undone.${overlapNote(key, options.all, now)}</p></div>
<dl class="facts">
  <div><dt>Key</dt><dd><code>${key.hint}</code></dd></div>
  <div><dt>Created</dt><dd>${when(key.createdAt)}</dd></div>
  <div><dt>Last used</dt><dd>${when(key.lastUsedAt, 'Never')}</dd></div>
</dl>
${confirmationForm(options, 'Revoke key')}`;
}

/** What revoking `key` does not change about the other key of its rotation, while both work. */
function overlapNote(key: KeyRecord, all: readonly KeyRecord[], now: number): Html {
  const replaced = key.rotatedFrom === null ? undefined : all.find((k) => k.id === key.rotatedFrom && isUsable(k, now));
  if (replaced) {
    const ends = replaced.expiresAt === null ? '' : html` at ${keyEnd(replaced.expiresAt, now)}`;
    return html` It replaces <code>${replaced.hint}</code>, which stops working${ends} all the same: revoking this key does not keep that one working.`;
  }
  const replacement = all.find((k) => k.rotatedFrom === key.id && isUsable(k, now));
  return replacement ? html` Its replacement <code>${replacement.hint}</code> keeps working.` : html``;
}
