import { describe, expect, it } from 'vitest';
import { relative } from './format.js';

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
