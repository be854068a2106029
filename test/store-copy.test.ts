/**
 * `keygate store copy`: a SQLite store made by real use (the CLI, a real `keygate serve`
 * charging requests, stopped) copied into a PostgreSQL database this file makes and drops,
 * then served from PostgreSQL + Redis (under a prefix of its own, deleted after): the same
 * key works, the balance is what it was, a revoked key stays revoked, a member signs in
 * and one signed in before stays signed in.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, spawnServe, type ServeProcess } from './support/cli.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from './support/services.js';
import { createTestDatabase, deleteRedisKeys, redisUrlWithPrefix, testRedisPrefix, type TestDatabase } from './backends/isolation.js';
import { migrations } from '../src/store/migrations.js';
import { tempDir } from './support/temp.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';

const TOKEN = 'store-copy-admin-token-0123456789';
const PEPPER = 'store-copy-pepper-0123456789abcdef';
const COST = 3;
const env = { KEYGATE_ADMIN_TOKEN: TOKEN, KEYGATE_PEPPER: PEPPER };

const available = (await serviceAvailable('PostgreSQL', POSTGRES_URL)) && (await serviceAvailable('Redis', REDIS_URL));

async function rowsIn(url: string, table: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Number((await client.query(`select count(*) as n from "${table}"`)).rows[0].n);
  } finally {
    await client.end();
  }
}

async function runSql(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** A form of the dashboard sent as a browser would (its CSRF token and cookie from the page first): the answer's status. */
async function submit(dashboard: string, page: string, fields: Record<string, string>): Promise<number> {
  const url = `${dashboard}${page}`;
  const form = await fetch(url);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? '';
  const cookie = form.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  const response = await fetch(url, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, ...fields }).toString(), redirect: 'manual' });
  await response.arrayBuffer();
  return response.status;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Another process holding the lock of `databaseFile` as a serving keygate with in-memory counters does (this release's lockDatabase, built). */
function holdLockElsewhere(databaseFile: string): { child: ChildProcess; held: Promise<void>; exited: Promise<unknown> } {
  const lockModule = path.resolve(import.meta.dirname, '../dist/store/sqlite/process-lock.js');
  const script = `const { lockDatabase } = await import(process.argv[1]); lockDatabase(process.argv[2]); process.stdout.write('held\\n'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, pathToFileURL(lockModule).href, databaseFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const held = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited (${code}) before it held the lock`)));
  });
  return { child, held, exited: new Promise((resolve) => child.once('exit', resolve)) };
}

/** Signs in through the dashboard's form as a browser would: the session cookie (`name=value`) its answer sets. */
async function signIn(dashboard: string, email: string, password: string): Promise<string> {
  const form = await fetch(`${dashboard}/sign-in`);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await form.text())?.[1] ?? '';
  const cookie = form.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  const response = await fetch(`${dashboard}/sign-in`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, email, password }).toString(), redirect: 'manual' });
  await response.arrayBuffer();
  expect(response.status).toBe(303);
  const session = response.headers.getSetCookie().find((line) => line.startsWith('kg_session='));
  expect(session).toBeDefined();
  return (session as string).split(';')[0] as string;
}

