import { describe, expect, it } from 'vitest';
import { relative, sentence } from './format.js';

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

describe('an operation message on a page (sentence)', () => {
  it('starts with a capital, ends with a full stop and curls apostrophes, as the dashboard’s own text', () => {
    expect(sentence("this API's keys do not expire: a key works until it is revoked")).toBe('This API’s keys do not expire: a key works until it is revoked.');
  });

  it('keeps what it repeats as given: a quoted name, a quoted id, an email address', () => {
    expect(sentence("“Bob's key” rk_live_…x4Qz was revoked; the plan's limit")).toBe('“Bob\'s key” rk_live_…x4Qz was revoked; the plan’s limit.');
    expect(sentence('no account "acc_o\'neil" here')).toBe('No account "acc_o\'neil" here.');
    expect(sentence("o'brien@b.test is already a member of “Acme's”")).toBe("o'brien@b.test is already a member of “Acme's”.");
  });
});
