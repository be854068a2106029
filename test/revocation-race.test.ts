/**
 * A revocation heard while a lookup of the same key is still running in the store: the
 * lookup may have read the key before it was revoked. What it found answers the request
 * that asked (sent before the revocation was heard), but is not cached: the next request
 * looks again and is refused, instead of being admitted for keyCacheTtl.
 *
 * The store is a real SQLite file; only its answers to key lookups are held back, as a
 * slow or stalled database would hold them.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { parseConfigObject } from '../src/config/load.js';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
import { createAccount } from '../src/operations/accounts.js';
import { createKey, revokeKey } from '../src/operations/keys.js';
import { tempDir } from './support/temp.js';

/** A store whose key lookups read at once but answer only when let go (while `holding`). */
function slowLookups(store: Store) {
  const control = { holding: false, reads: 0, letGo: () => {} };
  let gate = Promise.resolve();
  const held = new Proxy(store, {
    get(target, name, receiver) {
      if (name !== 'findKeyByHash') return Reflect.get(target, name, receiver);
      return async (hash: string) => {
        const found = await target.findKeyByHash(hash);
        control.reads++;
        if (control.holding) await gate;
        return found;
      };
    },
  });
  const hold = () => {
    control.holding = true;
    gate = new Promise<void>((resolve) => (control.letGo = resolve));
  };
  const release = () => {
    control.holding = false;
    control.letGo();
  };
  return { store: held, control, hold, release };
}

describe('a revocation heard during a lookup of the key', () => {
  const dir = tempDir('revocation-race');
  let rt: Runtime | undefined;

  afterEach(async () => {
    await rt?.close();
    rt = undefined;
  });

  async function start(name: string) {
    const file = path.join(dir, `${name}.db`);
    const loaded = { config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${file}`, keyCacheTtl: '1h', log: { level: 'silent' } }), file: 'inline', dir };
    const slow = slowLookups(openStore(`sqlite:${file}`));
    rt = await createRuntime(loaded, { store: slow.store });
    const account = await createAccount(rt, { name: 'Acme' }, 'test');
    const { secret, key } = await createKey(rt, { accountId: account.id, name: 'k' }, 'test');
    const request = { method: 'GET', path: '/x', url: '/x', headers: { authorization: `Bearer ${secret}` } };
    return { rt, slow, keyId: key.id, present: () => Promise.resolve((rt as Runtime).pipeline.authorize(request)) };
  }

  it('answers the request that asked by what was read, and refuses the next one', async () => {
    const { rt: runtime, slow, keyId, present } = await start('within');
    slow.hold();
    const asked = present();
    await expect.poll(() => slow.control.reads).toBe(1);
    await revokeKey(runtime, keyId, 'test');
    slow.release();
    // Read before the revocation: the request sent meanwhile is admitted.
    expect(await asked).toMatchObject({ allowed: true });
    expect(await present()).toMatchObject({ allowed: false, denial: { reason: 'revoked_key' } });
  });

  it('does not cache a late answer (after the 2 s lookup deadline) that a revocation came before', async () => {
    const { rt: runtime, slow, keyId, present } = await start('late');
    slow.hold();
    const asked = present();
    // Past its deadline the request is answered 503 (the store is as good as unreachable).
    expect(await asked).toMatchObject({ allowed: false, denial: { reason: 'service_unavailable' } });
    await revokeKey(runtime, keyId, 'test');
    slow.release();
    // The late answer arrives now (the key, then its account, from SQLite: well within
    // 50 ms); the next request must not find it cached.
    expect(slow.control.reads).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await present()).toMatchObject({ allowed: false, denial: { reason: 'revoked_key' } });
  });
});
