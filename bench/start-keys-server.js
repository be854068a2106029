/**
 * The keygate of bench/start-keys.js: `keygate serve` (src/serve.ts, through dist/) on a
 * profile written by the runner, over a store that already holds many keys. It reports
 * `ready` once serve() has returned, with how long the start's look for keys outside the
 * key format (Store.keysOfOtherHints) took inside it, and when that look ended relative to
 * serve()'s return (negative: before the listeners were up).
 *
 * Usage (by bench/start-keys.js): node bench/start-keys-server.js <profile file> <check|skip>
 * `skip` answers the look at once ("no such keys"): a start without the warning's query,
 * everything else the same.
 */
import { performance } from 'node:perf_hooks';
import { serveUntilStopped } from './common.js';
import { loadConfigFile } from '../dist/config/load.js';
import { openStore } from '../dist/store/open.js';
import { serve } from '../dist/serve.js';

const [profileFile, mode] = process.argv.slice(2);

serveUntilStopped(async () => {
  if (!profileFile || (mode !== 'check' && mode !== 'skip')) throw new Error('usage: start-keys-server.js <profile file> <check|skip>');
  const loaded = loadConfigFile(profileFile);
  const real = openStore(loaded.config.store);
  const look = { ms: undefined, endedAt: undefined };
  const timed = async (...args) => {
    const started = performance.now();
    try {
      return await real.keysOfOtherHints(...args);
    } finally {
      look.endedAt = performance.now();
      look.ms = look.endedAt - started;
    }
  };
  const answer = mode === 'skip' ? async () => ({ count: 0, hints: [] }) : timed;
  // The same store in both modes, so the two starts differ by the one query only.
  const store = new Proxy(real, {
    get: (target, name) => (name === 'keysOfOtherHints' ? answer : typeof target[name] === 'function' ? target[name].bind(target) : target[name]),
  });
  const running = await serve(loaded, { store, adminToken: 'start-bench-admin-token' });
  const servedAt = performance.now();
  // The look may still run after serve() returned: wait for it (bounded), so its time is reported.
  for (let i = 0; mode === 'check' && look.ms === undefined && i < 600; i++) await new Promise((resolve) => setTimeout(resolve, 100));
  return {
    info: { gateway: running.gatewayUrl, lookMs: look.ms, lookEndedAfterServeMs: look.endedAt === undefined ? undefined : look.endedAt - servedAt },
    stop: async () => {
      await running.close();
      await real.close().catch(() => undefined);
    },
  };
});
