/** How times, numbers and statuses read in the dashboard: UTC, unambiguous, short. */
import type { Plan } from '../config/schema.js';
import { isoDay, utcSecondUp } from '../meters/period.js';
import { html, type Html } from './html.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * `2025-03-04 10:22 UTC` in a `<time>` element (the exact time in its `datetime`);
 * `fallback` when there is no time. Truncated to the minute, as a past moment is (a key's
 * end still to come: keyEnd).
 */
export function when(ms: number | null, fallback = '—'): Html {
  if (ms === null) return html`<span class="muted">${fallback}</span>`;
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}">${isoDay(ms)} ${iso.slice(11, 16)} UTC</time>`;
}

/** `2025-03-04 10:22` for table cells whose column heading says "(UTC)". */
export function whenInTable(ms: number | null, fallback = '—'): Html {
  if (ms === null) return html`<span class="muted">${fallback}</span>`;
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}">${isoDay(ms)} ${iso.slice(11, 16)}</time>`;
}

/**
 * A key's end (its expiry, the end of a rotation's overlap) to the minute, where one waits
 * for it or reads when it comes. Still to come: rounded up, as a refusal that says to wait
 * for it names it (`keyMomentsShown` in pages/key-views.ts), so that at the minute shown
 * the key has stopped and no page shows a minute earlier than the refusal (truncated, a
 * key ending at 14:05:30 read "Expires 14:05" beside "works until 14:06 UTC", and still
 * worked at 14:05). Past: truncated, as every moment that happened (a refusal's "expired
 * at"). `inTable`: without " UTC", for cells whose column heading says it.
 */
export function keyEnd(ms: number | null, now: number, options: { fallback?: string; inTable?: boolean } = {}): Html {
  const { fallback = '—', inTable = false } = options;
  if (ms === null) return html`<span class="muted">${fallback}</span>`;
  const shown = ms > now ? Math.ceil(ms / MINUTE) * MINUTE : ms;
  const iso = new Date(shown).toISOString();
  return html`<time datetime="${new Date(ms).toISOString()}">${isoDay(shown)} ${iso.slice(11, 16)}${inTable ? '' : ' UTC'}</time>`;
}

/** `2025-03-04 10:22:31`, to the second, rounded up (as `until`), for table cells whose column heading says "(UTC)". */
export function untilInTable(ms: number): Html {
  return html`<time datetime="${new Date(ms).toISOString()}">${utcSecondUp(ms)}</time>`;
}

/**
 * When something in force that one waits for ends (a member's pause), as the CLI says it
 * (`until` in cli/format.ts): to the second, rounded up, so that at the time shown it has
 * ended, and both show the same end. `2025-03-04 10:22:31 UTC`.
 */
export function until(ms: number): Html {
  return html`<time datetime="${new Date(ms).toISOString()}">${utcSecondUp(ms)} UTC</time>`;
}


/** "in 59 min", "in 6 h", "in 3 days", or "... ago" for the past. */
export function relative(ms: number, now: number): string {
  const delta = ms - now;
  const span = Math.abs(delta);
  // "Revoked 1 min ago" for a key revoked seconds ago read as a minute.
  if (span < MINUTE) return delta >= 0 ? 'in under a minute' : 'just now';
  const minutes = Math.round(span / MINUTE);
  const amount = minutes < 60 ? `${minutes} min` : span < 2 * DAY ? `${Math.round(span / HOUR)} h` : `${Math.round(span / DAY)} days`;
  return delta >= 0 ? `in ${amount}` : `${amount} ago`;
}

const NUMBER = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

export function number(value: number): string {
  return NUMBER.format(value);
}

/** "Mar 4" for chart axes. */
export function shortDay(day: string): string {
  return new Date(`${day}T00:00:00Z`).toLocaleDateString('en-US', { month: 'short', day: 'numeric', timeZone: 'UTC' });
}

/**
 * The names more than one of `accounts` has: account names need not be unique, and where
 * two on a page share one, each is shown with its id.
 */
