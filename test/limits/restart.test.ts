/**
 * On the embedded default the rate-limit windows and blocks live in memory; they are kept
 * in the SQLite file too (blocks within a second, windows at stop), so a restart neither
 * lifts a block, nor starts its escalation again, nor refills a window. Real SQLite files,
 * real HTTP; a stop and a start in process with a controlled clock, and a `keygate serve`
 * killed with SIGKILL.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { createAccount, updateAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { spawnServe } from '../support/cli.js';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';

const PLANS: ConfigInput['plans'] = {
  // Two in 5 minutes; two refusals within a minute start a 10-minute block, each next one
  // twice as long. The window is shorter than the block, so a block's length is its Retry-After.
  paced: { rateLimits: [{ limit: 2, window: '5m' }], block: { after: 2, within: '1m', duration: '10m', factor: 2, max: '1h', forgetAfter: '24h' } },
};

describe('rate-limit state across a restart (embedded default)', () => {
  let upstream: TestUpstream;

  beforeAll(async () => {
    upstream = await startTestUpstream();
  });
  afterAll(async () => {
    await upstream?.close();
  });

  it('a stop and a start lift no block, keep its escalation and refill no window; a block lifted stays lifted', async () => {
    const dir = tempDir('limits-restart');
    let now = Date.parse('2026-11-20T00:00:00Z');
    const profile: ConfigInput = { upstream: { url: upstream.url }, plans: PLANS, routes: [{ path: '/*' }] };
    const start = () => startKeygate(profile, { dir, clock: () => now });
    const get = async (kg: TestKeygate, secret: string) => {
      const r = await kg.call('/data', { headers: { authorization: `Bearer ${secret}` } });
      await r.text();
      return { status: r.status, retryAfter: r.headers.get('retry-after') };
    };

    let kg = await start();
    const account = await createAccount(kg.runtime, { name: 'Acme', planId: 'paced' }, 'test');
    const { secret, key } = await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test');
    try {
      expect([(await get(kg, secret)).status, (await get(kg, secret)).status]).toEqual([200, 200]);
      expect(await get(kg, secret)).toEqual({ status: 429, retryAfter: '300' });
      // The second refusal within a minute starts a 10-minute block.
      expect(await get(kg, secret)).toEqual({ status: 429, retryAfter: '600' });
      await kg.close();

      now += 60_000;
      kg = await start();
      // Still blocked, for what is left of it.
      expect(await get(kg, secret)).toEqual({ status: 429, retryAfter: '540' });
      expect(kg.logs.text).toContain('rate-limit windows and blocks restored from the store');

      // The block is over at 00:10, and the window has room again: filled, then refused once.
      now += 540_000;
      expect([(await get(kg, secret)).status, (await get(kg, secret)).status]).toEqual([200, 200]);
      expect(await get(kg, secret)).toEqual({ status: 429, retryAfter: '300' });
      await kg.close();

      now += 10_000;
      kg = await start();
      // The window still holds the two admissions of 00:10, so this is the second refusal
      // within a minute, and the block it starts is the second: twice as long.
      expect(await get(kg, secret)).toEqual({ status: 429, retryAfter: '1200' });

      const lifted = await kg.admin(`/v1/keys/${key.id}/unblock`, { method: 'POST' });
      expect(await lifted.json()).toMatchObject({ lifted: 1 });
      await kg.close();

      now += 300_000; // 00:15:10, past 00:10 + the window's 5 minutes: it has room again
      kg = await start();
      expect(await get(kg, secret)).toEqual({ status: 200, retryAfter: null });
    } finally {
      await kg.close();
    }
  });

  it('a window holding more than a limit lowered since keeps every admission across a stop, so the limit raised again admits no more than it', async () => {
    const dir = tempDir('limits-restart-lowered');
    let now = Date.parse('2026-11-20T00:00:00Z');
    const profile: ConfigInput = { upstream: { url: upstream.url }, plans: { four: { rateLimits: [{ limit: 4, window: '1h' }] } }, routes: [{ path: '/*' }] };
    const start = () => startKeygate(profile, { dir, clock: () => now });
    const status = async (kg: TestKeygate, secret: string) => {
      const r = await kg.call('/data', { headers: { authorization: `Bearer ${secret}` } });
      await r.text();
      return r.status;
    };

    let kg = await start();
    const account = await createAccount(kg.runtime, { name: 'Acme', planId: 'four' }, 'test');
    const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test');
    try {
      for (let i = 0; i < 4; i++) {
        expect(await status(kg, secret)).toBe(200);
        now += 60_000;
      }
      // Given 2 an hour: the four it holds are two too many.
      await updateAccount(kg.runtime, account.id, { limits: { rateLimits: [{ limit: 2, window: '1h' }] } }, 'test');
      expect(await status(kg, secret)).toBe(429);
      await kg.close();

      kg = await start();
      // The plan's 4 an hour again: the window still holds the four of this hour.
      await updateAccount(kg.runtime, account.id, { limits: { rateLimits: null } }, 'test');
      expect(await status(kg, secret)).toBe(429);
    } finally {
      await kg.close();
    }
  });

  it('a `keygate serve` killed with SIGKILL a second after a block started keeps it when started again', async () => {
    const dir = tempDir('limits-sigkill');
    const file = path.join(dir, 'keygate.db');
    const configFile = path.join(dir, 'keygate.yaml');
    const token = 'limits-restart-admin-token-0123456789';
    writeFileSync(
      configFile,
      stringify({ listen: { port: 0 }, admin: { listen: { port: 0 } }, store: `sqlite:${file}`, dashboard: { enabled: false }, upstream: { url: upstream.url }, plans: PLANS, routes: [{ path: '/*' }] }),
    );
    const startServe = async () => {
      const serve = spawnServe(configFile, { KEYGATE_ADMIN_TOKEN: token });
      const serving = JSON.parse(await serve.logged('keygate is serving')) as { gateway: string; admin: string };
      return { serve, ...serving };
    };
    const first = await startServe();
    let second: Awaited<ReturnType<typeof startServe>> | undefined;
    try {
      const admin = (p: string, body: unknown) => fetch(`${first.admin}${p}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const account = (await (await admin('/v1/accounts', { name: 'Acme', planId: 'paced' })).json()) as { id: string };
      const { secret } = (await (await admin('/v1/keys', { accountId: account.id, name: 'k' })).json()) as { secret: string };
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await fetch(`${first.gateway}/data`, { headers: { authorization: `Bearer ${secret}` } });
        statuses.push(r.status);
        await r.text();
      }
      expect(statuses).toEqual([200, 200, 429, 429]);

      // Blocks are written with the usage, within a second: kill it once the file has this one.
      const db = new Database(file, { readonly: true });
      try {
        const deadline = Date.now() + 60_000;
        while (!db.prepare("SELECT 1 FROM limit_state WHERE kind = 'block'").get()) {
          if (Date.now() > deadline) throw new Error(`no block written within 60 s:\n${first.serve.output()}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        db.close();
      }
      first.serve.child.kill('SIGKILL');
      await first.serve.exited();

      second = await startServe();
      const r = await fetch(`${second.gateway}/data`, { headers: { authorization: `Bearer ${secret}` } });
      expect(r.status).toBe(429);
      expect(await r.json()).toMatchObject({ status: 429, code: 'blocked' });
      // Some of its 10 minutes have passed.
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(Number(r.headers.get('retry-after'))).toBeLessThanOrEqual(600);
    } finally {
      first.serve.child.kill('SIGKILL');
      second?.serve.child.kill('SIGTERM');
      await second?.serve.exited();
    }
  });
});
