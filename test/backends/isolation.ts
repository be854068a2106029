/**
 * Keeping test files apart on the shared servers: each file gets its own PostgreSQL
 * database (dropped afterwards) and its own Redis key prefix (its keys deleted
 * afterwards), so files can run in parallel and leave nothing behind.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { POSTGRES_URL, REDIS_URL } from '../support/services.js';

function suffix(): string {
  return randomBytes(5).toString('hex');
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

async function asAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A new, empty database on the test server, e.g. `keygate_backends_3fa9c1d2e4`.
 * `isolation`: its transactions' default isolation level, where a test wants other than
 * PostgreSQL's default (read committed), as a database's owner may have set it.
 */
export async function createTestDatabase(label: string, isolation?: 'repeatable read' | 'serializable'): Promise<TestDatabase> {
  const name = `keygate_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${suffix()}`;
  await asAdmin(async (client) => {
    await client.query(`CREATE DATABASE "${name}"`);
    if (isolation) await client.query(`ALTER DATABASE "${name}" SET default_transaction_isolation TO '${isolation}'`);
  });
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => asAdmin(async (client) => void (await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))),
  };
}

/** A key prefix no other test file uses. */
export function testRedisPrefix(label: string): string {
  return `keygate-test:${label}:${suffix()}:`;
}

/** The counters URL for a prefix: `redis://127.0.0.1:6379/?prefix=...`. */
export function redisUrlWithPrefix(prefix: string, base = REDIS_URL): string {
  const url = new URL(base);
  url.searchParams.set('prefix', prefix);
  return url.toString();
}

/** Deletes every key under a prefix. */
export async function deleteRedisKeys(prefix: string, base = REDIS_URL): Promise<number> {
  const client = new Redis(base, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) deleted += await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}

/** Polls `check` until it returns true or `ms` pass; returns whether it did. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5_000, every = 20): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}
