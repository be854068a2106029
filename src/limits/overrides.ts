/**
 * An account's own limits in place of its plan's (the operator's "custom rate limits"):
 * its rate-limit windows replace the plan's own (a route's extra windows stay), and a
 * meter's limit replaces the plan's for that meter. Everything else is the plan's.
 *
 * Resolved once per cached key (the pipeline's judgement of a key and route), never per
 * request: an account change drops its keys from every process's cache, and the next
 * request judges them afresh with the new limits.
 *
 * @example
 *   effectivePlan(plans.units_1m, { rateLimits: [{ limit: 50, window: 1000, scope: 'key' }], meters: { units: 5e6 } })
 *   // → units_1m with 50 requests a second per key and 5,000,000 units a month
 */
import type { Plan } from '../config/schema.js';
import type { LimitOverrides } from '../store/store.js';
import { formatDuration } from '../config/duration.js';
import { policyName, windowNames } from './rate-limits.js';

/** Whether the overrides change anything (none, or both parts empty: the plan's limits). */
export function overridesAnything(limits: LimitOverrides | undefined): limits is LimitOverrides {
  return limits !== undefined && (limits.rateLimits !== null || Object.keys(limits.meters).length > 0);
}

/**
 * The plan an account is judged and reported by: its plan, with its overrides in place.
 * Without overrides, the plan itself (the same object). A meter override for a meter the
 * plan does not have (the profile changed since) is ignored, as is a plan-less account's.
 */
export function effectivePlan(plan: Plan, limits: LimitOverrides | undefined): Plan {
  if (!overridesAnything(limits)) return plan;
  let meters = plan.meters;
  const overridden = Object.entries(limits.meters).filter(([name]) => plan.meters[name] !== undefined);
  if (overridden.length > 0) {
    // Without a prototype, as the profile's meters (schema.ts byName).
    meters = Object.assign(Object.create(null) as Plan['meters'], plan.meters);
    for (const [name, limit] of overridden) meters[name] = { ...(plan.meters[name] as Plan['meters'][string]), limit };
  }
  return { ...plan, rateLimits: limits.rateLimits ?? plan.rateLimits, meters };
}

/**
 * What the rate-limit planner keys an account's windows by: the plan's id, or for an
 * account with its own windows the plan's id and those windows. Accounts with the same
 * windows share one entry; a changed window is another entry (its limits and names),
 * whose counters are still those of the same length, scope and place (see `counterIds`).
 */
export function rateLimitPlanKey(planId: string, limits: LimitOverrides | undefined): string {
  if (limits?.rateLimits == null) return planId;
  // A NUL cannot be in a plan id (schema.ts identifier): no plan's own key is ever this.
  return `${planId}\u0000${limits.rateLimits.map((rl) => `${rl.scope}:${rl.limit}:${rl.window}:${rl.name ?? ''}`).join(',')}`;
}

/** A window as the admin API gives it (as /v1/plans does): its name, limit, window ("1s") and scope. */
export function windowsOut(windows: Plan['rateLimits']) {
  const names = windowNames(windows.map((rl) => ({ name: policyName(rl), scope: rl.scope })));
  return windows.map((rl, i) => ({ name: names[i] as string, limit: rl.limit, window: formatDuration(rl.window), scope: rl.scope }));
}

/** The overrides as the admin API and `--json` give them: every part, null where the plan's applies. */
export function overridesOut(limits: LimitOverrides | undefined) {
  return {
    rateLimits: limits?.rateLimits ? windowsOut(limits.rateLimits) : null,
    meters: { ...(limits?.meters ?? {}) },
  };
}

/** The limits an account has in effect: its plan's windows (or its own), and each meter's limit. */
export function effectiveLimitsOut(plan: Plan) {
  return {
    rateLimits: windowsOut(plan.rateLimits),
    meters: Object.fromEntries(Object.entries(plan.meters).map(([name, meter]) => [name, meter.limit])),
  };
}

/** The CLI's window syntax, as keygate names windows: `100-per-1s` (per key), `5000-per-1h-per-account`. */
export const WINDOW_SPEC = /^(\d+)-per-(\d+(?:\.\d+)?(?:ms|s|m|h|d))(?:-per-(key|account))?$/;
