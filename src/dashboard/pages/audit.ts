/**
 * The operator's audit log: key and account events, newest first, who did them, from
 * which client address (the admin API's and the dashboard's) and when, optionally for one account. The filter is a plain GET form.
 */
import type { FastifyInstance } from 'fastify';
import type { AuditEntry } from '../../store/store.js';
import type { Runtime } from '../../runtime.js';
import { operatorOf, queryValue, type Dashboard } from '../context.js';
import { sendPage } from '../layout.js';
import { html, type Html } from '../html.js';
import { breakable, prose } from '../long-words.js';
import { tableNaming, type TableName } from '../table-name.js';
import { number, plural, relative, sharedNames, when } from '../format.js';
import { utcMinute, utcSecondUp } from '../../meters/period.js';
import { cursorOf, placeOf } from '../../operations/cursor.js';
import { andList } from '../../list-words.js';

const PAGE_SIZE = 200;
/** Accounts offered in the filter's list; with more, an account is named by its id. */
const ACCOUNT_CHOICES = 100;

/**
 * What the log has events of, by the first part of their action (`key.created`), as the
 * page's intro names them: a kind, not each action, so the intro stays true as actions are
 * added (test/dashboard/audit-intro.test.ts checks every action recorded has one here).
 */
export const AUDITED_KINDS: Readonly<Record<string, string>> = { key: 'keys', account: 'accounts', member: 'members', address: 'client-address blocks' };

/** Each action the log records, in words (one missing is shown as recorded: `key.created`). */
export const ACTIONS: Readonly<Record<string, string>> = {
  'key.created': 'Created a key',
  'key.imported': 'Imported a key (made elsewhere)',
  'key.revoked': 'Revoked a key',
  'key.rotated': 'Rotated a key',
  'key.unblocked': 'Lifted a key’s rate-limit block',
  'key.updated': 'Changed a key',
  'account.created': 'Created the account',
  'account.updated': 'Changed the account',
  'account.limits_changed': 'Changed the account’s own limits',
  'account.deleted': 'Deleted the account',
  'member.invited': 'Invited a member',
  'member.joined': 'Joined (set a password)',
  'member.password_reset': 'Sent a password reset link',
  'member.password_changed': 'Set a new password (reset link)',
  'member.removed': 'Removed a member',
  'member.locked': 'Sign-in locked after failed attempts',
  'member.unlocked': 'Lifted a sign-in lock',
  'address.unblocked': 'Lifted a client address’s block for unknown keys',
};

/** What an event did, in words: by its action, for a password by how it was set (entries before `via` were reset links), for a removal whether it was an invitation. */
function actionText(entry: AuditEntry): string {
  if (entry.action === 'member.password_changed' && entry.detail.via === 'current_password') return 'Changed their password (signed in; other sessions signed out)';
  // The same event as removing a member; entries from before `invitation` say "Removed a member".
  if (entry.action === 'member.removed' && entry.detail.invitation === true) return 'Withdrew an invitation';
  return ACTIONS[entry.action] ?? entry.action;
}

const FIELD_LABELS: Record<string, string> = { planId: 'plan', apiAccess: 'API access', planExpiresAt: 'plan expiry', overage: 'overage', name: 'name' };

/**
 * An event's Details, in words. Built as `prose`, which marks a word too long for any column
 * (a name, JSON) as it is built, so it alone may break anywhere in the cell.
 */
