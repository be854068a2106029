/**
 * `node bench/start-keys.js`: what the start-up look for keys outside the key format
 * (src/runtime.ts, warnOfKeysOutsideFormat → Store.keysOfOtherHints) costs with many keys
 * in use. A SQLite file (and, when reachable, a PostgreSQL database created for the run and
 * dropped after it) is given the store's own tables (its migrations) and filled with N keys
 * in use, half of each mode, all issued under keygate's default prefixes (kg_live_, kg_test_).
 * Then, on each:
 *
 *   (a) keysOfOtherHints alone, in this process: asked with the keys' own format (no key
 *       outside it: the usual start, nothing to say) and with another (sk_live_, sk_test_:
 *       every key outside it, the start that warns);
 *   (b) `keygate serve` started (bench/start-keys-server.js: src/serve.ts through dist/,
 *       a child process per start) until its gateway answers a request: with the keys'
 *       own format, with another (the warning is logged), and with the look answered at
 *       once (the start without its query). The child also says how long the look took.
 *
 *   node bench/start-keys.js [--keys=1000000] [--accounts=1000] [--starts=3] [--repeat=3] [--backends=sqlite,postgres]
 *
 * Everything is on 127.0.0.1; each keygate is a child process stopped when its start has
 * been timed (or by itself after 10 minutes). The figures are printed, never judged.
 * PostgreSQL: KEYGATE_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import pg from 'pg';
import { machineInfo, startChild } from './common.js';
import { openStore } from '../dist/store/open.js';
import { createKeyFormat } from '../dist/keys/format.js';

const DEFAULTS = { keys: 1_000_000, accounts: 1000, starts: 3, repeat: 3, backends: 'sqlite,postgres' };
const POSTGRES_URL = process.env.KEYGATE_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** The keys' own prefixes (keygate's defaults) and the ones of a profile whose keys.prefix changed. */
const OWN = { live: 'kg_live_', test: 'kg_test_' };
const OTHER = { live: 'sk_live_', test: 'sk_test_' };
/** created_at of the first key; each next key a millisecond later. */
const CREATED_FROM = Date.UTC(2026, 0, 1);
/** How long one start may take before the run gives up on it. */
const START_TIMEOUT_MS = 120_000;
/** How often the gateway is asked while keygate starts. */
const POLL_MS = 5;

const options = parseArgs(process.argv.slice(2));

