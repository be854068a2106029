/**
 * Usage: the plan, whether API access is on, each meter's usage, limit and remaining,
 * charts of the current period (requests per day, denials by reason, units per day) and
 * its requests by key, from the daily counters. Members see their own account; operators see any account
 * through the same section on its detail page.
 */
import type { FastifyInstance } from 'fastify';
import type { AccountRecord, KeyRecord, UsageDailyRow } from '../../store/store.js';
import { accountUsage, type AccountUsage, type KeyRequests } from '../../operations/usage.js';
import { accountPlan } from '../../operations/accounts.js';
import { isoDay } from '../../meters/period.js';
import { ownAccount, type Dashboard } from '../context.js';
import { sendPage } from '../layout.js';
import { html, type Html } from '../html.js';
import { number, when, whenInTable } from '../format.js';
import { blockedUntilOf } from '../../operations/keys.js';
import { blockedBadge, isUsable } from './key-views.js';
import { dailyBarChart, labelledBarChart, type DailySeries } from '../charts.js';
import type { DenialReason } from '../../denial/reasons.js';

const DAY = 86_400_000;
/** Status classes in the order they are stacked; gateway refusals come last. */
const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx'];
const STATUS_LABELS: Record<string, string> = { '2xx': 'answered (2xx)', '3xx': 'redirected (3xx)', '4xx': 'client errors (4xx)', '5xx': 'server errors (5xx)' };

export function registerUsagePage(app: FastifyInstance, dash: Dashboard): void {
  app.get('/usage', async (request, reply) => {
    const { account } = ownAccount(request);
    const body = html`<h1>Usage</h1>
<p>What <strong>${account.name}</strong> has used in the current period, and how requests went day by day.</p>
${await usageSection(dash, account, 2)}`;
    return sendPage(dash, request, reply, { title: 'Usage', body });
  });
}

/** Usage and "last used" are written in batches; write what is pending so a page is current. */
export async function writePendingUsage(dash: Dashboard): Promise<void> {
  await dash.rt.flush().catch((error: unknown) => dash.rt.log.warn({ err: error }, 'could not write usage before showing it'));
}

/** The days of the current period (from the plan's first consumed meter, else the calendar month: `periodStart`) up to today. */
function currentPeriodDays(periodStart: string, now: number): string[] {
  const days: string[] = [];
  for (let t = Date.parse(`${periodStart}T00:00:00Z`); t <= now; t += DAY) days.push(isoDay(t));
  return days;
}

function seriesFor(rows: readonly UsageDailyRow[], days: readonly string[], metric: UsageDailyRow['metric'], label: string): number[] {
  const index = new Map(days.map((day, i) => [day, i]));
  const values = days.map(() => 0);
  for (const row of rows) {
    if (row.metric !== metric || row.label !== label) continue;
    const i = index.get(row.day);
    if (i !== undefined) values[i] = (values[i] ?? 0) + row.value;
  }
  return values;
}

function labelsOf(rows: readonly UsageDailyRow[], metric: UsageDailyRow['metric']): string[] {
  return [...new Set(rows.filter((r) => r.metric === metric).map((r) => r.label))].sort();
}

/** Denial reasons in a member's words (`insufficient_funds` is worded with the meter's unit: see `reasonLabel`). */
const REASON_LABELS: Record<Exclude<DenialReason, 'insufficient_funds'>, string> = {
  missing_key: 'Missing key',
  malformed_key: 'Malformed key',
  unknown_key: 'Unknown key',
  too_many_failures: 'Too many unknown keys',
  revoked_key: 'Revoked key',
  expired_key: 'Expired key',
  key_not_bound: 'Key without account',
  api_disabled: 'API access off',
  plan_expired: 'Plan expired',
  no_route: 'No such endpoint',
  method_not_allowed: 'Method not allowed',
  insufficient_scope: 'Insufficient scope',
  blocked: 'Temporarily blocked',
  rate_limited: 'Rate limited',
  concurrency_limited: 'Too many at once',
  invalid_parameter: 'Invalid parameter',
  upstream_unavailable: 'Upstream unavailable',
  upstream_timeout: 'Upstream timed out',
  service_unavailable: 'Service unavailable',
  bad_request: 'Bad request',
};

