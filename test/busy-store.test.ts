/**
 * Another process holding the SQLite file's write lock (the CLI beside `keygate serve`, a
 * sqlite3 shell left inside a transaction, a backup) slows down only what must write: the
 * serving process waits for the lock without blocking its event loop, so the gateway goes
 * on answering cached keys, and the admin API's reads go on, meanwhile. Run against the
 * built `keygate serve` (npm run build), the lock held from this process's own connection.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServe, type ServeProcess } from './support/cli.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';

const TOKEN = 'busy-store-admin-token-0123456789';
const COST = 10;

interface Serving {
  serve: ServeProcess;
  gateway: string;
  admin: string;
  secret: string;
}

/** `keygate serve` on `file`, with one account and one key (used once, so cached). */
async function startServing(dir: string, file: string, upstream: TestUpstream): Promise<Serving> {
  const configFile = path.join(dir, `${path.basename(file)}.yaml`);
  writeFileSync(
    configFile,
    stringify({
      listen: { port: 0 },
      admin: { listen: { port: 0 } },
      store: `sqlite:${file}`,
      dashboard: { enabled: false },
      upstream: { url: upstream.url },
      plans: { team: { meters: { units: { limit: 1_000_000 } } } },
      routes: [{ path: '/things', cost: { meter: 'units', perRequest: COST } }],
    }),
  );
  const serve = spawnServe(configFile, { KEYGATE_ADMIN_TOKEN: TOKEN });
  const serving = JSON.parse(await serve.logged('keygate is serving')) as { gateway: string; admin: string };
  const admin = (p: string, body: unknown) => fetch(`${serving.admin}${p}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const account = (await (await admin('/v1/accounts', { name: 'Acme' })).json()) as { id: string };
  const key = (await (await admin('/v1/keys', { accountId: account.id, name: 'production' })).json()) as { secret: string };
  const first = await fetch(`${serving.gateway}/things`, { headers: { authorization: `Bearer ${key.secret}` } });
  expect(first.status).toBe(200);
  return { serve, gateway: serving.gateway, admin: serving.admin, secret: key.secret };
}

/** A sqlite3 shell left inside a transaction, say: the file's write lock, held until released. */
function holdWriteLock(file: string): { release(): void } {
  const holder = new Database(file);
  holder.exec('BEGIN IMMEDIATE');
  return {
    release() {
      holder.exec('ROLLBACK');
      holder.close();
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a SQLite file whose write lock another process holds', () => {
  const dir = tempDir('busy-store');
  let upstream: TestUpstream;

  beforeAll(async () => {
    upstream = await startTestUpstream();
  });

  afterAll(async () => {
    await upstream?.close();
  });

  it('holds up an admin change until the lock is released, while the gateway and the admin API\'s reads answer meanwhile', { timeout: 60_000 }, async () => {
    const file = path.join(dir, 'admin.db');
    const { serve, gateway, admin, secret } = await startServing(dir, file, upstream);
    try {
      const lock = holdWriteLock(file);
      let changeStatus: number | undefined;
      let released = false;
      try {
        const change = fetch(`${admin}/v1/accounts`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'While busy' }) }).then((r) => {
          changeStatus = r.status;
          return r;
        });
        // Time for the change to reach the lock and wait there (keygate handles it at once).
        await sleep(500);
        // A cached key: the gateway needs nothing from the store to answer it.
        const answered = await fetch(`${gateway}/things`, { headers: { authorization: `Bearer ${secret}` } });
        expect(answered.status).toBe(200);
        // Answered while the change still waits for the lock (before, the process stood
        // still until SQLite gave up: the change got its 503 first, the gateway after it).
        expect(changeStatus).toBeUndefined();
        // Reads do not wait for the writer (WAL), nor for the change waiting here.
        const accounts = await fetch(`${admin}/v1/accounts`, { headers: { authorization: `Bearer ${TOKEN}` } });
        expect(accounts.status).toBe(200);
        expect(((await accounts.json()) as { name: string }[]).map((a) => a.name)).toEqual(['Acme']);
        expect(changeStatus).toBeUndefined();
        lock.release();
        released = true;
        // Made once the lock is free: answered as done, not as a busy store.
        const made = await change;
        expect(made.status).toBe(201);
      } finally {
        if (!released) lock.release();
      }
      const after = await fetch(`${admin}/v1/accounts`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(((await after.json()) as { name: string }[]).map((a) => a.name)).toEqual(['Acme', 'While busy']);
    } finally {
      serve.child.kill('SIGKILL');
    }
  });

  it('goes on answering while the periodic flush cannot write, and writes everything counted once the lock is released', { timeout: 60_000 }, async () => {
    const file = path.join(dir, 'flush.db');
    const { serve, gateway, secret } = await startServing(dir, file, upstream);
    const call = () => fetch(`${gateway}/things`, { headers: { authorization: `Bearer ${secret}` } });
    try {
      let answered = 1;
      const lock = holdWriteLock(file);
      const startedAt = Date.now();
      let released = false;
      try {
        // Requests one after another until a flush has given up on the lock (it said so):
        // balances, daily counts and "last used" all wait to be written.
        while (!serve.output().includes('could not write usage to the store')) {
          expect((await call()).status).toBe(200);
          answered += 1;
          await sleep(50);
        }
        lock.release();
        released = true;
      } finally {
        if (!released) lock.release();
      }
      const lines = serve.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { time: number; msg: string; status?: number });
      const gaveUp = lines.find((l) => l.msg.includes('could not write usage to the store')) as { time: number };
      // The flush waited the whole time the store gives a write (5 s) before it gave up:
      // requests were answered all through it, by keygate's own clock (before, none was:
      // the process stood still until SQLite gave up).
      const meanwhile = lines.filter((l) => l.msg === 'request' && l.time > gaveUp.time - 3_000 && l.time < gaveUp.time - 500);
      expect(meanwhile.length).toBeGreaterThan(0);
      expect(gaveUp.time - startedAt).toBeGreaterThanOrEqual(4_000);

      // Nothing counted while the lock was held is lost: written at a later flush.
      const reader = new Database(file, { readonly: true });
      try {
        const stored = () => ({
          used: (reader.prepare("select sum(used) as n from meter_usage where meter = 'units'").get() as { n: number | null }).n,
          requests: (reader.prepare("select sum(value) as n from usage_daily where metric = 'requests'").get() as { n: number | null }).n,
          usedWhileLocked: ((reader.prepare('select last_used_at as at from api_keys').get() as { at: number | null }).at ?? 0) >= startedAt,
        });
        await expect.poll(stored, { timeout: 20_000, interval: 100 }).toEqual({ used: answered * COST, requests: answered, usedWhileLocked: true });
      } finally {
        reader.close();
      }
    } finally {
      serve.child.kill('SIGKILL');
    }
  });
});
