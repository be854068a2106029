import { describe, expect, it } from 'vitest';
import { renderTemplate, templateProblems } from './template.js';

const context = {
  account: { id: 'acc_1', apiEnabled: false, planExpiresAt: null },
  meters: { units: { usage: 8500, limit: 12000, remaining: 3500, periodEnd: '2026-12-01' } },
};

describe('builtin templates', () => {
  it('keeps the type of a whole-string placeholder and interpolates text ones', () => {
    expect(renderTemplate({ data: { id: '{{account.id}}', apiEnabled: '{{account.apiEnabled}}', units: '{{meters.units}}', label: 'acct-{{account.id}}' } }, context)).toEqual({
      data: { id: 'acc_1', apiEnabled: false, units: context.meters.units, label: 'acct-acc_1' },
    });
  });

  it('formats dates with a filter', () => {
    expect(renderTemplate({ a: '{{meters.units.periodEnd | datetime}}', b: 'until {{meters.units.periodEnd|date}}', c: '{{meters.units.periodEnd | unix}}' }, context)).toEqual({
      a: '2026-12-01 00:00:00',
      b: 'until 2026-12-01',
      c: 1796083200,
    });
  });

  it('renders unknown paths as null (whole) or empty (inside) and copies other values', () => {
    expect(renderTemplate({ x: '{{nope.nothing}}', y: 'a{{nope}}b', n: 3, list: ['{{account.id}}'] }, context)).toEqual({ x: null, y: 'ab', n: 3, list: ['acc_1'] });
  });

  it('renders a meter the account\'s plan lacks (another plan has it) as docs/quotas.md says: null alone, nothing inside text', () => {
    expect(renderTemplate({ keywords: '{{meters.keywords}}', left: '{{meters.keywords.remaining}}', text: '{{meters.keywords.remaining}} left' }, context)).toEqual({ keywords: null, left: null, text: ' left' });
  });

  it('names every placeholder that can never render as meant', () => {
    const template = { a: '{{account.id}}', b: ['{{meters.units.remaining | date}}'], c: '{{account.nmae}}', d: '{{meters.credits.limit}}', e: '{{now | hours}}', f: '{{acount.id}}', g: '{{meters.units.left}}' };
    expect(templateProblems(template, new Set(['units']))).toEqual([
      '"{{account.nmae}}": "account" has id, name, apiEnabled, status, planId, planName, planExpiresAt, planExpired, createdAt',
      '"{{meters.credits.limit}}": no plan defines meter "credits"',
      '"{{now | hours}}": unknown filter "hours"; filters are date, datetime, iso, unix',
      'unknown placeholder "{{acount.id}}"; placeholders start with account, plan, key, meters, now',
      '"{{meters.units.left}}": a meter has kind, unit, usage, limit, remaining, overage, overageAllowed, periodStart, periodEnd',
    ]);
  });
});
