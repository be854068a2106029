/**
 * A NUL (U+0000) sent in an id, an email or a body, over HTTP: PostgreSQL refuses text with
 * one in any statement, so each used to be a 500 there, with an error logged; anyone could
 * send one without an account (the sign-in form). Every backend answers as SQLite always
 * did: no such account, key or member (404), a wrong email or password (401), a body
 * refused (400); nothing is logged as an error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresStore } from '../src/store/postgres/postgres-database.js';
import { createTestDatabase, type TestDatabase } from './backends/isolation.js';
import { POSTGRES_URL, serviceAvailable } from './support/services.js';
import { tempDir } from './support/temp.js';
import { newAccount, startDashboard, type DashboardFixture } from './dashboard/support.js';
import { addMember, Visitor } from './dashboard/visitor.js';

const postgres = await serviceAvailable('PostgreSQL', POSTGRES_URL);
const OPERATOR = 'olga@ops.example';
const MEMBER = 'ada@acme.example';

const NO_ACCOUNT = 'no such account: accounts are named by their id, which begins acc_ (to find one by its name: keygate accounts list --search <name>, or GET /v1/accounts?q=<name>)';
const NO_KEY = 'no such key: keys are named by their id, which begins key_ (keygate keys list, GET /v1/keys)';

/** Error lines keygate logged (level error or fatal). */
const errorLines = (fixture: DashboardFixture) => fixture.keygate.logs.lines.filter((line) => /"level":(50|60)/.test(line));

describe.each([
  { backend: 'SQLite', enabled: true },
  { backend: 'PostgreSQL', enabled: postgres },
])('a NUL in an id, an email or a body on $backend', ({ backend, enabled }) => {
  let database: TestDatabase | undefined;
  let fixture: DashboardFixture;
  let accountId: string;

  beforeAll(async () => {
    if (!enabled) return;
    if (backend === 'PostgreSQL') {
      database = await createTestDatabase('nul_text');
      const store = openPostgresStore(database.url);
      await store.migrate();
      await store.close();
    }
    const store = database?.url;
    fixture = await startDashboard(tempDir(`keygate-nul-text-${backend}`), (profile) => (store ? { ...profile, store } : profile));
    accountId = await newAccount(fixture, 'Acme Analytics');
    await addMember(fixture.keygate.runtime, OPERATOR, null, 'operator');
    await addMember(fixture.keygate.runtime, MEMBER, accountId, 'member');
  });
  afterAll(async () => {
    await fixture?.close();
    await database?.drop();
  });

  it.skipIf(!enabled)('admin API: no such account, key or member (404), or a refused body (400); no error logged', async () => {
    const answer = async (path: string, init?: RequestInit) => {
      const response = await fixture.keygate.admin(path, init);
      return [path, response.status, ((await response.json()) as { detail: string }).detail];
    };
    const post = (path: string, body?: unknown) => answer(path, body === undefined ? { method: 'POST' } : { method: 'POST', body: JSON.stringify(body) });
    const answers = [
      await answer('/v1/keys/%00'),
      await answer('/v1/keys/key_%00'),
      await answer('/v1/accounts/%00'),
      await answer('/v1/accounts/%00/usage'),
      await answer('/v1/accounts/%00/usage/daily'),
      await answer('/v1/keys?accountId=%00'),
      await answer('/v1/members?accountId=%00'),
      await answer('/v1/audit?accountId=%00'),
      await post('/v1/keys/%00/revoke'),
      await post('/v1/keys/%00/rotate'),
      await post('/v1/keys/%00/unblock'),
      await post('/v1/members/%00/unlock'),
      await answer('/v1/members/%00', { method: 'DELETE' }),
      await answer('/v1/accounts/%00', { method: 'PATCH', body: JSON.stringify({ name: 'Renamed' }) }),
      await post('/v1/keys', { accountId: 'acc_\u0000', name: 'ci' }),
      await post('/v1/members/invitations', { email: 'new@acme.example', accountId: 'acc_\u0000' }),
      await post('/v1/members/password-resets', { email: 'a\u0000@b.c' }),
      await post('/v1/forecast', { accountId: 'acc_\u0000', calls: [{ method: 'GET', path: '/v1/projects', count: 1 }] }),
      await post('/v1/keys', { accountId, name: 'ci\u0000' }),
    ];
    expect(answers).toEqual([
      ['/v1/keys/%00', 404, NO_KEY],
      ['/v1/keys/key_%00', 404, 'no such key'],
      ['/v1/accounts/%00', 404, NO_ACCOUNT],
      ['/v1/accounts/%00/usage', 404, NO_ACCOUNT],
      ['/v1/accounts/%00/usage/daily', 404, NO_ACCOUNT],
      ['/v1/keys?accountId=%00', 404, NO_ACCOUNT],
      ['/v1/members?accountId=%00', 404, NO_ACCOUNT],
      ['/v1/audit?accountId=%00', 404, NO_ACCOUNT],
      ['/v1/keys/%00/revoke', 404, NO_KEY],
      ['/v1/keys/%00/rotate', 404, NO_KEY],
      ['/v1/keys/%00/unblock', 404, NO_KEY],
      ['/v1/members/%00/unlock', 404, 'no such member'],
      ['/v1/members/%00', 404, 'no such member'],
      ['/v1/accounts/%00', 404, NO_ACCOUNT],
      ['/v1/keys', 404, 'no such account'],
      ['/v1/members/invitations', 404, 'no such account'],
      ['/v1/members/password-resets', 404, 'no such member'],
      ['/v1/forecast', 404, 'no such account'],
      ['/v1/keys', 400, 'a key name cannot contain control characters (line breaks, tabs, escapes)'],
    ]);
    const byEmail = await fixture.keygate.admin('/v1/members?email=a%00@b.c');
    expect([byEmail.status, await byEmail.json()]).toEqual([200, []]);
    expect(errorLines(fixture)).toEqual([]);
  });

  it.skipIf(!enabled)('dashboard: a NUL in the sign-in email is a wrong email or password (401), and in a page\'s id no such page (404); no error logged', async () => {
    // Without an account: the sign-in form, with its CSRF token, sent as no browser would.
    const visitor = new Visitor(fixture.dashboardUrl);
    await visitor.get('/sign-in');
    const signIn = await visitor.postBytes('/sign-in', Buffer.from('email=a%00%40b.c&password=wrong+password'));
    expect([signIn.status, signIn.alert]).toEqual([401, 'The email or password is incorrect.']);

    const member = await Visitor.signedIn(fixture.dashboardUrl, MEMBER, '/keys');
    const operator = await Visitor.signedIn(fixture.dashboardUrl, OPERATOR, '/accounts');
    const pages = [
      await member.get('/keys/%00/revoke'),
      await member.get('/keys/key_%00/rotate'),
      await member.post('/keys/%00/revoke', {}),
      await operator.get('/accounts/%00'),
      await operator.post('/accounts/acc_%00/invite', { email: 'new@acme.example' }),
    ];
    expect(pages.map((page) => [page.status, page.heading])).toEqual(Array(pages.length).fill([404, 'Page not found']));
    expect(errorLines(fixture)).toEqual([]);
  });
});
