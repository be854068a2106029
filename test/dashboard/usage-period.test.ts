/**
 * The usage page says its current period in whole days (YYYY-MM-DD, UTC), as its meters'
 * Resets (UTC) column and every other page write a day, not "Dec 1 – Dec 6" without a
 * year or a time zone beside a reset date written 2027-01-01.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isoDay } from '../../src/meters/period.js';
import { tempDir } from '../support/temp.js';
import { MEMBER, newAccount, startDashboard, type DashboardFixture } from './support.js';
import { addMember, Visitor } from './visitor.js';

describe('dashboard: the usage page’s current period', () => {
  const dir = tempDir('keygate-dashboard-usage-period');
  let fixture: DashboardFixture;
  let member: Visitor;

  beforeAll(async () => {
    fixture = await startDashboard(dir);
    const accountId = await newAccount(fixture, 'Acme Analytics');
    await addMember(fixture.keygate.runtime, MEMBER, accountId, 'member');
    member = await Visitor.signedIn(fixture.dashboardUrl, MEMBER, '/keys');
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('gives the period from its first day to today as YYYY-MM-DD, labelled UTC as the Resets (UTC) column is', async () => {
    const page = await member.get('/usage');
    expect(page.status).toBe(200);
    const today = isoDay(fixture.clock.now());
    const period = /<dt>Current period \(UTC\)<\/dt><dd>(\d{4}-\d{2}-\d{2}) – (\d{4}-\d{2}-\d{2}) <span class="muted">\(so far\)<\/span>/.exec(page.html);
    expect(period?.slice(1)).toEqual([`${today.slice(0, 8)}01`, today]);
    // The meters' reset day is written the same way.
    expect(page.html).toMatch(/<td data-label="Resets \(UTC\)">\d{4}-\d{2}-\d{2}<\/td>/);
  });
});
