/**
 * The operator's Plans table (on the accounts page) says each meter as the rest of the
 * dashboard words a limit: the number, its unit and its period ("1,000 units a month"),
 * not the meter's name and a bare number ("units: 1000").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { startDashboard, type DashboardFixture } from './support.js';
import { signedInOperator, type Visitor } from './visitor.js';

describe('dashboard: the Plans table', () => {
  const dir = tempDir('keygate-dashboard-plans-table');
  let fixture: DashboardFixture;
  let operator: Visitor;

  beforeAll(async () => {
    fixture = await startDashboard(dir, (profile) => ({
      ...profile,
      plans: {
        ...profile.plans,
        // Credits renewed on a billing day, past which requests go on as overage, and a level the upstream reports.
        data: { name: 'Data', meters: { units: { limit: 500_000, unit: 'credits', period: { billingDay: 15 }, overage: true }, keywords: { kind: 'gauge', limit: 2000 } } },
      },
    }));
    operator = await signedInOperator(fixture, '/accounts');
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('shows each meter’s limit in its unit and over its period', async () => {
    const page = await operator.get('/accounts');
    const plans = page.html.slice(page.html.indexOf('<h2 id="plans">'));
    const rows = [...plans.matchAll(/<td data-label="Plan"><span><strong>([^<]*)<\/strong>.*?<td data-label="Meters">(.*?)<\/td>/gs)].map(([, plan, meters]) => [plan, meters]);
    expect(rows).toEqual([
      ['Pro', '1,000 units a month'],
      ['Free', '<span class="muted">none</span>'],
      ['Data', 'units: 500,000 credits a month, renewed on the 15th (overage allowed); at most 2,000 keywords'],
    ]);
  });
});
