/**
 * `keygate migrate --pending`: what an upgrade would apply, asked before it is applied
 * (the Upgrading steps decide on it whether older processes must stop first), without
 * changing the database.
 */
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { POSTGRES_URL, serviceAvailable } from './support/services.js';
import { tempDir } from './support/temp.js';
import { createTestDatabase, type TestDatabase } from './backends/isolation.js';

const ALL = [
  '0001_core',
  '0002_settings',
  '0003_pending_units',
  '0004_returned_units',
  '0005_audit_order',
  '0006_sign_in_failures',
  '0007_limit_state',
  '0008_account_limits',
  '0009_sign_in_email_digests',
  '0010_keys_in_use',
  '0011_key_rate_limits',
  '0012_audit_actor_address',
  '0013_drop_session_csrf_secret',
];

function profile(dir: string, store: string): string {
  const file = path.join(dir, 'keygate.yaml');
  writeFileSync(file, JSON.stringify({ upstream: { url: 'http://127.0.0.1:9' }, store, plans: { free: {} }, routes: [{ path: '/*' }] }));
  return file;
}

const postgres = await serviceAvailable('PostgreSQL', POSTGRES_URL);

describe.skipIf(!postgres)('keygate migrate --pending on PostgreSQL', () => {
  const dir = tempDir('keygate-migrate-pending');
  let database: TestDatabase;
  let config: string;

  async function tables(): Promise<string[]> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const result = await client.query<{ tablename: string }>("select tablename from pg_tables where schemaname = 'public' order by tablename");
      return result.rows.map((r) => r.tablename);
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase('migrate_pending');
    config = profile(dir, database.url);
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('lists every migration of a new database and applies none of them', async () => {
    const listed = await runCli(['migrate', '--pending', '--config', config]);
    expect([listed.code, listed.stdout, listed.stderr]).toEqual([0, `pending on ${database.url}: ${ALL.join(', ')} (keygate migrate applies them)\n`, '']);
    expect(await tables()).toEqual([]);

    const json = await runCli(['migrate', '--pending', '--json', '--config', config]);
    expect([json.code, JSON.parse(json.stdout)]).toEqual([0, { pending: ALL }]);
    expect(await tables()).toEqual([]);
  });

  it('says a migrated database is up to date', async () => {
    expect((await runCli(['migrate', '--config', config])).code).toBe(0);
    const listed = await runCli(['migrate', '--pending', '--config', config]);
    expect([listed.code, listed.stdout]).toEqual([0, `${database.url} is up to date\n`]);
    const json = await runCli(['migrate', '--pending', '--json', '--config', config]);
    expect(JSON.parse(json.stdout)).toEqual({ pending: [] });
  });
});

describe('keygate migrate --pending on SQLite', () => {
  it('makes no database where there is none, and says so', async () => {
    const dir = tempDir('keygate-migrate-pending-sqlite');
    const file = path.join(dir, 'keygate.db');
    const config = profile(dir, `sqlite:${file}`);
    const listed = await runCli(['migrate', '--pending', '--config', config]);
    expect([listed.code, listed.stdout, listed.stderr]).toEqual([1, '', `error: no database at ${file}: keygate migrate begins one, with every migration\n`]);
    expect(existsSync(file)).toBe(false);

    expect((await runCli(['migrate', '--config', config])).code).toBe(0);
    const after = await runCli(['migrate', '--pending', '--config', config]);
    expect([after.code, after.stdout]).toEqual([0, `sqlite:${file} is up to date\n`]);
  });
});