/**
 * `unitName`: what the plan's meters count in ("units", "credits"). A request is refused
 * `insufficient_funds` whenever its cost does not fit what is left, a per-record route
 * reserving `?limit=50` records with 10 units left included: not only once a meter is used up.
 */
function reasonLabel(reason: string, unitName: string): string {
  if (reason === 'insufficient_funds') return `Not enough ${unitName} left`;
  return REASON_LABELS[reason as Exclude<DenialReason, 'insufficient_funds'>] ?? reason;
}

/** An account's usable keys and when the blocks of those blocked end, where a page has them already. */
export interface KeyBlocks {
  usable: readonly KeyRecord[];
  blocked: ReadonlyMap<string, number> | undefined;
}

/**
 * The whole usage section; `level` is the heading level of its sub-sections (2 or 3);
 * `blocks`, what the page knows of the account's keys (else looked up).
 */
export async function usageSection(dash: Dashboard, account: AccountRecord, level: 2 | 3, blocks?: KeyBlocks): Promise<Html> {
  const { rt } = dash;
  await writePendingUsage(dash);
  const now = rt.clock();
  const usage = await accountUsage(rt, account, { keys: true });
  const days = currentPeriodDays(usage.periodStart, now);
  const rows = await rt.store.listUsageDaily(account.id, days[0] ?? isoDay(now), isoDay(now));

  const requestSeries: DailySeries[] = [
    ...STATUS_CLASSES.filter((c) => labelsOf(rows, 'requests').includes(c)).map((c) => ({ label: STATUS_LABELS[c] as string, values: seriesFor(rows, days, 'requests', c) })),
  ];
  const denialSeries = labelsOf(rows, 'denials').map((reason) => ({ reason, values: seriesFor(rows, days, 'denials', reason) }));
  const refused = days.map((_, i) => denialSeries.reduce((sum, s) => sum + (s.values[i] ?? 0), 0));
  if (refused.some((v) => v > 0)) requestSeries.push({ label: 'refused by the gateway', values: refused });
  const unitSeries = labelsOf(rows, 'units').map((meter) => ({ label: usage.meters[meter]?.unit ?? meter, values: seriesFor(rows, days, 'units', meter) }));
  // A plan whose meters are all gauges (or that has none) spends no units: no chart of them.
  const consumesUnits = Object.values(usage.meters).some((m) => m.kind === 'consumed');
  // The units chart counts in the meter's unit, named as the meters table names it ("credits", "rur"), where its meters share one.
  const unitNames = new Set([...Object.entries(usage.meters).filter(([, m]) => m.kind === 'consumed').map(([name, m]) => m.unit ?? name), ...unitSeries.map((s) => s.label)]);
  const unitName = unitNames.size === 1 ? ([...unitNames][0] as string) : 'units';
  const denials = denialSeries.map((s) => ({ label: reasonLabel(s.reason, unitName), value: s.values.reduce((a, b) => a + b, 0) }));
  const h = (text: string, id: string) => (level === 2 ? html`<h2 id="${id}">${text}</h2>` : html`<h3 id="${id}">${text}</h3>`);
  // Whole days, as the meters table's Resets (UTC) and every other page write them; the charts' labels stay short.
  const periodText = days.length > 0 ? `${days[0] as string} – ${days[days.length - 1] as string}` : '';

  return html`<dl class="facts">
  <div><dt>Plan</dt><dd>${usage.planName}${account.planExpiresAt === null ? '' : html` (${usage.planExpired ? 'ended' : 'until'} ${when(account.planExpiresAt)})`}</dd></div>
  <div><dt>API access</dt><dd>${usage.apiEnabled ? html`<span class="badge on">On</span>${blockNotice(blocks ?? (await keyBlocks(dash, account, now)), now)}${usedUpNotice(usage)}` : html`<span class="badge off">Off</span> <span class="muted">— ${apiOffReason(dash, account, usage.planExpired)}</span>`}</dd></div>
  <div><dt>Current period (UTC)</dt><dd>${periodText} <span class="muted">(so far)</span></dd></div>
</dl>
${h('Meters', `meters-${account.id}`)}
${meterTable(usage, accountPlan(account, dash.rt.config.plans).rateLimits.length > 0, dash.rt.config.plans[account.planId] !== undefined)}
${h('This period, day by day', `charts-${account.id}`)}
<div class="charts">
  ${dailyBarChart({ id: `requests-${account.id}`, title: 'Requests per day', days, series: requestSeries, unit: 'requests', emptyText: 'No requests yet in this period.', wide: true })}
  ${labelledBarChart({ id: `denials-${account.id}`, title: 'Denials by reason', items: denials, emptyText: 'No refused requests in this period.' })}
  ${consumesUnits || unitSeries.length > 0 ? dailyBarChart({ id: `units-${account.id}`, title: 'Units per day', days, series: unitSeries, unit: unitName, emptyText: `No ${unitName} used yet in this period.` }) : ''}
</div>
${h('Requests by key', `key-requests-${account.id}`)}
${keyRequestsTable(usage.keys)}`;
}

