/**
 * Upgrading keygate over a database an earlier keygate made. The database is built here
 * as that keygate left it: migrated only up to an earlier migration (Kysely's Migrator,
 * `migrateTo`), then filled with rows written the way its code wrote them (a key's
 * HMAC-SHA256 hash under the pepper and its hint, scopes as JSON text, a member's scrypt
 * password, a session by its id's SHA-256, a month's balance, daily usage, the audit log).
 * The current keygate then opens it through its public entry points, `keygate serve` over
 * real HTTP on 127.0.0.1 and the CLI, and what a user sees is asserted: the old keys work
 * through the proxy with their scopes, the revoked one stays refused, the balance, the
 * daily usage, the audit log and the member (password and session) are all there, and the
 * session's forms work once reloaded (0013 dropped the form secret sessions kept in clear:
 * one opened before the upgrade is refused with 403, and none of it is left in the store).
 *
 * SQLite migrates itself when `keygate serve` starts; PostgreSQL is refused until
 * `keygate migrate`, whose command the refusal names. Nothing secret is written to a file:
 * keys, pepper and password live in this process and reach keygate through the
 * environment and HTTP only.
 */
import { createHash, createHmac, randomBytes, scryptSync } from 'node:crypto';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../src/config/schema.js';
import { checksum, randomBase62 } from '../src/keys/format.js';
import { periodBounds } from '../src/meters/period.js';
import { migrations } from '../src/store/migrations.js';
import { createTestDatabase, type TestDatabase } from './backends/isolation.js';
import { startGateway, writeProfile, type GatewayProcess } from './scale-out/cluster.js';
import { runCli, startFailure } from './support/cli.js';
import { POSTGRES_URL, serviceAvailable } from './support/services.js';
import { tempDir } from './support/temp.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';

/** The migrations, in order; an earlier keygate's database has a prefix of them applied. */
const MIGRATIONS = Object.keys(migrations).sort();
/**
 * Where earlier keygates stopped: the first release (0001 only, before the pepper's record),
 * the last before meter_usage gained its `returned` column (0004), and the last whose
 * sessions kept their form secret in clear (before 0013).
 */
const EARLIER = ['0001_core', '0003_pending_units', '0012_audit_actor_address'];

const PEPPER_ENV = 'KEYGATE_UPGRADE_TEST_PEPPER';
const PEPPER = randomBytes(16).toString('hex');
process.env[PEPPER_ENV] = PEPPER;
const PASSWORD = randomBytes(12).toString('base64url');

const ACCOUNT = 'acc_UpgradeAcme0001';
const MEMBER = 'mem_UpgradeAda00001';
const EMAIL = 'ada@example.com';
const LIMIT = 1000;
/** The units the account had spent this month before the upgrade. */
const SPENT = 120;
/** A day of usage before the upgrade, asked for by date. */
const USAGE_DAY = '2026-11-30';
const GET_COST = 10;
/**
 * The meter's period starts on today's day of the month (the 28th at the latest): its
 * next start is weeks away, so the period cannot turn while the test runs.
 */
const BILLING_DAY = Math.min(new Date().getUTCDate(), 28);
const POST_COST = 25;
const METRIC = '/api/v1/apps/app1/metrics/mrr';

/** The database-side table and column names and values an earlier keygate wrote. */
type Row = Record<string, string | number | null>;

interface OldKey {
  id: string;
  name: string;
  secret: string;
  hint: string;
  scopes: string[];
  revokedAt?: number;
  expiresAt?: number;
  rotatedFrom?: string;
}

/** What the earlier keygate left: keys (with their secrets, as their owners hold them) and a signed-in session. */
interface EarlierState {
  keys: Record<'rw' | 'ro' | 'revoked' | 'expired' | 'replaced' | 'replacement', OldKey>;
  sessionId: string;
  /** The secret the session's forms were signed with, kept in clear in its row until 0013. */
  csrfSecret: string;
}

const DAY = 86_400_000;

function oldKey(id: string, name: string, scopes: string[], extra: Partial<OldKey> = {}): OldKey {
  // keygate's own key format then as now: prefix, 24 base62 characters, a CRC32 checksum.
  const body = `rk_live_${randomBase62(24)}`;
  const secret = body + checksum(body);
  return { id, name, secret, hint: `rk_live_…${secret.slice(-4)}`, scopes, ...extra };
}

