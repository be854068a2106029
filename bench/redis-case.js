/**
 * Case (e)'s backends, for bench/run.js and bench/instructions.js: a PostgreSQL database
 * created for the run (dropped at the end) and a Redis key prefix of the run's own (every
 * key under it, and the pub/sub channel, deleted at the end). Kept apart from common.js
 * so the other bench servers do not load pg and ioredis.
 *
 * KEYGATE_BENCH_POSTGRES_URL (an administrative connection, default
 * postgres://postgres@127.0.0.1:5432/postgres) and KEYGATE_BENCH_REDIS_URL (default
 * redis://127.0.0.1:6379) point it elsewhere.
 */
import pg from 'pg';
import Redis from 'ioredis';

export const POSTGRES_ADMIN_URL = process.env.KEYGATE_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.KEYGATE_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** What keygate says when the build has no Redis counters backend. */
export const REDIS_UNAVAILABLE = /Redis backend is not available/i;

/**
 * Creates the run's database and picks its Redis prefix. Returns `{ skipped }` (why the
 * case cannot run) or `{ store, counters, admin, database, close }`: the store and
 * counters URLs for keygate's profile, the administrative client and the database's name
 * (run.js lists the database's backends with them), and `close()`, which deletes the
 * Redis keys and drops the database; call it after keygate has stopped.
 */
export async function openRedisCaseBackends(runId = process.pid) {
  const database = `keygate_bench_${runId}`;
  const storeUrl = new URL(POSTGRES_ADMIN_URL);
  storeUrl.pathname = `/${database}`;
  const admin = new pg.Client({ connectionString: POSTGRES_ADMIN_URL });
  try {
    await admin.connect();
  } catch (error) {
    return { skipped: `PostgreSQL not reachable at ${new URL(POSTGRES_ADMIN_URL).host} (${error.message})` };
  }
  if (!(await redisReachable())) {
    await admin.end().catch(() => undefined);
    return { skipped: `Redis not reachable at ${REDIS_URL}` };
  }
  await admin.query(`CREATE DATABASE ${database}`);
  const prefix = `keygate-bench-${runId}:`;
  const countersUrl = new URL(REDIS_URL);
  countersUrl.searchParams.set('prefix', prefix);
  const close = async () => {
    await deleteRedisKeys(prefix).catch((error) => console.warn(`could not delete the Redis keys under ${prefix}: ${error.message}`));
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch((error) => console.warn(`could not drop ${database}: ${error.message}`));
    await admin.end().catch(() => undefined);
  };
  return { store: storeUrl.toString(), counters: countersUrl.toString(), admin, database, close };
}

async function deleteRedisKeys(prefix) {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

async function redisReachable() {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}
