/**
 * The keygate of bench/memory.js: `keygate serve` (src/serve.ts) on a profile written by
 * the runner, with many accounts and keys created here before it reports ready. Started
 * with `--expose-gc`, it answers { type: 'memory' } with its memory after two full
 * collections, so what the runner compares is what is still held, not garbage.
 *
 * Usage (by bench/memory.js): node --expose-gc bench/memory-server.js <profile file> <accounts> <keys per account>
 * The secrets go to the runner over IPC only: they are never printed.
 */
import { serveUntilStopped } from './common.js';
import { loadConfigFile } from '../dist/config/load.js';
import { serve } from '../dist/serve.js';
import { createAccount } from '../dist/operations/accounts.js';
import { createKey } from '../dist/operations/keys.js';

const [profileFile, accountsArg, keysPerAccountArg] = process.argv.slice(2);

/** The process's memory as it holds it: after full collections (young and old). */
function settledMemory() {
  if (typeof globalThis.gc !== 'function') throw new Error('memory-server.js needs node --expose-gc');
  globalThis.gc();
  globalThis.gc();
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapUsed, external, arrayBuffers };
}

serveUntilStopped(async () => {
  const accounts = Number(accountsArg);
  const keysPerAccount = Number(keysPerAccountArg);
  if (!profileFile || !(accounts > 0) || !(keysPerAccount > 0)) throw new Error('usage: memory-server.js <profile file> <accounts> <keys per account>');
  const running = await serve(loadConfigFile(profileFile), { adminToken: 'memory-bench-admin-token', ports: { gateway: 0, admin: 0 } });
  const rt = running.runtime;
  const secrets = [];
  for (let a = 0; a < accounts; a++) {
    const account = await createAccount(rt, { name: `memory ${a}` }, 'bench');
    for (let k = 0; k < keysPerAccount; k++) secrets.push((await createKey(rt, { accountId: account.id, name: `key ${k}` }, 'bench')).secret);
  }
  process.on('message', (message) => {
    if (message?.type === 'memory') process.send?.({ type: 'memory', ...settledMemory() });
  });
  return { info: { url: running.gatewayUrl, secrets }, stop: () => running.close() };
});
