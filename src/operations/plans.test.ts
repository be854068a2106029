import { describe, expect, it } from 'vitest';
import { parseConfigObject } from '../config/load.js';
import { meterAllowance, planOut, windowText } from './plans.js';

describe('a plan for people and scripts', () => {
  it('says what a named window is, and which windows an account shares', () => {
    const config = parseConfigObject({
      upstream: { url: 'http://127.0.0.1:1' },
      plans: { pro: { rateLimits: [{ name: 'burst', limit: 20, window: '1s' }, { limit: 50, window: 2000 }, { limit: 1000, window: '1h', scope: 'account' }] } },
    });
    const plan = planOut('pro', config.plans.pro!);
    expect(plan.rateLimits.map(windowText)).toEqual(['burst (20-per-1s)', '50-per-2s', '1000-per-1h per account']);
  });
});

describe('a meter’s allowance', () => {
  it('names the billing day it is renewed on as a date is said (1st, 2nd, 3rd, 11th to 13th, 21st)', () => {
    const on = (billingDay: number) => meterAllowance('units', { kind: 'consumed', limit: 5, period: { billingDay }, unit: undefined });
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 28].map(on).map((text) => text.replace('5 units a month, renewed on the ', ''))).toEqual(['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '23rd', '28th']);
  });

  it('reads the same from a plan as the admin API gives it (a unit of null: the meter\'s name)', () => {
    const config = parseConfigObject({
      upstream: { url: 'http://127.0.0.1:1' },
      gauges: { keywords: { header: 'X-Keywords' } },
      plans: { pro: { meters: { units: { limit: 10000 }, calls: { limit: 0.5, unit: 'credits' }, keywords: { kind: 'gauge', limit: 2000 } } } },
    });
    const meters = Object.entries(planOut('pro', config.plans.pro!).meters).map(([name, meter]) => meterAllowance(name, meter));
    expect(meters).toEqual(['10,000 units a month', 'calls: 0.5 credits a month', 'at most 2,000 keywords']);
  });
});
