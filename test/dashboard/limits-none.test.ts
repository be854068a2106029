/**
 * `none` in the Limits form's rate-limit windows is the operator's statement that the
 * account has no plan-level window, saved as its own also where its plan has none today:
 * when the profile later gives the plan windows, the account still has none of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { newAccount, startDashboard, type DashboardFixture } from './support.js';
import { signedInOperator, type Visitor } from './visitor.js';

describe('dashboard: an account’s own “none” on a plan without windows', () => {
  const dir = tempDir('keygate-dashboard-limits-none');
  let fixture: DashboardFixture;
  let operator: Visitor;
  let accountId: string;

  /** The Limits table's Rate limits row, cell by cell, as text. */
  const rateLimitsRow = async (): Promise<string[]> => {
    const page = await operator.get(`/accounts/${accountId}`);
    const row = /<td data-label="Limit"><strong>Rate limits<\/strong><\/td>([^]*?)<\/tr>/.exec(page.html)?.[1] ?? '';
    return [...row.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map(([, cell]) => (cell ?? '').replace(/<[^>]+>/g, '').trim());
  };

  beforeAll(async () => {
    // The Pro plan of the dashboard's profile has no rate-limit window.
    fixture = await startDashboard(dir);
    accountId = await newAccount(fixture, 'Acme Analytics');
    operator = await signedInOperator(fixture, `/accounts/${accountId}`);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('saves none as the account’s own, and keeps it when the plan gains windows', async () => {
    expect(await rateLimitsRow()).toEqual(['none', 'the plan’s', 'none']);
    expect((await operator.post(`/accounts/${accountId}/limits`, { rateLimits: 'none', 'meter.units': '' })).status).toBe(303);
    const saved = await operator.get(`/accounts/${accountId}`);
    expect(/<div class="notice success" role="status"><p>([^<]*)<\/p>/.exec(saved.html)?.[1]).toBe('The limits of “Acme Analytics” are saved. In effect from its keys’ next request: no rate-limit window (its own); units 1,000 (the plan’s).');
    expect(await rateLimitsRow()).toEqual(['none', 'none', 'none Own']);

    const rt = fixture.keygate.runtime;
    const pro = rt.config.plans.pro;
    if (!pro) throw new Error('the profile has no pro plan');
    expect(await rt.reload({ config: { ...rt.config, plans: { ...rt.config.plans, pro: { ...pro, rateLimits: [{ limit: 10, window: 1000, scope: 'key' }] } } }, file: 'inline', dir })).toEqual(['plans']);
    expect(await rateLimitsRow()).toEqual(['10-per-1s', 'none', 'none Own']);
  });
});
