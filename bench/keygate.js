/**
 * Cases (c), (d), (e): `keygate serve` (src/serve.ts) on a profile written by the
 * runner, in its own process, with one account and one key created here. Reports the
 * gateway's URL and the key's secret to the runner.
 *
 * Usage (by the runner): node bench/keygate.js <profile file>
 * PostgreSQL stores are migrated first (serving refuses an unmigrated database). With
 * Redis counters, answers { type: 'redis-traffic' } with the commands and round trips
 * this process has sent to Redis so far (unless KEYGATE_BENCH_REDIS_TRAFFIC=off).
 */
import { randomBytes } from 'node:crypto';
import { serveUntilStopped } from './common.js';
import { loadConfigFile } from '../dist/config/load.js';
import { openStore } from '../dist/store/open.js';
import { serve } from '../dist/serve.js';
import { createAccount } from '../dist/operations/accounts.js';
import { createKey } from '../dist/operations/keys.js';

const profileFile = process.argv[2];

serveUntilStopped(async () => {
  if (!profileFile) throw new Error('usage: keygate.js <profile file>');
  const loaded = loadConfigFile(profileFile);
  if (loaded.config.counters.startsWith('redis') && process.env.KEYGATE_BENCH_REDIS_TRAFFIC !== 'off') {
    // Count this process's Redis traffic; the runner asks for it around the measured run
    // (not under bench/instructions.js, which counts keygate's instructions alone).
    const { redisTraffic } = await import('./redis-count.js');
    process.on('message', (message) => {
      if (message?.type === 'redis-traffic') process.send?.({ type: 'redis-traffic', ...redisTraffic });
    });
  }
  let store;
  if (loaded.config.store.startsWith('postgres')) {
    store = openStore(loaded.config.store);
    await store.migrate();
  }
  const running = await serve(loaded, {
    ...(store ? { store } : {}),
    // The admin API listens too (idle), as in a real deployment.
    adminToken: randomBytes(16).toString('hex'),
    // bench/instructions.js turns the store flush down so it stays out of what it counts.
    ...(Number(process.env.KEYGATE_BENCH_FLUSH_MS) > 0 ? { flushIntervalMs: Number(process.env.KEYGATE_BENCH_FLUSH_MS) } : {}),
    ports: { gateway: 0, admin: 0 },
  });
  const rt = running.runtime;
  const account = await createAccount(rt, { name: 'bench' }, 'bench');
  const { secret } = await createKey(rt, { accountId: account.id, name: 'bench' }, 'bench');
  return {
    info: {
      url: running.gatewayUrl,
      secret,
      store: rt.store.kind,
      counters: rt.counters.kind,
      logLevel: rt.config.log.level,
      logRequests: rt.config.log.requests,
    },
    stop: () => running.close(),
  };
});