async function main() {
  const machine = machineInfo();
  console.log('keygate bench: start-up with many keys in use (the key-format warning)');
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}`);
  console.log(`load average before the run: ${machine.loadAverageBefore.map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`settings: ${fmt(options.keys)} keys in use over ${fmt(options.accounts)} accounts; (a) ${options.repeat} times each, (b) ${options.starts} starts each`);
  console.log('');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'keygate-bench-start-'));
  const upstream = await startChild('upstream.js', [], { name: 'upstream' });
  try {
    for (const backend of options.backends) {
      if (backend === 'sqlite') await measure('SQLite', `sqlite:${path.join(tmp, 'start.db')}`, fillSqlite, tmp, upstream.info.url);
      else if (backend === 'postgres') await onPostgres((url) => measure('PostgreSQL', url, fillPostgres, tmp, upstream.info.url));
      else throw new Error(`--backends: sqlite or postgres, got "${backend}"`);
    }
  } finally {
    await upstream.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`load average after the run: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

/** Fills the store at `url`, then times (a) and (b) on it. */
async function measure(name, url, fill, tmp, upstreamUrl) {
  console.log(`${name}: filling ${fmt(options.keys)} keys ...`);
  const migrated = openStore(url);
  await migrated.migrate();
  await migrated.close();
  const filling = performance.now();
  await fill(url);
  console.log(`  filled in ${seconds(performance.now() - filling)}`);

  const store = openStore(url);
  try {
    const now = Date.now();
    const own = createKeyFormat({ format: 'prefixed', prefix: OWN }).hintStarts;
    const other = createKeyFormat({ format: 'prefixed', prefix: OTHER }).hintStarts;
    for (const [label, starts] of [
      ['own format (nothing to say)', own],
      ['prefix changed (all outside)', other],
    ]) {
      const times = [];
      let found;
      for (let i = 0; i < options.repeat; i++) {
        const started = performance.now();
        found = await store.keysOfOtherHints(starts, now, 3);
        times.push(performance.now() - started);
      }
      console.log(`  (a) keysOfOtherHints, ${label.padEnd(29)} ${ms(median(times))} median (${times.map(ms).join(', ')}), count ${fmt(found.count)}`);
    }
  } finally {
    await store.close();
  }

  const variants = [
    { label: 'own format, look answered at once', prefix: OWN, mode: 'skip' },
    { label: 'own format (nothing to say)', prefix: OWN, mode: 'check' },
    { label: 'prefix changed (warns)', prefix: OTHER, mode: 'check' },
  ];
  const results = variants.map(() => ({ toAnswer: [], slowest: [], look: [], lookAfterServe: [] }));
  // Variants take turns, so a slow spell of the machine lands on each alike.
  for (let round = 0; round < options.starts; round++) {
    for (const [i, variant] of variants.entries()) {
      const profileFile = path.join(tmp, `start-${i}.json`);
      writeFileSync(profileFile, JSON.stringify(profileOf(url, upstreamUrl, variant.prefix, await freePort())));
      const timed = await timeStart(profileFile, variant.mode);
      results[i].toAnswer.push(timed.toAnswer);
      if (timed.slowest !== undefined) results[i].slowest.push(timed.slowest);
      if (timed.lookMs !== undefined) results[i].look.push(timed.lookMs);
      if (timed.lookEndedAfterServeMs !== undefined) results[i].lookAfterServe.push(timed.lookEndedAfterServeMs);
    }
  }
  for (const [i, variant] of variants.entries()) {
    const r = results[i];
    const after = r.lookAfterServe.length === 0 ? 0 : median(r.lookAfterServe);
    const look = r.look.length === 0 ? '' : `; the look took ${ms(median(r.look))}, ended ${after < 0 ? `${ms(-after)} before` : `${ms(after)} after`} serve() returned`;
    console.log(`  (b) start to gateway answer, ${variant.label.padEnd(34)} ${ms(median(r.toAnswer))} median (${r.toAnswer.map(ms).join(', ')})${look}`);
    if (r.slowest.length > 0) console.log(`      slowest later gateway answer until the look was done: ${r.slowest.map(ms).join(', ')}`);
  }
  const skip = median(results[0].toAnswer);
  console.log(`      over the start without the look: own format ${signed(median(results[1].toAnswer) - skip)}, prefix changed ${signed(median(results[2].toAnswer) - skip)}`);
  console.log('');
}

/**
 * One start: from fork until the gateway answers an HTTP request (any status). Then the
 * gateway is asked again, one request at a time, until the child is ready (the look done):
 * the slowest of those later answers is how long a request waited on the look. Then the process
 * is stopped.
 */
async function timeStart(profileFile, mode) {
  const gatewayPort = JSON.parse(readFileSync(profileFile, 'utf8')).listen.port;
  const started = performance.now();
  let answered;
  /** Undefined until an answer after the first (none when the child was ready at once). */
  let slowest;
  let done = false;
  const polling = (async () => {
    while (!done && performance.now() - started < START_TIMEOUT_MS) {
      const asked = performance.now();
      if (await answers(gatewayPort)) {
        // The first answer is the start's (a cold process): the ones after it wait on the look, if on anything.
        if (answered === undefined) answered = performance.now() - started;
        else slowest = Math.max(slowest ?? 0, performance.now() - asked);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    if (answered === undefined) throw new Error(`the gateway did not answer within ${START_TIMEOUT_MS / 1000} s`);
  })();
  const child = await startChild('start-keys-server.js', [profileFile, mode], { name: `keygate (${mode})`, startTimeoutMs: START_TIMEOUT_MS, discardStdout: true }).finally(() => {
    done = true;
  });
  try {
    await polling;
    return { toAnswer: answered, slowest, lookMs: child.info.lookMs, lookEndedAfterServeMs: child.info.lookEndedAfterServeMs };
  } finally {
    await child.stop();
  }
}

/** Whether something answers HTTP on 127.0.0.1:port (a refused connection: not yet). */
function answers(port) {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: 10_000 }, (response) => {
      response.resume();
      resolve(true);
    });
    request.on('error', () => resolve(false));
    request.on('timeout', () => request.destroy());
  });
}

function profileOf(store, upstreamUrl, prefix, port) {
  return {
    name: 'bench-start',
    listen: { host: '127.0.0.1', port },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    upstream: { url: upstreamUrl },
    store,
    counters: 'memory',
    dashboard: { enabled: false },
    log: { level: 'warn', requests: false },
    keys: { prefix },
    plans: { bench: {} },
    routes: [{ path: '/*' }],
  };
}

/** N keys in use (never expiring, not revoked) and their accounts, straight into the tables the migrations made, in one transaction. */
async function fillSqlite(url) {
  const db = new Database(url.slice('sqlite:'.length));
  try {
    db.pragma('journal_mode = WAL');
    db.transaction(() => {
      db.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < CAST(? AS INTEGER))
         INSERT INTO accounts (id, name, plan_id, api_access, created_at) SELECT 'acc_bench' || i, 'bench ' || i, 'bench', 1, ? FROM n`,
      ).run(options.accounts, CREATED_FROM);
      db.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < CAST(? AS INTEGER))
         INSERT INTO api_keys (id, hash, hint, name, account_id, mode, scopes, created_at)
         SELECT printf('key_bench%010d', i), printf('%064x', i),
                (CASE WHEN i % 2 = 0 THEN ? ELSE ? END) || '…' || printf('%04d', i % 10000),
                'bench key', 'acc_bench' || (i % CAST(? AS INTEGER)), CASE WHEN i % 2 = 0 THEN 'live' ELSE 'test' END, '[]', ? + i FROM n`,
      ).run(options.keys, OWN.live, OWN.test, options.accounts, CREATED_FROM);
    })();
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}

/** As fillSqlite, on PostgreSQL (generate_series), then ANALYZE as autovacuum would after a bulk load. */
async function fillPostgres(url) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(`INSERT INTO accounts (id, name, plan_id, api_access, created_at) SELECT 'acc_bench' || i, 'bench ' || i, 'bench', 1, $2 FROM generate_series(0, $1 - 1) i`, [options.accounts, CREATED_FROM]);
    await client.query(
      `INSERT INTO api_keys (id, hash, hint, name, account_id, mode, scopes, created_at)
       SELECT 'key_bench' || lpad(i::text, 10, '0'), lpad(to_hex(i), 64, '0'),
              (CASE WHEN i % 2 = 0 THEN $2 ELSE $3 END) || '…' || lpad((i % 10000)::text, 4, '0'),
              'bench key', 'acc_bench' || (i % $4), CASE WHEN i % 2 = 0 THEN 'live' ELSE 'test' END, '[]', $5::bigint + i
       FROM generate_series(0, $1 - 1) i`,
      [options.keys, OWN.live, OWN.test, options.accounts, CREATED_FROM],
    );
    await client.query('COMMIT');
    await client.query('ANALYZE accounts, api_keys');
  } finally {
    await client.end();
  }
}

/** Runs `work` on a database created for it and dropped after; says so and returns if PostgreSQL is not reachable. */
async function onPostgres(work) {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  try {
    await admin.connect();
  } catch (error) {
    console.log(`PostgreSQL: skipped (not reachable at ${redacted(POSTGRES_URL)}: ${error.message})`);
    console.log('');
    return;
  }
  const name = `keygate_bench_start_${process.pid}`;
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(POSTGRES_URL);
    url.pathname = `/${name}`;
    await work(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((error) => console.log(`could not drop ${name}: ${error.message}`));
    await admin.end();
  }
}

function redacted(url) {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/** A port free on 127.0.0.1 now (the OS's choice), for a listener started moments later. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = http.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function parseArgs(args) {
  const parsed = { ...DEFAULTS };
  for (const arg of args) {
    const match = /^--(\w+)=(.*)$/.exec(arg);
    if (!match || !(match[1] in DEFAULTS)) throw new Error(`unknown option ${arg} (options: ${Object.keys(DEFAULTS).map((k) => `--${k}=`).join(' ')})`);
    parsed[match[1]] = match[1] === 'backends' ? match[2] : Number(match[2]);
    if (match[1] !== 'backends' && !(Number.isInteger(parsed[match[1]]) && parsed[match[1]] > 0)) throw new Error(`${arg}: a whole number above 0`);
  }
  return { ...parsed, backends: String(parsed.backends).split(',').filter(Boolean) };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fmt = (n) => n.toLocaleString('en-US');
const ms = (value) => `${Math.round(value).toLocaleString('en-US')} ms`;
const signed = (value) => `${value < 0 ? '−' : '+'}${ms(Math.abs(value))}`;
const seconds = (value) => `${(value / 1000).toFixed(1)} s`;

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
