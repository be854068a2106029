/**
 * The `keygate` command as an operator uses it, against a real SQLite file shared with a
 * running gateway: keys created by the CLI work through the proxy, keys revoked by the
 * CLI fail on the very next request, and bad profiles are refused with the field named.
 */
import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli, spawnServe, startFailure, type CliResult } from './support/cli.js';
import { LogCapture, startKeygate, type TestKeygate } from './support/keygate.js';
import { createRuntime } from '../src/runtime.js';
import { loadConfigFile } from '../src/config/load.js';
import { createLog } from '../src/log.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';
import { refusedUrl } from './support/refused.js';
import { namedPort } from './support/ports.js';
import { POSTGRES_URL, REDIS_URL, serviceAvailable } from './support/services.js';
import { deleteRedisKeys, redisUrlWithPrefix, testRedisPrefix } from './backends/isolation.js';
import type { ConfigInput } from '../src/config/schema.js';
import { createAccount } from '../src/operations/accounts.js';
import { createKey } from '../src/operations/keys.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-database.js';
import { createKeyFormat } from '../src/keys/format.js';

/**
 * A profile for a `keygate serve` of a test: every listener on a free port, the dashboard
 * off, the store a SQLite file at `store`; `fields` (the upstream, at least) added.
 */
function serveProfile(store: string, fields: Record<string, unknown>): string {
  return stringify({ listen: { port: 0 }, admin: { listen: { port: 0 } }, store: `sqlite:${store}`, dashboard: { enabled: false }, ...fields });
}

/** What `check --json` says of a profile with upstream.url and the dashboard on (the default). */
const SERVED = { servable: true, gateway: true, listeners: ['gateway', 'admin', 'dashboard'] };