export function sharedNames(accounts: readonly { name: string }[]): ReadonlySet<string> {
  const seen = new Set<string>();
  const shared = new Set<string>();
  for (const { name } of accounts) (seen.has(name) ? shared : seen).add(name);
  return shared;
}

/**
 * What a message repeats as it was given, and so keeps as it is: a quoted value (“Bob's
 * key”, "acc_…") or an email address (o'brien@b.test).
 */
const AS_GIVEN = /“[^”]*”|"[^"]*"|\S*@\S*/u;

/** An apostrophe within a word (`API's`, `don't`). */
const STRAIGHT_APOSTROPHE = /(?<=\p{L})'(?=\p{L})/gu;

/** A character a regular expression reads as syntax, escaped to stand for itself (valid with the `u` flag). */
const REGEXP_SYNTAX = /[.*+?^${}()|[\]\\/]/g;

/**
 * The names a profile declares that operation messages repeat unquoted, as the profile
 * writes them (`the Pro plan allows 3 keys per account`, `allowed: projects:read`): plan
 * ids and names, scopes, meters and their units. Only those with a straight apostrophe,
 * the one thing sentence() would change in them.
 */
export function profileNames(profile: { plans: Record<string, Plan>; scopes?: readonly string[] }): string[] {
  const names = [...(profile.scopes ?? [])];
  for (const [id, plan] of Object.entries(profile.plans)) {
    names.push(id, ...(plan.scopes ?? []));
    if (plan.name !== undefined) names.push(plan.name);
    for (const [meter, { unit }] of Object.entries(plan.meters)) names.push(meter, ...(unit === undefined ? [] : [unit]));
  }
  return [...new Set(names.filter((name) => name.includes("'")))];
}

/**
 * An operation message (written for logs, the CLI and the admin API: lower-case, straight
 * apostrophes) as a page says it, in the dashboard's own style: a capital, a full stop,
 * curly apostrophes (’). Values it repeats as they were typed are left as they are: those
 * it marks (quoted, or an email address) and the `names` it repeats unmarked (a plan's
 * name, a scope: profileNames() gives a profile's; a caller adds what its form sent). (A
 * key's moments, which the CLI gives to the second, the operation words as the dashboard
 * asks: `keyMomentsShown` in pages/key-views.ts.)
 */
export function sentence(message: string, names: Iterable<string> = []): string {
  const unmarked = [...new Set(names)].filter((name) => name.includes("'"));
  // Longest first, so that a name is not cut short by another it begins with; whole, not within a longer word.
  const alternatives = unmarked.sort((a, b) => b.length - a.length).map((name) => `(?<![\\p{L}\\p{N}])${name.replace(REGEXP_SYNTAX, '\\$&')}(?![\\p{L}\\p{N}])`);
  const asGiven = new RegExp(`(${[AS_GIVEN.source, ...alternatives].join('|')})`, 'u');
  const styled = message
    .split(asGiven)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(STRAIGHT_APOSTROPHE, '’')))
    .join('');
  // An email address or an id that begins the message is written as it is (bob@b.test, key_…).
  const first = styled.split(' ', 1)[0] ?? '';
  const text = /[@_]/.test(first) ? styled : styled.charAt(0).toUpperCase() + styled.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

export function plural(count: number, one: string, many = `${one}s`): string {
  return `${number(count)} ${count === 1 ? one : many}`;
}

/**
 * When a sign-in pause ends, as its messages say it: "2026-12-01 05:07:18 UTC (15
 * minutes)". The stored end, not the time now plus what was left when the check began, so
 * each try meanwhile is told the same end; to the second and rounded up, as every other
 * end in the dashboard (and the audit log's `member.locked` row) says it, so that "try
 * again after that" is true.
 */
export function pauseEnd(until: number, retryAfterMs: number): string {
  const minutes = Math.max(1, Math.ceil(retryAfterMs / MINUTE));
  return `${utcSecondUp(until)} UTC (${minutes} minute${minutes === 1 ? '' : 's'})`;
}
