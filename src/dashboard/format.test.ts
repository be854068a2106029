import { describe, expect, it } from 'vitest';
import type { Plan } from '../config/schema.js';
import { profileNames, relative, sentence } from './format.js';

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

  it('keeps the names it is given as written where the message repeats them unquoted, and curls its own words around them', () => {
    const names = ["o'brien-pro", "o'brien", "customer's:read", "a.b's(c)"];
    expect(sentence("the o'brien-pro plan allows 1 key per account; the plan's limit", names)).toBe("The o'brien-pro plan allows 1 key per account; the plan’s limit.");
    expect(sentence("scope x not allowed; allowed: customer's:read, a.b's(c)", names)).toBe("Scope x not allowed; allowed: customer's:read, a.b's(c).");
    // A whole name only: not one inside a longer word.
    expect(sentence("the xo'brien plan's keys", names)).toBe('The xo’brien plan’s keys.');
  });

  it('takes from a profile the names with a straight apostrophe: plan ids and names, scopes, meters and units', () => {
    const plan = (fields: Partial<Plan>) => ({ apiAccess: true, rateLimits: [], meters: {}, ...fields }) as Plan;
    const plans = {
      pro: plan({ name: "o'brien-pro", scopes: ["plan's:read"], meters: { units: { unit: "o'clocks" } as Plan['meters'][string] } }),
      free: plan({ name: 'Free' }),
    };
    expect(profileNames({ plans, scopes: ["customer's:read", 'projects:read'] }).sort()).toEqual(["customer's:read", "o'brien-pro", "o'clocks", "plan's:read"]);
  });
});
