/**
 * A form sent twice at the same moment (a double click) makes one invitation, one key (a
 * member's, or an operator's for an account) or one account:
 * the second answer says the form was sent already. On PostgreSQL, whose answers leave
 * the event loop free between the two requests' steps (on SQLite each request's reads
 * and writes run to the end before the next is read, so they cannot interleave): the race
 * the dashboard must close is there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresStore } from '../../src/store/postgres/postgres-database.js';
import { createTestDatabase, type TestDatabase } from '../backends/isolation.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { tempDir } from '../support/temp.js';
import { newAccount, OPERATOR, startDashboard, type DashboardFixture } from './support.js';
import { addMember, signedInOperator, Visitor } from './visitor.js';

const available = await serviceAvailable('PostgreSQL', POSTGRES_URL);

describe.skipIf(!available)('dashboard on PostgreSQL: a form sent twice at once (a double click)', () => {
  const dir = tempDir('keygate-dashboard-double-click');
  let database: TestDatabase;
  let fixture: DashboardFixture;
  let operator: Visitor;
  let accountId: string;

  beforeAll(async () => {
    database = await createTestDatabase('double_click');
    const store = openPostgresStore(database.url);
    await store.migrate();
    await store.close();
    fixture = await startDashboard(dir, (profile) => ({ ...profile, store: database.url }));
    accountId = await newAccount(fixture, 'Acme Analytics');
    operator = await signedInOperator(fixture, '/accounts');
  });

  afterAll(async () => {
    await fixture?.close();
    await database?.drop();
  });

  it('makes one invitation, and the second answer says the form was sent already', async () => {
    for (let round = 0; round < 5; round++) {
      const email = `double-${round}@acme.example`;
      const formId = /name="form_id" value="([0-9A-Za-z]{22})"/.exec((await operator.get(`/accounts/${accountId}`)).html)?.[1] as string;
      const fields: [string, string][] = [['email', email], ['form_id', formId]];
      const answers = await Promise.all([operator.post(`/accounts/${accountId}/invite`, fields), operator.post(`/accounts/${accountId}/invite`, fields)]);
      expect(answers.map((answer) => [answer.status, answer.heading]).sort(), email).toEqual([
        [201, `Invitation for ${email}`],
        [409, 'This form was sent already'],
      ]);
      const invited = (await fixture.keygate.runtime.store.listAudit({ accountId, limit: 50 })).filter((e) => e.action === 'member.invited' && e.detail.email === email);
      expect(invited, email).toHaveLength(1);
    }
  });

  it('makes one invitation when the two sends reach two keygate processes (behind a load balancer), and the link shown works', async () => {
    const other = await startDashboard(tempDir('keygate-dashboard-double-click-other'), (profile) => ({ ...profile, store: database.url }));
    try {
      for (let round = 0; round < 5; round++) {
        const email = `two-processes-${round}@acme.example`;
        const formId = /name="form_id" value="([0-9A-Za-z]{22})"/.exec((await operator.get(`/accounts/${accountId}`)).html)?.[1] as string;
        const fields: [string, string][] = [['email', email], ['form_id', formId]];
        const answers = await Promise.all([operator.post(`/accounts/${accountId}/invite`, fields), operator.at(other.dashboardUrl).post(`/accounts/${accountId}/invite`, fields)]);
        expect(answers.map((answer) => [answer.status, answer.heading]).sort(), email).toEqual([
          [201, `Invitation for ${email}`],
          [409, 'This form was sent already'],
        ]);
        const invited = (await fixture.keygate.runtime.store.listAudit({ accountId, limit: 50 })).filter((e) => e.action === 'member.invited' && e.detail.email === email);
        expect(invited, email).toHaveLength(1);
        // The link the first answer showed is the one that works (not replaced by the other process's).
        const link = /id="invite-link" type="text" readonly value="([^"]+)"/.exec(answers.find((answer) => answer.status === 201)?.html ?? '')?.[1] as string;
        const page = await fetch(fixture.dashboardUrl + new URL(link).pathname);
        expect(page.status, email).toBe(200);
      }
    } finally {
      await other.close();
    }
  });

  it("makes one account of a create form sent twice at once, or sent again later (the form names the account's id)", async () => {
    const created = async (name: string) => (await fixture.keygate.runtime.store.listAccounts({ search: name })).filter((a) => a.name === name);
    for (let round = 0; round < 5; round++) {
      const name = `Double ${round}`;
      const formId = /name="form_id" value="([0-9A-Za-z]{22})"/.exec((await operator.get('/accounts')).html)?.[1] as string;
      const fields: [string, string][] = [['name', name], ['plan', 'pro'], ['form_id', formId]];
      const answers = await Promise.all([operator.post('/accounts', fields), operator.post('/accounts', fields)]);
      // The first is sent on to the new account's page (303), the second is told.
      expect(answers.map((answer) => [answer.status, answer.heading]).sort(), name).toEqual([
        [303, ''],
        [409, 'This form was sent already'],
      ]);
      const accounts = await created(name);
      expect(accounts, name).toHaveLength(1);
      const told = answers.find((answer) => answer.status === 409)?.html ?? '';
      expect(told).toContain(`It created the account “${name}” on `);
      expect(told).toContain(`href="/accounts/${accounts[0]?.id}"`);
      // Sent again later (Back, then the button again): still one account.
      expect((await operator.post('/accounts', fields)).status, name).toBe(409);
      expect(await created(name), name).toHaveLength(1);
    }
  });

  it("makes one key of a create form sent twice at once (the form names the key's id)", async () => {
    await addMember(fixture.keygate.runtime, 'ada@acme.example', accountId, 'member');
    const member = await Visitor.signedIn(fixture.dashboardUrl, 'ada@acme.example', '/keys/new');
    for (let round = 0; round < 3; round++) {
      const formId = /name="form_id" value="([0-9A-Za-z]{22})"/.exec((await member.get('/keys/new')).html)?.[1] as string;
      const fields: [string, string][] = [['name', `double ${round}`], ['scope', '*'], ['form_id', formId]];
      const answers = await Promise.all([member.post('/keys', fields), member.post('/keys', fields)]);
      expect(answers.map((answer) => [answer.status, answer.heading]).sort()).toEqual([
        [201, 'Copy your new key'],
        [409, 'This form was sent already'],
      ]);
      expect((await fixture.keygate.runtime.store.listKeys({ accountId })).filter((k) => k.name === `double ${round}`)).toHaveLength(1);
    }
  });

  it("makes one key of an operator's create form on an account's page sent twice at once, audited under the operator", async () => {
    const initech = await newAccount(fixture, 'Initech');
    for (let round = 0; round < 3; round++) {
      const page = (await operator.get(`/accounts/${initech}`)).html;
      const formId = /action="\/accounts\/[^"]+\/keys"[\s\S]*?name="form_id" value="([0-9A-Za-z]{22})"/.exec(page)?.[1] as string;
      const fields: [string, string][] = [['name', `by support ${round}`], ['scope', 'projects:read'], ['form_id', formId]];
      const answers = await Promise.all([operator.post(`/accounts/${initech}/keys`, fields), operator.post(`/accounts/${initech}/keys`, fields)]);
      expect(answers.map((answer) => [answer.status, answer.heading]).sort()).toEqual([
        [201, 'Copy your new key'],
        [409, 'This form was sent already'],
      ]);
      expect((await fixture.keygate.runtime.store.listKeys({ accountId: initech })).filter((k) => k.name === `by support ${round}`)).toHaveLength(1);
    }
    const created = (await fixture.keygate.runtime.store.listAudit({ accountId: initech, limit: 50 })).filter((e) => e.action === 'key.created');
    expect(created.map((e) => e.actor)).toEqual([OPERATOR, OPERATOR, OPERATOR]);
  });
});
