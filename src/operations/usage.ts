/** An account's usage: plan, API access, and every meter's usage, limit and remaining. */
import type { Runtime } from '../runtime.js';
import type { AccountRecord, GaugeRow, KeyRecord, UsageDailyRow } from '../store/store.js';
import type { Plan } from '../config/schema.js';
import { OperationError } from './errors.js';
import { didYouMean } from '../config/closest-name.js';
import { periodBounds, isoDay } from '../meters/period.js';
import { MAX_REPORTED, overageAllowed } from '../meters/cost.js';
import { apiEnabledOf, getAccount, planEnded } from './accounts.js';
import { DAY_MS } from '../config/duration.js';
import { effectivePlan } from '../limits/overrides.js';

export interface MeterUsage {
  kind: 'consumed' | 'gauge';
  unit: string | undefined;
  usage: number;
  limit: number;
  remaining: number;
  /** Usage past the limit (only possible with overage on). */
  overage: number;
  overageAllowed: boolean;
  periodStart: string;
  /** First day of the next period. */
  periodEnd: string;
}

/** A key's admitted requests in the current period (forwarded, or answered by a built-in). */
export interface KeyRequests {
  keyId: string;
  /** The key's name and hint; null for a key the store no longer has. */
  name: string | null;
  hint: string | null;
  requests: number;
  lastUsedAt: number | null;
  revoked: boolean;
}

export interface AccountUsage {
  account: AccountRecord;
  planId: string;
  planName: string;
  apiEnabled: boolean;
  planExpired: boolean;
  meters: Record<string, MeterUsage>;
  /** The first day of the current period: the plan's first consumed meter's, else the calendar month's. */
  periodStart: string;
  /** With `options.keys`: the account's keys by requests in the current period, most first. */
  keys?: KeyRequests[];
}

/**
 * The meter that sums up an account's usage in one figure (the operator's list of
 * accounts): its plan's first consumed meter, else its first gauge.
 */
export function mainMeterOf(plan: Plan | undefined): string | undefined {
  const meters = Object.entries(plan?.meters ?? {});
  return (meters.find(([, meter]) => meter.kind === 'consumed') ?? meters[0])?.[0];
}

/**
 * `options.meters`: only these of the plan's meters (a list of many accounts needs one
 * each); default, all. `options.keys`: with each key's requests in the current period
 * (read from the daily counters, so not for a built-in answering on the request path).
 */
export async function accountUsage(rt: Runtime, accountOrId: string | AccountRecord, options: { meters?: readonly string[]; keys: true }): Promise<AccountUsage & { keys: KeyRequests[] }>;
export async function accountUsage(rt: Runtime, accountOrId: string | AccountRecord, options?: { meters?: readonly string[]; keys?: boolean }): Promise<AccountUsage>;
export async function accountUsage(rt: Runtime, accountOrId: string | AccountRecord, options: { meters?: readonly string[]; keys?: boolean } = {}): Promise<AccountUsage> {
  const account = typeof accountOrId === 'string' ? await getAccount(rt, accountOrId) : accountOrId;
  const now = rt.clock();
  // With the account's own meter limits in place of the plan's (limits/overrides.ts).
  const configured = rt.config.plans[account.planId];
  const plan = configured && effectivePlan(configured, account.limits);
  const planExpired = planEnded(account, now);
  const meters: Record<string, MeterUsage> = {};
  const chosen = Object.entries(plan?.meters ?? {}).filter(([name]) => options.meters?.includes(name) ?? true);
  // Stored levels, then the ones reported since the last flush: the later of the two.
  // Read only where a gauge is asked for.
  const gauges = new Map<string, GaugeRow>();
  if (chosen.some(([, meter]) => meter.kind === 'gauge')) {
    for (const g of await rt.store.listGauges(account.id)) gauges.set(g.meter, g);
    for (const pending of rt.usage.pendingGauges(account.id)) {
      const stored = gauges.get(pending.meter)?.updatedAt ?? -Infinity;
      // As the store will keep it (Store.setGauge): a stored time past now is a clock ahead.
      if (stored <= pending.updatedAt || stored > now) gauges.set(pending.meter, pending);
    }
  }
  for (const [name, meter] of chosen) {
    const bounds = periodBounds(meter.period, now);
    const usage =
      meter.kind === 'gauge' ? (gauges.get(name)?.value ?? 0) : (await rt.counters.meterBalance(account.id, name, bounds.start)).used;
    meters[name] = {
      kind: meter.kind,
      unit: meter.unit,
      usage: round(usage),
      limit: meter.limit,
      remaining: round(Math.max(0, meter.limit - usage)),
      overage: round(Math.max(0, usage - meter.limit)),
      overageAllowed: plan ? overageAllowed(plan, name, account) : false,
      periodStart: bounds.start,
      periodEnd: isoDay(bounds.endsAt),
    };
  }
  const consumed = Object.values(plan?.meters ?? {}).find((meter) => meter.kind === 'consumed');
  const periodStart = periodBounds(consumed?.period ?? 'month', now).start;
  return {
    account,
    planId: account.planId,
    planName: plan?.name ?? account.planId,
    apiEnabled: apiEnabledOf(account, rt.config.plans, now),
    planExpired,
    meters,
    periodStart,
    ...(options.keys ? { keys: await keyRequests(rt, account.id, periodStart, isoDay(now)) } : {}),
  };
}