describe('keygate CLI with a running gateway', () => {
  const dir = tempDir('cli');
  const configFile = path.join(dir, 'keygate.yaml');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let profile: ConfigInput;
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);

  beforeAll(async () => {
    upstream = await startTestUpstream();
    profile = {
      name: 'cli-test',
      upstream: { url: upstream.url },
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      keys: { prefix: { live: 'rk_live_', test: 'rk_test_' } },
      scopes: ['metrics:read'],
      plans: { team: { maxKeys: 3, meters: { units: { limit: 1000 } } }, free: { apiAccess: false, maxKeys: 0 } },
      routes: [{ path: '/api/v1/apps/:app/metrics/:metric', scopes: ['metrics:read'], cost: { meter: 'units', perRequest: 10 } }],
      dashboard: { enabled: false },
    };
    writeFileSync(configFile, stringify(profile));
    kg = await startKeygate(profile, { dir });
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  let accountId: string;
  let keyId: string;
  let secret: string;

  it('creates an account', async () => {
    const r = await cli('accounts', 'create', '--name', 'Acme Analytics', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const account = JSON.parse(r.stdout);
    expect(account).toMatchObject({ name: 'Acme Analytics', planId: 'team', apiAccess: true, planExpiresAt: null });
    // Times as the admin API gives them: ISO 8601, UTC.
    expect(account.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    accountId = account.id;
    const list = await cli('accounts', 'list');
    expect(list.stdout).toContain('Acme Analytics');
    expect(list.stdout).toMatch(/^ID\s+NAME\s+PLAN/);
    await cli('accounts', 'create', '--name', 'Globex');
    const found = JSON.parse((await cli('accounts', 'list', '--search', 'acme', '--json')).stdout) as { name: string }[];
    expect(found.map((a) => a.name)).toEqual(['Acme Analytics']);
    const empty = await cli('accounts', 'list', '--search', ' ');
    expect(empty).toMatchObject({ code: 1, stderr: 'error: --search needs some text: a part of the name, or the id\n' });
  });

  it('accounts usage says an account whose plan has no meters has none, where a table would print a bare (none)', async () => {
    const { id } = JSON.parse((await cli('accounts', 'create', '--name', 'Meterless', '--plan', 'free', '--json')).stdout) as { id: string };
    const usage = await cli('accounts', 'usage', id);
    expect([usage.code, usage.stderr]).toEqual([0, '']);
    expect(usage.stdout.split('\n').slice(0, 2)).toEqual([`Meterless (${id}) — plan free, API access off`, 'meters: none (the free plan has none)']);
  });

  it('refuses a plan the profile has not, in --plan, with the plan a typo most likely meant (the plan is named by its id)', async () => {
    const typo = await cli('accounts', 'create', '--name', 'Initech', '--plan', 'Team');
    expect(typo).toMatchObject({ code: 1, stdout: '', stderr: 'error: --plan: no such plan (did you mean "team"?); plans are: team, free\n' });
    const moved = await cli('accounts', 'update', accountId, '--plan', 'fre', '--json');
    expect([moved.code, JSON.parse(moved.stderr)]).toEqual([1, { error: '--plan: no such plan (did you mean "free"?); plans are: team, free' }]);
    // Nothing near: the list alone, and what was typed never repeated.
    expect((await cli('accounts', 'create', '--name', 'Initech', '--plan', 'platinum')).stderr).toBe('error: --plan: no such plan; plans are: team, free\n');
  });

  it('creates a key whose secret is printed once, with a warning', async () => {
    const human = await cli('keys', 'create', '--account', accountId, '--name', 'first', '--mode', 'test');
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/\n {2}rk_test_[0-9A-Za-z]{30}\n/);
    expect(human.stdout).toContain('This is the only time the key is shown');

    const r = await cli('keys', 'create', '--account', accountId, '--name', 'prod', '--scopes', 'metrics:read', '--json');
    expect(r.code).toBe(0);
    const created = JSON.parse(r.stdout);
    expect(created.secret).toMatch(/^rk_live_/);
    expect(created).not.toHaveProperty('hash');
    expect(created.scopes).toEqual(['metrics:read']);
    keyId = created.id;
    secret = created.secret;
  });

  it('a key created by the CLI works through the proxy', async () => {
    const response = await kg.call('/api/v1/apps/app1/metrics/mrr', { headers: { authorization: `Bearer ${secret}` } });
    expect(response.status).toBe(200);
    await response.text();
  });

  it('renames a key and changes its scopes, refusing one the plan does not allow', async () => {
    const created = JSON.parse((await cli('keys', 'create', '--account', accountId, '--name', 'temp', '--scopes', 'metrics:read', '--json')).stdout) as { id: string };
    const renamed = await cli('keys', 'update', created.id, '--name', 'reporting');
    expect(renamed).toMatchObject({ code: 0, stdout: `updated key ${created.id}: reporting, scopes metrics:read\n` });
    const refused = await cli('keys', 'update', created.id, '--scopes', 'metrics:read, billing:write');
    expect(refused.code).toBe(1);
    // A scope the profile does not declare is named by its place, not repeated (it may be a key pasted there).
    expect(refused.stderr).toBe('error: --scopes: the 2nd of 2 is not allowed; allowed: *, metrics:read\n');
    const nothing = await cli('keys', 'update', created.id);
    expect([nothing.code, nothing.stderr]).toEqual([1, 'error: nothing to change: give --name, --scopes or --rate-limit\n']);
    await cli('keys', 'revoke', created.id);
  });

  it("gives a key its own rate limits (keys create/update --rate-limit, none), shows them in keys show and list, and holds the key to them from its next request on", async () => {
    const owner = JSON.parse((await cli('accounts', 'create', '--name', 'Windows Inc', '--json')).stdout) as { id: string };
    const created = await cli('keys', 'create', '--account', owner.id, '--name', 'front-end', '--scopes', 'metrics:read', '--rate-limit', '10-per-1m', '--rate-limit', '1-per-1h', '--json');
    expect(created.code).toBe(0);
    const key = JSON.parse(created.stdout) as { id: string; secret: string; rateLimits: unknown };
    expect(key.rateLimits).toEqual([
      { name: 'key-10-per-1m', limit: 10, window: '1m', scope: 'key' },
      { name: 'key-1-per-1h', limit: 1, window: '1h', scope: 'key' },
    ]);
    const shown = await cli('keys', 'show', key.id);
    expect(shown.stdout).toMatch(/^rateLimits\s+10-per-1m,1-per-1h$/m);
    const listed = await cli('keys', 'list', '--account', owner.id);
    expect(listed.stdout).toMatch(/^ID\s+NAME\s+KEY\s+ACCOUNT\s+MODE\s+SCOPES\s+RATELIMITS\s+STATUS/);
    expect(listed.stdout).toContain(' 10-per-1m,1-per-1h ');
    expect(JSON.parse((await cli('keys', 'list', '--account', owner.id, '--json')).stdout)).toMatchObject([{ id: key.id, rateLimits: [{ name: 'key-10-per-1m' }, { name: 'key-1-per-1h' }] }]);

    // The gateway (another process) holds the key to them: one an hour.
    const call = () => kg.call('/api/v1/apps/app1/metrics/mrr', { headers: { authorization: `Bearer ${key.secret}` } }).then(async (r) => [r.status, await r.text()][0]);
    expect([await call(), await call()]).toEqual([200, 429]);

    // none: no windows of its own, from the key's next request on (it was cached by the gateway).
    const cleared = await cli('keys', 'update', key.id, '--rate-limit', 'none');
    expect(cleared).toMatchObject({ code: 0, stdout: `updated key ${key.id}: front-end, scopes metrics:read, own rate limits (none)\n` });
    expect(await call()).toBe(200);
    expect((await cli('keys', 'show', key.id)).stdout).toMatch(/^rateLimits\s+-$/m);
    const limited = await cli('keys', 'update', key.id, '--rate-limit', '1-per-1d');
    expect(limited).toMatchObject({ code: 0, stdout: `updated key ${key.id}: front-end, scopes metrics:read, own rate limits 1-per-1d\n` });
    expect([await call(), await call()]).toEqual([200, 429]);

    // Refused, each in the flag's words and without the value: a per-account window, a window that is none, plan, two of one length.
    const perAccount = await cli('keys', 'update', key.id, '--rate-limit', '5-per-1m-per-account');
    expect([perAccount.code, perAccount.stderr]).toEqual([
      1,
      "error: --rate-limit: a key's own windows are per key: a window shared by the account's keys (scope account, -per-account) is the account's own limit (accounts update <account> --rate-limit …-per-account)\n",
    ]);
    const typo = await cli('keys', 'create', '--account', owner.id, '--name', 'x', '--scopes', 'metrics:read', '--rate-limit', '10-per-1m', '--rate-limit', '10 per hour');
    expect([typo.code, typo.stderr]).toEqual([1, 'error: --rate-limit (the 2nd of 2): expected <limit>-per-<window> as 10-per-1m or 2-per-1s (no spaces; a window is a number and ms, s, m, h or d), or none (no windows of its own)\n']);
    const plan = await cli('keys', 'update', key.id, '--rate-limit', 'plan');
    expect(plan.stderr).toBe("error: --rate-limit: a key has no plan's windows of its own to give back: give none (the key has no windows of its own; its account's limits still hold), or its windows\n");
    const twice = await cli('keys', 'update', key.id, '--rate-limit', '10-per-1m', '--rate-limit', '20-per-60s');
    expect(twice.stderr).toMatch(/^error: --rate-limit \(the 2nd of 2\): the 1st \(10-per-1m\) is already a per-key window of 1m: /);
    expect(JSON.parse((await cli('keys', 'show', key.id, '--json')).stdout)).toMatchObject({ rateLimits: [{ name: 'key-1-per-1d' }] });
    await cli('keys', 'revoke', key.id);
  });

  it('offers the allowed scope a mistyped one most likely meant (keys create, import, update; the admin API too), creating nothing', async () => {
    const created = JSON.parse((await cli('keys', 'create', '--account', accountId, '--name', 'typo', '--scopes', 'metrics:read', '--json')).stdout) as { id: string };
    const before = (await cli('keys', 'list', '--json')).stdout;
    const meant = '(did you mean "metrics:read"?); allowed: *, metrics:read';
    const create = await cli('keys', 'create', '--account', accountId, '--name', 'typo', '--scopes', 'metrics:raed');
    expect([create.code, create.stdout, create.stderr]).toEqual([1, '', `error: --scopes: the scope given is not allowed ${meant}\n`]);
    // In a list, by its place; a case slip is a typo too.
    const listed = await cli('keys', 'create', '--account', accountId, '--name', 'typo', '--scopes', '*, Metrics:Read');
    expect([listed.code, listed.stderr]).toEqual([1, `error: --scopes: the 2nd of 2 is not allowed ${meant}\n`]);
    const update = await cli('keys', 'update', created.id, '--scopes', 'metrics:raed');
    expect([update.code, update.stderr]).toEqual([1, `error: --scopes: the scope given is not allowed ${meant}\n`]);
    const imported = await runCli(['--config', configFile, 'keys', 'import', '--account', accountId, '--name', 'typo', '--scopes', 'metrics:raed'], { input: kg.runtime.keyFormat.generate('live') });
    expect([imported.code, imported.stderr]).toEqual([1, `error: --scopes: the scope given is not allowed ${meant}\n`]);
    // Nothing near: no guess. Of several refused, each with its own.
    const far = await cli('keys', 'create', '--account', accountId, '--name', 'typo', '--scopes', 'billing:write');
    expect(far.stderr).toBe('error: --scopes: the scope given is not allowed; allowed: *, metrics:read\n');
    const several = await cli('keys', 'update', created.id, '--scopes', 'metrics:raed, billing:write');
    expect(several.stderr).toBe('error: --scopes: the 1st of 2 (did you mean "metrics:read"?), the 2nd of 2 are not allowed; allowed: *, metrics:read\n');
    expect((await cli('keys', 'list', '--json')).stdout).toBe(before);
    // The admin API, which answers the caller's own request, repeats the value beside the guess.
    const admin = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'typo', scopes: ['metrics:raed'] }) });
    expect(admin.status).toBe(400);
    expect(await admin.json()).toMatchObject({ detail: 'scope metrics:raed not allowed (did you mean "metrics:read"?); allowed: *, metrics:read' });
    await cli('keys', 'revoke', created.id);
  });

  it('refuses * given with other scopes, where a key is created or changed, creating nothing', async () => {
    const wildcard = 'error: scope * already grants every scope, so metrics:read would add nothing: give * alone, or the scopes the key needs without *\n';
    const keysBefore = (await cli('keys', 'list', '--account', accountId, '--json')).stdout;
    const created = await cli('keys', 'create', '--account', accountId, '--name', 'both', '--scopes', '*,metrics:read');
    expect([created.code, created.stdout, created.stderr]).toEqual([1, '', wildcard]);
    expect((await cli('keys', 'list', '--account', accountId, '--json')).stdout).toBe(keysBefore);
    const updated = await cli('keys', 'update', keyId, '--scopes', 'metrics:read, *');
    expect([updated.code, updated.stderr]).toEqual([1, wildcard]);
    expect(JSON.parse((await cli('keys', 'show', keyId, '--json')).stdout).scopes).toEqual(['metrics:read']);
  });

  it('refuses a key given no scopes where every route needs one (it could call nothing), creating or changing nothing', async () => {
    const none = 'error: scopes cannot be empty: every route of this API needs a scope, so a key with none could call nothing; allowed: *, metrics:read\n';
    const keysBefore = (await cli('keys', 'list', '--account', accountId, '--json')).stdout;
    const created = await cli('keys', 'create', '--account', accountId, '--name', 'none', '--scopes', '');
    expect([created.code, created.stdout, created.stderr]).toEqual([1, '', none]);
    expect((await cli('keys', 'list', '--account', accountId, '--json')).stdout).toBe(keysBefore);
    const updated = await cli('keys', 'update', keyId, '--scopes', '');
    expect([updated.code, updated.stderr]).toEqual([1, none]);
    expect(JSON.parse((await cli('keys', 'show', keyId, '--json')).stdout).scopes).toEqual(['metrics:read']);
  });

  it('says to the second until when a rotated key still works', async () => {
    const created = JSON.parse((await cli('keys', 'create', '--account', accountId, '--name', 'rolling', '--json')).stdout) as { id: string };
    const rotated = await cli('keys', 'rotate', created.id, '--overlap', '1h');
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(new RegExp(`^rotated ${created.id} → key_\\w+; the old key works until \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ`));
    // The keys list tells the same end, to the second, where the key still works.
    const ends = /works until (\S+ \S+Z)/.exec(rotated.stdout)?.[1] as string;
    const listed = (await cli('keys', 'list', '--account', accountId)).stdout.split('\n').find((line) => line.startsWith(`${created.id} `));
    expect(listed).toContain(ends);
    for (const line of JSON.parse((await cli('--json', 'keys', 'list', '--account', accountId)).stdout) as { id: string; name: string }[]) {
      if (line.name === 'rolling') await cli('keys', 'revoke', line.id);
    }
  });

  it('keys list says which key replaced which after a rotation with an overlap (ROTATION), also with the replacement on a later page; --json keeps rotatedFrom alone', async () => {
    const created = JSON.parse((await cli('keys', 'create', '--account', accountId, '--name', 'twin', '--json')).stdout) as { id: string };
    const rotated = await cli('--json', 'keys', 'rotate', created.id, '--overlap', '1h');
    const replacement = (JSON.parse(rotated.stdout) as { id: string }).id;
    const lines = (await cli('keys', 'list', '--account', accountId)).stdout.split('\n');
    expect(lines[0]).toMatch(/\sEXPIRES\s+ROTATION$/);
    // Two rows named twin: the old one says what replaced it (its EXPIRES, until when it works), the new one what it replaces.
    expect(lines.find((line) => line.startsWith(`${created.id} `))).toMatch(new RegExp(` twin .*expiring .*\\d\\dZ +replaced by ${replacement}$`));
    expect(lines.find((line) => line.startsWith(`${replacement} `))).toMatch(new RegExp(` twin .*active .* replaces ${created.id}$`));

    // A page ending with the old key: its replacement, on the next page, is named all the same.
    const listed = JSON.parse((await cli('--json', 'keys', 'list', '--account', accountId)).stdout) as Record<string, unknown>[];
    const at = listed.findIndex((key) => key.id === created.id);
    const page = (await cli('keys', 'list', '--account', accountId, '--limit', String(at + 1))).stdout.trimEnd().split('\n');
    expect(page.at(-1)).toMatch(new RegExp(`^${created.id} .* replaced by ${replacement}$`));
    // --json as before: rotatedFrom on the replacement, nothing added.
    expect(listed.find((key) => key.id === replacement)).toMatchObject({ rotatedFrom: created.id });
    expect(listed.every((key) => !('rotation' in key) && !('replacedBy' in key))).toBe(true);
    await cli('keys', 'revoke', created.id);
    await cli('keys', 'revoke', replacement);
  });

  it('keys list --limit names each key’s replacements as the whole list does, on every page, whether they are on the page or a later one', async () => {
    const account = (JSON.parse((await cli('accounts', 'create', '--name', 'Paged Rotations', '--json')).stdout) as { id: string }).id;
    const create = async (name: string) => (JSON.parse((await cli('keys', 'create', '--account', account, '--name', name, '--json')).stdout) as { id: string }).id;
    const rotate = async (id: string) => (JSON.parse((await cli('--json', 'keys', 'rotate', id, '--overlap', '0')).stdout) as { id: string }).id;
    // Oldest first: a, b, c (never rotated), then a's and b's replacements.
    const [a, b, c] = [await create('a'), await create('b'), await create('c')];
    const [a2, b2] = [await rotate(a), await rotate(b)];
    /** Each listed key's ROTATION, the text after its EXPIRES column (empty: neither rotated nor rotated to). */
    const rotations = async (...flags: string[]) => {
      const listed = await cli('keys', 'list', '--account', account, ...flags);
      expect(listed.code).toBe(0);
      const [header = '', ...rows] = listed.stdout.trimEnd().split('\n');
      const at = header.indexOf('ROTATION');
      return { rows: Object.fromEntries(rows.map((row) => [row.split(' ')[0], row.slice(at).trim()])), next: /--after (\S+)/.exec(listed.stderr)?.[1] };
    };
    const whole = (await rotations()).rows;
    expect(whole).toEqual({ [a]: `replaced by ${a2}`, [b]: `replaced by ${b2}`, [c]: '', [a2]: `replaces ${a}`, [b2]: `replaces ${b}` });

    // Both replacements on a later page.
    const first = await rotations('--limit', '2');
    expect(first.rows).toEqual({ [a]: whole[a], [b]: whole[b] });
    // One on the page, one beyond it; then the rest, after the cursor the first page gave.
    expect((await rotations('--limit', '4')).rows).toEqual({ [a]: whole[a], [b]: whole[b], [c]: whole[c], [a2]: whole[a2] });
    expect((await rotations('--limit', '2', '--after', first.next as string)).rows).toEqual({ [c]: whole[c], [a2]: whole[a2] });
  });

  it('says when a replacement stops working: at the end the rotated key had', async () => {
    const created = await cli('keys', 'create', '--account', accountId, '--name', 'quarterly', '--expires', '90d');
    const ends = /; it stops working at (\S+ \S+Z)\n/.exec(created.stdout)?.[1] as string;
    const id = /^created key (key_\w+) /.exec(created.stdout)?.[1] as string;
    const rotated = await cli('keys', 'rotate', id, '--overlap', '1h');
    expect(rotated.code).toBe(0);
    expect(rotated.stdout.split('\n')[1]).toBe(`the new key stops working at ${ends}, when the old one was to (a rotation changes the secret, not how long access lasts)`);
    // The plan allows 3 keys: this rotation's two go before the next key is made.
    const revokeNamed = async (names: string[]) => {
      for (const line of JSON.parse((await cli('--json', 'keys', 'list', '--account', accountId)).stdout) as { id: string; name: string }[]) {
        if (names.includes(line.name)) await cli('keys', 'revoke', line.id);
      }
    };
    await revokeNamed(['quarterly']);
    // The rotated key, revoked with its replacement, is not rotated: the refusal says since when, and to create a key instead.
    const revoked = JSON.parse((await cli('--json', 'keys', 'show', id)).stdout) as { name: string; hint: string; revokedAt: string };
    // When it was revoked, truncated to the second (07:37:00.414 is 07:37:00, not the :01 it was rounded up to).
    const revokedAt = `${revoked.revokedAt.replace('T', ' ').slice(0, 19)} UTC`;
    const refused = await cli('keys', 'rotate', id);
    expect([refused.code, refused.stdout, refused.stderr]).toEqual([1, '', `error: “quarterly” ${revoked.hint} (${id}) was revoked at ${revokedAt}; only an active key can be rotated: create a new key instead\n`]);
    // A key without an end: nothing more is said.
    const open = JSON.parse((await cli('keys', 'create', '--account', accountId, '--name', 'open-ended', '--json')).stdout) as { id: string };
    const plain = await cli('keys', 'rotate', open.id, '--overlap', '0');
    expect(plain.stdout).toMatch(new RegExp(`^rotated ${open.id} → key_\\w+; the old key is revoked\n\n {2}rk_live_`));
    await revokeNamed(['open-ended']);
  });

  it('refuses an --overlap given as a bare number, naming the units and an example, and rotates nothing', async () => {
    const created = JSON.parse((await cli('keys', 'create', '--account', accountId, '--name', 'unitless', '--json')).stdout) as { id: string };
    const said = 'error: --overlap: expected a duration (e.g. 1h, 24h, 7d): a number is written with its unit (ms, s, m, h or d), as --overlap 10m; only 0 goes without one\n';
    for (const bare of ['1', '90', '1.5']) {
      const refused = await cli('keys', 'rotate', created.id, '--overlap', bare);
      expect([refused.code, refused.stdout, refused.stderr], bare).toEqual([1, '', said]);
    }
    // What is not a number is refused as before, without the units' line.
    const other = await cli('keys', 'rotate', created.id, '--overlap', '1y');
    expect([other.code, other.stderr]).toEqual([1, 'error: --overlap: expected a duration (e.g. 1h, 24h, 7d)\n']);
    const listed = JSON.parse((await cli('--json', 'keys', 'list', '--account', accountId)).stdout) as { id: string; name: string; status: string }[];
    expect(listed.filter((key) => key.name === 'unitless').map((key) => [key.id, key.status])).toEqual([[created.id, 'active']]);
    await cli('keys', 'revoke', created.id);
  });

  it('imports a key the API issued before keygate, from stdin, and it works at once', async () => {
    const existing = kg.runtime.keyFormat.generate('live');
    const r = await runCli(['--config', configFile, 'keys', 'import', '--account', accountId, '--name', 'migrated', '--json'], { input: `${existing}\n` });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'migrated', hint: `rk_live_…${existing.slice(-4)}`, status: 'active' });
    expect(r.stdout).not.toContain(existing);
    const response = await kg.call('/api/v1/apps/app1/metrics/mrr', { headers: { authorization: `Bearer ${existing}` } });
    expect(response.status).toBe(200);
    await response.text();
    const again = await runCli(['--config', configFile, 'keys', 'import', '--account', accountId, '--name', 'twice'], { input: existing });
    expect(again.stderr).toBe('error: that key is already registered\n');
    const foreign = await runCli(['--config', configFile, 'keys', 'import', '--account', accountId, '--name', 'bad'], { input: 'sk_live_not_ours' });
    expect(foreign.stderr).toBe("error: that key does not have this API's key format (its prefix, length and checksum); keys issued before keygate are taken once keys.imported describes them\n");
    await cli('keys', 'revoke', JSON.parse(r.stdout).id);
    // With the expiry it had in the system it comes from (a Kong credential's ttl), said back.
    const expiring = await runCli(['--config', configFile, 'keys', 'import', '--account', accountId, '--name', 'with ttl', '--expires', '2099-01-31'], { input: kg.runtime.keyFormat.generate('live') });
    expect([expiring.code, expiring.stderr]).toEqual([0, '']);
    expect(expiring.stdout).toMatch(/^imported key key_\w+ \(rk_live_…\w{4}\) for account acc_\w+; it stops working at 2099-01-31 00:00:00Z\n$/);
    const importedId = /key_\w+/.exec(expiring.stdout)![0];
    expect(JSON.parse((await cli('--json', 'keys', 'show', importedId)).stdout)).toMatchObject({ expiresAt: '2099-01-31T00:00:00.000Z' });
    await cli('keys', 'revoke', importedId);
  });

  it.skipIf(!existsSync('/usr/bin/script') && process.env.CI !== 'true')('keys import refuses a terminal for the key (it would show there) at once, instead of waiting for one typed or pasted', async () => {
    // `script` gives the command a terminal for its stdin; ours stays open until it exits.
    const child = spawn('/usr/bin/script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} --config ${JSON.stringify(configFile)} keys import --account ${accountId} --name typed`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    // Waiting for a key is a failure; the bound only keeps a waiting one from hanging the suite.
    const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(guard);
    child.stdin.end();
    expect(code).toBe(1);
    expect(output.replace(/\r/g, '')).toBe('error: pipe the existing key on stdin, e.g. printf %s "$KEY" | keygate keys import ... (a key typed or pasted into a terminal shows there, and stays in its scrollback)\n');
  });

  it('lists accounts and keys a page at a time with --limit and --after, each once: with --json, stderr gives the next --after as {"next":{"after":…}}', async () => {
    for (const name of ['Paged A', 'Paged B']) await cli('accounts', 'create', '--name', name);
    /** Pages through a list as a script does: the rows from stdout, the next --after from stderr's JSON line, none on the last page. */
    const pageThrough = async (...list: string[]) => {
      const seen: string[] = [];
      let pages = 0;
      let after: string | undefined;
      do {
        const r = await cli('--json', ...list, '--limit', '2', ...(after ? ['--after', after] : []));
        expect(r.code).toBe(0);
        const rows = JSON.parse(r.stdout) as { id: string }[];
        expect(rows.length).toBeLessThanOrEqual(2);
        seen.push(...rows.map((row) => row.id));
        pages++;
        // stderr is that one line or nothing: no prose for a script to skip.
        after = r.stderr === '' ? undefined : (JSON.parse(r.stderr) as { next: { after: string } }).next.after;
      } while (after !== undefined && pages <= 100);
      return { seen, pages };
    };
    const accounts = await pageThrough('accounts', 'list');
    expect(accounts.seen).toEqual((JSON.parse((await cli('--json', 'accounts', 'list')).stdout) as { id: string }[]).map((a) => a.id));
    const keys = await pageThrough('keys', 'list');
    expect(keys.seen).toEqual((JSON.parse((await cli('--json', 'keys', 'list')).stdout) as { id: string }[]).map((k) => k.id));
    expect(keys.pages).toBeGreaterThan(2);
    // For a person, in words.
    const human = await cli('keys', 'list', '--account', accountId, '--limit', '1');
    expect(human.stderr).toMatch(/^more follow: add --after \S+\n$/);
    expect((await cli('keys', 'list', '--limit', '0')).stderr).toBe('error: --limit: expected a whole number from 1 to 10000\n');
    // Written in digits, as the admin API's ?limit= is: not read as 16, 10 or 5.
    for (const limit of ['0x10', '1e1', ' 5']) expect(await cli('audit', '--limit', limit), limit).toMatchObject({ code: 1, stdout: '', stderr: 'error: --limit: expected a whole number from 1 to 10000\n' });
  });

  it('lists keys by their hint, never their secret', async () => {
    const r = await cli('keys', 'list', '--account', accountId);
    expect(r.stdout).toContain(`rk_live_…${secret.slice(-4)}`);
    expect(r.stdout).not.toContain(secret);
    // A mistyped account is an error, not an account without keys; so is an update that changes nothing.
    const unknown = await cli('keys', 'list', '--account', 'acc_nope');
    expect([unknown.code, unknown.stderr]).toEqual([1, 'error: no account "acc_nope"\n']);
    const noMembers = await cli('members', 'list', '--account', 'acc_nope');
    expect([noMembers.code, noMembers.stderr]).toEqual([1, 'error: no account "acc_nope"\n']);
    const idle = await cli('accounts', 'update', accountId);
    expect([idle.code, idle.stderr]).toEqual([1, 'error: nothing to change: give --name, --plan, --api-access, --overage, --plan-expires, --rate-limit or --meter-limit\n']);
    // A window that admits nothing is refused in a whole sentence, naming it as typed (a window cannot be a secret).
    const none = await cli('accounts', 'update', accountId, '--rate-limit', '0-per-1s');
    expect([none.code, none.stderr]).toEqual([1, 'error: --rate-limit: "0-per-1s": the number of requests (before -per-) must be at least 1\n']);
    const instant = await cli('keys', 'create', '--account', accountId, '--name', 'never', '--rate-limit', '5-per-0s');
    expect([instant.code, instant.stderr]).toEqual([1, 'error: --rate-limit: "5-per-0s": the window (after -per-) must be longer than 0, as 1s or 1m\n']);
    // A date no page or table could show is refused before anything is written.
    const late = await cli('accounts', 'update', accountId, '--plan-expires', '100000000d');
    expect([late.code, late.stderr]).toEqual([1, 'error: --plan-expires: the date must be from 1970-01-01 to 9999-12-31 (UTC)\n']);
    // Nor one before 1970 (a year 0000 is a typing mistake), for an account's plan or a key.
    for (const args of [['accounts', 'update', accountId, '--plan-expires', '0000-01-01'], ['accounts', 'create', '--name', 'Early', '--plan-expires', '1969-12-31T23:59:59Z'], ['keys', 'create', '--account', accountId, '--name', 'early', '--expires', '0000-01-01']]) {
      const early = await cli(...args);
      expect([early.code, early.stderr], args.join(' ')).toEqual([1, `error: ${args.at(-2)}: the date must be from 1970-01-01 to 9999-12-31 (UTC)\n`]);
    }
    // A date already past ends the plan now: said, whether meant or a mistyped year.
    const lapsed = JSON.parse((await cli('accounts', 'create', '--name', 'Lapsed', '--json')).stdout).id as string;
    const ended = await cli('accounts', 'update', lapsed, '--plan-expires', '2020-01-01');
    // On stderr, as the admin API's Keygate-Warning says it: stdout stays what was done.
    const warning = (id: string) => `the plan expiry 2020-01-01T00:00:00.000Z is in the past: the plan is already expired for account ${id}, whose requests are refused (plan_expired)`;
    expect(ended).toEqual({ code: 0, stdout: `updated account ${lapsed}\n`, stderr: `warning: ${warning(lapsed)}\n` });
    expect(await cli('accounts', 'update', lapsed, '--plan-expires', '30d')).toEqual({ code: 0, stdout: `updated account ${lapsed}\n`, stderr: '' });
    const createdEnded = await cli('accounts', 'create', '--name', 'Lapsed too', '--plan-expires', '2020-01-01');
    const createdId = /^created account (\S+) /.exec(createdEnded.stdout)?.[1] as string;
    expect(createdEnded).toEqual({ code: 0, stdout: `created account ${createdId} (Lapsed too, plan team)\n`, stderr: `warning: ${warning(createdId)}\n` });
    // With --json, a line of JSON; stdout stays the account.
    const endedJson = await cli('accounts', 'update', lapsed, '--plan-expires', '2020-01-01', '--json');
    expect({ code: endedJson.code, stderr: JSON.parse(endedJson.stderr), planExpiresAt: JSON.parse(endedJson.stdout).planExpiresAt }).toEqual({ code: 0, stderr: { warning: warning(lapsed) }, planExpiresAt: '2020-01-01T00:00:00.000Z' });
    expect((await cli('audit')).code).toBe(0);
    for (const value of ['', '0x10', '1e3']) {
      const gauge = await cli('gauge', '--account', accountId, '--meter', 'units', '--value', value);
      expect([gauge.code, gauge.stderr], value).toEqual([1, 'error: --value: expected a number such as 120 or 3.5\n']);
    }
    // A consumed meter is charged by requests, not set: said so, with the gauges there are.
    const consumed = await cli('gauge', '--account', accountId, '--meter', 'units', '--value', '3');
    expect([consumed.code, consumed.stderr]).toEqual([1, 'error: "units" is a consumed meter of the team plan, charged by requests: only a gauge is set (the plan has no gauges)\n']);
  });

  it('accounts update says when the account already had what it was given (--rate-limit plan on the plan\'s windows): exit 0, nothing audited', async () => {
    const { id } = await createAccount(kg.runtime, { name: 'On the plan' }, 'test');
    const audited = async () => (await kg.runtime.store.listAudit({ accountId: id, limit: 10 })).map((event) => event.action);
    expect(await cli('accounts', 'update', id, '--rate-limit', 'plan')).toEqual({ code: 0, stdout: `account ${id} already uses its plan's rate limits; nothing changed\n`, stderr: '' });
    expect(await cli('accounts', 'update', id, '--meter-limit', 'units=plan')).toEqual({ code: 0, stdout: `account ${id} already uses its plan's limit of units; nothing changed\n`, stderr: '' });
    expect(await cli('accounts', 'update', id, '--name', 'On the plan', '--plan', 'team')).toEqual({ code: 0, stdout: `account ${id} already is as given; nothing changed\n`, stderr: '' });
    // With --json, the account, as after any update.
    const json = await cli('--json', 'accounts', 'update', id, '--rate-limit', 'plan');
    expect([json.code, JSON.parse(json.stdout)]).toEqual([0, expect.objectContaining({ id, name: 'On the plan', limits: { rateLimits: null, meters: {} } })]);
    expect(await audited()).toEqual(['account.created']);
    // A change is still said, and audited.
    expect(await cli('accounts', 'update', id, '--rate-limit', '5-per-1s')).toEqual({ code: 0, stdout: `updated account ${id}\n`, stderr: '' });
    expect(await cli('accounts', 'update', id, '--rate-limit', 'plan')).toEqual({ code: 0, stdout: `updated account ${id}\n`, stderr: '' });
    expect(await audited()).toEqual(['account.limits_changed', 'account.limits_changed', 'account.created']);
  });

  it("accounts show marks a meter limit of the account's own as it marks its own windows, \"(the account's own)\"", async () => {
    const { id } = await createAccount(kg.runtime, { name: 'Own units' }, 'test');
    expect((await cli('accounts', 'update', id, '--meter-limit', 'units=5000', '--rate-limit', '5-per-1s')).code).toBe(0);
    const shown = await cli('accounts', 'show', id);
    expect(shown.stdout).toMatch(/^rateLimits +5-per-1s \(the account's own\)$/m);
    expect(shown.stdout).toMatch(/^meterLimits +units 5000 \(the account's own\)$/m);
  });

  it('accounts update --meter-limit names every meter the plan has not in one refusal, each by its flag\'s place with the meter it likely meant; nothing changes', async () => {
    const { id } = await createAccount(kg.runtime, { name: 'Typed meters' }, 'test');
    const refused = await cli('accounts', 'update', id, '--meter-limit', 'unit=5', '--meter-limit', 'units=3', '--meter-limit', 'calls=7');
    expect([refused.code, refused.stdout, refused.stderr]).toEqual([1, '', 'error: --meter-limit: the 1st of 3 (did you mean "units"?) and the 3rd of 3 name no meter the team plan has; its meters: units\n']);
    const json = await cli('--json', 'accounts', 'update', id, '--meter-limit', 'unit=5', '--meter-limit', 'calls=7');
    expect([json.code, JSON.parse(json.stderr)]).toEqual([1, { error: '--meter-limit: the 1st of 2 (did you mean "units"?) and the 2nd of 2 name no meter the team plan has; its meters: units' }]);
    expect((await kg.runtime.store.getAccount(id))?.limits?.meters ?? {}).toEqual({});
  });

  it('accounts update --plan names every limit kept from before that the new plan lacks, with the flags that give them back; the plan it is on given again changes nothing', async () => {
    const { id } = await createAccount(kg.runtime, { name: 'Kept limits' }, 'test');
    // As a profile from before left it: a limit of units (team has it) and of calls (no plan has it now).
    await kg.runtime.store.updateAccount(id, { limits: { rateLimits: null, meters: { units: 5, calls: 7 } } });
    const moved = await cli('accounts', 'update', id, '--plan', 'free');
    expect([moved.code, moved.stderr]).toEqual([
      1,
      'error: --meter-limit: the free plan has no meters "units" or "calls" (the account\'s own limits for them, kept from before: give --meter-limit units=plan --meter-limit calls=plan to drop them); it has no meters\n',
    ]);
    expect(await cli('accounts', 'update', id, '--plan', 'team')).toEqual({ code: 0, stdout: `account ${id} already is as given; nothing changed\n`, stderr: '' });
    expect(await cli('accounts', 'update', id, '--plan', 'free', '--meter-limit', 'units=plan', '--meter-limit', 'calls=plan')).toEqual({ code: 0, stdout: `updated account ${id}\n`, stderr: '' });
  });

  it('accounts update warns on stderr when a move to a plan without API access, or access turned off, stops keys that worked until then; not for an account without keys, nor when they worked already not', async () => {
    const { id } = await createAccount(kg.runtime, { name: 'Downgraded' }, 'test');
    const { secret: working } = await createKey(kg.runtime, { accountId: id, name: 'prod' }, 'test');
    const call = async () => (await kg.call('/api/v1/apps/a/metrics/mrr', { headers: { authorization: `Bearer ${working}` } })).status;
    expect(await call()).toBe(200);
    const moved = await cli('accounts', 'update', id, '--plan', 'free');
    expect(moved).toEqual({
      code: 0,
      stdout: `updated account ${id}\n`,
      stderr: `warning: plan free of account ${id} has API access off: requests with its key in use, which worked until now, are refused (api_disabled) until the account is on a plan that includes it (accounts update ${id} --plan …)\n`,
    });
    expect(await call()).toBe(403);
    // Refused already: no warning for a change that leaves them refused, nor for the move back.
    expect((await cli('accounts', 'update', id, '--name', 'Downgraded still')).stderr).toBe('');
    expect(await cli('accounts', 'update', id, '--plan', 'team')).toEqual({ code: 0, stdout: `updated account ${id}\n`, stderr: '' });
    expect(await call()).toBe(200);
    await createKey(kg.runtime, { accountId: id, name: 'staging' }, 'test');
    const off = await cli('--json', 'accounts', 'update', id, '--api-access', 'off');
    expect(off.code).toBe(0);
    expect(JSON.parse(off.stderr)).toEqual({ warning: `account ${id} has its API access turned off: requests with its 2 keys in use, which worked until now, are refused (api_disabled) until it is turned back on (accounts update ${id} --api-access on)` });
    expect(JSON.parse(off.stdout)).toMatchObject({ id, apiAccess: false, apiEnabled: false });
    expect((await cli('accounts', 'update', id, '--api-access', 'on')).stderr).toBe('');
    const { id: empty } = await createAccount(kg.runtime, { name: 'No keys yet' }, 'test');
    expect(await cli('accounts', 'update', empty, '--plan', 'free')).toEqual({ code: 0, stdout: `updated account ${empty}\n`, stderr: '' });
  });

  it('accounts update --rate-limit keeps the name of each window given again with its length, scope and limit (named through the admin API); a changed window loses it', async () => {
    const { id } = await createAccount(kg.runtime, { name: 'Named windows', limits: { rateLimits: [{ name: 'burst', limit: 20, window: '1s' }, { name: 'daily', limit: 900, window: '1d', scope: 'account' }] } }, 'test');
    const windowsOf = (r: CliResult) => [r.code, r.stderr, (JSON.parse(r.stdout) as { limits: { rateLimits: unknown } }).limits.rateLimits];
    // A window added; the two given again (one as 24h) keep their names.
    const added = await cli('--json', 'accounts', 'update', id, '--rate-limit', '20-per-1s', '--rate-limit', '100-per-1h', '--rate-limit', '900-per-24h-per-account');
    expect(windowsOf(added)).toEqual([
      0,
      '',
      [
        { name: 'burst', limit: 20, window: '1s', scope: 'key' },
        { name: '100-per-1h', limit: 100, window: '1h', scope: 'key' },
        { name: 'daily', limit: 900, window: '1d', scope: 'account' },
      ],
    ]);
    // The per-key window's limit changed: it is another window, without a name.
    const changed = await cli('--json', 'accounts', 'update', id, '--rate-limit', '30-per-1s', '--rate-limit', '900-per-1d-per-account');
    expect(windowsOf(changed)).toEqual([
      0,
      '',
      [
        { name: '30-per-1s', limit: 30, window: '1s', scope: 'key' },
        { name: 'daily', limit: 900, window: '1d', scope: 'account' },
      ],
    ]);
    expect((await kg.runtime.store.getAccount(id))?.limits?.rateLimits).toEqual([
      { limit: 30, window: 1000, scope: 'key' },
      { name: 'daily', limit: 900, window: 86_400_000, scope: 'account' },
    ]);
  });

  it('says what a flag, a calls file or a help page takes', async () => {
    const overage = await cli('accounts', 'update', accountId, '--overage', 'maybe');
    expect([overage.code, overage.stderr]).toEqual([1, 'error: --overage takes on, off or plan\n']);
    const missing = await cli('forecast', '--calls', path.join(dir, 'nope.yaml'));
    expect([missing.code, missing.stderr]).toEqual([1, 'error: --calls: cannot read that file (ENOENT)\n']);
    const callsFile = path.join(dir, 'calls.yaml');
    writeFileSync(callsFile, stringify([{ method: 'GET', path: '/api/v1/apps/a/metrics/mrr', cnt: 3 }]));
    const misnamed = await cli('forecast', '--calls', callsFile);
    expect([misnamed.code, misnamed.stderr]).toEqual([1, 'error: calls[0] has no field "cnt": a call is {method, path, count, records}\n']);
    // A file that is not YAML: one line saying where the parser stopped, not YAML's excerpt under it (nor the file's name, which is not repeated).
    const brokenFile = path.join(dir, 'broken-calls.json');
    writeFileSync(brokenFile, '{"method": "GET"\n');
    const broken = await cli('forecast', '--calls', brokenFile);
    expect([broken.code, broken.stderr]).toEqual([1, 'error: --calls: that file is not YAML or JSON: Flow map must end with a } at line 2, column 1\n']);
    const operator = await cli('members', 'invite', '--email', 'olga@ops.test', '--operator', '--account', accountId);
    expect([operator.code, operator.stderr]).toEqual([1, 'error: an operator sees every account and belongs to none: leave the account out\n']);
    const nobody = await cli('members', 'invite', '--email', 'olga@ops.test');
    expect([nobody.code, nobody.stderr]).toEqual([1, 'error: say whom the invitation is for: --account <id> (a member of that account) or --operator (sees every account)\n']);
    // Every command's help lists the options every command takes.
    for (const command of [['serve'], ['check'], ['keys', 'list']]) expect((await runCli([...command, '--help'])).stdout, command.join(' ')).toMatch(/Global Options:[\s\S]*--config <file>[\s\S]*--json/);
    // ... but the demo's, which refuses --config (it writes its own profile).
    const demoHelp = (await runCli(['demo', '--help'])).stdout;
    expect(demoHelp).toContain('--upstream-port <port>');
    expect(demoHelp).not.toContain('--config');
  });

  it('says under an invitation or reset link that the dashboard it leads to is off in this profile', async () => {
    const invited = await cli('members', 'invite', '--email', 'dora@ops.test', '--operator');
    expect(invited.code).toBe(0);
    expect(invited.stdout).toContain('Note: this profile turns the dashboard off (dashboard.enabled: false): the link opens nothing until keygate serves the dashboard.');
    const reset = await cli('members', 'reset', '--email', 'dora@ops.test');
    expect(reset.stdout).toContain('dashboard.enabled: false');
    // Scripts get the answer's shape unchanged.
    const json = JSON.parse((await cli('--json', 'members', 'reset', '--email', 'dora@ops.test')).stdout) as Record<string, unknown>;
    expect(Object.keys(json).sort()).toEqual(['email', 'id', 'url']);
    expect((await cli('members', 'remove', '--email', 'dora@ops.test')).code).toBe(0);
  });

  it('never prints back a key secret pasted where an id goes', async () => {
    for (const args of [['keys', 'revoke', secret], ['keys', 'rotate', secret], ['keys', 'list', '--account', secret], ['--json', 'keys', 'unblock', secret]]) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(1);
      // Not even redacted: what is no id of keygate's is not repeated.
      expect(r.stderr, args.join(' ')).toMatch(/no such (key|account)/);
      expect(r.stderr + r.stdout, args.join(' ')).not.toContain(secret.slice('rk_live_'.length));
    }
  });

  it('never repeats a key typed into an option checked once the profile is read (--expires, --limit, --rate-limit, --scopes, --email, --meter, a path in --call or --calls, …): names the option and what it takes', async () => {
    const { id } = await createAccount(kg.runtime, { name: 'Pasted' }, 'test');
    const { secret: pasted, key: pastedKey } = await createKey(kg.runtime, { accountId: id, name: 'pasted' }, 'test');
    const hidden = pasted.slice('rk_live_'.length);
    // Files whose names, or calls, hold the key: neither is repeated either.
    const callsFile = (name: string, text: string) => {
      const file = path.join(dir, `${name}-${pasted}.yaml`);
      writeFileSync(file, text);
      return file;
    };
    const notYaml = callsFile('not-yaml', '[unclosed');
    const notList = callsFile('not-list', 'method: GET');
    const pastedPath = callsFile('pasted-path', JSON.stringify([{ method: 'GET', path: '/api/v1/apps/a/metrics/mrr', count: 1 }, { method: 'GET', path: `/x/${pasted}`, count: 1 }]));
    const pastedMethod = callsFile('pasted-method', JSON.stringify([{ method: pasted, path: '/api/v1/apps/a/metrics/mrr', count: 1 }]));
    const dotSegment = '(a dot segment, a backslash or an escape it would read as another path)';
    const cases: [string[], string][] = [
      [['keys', 'create', '--account', id, '--name', 'k', '--expires', pasted], '--expires: expected a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d)'],
      [['keys', 'list', '--limit', pasted], '--limit: expected a whole number from 1 to 10000'],
      [['keys', 'rotate', 'key_nope', '--overlap', pasted], '--overlap: expected a duration (e.g. 1h, 24h, 7d)'],
      [['accounts', 'create', '--name', 'x', '--plan-expires', pasted], '--plan-expires: expected a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d)'],
      [['accounts', 'update', id, '--overage', pasted], '--overage takes on, off or plan'],
      [['accounts', 'update', id, '--api-access', pasted], '--api-access takes on or off'],
      [['accounts', 'update', id, '--rate-limit', pasted], "--rate-limit: expected <limit>-per-<window> as 100-per-1s or 5000-per-1h-per-account (no spaces; a window is a number and ms, s, m, h or d), or plan (the plan's windows) or none"],
      [['accounts', 'create', '--name', 'x', '--rate-limit', '5-per-1s', '--rate-limit', pasted], "--rate-limit (the 2nd of 2): expected <limit>-per-<window> as 100-per-1s or 5000-per-1h-per-account (no spaces; a window is a number and ms, s, m, h or d), or plan (the plan's windows) or none"],
      [['accounts', 'update', id, '--meter-limit', pasted], '--meter-limit: expected <meter>=<limit> (a number, 0 or more) or <meter>=plan, as units=5000000'],
      [['accounts', 'update', id, '--meter-limit', `${pasted}=5`], "--meter-limit: the team plan has no such meter; its meters: units"],
      [['accounts', 'update', id, '--meter-limit', 'units=5', '--meter-limit', `${pasted}=${'9'.repeat(20)}`], "--meter-limit (the 2nd of 2): too large: a meter's limit is at most 999999999999999"],
      [['accounts', 'usage', id, '--from', pasted], '--from: expected a date such as 2026-11-01'],
      [['gauge', '--account', id, '--meter', 'units', '--value', pasted], '--value: expected a number such as 120 or 3.5'],
      [['forecast', '--account', id, '--call', pasted], '--call: expected "METHOD /path [xN] [records=N]"'],
      [['forecast', '--account', id, '--call', 'GET /api/v1/apps/a/metrics/mrr', '--call', `GET /x ${pasted}`], '--call (the 2nd of 2): expected "METHOD /path [xN] [records=N]" (after the path, only xN and records=N)'],
      [['forecast', '--account', id, '--calls', pasted], '--calls: cannot read that file (ENOENT)'],
      [['forecast', '--account', id, '--calls', notYaml], '--calls: that file is not YAML or JSON: Flow sequence must end with a ] at line 1, column 10'],
      [['forecast', '--account', id, '--calls', notList], '--calls: expected a list of calls in that file'],
      [['forecast', '--account', id, '--calls', pastedPath], '--calls (its 2nd call): no route for GET on its path'],
      [['forecast', '--account', id, '--calls', pastedMethod], "--calls (its 1st call): the gateway refuses its method (a method Node's HTTP parser does not read: it answers 400 before any route)"],
      [['forecast', '--account', id, '--call', `GET /x/${pasted}`], '--call: no route for GET on its path'],
      [['forecast', '--account', id, '--calls', pastedPath, '--call', 'GET /api/v1/apps/a/metrics/mrr', '--call', `POST /x/${pasted}`], '--calls (its 2nd call): no route for GET on its path'],
      [['forecast', '--account', id, '--call', 'GET /api/v1/apps/a/metrics/mrr', '--call', `POST /x/${pasted}`], '--call (the 2nd of 2): no route for POST on its path'],
      [['forecast', '--account', id, '--call', `GET /api/v1/apps/../${pasted}`], `--call: the gateway refuses its path ${dotSegment}`],
      [['forecast', '--account', id, '--call', `GET /api/v1/apps/ü/${pasted}`], '--call: the gateway refuses its path (a space or a character outside ASCII, which no request line carries: percent-encode it, as a client sends it)'],
      [['forecast', '--account', id, '--call', 'get /api/v1/apps/a/metrics/mrr'], "--call: the gateway refuses its method (methods are case-sensitive, and Node's HTTP parser answers 400 to one not in upper case: write GET)"],
      [['forecast', '--account', id, '--call', `${pasted} /api/v1/apps/a/metrics/mrr`], "--call: the gateway refuses its method (a method Node's HTTP parser does not read: it answers 400 before any route)"],
      [['keys', 'create', '--account', id, '--name', 'k', '--scopes', pasted], '--scopes: the scope given is not allowed; allowed: *, metrics:read'],
      [['keys', 'create', '--account', id, '--name', 'k', '--scopes', `metrics:read, ${pasted}`], '--scopes: the 2nd of 2 is not allowed; allowed: *, metrics:read'],
      [['keys', 'update', pastedKey.id, '--scopes', pasted], '--scopes: the scope given is not allowed; allowed: *, metrics:read'],
      [['members', 'invite', '--account', id, '--email', `${pasted}@`], '--email: the email is not an address such as name@example.com (no spaces; none of " ( ) , : ; < > [ \\ ]; a dot in the domain)'],
      [['members', 'invite', '--account', id, '--email', '<b>@x.com'], '--email: the email is not an address such as name@example.com (no spaces; none of " ( ) , : ; < > [ \\ ]; a dot in the domain)'],
      [['gauge', '--account', id, '--meter', pasted, '--value', '1'], '--meter: the team plan has no such gauge (the plan has no gauges)'],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(...args)));
    // keys import reads the key it registers from stdin.
    const imported = await runCli(['--config', configFile, 'keys', 'import', '--account', id, '--name', 'i', '--scopes', pasted], { input: kg.runtime.keyFormat.generate('live') });
    expect([imported.code, imported.stdout, imported.stderr]).toEqual([1, '', 'error: --scopes: the scope given is not allowed; allowed: *, metrics:read\n']);
    runs.push(imported);
    cases.forEach(([args, error], i) => {
      const r = runs[i] as CliResult;
      expect([r.code, r.stdout, r.stderr], args.join(' ')).toEqual([1, '', `error: ${error}\n`]);
    });
    // Also for a window read as one that admits nothing: named by its place, and as typed.
    const zero = await cli('accounts', 'update', id, '--rate-limit', '5-per-1s', '--rate-limit', '0-per-1s');
    expect([zero.code, zero.stderr]).toEqual([1, `error: --rate-limit (the 2nd of 2): "0-per-1s": the number of requests (before -per-) must be at least 1\n`]);
    for (const r of runs) expect(r.stderr + r.stdout).not.toContain(hidden);
  });

  it('shows and lifts the pause of a member\'s email after wrong passwords from anywhere', async () => {
    const invited = JSON.parse((await cli('--json', 'members', 'invite', '--email', 'ana@acme.test', '--account', accountId)).stdout) as { id: string };
    // As 20 wrong passwords in a row from anywhere leave it (test/admin.test.ts signs in that many times).
    const until = Date.now() + 15 * 60_000;
    await kg.runtime.store.updateMember(invited.id, { lockedUntil: until, failedLogins: 0 });
    const listed = JSON.parse((await cli('--json', 'members', 'list', '--account', accountId)).stdout) as { email: string; lockedUntil: string | null }[];
    expect(listed).toEqual([expect.objectContaining({ email: 'ana@acme.test', lockedUntil: new Date(until).toISOString() })]);
    expect((await cli('members', 'list', '--account', accountId)).stdout).toContain(`invited, paused until ${new Date(Math.ceil(until / 1000) * 1000).toISOString().slice(0, 19).replace('T', ' ')}Z`);
    const lifted = await cli('members', 'unlock', '--email', 'Ana@acme.test');
    expect([lifted.code, lifted.stdout]).toEqual([0, 'lifted the pause of ana@acme.test: they can sign in from any address again\n']);
    expect(JSON.parse((await cli('--json', 'members', 'list', '--account', accountId)).stdout)[0].lockedUntil).toBeNull();
    // As POST /v1/members/{id}/unlock answers: the member, and whether a pause was in force.
    const [member] = (await (await kg.admin('/v1/members?email=ana@acme.test')).json()) as unknown[];
    expect(JSON.parse((await cli('--json', 'members', 'unlock', '--email', 'ana@acme.test')).stdout)).toEqual({ member, lifted: false });
    const nobody = await cli('members', 'unlock', '--email', 'nobody@acme.test');
    expect([nobody.code, nobody.stderr]).toEqual([1, 'error: no member nobody@acme.test\n']);
  });

  it('a key revoked by the CLI fails on the next request', async () => {
    const warm = await kg.call('/api/v1/apps/app1/metrics/mrr', { headers: { authorization: `Bearer ${secret}` } });
    expect(warm.status).toBe(200); // cached in the gateway now
    await warm.text();
    const r = await cli('keys', 'revoke', keyId);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`revoked key ${keyId}`);
    const after = await kg.call('/api/v1/apps/app1/metrics/mrr', { headers: { authorization: `Bearer ${secret}` } });
    expect(after.status).toBe(401);
    expect(await after.json()).toMatchObject({ code: 'revoked_key' });
    const again = await cli('keys', 'revoke', keyId);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^key ${keyId} \\(.*\\) was already revoked, at .*; nothing changed`));
  });

  it("keys unblock says where a block lives with memory counters: in the serving process, lifted through its admin API or the dashboard's Unblock button; its help says so", async () => {
    const r = await cli('keys', 'unblock', keyId);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe(
      `error: with counters: memory, blocks live in the memory of the process that serves: lift this one through its admin API (POST /v1/keys/${keyId}/unblock) or the Unblock button on the key's account page in its dashboard\n`,
    );
    const help = await cli('keys', 'unblock', '--help');
    expect(help.code).toBe(0);
    // Commander wraps the description to the terminal's width: compared with its lines joined.
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      "Needs counters: redis; with counters: memory (the default) blocks live in the serving keygate: lift one through its admin API (POST /v1/keys/<id>/unblock) or the Unblock button on the key's account page in its dashboard",
    );
    // An id that is no key (an account's, say) is said to be none, and to be an account's.
    const wrong = await cli('keys', 'unblock', accountId);
    expect([wrong.code, wrong.stderr]).toEqual([1, `error: no key "${accountId}": that is an account's id; a key's begins key_\n`]);
  });

  it('shows the audit log, newest first, with the CLI as the actor', async () => {
    const r = await cli('--json', 'audit', '--account', accountId, '--limit', '2');
    expect(r.code).toBe(0);
    const events = JSON.parse(r.stdout) as { at: string; actor: string; actorAddress: string | null; action: string; keyId: string | null; detail: { hint?: string } }[];
    // The newest: the revocation the test above made.
    expect(events).toHaveLength(2);
    expect(events.map((e) => [e.actor, e.action, e.keyId])[0]).toEqual(['cli', 'key.revoked', keyId]);
    expect(events.every((e) => e.actor === 'cli')).toBe(true);
    // Made by the CLI, not over HTTP: from no client address.
    expect(events.every((e) => e.actorAddress === null)).toBe(true);
    expect(events[0]?.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(r.stdout).not.toContain(secret);
    const human = await cli('audit', '--account', accountId);
    expect(human.stdout.split('\n')[0]).toMatch(/^WHEN\s+ACTOR\s+ADDRESS\s+ACTION\s+ACCOUNT\s+KEY\s+DETAIL$/);
    expect(human.stdout).toMatch(/Z {2}cli {4}- {8}account\.created /);
    expect((await cli('audit', '--account', 'acc_nope')).stderr).toBe('error: no account "acc_nope"\n');
    // With --json the failure is JSON too, for scripts (same exit code).
    const jsonFailure = await cli('--json', 'audit', '--account', 'acc_nope');
    expect([jsonFailure.code, JSON.parse(jsonFailure.stderr)]).toEqual([1, { error: 'no account "acc_nope"' }]);
    const bad = await cli('audit', '--limit', 'lots');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toBe('error: --limit: expected a whole number from 1 to 10000\n');
  });

  it('shows the client address of a change made through the admin API, as its access log reads it', async () => {
    const made = await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Made over HTTP', planId: 'team' }) });
    expect(made.status).toBe(201);
    const { id } = (await made.json()) as { id: string };
    const r = await cli('--json', 'audit', '--account', id);
    expect((JSON.parse(r.stdout) as { actor: string; actorAddress: string | null; action: string }[]).map((e) => [e.actor, e.actorAddress, e.action])).toEqual([['admin-api', '127.0.0.1', 'account.created']]);
    const human = (await cli('audit', '--account', id)).stdout.split('\n');
    expect(human[0]).toMatch(/^WHEN\s+ACTOR\s+ADDRESS\s+ACTION\s+ACCOUNT\s+KEY\s+DETAIL$/);
    expect(human[1]).toMatch(/Z {2}admin-api {2}127\.0\.0\.1 {2}account\.created {2}/);
    // A change's old values are DETAIL's `from`; the address it came from has a header of its own, not FROM.
    expect((await kg.admin(`/v1/accounts/${id}`, { method: 'PATCH', body: JSON.stringify({ planId: 'free' }) })).status).toBe(200);
    await cli('accounts', 'update', id, '--plan', 'team');
    const [header = '', fromCli = '', fromHttp = ''] = (await cli('audit', '--account', id)).stdout.split('\n');
    expect(header).toMatch(/^WHEN\s+ACTOR\s+ADDRESS\s+ACTION\s+ACCOUNT\s+KEY\s+DETAIL$/);
    expect(header).not.toMatch(/\bFROM\b/);
    expect(fromCli).toMatch(/Z {2}cli {8}- {10}account\.updated {2}acc_\w+ {7}\{"planId":"team","from":\{"planId":"free"\}\}$/);
    expect(fromHttp).toMatch(/Z {2}admin-api {2}127\.0\.0\.1 {2}account\.updated {2}acc_\w+ {7}\{"planId":"free","from":\{"planId":"team"\}\}$/);
  });

  it("shows a deleted account's audit log (who deleted it, and when), as the admin API does; an id never seen is still refused", async () => {
    const gone = JSON.parse((await cli('--json', 'accounts', 'create', '--name', 'Short-lived')).stdout) as { id: string };
    expect((await cli('accounts', 'delete', gone.id)).code).toBe(0);
    const r = await cli('--json', 'audit', '--account', gone.id);
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect((JSON.parse(r.stdout) as { actor: string; action: string }[]).map((e) => [e.actor, e.action])).toEqual([
      ['cli', 'account.deleted'],
      ['cli', 'account.created'],
    ]);
    expect((await cli('audit', '--account', 'acc_never')).stderr).toBe('error: no account "acc_never"\n');
  });

  it('takes an expiry as a date, a date-time or a duration, and refuses a date that does not exist instead of guessing', async () => {
    const refused = async (expires: string) => {
      const r = await cli('keys', 'create', '--account', accountId, '--name', 'dated', '--expires', expires);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
      return r.stderr;
    };
    expect(await refused('2027-02-30')).toBe('error: --expires: expected a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d)\n');
    expect(await refused('01/02/2027')).toBe('error: --expires: expected a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d)\n');
    expect(await refused('90')).toBe('error: --expires: expected a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d): a number of days is written with d, as 30d\n');
    expect(await refused('1.5')).toBe('error: --expires: expected a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d): a number of days is written with d, as 30d\n');
    // A time without its offset (whose 12:00?): said what it lacks.
    expect(await refused('2027-01-31 12:00')).toBe('error: --expires: expected a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d): a time needs its offset, as 2027-01-31T12:00:00Z for UTC\n');
    expect(await refused('2027-01-31T12:00:30')).toContain(': a time needs its offset, as 2027-01-31T12:00:00Z for UTC');
    // Nothing was created by the refused ones: the plan's three keys are still free to use below.
    const dated = await cli('accounts', 'create', '--name', 'Dated', '--json');
    const other = JSON.parse(dated.stdout).id as string;
    const key = JSON.parse((await cli('keys', 'create', '--account', other, '--name', 'leap', '--expires', '2028-02-29', '--json')).stdout);
    expect(key.expiresAt).toBe('2028-02-29T00:00:00.000Z');
  });

  it('enforces the plan\'s key limit with a clear message', async () => {
    await cli('keys', 'create', '--account', accountId, '--name', 'two');
    await cli('keys', 'create', '--account', accountId, '--name', 'three');
    const r = await cli('keys', 'create', '--account', accountId, '--name', 'four');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: the team plan allows 3 keys per account; revoke one first\n');
  });

  it('refuses keys on a plan that includes none', async () => {
    const account = JSON.parse((await cli('accounts', 'create', '--name', 'Freeloader', '--plan', 'free', '--json')).stdout);
    const r = await cli('keys', 'create', '--account', account.id, '--name', 'k');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: the free plan does not include API keys; upgrade the plan first\n');
  });

  it('says in account JSON whether its keys can call the API now (apiEnabled, as usage says), beside the account\'s own switch (apiAccess)', async () => {
    const usageSays = async (id: string) => (JSON.parse((await cli('accounts', 'usage', id, '--json')).stdout) as { apiEnabled: boolean }).apiEnabled;
    const free = JSON.parse((await cli('accounts', 'create', '--name', 'Plan without API', '--plan', 'free', '--json')).stdout);
    expect(free).toMatchObject({ apiAccess: true, apiEnabled: false });
    expect(await usageSays(free.id)).toBe(false);
    const team = JSON.parse((await cli('accounts', 'create', '--name', 'Plan ends', '--json')).stdout);
    expect(team).toMatchObject({ apiAccess: true, apiEnabled: true });
    const ended = JSON.parse((await cli('accounts', 'update', team.id, '--plan-expires', '2020-01-01', '--json')).stdout);
    expect(ended).toMatchObject({ apiAccess: true, apiEnabled: false, planExpiresAt: '2020-01-01T00:00:00.000Z' });
    expect(await usageSays(team.id)).toBe(false);
    const listed = JSON.parse((await cli('accounts', 'list', '--search', team.id, '--json')).stdout);
    expect(listed).toEqual([ended]);
    // The table says why, as the gateway would refuse (plan_expired).
    expect((await cli('accounts', 'list', '--search', team.id)).stdout).toMatch(new RegExp(`${team.id}\\s+Plan ends\\s+team\\s+off \\(plan expired\\)`));
    const off = JSON.parse((await cli('accounts', 'update', team.id, '--plan-expires', 'never', '--api-access', 'off', '--json')).stdout);
    expect(off).toMatchObject({ apiAccess: false, apiEnabled: false });
    expect(JSON.parse((await cli('accounts', 'update', team.id, '--api-access', 'on', '--json')).stdout)).toMatchObject({ apiAccess: true, apiEnabled: true });
    expect(await usageSays(team.id)).toBe(true);
  });

  it('shows plans and an account\'s usage', async () => {
    const plans = await cli('plans', 'list');
    expect(plans.stdout).toMatch(/team\s+team\s+on\s+3/);
    // --json is what the admin API gives.
    const json = await cli('plans', 'list', '--json');
    expect(JSON.parse(json.stdout)).toEqual(await (await kg.admin('/v1/plans')).json());
    await kg.runtime.flush();
    const usage = await cli('accounts', 'usage', accountId, '--json');
    expect(JSON.parse(usage.stdout).meters.units).toMatchObject({ usage: 30, limit: 1000, remaining: 970 });
    // The same fields as the admin API's.
    expect(JSON.parse(usage.stdout)).toEqual(await (await kg.admin(`/v1/accounts/${accountId}/usage`)).json());
  });

  it('gives each key\'s requests this period, a revoked key\'s still named, in accounts usage (human and --json, as GET /v1/accounts/{id}/usage) and by day with --daily', async () => {
    const created = await cli('--json', 'accounts', 'create', '--name', 'Per key');
    expect(created.stderr).toBe('');
    const account = JSON.parse(created.stdout) as { id: string };
    const issue = async (name: string) => {
      const issued = await cli('--json', 'keys', 'create', '--account', account.id, '--name', name, '--scopes', 'metrics:read');
      expect(issued.stderr).toBe('');
      return JSON.parse(issued.stdout) as { id: string; secret: string; hint: string };
    };
    const [ci, web, idle] = [await issue('ci'), await issue('web'), await issue('idle')];
    for (const [key, times] of [[ci, 3], [web, 1]] as const) {
      for (let i = 0; i < times; i++) {
        const response = await kg.call('/api/v1/apps/app1/metrics/mrr', { headers: { authorization: `Bearer ${key.secret}` } });
        expect(response.status).toBe(200);
        await response.text();
      }
    }
    expect((await cli('keys', 'revoke', web.id)).code).toBe(0);
    const today = new Date().toISOString().slice(0, 10);

    // Counted before they are written to the store (every second): the admin API adds what is pending.
    const answer = (await (await kg.admin(`/v1/accounts/${account.id}/usage`)).json()) as { periodStart: string; keys: unknown[] };
    expect(answer.periodStart).toBe(`${today.slice(0, 8)}01`);
    expect(answer.keys).toEqual([
      { keyId: ci.id, name: 'ci', hint: ci.hint, requests: 3, lastUsedAt: expect.stringMatching(new RegExp(`^${today}T`)), revoked: false },
      { keyId: web.id, name: 'web', hint: web.hint, requests: 1, lastUsedAt: expect.stringMatching(new RegExp(`^${today}T`)), revoked: true },
      { keyId: idle.id, name: 'idle', hint: idle.hint, requests: 0, lastUsedAt: null, revoked: false },
    ]);
    // The CLI reads the store, as another process would.
    await kg.runtime.flush();
    const json = await cli('--json', 'accounts', 'usage', account.id);
    expect(JSON.parse(json.stdout)).toEqual(await (await kg.admin(`/v1/accounts/${account.id}/usage`)).json());
    expect((JSON.parse(json.stdout) as { keys: { requests: number }[] }).keys.map((k) => k.requests)).toEqual([3, 1, 0]);

    const human = await cli('accounts', 'usage', account.id);
    expect([human.code, human.stderr]).toEqual([0, '']);
    expect(human.stdout).toContain(`requests by key since ${answer.periodStart}:\nKEY   HINT`);
    expect(human.stdout).toMatch(new RegExp(`^ci\\s+\\S+\\s+${ci.id}\\s+3\\s+${today} \\d\\d:\\d\\dZ$`, 'm'));
    expect(human.stdout).toMatch(new RegExp(`^web\\s+\\S+\\s+${web.id}\\s+1\\s+${today} \\d\\d:\\d\\dZ\\s+revoked$`, 'm'));
    expect(human.stdout).toMatch(new RegExp(`^idle\\s+\\S+\\s+${idle.id}\\s+0\\s+-$`, 'm'));

    const daily = JSON.parse((await cli('--json', 'accounts', 'usage', account.id, '--daily')).stdout) as { day: string; metric: string; label: string; value: number }[];
    expect(daily.filter((row) => row.metric === 'key_requests').sort((a, b) => b.value - a.value)).toEqual([
      { day: today, metric: 'key_requests', label: ci.id, value: 3 },
      { day: today, metric: 'key_requests', label: web.id, value: 1 },
    ]);
  });

  it('plans list shows each plan\'s whole block policy: violations and period, first length, escalation, its cap, when it is forgotten, and scope', async () => {
    const blocksFile = path.join(dir, 'blocks.yaml');
    writeFileSync(
      blocksFile,
      stringify({
        ...profile,
        plans: {
          team: { rateLimits: [{ limit: 10, window: '1m' }], block: { after: 3, within: '1m', duration: '10m', factor: 2, max: '1h', forgetAfter: '7d', scope: 'account' }, meters: { units: { limit: 1000 } } },
          flat: {
            rateLimits: [{ limit: 5, window: '1s' }],
            block: { after: 5, within: '30s', duration: '1m', factor: 1 },
            meters: { calls: { limit: 500, period: { billingDay: 15 }, unit: 'credits', overage: true }, units: { limit: 20000, admit: 'untilZero' } },
          },
          open: {},
        },
      }),
    );
    const listed = await runCli(['--config', blocksFile, 'plans', 'list']);
    expect([listed.code, listed.stderr]).toEqual([0, '']);
    // Meters as the dashboard's Plans table says them, "; " between them (a comma is in 1,000).
    const [header] = listed.stdout.split('\n');
    const metersOf = (plan: string) => new RegExp(`^${plan} .*`, 'm').exec(listed.stdout)?.[0].slice(header?.indexOf('METERS'), header?.indexOf('BLOCK')).trim();
    expect(metersOf('team')).toBe('1,000 units a month');
    expect(metersOf('flat')).toBe('calls: 500 credits a month, renewed on the 15th (overage allowed); 20,000 units a month (until zero)');
    expect(metersOf('open')).toBe('-');
    const blockOf = (plan: string) => new RegExp(`^${plan} .*`, 'm').exec(listed.stdout)?.[0].split(/\s{2,}/).at(-1);
    expect(blockOf('team')).toBe('3 in 1m → 10m ×2 (max 1h, forgotten after 7d), per account');
    // Not escalating (factor 1): its cap and when it is forgotten say nothing; the defaults' scope is key.
    expect(blockOf('flat')).toBe('5 in 30s → 1m, per key');
    expect(blockOf('open')).toBe('-');
    // --json has every field.
    const json = JSON.parse((await runCli(['--config', blocksFile, '--json', 'plans', 'list'])).stdout) as { id: string; block: unknown }[];
    expect(json.find((p) => p.id === 'team')?.block).toEqual({ after: 3, within: '1m', duration: '10m', factor: 2, max: '1h', forgetAfter: '7d', scope: 'account' });
  });

  it('forecasts planned calls against the balance', async () => {
    const r = await cli('forecast', '--account', accountId, '--call', 'GET /api/v1/apps/a/metrics/mrr x50', '--json');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.total).toBe(500);
    expect(result.balance.units).toEqual({ remaining: 970, covered: true, overageAllowed: false, inPlan: true });
    const over = await cli('forecast', '--account', accountId, '--call', 'GET /api/v1/apps/a/metrics/mrr x99');
    expect(over.code).toBe(3);
    expect(over.stdout).toContain('units remaining: 970 → NOT covered');
    // A calls file's entries are checked, each named, before anything is priced.
    const file = path.join(dir, 'calls.yaml');
    const entries: [string, string][] = [
      ['- {path: /api/v1/apps/a/metrics/mrr, count: 1}', 'calls[0].method must be a method such as GET'],
      ['- {method: GET, path: /api/v1/apps/a/metrics/mrr, count: 1}\n- just a string', 'calls[1] must be a mapping {method, path, count, records}'],
      ['- {method: GET, path: api/v1, count: 1}', 'calls[0].path must be a path starting with /'],
      ['- {method: GET, path: /api/v1/apps/a/metrics/mrr, count: 1, records: -5}', 'calls[0].records must be a whole number from 1 to 9007199254740991'],
      ['- {method: GET, path: /api/v1/apps/a/metrics/mrr, count: 1, recrods: 100}', 'calls[0] has no field "recrods": a call is {method, path, count, records}'],
      ['- {method: GET, path: /api/v1/apps/a/metrics/mrr, count: 2.5}', 'calls[0].count must be a whole number from 0 to 9007199254740991'],
      // Left out: said so, not as if the count given were wrong.
      ['- {method: GET, path: /api/v1/apps/a/metrics/mrr}', 'calls[0].count must be given, a whole number from 0 to 9007199254740991'],
      // A whole number past what a count can hold exactly: the message says where the limit is.
      ['- {method: GET, path: /api/v1/apps/a/metrics/mrr, count: 1e300}', 'calls[0].count must be a whole number from 0 to 9007199254740991'],
    ];
    for (const [text, error] of entries) {
      writeFileSync(file, `${text}\n`);
      const r = await cli('forecast', '--calls', file);
      expect([r.code, r.stderr], text).toEqual([1, `error: ${error}\n`]);
    }
  });

  it('forecasts calls on a meter the account\'s plan lacks as refused for that, not as a balance spent', async () => {
    const { id } = JSON.parse((await cli('accounts', 'create', '--name', 'No units', '--plan', 'free', '--json')).stdout) as { id: string };
    const human = await cli('forecast', '--account', id, '--call', 'GET /api/v1/apps/a/metrics/mrr x2');
    expect([human.code, human.stderr]).toEqual([3, '']);
    expect(human.stdout.split('\n').slice(-2)).toEqual(['units: the free plan has no meter "units" → NOT covered (the gateway refuses these calls)', '']);
    const json = await cli('forecast', '--account', id, '--call', 'GET /api/v1/apps/a/metrics/mrr x2', '--json');
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toMatchObject({ total: 20, planId: 'free', covered: false, balance: { units: { remaining: 0, covered: false, overageAllowed: false, inPlan: false } } });
    // No units asked (no call): nothing to refuse, and it says so.
    const none = await cli('forecast', '--account', id, '--call', 'GET /api/v1/apps/a/metrics/mrr x0');
    expect([none.code, none.stdout.split('\n').slice(-2)]).toEqual([0, ['units: the free plan has no meter "units" → covered (these calls cost none of it)', '']]);
  });

  it('prints its version', async () => {
    const r = await runCli(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${JSON.parse(readFileSync(path.join(import.meta.dirname, '..', 'package.json'), 'utf8')).version}\n` });
  });

  it('explains a missing required option', async () => {
    const r = await cli('keys', 'create', '--name', 'x');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("required option '--account <id>' not specified");
  });

  it('backs up the SQLite store while the gateway runs, with what is still in its WAL, and never over an earlier copy; a keygate on the copy takes its keys', async () => {
    // Written by the running gateway's connection just now: in the -wal file, not yet in the database file.
    const account = await createAccount(kg.runtime, { name: 'Written just before the backup', planId: 'team' }, 'test');
    const { secret: backedUp } = await createKey(kg.runtime, { accountId: account.id, name: 'backed up', scopes: ['metrics:read'] }, 'test');
    const copy = path.join(dir, 'backups', 'keygate-copy.db');
    const made = await cli('--json', 'backup', copy);
    expect(made.code, made.stderr).toBe(0);
    expect(JSON.parse(made.stdout)).toEqual({ source: path.join(dir, 'keygate.db'), file: copy, bytes: statSync(copy).size });
    expect(statSync(copy).mode & 0o777).toBe(0o600);
    const restored = openSqliteStore(copy);
    try {
      expect((await restored.getAccount(account.id))?.name).toBe('Written just before the backup');
      expect((await restored.listKeys()).map((k) => k.id).sort()).toEqual((await kg.runtime.store.listKeys()).map((k) => k.id).sort());
    } finally {
      await restored.close();
    }
    // Restored: a keygate started on the copy answers the key made before it.
    const onCopy = await startKeygate({ ...profile, store: `sqlite:${copy}` }, { dir: path.join(dir, 'restored') });
    try {
      const response = await onCopy.call('/api/v1/apps/app1/metrics/mrr', { headers: { authorization: `Bearer ${backedUp}` } });
      expect(response.status).toBe(200);
      await response.text();
    } finally {
      await onCopy.close();
    }
    const again = await cli('backup', copy);
    expect([again.code, again.stderr]).toEqual([1, `error: ${copy} exists already: name a new file (a backup never overwrites one)\n`]);
    const postgresProfile = path.join(dir, 'postgres.yaml');
    writeFileSync(postgresProfile, stringify({ ...profile, store: 'postgres://keygate:secret@db.internal:5432/keygate' }));
    const elsewhere = await runCli(['--config', postgresProfile, 'backup', path.join(dir, 'pg-copy.db')]);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toBe('error: backup copies a SQLite store; this profile\'s store is postgres://keygate:***@db.internal:5432/keygate: back it up with pg_dump (or your database\'s own backups)\n');
  });
});

describe('keygate refuses bad profiles, naming the field', () => {
  const dir = tempDir('cli-bad');
  const cases: [string, string, string][] = [
    ['spawn without upstream.url', 'upstream: {spawn: [node, upstream.js]}\n', 'upstream.url: required with upstream.spawn'],
    ['bad port', 'upstream: {url: "http://127.0.0.1:1"}\nlisten: {port: 99999}\n', 'listen.port: expected at most 65535, got 99999'],
    ['typo in a field', 'upstream: {url: "http://127.0.0.1:1"}\nplans: {free: {apiAcess: false}}\n', 'plans.free: unknown field "apiAcess" (did you mean "apiAccess"?)'],
    ['bad envelope', 'upstream: {url: "http://127.0.0.1:1"}\nerrors: {envelope: soap}\n', 'errors.envelope: expected one of'],
    ['bad duration', 'upstream: {url: "http://127.0.0.1:1"}\nplans: {p: {rateLimits: [{limit: 5, window: soon}]}}\n', 'plans.p.rateLimits[0].window'],
    ['not YAML', 'upstream: [\n', 'not valid YAML'],
  ];
  it.each(cases)('%s', async (_name, text, expected) => {
    const file = path.join(dir, `${_name.replace(/\W/g, '-')}.yaml`);
    writeFileSync(file, text);
    // serve says it in its log: one JSON line, its problems listed, the message naming the
    // first (a log viewer may show only the message).
    const failed = startFailure(await runCli(['serve', '--config', file]));
    expect([failed.code, failed.stderr]).toEqual([2, '']);
    expect(failed.problems?.join('\n')).toContain(expected);
    expect(failed.msg).toBe(`keygate could not start: ${file}: invalid configuration: ${failed.problems?.[0]}${failed.problems?.length === 1 ? '' : ` (and ${(failed.problems?.length ?? 0) - 1} more)`}`);
    expect(failed.msg).toContain(expected);
  });

  it('a counters URL whose user or password has a "%" that begins no escape, or a store URL whose escapes spell no UTF-8: check and serve name the field and the fix, never the password, and serve makes no store', async () => {
    // The drivers unescape the user and password: one that cannot be unescaped stopped
    // start-up with "URI malformed", naming nothing, after the store's migrations had run.
    // (pg reads a "%" that begins no escape as itself: such a store URL is taken, as before.)
    const bare = 'the password has a "%" not followed by two hex digits; write a "%" in it as %25';
    const notUtf8 = 'the password\'s %-escapes do not spell UTF-8 text; write a "%" in it as %25, and any other character as the %-escapes of its UTF-8 bytes';
    const cases: [string, Record<string, string>, string][] = [
      ['counters-percent', { counters: 'redis://:s3cret100%@127.0.0.1:6379' }, `counters: ${bare}`],
      ['counters-user-percent', { counters: 'redis://kg%zz:s3cret@127.0.0.1:6379' }, 'counters: the user has a "%" not followed by two hex digits; write a "%" in it as %25'],
      ['store-not-utf8', { store: 'postgres://u:s3cret%FF@127.0.0.1/db' }, `store: ${notUtf8}`],
    ];
    for (const [name, fields, expected] of cases) {
      const folder = path.join(dir, name);
      mkdirSync(folder, { recursive: true });
      const file = path.join(folder, 'keygate.yaml');
      const sqlite = path.join(folder, 'keygate.db');
      writeFileSync(file, stringify({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${sqlite}`, ...fields }));
      const checked = await runCli(['check', '--config', file]);
      expect([checked.code, checked.stdout, checked.stderr]).toEqual([2, '', `${file}: invalid configuration\n  - ${expected}\n`]);
      const failed = startFailure(await runCli(['serve', '--config', file]));
      expect([failed.code, failed.stderr, failed.problems]).toEqual([2, '', [expected]]);
      expect(failed.msg).toBe(`keygate could not start: ${file}: invalid configuration: ${expected}`);
      expect(`${checked.stderr}${failed.msg}`).not.toContain('s3cret');
      expect(existsSync(sqlite)).toBe(false);
    }
  });

  it('a field written at the level of the empty section above it: check and serve say to indent it under that section', async () => {
    const file = path.join(dir, 'not-indented.yaml');
    writeFileSync(file, 'upstream:\nurl: http://127.0.0.1:1\n');
    const checked = await runCli(['check', '--offline', '--config', file]);
    expect([checked.code, checked.stdout, checked.stderr]).toEqual([
      2,
      '',
      `${file}: invalid configuration\n  - upstream: expected a mapping, got an empty value (an empty one is written "upstream: {}")\n  - (top level): unknown field "url" (upstream, above it, is empty and has a field "url": indent url under upstream)\n`,
    ]);
    const failed = startFailure(await runCli(['serve', '--config', file]));
    expect(failed.code).toBe(2);
    expect(failed.problems?.[1]).toBe('(top level): unknown field "url" (upstream, above it, is empty and has a field "url": indent url under upstream)');
  });

  it('check passes a profile without upstream.url nor gateway: false (the library\'s) and says serve refuses it; serve refuses it as a bad profile, naming upstream.url, gateway: false and what each is for', async () => {
    const file = path.join(dir, 'library-only.yaml');
    writeFileSync(file, 'plans: {free: {}}\nroutes:\n  - {path: /v1/rows}\n');
    const checked = await runCli(['check', '--offline', '--config', file]);
    const notServable = 'no upstream.url for the gateway to forward to, and no gateway: false (a profile for keygate as a library)';
    expect([checked.code, checked.stdout, checked.stderr]).toEqual([
      0,
      `${file}: ok (1 plan, 1 route)\nnot servable by keygate serve: ${notServable}; set upstream.url, or gateway: false to serve the admin API alone\n`,
      '',
    ]);
    const json = await runCli(['check', '--offline', '--json', '--config', file]);
    expect([json.code, JSON.parse(json.stdout)]).toEqual([0, { file, ok: true, plans: 1, routes: 1, serve: { servable: false, reason: notServable, fields: ['upstream.url', 'gateway'] } }]);
    // An omitted upstream.url is never taken to mean "no gateway": serve refuses it as before, naming both ways out.
    const failed = startFailure(await runCli(['serve', '--config', file]));
    expect(failed).toEqual({
      code: 2,
      msg: `keygate could not start: ${file}: cannot be served without upstream.url, or gateway: false`,
      problems: [
        'upstream.url: required to serve the gateway, which forwards the requests it admits there (e.g. http://127.0.0.1:4000); for the admin API alone, with no gateway (a backend that checks its requests over HTTP: POST /v1/check), say gateway: false instead. A profile with neither is for keygate as a library (createKeygate), which forwards nothing',
      ],
      stderr: '',
    });
  });

  it("check says serve refuses an upstream.url on one of keygate's own listeners, judging the profile's ports (serve --port can move the gateway), as serve words it", async () => {
    const profileOf = (name: string, text: string) => {
      const file = path.join(dir, `${name}.yaml`);
      writeFileSync(file, text);
      return file;
    };
    // No listener is opened by check: any port will do.
    const cases = [
      {
        file: profileOf('upstream-is-gateway', 'upstream: {url: "http://localhost:18080"}\nlisten: {port: 18080}\n'),
        reason: "upstream.url is keygate's own gateway (listen.port 18080): requests would be forwarded to keygate itself, not to your API",
        remedy: 'give upstream.url the address your API listens on, or move the gateway to another port (listen.port, or keygate serve --port)',
        fields: ['upstream.url', 'listen.port'],
      },
      {
        file: profileOf('upstream-is-admin', 'upstream: {url: "http://127.0.0.1:18081/"}\nadmin: {listen: {port: 18081}}\n'),
        reason: "upstream.url is keygate's own admin API (admin.listen.port 18081): requests would be forwarded to keygate itself, not to your API",
        remedy: 'give upstream.url the address your API listens on, or move the admin API to another port (admin.listen.port, or keygate serve --admin-port)',
        fields: ['upstream.url', 'admin.listen.port'],
      },
    ];
    for (const { file, reason, remedy, fields } of cases) {
      const [human, json] = await Promise.all([runCli(['check', '--offline', '--config', file]), runCli(['check', '--offline', '--json', '--config', file])]);
      expect([human.code, human.stdout, human.stderr], file).toEqual([0, `${file}: ok (1 plan, 1 route)\nnot servable by keygate serve: ${reason}; ${remedy}\n`, '']);
      expect([json.code, JSON.parse(json.stdout)], file).toEqual([0, { file, ok: true, plans: 1, routes: 1, serve: { servable: false, reason, fields } }]);
    }
    // Port 0 is any free port, never the upstream's; a host that is not this machine's loopback is another machine.
    const apart = [
      profileOf('gateway-any-port', 'upstream: {url: "http://127.0.0.1:18080"}\nlisten: {port: 0}\n'),
      profileOf('upstream-elsewhere', 'upstream: {url: "http://10.1.2.3:18080"}\nlisten: {host: 127.0.0.1, port: 18080}\n'),
    ];
    for (const file of apart) {
      const json = await runCli(['check', '--offline', '--json', '--config', file]);
      expect([json.code, JSON.parse(json.stdout).serve], file).toEqual([0, SERVED]);
    }
  });

  it('names a field given twice (a plan, a route\'s path) with both lines, and says what to do, rather than only YAML\'s "Map keys must be unique"', async () => {
    const file = path.join(dir, 'twice.yaml');
    writeFileSync(file, 'upstream: {url: "http://127.0.0.1:1"}\nplans:\n  scale:\n    rateLimits: [{limit: 5, window: 1s}]\n  scale:\n    rateLimits: [{limit: 10, window: 1s}]\nroutes:\n  - {path: /v1/*, path: /v2/*}\n');
    const r = await runCli(['check', '--offline', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `${file}: invalid configuration\n` +
        '  - plans.scale: given twice, at lines 3 and 5 (a name appears once in a mapping): merge the two into one, or rename one\n' +
        '  - routes[0].path: given twice, at line 8, columns 6 and 19 (a name appears once in a mapping): merge the two into one, or rename one\n',
    );
  });

  it('refuses a route cost charged to a gauge meter, whose usage is the level reported and would never show the units charged', async () => {
    const file = path.join(dir, 'cost-on-gauge.yaml');
    writeFileSync(
      file,
      'upstream: {url: "http://127.0.0.1:1"}\nplans:\n  pro: {meters: {keywords: {kind: gauge, limit: 20}}}\n  team: {meters: {keywords: {limit: 20}}}\nroutes:\n  - {path: /v1/keywords, cost: {meter: keywords, perRequest: 5}}\n',
    );
    const r = await runCli(['check', '--offline', '--config', file]);
    expect([r.code, r.stdout]).toEqual([2, '']);
    expect(r.stderr).toBe(
      `${file}: invalid configuration\n` +
        '  - routes[0].cost.meter: "keywords" is a gauge on plan "pro" (a level the upstream or an operator reports): a cost is charged to a consumed meter\n',
    );
  });

  it('check names a limit or cost too large for a number as too large, with the most it may be, and offers the meter a misspelled one meant', async () => {
    const file = path.join(dir, 'too-large.yaml');
    writeFileSync(
      file,
      `upstream: {url: "http://127.0.0.1:1"}\nplans:\n  pro:\n    rateLimits: [{limit: ${'9'.repeat(400)}, window: 1s}]\n    meters: {units: {limit: 1e400}}\nroutes:\n  - {path: /v1/a, cost: {meter: units, perRequest: 1e400}}\n`,
    );
    const r = await runCli(['check', '--offline', '--config', file]);
    expect([r.code, r.stdout]).toEqual([2, '']);
    expect(r.stderr).toBe(
      `${file}: invalid configuration\n` +
        "  - plans.pro.rateLimits[0].limit: too large: a window's limit is at most 999999999999999\n" +
        "  - plans.pro.meters.units.limit: too large: a meter's limit is at most 999999999999999\n" +
        '  - routes[0].cost.perRequest: too large: a cost is at most 999999999999999\n',
    );
    writeFileSync(file, 'upstream: {url: "http://127.0.0.1:1"}\nplans: {pro: {meters: {units: {limit: 1000}}}}\nroutes:\n  - {path: /v1/b, cost: {meter: unit, perRequest: 1}}\n');
    const misspelled = await runCli(['check', '--offline', '--config', file]);
    expect([misspelled.code, misspelled.stderr]).toEqual([2, `${file}: invalid configuration\n  - routes[0].cost.meter: no plan defines meter "unit" (did you mean "units"?)\n`]);
  });

  it('check says a section\'s own problem and a problem between sections in one run, as text and --json (exit 2)', async () => {
    const file = path.join(dir, 'two-kinds.yaml');
    writeFileSync(file, 'upstream: {url: "http://127.0.0.1:1"}\nlog: {level: loud}\nplans: {pro: {meters: {units: {limit: 1000}}}}\nroutes:\n  - {path: /v1/b, cost: {meter: unit, perRequest: 1}}\n');
    const r = await runCli(['check', '--offline', '--config', file]);
    expect([r.code, r.stdout]).toEqual([2, '']);
    expect(r.stderr).toBe(
      `${file}: invalid configuration\n` +
        '  - log.level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"\n' +
        '  - routes[0].cost.meter: no plan defines meter "unit" (did you mean "units"?)\n',
    );
    const json = await runCli(['--json', 'check', '--offline', '--config', file]);
    expect([json.code, JSON.parse(json.stdout)]).toEqual([
      2,
      {
        file,
        ok: false,
        problems: [
          { field: 'log.level', message: 'expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"' },
          { field: 'routes[0].cost.meter', message: 'no plan defines meter "unit" (did you mean "units"?)' },
        ],
      },
    ]);
  });

  it('an upstream URL without its scheme is one problem, the scheme, not also a "path" that is not there', async () => {
    const file = path.join(dir, 'no-scheme.yaml');
    writeFileSync(file, 'upstream: {url: "localhost:4100"}\ndashboard: {publicUrl: "keys.example.com:8443"}\n');
    const r = await runCli(['check', '--offline', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `${file}: invalid configuration\n` +
        '  - upstream.url: expected an http(s) URL such as http://127.0.0.1:4000, got "localhost:4100"\n' +
        '  - dashboard.publicUrl: expected an http(s) URL such as https://dashboard.example.com, got "keys.example.com:8443"\n',
    );
  });

  it('check passes a profile whose scoped route leaves other methods on its paths to a route without the scope, and says so', async () => {
    const file = path.join(dir, 'scope-gap.yaml');
    writeFileSync(file, 'upstream: {url: "http://127.0.0.1:4100"}\nscopes: [admin:read]\nroutes:\n  - {method: GET, path: /v1/admin/*, scopes: [admin:read]}\n  - {path: /v1/*}\n');
    const warning =
      'routes[0] (GET /v1/admin/*) requires the scope admin:read, but POST, PUT, PATCH and DELETE on its paths are judged by routes[1] (/v1/*), which does not: a key without it can POST, PUT, PATCH and DELETE there. Declare those methods with it, or give routes[0] no method (every method then needs it).';
    // /v1/admin itself, which the wildcard does not take, is told of too (the next test).
    const rootWarning = expect.stringMatching(/^routes\[0\] \(GET \/v1\/admin\/\*\) does not take \/v1\/admin or \/v1\/admin\/ /);
    const r = await runCli(['check', '--offline', '--config', file]);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual([`${file}: ok (1 plan, 2 routes)`, 'serves: the gateway, the admin API and the dashboard', `warning: ${warning}`, expect.stringMatching(/^warning: /), '']);
    const json = await runCli(['--json', 'check', '--offline', '--config', file]);
    expect([json.code, JSON.parse(json.stdout)]).toEqual([0, { file, ok: true, plans: 1, routes: 2, serve: SERVED, warnings: [warning, rootWarning] }]);
  });

  it('check passes a profile whose route P/* leaves P and P/ to a route without its scopes, and says so, naming both and the route to add', async () => {
    const file = path.join(dir, 'wildcard-root.yaml');
    writeFileSync(file, 'upstream: {url: "http://127.0.0.1:4100"}\nscopes: [admin, read]\nroutes:\n  - {path: /v1/admin/*, scopes: [admin]}\n  - {path: /v1/*, scopes: [read]}\n');
    const warning =
      "routes[0] (/v1/admin/*) does not take /v1/admin or /v1/admin/ (a wildcard needs a segment after its slash): requests to /v1/admin and /v1/admin/ are judged by routes[1] (/v1/*), which does not require the scope admin. To guard /v1/admin and /v1/admin/ as well, declare a route for /v1/admin with routes[0]'s scopes ({path: /v1/admin, ...}); one trailing slash is ignored, so it takes /v1/admin/ too.";
    const r = await runCli(['check', '--offline', '--config', file]);
    expect([r.code, r.stdout]).toEqual([0, `${file}: ok (1 plan, 2 routes)\nserves: the gateway, the admin API and the dashboard\nwarning: ${warning}\n`]);
    const json = await runCli(['--json', 'check', '--offline', '--config', file]);
    expect([json.code, JSON.parse(json.stdout)]).toEqual([0, { file, ok: true, plans: 1, routes: 2, serve: SERVED, warnings: [warning] }]);
    // With the route the warning asks for, nothing to say.
    writeFileSync(file, 'upstream: {url: "http://127.0.0.1:4100"}\nscopes: [admin, read]\nroutes:\n  - {path: /v1/admin/*, scopes: [admin]}\n  - {path: /v1/admin, scopes: [admin]}\n  - {path: /v1/*, scopes: [read]}\n');
    expect(await runCli(['check', '--offline', '--config', file])).toMatchObject({ code: 0, stdout: `${file}: ok (1 plan, 3 routes)\nserves: the gateway, the admin API and the dashboard\n` });
  });

  it('check warns of imported keys with fewer than 96 bits of randomness, naming the field and the bits; none for longer ones', async () => {
    const warned = async (imported: string) => {
      const file = path.join(dir, 'imported-keys.yaml');
      writeFileSync(file, `upstream: {url: "http://127.0.0.1:4100"}\nkeys: {imported: ${imported}}\n`);
      const r = await runCli(['check', '--offline', '--config', file]);
      expect(r.code, imported).toBe(0);
      return r.stdout.split('\n').filter((line) => line.startsWith('warning: '));
    };
    expect(await warned('{prefix: {live: old_}, alphabet: hex, length: 8}')).toEqual([
      "warning: keys.imported.length: imported keys of 8 hex characters after their prefix carry 32 bits of randomness, fewer than 96: guesses at unknown keys are not throttled, so a client can find a working key by trying (the more keys imported, the sooner). Move their owners to keygate's own keys (keygate keys rotate <id>), then remove keys.imported; see docs/authentication.md#key-formats.",
    ]);
    // The shortest length taken counts; 16 base62 characters are 95 bits.
    expect(await warned('{prefix: {live: old_}, alphabet: hex, length: {min: 12, max: 40}}')).toEqual([expect.stringContaining('of 12 hex characters after their prefix carry 48 bits')]);
    expect(await warned('{prefix: {live: old_}, length: 16}')).toEqual([expect.stringContaining('carry 95 bits')]);
    expect(await warned('{prefix: {live: old_}, length: 17}')).toEqual([]);
    // 96 bits exactly: 16 base64url characters, 24 hex digits.
    expect(await warned('{alphabet: base64url, length: 16}')).toEqual([]);
    expect(await warned('{alphabet: hex, length: 24}')).toEqual([]);
  });

  it('check warns of a dashboard that listens beyond loopback with cookies that are not Secure, naming the fields to set', async () => {
    // (Of a dashboard that knows no host name of its own, the next test.)
    const warned = async (dashboard: string) => {
      const file = path.join(dir, 'dashboard-cookies.yaml');
      writeFileSync(file, `upstream: {url: "http://127.0.0.1:4100"}\ndashboard: ${dashboard}\n`);
      const r = await runCli(['check', '--offline', '--config', file]);
      expect(r.code, dashboard).toBe(0);
      return r.stdout.split('\n').filter((line) => line.startsWith('warning: ') && !line.includes('knows no host name'));
    };
    for (const host of ['0.0.0.0', '"::"', '192.0.2.10', 'keys.internal']) {
      const warnings = await warned(`{enabled: true, listen: {host: ${host}}}`);
      expect(warnings, host).toHaveLength(1);
      expect(warnings[0]).toContain('beyond loopback, and its cookies are not Secure');
      for (const field of ['dashboard.publicUrl', 'dashboard.secureCookies', 'dashboard.listen.host']) expect(warnings[0]).toContain(field);
    }
    expect(await warned('{enabled: true, listen: {host: 0.0.0.0}, publicUrl: "http://keys.example.com"}')).toHaveLength(1);
    // Secure cookies, or loopback (a proxy on this host): nothing to say.
    expect(await warned('{enabled: true, listen: {host: 0.0.0.0}, publicUrl: "https://keys.example.com"}')).toEqual([]);
    expect(await warned('{enabled: true, listen: {host: 0.0.0.0}, secureCookies: true}')).toEqual([]);
    for (const host of ['127.0.0.1', 'localhost', '"::1"']) expect(await warned(`{enabled: true, listen: {host: ${host}}}`), host).toEqual([]);
    expect(await warned('{enabled: false, listen: {host: 0.0.0.0}}')).toEqual([]);
  });

  it('check warns of a dashboard that listens beyond loopback and knows no host name of its own (it refuses any other, 421), naming the fields to set', async () => {
    const warned = async (dashboard: string) => {
      const file = path.join(dir, 'dashboard-host-names.yaml');
      writeFileSync(file, `upstream: {url: "http://127.0.0.1:4100"}\ndashboard: ${dashboard}\n`);
      const r = await runCli(['check', '--offline', '--config', file]);
      expect(r.code, dashboard).toBe(0);
      return r.stdout.split('\n').filter((line) => line.startsWith('warning: ') && line.includes('knows no host name'));
    };
    for (const host of ['0.0.0.0', '"::"', '192.0.2.10']) {
      const warnings = await warned(`{enabled: true, secureCookies: true, listen: {host: ${host}}}`);
      expect(warnings, host).toHaveLength(1);
      for (const field of ['dashboard.publicUrl', 'dashboard.allowedHosts', '421']) expect(warnings[0]).toContain(field);
    }
    // A name of its own: publicUrl's, allowedHosts, the one it listens on; or loopback; or no dashboard.
    for (const dashboard of [
      '{enabled: true, listen: {host: 0.0.0.0}, publicUrl: "https://keys.example.com"}',
      '{enabled: true, listen: {host: 0.0.0.0}, allowedHosts: [keygate]}',
      '{enabled: true, listen: {host: keys.internal}}',
      '{enabled: true, listen: {host: 127.0.0.1}}',
      '{enabled: false, listen: {host: 0.0.0.0}}',
    ]) {
      expect(await warned(dashboard), dashboard).toEqual([]);
    }
  });

  it('serve warns at start of a dashboard that listens beyond loopback, as check does: cookies not Secure, no host name of its own', async () => {
    let runs = 0;
    /** The warnings (level 40) `keygate serve` logged up to its "keygate is serving" line, with the dashboard section given. */
    const warnedAtStart = async (dashboard: Record<string, unknown>) => {
      const file = path.join(dir, `serve-beyond-loopback-${++runs}.yaml`);
      // Every address, on a port of the system's choosing; no upstream is asked.
      writeFileSync(file, serveProfile(path.join(dir, `serve-beyond-loopback-${runs}.db`), { upstream: { url: 'http://127.0.0.1:9' }, dashboard: { enabled: true, listen: { host: '0.0.0.0', port: 0 }, ...dashboard } }));
      const serve = spawnServe(file);
      try {
        await serve.logged('keygate is serving');
        const lines = serve.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string; host?: string });
        const serving = lines.findIndex((line) => line.msg.startsWith('keygate is serving'));
        serve.child.kill('SIGTERM');
        expect(await serve.exited()).toBe(0);
        return lines.slice(0, serving).filter((line) => line.level === 40 && line.msg.includes('dashboard'));
      } finally {
        serve.child.kill('SIGKILL');
      }
    };
    const first = await warnedAtStart({});
    expect(first).toHaveLength(2);
    const [cookies, names] = first;
    expect(cookies).toMatchObject({ host: '0.0.0.0', msg: expect.stringContaining('beyond loopback, and its cookies are not Secure') });
    for (const field of ['dashboard.publicUrl', 'dashboard.secureCookies', 'dashboard.listen.host']) expect(cookies?.msg).toContain(field);
    expect(names).toMatchObject({ host: '0.0.0.0', msg: expect.stringContaining('knows no host name of its own') });
    for (const field of ['dashboard.publicUrl', 'dashboard.allowedHosts', '421']) expect(names?.msg).toContain(field);
    // Secure cookies: only that it knows no name; a name of its own besides (a wildcard too): nothing.
    expect((await warnedAtStart({ secureCookies: true })).map((line) => line.msg)).toEqual([names?.msg]);
    expect(await warnedAtStart({ secureCookies: true, allowedHosts: ['*.example.com'] })).toEqual([]);
  });

  it('check warns of keys fields the other key format reads, of reserve fields beside a flat cost, of a meter\'s admit beside overage and of errors.realm without WWW-Authenticate, naming each; none for their defaults', async () => {
    const warned = async (rest: string, plans = '{free: {meters: {rows: {limit: 100}}}}') => {
      const file = path.join(dir, 'unused-fields.yaml');
      writeFileSync(file, `upstream: {url: "http://127.0.0.1:4100"}\nplans: ${plans}\n${rest}`);
      const r = await runCli(['check', '--offline', '--config', file]);
      expect(r.code, rest).toBe(0);
      return r.stdout.split('\n').filter((line) => line.startsWith('warning: '));
    };
    expect(await warned('keys: {hexLength: 64}\n')).toEqual(['warning: keys.format is prefixed, so keys.hexLength has no effect (only hex keys have a hexLength)']);
    expect(await warned('keys: {format: hex, prefix: {live: sk_live_, test: sk_test_}}\n')).toEqual([
      'warning: keys.format is hex, so keys.prefix.live and keys.prefix.test have no effect (hex keys have no prefix)',
    ]);
    expect(await warned('routes:\n  - {path: /v1/rows, cost: {meter: rows, perRequest: 1, reserveRecords: 50, reserveFromQuery: limit}}\n  - {path: /v1/items, cost: {meter: rows, perRecord: 1, records: {json: data}, reserveRecords: 50, reserveFromQuery: limit}}\n')).toEqual([
      'warning: routes[0].cost.reserveRecords and routes[0].cost.reserveFromQuery have no effect beside perRequest (a flat cost reserves and charges the same whatever the records: they serve perRecord)',
    ]);
    expect(await warned('errors: {wwwAuthenticate: false, realm: data}\n', '{free: {meters: {rows: {limit: 100, overage: true, admit: untilZero}, calls: {limit: 5, admit: untilZero}}}}')).toEqual([
      'warning: plans.free.meters.rows.admit has no effect beside overage: true (it says which requests are refused without overage; with it none is)',
      'warning: errors.wwwAuthenticate is false, so errors.realm has no effect (the realm is sent only in WWW-Authenticate)',
    ]);
    expect(await warned('errors: {wwwAuthenticate: true, realm: data}\n', '{free: {meters: {rows: {limit: 100, overage: true, admit: whenCovered}}}}')).toEqual([]);
    // Each format's own fields, and the defaults of the other's written out: nothing to say.
    expect(await warned('keys: {format: hex, hexLength: 64, prefix: {live: kg_live_}}\n')).toEqual([]);
    expect(await warned('keys: {prefix: {live: sk_live_}, hexLength: 40}\nroutes: [{path: /v1/rows, cost: {meter: rows, perRequest: 1, reserveRecords: 1}}]\n')).toEqual([]);
  });

  it('check warns of errors.challenge where no 401 would name it: beside a credential header with a scheme, or with errors.wwwAuthenticate false; not where every key goes bare', async () => {
    const warned = async (rest: string) => {
      const file = path.join(dir, 'unused-challenge.yaml');
      writeFileSync(file, `upstream: {url: "http://127.0.0.1:4100"}\n${rest}`);
      const r = await runCli(['check', '--offline', '--config', file]);
      expect(r.code, rest).toBe(0);
      return r.stdout.split('\n').filter((line) => line.startsWith('warning: '));
    };
    // The default credential is Authorization: Bearer <key>.
    expect(await warned('errors: {challenge: Key}\n')).toEqual([
      'warning: auth.credentials[0] has the scheme Bearer, so errors.challenge has no effect (401s name Bearer in WWW-Authenticate: errors.challenge serves profiles whose credentials have no scheme)',
    ]);
    expect(await warned('auth: {credentials: [{in: query, name: apikey}, {in: header, name: Authorization, scheme: Token}]}\nerrors: {challenge: Key}\n')).toEqual([
      'warning: auth.credentials[1] has the scheme Token, so errors.challenge has no effect (401s name Token in WWW-Authenticate: errors.challenge serves profiles whose credentials have no scheme)',
    ]);
    const bare = 'auth: {credentials: [{in: header, name: apikey, scheme: none}, {in: query, name: apikey}]}\n';
    expect(await warned(`${bare}errors: {challenge: Key, wwwAuthenticate: false}\n`)).toEqual([
      'warning: errors.wwwAuthenticate is false, so errors.challenge has no effect (the challenge is sent only in WWW-Authenticate)',
    ]);
    expect(await warned(`${bare}errors: {challenge: Key, wwwAuthenticate: false, realm: kong}\n`)).toEqual([
      'warning: errors.wwwAuthenticate is false, so errors.realm and errors.challenge have no effect (they are sent only in WWW-Authenticate)',
    ]);
    expect(await warned(`${bare}errors: {challenge: Key, realm: kong}\n`)).toEqual([]);
    expect(await warned('auth: {credentials: [{in: query, name: apikey}]}\nerrors: {challenge: Key}\n')).toEqual([]);
  });

  it('refuses a user and password in upstream.url, which would never reach the upstream, without showing the password', async () => {
    const file = path.join(dir, 'upstream-userinfo.yaml');
    writeFileSync(file, 'upstream: {url: "http://svc:hunter2-secret@127.0.0.1:4100"}\n');
    const r = await runCli(['check', '--offline', '--config', file]);
    expect([r.code, r.stdout]).toEqual([2, '']);
    expect(r.stderr).toBe(
      `${file}: invalid configuration\n` +
        '  - upstream.url: a user or password here is never sent to the upstream (keygate sends no credentials of its own upstream): remove it, and let the upstream trust keygate by its address\n',
    );
  });

  it('names a PostgreSQL store it cannot reach, password hidden, for every command that needs it', async () => {
    const file = path.join(dir, 'unreachable-store.yaml');
    writeFileSync(file, 'upstream: {url: "http://127.0.0.1:1"}\nstore: "postgres://keygate:hunter2-secret@127.0.0.1:1/keygate"\nlisten: {port: 0}\nadmin: {listen: {port: 0}}\ndashboard: {enabled: false}\n');
    for (const args of [['serve'], ['migrate'], ['accounts', 'list'], ['pepper', 'check']]) {
      const r = await runCli([...args, '--config', file]);
      expect(r.code).toBe(1);
      // serve says it in its log (stdout), the other commands on stderr.
      const said = args[0] === 'serve' ? startFailure(r).msg : r.stderr;
      expect(said).toContain('store: cannot reach PostgreSQL at postgres://keygate:***@127.0.0.1:1/keygate: connect ECONNREFUSED 127.0.0.1:1');
      expect(r.stdout + r.stderr).not.toContain('hunter2-secret');
    }
  });

  it('says that a PostgreSQL database the profile names is not there yet, and what to do, for every command that needs it', async () => {
    if (!(await serviceAvailable('PostgreSQL', POSTGRES_URL))) return;
    const missing = new URL(POSTGRES_URL);
    missing.pathname = `/keygate_never_created_${process.pid}`;
    const name = missing.pathname.slice(1);
    const file = path.join(dir, 'missing-database.yaml');
    writeFileSync(file, stringify({ upstream: { url: 'http://127.0.0.1:1' }, store: missing.toString(), listen: { port: 0 }, admin: { listen: { port: 0 } }, dashboard: { enabled: false } }));
    // The createdb line names the profile's server and user (run elsewhere, a bare `createdb`
    // would ask the local socket), never its password.
    const server = `-h ${missing.hostname}${missing.port && missing.port !== '5432' ? ` -p ${missing.port}` : ''}${missing.username ? ` -U ${decodeURIComponent(missing.username)}` : ''}`;
    const said = `store: PostgreSQL at ${missing.toString()} has no database "${name}" yet: create it (createdb ${server} ${name}, or CREATE DATABASE "${name}"), then run keygate migrate`;
    for (const args of [['migrate'], ['accounts', 'list']]) {
      const r = await runCli([...args, '--config', file]);
      expect([r.code, r.stdout, r.stderr], args.join(' ')).toEqual([1, '', `error: ${said}\n`]);
    }
    const json = await runCli(['keys', 'list', '--config', file, '--json']);
    expect([json.code, JSON.parse(json.stderr)]).toEqual([1, { error: said }]);
    // A name that does not decode is not repeated, and never as the URL it came in (with its password).
    const odd = new URL(POSTGRES_URL);
    odd.password = 'hunter2-secret';
    odd.pathname = `/keygate_never_created_${process.pid}%zz`;
    writeFileSync(file, stringify({ upstream: { url: 'http://127.0.0.1:1' }, store: odd.toString(), listen: { port: 0 }, admin: { listen: { port: 0 } }, dashboard: { enabled: false } }));
    const r = await runCli(['accounts', 'list', '--config', file]);
    expect([r.code, r.stderr]).toEqual([1, `error: store: PostgreSQL at ${odd.toString().replace('hunter2-secret', '***')} has no database by the name it gives yet: create it, then run keygate migrate\n`]);
  });

  it('says when the file is missing', async () => {
    const r = await runCli(['check', '--offline', '--config', path.join(dir, 'nope.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${path.join(dir, 'nope.yaml')}: cannot read the profile\n  - cannot read the file: ENOENT (no file at ${path.join(dir, 'nope.yaml')})`);
    expect(r.stderr).not.toContain('invalid configuration');
    expect(r.stderr).toContain('Name the profile with --config <file>, or set KEYGATE_CONFIG.');
    const elsewhere = path.join(dir, 'no-demo');
    mkdirSync(elsewhere, { recursive: true });
    expect((await runCli(['keys', 'list'], { cwd: elsewhere })).stderr).toMatch(/\nName the profile with --config <file>, or set KEYGATE_CONFIG\.\n$/);
    // Where `npm run demo` ran (its profile under data/demo), the next command typed without --config is told the demo's.
    const afterDemo = path.join(dir, 'after-demo');
    mkdirSync(path.join(afterDemo, 'data', 'demo'), { recursive: true });
    writeFileSync(path.join(afterDemo, 'data', 'demo', 'keygate.yaml'), '{}\n');
    const withoutConfig = await runCli(['keys', 'list'], { cwd: afterDemo });
    expect([withoutConfig.code, withoutConfig.stderr]).toEqual([2, `keygate.yaml: cannot read the profile\n  - cannot read the file: ENOENT (no file at ${path.join(afterDemo, 'keygate.yaml')})\nName the profile with --config <file>, or set KEYGATE_CONFIG. The demo's is --config data/demo/keygate.yaml.\n`]);
    // A directory named instead of the file in it: said in words, not only EISDIR.
    const folder = await runCli(['accounts', 'list', '--config', dir, '--json']);
    expect([folder.code, JSON.parse(folder.stderr)]).toEqual([2, { error: `${dir}: cannot read the profile: EISDIR (${dir} is a directory: name the profile file in it)`, problems: [`cannot read the file: EISDIR (${dir} is a directory: name the profile file in it)`] }]);
  });

  it('--json answers a mistyped command line as JSON too, without the usage text; without --json, the usage follows the error', async () => {
    const cases: [string[], string][] = [
      [['keys', 'list', '--bogus'], "unknown option '--bogus'"],
      [['nosuch'], "unknown command 'nosuch'"],
      [['keys', 'create'], "required option '--account <id>' not specified"],
      [['keys', 'create', '--account', 'a', '--name', 'b', '--mode', 'x'], "option '--mode <mode>' argument is invalid. Allowed choices are live, test."],
      [['keys'], 'a command is needed; --help lists them'],
    ];
    for (const [args, error] of cases) {
      const r = await runCli(['--json', ...args]);
      expect([r.code, r.stdout, JSON.parse(r.stderr)], args.join(' ')).toEqual([1, '', { error }]);
    }
    const human = await runCli(['keys', 'list', '--bogus']);
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/^error: unknown option '--bogus'\n[\s\S]*Usage: keygate keys list/);
    const version = await runCli(['--json', '--version']);
    expect([version.code, version.stdout.trim()]).toEqual([0, JSON.parse(readFileSync(path.join(import.meta.dirname, '..', 'package.json'), 'utf8')).version]);
  });

  it('names a mistyped option, with the one it most likely meant, before a required option it leaves missing', async () => {
    // Commander said "required option '--account <id>' not specified" here, the typo unnamed.
    const human = await runCli(['keys', 'create', '--acount', 'acc_x', '--name', 'production']);
    expect([human.code, human.stdout, human.stderr.split('\n').slice(0, 2)]).toEqual([1, '', ["error: unknown option '--acount'", '(Did you mean --account?)']]);
    const json = await runCli(['--json', 'gauge', '--acount', 'acc_x', '--meter', 'keywords', '--value', '3']);
    expect([json.code, json.stdout, JSON.parse(json.stderr)]).toEqual([1, '', { error: "unknown option '--acount'\n(Did you mean --account?)" }]);
    // Written with its value after '=', the same (commander looked for a flag like '--acount=acc_x' and suggested none).
    const joined = await runCli(['keys', 'create', '--acount=acc_x', '--name', 'production']);
    expect([joined.code, joined.stdout, joined.stderr.split('\n').slice(0, 2)]).toEqual([1, '', ["error: unknown option '--acount'", '(Did you mean --account?)']]);
    const joinedJson = await runCli(['--json', 'keys', 'list', '--acount=acc_x']);
    expect([joinedJson.code, joinedJson.stdout, JSON.parse(joinedJson.stderr)]).toEqual([1, '', { error: "unknown option '--acount'\n(Did you mean --account?)" }]);
    // A required option left out with nothing mistyped is still said so.
    const missing = await runCli(['keys', 'create', '--name', 'production']);
    expect([missing.code, missing.stderr.split('\n')[0]]).toEqual([1, "error: required option '--account <id>' not specified"]);
  });

  it('says what a command line left out in one line, then the command\'s usage line, not its whole help', async () => {
    const cases: [string[], string, string][] = [
      [['keys', 'revoke'], "missing required argument 'id'", 'keygate keys revoke [options] <id>'],
      [['accounts', 'show'], "missing required argument 'id'", 'keygate accounts show [options] <id>'],
      [['accounts', 'create'], "required option '--name <name>' not specified", 'keygate accounts create [options]'],
      [['keys', 'create', '--name', 'production'], "required option '--account <id>' not specified", 'keygate keys create [options]'],
      [['keys', 'rotate', 'key_x', '--overlap'], "option '--overlap <duration>' argument missing", 'keygate keys rotate [options] <id>'],
    ];
    for (const [args, error, usage] of cases) {
      const [human, json] = await Promise.all([runCli(args), runCli(['--json', ...args])]);
      expect([human.code, human.stdout, human.stderr], args.join(' ')).toEqual([1, '', `error: ${error}\nUsage: ${usage}\n`]);
      expect([json.code, json.stdout, JSON.parse(json.stderr)], args.join(' ')).toEqual([1, '', { error }]);
    }
  });

  it('says a refused value or a word too many in one line, then the command\'s usage line, not its whole help', async () => {
    const cases: [string[], string, string][] = [
      [['keys', 'show', 'key_a', 'key_b'], "too many arguments for 'show'. Expected 1 argument but got 2.", 'keygate keys show [options] <id>'],
      [['check', 'keygate.yaml'], "too many arguments for 'check'. Expected 0 arguments but got 1.", 'keygate check [options]'],
      [['keys', 'create', '--account', 'a', '--name', 'b', '--mode', 'bogus'], "option '--mode <mode>' argument is invalid. Allowed choices are live, test.", 'keygate keys create [options]'],
      [['serve', '--port', 'abc'], "option '--port <port>' argument is invalid. Expected a whole number from 0 to 65535.", 'keygate serve [options]'],
      [['demo', '--config', 'keygate.yaml'], 'demo takes no --config: it writes and uses its own profile under --data. To run keygate with a profile: keygate serve --config <file>', 'keygate demo [options]'],
    ];
    for (const [args, error, usage] of cases) {
      const [human, json] = await Promise.all([runCli(args), runCli(['--json', ...args])]);
      expect([human.code, human.stdout, human.stderr], args.join(' ')).toEqual([1, '', `error: ${error}\nUsage: ${usage}\n`]);
      expect([json.code, json.stdout, JSON.parse(json.stderr)], args.join(' ')).toEqual([1, '', { error }]);
    }
    // --config given no file takes the next flag for one: refused, naming the flag (not a value that reads as none: it may be a secret).
    const [flagTaken, flagTakenJson] = await Promise.all([runCli(['accounts', 'list', '-c', '--verbose']), runCli(['-c', '--json', 'accounts', 'list'])]);
    expect([flagTaken.code, flagTaken.stdout, flagTaken.stderr.split('\n')[0]]).toEqual([1, '', 'error: option \'-c, --config <file>\' argument is invalid. Expected a profile file, not a flag --verbose (a file whose name begins with "-" is named by its path: ./-…).']);
    expect([flagTakenJson.code, flagTakenJson.stdout, JSON.parse(flagTakenJson.stderr)]).toEqual([1, '', { error: 'option \'-c, --config <file>\' argument is invalid. Expected a profile file, not a flag --json (a file whose name begins with "-" is named by its path: ./-…).' }]);
    const oddValue = await runCli(['--config=-kg_live_Secret123', 'accounts', 'list']);
    expect([oddValue.code, oddValue.stderr.includes('Secret123'), oddValue.stderr.split('\n')[0]]).toEqual([1, false, 'error: option \'-c, --config <file>\' argument is invalid. Expected a profile file, not a flag (a file whose name begins with "-" is named by its path: ./-…).']);
    // A name keygate does not know is still followed by the help: its list holds the name meant.
    const unknown = await runCli(['keys', 'bogus']);
    expect([unknown.code, unknown.stderr]).toEqual([1, expect.stringMatching(/^error: unknown command 'bogus'\n\nUsage: keygate keys \[options\] \[command\]\n[\s\S]*\n  revoke <id> /)]);
  });

  it('never repeats a key typed where the command line refuses it (a bad --mode or port, an unknown option or command), with or without --json, and still says what is expected', async () => {
    const key = createKeyFormat({ format: 'prefixed', prefix: { live: 'kg_live_' }, hexLength: 40 }).generate('live');
    // The prefix is public; what follows it is the secret.
    const secret = key.slice('kg_live_'.length);
    const notRepeated = 'what was typed is not repeated: it may be a secret';
    const cases: [string[], string][] = [
      [['keys', 'create', '--account', 'a', '--name', 'b', '--mode', key], "option '--mode <mode>' argument is invalid. Allowed choices are live, test."],
      [['keys', 'create', '--account', 'a', '--name', 'b', `--mode=${key}`], "option '--mode <mode>' argument is invalid. Allowed choices are live, test."],
      [['serve', '--admin-port', key], "option '--admin-port <port>' argument is invalid. Expected a whole number from 0 to 65535."],
      // An unknown option is named without its value; one that does not read as a name, not at all.
      [['keys', 'list', `--key=${key}`], "unknown option '--key'"],
      [['keys', 'list', `-${key}`], `unknown option (${notRepeated}); keygate keys list --help lists the options`],
      [[key], `unknown command (${notRepeated}); keygate --help lists the commands`],
      [['keys', key], `unknown command (${notRepeated}); keygate keys --help lists the commands`],
      // Commander counts the extra arguments without repeating them.
      [['keys', 'show', 'a', key], "too many arguments for 'show'. Expected 1 argument but got 2."],
    ];
    for (const [args, error] of cases) {
      const [human, json] = await Promise.all([runCli(args), runCli(['--json', ...args])]);
      expect([human.code, human.stdout, human.stderr.split('\n')[0]], args.join(' ')).toEqual([1, '', `error: ${error}`]);
      expect(human.stderr, args.join(' ')).not.toContain(secret);
      expect([json.code, json.stdout, JSON.parse(json.stderr)], args.join(' ')).toEqual([1, '', { error }]);
      expect(json.stderr, args.join(' ')).not.toContain(secret);
    }
    // A typo of a command is still repeated, with commander's suggestion.
    const typo = await runCli(['acounts']);
    expect([typo.code, typo.stderr.split('\n').slice(0, 2)]).toEqual([1, ["error: unknown command 'acounts'", '(Did you mean accounts?)']]);
  });

  it('check --json gives the problems as a list for scripts, each naming its field (exit 2), or ok with what the profile holds', async () => {
    const bad = path.join(dir, 'bad-for-json.yaml');
    writeFileSync(bad, 'upstream: {url: "http://127.0.0.1:1"}\nplans: {free: {apiAcess: false}}\nlisten: {port: 99999}\n');
    const unreadable = await runCli(['--json', 'keys', 'list', '--config', bad]);
    expect(unreadable.code).toBe(2);
    expect(JSON.parse(unreadable.stderr)).toEqual({ error: `${bad}: invalid configuration: listen.port: expected at most 65535, got 99999 (and 1 more)`, problems: [expect.stringMatching(/^listen\.port: /), 'plans.free: unknown field "apiAcess" (did you mean "apiAccess"?)'] });
    const refused = await runCli(['--json', 'check', '--offline', '--config', bad]);
    expect(refused.code).toBe(2);
    expect(JSON.parse(refused.stdout)).toEqual({
      file: bad,
      ok: false,
      problems: [
        { field: 'listen.port', message: expect.any(String) },
        { field: 'plans.free', message: 'unknown field "apiAcess" (did you mean "apiAccess"?)' },
      ],
    });
    // A field the top level does not take is the profile's (""); a file that is not there or not YAML, no field's (null).
    const topLevel = path.join(dir, 'top-level-for-json.yaml');
    writeFileSync(topLevel, 'upstream: {url: "http://127.0.0.1:1"}\nzzz: 1\n');
    expect(JSON.parse((await runCli(['--json', 'check', '--offline', '--config', topLevel])).stdout).problems).toEqual([{ field: '', message: 'unknown field "zzz"' }]);
    const notYaml = path.join(dir, 'not-yaml-for-json.yaml');
    writeFileSync(notYaml, 'upstream: [\n');
    expect(JSON.parse((await runCli(['--json', 'check', '--offline', '--config', notYaml])).stdout).problems).toEqual([{ field: null, message: expect.stringMatching(/^not valid YAML: /) }]);
    const missing = await runCli(['--json', 'check', '--offline', '--config', path.join(dir, 'no-such-profile.yaml')]);
    expect({ code: missing.code, problems: JSON.parse(missing.stdout).problems }).toEqual({ code: 2, problems: [{ field: null, message: expect.stringMatching(/^cannot read the file: ENOENT/) }] });
    const good = path.join(dir, 'good-for-json.yaml');
    writeFileSync(good, 'upstream: {url: "http://127.0.0.1:1"}\n');
    const ok = await runCli(['--json', 'check', '--offline', '--config', good]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ file: good, ok: true, plans: 1, routes: 1, serve: SERVED });
    expect((await runCli(['check', '--offline', '--config', good])).stdout.trim()).toBe(`${good}: ok (1 plan, 1 route)\nserves: the gateway, the admin API and the dashboard`);
  });
});

