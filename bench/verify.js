/**
 * Case (v): in-process verification of a cached key on one core. Builds a runtime on a
 * temp SQLite file, issues one key, puts it in the cache, then loops for a fixed time
 * over what a warm request does for its key: the shape check (prefix and length; a
 * cached key skips the alphabet and the CRC32, which guard the store) and
 * `pipeline.identify` (hash, cache lookup by digest).
 *
 * Usage (by the runner): node bench/verify.js <profile file> <warm-up ms> <duration ms>
 * Prints nothing; sends { verificationsPerSecond, ... } to the runner.
 *
 * Also (by bench/instructions.js): node bench/verify.js <profile file> --authorize <n>
 * calls the whole `pipeline.authorize` for the cached key n times and exits.
 */
import { loadConfigFile } from '../dist/config/load.js';
import { createRuntime } from '../dist/runtime.js';
import { createAccount } from '../dist/operations/accounts.js';
import { createKey } from '../dist/operations/keys.js';

const [profileFile, warmupArg, durationArg] = process.argv.slice(2);
const BATCH = 10_000;

/** Runs the verification loop for `ms`; returns [verifications, failures, elapsed ms]. */
function loop(rt, secret, ms) {
  const { keyFormat, pipeline } = rt;
  let done = 0;
  let failed = 0;
  const started = performance.now();
  const deadline = started + ms;
  while (performance.now() < deadline) {
    for (let i = 0; i < BATCH; i++) {
      const shape = keyFormat.shape(secret);
      const found = shape.ok ? pipeline.identify(secret, Date.now()) : undefined;
      if (!found || found.key.revokedAt !== null) failed++;
    }
    done += BATCH;
  }
  return [done, failed, performance.now() - started];
}

async function main() {
  const rt = await createRuntime(loadConfigFile(profileFile));
  try {
    const account = await createAccount(rt, { name: 'bench' }, 'bench');
    const { secret } = await createKey(rt, { accountId: account.id, name: 'bench' }, 'bench');
    // One real request through the pipeline puts the key in the cache.
    // The header value as Node's parser leaves it: one flat string, not a concatenation.
    const request = { method: 'GET', path: '/v1/data', url: '/v1/data', headers: { authorization: Buffer.from(`Bearer ${secret}`).toString('latin1') } };
    const first = await rt.pipeline.authorize(request);
    if (!first.allowed) throw new Error(`the bench key was refused: ${first.denial.reason}`);
    if (warmupArg === '--authorize') {
      let decision;
      for (let i = Number(durationArg); i > 0; i--) decision = rt.pipeline.authorize(request);
      // Every call must have taken the path being counted: answered at once, and allowed.
      if (!decision || decision instanceof Promise || !decision.allowed) throw new Error('the cached key was not admitted synchronously: the count is of another path');
      return;
    }
    loop(rt, secret, Number(warmupArg));
    const [done, failed, elapsed] = loop(rt, secret, Number(durationArg));
    process.send?.({ type: 'result', verifications: done, failed, seconds: elapsed / 1000, verificationsPerSecond: (done / elapsed) * 1000 });
  } finally {
    await rt.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.send?.({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  },
);
