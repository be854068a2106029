/**
 * Account names need not be unique: where two share one, the operator's accounts list and
 * the audit log's account filter tell them apart by their ids (each otherwise shows the
 * name alone).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp.js';
import { newAccount, startDashboard, type DashboardFixture } from './support.js';
import { signedInOperator, type Visitor } from './visitor.js';

describe('dashboard: two accounts of one name', () => {
  const dir = tempDir('keygate-dashboard-same-names');
  let fixture: DashboardFixture;
  let operator: Visitor;
  let first: string;
  let second: string;

  beforeAll(async () => {
    fixture = await startDashboard(dir);
    first = await newAccount(fixture, 'Acme Corp');
    second = await newAccount(fixture, 'Acme Corp');
    await newAccount(fixture, 'Globex');
    operator = await signedInOperator(fixture, '/accounts');
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('lists each with its id beside the name, and the other accounts by name alone', async () => {
    const page = await operator.get('/accounts');
    const cells = [...page.html.matchAll(/<td data-label="Account">(.*?)<\/td>/g)].map(([, cell]) => cell);
    // Created within one millisecond, the three may be listed in any order.
    expect(cells).toHaveLength(3);
    expect(cells).toEqual(
      expect.arrayContaining([
        `<a class="account-name" href="/accounts/${first}">Acme Corp</a> <code>${first}</code>`,
        `<a class="account-name" href="/accounts/${second}">Acme Corp</a> <code>${second}</code>`,
        expect.stringMatching(/^<a class="account-name" href="\/accounts\/acc_\w+">Globex<\/a>$/),
      ]),
    );
  });

  it("offers each in the audit log's account filter with its id", async () => {
    const page = await operator.get('/audit');
    const options = [...page.html.matchAll(/<option value="(acc_\w+)"[^>]*>([^<]*)<\/option>/g)].map(([, , text]) => text);
    expect(options.sort()).toEqual([`Acme Corp (${first})`, `Acme Corp (${second})`, 'Globex'].sort());
  });
});
