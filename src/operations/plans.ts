/**
 * A plan of the profile as the admin API and `keygate plans list --json` give it: every
 * setting, durations as the profile writes them ("1s", "10m"), each rate-limit window with
 * the policy name the RateLimit headers use.
 */
import type { Meter, Plan } from '../config/schema.js';
import { formatDuration } from '../config/duration.js';
import { policyName, windowNames } from '../limits/rate-limits.js';
import { ordinal } from './errors.js';

/** Amounts as the dashboard writes them: "10,000", "0.5". */
const AMOUNT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

export function planOut(id: string, plan: Plan) {
  const { block } = plan;
  const names = windowNames(plan.rateLimits.map((rl) => ({ name: policyName(rl), scope: rl.scope })));
  return {
    id,
    name: plan.name ?? id,
    apiAccess: plan.apiAccess,
    maxKeys: plan.maxKeys ?? null,
    /** Scopes keys on this plan may carry; null: any of the profile's. */
    scopes: plan.scopes ?? null,
    rateLimits: plan.rateLimits.map((rl, i) => ({ name: names[i] as string, limit: rl.limit, window: formatDuration(rl.window), scope: rl.scope })),
    block: block
      ? { after: block.after, within: formatDuration(block.within), duration: formatDuration(block.duration), factor: block.factor, max: formatDuration(block.max), forgetAfter: formatDuration(block.forgetAfter), scope: block.scope }
      : null,
    meters: Object.fromEntries(
      Object.entries(plan.meters).map(([meter, m]) => [meter, { kind: m.kind, limit: m.limit, period: m.period, overage: m.overage, admit: m.admit, unit: m.unit ?? null }]),
    ),
  };
}

export type PlanOut = ReturnType<typeof planOut>;

/** A rate-limit window for people: "20-per-1s", "burst (20-per-1s)", "1000-per-1h per account". */
export function windowText(rl: PlanOut['rateLimits'][number]): string {
  const plain = `${rl.limit}-per-${rl.window}${rl.scope === 'account' ? ' per account' : ''}`;
  return rl.name === `${rl.limit}-per-${rl.window}` ? plain : `${rl.name} (${plain})`;
}

/**
 * A block policy for people: "3 in 1m → 10m ×2 (max 24h, forgotten after 24h), per key";
 * one that does not escalate (factor 1): "3 in 1m → 10m, per account".
 */
export function blockText(block: NonNullable<PlanOut['block']>): string {
  const escalation = block.factor === 1 ? '' : ` ×${block.factor} (max ${block.max}, forgotten after ${block.forgetAfter})`;
  return `${block.after} in ${block.within} → ${block.duration}${escalation}, per ${block.scope}`;
}

/**
 * A plan's meter for people, as the dashboard's Plans table and `keygate plans list` say
 * it: its limit, in its unit, over its period. "10,000 credits a month" (a calendar month,
 * UTC); "500 credits a month, renewed on the 15th" (a billing day); a gauge, a level that
 * is never renewed: "at most 2,000 keywords". A unit named otherwise than its meter is
 * said beside the meter's name ("units: 10,000 credits a month"), as the usage page's
 * meter table notes it.
 */
export function meterAllowance(name: string, meter: Pick<Meter, 'kind' | 'limit' | 'period'> & { unit?: string | null | undefined }): string {
  const unit = meter.unit ?? name;
  const amount = `${AMOUNT.format(meter.limit)} ${unit}`;
  const allowance = meter.kind === 'gauge' ? `at most ${amount}` : meter.period === 'month' ? `${amount} a month` : `${amount} a month, renewed on the ${ordinal(meter.period.billingDay)}`;
  return unit === name ? allowance : `${name}: ${allowance}`;
}