/** Each key's admitted requests this period, most first; a revoked key's stay, marked. */
function keyRequestsTable(keys: readonly KeyRequests[]): Html {
  if (keys.length === 0) return html`<div class="empty"><p>The account has no keys.</p></div>`;
  return html`<div class="table-wrap"><table class="data cards">
  <caption class="sr-only">Requests by key this period</caption>
  <thead><tr><th scope="col">Key</th><th scope="col" class="num">Requests this period</th><th scope="col">Last used (UTC)</th></tr></thead>
  <tbody>${keys.map(
    (key) => html`<tr>
    <td data-label="Key" class="key-cell"><span>${key.name === null ? html`<code>${key.keyId}</code>` : html`<span class="key-name">${key.name}</span><code class="hint">${key.hint}</code>`}${key.revoked ? html` <span class="badge revoked">Revoked</span>` : ''}</span></td>
    <td data-label="Requests this period" class="num">${number(key.requests)}</td>
    <td data-label="Last used (UTC)">${whenInTable(key.lastUsedAt, 'Never')}</td>
  </tr>`,
  )}</tbody>
</table></div>`;
}

/** `planDefined`: whether the profile has the account's plan (one taken out of it leaves the account on a plan of nothing). */
function meterTable(usage: AccountUsage, rateLimited: boolean, planDefined: boolean): Html {
  const meters = Object.entries(usage.meters);
  if (!planDefined) return html`<div class="empty"><p>The account’s plan, ${usage.planId}, is no longer offered: its keys are refused until the account is moved to another plan.</p></div>`;
  if (meters.length === 0) {
    return html`<div class="empty"><p>The ${usage.planName} plan has no metered quotas${rateLimited ? ': requests are limited only by rate limits' : ''}.</p></div>`;
  }
  return html`<div class="table-wrap"><table class="data cards">
  <caption class="sr-only">Meters of the ${usage.planName} plan</caption>
  <thead><tr><th scope="col">Meter</th><th scope="col" class="num">Used</th><th scope="col" class="num">Limit</th><th scope="col" class="num">Remaining</th><th scope="col">Share used</th><th scope="col">Resets (UTC)</th></tr></thead>
  <tbody>${meters.map(([name, m]) => {
    const unit = m.unit ?? name;
    return html`<tr>
    <td data-label="Meter"><span><strong>${name}</strong>${meterNote(name, m)}</span></td>
    <td data-label="Used" class="num">${number(m.usage)}</td>
    <td data-label="Limit" class="num">${number(m.limit)}</td>
    <td data-label="Remaining" class="num">${number(m.remaining)}${m.overage > 0 ? html` <span class="badge expiring">+${number(m.overage)} overage</span>` : ''}</td>
    <td data-label="Share used"><span class="share"><meter min="0" max="${m.limit}" low="${m.limit * 0.75}" high="${m.limit * 0.9}" optimum="0" value="${Math.min(m.usage, m.limit)}" aria-label="${number(m.usage)} of ${number(m.limit)} ${unit} used">${number(m.usage)} of ${number(m.limit)}</meter> <span aria-hidden="true">${share(m.usage, m.limit)}</span></span></td>
    <td data-label="Resets (UTC)">${m.kind === 'gauge' ? html`<span class="muted">—</span>` : m.periodEnd}</td>
  </tr>`;
  })}</tbody>
</table></div>`;
}

