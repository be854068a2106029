/**
 * Hand-set keys from Kong (`bob.secret~…`) under `keys.imported.alphabet: unreserved`
 * (letters, digits, `-`, `_`, `.`, `~`): imported with the CLI, used in a header and in a
 * query parameter (as sent, or percent-encoded) through the real gateway, and never in a
 * log line, wherever the key is in the request, escaped or not.
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

/** Every character escaped (`%62%6F%62%2E…`), as some clients write a parameter. */
const allEscaped = (text: string) => [...text].map((char) => `%${char.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).join('');

describe('hand-set imported keys with "." and "~" (keys.imported.alphabet: unreserved)', () => {
  const dir = tempDir('unreserved-imported-keys');
  const configFile = path.join(dir, 'keygate.yaml');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let accountId: string;
  /** As set by hand in Kong: 25 plain characters, then a `.`, and a `~` in the few after it. */
  const tail = randomBase62(4);
  const key = `bob-${randomBase62(16)}-2023.secret~${tail}`;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    const profile: ConfigInput = {
      upstream: { url: upstream.url },
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      keys: { prefix: { live: 'kg_live_' }, imported: { alphabet: 'unreserved', length: { min: 20, max: 40 } } },
      auth: { credentials: [{ in: 'header', name: 'apikey', scheme: 'none' }, { in: 'query', name: 'apikey' }] },
      log: { level: 'debug', requests: true },
      dashboard: { enabled: false },
    };
    writeFileSync(configFile, stringify(profile));
    kg = await startKeygate(profile, { dir });
    const created = await runCli(['--config', configFile, 'accounts', 'create', '--name', 'bob', '--json']);
    expect(created.stderr).toBe('');
    accountId = (JSON.parse(created.stdout) as { id: string }).id;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('imports the key from stdin with keys import; a key with a character outside the alphabet is refused, saying the shape', async () => {
    const imported = await runCli(['--config', configFile, 'keys', 'import', '--account', accountId, '--name', 'kong bob', '--json'], { input: `${key}\n` });
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ name: 'kong bob', status: 'active' });
    expect(imported.stdout).not.toContain(key);
    const slashed = await runCli(['--config', configFile, 'keys', 'import', '--account', accountId, '--name', 'slash'], { input: `bob/${randomBase62(20)}` });
    expect(slashed.code).toBe(1);
    expect(slashed.stderr).toContain('no prefix, then 20 to 40 unreserved characters (letters, digits, "-", "_", "." and "~")');
  });

  it('lets the key through in the header, in the query parameter as sent, and percent-encoded; the upstream receives it in neither', async () => {
    const sent: [string, RequestInit][] = [
      ['/v1/data?x=1', { headers: { apikey: key } }],
      [`/v1/data?apikey=${key}&x=1`, {}],
      [`/v1/data?apikey=${encodeURIComponent(key)}&x=1`, {}],
      [`/v1/data?apikey=${allEscaped(key)}&x=1`, {}],
    ];
    for (const [target, init] of sent) {
      const response = await kg.call(target, init);
      expect(response.status, target).toBe(200);
      await response.text();
      expect(upstream.received.at(-1)?.url).toBe('/v1/data?x=1');
      expect(JSON.stringify(upstream.received.at(-1))).not.toContain(key);
    }
  });

  it('keeps the key out of every log line: credential parameter, another parameter, the path, with "." and "~" escaped', async () => {
    const dotEscaped = key.replace('.', '%2E').replace('~', '%7E');
    const targets = [`/v1/data?apikey=${dotEscaped}`, `/v1/data?q=${key}`, `/v1/data?q=${dotEscaped}`, `/v1/data/${key}`, `/v1/data/${dotEscaped}`];
    for (const target of targets) await (await kg.call(target, { headers: { apikey: key } })).text();
    await kg.runtime.flush();
    const logged = kg.logs.lines.map((line) => JSON.parse(line) as { msg?: string; target?: string }).filter((line) => line.msg === 'request').map((line) => line.target);
    expect(logged.slice(-targets.length)).toEqual(['/v1/data?apikey=[REDACTED]', '/v1/data?q=[REDACTED]', '/v1/data?q=[REDACTED]', '/v1/data/[REDACTED]', '/v1/data/[REDACTED]']);
    const [before, after] = key.split('.') as [string, string];
    for (const part of [key, before, after, `secret%7E${tail}`]) expect(kg.logs.text).not.toContain(part);
  });
  it('keeps the part of the key before an escape out of the log line too (one character escaped 17 in: the rest of the key after it is long enough to be hidden alone)', async () => {
    const at = 17;
    const split = `${key.slice(0, at)}%${key.charCodeAt(at).toString(16).toUpperCase()}${key.slice(at + 1)}`;
    await (await kg.call(`/v1/data/${split}?q=${split}`, { headers: { apikey: key } })).text();
    await kg.runtime.flush();
    const logged = kg.logs.lines.map((line) => JSON.parse(line) as { msg?: string; target?: string }).filter((line) => line.msg === 'request').map((line) => line.target);
    expect(logged.at(-1)).toBe('/v1/data/[REDACTED]?q=[REDACTED]');
    expect(kg.logs.text).not.toContain(key.slice(4, at));
  });

  it('takes an account or key name with a run of the alphabet a key long (acme-industries.co.uk), and refuses one holding an imported key, also beside other characters, through the CLI and the admin API', async () => {
    const refusal = 'name cannot contain an API key (it would be stored and shown in clear): name it after what it is for';
    const account = await runCli(['--config', configFile, 'accounts', 'create', '--name', 'acme-industries.co.uk', '--json']);
    expect(account.stderr).toBe('');
    const acme = JSON.parse(account.stdout) as { id: string; name: string };
    expect(acme.name).toBe('acme-industries.co.uk');
    const keyNamed = await runCli(['--config', configFile, 'keys', 'create', '--account', acme.id, '--name', 'quarterly-report.v2.pdf export', '--json']);
    expect(keyNamed.stderr).toBe('');
    expect((JSON.parse(keyNamed.stdout) as { name: string }).name).toBe('quarterly-report.v2.pdf export');
    // The imported key, alone, glued to a word of its alphabet, or inside a longer run, in a name of its own
    // account's (only the account's own keys are looked for: see the store suite).
    for (const name of [key, `prod-${key}`, `copy of ${key}.old`]) {
      const refused = await runCli(['--config', configFile, 'keys', 'create', '--account', accountId, '--name', name]);
      expect(refused.code, name).toBe(1);
      expect(refused.stderr).toContain(`a key ${refusal}`);
      expect(refused.stderr).not.toContain(key);
    }
    const renamed = await runCli(['--config', configFile, 'accounts', 'update', accountId, '--name', `acme ${key}`]);
    expect(renamed.code).toBe(1);
    expect(renamed.stderr).toContain(`an account ${refusal}`);
    const patched = await kg.admin(`/v1/accounts/${accountId}`, { method: 'PATCH', body: JSON.stringify({ name: `acme-${key}` }) });
    expect(patched.status).toBe(400);
    expect(((await patched.json()) as { detail: string }).detail).toBe(`an account ${refusal}`);
    // A key imported under a name holding it is not stored yet when the name is checked.
    const another = `carol-${randomBase62(20)}`;
    const selfNamed = await runCli(['--config', configFile, 'keys', 'import', '--account', acme.id, '--name', `kong ${another}`], { input: `${another}\n` });
    expect(selfNamed.code).toBe(1);
    expect(selfNamed.stderr).toContain(`a key ${refusal}`);
    const names = JSON.stringify([await (await kg.admin('/v1/accounts')).json(), await (await kg.admin('/v1/keys')).json()]);
    for (const secret of [key, another]) expect(names).not.toContain(secret);
  });

  it("names keygate's own ids in errors as they are (an id is no key, although it has a key's characters): the admin API's 404 and the CLI's refusal", async () => {
    const keyId = `key_${randomBase62(16)}`;
    const otherAccountId = `acc_${randomBase62(16)}`;
    const missingKey = await kg.admin(`/v1/keys/${keyId}`);
    expect(missingKey.status).toBe(404);
    expect(((await missingKey.json()) as { detail: string }).detail).toBe(`no key "${keyId}"`);
    const missingAccount = await kg.admin(`/v1/accounts/${otherAccountId}`);
    expect(((await missingAccount.json()) as { detail: string }).detail).toBe(`no account "${otherAccountId}"`);
    const revoked = await runCli(['--config', configFile, 'keys', 'revoke', keyId]);
    expect(revoked.code).not.toBe(0);
    expect(revoked.stderr).toContain(`no key "${keyId}"`);
    // Which is so because no key of an id's shape is taken: it would be said in clear.
    const idShaped = await runCli(['--config', configFile, 'keys', 'import', '--account', accountId, '--name', 'id-shaped'], { input: `${keyId}\n` });
    expect(idShaped.code).toBe(1);
    expect(idShaped.stderr).toContain('no prefix, then 20 to 40 unreserved characters');
    // The key itself, sent where an id goes, is still not said back.
    const byKey = await kg.admin(`/v1/keys/${key}`);
    expect(byKey.status).toBe(404);
    expect(await byKey.text()).not.toContain(key);
  });
});

describe('prefixed imported keys of the unreserved alphabet in a header name', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  /** `rk_` and a hand-set body with a `.` and a `~` among its first 16 characters. */
  const key = `rk_bob.${randomBase62(4)}~${randomBase62(16)}`;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        keys: { prefix: { live: 'sk_live_' }, imported: { prefix: { live: 'rk_' }, alphabet: 'unreserved', length: { min: 20, max: 40 } } },
        auth: { credentials: [{ in: 'header', name: 'apikey', scheme: 'none' }] },
      },
      { dir: tempDir('unreserved-imported-keys-names') },
    );
    const account = (await (await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'bob' }) })).json()) as { id: string };
    expect((await kg.admin('/v1/keys/import', { method: 'POST', body: JSON.stringify({ accountId: account.id, name: 'kong bob', secret: key }) })).status).toBe(201);
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('does not pass on a header whose name holds such a key (a client that swapped name and value), in any case; a name with the prefix and a word goes', async () => {
    const response = await kg.call('/v1/data', { headers: { apikey: key, [`x-${key}`]: '1', [`X-${key.toUpperCase()}`]: '2', 'x-rk_bob.docs': '3' } });
    expect(response.status).toBe(200);
    await response.text();
    const names = Object.keys(upstream.received.at(-1)!.headers);
    expect(names.filter((name) => name.startsWith('x-rk_'))).toEqual(['x-rk_bob.docs']);
  });

  it('forwards text that holds the prefix inside a word (network_configuration.settings) as sent, in a query value, a header value and a header name; a key after a delimiter still goes', async () => {
    const file = 'network_configuration.settings';
    const response = await kg.call(`/v1/data?file=${file}&path=/etc/${file}&x=1`, { headers: { apikey: key, 'x-file': `conf/${file}`, [`x-${file}`]: '1', 'x-other-key': `token:${key}` } });
    expect(response.status).toBe(200);
    await response.text();
    const received = upstream.received.at(-1)!;
    expect(received.url).toBe(`/v1/data?file=${file}&path=/etc/${file}&x=1`);
    expect(received.headers['x-file']).toBe(`conf/${file}`);
    expect(received.headers[`x-${file}`]).toBe('1');
    expect(received.headers['x-other-key']).toBeUndefined();
    // The key itself, after `=`, `:`, `/`, a space or an escape, or upper-cased after `-` in a name, is not forwarded.
    const keyed = await kg.call(`/v1/data?q=${key}&f=key:${key}&p=/${key}&b=Bearer%20${key}&x=1`, { headers: { apikey: key, [`x-${key.toUpperCase()}`]: '1', referer: `https://app.example/?k=${key}` } });
    expect(keyed.status).toBe(200);
    await keyed.text();
    expect(upstream.received.at(-1)!.url).toBe('/v1/data?x=1');
    expect(JSON.stringify(upstream.received.at(-1))).not.toContain(key.slice(3));
  });

  it('takes an account or key name holding the prefix inside a word (network_configuration.settings); a name holding such a key is still refused', async () => {
    const named = await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'network_configuration.settings' }) });
    expect(named.status).toBe(201);
    const account = (await named.json()) as { id: string; name: string };
    expect(account.name).toBe('network_configuration.settings');
    const keyNamed = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: account.id, name: 'backup of network_configuration.settings' }) });
    expect(keyNamed.status).toBe(201);
    // After a letter or digit the prefix continues a word; after anything else (`_` too: old_rk_…) it begins a key.
    for (const name of [`copy of ${key}`, `old-${key}`, `old_${key}`, `key:${key.toUpperCase()}`, `a%20${key}`]) {
      const refused = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: account.id, name }) });
      expect(refused.status, name).toBe(400);
      expect(((await refused.json()) as { detail: string }).detail).toBe('a key name cannot contain an API key (it would be stored and shown in clear): name it after what it is for');
    }
  });
});