describe('keygate serve as a process', () => {
  const dir = tempDir('cli-serve');

  it('says why an upstream it was to start is not there: a command not found, or one that exited', async () => {
    const profile = (spawn: string[]) =>
      `upstream: {url: "http://127.0.0.1:1", spawn: ${JSON.stringify(spawn)}}\nstore: "sqlite:${path.join(dir, 'spawn.db')}"\n` +
      'listen: {port: 0}\nadmin: {listen: {port: 0}}\ndashboard: {enabled: false}\n';
    const cases: [string[], string][] = [
      [['/nonexistent/keygate-upstream'], 'upstream.spawn: "/nonexistent/keygate-upstream" could not be started: /nonexistent/keygate-upstream not found'],
      [['node', '-e', 'process.exit(3)'], 'upstream.spawn: "node -e process.exit(3)" exited (code 3) before listening on 127.0.0.1:1'],
    ];
    for (const [spawn, expected] of cases) {
      const file = path.join(dir, 'spawn.yaml');
      writeFileSync(file, profile(spawn));
      const r = await runCli(['serve', '--config', file]);
      const failed = startFailure(r);
      expect([failed.code, failed.stderr]).toEqual([1, '']);
      expect(failed.msg).toContain(expected);
      expect(r.stdout).not.toContain('node:events');
    }
  });

  it('names the listener whose port another process has, or whose address is not this machine\'s, and the field (or serve\'s flag) that moves it', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const cases: [Record<string, unknown>, string | RegExp][] = [
        [{ listen: { port }, admin: { listen: { port: 0 } } }, `the gateway cannot listen on 127.0.0.1:${port}: another process is using that port; change listen.port in the profile (or, for a second process serving the same profile on this host, start it with --port <port>)`],
        [{ listen: { port: 0 }, admin: { listen: { port } } }, `the admin cannot listen on 127.0.0.1:${port}: another process is using that port; change admin.listen.port in the profile (or, for a second process serving the same profile on this host, start it with --admin-port <port>)`],
        // An address that cannot be listened on names the host's field instead (.invalid is never a host; 192.0.2.1 is for documentation).
        // (A resolver that cannot be reached at all says it could not look the name up.)
        [{ listen: { host: 'no.such.host.invalid', port: 0 } }, /the gateway cannot listen on no\.such\.host\.invalid:0: (no such host name|the host name could not be looked up); change listen\.host in the profile/],
        [{ listen: { port: 0 }, admin: { listen: { host: '192.0.2.1', port: 0 } } }, 'the admin cannot listen on 192.0.2.1:0: that address belongs to no network interface of this machine; change admin.listen.host in the profile'],
      ];
      for (const [listeners, expected] of cases) {
        const file = path.join(dir, 'taken.yaml');
        writeFileSync(file, stringify({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'taken.db')}`, dashboard: { enabled: false }, ...listeners }));
        const failed = startFailure(await runCli(['serve', '--config', file]));
        expect([failed.code, failed.stderr]).toEqual([1, '']);
        if (typeof expected === 'string') expect(failed.msg).toBe(`keygate could not start: ${expected}`);
        else expect(failed.msg).toMatch(expected);
      }
      // A port given on the command line is the flag's to change, even when the profile names
      // the same one (--admin-port 8081 beside the default 8081): editing the profile would not move it.
      const file = path.join(dir, 'taken.yaml');
      writeFileSync(file, stringify({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'taken.db')}`, dashboard: { enabled: false }, listen: { port: 0 }, admin: { listen: { port } } }));
      const flagged = startFailure(await runCli(['serve', '--config', file, '--admin-port', String(port)]));
      expect([flagged.code, flagged.msg]).toEqual([1, `keygate could not start: the admin cannot listen on 127.0.0.1:${port}: another process is using that port; choose another port`]);
    } finally {
      taken.close();
    }
  });

  it('warns at start-up when the upstream accepts no connections, and serves all the same', async () => {
    const file = path.join(dir, 'down.yaml');
    const upstream = await refusedUrl();
    writeFileSync(file, serveProfile(path.join(dir, 'down.db'), { upstream: { url: upstream } }));
    const child = spawn(process.execPath, [BIN, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    try {
      await expect.poll(() => output, { timeout: 15_000 }).toContain(`the upstream accepts no connections at ${new URL(upstream).host}`);
      const gateway = JSON.parse(output.split('\n').find((l) => l.includes('keygate is serving')) as string).gateway as string;
      expect((await fetch(`${gateway}/anything`)).status).toBe(401);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('with a readiness delay, answers 503 on /health/ready after SIGTERM while serving, and a second SIGTERM cuts the delay short', async () => {
    const upstream = await startTestUpstream();
    const file = path.join(dir, 'keygate-delay.yaml');
    writeFileSync(
      file,
      serveProfile(path.join(dir, 'delay.db'), {
        upstream: { url: upstream.url },
        // Far longer than the test: only the second signal can end it in time.
        shutdown: { readinessDelay: '10m' },
      }),
    );
    const serve = spawnServe(file);
    const { child, logged } = serve;
    try {
      const serving = JSON.parse(await logged('keygate is serving')) as { gateway: string; admin: string };
      expect((await fetch(`${serving.admin}/health/ready`)).status).toBe(200);
      child.kill('SIGTERM');
      await logged('keygate stopping');
      expect((await fetch(`${serving.admin}/health/ready`)).status).toBe(503);
      // Still serving: a request without a key gets its 401 in the envelope, not a refused connection.
      expect((await fetch(`${serving.gateway}/anything`)).status).toBe(401);
      child.kill('SIGTERM');
      expect(await serve.exited()).toBe(0);
      expect(serve.output()).toContain('SIGTERM again: closing the listeners now');
      expect(serve.output()).toContain('keygate stopped');
    } finally {
      child.kill('SIGKILL');
      await upstream.close();
    }
  });

  it('takes a SIGTERM that arrives while keygate starts: it stops once serving, exits 0, and its spawned upstream goes too (started through a shell)', async () => {
    // A port nothing listens on yet, for an upstream that takes a while to start (named:
    // no server another test file starts meanwhile can take it, test/support/ports.ts).
    const port = await namedPort();
    const pidFile = path.join(dir, 'slow-upstream.pid');
    // It listens only once the test lets it (the file `go`), not after a fixed time: on a
    // loaded host a fixed head start could run out before the SIGTERM is sent.
    const goFile = path.join(dir, 'slow-upstream.go');
    writeFileSync(
      path.join(dir, 'slow-upstream.mjs'),
      `import { createServer } from 'node:http';\nimport { existsSync, renameSync, writeFileSync } from 'node:fs';\n` +
        `writeFileSync(${JSON.stringify(`${pidFile}.tmp`)}, String(process.pid));\nrenameSync(${JSON.stringify(`${pidFile}.tmp`)}, ${JSON.stringify(pidFile)});\n` +
        `const listen = () => (existsSync(${JSON.stringify(goFile)}) ? createServer((q, r) => r.end('{}')).listen(${port}, '127.0.0.1') : setTimeout(listen, 20));\nlisten();\n`,
    );
    const file = path.join(dir, 'keygate-slow-start.yaml');
    writeFileSync(
      file,
      serveProfile(path.join(dir, 'slow-start.db'), {
        // Through a shell that stays (`; true`), as `npm start` would: the upstream is its child.
        upstream: { url: `http://127.0.0.1:${port}`, spawn: ['sh', '-c', `"${process.execPath}" slow-upstream.mjs; true`] },
        // Not waited out by a stop asked before keygate served (the test would time out).
        shutdown: { readinessDelay: '10m' },
      }),
    );
    const serve = spawnServe(file);
    const { child } = serve;
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    let upstreamPid = 0;
    try {
      // The upstream was spawned, and is not listening yet: keygate is still starting.
      // Starting keygate and its upstream (two Node processes) took over 6 s on a loaded host.
      const spawnedBy = Date.now() + 60_000;
      while (!existsSync(pidFile) && Date.now() < spawnedBy) await new Promise((resolve) => setTimeout(resolve, 20));
      upstreamPid = Number(readFileSync(pidFile, 'utf8'));
      expect(upstreamPid).toBeGreaterThan(0);
      expect(serve.output()).not.toContain('keygate is serving');
      child.kill('SIGTERM');
      // Taken while starting; then the upstream listens, and keygate stops as soon as it serves.
      await serve.logged('SIGTERM while starting: keygate stops as soon as it serves');
      writeFileSync(goFile, '');
      expect(await serve.exited()).toBe(0);
      // Never ready, so in no balancer: no readiness delay is waited out, and the log says
      // so (not a delay begun and then cut short, as if a second signal had come).
      expect(serve.output()).toContain('keygate stopped');
      expect(serve.output()).toContain('keygate stopping (SIGTERM), asked while it started: no readiness delay (it was in no load balancer yet): closing the listeners');
      expect(serve.output()).not.toContain('readiness delay cut short');
      expect(serve.output()).not.toMatch(/serving \d+ s more/);
      const goneBy = Date.now() + 30_000;
      while (alive(upstreamPid) && Date.now() < goneBy) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(alive(upstreamPid)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      if (upstreamPid > 0 && alive(upstreamPid)) process.kill(upstreamPid, 'SIGKILL');
    }
  });

  it('starts, answers, and stops cleanly on SIGTERM', async () => {
    const upstream = await startTestUpstream();
    const file = path.join(dir, 'keygate.yaml');
    writeFileSync(file, serveProfile(path.join(dir, 'k.db'), { upstream: { url: upstream.url } }));
    const child = spawn(process.execPath, [BIN, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    try {
      const gateway = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start within 60 s:\n${output}`)), 60_000);
        child.stdout.on('data', () => {
          const line = output.split('\n').find((l) => l.includes('keygate is serving'));
          if (line) {
            clearTimeout(timer);
            resolve(JSON.parse(line).gateway as string);
          }
        });
      });
      const response = await fetch(`${gateway}/anything`);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="api"');
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(0);
      expect(output).toContain('keygate stopped');
      // Its upstream was there: no word about it.
      expect(output).not.toContain('the upstream accepts no connections');
    } finally {
      child.kill('SIGKILL');
      await upstream.close();
    }
  });
});

describe('keygate serve reloads its profile on SIGHUP', () => {
  const dir = tempDir('cli-reload');

  it('with ports given on the command line, takes a profile whose listen port changed (the profile\'s is not in use), and refuses a port past 65535', async () => {
    const upstream = await startTestUpstream();
    const file = path.join(dir, 'given-ports.yaml');
    const profile = (message: string, port: number) =>
      serveProfile(path.join(dir, 'given.db'), { upstream: { url: upstream.url }, listen: { port }, errors: { envelope: 'message', reasons: { missing_key: { message } } } });
    writeFileSync(file, profile('First', 1));
    const refused = await runCli(['serve', '--config', file, '--admin-port', '65536']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("error: option '--admin-port <port>' argument is invalid. Expected a whole number from 0 to 65535.\n");
    const { child, logged } = spawnServe(file, undefined, ['--port', '0']);
    try {
      const serving = JSON.parse(await logged('keygate is serving')) as { gateway: string; process: string; pid: number };
      const gateway = serving.gateway;
      const message = async () => ((await (await fetch(`${gateway}/anything`)).json()) as { message: string }).message;
      expect(await message()).toBe('First');
      // The start-up line names the process as its request ids and the host do.
      expect(serving.pid).toBe(child.pid);
      expect(JSON.parse(await logged('"msg":"request"')).reqId).toMatch(new RegExp(`^${serving.process.replace(/[-_]/g, '\\$&')}-[0-9a-z]+$`));
      writeFileSync(file, profile('Second', 2));
      child.kill('SIGHUP');
      expect(JSON.parse(await logged('profile reloaded')).changed).toEqual(['errors']);
      expect(await message()).toBe('Second');
      child.kill('SIGTERM');
      expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await upstream.close();
    }
  });

  it('puts a changed profile into effect, and keeps serving the one in use when the new one is invalid or needs a restart', async () => {
    const upstream = await startTestUpstream();
    const file = path.join(dir, 'keygate.yaml');
    const profile = (message: string, extra: Partial<ConfigInput> = {}) =>
      serveProfile(path.join(dir, 'k.db'), {
        upstream: { url: upstream.url },
        errors: { envelope: 'message', reasons: { missing_key: { message } } },
        ...extra,
      });
    writeFileSync(file, profile('No token'));
    const adminToken = 'cli-reload-admin-token-0123';
    const { child, logged } = spawnServe(file, { KEYGATE_ADMIN_TOKEN: adminToken });
    const message = async () => ((await (await fetch(`${gateway}/anything`)).json()) as { message: string }).message;
    let gateway = '';
    let admin = '';
    /** The reloads /metrics counts, applied and refused. */
    const reloads = async () => {
      const text = await (await fetch(`${admin}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } })).text();
      return ['applied', 'refused'].map((result) => Number(text.match(new RegExp(`^keygate_config_reloads_total\\{result="${result}"\\} (\\d+)$`, 'm'))?.[1]));
    };
    try {
      ({ gateway, admin } = JSON.parse(await logged('keygate is serving')) as { gateway: string; admin: string });
      expect(await reloads()).toEqual([0, 0]);
      expect(await message()).toBe('No token');
      const cli = (...args: string[]) => runCli(['--config', file, ...args]);
      const accountId = JSON.parse((await cli('accounts', 'create', '--name', 'Acme', '--json')).stdout).id as string;
      const secret = JSON.parse((await cli('keys', 'create', '--account', accountId, '--name', 'k', '--json')).stdout).secret as string;
      const withKey = async () => (await fetch(`${gateway}/anything`, { headers: { authorization: `Bearer ${secret}` } })).status;
      expect(await withKey()).toBe(200);

      // The plan loses API access and the messages change: the gateway's next answers follow.
      writeFileSync(file, profile('Send your token', { plans: { default: { apiAccess: false } } }));
      child.kill('SIGHUP');
      expect(JSON.parse(await logged('profile reloaded')).changed).toEqual(['errors', 'plans']);
      expect(await message()).toBe('Send your token');
      expect(await withKey()).toBe(403);

      // Not a profile keygate can use: named, and the one in use stays.
      writeFileSync(file, profile('Broken', { plans: { team: { rateLimits: [{ limit: -1, window: '1m' }] } } }));
      child.kill('SIGHUP');
      expect(await logged('profile not reloaded')).toContain('plans.team.rateLimits[0].limit: expected more than 0, got -1');
      // Only a restart can move the listener.
      writeFileSync(file, profile('Moved', { listen: { port: 1 } }));
      child.kill('SIGHUP');
      const refused = await logged('profile not reloaded', 1);
      expect(refused).toContain('listen.port changed, and it takes effect only when keygate restarts');
      // Said once, not twice ("the one in use stays ... the profile in use stays").
      expect(refused.match(/in use stays/g)).toHaveLength(1);
      expect(await message()).toBe('Send your token');
      // Each SIGHUP counted: one applied, two refused.
      expect(await reloads()).toEqual([1, 2]);

      child.kill('SIGTERM');
      expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await upstream.close();
    }
  });
});

describe('keygate serve names unused fields by their place in the profile as read', () => {
  const dir = tempDir('cli-reload-unused');

  it('after a reload that only reorders the routes (no change), names a reserve field beside a flat cost by its route\'s place in the file', async () => {
    const upstream = await startTestUpstream();
    const file = path.join(dir, 'keygate.yaml');
    const flat = { path: '/v1/rows', cost: { meter: 'rows', perRequest: 1, reserveRecords: 50 } };
    const other = { path: '/v1/items' };
    const profile = (routes: unknown[]) => serveProfile(path.join(dir, 'k.db'), { upstream: { url: upstream.url }, plans: { free: { meters: { rows: { limit: 100 } } } }, routes });
    writeFileSync(file, profile([flat, other]));
    const { child, logged } = spawnServe(file);
    try {
      await logged('keygate is serving');
      expect(JSON.parse(await logged('no effect beside perRequest')).fields).toEqual(['routes[0].cost.reserveRecords']);
      writeFileSync(file, profile([other, flat]));
      child.kill('SIGHUP');
      expect(JSON.parse(await logged('profile reloaded')).msg).toBe('profile reloaded: nothing changed');
      expect(JSON.parse(await logged('no effect beside perRequest', 1)).fields).toEqual(['routes[1].cost.reserveRecords']);
      child.kill('SIGTERM');
      expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await upstream.close();
    }
  });
});

describe('one serving process per SQLite file with in-memory counters', () => {
  it('refuses a second keygate serve on the file, naming the first; CLI commands still run beside it; a killed one blocks nothing', async () => {
    const dir = tempDir('cli-one-server');
    const file = path.join(dir, 'keygate.yaml');
    // In a folder that does not exist yet, as ./data on a first start.
    writeFileSync(file, serveProfile(path.join(dir, 'data', 'k.db'), { upstream: { url: 'http://127.0.0.1:9' } }));
    const startServing = async () => {
      const child = spawn(process.execPath, [BIN, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start within 60 s:\n${output}`)), 60_000);
        child.stdout.on('data', () => {
          if (output.includes('keygate is serving')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      return child;
    };
    const first = await startServing();
    try {
      const second = startFailure(await runCli(['serve', '--config', file]));
      expect(second.code).toBe(1);
      expect(second.msg).toMatch(new RegExp(`^keygate could not start: another keygate process \\(pid ${first.pid} on .*\\) is serving with this SQLite file and in-memory counters`));
      expect((await runCli(['--config', file, 'accounts', 'create', '--name', 'Beside'])).code).toBe(0);
    } finally {
      first.kill('SIGKILL');
      await new Promise((resolve) => first.once('exit', resolve));
    }
    // Killed: the operating system dropped its lock with it, so the next start is at once.
    const third = await startServing();
    third.kill('SIGTERM');
    expect(await new Promise((resolve) => third.once('exit', resolve))).toBe(0);
  });
});

/** A profile whose keys are blocked for 10 minutes by their third request within an hour (one admitted, two refused). */
function blockingProfile(dir: string, upstreamUrl: string, counters?: string): ConfigInput {
  return {
    upstream: { url: upstreamUrl },
    store: `sqlite:${path.join(dir, 'keygate.db')}`,
    ...(counters === undefined ? {} : { counters }),
    plans: { strict: { rateLimits: [{ limit: 1, window: '1h' }], block: { after: 2, within: '1h', duration: '10m' } } },
    routes: [{ path: '/v1/*' }],
    dashboard: { enabled: false },
  };
}

/** An account and a key made with the CLI, then blocked by the gateway; `admin`: the admin API's answer for the key. */
async function blockedKey(cli: (...args: string[]) => Promise<CliResult>, kg: TestKeygate) {
  const accountId = JSON.parse((await cli('accounts', 'create', '--name', 'Retry loop', '--json')).stdout).id as string;
  const created = JSON.parse((await cli('keys', 'create', '--account', accountId, '--name', 'ci', '--json')).stdout) as { id: string; secret: string; blockedUntil?: string | null };
  expect(created.blockedUntil).toBeNull();
  // One admitted, one refused by the window, and the next refusal blocks the key for 10 minutes.
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) {
    const response = await kg.call('/v1/projects', { headers: { authorization: `Bearer ${created.secret}` } });
    statuses.push(response.status);
    await response.text();
  }
  expect(statuses).toEqual([200, 429, 429]);
  const admin = (await (await kg.admin(`/v1/keys/${created.id}`)).json()) as { blockedUntil: string };
  expect(Date.parse(admin.blockedUntil) - Date.now()).toBeGreaterThan(9 * 60_000);
  return { accountId, created, admin };
}

/** Asks until `done` answers true, for up to 60 s (a write another process makes within a second). */
async function poll(done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await done()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
}

describe('keygate CLI on memory counters, beside a gateway that blocked a key', () => {
  const dir = tempDir('cli-memory-blocks');
  const configFile = path.join(dir, 'keygate.yaml');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);

  beforeAll(async () => {
    upstream = await startTestUpstream();
    const profile = blockingProfile(dir, upstream.url);
    writeFileSync(configFile, stringify(profile));
    kg = await startKeygate(profile, { dir });
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('shows the block the serving process wrote to the store, until it is lifted there', async () => {
    const { accountId, created, admin } = await blockedKey(cli, kg);

    // Written within a second; asked until then (or 60 s), it may still say null.
    const listed = async () => JSON.parse((await cli('keys', 'list', '--account', accountId, '--json')).stdout) as { blockedUntil: string | null }[];
    await poll(async () => (await listed())[0]?.blockedUntil === admin.blockedUntil);
    expect(await listed()).toMatchObject([{ id: created.id, blockedUntil: admin.blockedUntil }]);
    expect((await cli('keys', 'list', '--account', accountId)).stdout).toMatch(/active, blocked until /);

    // Lifted by the serving process: gone from the store too.
    expect((await kg.admin(`/v1/keys/${created.id}/unblock`, { method: 'POST' })).status).toBe(200);
    await poll(async () => (await listed())[0]?.blockedUntil === null);
    expect(await listed()).toMatchObject([{ id: created.id, blockedUntil: null }]);
  });
});

const redisUp = await serviceAvailable('Redis', REDIS_URL);

describe.skipIf(!redisUp)('keygate CLI on Redis counters, beside a gateway that blocked a key', () => {
  const dir = tempDir('cli-redis-blocks');
  const configFile = path.join(dir, 'keygate.yaml');
  const prefix = testRedisPrefix('cli-blocks');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);

  beforeAll(async () => {
    upstream = await startTestUpstream();
    const profile = blockingProfile(dir, upstream.url, redisUrlWithPrefix(prefix));
    writeFileSync(configFile, stringify(profile));
    kg = await startKeygate(profile, { dir });
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
    await deleteRedisKeys(prefix);
  });

  it('gives blockedUntil in the JSON of every keys command, as the admin API does: when the block ends, or null; keys show and keys unblock print its answers field for field', async () => {
    const { accountId, created, admin } = await blockedKey(cli, kg);

    // The same instant as the admin API's, wherever a key is printed.
    const renamed = await cli('keys', 'update', created.id, '--name', 'ci (looping)', '--json');
    expect(JSON.parse(renamed.stdout)).toMatchObject({ name: 'ci (looping)', blockedUntil: admin.blockedUntil });
    expect(JSON.parse((await cli('keys', 'list', '--account', accountId, '--json')).stdout)).toMatchObject([{ id: created.id, blockedUntil: admin.blockedUntil }]);
    // The admin API's own answers, field for field and in their order: its unblock's {key, lifted}, then its GET.
    const lifted = await cli('keys', 'unblock', created.id, '--json');
    const again = await kg.admin(`/v1/keys/${created.id}/unblock`, { method: 'POST' });
    const liftedByApi = (await again.json()) as { key: { blockedUntil: string | null }; lifted: number };
    expect([again.status, liftedByApi.key.blockedUntil, liftedByApi.lifted]).toEqual([200, null, 0]);
    expect(lifted.stdout).toBe(`${JSON.stringify({ ...liftedByApi, lifted: 1 }, null, 2)}\n`);
    // Nothing left to lift: said so, and neither that call nor the admin API's is in the audit log as a lift.
    const nothing = await cli('keys', 'unblock', created.id);
    expect([nothing.code, nothing.stdout, nothing.stderr]).toEqual([0, `key ${created.id} (ci (looping)) was not blocked; nothing to lift (its violations so far are forgotten)\n`, '']);
    const unblocks = (JSON.parse((await cli('audit', '--json')).stdout) as { action: string; keyId: string | null; detail: { lifted?: number } }[]).filter((e) => e.action === 'key.unblocked');
    expect(unblocks.map((e) => [e.keyId, e.detail.lifted])).toEqual([[created.id, 1]]);
    const shown = await cli('keys', 'show', created.id, '--json');
    expect(shown.stdout).toBe(`${JSON.stringify(await (await kg.admin(`/v1/keys/${created.id}`)).json(), null, 2)}\n`);
    expect(JSON.parse((await cli('keys', 'revoke', created.id, '--json')).stdout)).toMatchObject({ status: 'revoked', blockedUntil: null });
  });
});

/** The CLI against a profile in `dir` whose counters are at `redis`, with a metered plan and route. */
function cliWithRedisAt(dir: string, redis: string): (...args: string[]) => ReturnType<typeof runCli> {
  const configFile = path.join(dir, 'keygate.yaml');
  writeFileSync(
    configFile,
    stringify({
      upstream: { url: 'http://127.0.0.1:9' },
      store: `sqlite:${path.join(dir, 'k.db')}`,
      counters: redis,
      plans: { team: { meters: { units: { limit: 1000 } } } },
      routes: [{ path: '/v1/*', cost: { meter: 'units', perRequest: 1 } }],
      dashboard: { enabled: false },
    }),
  );
  return (...args: string[]) => runCli(['--config', configFile, ...args]);
}

/** A server that accepts connections, reads nothing and answers nothing (a Redis stopped with SIGSTOP); counts who came. */
async function stalledRedis(): Promise<{ url: string; connections: () => number; close: () => void }> {
  let connections = 0;
  const held = new Set<Socket>();
  const stalled = createServer((socket) => {
    connections++;
    held.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  return {
    url: `redis://127.0.0.1:${(stalled.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () => {
      for (const socket of held) socket.destroy();
      stalled.close();
    },
  };
}

describe('keygate CLI when the profile\'s Redis is unreachable', () => {
  it('runs every command without waiting for Redis and says, in words, what the outage means only where it matters', async () => {
    const cli = cliWithRedisAt(tempDir('cli-redis-down'), await refusedUrl('redis'));

    // Nothing here needs Redis: nothing is said about it.
    const account = await cli('accounts', 'create', '--name', 'Acme', '--json');
    expect(account.stderr).toBe('');
    const accountId = JSON.parse(account.stdout).id as string;
    const key = await cli('keys', 'create', '--account', accountId, '--name', 'ci', '--json');
    expect(key.stderr).toBe('');
    const keyId = JSON.parse(key.stdout).id as string;

    // A balance comes from the store.
    const usage = await cli('accounts', 'usage', accountId);
    expect(usage.code).toBe(0);
    expect(usage.stdout).toContain('units');
    expect(usage.stderr).toBe('warning: Redis is unreachable: balances are read from the store, up to a second or so behind\n');

    // Whether the key is blocked is not known: said so, not "active" alone (--json leaves blockedUntil out).
    const shown = await cli('keys', 'show', keyId);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^status +active \(blocked or not: Redis is unreachable\)$/m);
    const listed = await cli('keys', 'list');
    expect(listed.stdout).toContain('active (blocked or not: Redis is unreachable)');
    expect(JSON.parse((await cli('keys', 'show', keyId, '--json')).stdout)).not.toHaveProperty('blockedUntil');

    // A revocation is saved; the running gateways see it in the SQLite file, not on Redis.
    const revoked = await cli('keys', 'revoke', keyId);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`revoked key ${keyId}`);
    expect(revoked.stderr).toMatch(/^warning: the change is saved, but Redis did not carry its message: running keygate processes learn of it from the store instead, within about a second \(cause: .*Redis is not reachable, change: key\)\n$/);
  });

  it('answers with what it can where Redis takes the connection and never replies (stopped with SIGSTOP), and keys unblock fails saying so', async () => {
    const stalled = await stalledRedis();
    try {
      const cli = cliWithRedisAt(tempDir('cli-redis-stalled'), stalled.url);
      const accountId = JSON.parse((await cli('accounts', 'create', '--name', 'Acme', '--json')).stdout).id as string;
      const keyId = JSON.parse((await cli('keys', 'create', '--account', accountId, '--name', 'ci', '--json')).stdout).id as string;

      const usage = await cli('accounts', 'usage', accountId);
      expect([usage.code, usage.stderr]).toEqual([0, 'warning: Redis is unreachable: balances are read from the store, up to a second or so behind\n']);
      expect(usage.stdout).toContain('units');
      const shown = await cli('keys', 'show', keyId);
      expect([shown.code, shown.stderr]).toEqual([0, '']);
      expect(shown.stdout).toMatch(/^status +active \(blocked or not: Redis is unreachable\)$/m);
      const listed = await cli('keys', 'list');
      expect([listed.code, listed.stderr]).toEqual([0, '']);
      expect(listed.stdout).toContain('active (blocked or not: Redis is unreachable)');
      expect(JSON.parse((await cli('keys', 'show', keyId, '--json')).stdout)).not.toHaveProperty('blockedUntil');

      // Nothing to lift it with: refused in words, exit code 1, nothing recorded.
      const said = `the block of key ${keyId} was not lifted: Redis at ${stalled.url} could not be reached, and blocks are kept there. Nothing was changed; try again once Redis answers`;
      const unblocked = await cli('keys', 'unblock', keyId);
      expect([unblocked.code, unblocked.stdout, unblocked.stderr]).toEqual([1, '', `error: ${said}\n`]);
      const json = await cli('keys', 'unblock', keyId, '--json');
      expect([json.code, JSON.parse(json.stderr)]).toEqual([1, { error: said }]);
      expect(JSON.parse((await cli('audit', '--json')).stdout).map((event: { action: string }) => event.action)).not.toContain('key.unblocked');
    } finally {
      stalled.close();
    }
  });
});

describe('keygate CLI commands that need no counters', () => {
  it('never connect to Redis: accounts, plans, members and audit answer at once from a Redis that would never reply', async () => {
    const stalled = await stalledRedis();
    try {
      const cli = cliWithRedisAt(tempDir('cli-no-counters'), stalled.url);
      const created = await cli('accounts', 'create', '--name', 'Acme', '--json');
      expect([created.code, created.stderr]).toEqual([0, '']);
      const listed = await cli('accounts', 'list', '--json');
      expect([listed.code, listed.stderr]).toEqual([0, '']);
      expect(JSON.parse(listed.stdout)).toMatchObject([{ id: JSON.parse(created.stdout).id, name: 'Acme' }]);
      for (const command of [['plans', 'list'], ['members', 'list'], ['audit']]) {
        const r = await cli(...command, '--json');
        expect([command, r.code, r.stderr]).toEqual([command, 0, '']);
      }
      expect(stalled.connections()).toBe(0);
    } finally {
      stalled.close();
    }
  });
});

describe('keygate human tables', () => {
  it('line columns up by the width a terminal gives each name (CJK and emoji two columns a character, a combining accent none)', async () => {
    const dir = tempDir('cli-wide-names');
    const configFile = path.join(dir, 'keygate.yaml');
    writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'k.db')}`, dashboard: { enabled: false } }));
    const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);
    // Six terminal columns each; their UTF-16 lengths are 3, 4 (two surrogate pairs), 5 and 6.
    const names = ['東京都', '🚀🚀 x', 'Cafe\u0301 ', 'Plain1'];
    for (const name of names) expect((await cli('accounts', 'create', '--name', name)).code).toBe(0);
    const lines = (await cli('accounts', 'list')).stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + names.length);
    // The PLAN column starts at the same terminal column on every line.
    const planColumn = (line: string) => {
      const before = line.slice(0, line.search(/(PLAN|default)\b/));
      return [...new Intl.Segmenter().segment(before)].reduce((width, { segment }) => width + (/\p{Extended_Pictographic}|\p{Script=Han}/u.test(segment) ? 2 : 1), 0);
    };
    expect(new Set(lines.map(planColumn)).size).toBe(1);
  });
});

describe('keygate keys create on a profile without scopes (as the README\'s first one)', () => {
  it('says where scopes come from when a key is given one the plan cannot allow, instead of "allowed: (none)"', async () => {
    const dir = tempDir('cli-no-scopes');
    const configFile = path.join(dir, 'keygate.yaml');
    // The README's first profile: no scopes anywhere, one plan with an empty list of its own.
    writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'k.db')}`, plans: { scale: {}, locked: { scopes: [] } }, dashboard: { enabled: false } }));
    const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);
    const account = JSON.parse((await cli('accounts', 'create', '--name', 'Acme', '--plan', 'scale', '--json')).stdout).id as string;
    const refused = await cli('keys', 'create', '--account', account, '--name', 'prod', '--scopes', 'read');
    expect([refused.code, refused.stdout, refused.stderr]).toEqual([1, '', 'error: --scopes: the scope given is not allowed: keys of this API carry no scopes (the profile lists none under scopes); give the key none, or list the scopes under scopes in the profile\n']);
    const locked = JSON.parse((await cli('accounts', 'create', '--name', 'Locked', '--plan', 'locked', '--json')).stdout).id as string;
    const onPlan = await cli('keys', 'create', '--account', locked, '--name', 'prod', '--scopes', '*');
    expect([onPlan.code, onPlan.stderr]).toEqual([1, 'error: --scopes: * is not allowed: keys on plan locked carry no scopes (its scopes list is empty); give the key none, or list scopes under plans.locked.scopes in the profile\n']);
    expect(JSON.parse((await cli('keys', 'list', '--json')).stdout)).toEqual([]);
    // Without --scopes the key is made, with none.
    const made = await cli('keys', 'create', '--account', account, '--name', 'prod', '--json');
    expect([made.code, JSON.parse(made.stdout).scopes]).toEqual([0, []]);
  });

  it('says when a key given --expires stops working: a date is that day\'s start, UTC', async () => {
    const dir = tempDir('cli-expires');
    const configFile = path.join(dir, 'keygate.yaml');
    writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'k.db')}`, dashboard: { enabled: false } }));
    const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);
    const account = JSON.parse((await cli('accounts', 'create', '--name', 'Acme', '--json')).stdout).id as string;
    const dated = await cli('keys', 'create', '--account', account, '--name', 'trial', '--expires', '2099-01-31');
    expect(dated.code).toBe(0);
    expect(dated.stdout.split('\n')[0]).toMatch(new RegExp(`^created key key_\\w+ \\(trial\\) for account ${account}; it stops working at 2099-01-31 00:00:00Z$`));
    const open = await cli('keys', 'create', '--account', account, '--name', 'prod');
    expect(open.stdout.split('\n')[0]).toMatch(new RegExp(`^created key key_\\w+ \\(prod\\) for account ${account}$`));
  });

  it('shows when a key stops working to the second, rounded up as every end still to come (at the second shown it has stopped), and when it was revoked truncated, never after it happened', async () => {
    const dir = tempDir('cli-past-seconds');
    const configFile = path.join(dir, 'keygate.yaml');
    writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'k.db')}`, dashboard: { enabled: false } }));
    const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);
    const account = JSON.parse((await cli('accounts', 'create', '--name', 'Acme', '--json')).stdout).id as string;
    // A duration: the expiry has the milliseconds of the moment it was made.
    const made = JSON.parse((await cli('keys', 'create', '--account', account, '--name', 'trial', '--expires', '90d', '--json')).stdout) as { id: string; expiresAt: string };
    const second = (iso: string) => iso.replace('T', ' ').slice(0, 19);
    const secondUp = (iso: string) => second(new Date(Math.ceil(Date.parse(iso) / 1000) * 1000).toISOString());
    const shown = await cli('keys', 'show', made.id);
    expect(shown.stdout).toMatch(new RegExp(`^expires +${secondUp(made.expiresAt)}Z$`, 'm'));
    const revoked = JSON.parse((await cli('keys', 'revoke', made.id, '--json')).stdout) as { revokedAt: string; hint: string };
    const refused = await cli('keys', 'rotate', made.id);
    expect([refused.code, refused.stderr]).toEqual([1, `error: “trial” ${revoked.hint} (${made.id}) was revoked at ${second(revoked.revokedAt)} UTC; only an active key can be rotated: create a new key instead\n`]);
  });

  it('gives a revocation and an expiry already past to the second, truncated, in keys show, keys list and a second keys revoke (as docs/cli.md says), not to the minute', async () => {
    const dir = tempDir('cli-past-moments');
    const configFile = path.join(dir, 'keygate.yaml');
    const db = path.join(dir, 'k.db');
    writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${db}`, dashboard: { enabled: false } }));
    const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);
    const account = JSON.parse((await cli('accounts', 'create', '--name', 'Acme', '--json')).stdout).id as string;
    const second = (iso: string) => iso.replace('T', ' ').slice(0, 19);
    const gone = JSON.parse((await cli('keys', 'create', '--account', account, '--name', 'gone', '--json')).stdout) as { id: string };
    const revoked = JSON.parse((await cli('keys', 'revoke', gone.id, '--json')).stdout) as { revokedAt: string };
    expect((await cli('keys', 'show', gone.id)).stdout).toMatch(new RegExp(`^revoked +${second(revoked.revokedAt)}Z$`, 'm'));
    const again = await cli('keys', 'revoke', gone.id);
    expect([again.code, again.stdout]).toEqual([0, `key ${gone.id} (gone) was already revoked, at ${second(revoked.revokedAt)}Z; nothing changed\n`]);
    // An expiry that has passed, with seconds and milliseconds of its own.
    const trial = JSON.parse((await cli('keys', 'create', '--account', account, '--name', 'trial', '--expires', '90d', '--json')).stdout) as { id: string };
    const past = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    const writer = new Database(db);
    writer.prepare('UPDATE api_keys SET expires_at = ? WHERE id = ?').run(past, trial.id);
    writer.close();
    expect((await cli('keys', 'show', trial.id)).stdout).toMatch(/^expires +2026-01-02 03:04:05Z$/m);
    expect((await cli('keys', 'list')).stdout).toMatch(new RegExp(`^${trial.id} .* expired +\\S+ \\S+ +- +2026-01-02 03:04:05Z$`, 'm'));
  });
});

describe('keygate keys create on an account whose keys are refused for now', () => {
  it('makes the key (exit 0) and warns on stderr, never in --json\'s stdout: plan without API access, API access off, plan expired', async () => {
    const dir = tempDir('cli-refused-keys');
    const configFile = path.join(dir, 'keygate.yaml');
    writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'k.db')}`, plans: { open: {}, closed: { apiAccess: false } }, defaultPlan: 'open', dashboard: { enabled: false } }));
    const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);
    const account = async (...flags: string[]) => (JSON.parse((await cli('accounts', 'create', '--name', 'Acme', ...flags, '--json')).stdout) as { id: string }).id;
    const closed = await account('--plan', 'closed');
    const off = await account('--api-access', 'off');
    const expired = await account('--plan-expires', '2020-01-01');
    const open = await account();

    const made = await cli('keys', 'create', '--account', closed, '--name', 'prod');
    expect([made.code, made.stdout.startsWith('created key'), made.stderr]).toEqual([
      0,
      true,
      `warning: plan closed of account ${closed} has API access off: requests with the key are refused (api_disabled) until the account is on a plan that includes it (accounts update ${closed} --plan …)\n`,
    ]);
    // --json: stdout is the key alone; the warning is a line of JSON on stderr.
    const json = await cli('keys', 'create', '--account', closed, '--name', 'ci', '--json');
    expect([json.code, (JSON.parse(json.stdout) as { secret: string }).secret.length > 0, JSON.parse(json.stderr)]).toEqual([0, true, { warning: expect.stringContaining('has API access off') }]);
    const turnedOff = await cli('keys', 'create', '--account', off, '--name', 'prod');
    expect([turnedOff.code, turnedOff.stderr]).toEqual([0, `warning: account ${off} has its API access turned off: requests with the key are refused (api_disabled) until it is turned back on (accounts update ${off} --api-access on)\n`]);
    const ended = await cli('keys', 'create', '--account', expired, '--name', 'prod');
    expect([ended.code, ended.stderr]).toEqual([0, `warning: the plan of account ${expired} expired at 2020-01-01T00:00:00.000Z: requests with the key are refused (plan_expired) until it is renewed (accounts update ${expired} --plan-expires …)\n`]);
    // Imported and rotated keys are said the same; an account whose keys work, nothing.
    const imported = await runCli(['--config', configFile, 'keys', 'import', '--account', closed, '--name', 'old'], { input: createKeyFormat({ format: 'prefixed', prefix: { live: 'kg_live_' }, hexLength: 40 }).generate('live') });
    expect([imported.code, imported.stderr]).toEqual([0, expect.stringMatching(/^warning: plan closed of account \S+ has API access off/)]);
    const rotated = await cli('keys', 'rotate', (JSON.parse(json.stdout) as { id: string }).id);
    expect([rotated.code, rotated.stderr]).toEqual([0, expect.stringMatching(/^warning: plan closed of account \S+ has API access off/)]);
    const fine = await cli('keys', 'create', '--account', open, '--name', 'prod');
    expect([fine.code, fine.stderr]).toEqual([0, '']);
  });
});

