import { describe, expect, it } from 'vitest';
import { meterAllowance, relative } from './format.js';

const MINUTE = 60_000;

describe('relative times', () => {
  const now = Date.UTC(2026, 11, 2, 21, 0, 0);

  it('say "just now" and "in under a minute" within a minute, not "1 min"', () => {
    expect(relative(now - 5_000, now)).toBe('just now');
    expect(relative(now + 20_000, now)).toBe('in under a minute');
  });

  it('count minutes, then hours, then days', () => {
    expect(relative(now - 10 * MINUTE, now)).toBe('10 min ago');
    expect(relative(now + 3 * 60 * MINUTE, now)).toBe('in 3 h');
    expect(relative(now - 5 * 24 * 60 * MINUTE, now)).toBe('5 days ago');
  });
});

describe('a meter’s allowance', () => {
  it('names the billing day it is renewed on as a date is said (1st, 2nd, 3rd, 11th to 13th, 21st)', () => {
    const on = (billingDay: number) => meterAllowance('units', { kind: 'consumed', limit: 5, period: { billingDay }, unit: undefined });
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 28].map(on).map((text) => text.replace('5 units a month, renewed on the ', ''))).toEqual(['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '23rd', '28th']);
  });
});
