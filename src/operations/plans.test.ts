import { describe, expect, it } from 'vitest';
import { parseConfigObject } from '../config/load.js';
import { planOut, windowText } from './plans.js';

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