/**
 * An account's keys by admitted requests from `fromDay` to `toDay`, most first (then by
 * name): those
 * counted (a revoked key's too, marked), and its other keys not revoked, at 0. Counts
 * not yet written to the store are added in.
 */
async function keyRequests(rt: Runtime, accountId: string, fromDay: string, toDay: string): Promise<KeyRequests[]> {
  // Rows a write has taken and not yet stored are in neither the store nor what is
  // pending: read when no write is under way, and again if one started meanwhile.
  let stored: UsageDailyRow[] = [];
  let records: KeyRecord[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    await rt.usage.idle();
    const started = rt.usage.flushesStarted;
    stored = await rt.store.listUsageDaily(accountId, fromDay, toDay);
    records = await rt.store.listKeys({ accountId });
    if (rt.usage.flushesStarted === started) break;
  }
  const counted = new Map<string, number>();
  for (const row of [...stored.filter((row) => row.metric === 'key_requests'), ...rt.usage.pendingKeyRequests(accountId, fromDay, toDay)]) counted.set(row.label, (counted.get(row.label) ?? 0) + row.value);
  const lastUse = (key: KeyRecord): number | null => {
    const pending = rt.usage.pendingLastUse(key.id);
    return pending === undefined ? key.lastUsedAt : key.lastUsedAt === null ? pending : Math.max(pending, key.lastUsedAt);
  };
  const keys = new Map(records.map((key) => [key.id, key]));
  const ids = new Set([...counted.keys(), ...[...keys.values()].filter((key) => key.revokedAt === null).map((key) => key.id)]);
  return [...ids]
    .map((keyId) => {
      const key = keys.get(keyId);
      return { keyId, name: key?.name ?? null, hint: key?.hint ?? null, requests: counted.get(keyId) ?? 0, lastUsedAt: key === undefined ? null : lastUse(key), revoked: key !== undefined && key.revokedAt !== null };
    })
    .sort((a, b) => b.requests - a.requests || (a.name ?? '').localeCompare(b.name ?? '') || a.keyId.localeCompare(b.keyId));
}

/**
 * An account's usage as the admin API gives it (GET /v1/accounts/{id}/usage) and the CLI
 * prints it with --json: the account by id, with its requests by key (`options.keys`). (A meter's `unit` is left out of the JSON
 * where the plan names none: JSON has no undefined.)
 */
