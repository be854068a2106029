import { describe, expect, it } from 'vitest';
import { parseConfigObject } from '../config/load.js';
import { createRateLimitPlanner, MAX_PLANS_KEPT, windowsFor } from './rate-limits.js';
import { effectivePlan, rateLimitPlanKey } from './overrides.js';

/** The windows a key of the `team` plan gets on route `r` of a profile with these windows. */
function windowsOf(plan: { limit: number; window: string; scope?: 'key' | 'account' }[], route: { limit: number; window: string }[] = []) {
  const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, plans: { team: { rateLimits: plan } }, routes: [{ path: '/r', rateLimits: route }] });
  const planner = createRateLimitPlanner();
  return windowsFor(planner.plan('team', config.plans.team!, 'GET /r', config.routes[0]), 'key_a', 'acc_a');
}

describe('rate-limit window ids', () => {
  it('name a window by its subject, length and place, not its limit: a changed limit counts the same admissions', () => {
    expect(windowsOf([{ limit: 10, window: '1s' }]).map((w) => w.id)).toEqual(['k:key_a:w1000:plan']);
    expect(windowsOf([{ limit: 25, window: '1s' }]).map((w) => w.id)).toEqual(['k:key_a:w1000:plan']);
    // Another length is another window.
    expect(windowsOf([{ limit: 10, window: '2s' }]).map((w) => w.id)).toEqual(['k:key_a:w2000:plan']);
  });

  it('tell apart windows of one length: per key and per account, the plan\'s and the route\'s', () => {
    const ids = windowsOf(
      [
        { limit: 10, window: '1s' },
        { limit: 50, window: '1s', scope: 'account' },
      ],
      [{ limit: 5, window: '1s' }],
    ).map((w) => w.id);
    expect(ids).toEqual(['k:key_a:w1000:plan', 'a:acc_a:w1000:plan', 'k:key_a:w1000:GET /r']);
  });

  it('tell apart two windows of one length and scope in an account\'s own list saved before such lists were refused', () => {
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, plans: { team: {} } });
    const saved = { rateLimits: [{ limit: 10, window: 1000, scope: 'key' as const }, { limit: 20, window: 1000, scope: 'key' as const }], meters: {} };
    const planner = createRateLimitPlanner();
    const plan = planner.plan(rateLimitPlanKey('team', saved), effectivePlan(config.plans.team!, saved), 'GET /r', undefined);
    expect(windowsFor(plan, 'key_a', 'acc_a').map((w) => w.id)).toEqual(['k:key_a:w1000:plan', 'k:key_a:w1000#2:plan']);
  });
});

describe('the rate-limit planner', () => {
  it('keeps a bounded number of window sets: keys with windows all different do not grow it without end', () => {
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, plans: { team: { rateLimits: [{ limit: 10, window: '1s' }] } } });
    const team = config.plans.team!;
    const planner = createRateLimitPlanner();
    const first = planner.plan('team', team, 'GET /r', undefined);
    // Asked again, the same set comes back (the counters keep what they derive from it).
    expect(planner.plan('team', team, 'GET /r', undefined)).toBe(first);
    // As many more sets as it keeps, e.g. keys each with a window of its own.
    for (let i = 0; i < MAX_PLANS_KEPT; i++) planner.plan(`team\u0001key:${i + 1}:1000:`, team, 'GET /r', undefined, [{ limit: i + 1, window: 1000, scope: 'key' }]);
    const again = planner.plan('team', team, 'GET /r', undefined);
    // Dropped and built anew, the same windows.
    expect(again).not.toBe(first);
    expect(again.templates).toEqual(first.templates);
    expect(windowsFor(again, 'key_a', 'acc_a').map((w) => w.id)).toEqual(['k:key_a:w1000:plan']);
  });
});
