/**
 * Long account and key names where imported keys have no prefix (`keys.imported`: unreserved,
 * 16 to 256 characters), through the admin API and the CLI: one of the account's keys is
 * refused wherever it is in a name, revoked too, while only the parts that end as one of the
 * account's keys are hashed; a name strung together to make thousands of them is refused,
 * saying what to do.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { runCli } from './support/cli.js';
import { tempDir } from './support/temp.js';
import { randomBase62 } from '../src/keys/format.js';
import type { ConfigInput } from '../src/config/schema.js';

const HOLDS_KEY = 'a key name cannot contain an API key (it would be stored and shown in clear): name it after what it is for';
const TOO_MANY = "an account name has too many parts that could be one of the account's keys to check them all: shorten it, or break it up with spaces";

/** Letters only, `length` of them (the keys below end in digits). */
function letters(length: number): string {
  let out = '';
  while (out.length < length) out += randomBase62(length).replace(/[0-9]/g, '');
  return out.slice(0, length);
}

describe('long names where imported keys have no prefix', () => {
  const dir = tempDir('long-names-imported-keys');
  const configFile = path.join(dir, 'keygate.yaml');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let accountId: string;
  let renamedId: string;
  /** Hand-set keys as Kong had them, ending in a year. */
  const active = `bob.${randomBase62(20)}~2023`;
  const revoked = `carol.${randomBase62(20)}~2019`;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    const profile: ConfigInput = {
      upstream: { url: upstream.url },
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      keys: { prefix: { live: 'kg_live_' }, imported: { alphabet: 'unreserved', length: { min: 16, max: 256 } } },
      auth: { credentials: [{ in: 'header', name: 'apikey', scheme: 'none' }] },
      dashboard: { enabled: false },
    };
    writeFileSync(configFile, stringify(profile));
    kg = await startKeygate(profile, { dir });
    accountId = ((await (await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'bob' }) })).json()) as { id: string }).id;
    for (const [secret, name] of [[active, 'kong bob'], [revoked, 'kong carol']]) {
      const imported = await kg.admin('/v1/keys/import', { method: 'POST', body: JSON.stringify({ accountId, name, secret }) });
      expect(imported.status).toBe(201);
      if (secret === revoked) expect((await kg.admin(`/v1/keys/${((await imported.json()) as { id: string }).id}/revoke`, { method: 'POST' })).status).toBe(200);
    }
    const named = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'to rename' }) });
    renamedId = ((await named.json()) as { id: string }).id;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it("refuses a 100-character key name holding one of the account's keys wherever it is (a revoked one too), and takes 100 characters without one", async () => {
    for (const key of [active, revoked]) {
      for (let at = 0; at + key.length <= 100; at += key === active ? 1 : 7) {
        const around = letters(100);
        const name = around.slice(0, at) + key + around.slice(at + key.length);
        const refused = await kg.admin(`/v1/keys/${renamedId}`, { method: 'PATCH', body: JSON.stringify({ name }) });
        expect(refused.status, `at ${at}`).toBe(400);
        const body = await refused.text();
        expect((JSON.parse(body) as { detail: string }).detail, `at ${at}`).toBe(HOLDS_KEY);
        expect(body).not.toContain(key);
      }
    }
    const long = letters(100);
    const renamed = await kg.admin(`/v1/keys/${renamedId}`, { method: 'PATCH', body: JSON.stringify({ name: long }) });
    expect(renamed.status).toBe(200);
    expect(((await (await kg.admin(`/v1/keys/${renamedId}`)).json()) as { name: string }).name).toBe(long);
  });

  it("refuses an account name stringing the account's keys' last four characters together (thousands of parts to look up), saying what to do, through the admin API and the CLI; broken up with spaces it is taken", async () => {
    // 200 characters: a year one of the keys ends with at every fourth place, in no order.
    const strung = Array.from({ length: 50 }, () => (Math.random() < 0.5 ? '2023' : '2019')).join('');
    const patched = await kg.admin(`/v1/accounts/${accountId}`, { method: 'PATCH', body: JSON.stringify({ name: strung }) });
    expect(patched.status).toBe(400);
    expect(((await patched.json()) as { detail: string }).detail).toBe(TOO_MANY);
    const updated = await runCli(['--config', configFile, 'accounts', 'update', accountId, '--name', strung]);
    expect(updated.code).toBe(1);
    expect(updated.stderr).toContain(TOO_MANY);
    expect(((await (await kg.admin(`/v1/accounts/${accountId}`)).json()) as { name: string }).name).toBe('bob');
    const spaced = strung.slice(0, 160).match(/.{40}/g)!.join(' ');
    const taken = await kg.admin(`/v1/accounts/${accountId}`, { method: 'PATCH', body: JSON.stringify({ name: spaced }) });
    expect(taken.status).toBe(200);
    expect(((await taken.json()) as { name: string }).name).toBe(spaced);
  });
});