function describe(entry: AuditEntry, planNames: ReadonlyMap<string, string>): Html {
  const d = entry.detail;
  const text = (value: unknown) => (typeof value === 'string' || typeof value === 'number' ? String(value) : '');
  // Set in monospace, as the keys table sets it: I and l, O and 0 differ.
  const hint = (value: unknown) => (typeof value === 'string' && value !== '' ? html`<code>${breakable(value)}</code>` : '');
  // Kept on one line as the Who column keeps one (not broken at its hyphens by a squeezed column); not marked as a long word, which would change nothing on that line.
  const email = html`<span class="email">${text(d.email)}</span>`;
  switch (entry.action) {
    case 'key.created':
    case 'key.imported':
      return prose`“${text(d.name)}” ${hint(d.hint)}, ${text(d.mode)}, scopes ${Array.isArray(d.scopes) ? d.scopes.join(' ') || 'none' : ''}${Array.isArray(d.rateLimits) ? `, own rate limits ${keyWindowsWords(d.rateLimits)}` : ''}`;
    case 'key.revoked':
    case 'key.unblocked':
      return prose`“${text(d.name)}” ${hint(d.hint)}`;
    case 'key.updated':
      return prose`${[
        d.name === undefined ? '' : `name → “${text(d.name)}”`,
        Array.isArray(d.scopes) ? `scopes → ${d.scopes.join(' ') || 'none'}` : '',
        // Its own windows, as after the change (the event keeps before and after).
        typeof d.rateLimits === 'object' && d.rateLimits !== null && Array.isArray((d.rateLimits as { after?: unknown }).after) ? `own rate limits → ${keyWindowsWords((d.rateLimits as { after: unknown[] }).after)}` : '',
      ]
        .filter(Boolean)
        .join(', ')}`;
    case 'key.rotated': {
      const overlap = typeof d.overlapMs === 'number' ? d.overlapMs : 0;
      const until = typeof d.oldKeyValidUntil === 'number' ? d.oldKeyValidUntil : 0;
      const which = d.name === undefined ? '' : prose`“${text(d.name)}” ${hint(d.hint)}: `;
      return prose`${which}${overlap === 0 ? 'old key revoked at once' : `old key kept working ${relative(until, until - overlap).replace(/^in /, 'for ')}`}`;
    }
    case 'account.updated': {
      // What each field was, where the event keeps it (`from`; entries before it have the new values alone).
      const from = typeof d.from === 'object' && d.from !== null ? (d.from as Record<string, unknown>) : {};
      const shown = (field: string, value: unknown) => (field === 'planId' ? planName(value, planNames) : fieldValue(field, value));
      return prose`${Object.entries(d)
        .filter(([field]) => field !== 'from')
        .map(([field, value], i) => [i === 0 ? '' : ', ', FIELD_LABELS[field] ?? field, Object.hasOwn(from, field) ? [' ', shown(field, from[field])] : '', ' → ', shown(field, value)])}`;
    }
    case 'account.limits_changed':
      return prose`${ownLimitsText(d.after)}`;
    case 'member.joined':
    case 'member.password_reset':
    case 'member.password_changed':
      return email;
    // Invited, withdrawn or removed: the role in brackets alike.
    case 'member.invited':
    case 'member.removed':
      return prose`${email} (${text(d.role)})`;
    case 'member.unlocked':
      return d.lifted === true ? email : prose`${email} (was not locked; failed sign-ins forgotten)`;
    case 'member.locked': {
      // Which sign-ins wait: from one address, from one IPv6 /64, or from anywhere (records older than the scopes name none).
      const from = d.scope === 'email' ? ' from every address' : d.scope === 'network' ? ` from ${text(d.network)}` : d.address === undefined ? '' : ` from ${text(d.address)}`;
      // Rounded up to the second, as the sign-in page tells the one waiting.
      const until = typeof d.until === 'string' ? Date.parse(d.until) : Number.NaN;
      return prose`${email}${from} until ${Number.isFinite(until) ? utcSecondUp(until) : text(d.until)} UTC`;
    }
    case 'address.unblocked': {
      const until = typeof d.blockedUntil === 'number' ? `, blocked until ${utcSecondUp(d.blockedUntil)} UTC` : '';
      // Lifted while Redis did not answer (or refused): in the process that lifted it alone (entries before `from` say nothing of it).
      const reach =
        d.from === 'this-process-redis-away' ? ', in one keygate process only: Redis did not answer' : d.from === 'this-process-redis-refused' ? ', in one keygate process only: Redis answered with an error' : '';
      const counted = typeof d.unknownKeys === 'number' ? plural(d.unknownKeys, 'unknown key') : `${text(d.unknownKeys)} unknown keys`;
      return prose`${text(d.address)} (after ${counted}${until}${reach})`;
    }
    case 'account.deleted':
      return d.name === undefined ? html`` : prose`“${text(d.name)}” on the ${planName(d.planId, planNames)} plan`;
    case 'account.created':
      // Created with its own limits: they are in this one event (no account.limits_changed follows).
      return prose`“${text(d.name)}” on the ${planName(d.planId, planNames)} plan${d.limits === undefined ? '' : `, ${ownLimitsText(d.limits)}`}`;
    default:
      return prose`${Object.entries(d)
        .map(([field, value]) => `${field}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`)
        .join(', ')}`;
  }
}