/** A database migrated up to `upTo`, with an account, keys, a member, a session, usage and audit entries in it. */
async function makeEarlierDatabase(db: Kysely<any>, upTo: string): Promise<EarlierState> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations }, migrationTableName: 'keygate_migrations', migrationLockTableName: 'keygate_migrations_lock' });
  const { error } = await migrator.migrateTo(upTo);
  if (error) throw error;

  const now = Date.now();
  const created = now - 20 * DAY;
  const keys: EarlierState['keys'] = {
    rw: oldKey('key_UpgradeReadWrite', 'backend', ['metrics:read', 'metrics:write']),
    ro: oldKey('key_UpgradeReadOnly1', 'reports', ['metrics:read']),
    revoked: oldKey('key_UpgradeRevoked01', 'leaked', ['metrics:read'], { revokedAt: now - 2 * DAY }),
    expired: oldKey('key_UpgradeExpired01', 'trial', ['metrics:read'], { expiresAt: now - DAY }),
    // Rotated with a 7-day overlap, 1 day ago: both keys work for 6 more days.
    replaced: oldKey('key_UpgradeReplaced1', 'mobile', ['metrics:read'], { expiresAt: now + 6 * DAY }),
    replacement: oldKey('key_UpgradeReplacemnt', 'mobile', ['metrics:read'], { rotatedFrom: 'key_UpgradeReplaced1' }),
  };
  const sessionId = randomBytes(32).toString('base64url');
  const csrfSecret = randomBytes(32).toString('base64url');
  const salt = randomBytes(16);
  const passwordHash = ['scrypt', 32768, 8, 1, salt.toString('base64url'), scryptSync(PASSWORD.normalize('NFKC'), salt, 32, { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }).toString('base64url')].join('$');
  const period = periodBounds({ billingDay: BILLING_DAY }, now);

  await db.insertInto('accounts').values({ id: ACCOUNT, name: 'Acme Analytics', plan_id: 'team', plan_expires_at: null, api_access: 1, overage: null, created_at: created }).execute();
  await db
    .insertInto('api_keys')
    .values(
      Object.values(keys).map((k, i): Row => ({
        id: k.id,
        hash: createHmac('sha256', PEPPER).update(k.secret).digest('hex'),
        hint: k.hint,
        name: k.name,
        account_id: ACCOUNT,
        mode: 'live',
        scopes: JSON.stringify(k.scopes),
        created_at: created + i,
        last_used_at: now - DAY,
        expires_at: k.expiresAt ?? null,
        revoked_at: k.revokedAt ?? null,
        created_by: 'cli',
        rotated_from: k.rotatedFrom ?? null,
      })),
    )
    .execute();
  await db
    .insertInto('members')
    .values({ id: MEMBER, account_id: ACCOUNT, email: EMAIL, password_hash: passwordHash, role: 'member', invite_hash: null, invite_expires_at: null, failed_logins: 0, locked_until: null, created_at: created })
    .execute();
  await db
    .insertInto('sessions')
    .values({ id_hash: createHash('sha256').update(sessionId).digest('hex'), member_id: MEMBER, csrf_secret: csrfSecret, expires_at: now + DAY, created_at: now - 60_000 })
    .execute();
  await db
    .insertInto('audit_log')
    .values([
      { id: 'aud_Upgrade00000001', at: created, actor: 'cli', action: 'account.created', account_id: ACCOUNT, key_id: null, detail: JSON.stringify({ name: 'Acme Analytics', planId: 'team' }) },
      { id: 'aud_Upgrade00000002', at: now - 2 * DAY, actor: 'cli', action: 'key.revoked', account_id: ACCOUNT, key_id: keys.revoked.id, detail: JSON.stringify({ name: keys.revoked.name, hint: keys.revoked.hint }) },
      {
        id: 'aud_Upgrade00000003',
        at: now - DAY,
        actor: EMAIL,
        action: 'key.rotated',
        account_id: ACCOUNT,
        key_id: keys.replaced.id,
        detail: JSON.stringify({ replacement: keys.replacement.id, overlapMs: 7 * DAY, oldKeyValidUntil: keys.replaced.expiresAt }),
      },
    ])
    .execute();
  await db.insertInto('meter_usage').values({ account_id: ACCOUNT, meter: 'units', period_start: period.start, used: SPENT }).execute();
  await db
    .insertInto('usage_daily')
    .values([
      { account_id: ACCOUNT, day: USAGE_DAY, metric: 'requests', label: '2xx', value: 12 },
      { account_id: ACCOUNT, day: USAGE_DAY, metric: 'denials', label: 'insufficient_scope', value: 1 },
      { account_id: ACCOUNT, day: USAGE_DAY, metric: 'units', label: 'units', value: SPENT },
    ])
    .execute();
  return { keys, sessionId, csrfSecret };
}

