/**
 * While the store is away (PostgreSQL down) every admin API request and dashboard page
 * fails alike, each with a 503 to retry: the log says so once every 10 s, with the
 * error's message and how many failed since, not a ~1.5 KB stack per request. A failure
 * while the store answers is keygate's own, and is still logged in full every time.
 * The store is made to fail in place (every method, its ping too, throws as pg does on a
 * refused connection); the log's clock (performance.now) is stopped and moved on by
 * hand, so ten seconds pass without waiting for them.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SqlStore } from '../src/store/sql-store.js';
import { startDemoUpstream, startKeygate, type TestKeygate } from './support/keygate.js';
import { tempDir } from './support/temp.js';

interface Line {
  level: number;
  msg: string;
  err?: { stack?: string };
  error?: { message: string; code?: string };
  moreSinceLast?: number;
}

const REFUSED = 'connect ECONNREFUSED 127.0.0.1:5432';

describe('requests failed by a store that is away', () => {
  let upstream: { url: string; close(): Promise<void> };
  let kg: TestKeygate;

  beforeAll(async () => {
    upstream = await startDemoUpstream();
    kg = await startKeygate({ upstream: { url: upstream.url }, dashboard: { enabled: true } }, { dir: tempDir('store-outage-log') });
  });
  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  /** Every method of the store throws as a refused connection does, until the answer is called. */
  function storeAway(): () => void {
    const store = kg.runtime.store as unknown as Record<string, unknown>;
    const names = Object.getOwnPropertyNames(SqlStore.prototype).filter((name) => name !== 'constructor' && name !== 'close');
    for (const name of names) {
      store[name] = async () => {
        throw Object.assign(new Error(REFUSED), { code: 'ECONNREFUSED' });
      };
    }
    return () => {
      for (const name of names) delete store[name];
    };
  }
  const lines = (from: number) => kg.logs.lines.slice(from).map((line) => JSON.parse(line) as Line);
  const dashboardPage = () => fetch(`${kg.dashboardUrl}/keys`, { headers: { cookie: 'kg_session=a-session-only-the-store-knows' }, redirect: 'manual' });

  it('logs the outage once every 10 s in each of the admin API and the dashboard, with how many failed since, and no stack', async () => {
    const from = kg.logs.lines.length;
    // The log's clock stands still but for the ten seconds moved on below (from a whole
    // millisecond: start + 10 000 - start is then exactly 10 000, not 9 999.999…).
    const start = Math.floor(performance.now());
    let passed = 0;
    const clock = vi.spyOn(performance, 'now').mockImplementation(() => start + passed);
    const back = storeAway();
    try {
      for (let i = 0; i < 3; i++) expect((await kg.admin('/v1/accounts')).status).toBe(503);
      expect((await kg.admin('/v1/keys/key_0123456789abcdef/revoke', { method: 'POST' })).status).toBe(503);
      for (let i = 0; i < 2; i++) expect((await dashboardPage()).status).toBe(503);
      passed = 10_000;
      expect((await kg.admin('/v1/accounts')).status).toBe(503);
      expect((await dashboardPage()).status).toBe(503);
    } finally {
      back();
      clock.mockRestore();
    }
    const failed = lines(from).filter((line) => /^(admin API|dashboard)( error|: a request failed)/.test(line.msg));
    expect(failed.map(({ level, msg, error, moreSinceLast, err }) => ({ level, msg, error, moreSinceLast, stack: err?.stack }))).toEqual([
      { level: 50, msg: 'admin API: a request failed, the store (sqlite) is not reachable', error: { message: REFUSED, code: 'ECONNREFUSED' } },
      { level: 50, msg: 'dashboard: a request failed, the store (sqlite) is not reachable', error: { message: REFUSED, code: 'ECONNREFUSED' } },
      { level: 50, msg: 'admin API: a request failed, the store (sqlite) is not reachable (and 3 more since the last such line)', error: { message: REFUSED, code: 'ECONNREFUSED' }, moreSinceLast: 3 },
      { level: 50, msg: 'dashboard: a request failed, the store (sqlite) is not reachable (and 1 more since the last such line)', error: { message: REFUSED, code: 'ECONNREFUSED' }, moreSinceLast: 1 },
    ]);
  });

  it('still logs a failure in full, each time, while the store answers', async () => {
    const from = kg.logs.lines.length;
    const { store } = kg.runtime;
    const getKey = store.getKey;
    store.getKey = async () => {
      throw new Error('the store broke');
    };
    try {
      for (let i = 0; i < 2; i++) expect((await kg.admin('/v1/keys/key_0123456789abcdef')).status).toBe(500);
    } finally {
      store.getKey = getKey;
    }
    const failed = lines(from).filter((line) => line.msg === 'admin API error');
    expect(failed).toHaveLength(2);
    for (const line of failed) expect(line.err?.stack).toMatch(/^Error: the store broke\n {4}at /);
  });
});