describe('keygate help', () => {
  it('marks the options a command cannot run without as (required), and only those', async () => {
    const create = await runCli(['keys', 'create', '--help']);
    expect(create.code).toBe(0);
    expect(create.stdout).toMatch(/^ +--account <id> +the account that owns the key \(required\)$/m);
    expect(create.stdout).toMatch(/^ +--name <name> +a name to tell keys apart \(required\)$/m);
    expect(create.stdout).toMatch(/^ +--expires <date\|duration> +e\.g\. 2027-01-31 or 90d$/m);
    const invite = await runCli(['members', 'invite', '--help']);
    expect(invite.stdout).toMatch(/^ +--email <email> +their e-mail address \(required\)$/m);
  });

  it('says accounts show prints the limits in effect, as it does (docs/cli.md)', async () => {
    const help = await runCli(['accounts', 'show', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain('one account: plan, API access, overage, the rate limits and meter limits in effect (its own marked), plan expiry');
  });

  it('says members unlock lifts the pauses of the addresses that guessed too, not as if it took an address to choose', async () => {
    const help = await runCli(['members', 'unlock', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      "lift every sign-in pause of a member's email, its own and those of the addresses and /64s that guessed at it, in every process; the wrong passwords counted are forgotten",
    );
  });

  it('gives keys update --rate-limit its examples as windows, and none as what drops them (not the examples as what none means)', async () => {
    const help = await runCli(['keys', 'update', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      "--rate-limit <window> the key's own rate-limit window: 10-per-1m, 2-per-1s (per key; repeatable: give every window it should have), on top of its account's limits; replaces its current ones (none: no windows of its own)",
    );
  });
});

describe('keygate after the profile changed under its accounts', () => {
  it('says which accounts are on a plan the profile no longer defines, lists what the gateway really does, and marks the keys of a deleted account', async () => {
    const dir = tempDir('cli-plan-renamed');
    const configFile = path.join(dir, 'keygate.yaml');
    const profile = (plans: Record<string, unknown>) =>
      writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'k.db')}`, plans, dashboard: { enabled: false } }));
    const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);
    profile({ pro: {}, free: { apiAccess: false } });
    const pro = JSON.parse((await cli('accounts', 'create', '--name', 'Acme', '--plan', 'pro', '--json')).stdout).id as string;
    await cli('accounts', 'create', '--name', 'Freeloader', '--plan', 'free');
    const gone = JSON.parse((await cli('accounts', 'create', '--name', 'Gone', '--plan', 'pro', '--json')).stdout).id as string;
    const key = JSON.parse((await cli('keys', 'create', '--account', gone, '--name', 'left behind', '--json')).stdout).id as string;
    await cli('accounts', 'delete', gone);

    // `pro` renamed: its accounts are stranded.
    profile({ professional: {}, free: { apiAccess: false } });
    const list = await cli('accounts', 'list');
    expect(list.stdout).toMatch(new RegExp(`${pro}\\s+Acme\\s+pro \\(not in the profile\\)\\s+off \\(unknown plan\\)`));
    expect(list.stdout).toMatch(/Freeloader\s+free\s+off \(plan\)/);
    expect((await cli('keys', 'list')).stdout).toMatch(new RegExp(`${key}\\s+left behind\\s+.*\\s+unbound\\s`));

    const logs = new LogCapture();
    const rt = await createRuntime(loadConfigFile(configFile), { log: createLog({ level: 'info', destination: logs }) });
    await rt.close();
    const warning = logs.lines.map((line) => JSON.parse(line) as { msg: string; accountsByPlan?: unknown; accounts?: unknown }).find((line) => line.accountsByPlan);
    expect(warning?.accountsByPlan).toEqual({ pro: 1 });
    // Named, so the operator can find them (the first 10 of each plan).
    expect(warning?.accounts).toEqual({ pro: [pro] });
    expect(warning?.msg).toContain('their keys are refused with api_disabled');
  });
});

describe('keygate CLI away from its database', () => {
  it('refuses to answer from a database it would make where the profile\'s relative store is not, and says where it looked', async () => {
    const home = tempDir('cli-relative-store');
    const elsewhere = tempDir('cli-elsewhere');
    const configFile = path.join(home, 'keygate.yaml');
    writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: 'sqlite:./data/keygate.db', dashboard: { enabled: false } }));
    const cli = (cwd: string, ...args: string[]) => runCli(['--config', configFile, ...args], { cwd });
    mkdirSync(path.join(home, 'data'));
    const created = await cli(home, 'accounts', 'create', '--name', 'Acme', '--json');
    expect(created.code).toBe(0);
    expect(created.stderr).toBe(`note: no database at ${path.join(home, 'data', 'keygate.db')} (store "sqlite:./data/keygate.db" is read from the working directory, ${home}): starting a new one\n`);
    expect(JSON.parse((await cli(home, 'accounts', 'list', '--json')).stdout)).toHaveLength(1);

    // From elsewhere: no new, empty database, and no "(none)" where the accounts are.
    for (const args of [['accounts', 'list'], ['keys', 'list'], ['audit']]) {
      const away = await cli(elsewhere, ...args);
      expect([away.code, away.stdout], args.join(' ')).toEqual([1, '']);
      expect(away.stderr, args.join(' ')).toBe(
        `error: no database at ${path.join(elsewhere, 'data', 'keygate.db')} (store "sqlite:./data/keygate.db" is read from the working directory, ${elsewhere}): run this where keygate serve runs, give store an absolute path, or begin one with keygate migrate\n`,
      );
    }
    expect(existsSync(path.join(elsewhere, 'data', 'keygate.db'))).toBe(false);
  });
});

describe('keygate CLI does what the admin API does', () => {
  const dir = tempDir('cli-parity');
  const configFile = path.join(dir, 'keygate.yaml');
  writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'keygate.db')}`, dashboard: { enabled: false }, keys: { prefix: { live: 'pk_live_' } }, plans: { pro: { meters: { credits: { limit: 100 } } } } }));
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);

  it('creates an account with its API access, overage and plan expiry at once, as POST /v1/accounts does', async () => {
    const r = await cli('--json', 'accounts', 'create', '--name', 'Trial Co', '--api-access', 'off', '--overage', 'on', '--plan-expires', '2031-01-31');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'Trial Co', planId: 'pro', apiAccess: false, apiEnabled: false, overage: true, planExpiresAt: '2031-01-31T00:00:00.000Z' });
    const following = JSON.parse((await cli('--json', 'accounts', 'create', '--name', 'Plain', '--overage', 'plan')).stdout) as { overage: unknown };
    expect(following.overage).toBeNull();
    expect(await cli('accounts', 'create', '--name', 'Bad', '--api-access', 'maybe')).toMatchObject({ code: 1, stdout: '', stderr: 'error: --api-access takes on or off\n' });
    expect(await cli('accounts', 'create', '--name', 'Bad', '--plan-expires', '2031-02-30')).toMatchObject({ code: 1, stderr: 'error: --plan-expires: expected a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d)\n' });
    // Nothing was made by a refused one.
    expect((JSON.parse((await cli('--json', 'accounts', 'list', '--search', 'Bad')).stdout) as unknown[]).length).toBe(0);
  });

  it('says when the audit log goes on past --limit (50 unless given), and pages through it with --after, each event once, as GET /v1/audit links to older ones', async () => {
    const account = JSON.parse((await cli('--json', 'accounts', 'create', '--name', 'Audited')).stdout) as { id: string };
    for (const name of ['one', 'two', 'three']) expect((await cli('accounts', 'update', account.id, '--name', name)).code).toBe(0);
    // Four events: created, then three renames.
    const all = JSON.parse((await cli('--json', 'audit', '--account', account.id)).stdout) as { id: string }[];
    expect(all).toHaveLength(4);
    const human = await cli('audit', '--account', account.id, '--limit', '3');
    expect(human.stdout.trim().split('\n')).toHaveLength(4);
    expect(human.stderr).toMatch(/^more follow: add --after \S+\n$/);
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      const r = await cli('--json', 'audit', '--account', account.id, '--limit', '3', ...(after ? ['--after', after] : []));
      expect(r.code).toBe(0);
      seen.push(...(JSON.parse(r.stdout) as { id: string }[]).map((e) => e.id));
      pages++;
      after = r.stderr === '' ? undefined : (JSON.parse(r.stderr) as { next: { after: string } }).next.after;
    } while (after !== undefined && pages < 10);
    expect([seen, pages]).toEqual([all.map((e) => e.id), 2]);
    expect(await cli('audit', '--after', 'garbage')).toMatchObject({ code: 1, stderr: 'error: after: not a cursor keygate gave (take the one the previous page ended with)\n' });
  });

  it('gives an account\'s daily usage (requests, denials, units by day) with --daily, --from and --to (alone: the 30 days up to it), as GET /v1/accounts/{id}/usage/daily does', async () => {
    const account = JSON.parse((await cli('--json', 'accounts', 'create', '--name', 'Daily')).stdout) as { id: string };
    // As the gateway records them.
    const store = openSqliteStore(path.join(dir, 'keygate.db'));
    await store.addUsageDaily([
      { accountId: account.id, day: '2026-11-02', metric: 'requests', label: '2xx', value: 5 },
      { accountId: account.id, day: '2026-11-02', metric: 'units', label: 'credits', value: 50 },
      { accountId: account.id, day: '2026-11-20', metric: 'denials', label: 'rate_limited', value: 2 },
    ]);
    await store.close();
    const r = await cli('--json', 'accounts', 'usage', account.id, '--from', '2026-11-01', '--to', '2026-11-10');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toEqual([
      { day: '2026-11-02', metric: 'requests', label: '2xx', value: 5 },
      { day: '2026-11-02', metric: 'units', label: 'credits', value: 50 },
    ]);
    // --to alone: the 30 days up to it, whatever day it is today (not a refusal naming a --from never given).
    const upTo = await cli('--json', 'accounts', 'usage', account.id, '--to', '2026-11-10');
    expect([upTo.code, upTo.stderr]).toEqual([0, '']);
    expect(JSON.parse(upTo.stdout)).toEqual([
      { day: '2026-11-02', metric: 'requests', label: '2xx', value: 5 },
      { day: '2026-11-02', metric: 'units', label: 'credits', value: 50 },
    ]);
    const human = await cli('accounts', 'usage', account.id, '--daily', '--from', '2026-11-01');
    expect(human.stdout).toMatch(/^DAY\s+METRIC\s+LABEL\s+VALUE\n/);
    expect(human.stdout).toMatch(/^2026-11-20\s+denials\s+rate_limited\s+2$/m);
    expect(await cli('accounts', 'usage', account.id, '--from', '2026-11-10', '--to', '2026-11-01')).toMatchObject({ code: 1, stdout: '', stderr: 'error: from (2026-11-10) is after to (2026-11-01)\n' });
    expect(await cli('accounts', 'usage', account.id, '--from', '2026-11-31')).toMatchObject({ code: 1, stdout: '', stderr: 'error: --from: expected a date such as 2026-11-01\n' });
    expect(await cli('accounts', 'usage', 'acc_nope', '--daily')).toMatchObject({ code: 1, stderr: 'error: no account "acc_nope"\n' });
  });

  it('shows one account and one key by id, as GET /v1/accounts/{id} and /v1/keys/{id} do, and says when there is none', async () => {
    const account = JSON.parse((await cli('--json', 'accounts', 'create', '--name', 'Shown')).stdout) as { id: string };
    const key = JSON.parse((await cli('--json', 'keys', 'create', '--account', account.id, '--name', 'shown key')).stdout) as { id: string; secret: string };
    const shownAccount = await cli('--json', 'accounts', 'show', account.id);
    expect([shownAccount.code, shownAccount.stderr]).toEqual([0, '']);
    expect(JSON.parse(shownAccount.stdout)).toEqual((JSON.parse((await cli('--json', 'accounts', 'list', '--search', account.id)).stdout) as unknown[])[0]);
    const shownKey = await cli('--json', 'keys', 'show', key.id);
    expect([shownKey.code, shownKey.stderr]).toEqual([0, '']);
    expect(JSON.parse(shownKey.stdout)).toEqual((JSON.parse((await cli('--json', 'keys', 'list', '--account', account.id)).stdout) as unknown[])[0]);
    expect(shownKey.stdout).not.toContain(key.secret);
    // For a person: one field a line.
    const human = await cli('keys', 'show', key.id);
    expect(human.stdout).toMatch(new RegExp(`^id\\s+${key.id}\n`));
    expect(human.stdout).toMatch(/^name\s+shown key$/m);
    expect(human.stdout).toMatch(/^status\s+active$/m);
    expect((await cli('accounts', 'show', account.id)).stdout).toMatch(/^name\s+Shown$/m);
    expect(await cli('keys', 'show', 'key_nope')).toMatchObject({ code: 1, stdout: '', stderr: 'error: no key "key_nope"\n' });
    expect(await cli('accounts', 'show', 'acc_nope')).toMatchObject({ code: 1, stdout: '', stderr: 'error: no account "acc_nope"\n' });
    // One kind of id where another goes: said so, with the kind asked for.
    expect(await cli('accounts', 'show', key.id)).toMatchObject({ code: 1, stdout: '', stderr: `error: no account "${key.id}": that is a key's id; an account's begins acc_\n` });
    expect(await cli('keys', 'create', '--account', key.id, '--name', 'x')).toMatchObject({ code: 1, stdout: '', stderr: `error: no account "${key.id}": that is a key's id; an account's begins acc_\n` });
    const keyOfAccount = await cli('--json', 'keys', 'revoke', account.id);
    expect([keyOfAccount.code, keyOfAccount.stdout, JSON.parse(keyOfAccount.stderr)]).toEqual([1, '', { error: `no key "${account.id}": that is an account's id; a key's begins key_` }]);
    // A secret pasted where the id goes is not printed back.
    expect((await cli('keys', 'show', key.secret)).stderr).not.toContain(key.secret);
  });

  it("says that the docs' acc_… and key_… stand for an id still to be filled in, when a command is copied as it stands", async () => {
    const ACCOUNT_ID = "(acc_ and 16 letters and digits): keygate accounts list, or GET /v1/accounts, shows them";
    expect((await cli('accounts', 'create', '--name', 'Placeholder')).code).toBe(0);
    // The README's own lines, copied whole.
    expect(await cli('keys', 'create', '--account', 'acc_…', '--name', 'production')).toMatchObject({ code: 1, stdout: '', stderr: `error: no such account: "acc_…" in the docs stands for an account's id ${ACCOUNT_ID}\n` });
    expect(await cli('accounts', 'usage', 'acc_…')).toMatchObject({ code: 1, stdout: '', stderr: `error: no such account: "acc_…" in the docs stands for an account's id ${ACCOUNT_ID}\n` });
    expect(await cli('members', 'invite', '--email', 'ops@acme.test', '--account', 'acc_...')).toMatchObject({ code: 1, stdout: '', stderr: `error: no such account: "acc_..." in the docs stands for an account's id ${ACCOUNT_ID}\n` });
    expect(await cli('keys', 'revoke', 'key_…')).toMatchObject({ code: 1, stdout: '', stderr: `error: no such key: "key_…" in the docs stands for a key's id (key_ and 16 letters and digits): keygate keys list, or GET /v1/keys, shows them\n` });
    // Another kind's placeholder is still said to be of that kind.
    expect(await cli('keys', 'show', 'acc_…')).toMatchObject({ code: 1, stdout: '', stderr: "error: no such key: that is an account's id; a key's begins key_\n" });
  });
});