/** The dashboard's keys page as the holder of `cookie` sees it: status and text. */
async function keysPage(dashboard: string, cookie: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${dashboard}/keys`, { headers: { cookie }, redirect: 'manual' });
  return { status: response.status, text: await response.text() };
}

async function stop(serve: ServeProcess): Promise<void> {
  serve.child.kill('SIGTERM');
  expect(await serve.exited()).toBe(0);
}

describe.runIf(available)('keygate store copy (SQLite to PostgreSQL)', { timeout: 180_000 }, () => {
  const dir = tempDir('store-copy');
  const prefix = testRedisPrefix('store-copy');
  const sqliteProfile = path.join(dir, 'keygate.yaml');
  const postgresProfile = path.join(dir, 'keygate.pg.yaml');
  const databases: TestDatabase[] = [];
  let upstream: TestUpstream;
  let target: TestDatabase;

  const profile = (store: string, counters?: string) =>
    stringify({
      store,
      ...(counters ? { counters } : {}),
      listen: { host: '127.0.0.1', port: 0 },
      admin: { listen: { host: '127.0.0.1', port: 0 } },
      dashboard: { enabled: true, listen: { host: '127.0.0.1', port: 0 } },
      upstream: { url: upstream.url },
      plans: { team: { meters: { units: { limit: 1000 } } } },
      routes: [{ path: '/things', cost: { meter: 'units', perRequest: COST } }],
    });

  const cli = async (...args: string[]) => runCli(args, { env });
  const json = async (...args: string[]) => {
    const r = await cli(...args, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout);
  };

  const newDatabase = async (label: string) => {
    const database = await createTestDatabase(label);
    databases.push(database);
    return database;
  };

  beforeAll(async () => {
    upstream = await startTestUpstream();
    target = await newDatabase('store_copy');
    writeFileSync(sqliteProfile, profile(`sqlite:${path.join(dir, 'data', 'keygate.db')}`));
    writeFileSync(postgresProfile, profile(target.url, redisUrlWithPrefix(prefix)));
  });

  afterAll(async () => {
    await upstream?.close();
    for (const database of databases) await database.drop();
    const redis = new Redis(REDIS_URL);
    try {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
  });

  it('copies a store used by a real keygate: the key works, the balance is kept, a revoked key stays revoked, a member signs in and one signed in stays signed in', async () => {
    const account = (await json('accounts', 'create', '--name', 'Acme', '--plan', 'team', '--config', sqliteProfile)) as { id: string };
    const key = (await json('keys', 'create', '--account', account.id, '--name', 'production', '--config', sqliteProfile)) as { secret: string };
    const old = (await json('keys', 'create', '--account', account.id, '--name', 'old', '--config', sqliteProfile)) as { id: string; secret: string };
    await json('keys', 'revoke', old.id, '--config', sqliteProfile);
    const email = 'ops@acme.example';
    const password = 'correct horse battery staple';
    const invited = (await json('members', 'invite', '--email', email, '--account', account.id, '--config', sqliteProfile)) as { url: string };

    let signedIn = '';
    const onSqlite = spawnServe(sqliteProfile, env);
    try {
      const serving = JSON.parse(await onSqlite.logged('keygate is serving')) as { gateway: string; dashboard: string };
      expect(await submit(serving.dashboard, `/invite/${invited.url.split('/invite/')[1]}`, { password, confirm: password })).toBe(303);
      // A member signed in on SQLite: the same cookie is tried on PostgreSQL after the copy.
      signedIn = await signIn(serving.dashboard, email, password);
      const onSqliteKeys = await keysPage(serving.dashboard, signedIn);
      expect(onSqliteKeys.status).toBe(200);
      expect(onSqliteKeys.text).toContain('production');
      for (let i = 0; i < 2; i++) expect((await fetch(`${serving.gateway}/things`, { headers: { authorization: `Bearer ${key.secret}` } })).status).toBe(200);
      // While it serves, the copy is refused: its balances are in its memory until it stops.
      await json('migrate', '--config', postgresProfile);
      const refused = await cli('store', 'copy', '--to', target.url, '--config', sqliteProfile);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^error: a keygate \(pid \d+ .*\) is serving .*keygate\.db: stop it first\. It keeps balances and rate limits in memory and writes them to the file as it stops/);
      expect(await rowsIn(target.url, 'accounts')).toBe(0);
    } finally {
      await stop(onSqlite);
    }
    type Usage = { meters: { units: { usage: number; remaining: number } } };
    const usageBefore = (await json('accounts', 'usage', account.id, '--config', sqliteProfile)) as Usage;
    expect(usageBefore.meters.units).toMatchObject({ usage: 2 * COST, remaining: 1000 - 2 * COST });

    // The profile to serve with names the database: its password stays off the command line.
    const copied = await cli('store', 'copy', '--to', postgresProfile, '--config', sqliteProfile);
    expect(copied.stderr).toBe('');
    expect(copied.code).toBe(0);
    expect(copied.stdout).toMatch(/^copied .*keygate\.db to postgres:\/\/.* in one transaction:\nTABLE +ROWS\n/);
    expect(copied.stdout).toMatch(/^accounts +1$/m);
    expect(copied.stdout).toMatch(/^api_keys +2$/m);
    expect(copied.stdout).toMatch(/^members +1$/m);
    expect(copied.stdout).toMatch(/^meter_usage +1$/m);
    expect(copied.stdout).toContain(`next: start keygate on it (keygate serve --config ${postgresProfile}, its counters a Redis URL: docs/scale-out.md) with the same pepper as before`);
    for (const table of ['accounts', 'api_keys', 'members', 'audit_log', 'meter_usage', 'usage_daily', 'keygate_settings']) {
      const shown = Number(new RegExp(`^${table} +(\\d+)$`, 'm').exec(copied.stdout)?.[1]);
      expect(await rowsIn(target.url, table), table).toBe(shown);
    }

    const usageAfter = (await json('accounts', 'usage', account.id, '--config', postgresProfile)) as Usage;
    expect(usageAfter.meters).toEqual(usageBefore.meters);

    const onPostgres = spawnServe(postgresProfile, env);
    try {
      const serving = JSON.parse(await onPostgres.logged('keygate is serving')) as { gateway: string; dashboard: string };
      const answered = await fetch(`${serving.gateway}/things`, { headers: { authorization: `Bearer ${key.secret}` } });
      expect(answered.status).toBe(200);
      const revoked = await fetch(`${serving.gateway}/things`, { headers: { authorization: `Bearer ${old.secret}` } });
      expect(revoked.status).toBe(401);
      expect(await revoked.text()).toMatch(/revoked/i);
      // Sessions are rows of the store (the cookie holds an id, no per-store secret): the member stays signed in.
      const keys = await keysPage(serving.dashboard, signedIn);
      expect(keys.status).toBe(200);
      expect(keys.text).toContain('Acme');
      expect(keys.text).toContain('production');
      expect(keys.text).toContain('ops@acme.example');
      expect(await submit(serving.dashboard, '/sign-in', { email, password })).toBe(303);
      expect(await submit(serving.dashboard, '/sign-in', { email, password: 'not the password' })).not.toBe(303);
    } finally {
      await stop(onPostgres);
    }
    const usageServed = (await json('accounts', 'usage', account.id, '--config', postgresProfile)) as Usage;
    expect(usageServed.meters.units).toMatchObject({ usage: 3 * COST, remaining: 1000 - 3 * COST });

    // Copied once: a second copy into it is refused, naming what it holds, and changes nothing.
    const again = await cli('store', 'copy', '--to', target.url, '--config', sqliteProfile);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: PostgreSQL at postgres:\/\/\S+ is not empty: it holds accounts \(1 row\), api_keys \(2 rows\), .*\. The copy never merges into or overwrites a store: copy into a new database \(createdb, then keygate migrate\)\. Nothing was copied\n$/);
    expect(await rowsIn(target.url, 'api_keys')).toBe(2);
  });

  it('refuses while keygates with Redis counters serve the file, naming one; copies once they stop', async () => {
    const sharedPrefix = testRedisPrefix('store-copy-serving');
    const file = path.join(dir, 'shared', 'keygate.db');
    const onRedis = path.join(dir, 'shared.yaml');
    writeFileSync(onRedis, profile(`sqlite:${file}`, redisUrlWithPrefix(sharedPrefix)));
    const into = await newDatabase('store_copy_serving');
    writeFileSync(path.join(dir, 'serving.pg.yaml'), profile(into.url));
    await json('migrate', '--config', path.join(dir, 'serving.pg.yaml'));
    const account = (await json('accounts', 'create', '--name', 'Shared', '--plan', 'team', '--config', onRedis)) as { id: string };
    const key = (await json('keys', 'create', '--account', account.id, '--name', 'shared', '--config', onRedis)) as { secret: string };

    // Two processes on one SQLite file with Redis counters (docs/scale-out.md): both serve.
    const serving = [spawnServe(onRedis, env), spawnServe(onRedis, env)];
    try {
      for (const one of serving) {
        const { gateway } = JSON.parse(await one.logged('keygate is serving')) as { gateway: string };
        expect((await fetch(`${gateway}/things`, { headers: { authorization: `Bearer ${key.secret}` } })).status).toBe(200);
      }
      const refused = await cli('store', 'copy', '--to', into.url, '--config', onRedis);
      expect(refused.code).toBe(1);
      const pids = serving.map((one) => String(one.child.pid));
      const named = /^error: a keygate \(pid (\d+) on .*, with Redis counters\) is serving (\S+): stop every keygate serving it first\. They write usage, balances and audit events to the file as they serve/.exec(refused.stderr);
      expect(named, refused.stderr).not.toBeNull();
      expect(pids).toContain(named?.[1]);
      expect(named?.[2]).toBe(file);
      expect(await rowsIn(into.url, 'accounts')).toBe(0);

      // One with in-memory counters would overwrite their balances: it does not start beside them.
      const memoryProfile = path.join(dir, 'shared-memory.yaml');
      writeFileSync(memoryProfile, profile(`sqlite:${file}`));
      const memory = spawnServe(memoryProfile, env);
      expect(await memory.exited()).not.toBe(0);
      expect(memory.output()).toMatch(/keygate could not start: another keygate process \(pid \d+ .*, with Redis counters\) is serving this SQLite file: a keygate with in-memory counters beside it would count rate limits and balances on its own/);
    } finally {
      for (const one of serving) await stop(one);
      await deleteRedisKeys(sharedPrefix);
    }

    const copied = await json('store', 'copy', '--to', into.url, '--config', onRedis);
    expect(copied).toMatchObject({ from: file, tables: { accounts: 1, api_keys: 1 } });
    expect(await rowsIn(into.url, 'api_keys')).toBe(1);
  });

  it('takes the lock before it migrates the source: refused beside an earlier release serving the file, it writes nothing to it', async () => {
    // As an earlier release left it: one migration behind this one's.
    const file = path.join(dir, 'earlier', 'keygate.db');
    mkdirSync(path.dirname(file), { recursive: true });
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: new Database(file) }) });
    const upTo = Object.keys(migrations).sort().at(-2) as string;
    const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations }, migrationTableName: 'keygate_migrations', migrationLockTableName: 'keygate_migrations_lock' });
    const { error } = await migrator.migrateTo(upTo);
    await db.destroy();
    expect(error).toBeUndefined();
    const earlier = path.join(dir, 'earlier.yaml');
    writeFileSync(earlier, profile(`sqlite:${file}`));
    const into = await newDatabase('store_copy_earlier');
    writeFileSync(path.join(dir, 'earlier.pg.yaml'), profile(into.url));
    await json('migrate', '--config', path.join(dir, 'earlier.pg.yaml'));
    const applied = () => {
      const read = new Database(file, { readonly: true });
      try {
        return read.prepare('select name from keygate_migrations order by name').pluck().all();
      } finally {
        read.close();
      }
    };
    const before = { bytes: sha256(readFileSync(file)), applied: applied() };
    expect(before.applied.at(-1)).toBe(upTo);

    // A keygate of that release serving the file holds the lock this one checks (the same
    // lock file, taken alone as every release with in-memory counters has taken it).
    const holder = holdLockElsewhere(file);
    try {
      await holder.held;
      const refused = await cli('store', 'copy', '--to', into.url, '--config', earlier);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`^error: a keygate \\(pid ${holder.child.pid} on .*\\) is serving \\S+keygate\\.db: stop it first`));
      expect({ bytes: sha256(readFileSync(file)), applied: applied() }).toEqual(before);
    } finally {
      holder.child.kill('SIGTERM');
      await holder.exited;
    }

    // Stopped: the copy migrates the source, then copies it.
    const copied = await json('store', 'copy', '--to', into.url, '--config', earlier);
    expect(copied).toMatchObject({ from: file, tables: { accounts: 0 } });
    expect(applied()).toEqual(Object.keys(migrations).sort());
  });

  it('refuses a database that is not migrated, naming the keygate migrate to run', async () => {
    const bare = await newDatabase('store_copy_bare');
    const bareProfile = path.join(dir, 'bare.yaml');
    writeFileSync(bareProfile, profile(bare.url));
    const named = await cli('store', 'copy', '--to', bareProfile, '--config', sqliteProfile);
    expect(named.code).toBe(1);
    expect(named.stderr).toMatch(/^error: PostgreSQL at postgres:\/\/\S+ is not migrated \(pending: 0001_core, 0002_settings, .*0013_drop_session_csrf_secret\): run "keygate migrate --config (.*)" first, then copy again\n$/);
    expect(/--config (.*)" first/.exec(named.stderr)?.[1]).toBe(bareProfile);
    const byUrl = await cli('store', 'copy', '--to', bare.url, '--config', sqliteProfile);
    expect(byUrl.stderr).toContain(`: run "keygate migrate --config <profile>" with the profile you will serve with (its store ${bare.url}) first, then copy again`);
  });

  it('leaves nothing copied when a table fails half way', async () => {
    const half = await newDatabase('store_copy_half');
    writeFileSync(path.join(dir, 'half.yaml'), profile(half.url));
    await json('migrate', '--config', path.join(dir, 'half.yaml'));
    // usage_daily is written after accounts, keys and members: it refuses every row.
    await runSql(half.url, 'alter table usage_daily add constraint refuses_rows check (false)');
    const r = await cli('store', 'copy', '--to', half.url, '--config', sqliteProfile);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: copying usage_daily failed: .*refuses_rows.*\. Nothing was copied\n$/);
    for (const table of ['accounts', 'api_keys', 'members', 'usage_daily']) expect(await rowsIn(half.url, table), table).toBe(0);
  });

  it('copies a table of more rows than one INSERT takes, every value as it was', async () => {
    const big = path.join(dir, 'big.yaml');
    writeFileSync(big, profile(`sqlite:${path.join(dir, 'big.db')}`));
    await json('migrate', '--config', big);
    const file = new Database(path.join(dir, 'big.db'));
    const rows = 5_000;
    const insert = file.prepare("insert into usage_daily (account_id, day, metric, label, value) values ('acc', ?, 'units', 'all', ?)");
    file.transaction(() => {
      for (let i = 0; i < rows; i++) insert.run(`day-${i}`, i + 0.5);
    })();
    file.close();
    const into = await newDatabase('store_copy_big');
    writeFileSync(path.join(dir, 'big.pg.yaml'), profile(into.url));
    await json('migrate', '--config', path.join(dir, 'big.pg.yaml'));
    const copied = await json('store', 'copy', '--to', path.join(dir, 'big.pg.yaml'), '--config', big);
    expect(copied).toMatchObject({ from: path.join(dir, 'big.db'), to: into.url, tables: { usage_daily: rows, accounts: 0 } });
    const client = new pg.Client({ connectionString: into.url });
    await client.connect();
    try {
      const { rows: sums } = await client.query("select count(distinct day)::int as days, sum(value)::float8 as total from usage_daily where metric = 'units'");
      expect(sums[0]).toEqual({ days: rows, total: (rows * rows) / 2 });
    } finally {
      await client.end();
    }
  });

  it('refuses a URL that is not PostgreSQL, or not reachable, without printing its password', async () => {
    const mysql = await cli('store', 'copy', '--to', 'mysql://root:hunter2@127.0.0.1/keygate', '--config', sqliteProfile);
    expect([mysql.code, mysql.stderr]).toEqual([1, 'error: --to: expected a PostgreSQL URL (postgres://user:password@host:5432/database) or a profile whose store is one; got mysql://root:***@127.0.0.1/keygate\n']);
    const sqliteTo = await cli('store', 'copy', '--to', sqliteProfile, '--config', sqliteProfile);
    expect(sqliteTo.stderr).toMatch(/^error: --to: expected a PostgreSQL URL \(postgres:\/\/user:password@host:5432\/database\) or a profile whose store is one; \S+keygate\.yaml's store is sqlite:\S+keygate\.db\n$/);
    const noProfile = await cli('store', 'copy', '--to', path.join(dir, 'missing.yaml'), '--config', sqliteProfile);
    expect([noProfile.code, noProfile.stderr]).toEqual([1, `error: --to: no profile at ${path.join(dir, 'missing.yaml')} (give the profile you will serve with, or a postgres:// URL)\n`]);
    const nowhere = await cli('store', 'copy', '--to', 'postgres://keygate:hunter2@127.0.0.1:1/keygate', '--config', sqliteProfile);
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toMatch(/^error: cannot reach PostgreSQL at postgres:\/\/keygate:\*\*\*@127\.0\.0\.1:1\/keygate: /);
    expect(nowhere.stderr).not.toContain('hunter2');
    const fromPostgres = await cli('store', 'copy', '--to', target.url, '--from', target.url);
    expect(fromPostgres.code).toBe(1);
    expect(fromPostgres.stderr).toMatch(/^error: store copy copies a SQLite store into PostgreSQL; --from is postgres:\/\/\S+: give it as sqlite:<file>\n$/);
  });
});
