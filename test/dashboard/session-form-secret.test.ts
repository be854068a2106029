/**
 * A signed-in session's forms are signed with a secret derived from the session id, which
 * only the member's browser holds: the store (a backup, a read replica) keeps the id's
 * SHA-256 and nothing from which a form token, or the id a create form derives, can be
 * computed. Asserted on the stored sessions rows of a real SQLite file and a real
 * PostgreSQL database, with the dashboard over real HTTP.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrfToken } from '../../src/dashboard/csrf.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-database.js';
import { createTestDatabase, type TestDatabase } from '../backends/isolation.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { tempDir } from '../support/temp.js';
import { MEMBER, newAccount, PASSWORD, startDashboard, type DashboardFixture } from './support.js';
import { addMember } from './visitor.js';

type StoredRow = Record<string, unknown>;

/** One browser over plain HTTP: its session cookie, and the CSRF token of the last page it read. */
class Browser {
  readonly cookies = new Map<string, string>();
  token = '';

  constructor(private readonly base: string) {}

  async get(p: string): Promise<{ status: number; html: string }> {
    const response = await fetch(this.base + p, { headers: { cookie: this.cookieHeader() }, redirect: 'manual' });
    this.keep(response);
    const html = await response.text();
    this.token = [...html.matchAll(/name="_csrf" value="([^"]+)"/g)].at(-1)?.[1] ?? this.token;
    return { status: response.status, html };
  }

  /** Posts `fields` with `token` (this browser's own unless told otherwise). */
  async post(p: string, fields: Record<string, string>, token = this.token): Promise<{ status: number; heading: string; html: string }> {
    const response = await fetch(this.base + p, {
      method: 'POST',
      headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...fields, _csrf: token }),
      redirect: 'manual',
    });
    this.keep(response);
    const html = await response.text();
    return { status: response.status, heading: /<h1\b[^>]*>([\s\S]*?)<\/h1>/.exec(html)?.[1] ?? '', html };
  }

  async signIn(email: string): Promise<void> {
    await this.get('/sign-in');
    expect((await this.post('/sign-in', { email, password: PASSWORD })).status).toBe(303);
    expect((await this.get('/keys')).status).toBe(200);
  }

  private keep(response: Response): void {
    for (const cookie of response.headers.getSetCookie()) {
      const [pair = ''] = cookie.split(';');
      const at = pair.indexOf('=');
      this.cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
  }

  private cookieHeader(): string {
    return [...this.cookies].filter(([, value]) => value !== '').map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

const CREATE_KEY = { name: 'nightly', scope: '*', mode: 'live', expiry: 'never' };

/**
 * The assertions, on a running dashboard whose sessions table `sessionRows` reads as
 * stored (every column of every row).
 */
function describeFormSecrets(open: () => Promise<{ fixture: DashboardFixture; sessionRows(): Promise<StoredRow[]>; close(): Promise<void> }>): void {
  let fixture: DashboardFixture;
  let sessionRows: () => Promise<StoredRow[]>;
  let close: () => Promise<void>;
  let accountId: string;

  beforeAll(async () => {
    ({ fixture, sessionRows, close } = await open());
    accountId = await newAccount(fixture, 'Acme Analytics');
    await addMember(fixture.keygate.runtime, MEMBER, accountId, 'member');
  });
  afterAll(async () => {
    await close?.();
  });

  it('stores no value from which a form token can be computed', async () => {
    const ada = new Browser(fixture.dashboardUrl);
    await ada.signIn(MEMBER);
    const token = ada.token;
    expect(token).not.toBe('');
    const rows = await sessionRows();
    expect(rows).toHaveLength(1);
    // No stored text is the secret the page's token was made with (as the secret each
    // session kept in clear until 0013 was), nor the token, nor the cookie.
    const stored = rows.flatMap((row) => Object.values(row)).map(String);
    for (const value of stored) expect(csrfToken(value), 'a token made from a stored value').not.toBe(token);
    expect(stored).not.toContain(token);
    expect(stored).not.toContain(ada.cookies.get('kg_session'));
    // The row: the id's hash, whose member, and when; no secret column at all.
    expect(Object.keys(rows[0] as StoredRow).sort()).toEqual(['created_at', 'expires_at', 'id_hash', 'member_id']);

    // And the token it shows works: the form creates a key.
    await ada.get('/keys/new');
    const created = await ada.post('/keys', CREATE_KEY);
    expect([created.status, created.heading]).toEqual([201, 'Copy your new key']);
  });

  it('refuses with 403 a form sent with the token of another session, even one of the same member', async () => {
    const ada = new Browser(fixture.dashboardUrl);
    const adaElsewhere = new Browser(fixture.dashboardUrl);
    await ada.signIn(MEMBER);
    await adaElsewhere.signIn(MEMBER);
    await adaElsewhere.get('/keys/new');
    await ada.get('/keys/new');
    expect(adaElsewhere.token).not.toBe(ada.token);
    const keysBefore = (await fixture.keygate.runtime.store.listKeys({ accountId })).length;

    const forged = await ada.post('/keys', { ...CREATE_KEY, name: 'forged' }, adaElsewhere.token);
    expect([forged.status, forged.heading]).toEqual([403, 'This form could not be accepted']);
    expect(await fixture.keygate.runtime.store.listKeys({ accountId })).toHaveLength(keysBefore);

    // Each with its own token, both sessions' forms work.
    expect((await ada.post('/keys', { ...CREATE_KEY, name: 'own' })).status).toBe(201);
    await adaElsewhere.get('/keys/new');
    expect((await adaElsewhere.post('/keys', { ...CREATE_KEY, name: 'own-elsewhere' })).status).toBe(201);
  });
}

describe('dashboard sessions on a SQLite file: no form secret stored', () => {
  describeFormSecrets(async () => {
    const dir = tempDir('keygate-dashboard-form-secret');
    const fixture = await startDashboard(dir);
    return {
      fixture,
      async sessionRows() {
        const db = new Database(path.join(dir, 'keygate.db'), { readonly: true });
        try {
          return db.prepare('select * from sessions').all() as StoredRow[];
        } finally {
          db.close();
        }
      },
      close: () => fixture.close(),
    };
  });
});

const postgres = await serviceAvailable('PostgreSQL', POSTGRES_URL);

describe.skipIf(!postgres)('dashboard sessions on PostgreSQL: no form secret stored', () => {
  describeFormSecrets(async () => {
    const database: TestDatabase = await createTestDatabase('form_secret');
    const store = openPostgresStore(database.url);
    await store.migrate();
    await store.close();
    const fixture = await startDashboard(tempDir('keygate-dashboard-form-secret-pg'), (profile) => ({ ...profile, store: database.url }));
    return {
      fixture,
      async sessionRows() {
        const client = new pg.Client({ connectionString: database.url });
        await client.connect();
        try {
          return (await client.query('select * from sessions')).rows as StoredRow[];
        } finally {
          await client.end();
        }
      },
      async close() {
        await fixture.close();
        await database.drop();
      },
    };
  });
});