function profileFor(store: string, upstream: TestUpstream): ConfigInput {
  return {
    name: 'upgrade',
    upstream: { url: upstream.url },
    store,
    pepperEnv: PEPPER_ENV,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: true, listen: { host: '127.0.0.1', port: 0 } },
    keys: { prefix: { live: 'rk_live_', test: 'rk_test_' } },
    scopes: ['metrics:read', 'metrics:write'],
    plans: { team: { maxKeys: 10, meters: { units: { limit: LIMIT, period: { billingDay: BILLING_DAY } } } } },
    defaultPlan: 'team',
    routes: [
      { method: 'GET', path: '/api/v1/apps/:app/metrics/:metric', scopes: ['metrics:read'], cost: { meter: 'units', perRequest: GET_COST } },
      { method: 'POST', path: '/api/v1/apps/:app/metrics/:metric', scopes: ['metrics:write'], cost: { meter: 'units', perRequest: POST_COST } },
    ],
  };
}

/** A cookie jar of one browser: what Set-Cookie gave, sent back. */
function browser(base: string) {
  const jar = new Map<string, string>();
  const cookie = () => [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
  const keep = (response: Response) => {
    for (const set of response.headers.getSetCookie()) {
      const [pair = ''] = set.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  };
  return {
    jar,
    async get(p: string): Promise<{ status: number; location: string | null; text: string }> {
      const response = await fetch(`${base}${p}`, { headers: { cookie: cookie() }, redirect: 'manual' });
      keep(response);
      return { status: response.status, location: response.headers.get('location'), text: await response.text() };
    },
    /** Opens the form's page, then posts `fields` with the page's CSRF token, as a browser submits it. */
    async submit(p: string, fields: Record<string, string>): Promise<{ status: number; location: string | null }> {
      const page = await this.get(p);
      const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
      const { status, location } = await this.post(p, fields, csrf);
      return { status, location };
    },
    /** Posts `fields` to `p` with the CSRF token `csrf`: the page's h1 too. */
    async post(p: string, fields: Record<string, string>, csrf: string): Promise<{ status: number; location: string | null; heading: string }> {
      const response = await fetch(`${base}${p}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrf, ...fields }),
      });
      keep(response);
      const heading = /<h1\b[^>]*>([\s\S]*?)<\/h1>/.exec(await response.text())?.[1] ?? '';
      return { status: response.status, location: response.headers.get('location'), heading };
    },
  };
}

async function call(gateway: GatewayProcess, secret: string, method = 'GET'): Promise<{ status: number; code: string | undefined }> {
  const response = await fetch(`${gateway.gatewayUrl}${METRIC}`, { method, headers: { authorization: `Bearer ${secret}` } });
  const body = (await response.json()) as { code?: string };
  return { status: response.status, code: response.status === 200 ? undefined : body.code };
}

async function unitsUsed(gateway: GatewayProcess): Promise<number> {
  const usage = (await (await gateway.admin(`/v1/accounts/${ACCOUNT}/usage`)).json()) as { meters: { units: { usage: number } } };
  return usage.meters.units.usage;
}

/**
 * What the user sees once the current keygate serves the upgraded database: the proxy, the
 * admin API and the dashboard (the gateway is stopped at the end), then the CLI. Answers
 * what the gateway wrote.
 */
async function expectEverythingKept(profileFile: string, earlier: EarlierState): Promise<string> {
  const { keys } = earlier;
  const gateway = await startGateway(profileFile);
  try {
    // The balance as it was, before any request.
    expect(await unitsUsed(gateway)).toBe(SPENT);

    // The old keys, through the proxy, with the scopes they were given.
    expect(await call(gateway, keys.rw.secret)).toEqual({ status: 200, code: undefined });
    expect(await call(gateway, keys.rw.secret, 'POST')).toEqual({ status: 200, code: undefined });
    expect(await call(gateway, keys.ro.secret)).toEqual({ status: 200, code: undefined });
    expect(await call(gateway, keys.ro.secret, 'POST')).toEqual({ status: 403, code: 'insufficient_scope' });
    expect(await call(gateway, keys.revoked.secret)).toEqual({ status: 401, code: 'revoked_key' });
    expect(await call(gateway, keys.expired.secret)).toEqual({ status: 401, code: 'expired_key' });
    // A rotation still in its overlap: both keys work.
    expect(await call(gateway, keys.replaced.secret)).toEqual({ status: 200, code: undefined });
    expect(await call(gateway, keys.replacement.secret)).toEqual({ status: 200, code: undefined });
    // Charged on top of what was spent before: four GETs and one POST.
    expect(await unitsUsed(gateway)).toBe(SPENT + 4 * GET_COST + POST_COST);

    // The day of usage before the upgrade, and the audit log.
    const daily = await (await gateway.admin(`/v1/accounts/${ACCOUNT}/usage/daily?from=${USAGE_DAY}&to=${USAGE_DAY}`)).json();
    expect(daily).toEqual(
      expect.arrayContaining([
        { day: USAGE_DAY, metric: 'requests', label: '2xx', value: 12 },
        { day: USAGE_DAY, metric: 'denials', label: 'insufficient_scope', value: 1 },
        { day: USAGE_DAY, metric: 'units', label: 'units', value: SPENT },
      ]),
    );
    const audit = (await (await gateway.admin(`/v1/audit?accountId=${ACCOUNT}`)).json()) as { action: string; actorAddress: string | null }[];
    expect(audit.map((e) => e.action)).toEqual(['key.rotated', 'key.revoked', 'account.created']);
    // Written before events kept a client address: they have none.
    expect(audit.map((e) => e.actorAddress)).toEqual([null, null, null]);

    // The member: the session they had is still signed in, and their password signs them in.
    const dashboard = gateway.dashboardUrl as string;
    const signedIn = browser(dashboard);
    signedIn.jar.set('kg_session', earlier.sessionId);
    const keysPage = await signedIn.get('/keys');
    expect(keysPage.status).toBe(200);
    for (const k of [keys.rw, keys.ro, keys.replaced, keys.replacement]) expect(keysPage.text).toContain(k.hint);
    // A form the earlier keygate showed, sent after the upgrade: its token was made with the
    // secret the session kept in the store, which signs nothing now. Refused, with the page
    // that says to reload it (not an error), and nothing done.
    const earlierToken = createHmac('sha256', earlier.csrfSecret).update('keygate-dashboard-form').digest('base64url');
    expect(await signedIn.post('/keys', { name: 'stale-form', scope: '*' }, earlierToken)).toMatchObject({ status: 403, heading: 'This form could not be accepted' });
    // The same session's forms, reloaded, work: they carry the secret derived from its id.
    const createPage = await signedIn.get('/keys/new');
    const token = /name="_csrf" value="([^"]+)"/.exec(createPage.text)?.[1] ?? '';
    expect(token).not.toBe(earlierToken);
    expect(await signedIn.post('/keys', { name: 'after-upgrade', scope: 'metrics:read' }, token)).toMatchObject({ status: 201, heading: 'Copy your new key' });
    expect((await signedIn.get('/keys')).text).not.toContain('stale-form');
    const fresh = browser(dashboard);
    expect(await fresh.submit('/sign-in', { email: EMAIL, password: `${PASSWORD}x` })).toMatchObject({ status: 401 });
    expect(await fresh.submit('/sign-in', { email: EMAIL, password: PASSWORD })).toEqual({ status: 303, location: '/' });
    expect((await fresh.get('/keys')).text).toContain(keys.rw.hint);
  } finally {
    await gateway.stop();
  }
  // Keys are never written to a log.
  for (const k of Object.values(keys)) expect(gateway.output.join('\n')).not.toContain(k.secret);

  // The CLI, once the gateway has stopped (and written its balances out).
  const cli = (...args: string[]) => runCli(['--config', profileFile, ...args, '--json']);
  const listed = await cli('keys', 'list', '--account', ACCOUNT);
  expect(listed.code).toBe(0);
  const byId = Object.fromEntries((JSON.parse(listed.stdout) as { id: string; hint: string; scopes: string[]; status: string }[]).map((k) => [k.id, k]));
  const status = (k: OldKey) => ({ hint: byId[k.id]?.hint, scopes: byId[k.id]?.scopes, status: byId[k.id]?.status });
  expect(status(keys.rw)).toEqual({ hint: keys.rw.hint, scopes: ['metrics:read', 'metrics:write'], status: 'active' });
  expect(status(keys.ro)).toEqual({ hint: keys.ro.hint, scopes: ['metrics:read'], status: 'active' });
  expect(status(keys.revoked)).toEqual({ hint: keys.revoked.hint, scopes: ['metrics:read'], status: 'revoked' });
  expect(status(keys.expired)).toEqual({ hint: keys.expired.hint, scopes: ['metrics:read'], status: 'expired' });
  expect(status(keys.replaced)).toEqual({ hint: keys.replaced.hint, scopes: ['metrics:read'], status: 'expiring' });
  expect(status(keys.replacement)).toEqual({ hint: keys.replacement.hint, scopes: ['metrics:read'], status: 'active' });
  const usage = await cli('accounts', 'usage', ACCOUNT);
  expect(JSON.parse(usage.stdout).meters.units).toMatchObject({ usage: SPENT + 4 * GET_COST + POST_COST, limit: LIMIT, remaining: LIMIT - SPENT - 4 * GET_COST - POST_COST });
  const members = await cli('members', 'list', '--account', ACCOUNT);
  expect(JSON.parse(members.stdout)).toEqual([expect.objectContaining({ id: MEMBER, email: EMAIL, status: 'active' })]);
  return gateway.output.join('\n');
}

/**
 * The sessions rows after the upgrade (0013): the earlier session's is there still (its
 * cookie signed in), its form secret is not, and no row has a column for one.
 */
function expectNoFormSecret(rows: Row[], earlier: EarlierState): void {
  expect(rows.map((r) => r.id_hash)).toContain(createHash('sha256').update(earlier.sessionId).digest('hex'));
  for (const row of rows) expect(Object.keys(row).sort()).toEqual(['created_at', 'expires_at', 'id_hash', 'member_id']);
  expect(JSON.stringify(rows)).not.toContain(earlier.csrfSecret);
}

let upstream: TestUpstream;
beforeAll(async () => {
  upstream = await startTestUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

describe('upgrading a SQLite database an earlier keygate made', () => {
  const dir = tempDir('keygate-upgrade');

  it.each(EARLIER)('from %s: keygate serve migrates it by itself and everything in it keeps working', async (upTo) => {
    const file = path.join(dir, `${upTo}.db`);
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
    const earlier = await makeEarlierDatabase(db, upTo).finally(() => db.destroy());
    const profileFile = writeProfile(dir, upTo, profileFor(`sqlite:${file}`, upstream));

    const output = await expectEverythingKept(profileFile, earlier);
    // The start says what it changed.
    expect(output).toContain(`applied database migrations ${MIGRATIONS.slice(MIGRATIONS.indexOf(upTo) + 1).join(', ')}`);

    const check = new SqliteDatabase(file, { readonly: true });
    try {
      expect(check.prepare('select name from keygate_migrations order by name').pluck().all()).toEqual(MIGRATIONS);
      expectNoFormSecret(check.prepare('select * from sessions').all() as Row[], earlier);
    } finally {
      check.close();
    }
  });
});

describe('a SQLite upgrade that fails half way', () => {
  const dir = tempDir('keygate-upgrade-failed');

  it('leaves the database as it was, so that it completes once the cause is removed', async () => {
    const file = path.join(dir, 'keygate.db');
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
    await makeEarlierDatabase(db, '0005_audit_order').finally(() => db.destroy());
    // Something in the way of 0006's second step (its index), after its first (its table);
    // as a process killed between the two, or a full disk, would stop it there.
    const sqlite = new SqliteDatabase(file);
    sqlite.exec('create index sign_in_failures_updated on accounts (created_at)');
    const profileFile = writeProfile(dir, 'failed', profileFor(`sqlite:${file}`, upstream));

    const failed = await runCli(['migrate', '--config', profileFile]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('migration 0006_sign_in_failures failed, so none was applied: index sign_in_failures_updated already exists');
    expect(sqlite.prepare("select count(*) from sqlite_master where name = 'sign_in_failures'").pluck().get()).toBe(0);

    sqlite.exec('drop index sign_in_failures_updated');
    sqlite.close();
    const migrated = await runCli(['migrate', '--config', profileFile]);
    expect(migrated).toMatchObject({ code: 0, stdout: `applied 0006_sign_in_failures, 0007_limit_state, 0008_account_limits, 0009_sign_in_email_digests, 0010_keys_in_use, 0011_key_rate_limits, 0012_audit_actor_address, 0013_drop_session_csrf_secret to sqlite:${file}\n` });
  });
});

describe('upgrading a SQLite database whose sign-in failures name emails in clear', () => {
  const dir = tempDir('keygate-upgrade-sign-in');

  it('forgets them (0009): from then on an email is counted under its digest only', async () => {
    const file = path.join(dir, 'keygate.db');
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
    await makeEarlierDatabase(db, '0008_account_limits').finally(() => db.destroy());
    const sqlite = new SqliteDatabase(file);
    // What the release before kept of a password pasted into the email field.
    sqlite.prepare('insert into sign_in_failures (email, source, failures, locked_until, updated_at) values (?, ?, 1, null, ?)').run('hunterpasswordtyped99', '203.0.113.7', Date.now());
    sqlite.close();
    const profileFile = writeProfile(dir, 'sign-in', profileFor(`sqlite:${file}`, upstream));

    expect(await runCli(['migrate', '--config', profileFile])).toMatchObject({ code: 0, stdout: `applied 0009_sign_in_email_digests, 0010_keys_in_use, 0011_key_rate_limits, 0012_audit_actor_address, 0013_drop_session_csrf_secret to sqlite:${file}\n` });
    const check = new SqliteDatabase(file, { readonly: true });
    try {
      expect(check.prepare('select count(*) from sign_in_failures').pluck().get()).toBe(0);
    } finally {
      check.close();
    }
  });
});

const postgres = await serviceAvailable('PostgreSQL', POSTGRES_URL);

describe.skipIf(!postgres)('upgrading a PostgreSQL database an earlier keygate made', () => {
  const dir = tempDir('keygate-upgrade-pg');
  const databases: TestDatabase[] = [];
  afterAll(async () => {
    for (const database of databases) await database.drop();
  });

  it.each(EARLIER)('from %s: keygate serve names keygate migrate, which brings it up to date, and everything in it keeps working', async (upTo) => {
    const database = await createTestDatabase(`upgrade_${upTo}`);
    databases.push(database);
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 1 }) }) });
    const earlier = await makeEarlierDatabase(db, upTo).finally(() => db.destroy());
    const profileFile = writeProfile(dir, upTo, profileFor(database.url, upstream));
    const pending = MIGRATIONS.slice(MIGRATIONS.indexOf(upTo) + 1);

    const refused = startFailure(await runCli(['serve', '--config', profileFile]));
    expect(refused.code).toBe(1);
    expect(refused.msg).toContain(`the database is not migrated (pending: ${pending.join(', ')}). Run "keygate migrate --config ${profileFile}" first.`);

    const migrated = await runCli(['migrate', '--config', profileFile]);
    expect(migrated).toMatchObject({ code: 0, stdout: `applied ${pending.join(', ')} to ${database.url}\n` });

    await expectEverythingKept(profileFile, earlier);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      expectNoFormSecret((await client.query('select * from sessions')).rows as Row[], earlier);
    } finally {
      await client.end();
    }
  });
});
