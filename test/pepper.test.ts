/**
 * KEYGATE_PEPPER turns key hashes into HMACs: a process started with another pepper (or
 * none) would refuse every existing key as unknown, without a word. It refuses to start.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createRuntime, forgetKeyHashing, KeyHashingMismatchError, keyHashingState } from '../src/runtime.js';
import { parseConfigObject } from '../src/config/load.js';
import { createAccount } from '../src/operations/accounts.js';
import { createKey } from '../src/operations/keys.js';
import { tempDir } from './support/temp.js';
import { runCli } from './support/cli.js';

describe('the pepper a database was made with', () => {
  const dir = tempDir('pepper');
  const loaded = { config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}`, log: { level: 'silent' } }), file: 'inline', dir };
  const start = (pepper?: string) => createRuntime(loaded, { env: pepper === undefined ? {} : { KEYGATE_PEPPER: pepper } });

  const present = (rt: Awaited<ReturnType<typeof start>>, secret: string) => rt.pipeline.authorize({ method: 'GET', path: '/x', url: '/x', headers: { authorization: `Bearer ${secret}` } });

  it('is recorded once a key is found by its hash, and required of every later start: another pepper, or none, stops it with the variable named', async () => {
    // On a database with keys but no record (made before the record existed), a process
    // that has not yet seen a key proven proves nothing: a CLI run without the pepper (or
    // with a wrong one) records nothing and starts.
    const maker = await createRuntime(loaded, { env: { KEYGATE_PEPPER: 'first pepper' }, use: 'command' });
    const account = await createAccount(maker, { name: 'Acme' }, 'test');
    const { secret } = await createKey(maker, { accountId: account.id, name: 'k' }, 'test');
    await maker.close();
    const first = await start('first pepper');
    expect(await first.store.getSetting('key_hash_check')).toBeUndefined();
    const stray = await createRuntime(loaded, { env: {}, use: 'command' });
    await stray.close();
    expect(await present(first, secret)).toMatchObject({ allowed: true });
    await expect.poll(() => first.store.getSetting('key_hash_check')).toBeDefined();
    await first.close();

    await expect(start('second pepper')).rejects.toThrow(KeyHashingMismatchError);
    await expect(start('second pepper')).rejects.toThrow(/^KEYGATE_PEPPER is not the pepper this database's keys were made with: every existing key would be refused\./);
    await expect(start()).rejects.toThrow(/^KEYGATE_PEPPER is not set, but this database's keys were made with a pepper: every existing key would be refused\. Start every process with the same KEYGATE_PEPPER\./);

    const again = await start('first pepper');
    try {
      expect(await present(again, secret)).toMatchObject({ allowed: true });
    } finally {
      await again.close();
    }
  });

  it('is recorded by a serving process on a database without keys, so that a CLI run without the pepper is refused before it prints a key that would never work', async () => {
    const dir = tempDir('pepper-fresh');
    const fresh = { config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}`, log: { level: 'silent' } }), file: 'inline', dir };
    const serving = await createRuntime(fresh, { env: { KEYGATE_PEPPER: 'server pepper' } });
    try {
      await expect(createRuntime(fresh, { env: {}, use: 'command' })).rejects.toThrow(/^KEYGATE_PEPPER is not set, but this database's keys were made with a pepper/);
      const cli = await createRuntime(fresh, { env: { KEYGATE_PEPPER: 'server pepper' }, use: 'command' });
      const account = await createAccount(cli, { name: 'Acme' }, 'test');
      const { secret } = await createKey(cli, { accountId: account.id, name: 'k' }, 'test');
      await cli.close();
      expect(await present(serving, secret)).toMatchObject({ allowed: true });
    } finally {
      await serving.close();
    }
  });

  it('is checked and forgotten with `keygate pepper check` and `keygate pepper forget`', async () => {
    const dir = tempDir('pepper-cli');
    const configFile = path.join(dir, 'keygate.yaml');
    const profile = { upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}`, log: { level: 'silent' } };
    writeFileSync(configFile, stringify(profile));
    const cli = (pepper: string, ...args: string[]) => runCli(['--config', configFile, 'pepper', ...args], { env: { KEYGATE_PEPPER: pepper } });

    // Away from its database, nothing is answered (not "nothing recorded" from a new, empty one).
    expect((await cli('right', 'check')).stderr).toMatch(/^error: no database at .*k\.db: .*begin one with keygate migrate\n$/);
    expect((await runCli(['--config', configFile, 'migrate'])).code).toBe(0);
    expect(await cli('right', 'check')).toEqual({ code: 0, stdout: "nothing recorded yet: the first key a running keygate finds by its hash (or a keygate that starts serving while there is no key) records that process's KEYGATE_PEPPER\n", stderr: '' });
    const rt = await createRuntime({ config: parseConfigObject(profile), file: configFile, dir }, { env: { KEYGATE_PEPPER: 'right' } });
    const account = await createAccount(rt, { name: 'Acme' }, 'test');
    const { secret } = await createKey(rt, { accountId: account.id, name: 'k' }, 'test');
    expect(await present(rt, secret)).toMatchObject({ allowed: true });
    await expect.poll(() => keyHashingState(rt.store, rt.hashKey)).toBe('matches');
    await rt.close();

    expect(await cli('right', 'check')).toEqual({ code: 0, stdout: "KEYGATE_PEPPER is the pepper this database's keys were made with\n", stderr: '' });
    const wrong = await cli('wrong', 'check');
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toBe('');
    expect(wrong.stderr).toMatch(/^error: KEYGATE_PEPPER is not the pepper this database's keys were made with: .* forget it: keygate pepper forget --config <file>\.\n$/);

    const forgotten = await cli('wrong', 'forget', '--json');
    expect(forgotten).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(forgotten.stdout)).toEqual({ forgotten: true });
    // Now a process with the other pepper starts.
    const other = await createRuntime({ config: parseConfigObject(profile), file: configFile, dir }, { env: { KEYGATE_PEPPER: 'wrong' } });
    await other.close();
    expect((await cli('wrong', 'forget')).stdout).toBe('nothing was recorded\n');

    // A database whose keys were made without a pepper, checked without one.
    const none = await createRuntime({ config: parseConfigObject(profile), file: configFile, dir }, { env: {} });
    await forgetKeyHashing(none.store);
    const account2 = await createAccount(none, { name: 'Plain' }, 'test');
    expect(await present(none, (await createKey(none, { accountId: account2.id, name: 'k' }, 'test')).secret)).toMatchObject({ allowed: true });
    await expect.poll(() => keyHashingState(none.store, none.hashKey)).toBe('matches');
    await none.close();
    expect(await cli('', 'check')).toEqual({ code: 0, stdout: "KEYGATE_PEPPER is not set, and this database's keys were made without a pepper\n", stderr: '' });
    // ... and with one: said as it is, not as "not the pepper" (which of the three cases?).
    expect(await cli('a pepper', 'check')).toEqual({
      code: 1,
      stdout: '',
      stderr: "error: KEYGATE_PEPPER is set, but this database's keys were made without a pepper: every existing key would be refused. Start every process without KEYGATE_PEPPER. If keys are to be made with a pepper from now on (which invalidates every existing key), forget it: keygate pepper forget --config <file>.\n",
    });
  });
});