/** A meter's share used, as the bar's text: a bar at 0.02% looks empty. */
function share(usage: number, limit: number): string {
  if (limit <= 0) return usage > 0 ? '—' : '0%';
  const percent = (usage / limit) * 100;
  if (percent === 0) return '0%';
  if (percent < 0.1) return '<0.1%';
  // Rounded down: 100% only once the limit is reached, while the Remaining column has units left.
  return percent < 10 ? `${(Math.floor(percent * 10) / 10).toFixed(1)}%` : `${Math.floor(percent)}%`;
}

/** What a meter counts in, where its name does not say (`rur`), and whether it is a level (a gauge) rather than a total. */
function meterNote(name: string, meter: AccountUsage['meters'][string]): Html {
  const notes = [...(meter.unit !== undefined && meter.unit !== name ? [meter.unit] : []), ...(meter.kind === 'gauge' ? ['current count'] : [])];
  return notes.length === 0 ? html`` : html` <span class="muted">(${notes.join(', ')})</span>`;
}

/**
 * API access is on, but requests may still be refused for now: the rate-limit blocks in
 * force on the account's keys (its own, or the account's). Nothing when none is, or when
 * the counters cannot say (Redis away).
 */
function blockNotice({ usable: keys, blocked }: KeyBlocks, now: number): Html {
  if (!blocked || blocked.size === 0) return html``;
  const which = blocked.size === keys.length ? (keys.length === 1 ? 'its key is' : 'every key is') : `${blocked.size} of ${keys.length} keys ${blocked.size === 1 ? 'is' : 'are'}`;
  return html`${blockedBadge(Math.min(...blocked.values()), now)} <span class="muted">— ${which} refused for exceeding the rate limit repeatedly</span>`;
}

/**
 * API access is on, but requests that spend a meter with nothing left (and no overage)
 * are refused until it renews: said where access is, not only by a full bar below.
 */
function usedUpNotice(usage: AccountUsage): Html {
  const usedUp = Object.entries(usage.meters).filter(([, m]) => m.kind === 'consumed' && !m.overageAllowed && m.remaining <= 0);
  return html`${usedUp.map(([name, m]) => html`<span class="related"><span class="badge off">${m.unit ?? name} used up</span> — requests that spend ${m.unit ?? name} are refused until they renew on ${m.periodEnd}</span>`)}`;
}

/** The account's usable keys and their blocks, for a page that has not read them already (the member's usage page). */
async function keyBlocks(dash: Dashboard, account: AccountRecord, now: number): Promise<KeyBlocks> {
  const usable = (await dash.rt.store.listKeys({ accountId: account.id })).filter((key) => isUsable(key, now));
  return { usable, blocked: await blockedUntilOf(dash.rt, usable) };
}

/** Why API access is off, in the member's words. */
export function apiOffReason(dash: Dashboard, account: AccountRecord, planExpired: boolean): string {
  const plan = dash.rt.config.plans[account.planId];
  if (plan && !plan.apiAccess) return `the ${plan.name ?? account.planId} plan does not include API access`;
  if (planExpired) return 'the plan has expired';
  if (!account.apiAccess) return 'it was turned off by the operator';
  return 'the plan is not available';
}