describe("keygate CLI --json prints the admin API's answer body for the same operation", () => {
  const dir = tempDir('cli-json-as-api');
  const configFile = path.join(dir, 'keygate.yaml');
  let kg: TestKeygate;
  const cli = (...args: string[]) => runCli(['--config', configFile, '--json', ...args]);
  /** What the CLI prints for `body`: the API's JSON, field for field and in its order. */
  const printed = (body: unknown) => `${JSON.stringify(body, null, 2)}\n`;

  beforeAll(async () => {
    const profile: ConfigInput = {
      upstream: { url: 'http://127.0.0.1:9' },
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      // A meter whose name ends in "At", as a time field's does.
      plans: { pro: { meters: { spentAt: { limit: 100 }, keywords: { kind: 'gauge', limit: 50 } } } },
      routes: [{ path: '/v1/*', cost: { meter: 'spentAt', perRequest: 2 } }],
      dashboard: { enabled: false },
    };
    writeFileSync(configFile, stringify(profile));
    kg = await startKeygate(profile, { dir });
  });

  afterAll(async () => {
    await kg?.close();
  });

  const api = async (path: string, method = 'GET', body?: unknown) => {
    const response = await kg.admin(path, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await response.text();
    return { status: response.status, text, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
  };

  it('accounts show prints what GET /v1/accounts/{id} answers, field for field and in its order', async () => {
    const { id } = JSON.parse((await cli('accounts', 'create', '--name', 'Acme')).stdout) as { id: string };
    expect((await cli('accounts', 'show', id)).stdout).toBe(printed((await api(`/v1/accounts/${id}`)).body));
  });

  it('gauge prints what PUT /v1/accounts/{id}/gauges/{meter} answers: the meter and its value', async () => {
    const { id } = JSON.parse((await cli('accounts', 'create', '--name', 'Tracker')).stdout) as { id: string };
    const gauge = await cli('gauge', '--account', id, '--meter', 'keywords', '--value', '12');
    const put = await api(`/v1/accounts/${id}/gauges/keywords`, 'PUT', { value: 12 });
    expect([gauge.code, put.status, put.body]).toEqual([0, 200, { meter: 'keywords', value: 12 }]);
    expect(gauge.stdout).toBe(printed(put.body));
  });

  it('accounts usage, without --json, names the day each consumed meter starts afresh (not a period a gauge would seem to reset at)', async () => {
    const { id } = JSON.parse((await cli('accounts', 'create', '--name', 'Resets')).stdout) as { id: string };
    const { body } = await api(`/v1/accounts/${id}/usage`);
    const renews = (body as { meters: Record<string, { periodEnd: string }> }).meters.spentAt?.periodEnd;
    const human = await runCli(['--config', configFile, 'accounts', 'usage', id]);
    expect([human.code, human.stderr]).toEqual([0, '']);
    expect(human.stdout.split('\n').slice(1, 4)).toEqual([
      expect.stringMatching(/^METER +KIND +USAGE +LIMIT +REMAINING +OVERAGE +RESETS$/),
      expect.stringMatching(new RegExp(`^spentAt +consumed +0 +100 +100 +0 +${renews}$`)),
      expect.stringMatching(/^keywords +gauge +0 +50 +50 +0 +-$/),
    ]);
  });

  it("members unlock prints POST /v1/members/{id}/unlock's {member, lifted}", async () => {
    const { id: accountId } = JSON.parse((await cli('accounts', 'create', '--name', 'Paused')).stdout) as { id: string };
    const { id } = JSON.parse((await cli('members', 'invite', '--email', 'bo@acme.test', '--account', accountId)).stdout) as { id: string };
    // As 20 wrong passwords in a row leave it, twice: one pause for each to lift.
    const pause = () => kg.runtime.store.updateMember(id, { lockedUntil: Date.now() + 15 * 60_000, failedLogins: 0 });
    await pause();
    const unlocked = await cli('members', 'unlock', '--email', 'bo@acme.test');
    await pause();
    const answer = await api(`/v1/members/${id}/unlock`, 'POST');
    expect([answer.status, (answer.body as { lifted: boolean }).lifted]).toEqual([200, true]);
    expect(unlocked.stdout).toBe(printed(answer.body));
  });

  it('forecast prints what POST /v1/forecast answers, a meter named like a time (spentAt) included', async () => {
    const { id } = JSON.parse((await cli('accounts', 'create', '--name', 'Planner')).stdout) as { id: string };
    const forecast = await cli('forecast', '--account', id, '--call', 'GET /v1/things x3');
    const answer = await api('/v1/forecast', 'POST', { accountId: id, calls: [{ method: 'GET', path: '/v1/things', count: 3 }] });
    expect([answer.status, (answer.body as { totals: unknown }).totals]).toEqual([200, { spentAt: 6 }]);
    expect(forecast.stdout).toBe(printed(answer.body));
  });

  // The API answers a delete 204 with no body; every delete the CLI makes prints the same in its place.
  it('accounts delete prints {"id", "deleted": true}, where DELETE /v1/accounts/{id} answers 204 with no body', async () => {
    const account = async (name: string) => (JSON.parse((await cli('accounts', 'create', '--name', name)).stdout) as { id: string }).id;
    const [viaCli, viaApi] = [await account('Gone by CLI'), await account('Gone by API')];
    expect(await api(`/v1/accounts/${viaApi}`, 'DELETE')).toEqual({ status: 204, text: '', body: undefined });
    expect(await cli('accounts', 'delete', viaCli)).toEqual({ code: 0, stdout: printed({ id: viaCli, deleted: true }), stderr: '' });
    expect((await api(`/v1/accounts/${viaCli}`)).status).toBe(404);
  });

  it('members remove prints {"id", "deleted": true} too, where DELETE /v1/members/{id} answers 204 with no body', async () => {
    const member = async (email: string) => (JSON.parse((await cli('members', 'invite', '--email', email, '--operator')).stdout) as { id: string }).id;
    const [viaCli, viaApi] = [await member('cli@acme.test'), await member('api@acme.test')];
    expect(await api(`/v1/members/${viaApi}`, 'DELETE')).toEqual({ status: 204, text: '', body: undefined });
    expect(await cli('members', 'remove', '--email', 'cli@acme.test')).toEqual({ code: 0, stdout: printed({ id: viaCli, deleted: true }), stderr: '' });
    expect(await api('/v1/members?email=cli@acme.test')).toMatchObject({ status: 200, body: [] });
  });
});

describe('keygate CLI on a database it cannot use', () => {
  const dir = tempDir('cli-unusable-store');
  const profileFor = (file: string) => {
    const configFile = path.join(dir, `${path.basename(file)}.yaml`);
    writeFileSync(configFile, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${file}`, dashboard: { enabled: false } }));
    return configFile;
  };

  it('names the file that is not a SQLite database, for every command, instead of SQLite\'s bare "file is not a database"', async () => {
    const file = path.join(dir, 'notes.db');
    writeFileSync(file, 'these are my notes, not a database\n'.repeat(200));
    const configFile = profileFor(file);
    const copy = path.join(dir, 'copy-of-notes.db');
    for (const args of [['accounts', 'list'], ['keys', 'create', '--account', 'acc_x', '--name', 'k'], ['pepper', 'check'], ['migrate'], ['backup', copy]]) {
      const r = await runCli(['--config', configFile, ...args]);
      expect([r.code, r.stdout], args.join(' ')).toEqual([1, '']);
      expect(r.stderr, args.join(' ')).toBe(`error: store: cannot open the SQLite file ${file}: it is not a SQLite database (is the profile's store the right file?)\n`);
    }
    // The backup that failed left nothing under the copy's name, nor beside it.
    expect(readdirSync(dir).filter((name) => name.startsWith('copy-of-notes'))).toEqual([]);
    const json = await runCli(['--config', configFile, '--json', 'accounts', 'list']);
    expect([json.code, JSON.parse(json.stderr)]).toEqual([1, { error: `store: cannot open the SQLite file ${file}: it is not a SQLite database (is the profile's store the right file?)` }]);
  });

  it('says which database is busy, and what that means for the change, when another process holds its write lock past the wait', async () => {
    const file = path.join(dir, 'keygate.db');
    const configFile = profileFor(file);
    const acme = JSON.parse((await runCli(['--config', configFile, '--json', 'accounts', 'create', '--name', 'Acme'])).stdout) as { id: string };
    // A sqlite3 shell left inside a transaction, say: its write lock held until it ends.
    const holder = new Database(file);
    holder.exec('BEGIN EXCLUSIVE');
    try {
      const busy = `the database ${file} is busy: another process has held its write lock for more than 5 s (a sqlite3 shell inside a transaction, a long job); try again once it lets go. This change may or may not have been made: check before running the command again`;
      const r = await runCli(['--config', configFile, 'accounts', 'create', '--name', 'Beta']);
      expect([r.code, r.stdout, r.stderr]).toEqual([1, '', `error: ${busy}\n`]);
      const json = await runCli(['--config', configFile, '--json', 'keys', 'create', '--account', acme.id, '--name', 'k']);
      expect([json.code, json.stdout, JSON.parse(json.stderr)]).toEqual([1, '', { error: busy }]);
      // Reading goes on beside it (WAL).
      expect(JSON.parse((await runCli(['--config', configFile, '--json', 'accounts', 'list'])).stdout)).toHaveLength(1);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    expect((await runCli(['--config', configFile, 'accounts', 'create', '--name', 'Beta'])).code).toBe(0);
  });
});

/**
 * Runs `keygate demo` on free ports in a fresh folder until it either exits or prints its
 * "Press Ctrl+C" line (then stops it with SIGINT): what it wrote, and whether it started.
 */
function runDemoUntilReady(data: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ started: boolean; code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'demo', '--data', data, '--port', '0', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let started = false;
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (!started && stdout.includes('Press Ctrl+C to stop.')) {
      started = true;
      child.kill('SIGINT');
    }
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ started, code, stderr });
    }),
  );
}