/** A key's own windows as the audit detail keeps them ({ limit, window }), in words: `10-per-1m, 2-per-1s`, or none. */
function keyWindowsWords(windows: readonly unknown[]): string {
  if (windows.length === 0) return 'none';
  return windows.map((w) => `${String((w as { limit?: unknown }).limit)}-per-${String((w as { window?: unknown }).window)}`).join(', ');
}

/** An account's own limits after a change, in words: its windows and meter limits, or the plan's. */
function ownLimitsText(after: unknown): string {
  const limits = (after ?? {}) as { rateLimits?: { limit: number; window: string; scope: string }[] | null; meters?: Record<string, number> };
  const windows = Array.isArray(limits.rateLimits)
    ? limits.rateLimits.length === 0 ? 'none' : limits.rateLimits.map((w) => `${w.limit}-per-${w.window}${w.scope === 'account' ? ' per account' : ''}`).join(', ')
    : 'the plan’s';
  const meters = Object.entries(limits.meters ?? {}).map(([meter, limit]) => `limit of ${meter} → ${number(limit)}`);
  return [`rate limits → ${windows}`, ...(meters.length > 0 ? meters : ['meter limits → the plan’s'])].join(', ');
}

/**
 * A plan as the Plans table shows it: its name, its id beside it (what the CLI and the
 * profile call it). A plan the profile no longer has is known by its id alone.
 */
function planName(planId: unknown, planNames: ReadonlyMap<string, string>): Html {
  const id = typeof planId === 'string' ? planId : String(planId);
  const name = planNames.get(id);
  const code = html`<code>${breakable(id)}</code>`;
  if (name === undefined) return html`${code} (no longer configured)`;
  return name === id ? code : html`${breakable(name)} ${code}`;
}

/** A changed account field as a person reads it (times in UTC, not milliseconds). */
function fieldValue(field: string, value: unknown): string {
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  if (field.endsWith('At')) return typeof value === 'number' ? utcMinute(value) : 'never';
  if (value === null) return field === 'overage' ? 'as the plan says' : 'none';
  return String(value);
}

/**
 * `accountNames`: the name of every account the entries name that still exists (one left
 * out is shown as deleted); `planNames`: each configured plan's name by id (`planNamesOf`).
 */
/**
 * `options.accountColumn`: false on an account's own page, where every event is that
 * account's and the column would repeat its name on every row.
 */
export function auditTable(entries: readonly AuditEntry[], accountNames: ReadonlyMap<string, string>, name: TableName, planNames: ReadonlyMap<string, string>, options: { accountColumn?: boolean } = {}): Html {
  if (entries.length === 0) return html`<div class="empty"><p>No events yet.</p></div>`;
  const accountColumn = options.accountColumn ?? true;
  // An account the names leave out no longer exists: its deletion, where this page shows it, says what it was called.
  const deletedNames = new Map(entries.flatMap((e) => (e.action === 'account.deleted' && e.accountId && typeof e.detail.name === 'string' ? [[e.accountId, e.detail.name] as const] : [])));
  const named = tableNaming(name);
  return html`<div class="table-wrap"><table class="data cards"${named.attributes}>${named.caption}
  <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">From</th><th scope="col">What</th>${accountColumn ? html`<th scope="col">Account</th>` : ''}<th scope="col">Details</th></tr></thead>
  <tbody>${entries.map(
    (e) => html`<tr>
    <td data-label="When">${when(e.at)}</td>
    <td data-label="Who">${actorCell(e.actor)}</td>
    <td data-label="From">${e.actorAddress === null ? html`<span class="muted">—</span>` : html`<code>${e.actorAddress}</code>`}</td>
    <td data-label="What">${actionText(e)}</td>${accountColumn
      ? html`
    <td data-label="Account">${e.accountId ? accountCell(e.accountId, accountNames, deletedNames) : html`<span class="muted">—</span>`}</td>`
      : ''}
    <td data-label="Details" class="details">${describe(e, planNames)}</td>
  </tr>`,
  )}</tbody></table></div>`;
}

/** Who did it: an email kept on one line where it fits (not broken at its hyphens), or `cli`, `admin-api`, …. */
function actorCell(actor: string): Html {
  return actor.includes('@') ? html`<span class="email">${actor}</span>` : html`${actor}`;
}

