/**
 * A plan of the profile as the admin API and `keygate plans list --json` give it: every
 * setting, durations as the profile writes them ("1s", "10m"), each rate-limit window with
 * the policy name the RateLimit headers use.
 */
import type { Plan } from '../config/schema.js';
import { formatDuration } from '../config/duration.js';
import { policyName, windowNames } from '../limits/rate-limits.js';

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
