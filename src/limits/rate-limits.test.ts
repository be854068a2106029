import { describe, expect, it } from 'vitest';
import { parseConfigObject } from '../config/load.js';
import { createRateLimitPlanner, windowsFor } from './rate-limits.js';
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