/**
 * The account an event is about: a link to its page, or, for an account deleted since
 * (`accountNames` has every account the page names that still exists), its name where
 * known and its id, without a link to a page that is gone.
 */
function accountCell(accountId: string, accountNames: ReadonlyMap<string, string>, deletedNames: ReadonlyMap<string, string>): Html {
  const name = accountNames.get(accountId);
  if (name !== undefined) return html`<a class="account-name" href="/accounts/${accountId}">${name}</a>`;
  const was = deletedNames.get(accountId);
  return html`<span>${was === undefined ? 'deleted account' : `${was} (deleted)`} <code>${accountId}</code></span>`;
}

/** Each configured plan's name (its id where it has none), by id. */
export function planNamesOf(config: Pick<Runtime['config'], 'plans'>): Map<string, string> {
  return new Map(Object.entries(config.plans).map(([id, plan]) => [id, plan.name ?? id]));
}

export function registerAuditPage(app: FastifyInstance, dash: Dashboard): void {
  const { rt } = dash;
  app.get<{ Querystring: { account?: string; after?: string } }>('/audit', async (request, reply) => {
    operatorOf(request);
    // A page at a time, newest first; only the accounts a page names are read (for their names).
    const cursor = queryValue(request.query, 'after');
    const asked = queryValue(request.query, 'account')?.trim().slice(0, 200) ?? '';
    const account = asked === '' ? undefined : await rt.store.getAccount(asked);
    const listed = await rt.store.listAudit({
      ...(account ? { accountId: account.id } : {}),
      limit: PAGE_SIZE + 1,
      ...(cursor !== undefined ? { after: placeOf(cursor) } : {}),
    });
    const entries = listed.slice(0, PAGE_SIZE);
    const last = entries[entries.length - 1];
    const next = listed.length > PAGE_SIZE && last ? cursorOf({ createdAt: last.at, id: last.id }) : undefined;
    // A choice of every account while they fit on a page; past that, an account is named by its id.
    const few = await rt.store.listAccounts({ limit: ACCOUNT_CHOICES + 1 });
    // The names of the accounts the page names: those listed already, when every account is.
    const named = few.length <= ACCOUNT_CHOICES ? few : await rt.store.listAccounts({ ids: [...new Set(entries.flatMap((e) => (e.accountId ? [e.accountId] : [])))] });
    const names = new Map(named.map((a) => [a.id, a.name]));
    const listUrl = (place?: string) => {
      const params = new URLSearchParams({ ...(account ? { account: account.id } : {}), ...(place !== undefined ? { after: place } : {}) }).toString();
      return params === '' ? '/audit' : `/audit?${params}`;
    };
    const pager =
      cursor !== undefined || next !== undefined
        ? html`<nav class="pager" aria-label="Pages of the audit log">${cursor !== undefined ? html`<a href="${listUrl()}">Newest events</a>` : ''}${next !== undefined ? html`<a href="${listUrl(next)}" rel="next">Older events</a>` : ''}</nav>`
        : '';
    const shared = sharedNames(few);
    const chooser =
      few.length <= ACCOUNT_CHOICES
        ? html`<div class="field"><label for="account">Account</label><select id="account" name="account">
    <option value="">All accounts</option>
    ${few.map((a) => html`<option value="${a.id}"${a.id === account?.id ? html` selected` : ''}>${a.name}${shared.has(a.name) ? ` (${a.id})` : ''}</option>`)}
  </select></div>`
        : html`<div class="field"><label for="account">Account id</label><input id="account" name="account" value="${account?.id ?? asked}" placeholder="acc_… (from the Accounts page); empty for all" autocomplete="off"></div>`;
    const notice = asked !== '' && !account ? ({ kind: 'error', text: `No account has the id “${asked}”: these are every account’s events.` } as const) : undefined;
    const body = html`<h1 id="audit-log">Audit log</h1>
<p>What happened to ${andList(Object.values(AUDITED_KINDS))}: who did it, from where and when — newest first, ${PAGE_SIZE} to a page.</p>
<form method="get" action="/audit" class="inline-form">
  ${chooser}
  <button type="submit" class="secondary">Show</button>
</form>
${auditTable(entries, names, account ? { caption: `Audit log of ${account.name}` } : { heading: 'audit-log' }, planNamesOf(rt.config))}
${pager}`;
    return sendPage(dash, request, reply, { title: 'Audit log', body, ...(notice ? { notice } : {}) });
  });
}