describe('keygate demo and profiles', () => {
  const dir = tempDir('cli-demo');
  const data = path.join(dir, 'data');

  it('refuses a --config given to it (it makes its own profile), naming serve for a profile, and quietly ignores KEYGATE_CONFIG', async () => {
    for (const args of [['--config', 'mine.yaml'], ['-c', 'mine.yaml']]) {
      const refused = await runDemoUntilReady(data, args);
      expect(refused.started).toBe(false);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('demo takes no --config: it writes and uses its own profile under --data. To run keygate with a profile: keygate serve --config <file>');
    }
    const json = await runDemoUntilReady(data, ['--json', '--config', 'mine.yaml']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stderr.trim())).toEqual({ error: expect.stringContaining('demo takes no --config') });

    // Set for serve, say: not the user asking the demo for a profile.
    const fromEnv = await runDemoUntilReady(data, [], { KEYGATE_CONFIG: path.join(dir, 'nope.yaml') });
    expect(fromEnv.started, fromEnv.stderr).toBe(true);
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stderr).not.toContain('--config');
  });
});

describe('keygate keys rotate under keys.rotation: replace', () => {
  const dir = tempDir('cli-rotation-replace');
  const configFile = path.join(dir, 'keygate.yaml');
  const profile = (rotation: boolean | 'replace') => stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'keygate.db')}`, dashboard: { enabled: false }, keys: { rotation }, plans: { solo: { maxKeys: 1 } } });
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);

  it('ends the overlap of the key its key replaced before (revoked too, and said so), and a gateway then takes only the new key', async () => {
    writeFileSync(configFile, profile(true));
    const account = JSON.parse((await cli('--json', 'accounts', 'create', '--name', 'Solo')).stdout) as { id: string };
    const first = JSON.parse((await cli('--json', 'keys', 'create', '--account', account.id, '--name', 'k')).stdout) as { id: string; secret: string };
    const second = JSON.parse((await cli('--json', 'keys', 'rotate', first.id, '--overlap', '24h')).stdout) as { id: string; secret: string; ended: unknown };
    // --json gives the admin API's rotate answer: no earlier key ended here.
    expect(second.ended).toEqual([]);

    writeFileSync(configFile, profile('replace'));
    const rotated = await cli('keys', 'rotate', second.id);
    expect([rotated.code, rotated.stderr]).toEqual([0, '']);
    expect(rotated.stdout).toMatch(new RegExp(`^rotated ${second.id} → key_\\w+; the old key is revoked\nthe key it replaced earlier, ${first.id}, still in its overlap, is revoked too\n`));
    const third = (/\n {2}(\S+)\n/.exec(rotated.stdout) as RegExpExecArray)[1] as string;
    const statuses = JSON.parse((await cli('--json', 'keys', 'list', '--account', account.id)).stdout) as { id: string; status: string }[];
    expect(Object.fromEntries(statuses.map((k) => [k.id, k.status]))).toMatchObject({ [first.id]: 'revoked', [second.id]: 'revoked' });

    const upstream = await startTestUpstream();
    // The same database and profile, as `keygate serve` would take it.
    const kg = await startKeygate({ upstream: { url: upstream.url }, keys: { rotation: 'replace' }, plans: { solo: { maxKeys: 1 } } }, { dir });
    try {
      const status = async (secret: string) => (await kg.call('/brands', { headers: { authorization: `Bearer ${secret}` } })).status;
      expect([await status(first.secret), await status(second.secret), await status(third)]).toEqual([401, 401, 200]);
    } finally {
      await kg.close();
      await upstream.close();
    }
  });
});

describe('keygate members invite and reset on a profile whose dashboard listens on port 0', () => {
  const dir = tempDir('cli-dashboard-port-0');
  const configFile = path.join(dir, 'keygate.yaml');
  const cli = (...args: string[]) => runCli(['--config', configFile, ...args]);

  it('say under the link that it names port 0 and where the real port is told; a publicUrl or a fixed port needs no note', async () => {
    const profile = (dashboard: Record<string, unknown>) => stringify({ store: `sqlite:${path.join(dir, 'keygate.db')}`, dashboard });
    writeFileSync(configFile, profile({ listen: { port: 0 } }));
    const invited = await cli('members', 'invite', '--email', 'zero@ops.test', '--operator');
    expect(invited.code).toBe(0);
    expect(invited.stdout).toMatch(/^invited zero@ops\.test; they set a password at:\n\n {2}http:\/\/127\.0\.0\.1:0\/invite\/\S+\n/);
    const note =
      'Note: this profile has the dashboard listen on port 0 (any free port) and sets no dashboard.publicUrl, so the link names port 0: put the port keygate serve chose in its place (its "keygate is serving" log line names the dashboard\'s address), or set dashboard.publicUrl.';
    expect(invited.stdout).toContain(note);
    expect((await cli('members', 'reset', '--email', 'zero@ops.test')).stdout).toContain(note);
    // Scripts get the answer's shape unchanged.
    expect(Object.keys(JSON.parse((await cli('--json', 'members', 'reset', '--email', 'zero@ops.test')).stdout) as object).sort()).toEqual(['email', 'id', 'url']);

    writeFileSync(configFile, profile({ listen: { port: 0 }, publicUrl: 'https://app.example.test' }));
    const named = await cli('members', 'reset', '--email', 'zero@ops.test');
    expect(named.stdout).toMatch(/^zero@ops\.test can choose a new password at:\n\n {2}https:\/\/app\.example\.test\/invite\/\S+\n/);
    expect(named.stdout).not.toContain('Note:');
    writeFileSync(configFile, profile({ listen: { port: 8182 } }));
    expect((await cli('members', 'reset', '--email', 'zero@ops.test')).stdout).not.toContain('Note:');
  });
});