export function usageOut(usage: AccountUsage & { keys: KeyRequests[] }) {
  // `unit` as /v1/plans gives it: null where the plan names none.
  const meters = Object.fromEntries(Object.entries(usage.meters).map(([name, meter]) => [name, { ...meter, unit: meter.unit ?? null }]));
  const keys = usage.keys.map((key) => ({ ...key, lastUsedAt: key.lastUsedAt === null ? null : new Date(key.lastUsedAt).toISOString() }));
  return { accountId: usage.account.id, planId: usage.planId, planName: usage.planName, apiEnabled: usage.apiEnabled, planExpired: usage.planExpired, meters, periodStart: usage.periodStart, keys };
}

/** The highest gauge level: what an upstream's header may report too. */
const MAX_GAUGE = MAX_REPORTED;

/** Days of daily usage answered when no range is given. */
const DEFAULT_USAGE_DAYS = 30;

/** One day's counter: requests by status class, denials by reason, units by meter. */
export type DailyUsage = { day: string; metric: string; label: string; value: number };

/**
 * An account's daily counters from `from` to `to` (ISO days, both included); without
 * `to`, to today, and without `from`, from 30 days before `to`. The admin API's
 * /usage/daily and the CLI's `accounts usage --daily` answer with it.
 */
export async function dailyUsage(rt: Runtime, accountId: string, range: { from?: string | undefined; to?: string | undefined } = {}): Promise<DailyUsage[]> {
  await getAccount(rt, accountId);
  const to = range.to ?? isoDay(rt.clock());
  // Counted back from `to`: a `to` given alone is never before a `from` the caller did not give.
  const from = range.from ?? isoDay(Date.parse(to) - DEFAULT_USAGE_DAYS * DAY_MS);
  if (from > to) throw new OperationError('invalid', `from (${from}) is after to (${to})`);
  return (await rt.store.listUsageDaily(accountId, from, to)).map(({ day, metric, label, value }) => ({ day, metric, label, value }));
}

/** Sets the level of a gauge meter (keywords tracked, data rows) of an account. */
export async function setGauge(rt: Runtime, accountId: string, meter: string, value: number): Promise<void> {
  const account = await getAccount(rt, accountId);
  if (!Number.isFinite(value) || value < 0 || value > MAX_GAUGE) throw new OperationError('invalid', `a gauge level is a number from 0 to ${MAX_GAUGE} (15 digits, as an upstream's header may report)`);
  const meters = rt.config.plans[account.planId]?.meters ?? {};
  if (meters[meter]?.kind !== 'gauge') {
    const gauges = Object.keys(meters).filter((name) => meters[name]?.kind === 'gauge');
    const listed = gauges.length > 0 ? `its gauges: ${gauges.join(', ')}` : 'the plan has no gauges';
    if (meters[meter]) throw new OperationError('invalid', `"${meter}" is a consumed meter of the ${account.planId} plan, charged by requests: only a gauge is set (${listed})`);
    // A name near one of its gauges is offered (a gauge's name, not what was typed).
    const near = didYouMean(meter, gauges);
    throw new OperationError('invalid', `the ${account.planId} plan has no gauge "${meter}"${near} (${listed})`, undefined, { field: 'meter', message: `the ${account.planId} plan has no such gauge${near} (${listed})` });
  }
  // The operator's level is the latest word, whatever time another host stamped the stored one with.
  const now = rt.clock();
  await rt.store.setGauge({ accountId: account.id, meter, value, updatedAt: now }, now);
}

/** Avoids 0.30000000000000004 in usage answers (and forecasts: usage figures are given to 6 decimal places). */
export function round(value: number): number {
  // A whole number stays as it is, and so does one too large to hold 6 decimal places
  // anyway: from 2^53 / 1e6 (about 9e9) on, the rounding took 77408243217223 to ….98.
  if (Number.isInteger(value) || Math.abs(value) * 1e6 >= Number.MAX_SAFE_INTEGER) return value;
  return Math.round(value * 1e6) / 1e6;
}
