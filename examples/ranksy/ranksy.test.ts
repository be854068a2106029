/**
 * shared/seeds/001 (Ranksy API v1, Authentication), walked top to bottom against
 * examples/ranksy: the shipped keygate.yaml and upstream.mjs on loopback, a real SQLite
 * file, keys made with the `keygate` CLI, real HTTP.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlledClock, read, runServeCommand, startExample, type AccountOut, type KeyOut, type RunningExample } from '../support/example.js';

const JSON_TYPE = 'application/json; charset=utf-8';
const MISSING = {
  error: { type: 'authentication_error', code: 'missing_api_key', message: 'The Authorization header is absent or holds no key. Send your key as: Authorization: Bearer rk_live_…' },
};
const INVALID = { error: { type: 'authentication_error', code: 'invalid_api_key', message: 'The API key is unknown or revoked.' } };
const MISSING_TEAM_SCOPE = {
  error: { type: 'authentication_error', code: 'missing_team_scope', message: 'The key is valid but is not bound to a team, so no apps can be resolved.' },
};
/** The document's 403 row, word for word on the metrics endpoint. */
const INSUFFICIENT_PERMISSIONS = {
  error: { type: 'permission_error', code: 'insufficient_permissions', message: 'The key is valid and team-scoped, but lacks the metrics:read (or *) scope.' },
};
/** The same on the example's list of apps, which requires apps:read. */
const INSUFFICIENT_PERMISSIONS_APPS = {
  error: { type: 'permission_error', code: 'insufficient_permissions', message: 'The key is valid and team-scoped, but lacks the apps:read (or *) scope.' },
};

/** `node -e FIND_IN_FILES needle1 needle2 file...`: prints each file that holds a needle. */
const FIND_IN_FILES = `const [a, b, ...files] = process.argv.slice(1);
for (const f of files) { const t = require('node:fs').readFileSync(f).toString('latin1'); if (t.includes(a) || t.includes(b)) console.log(f); }`;

/** "Authorization: Bearer rk_live_xxxxxxxxxxxxxxxxxxxxxxxx" */
const bearer = (key: string): RequestInit => ({ headers: { authorization: `Bearer ${key}` } });

interface Metric {
  data: { app: string; metric: string; value: number; unit: string; as_of: string };
  livemode: boolean;
}

describe('Ranksy API v1: shared/seeds/001 against examples/ranksy', () => {
  const clock = controlledClock();
  let ex: RunningExample;
  let team: AccountOut;
  let liveKey: KeyOut;
  let appId: string;

  const apps = async (key: string) => ((await read(await ex.call('/api/v1/apps', bearer(key)))).body as { data: { id: string; name: string }[] }).data;
  const mrr = (app: string) => `/api/v1/apps/${app}/metrics/mrr`;

  beforeAll(async () => {
    ex = await startExample('ranksy', { clock });
  });
  afterAll(async () => {
    await ex?.close();
  });

  describe('Making authenticated requests', () => {
    it('a key issued from the team (CLI) is rk_live_…, named, and shown once', async () => {
      team = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Acme Apps']);
      liveKey = await ex.cliJson<KeyOut>(['keys', 'create', '--account', team.id, '--name', 'Production sync', '--scopes', 'metrics:read,apps:read']);
      expect(liveKey.secret).toMatch(/^rk_live_[0-9A-Za-z]{30}$/);
      expect(liveKey).toMatchObject({ name: 'Production sync', mode: 'live', scopes: ['metrics:read', 'apps:read'], accountId: team.id, hint: `rk_live_…${liveKey.secret.slice(-4)}` });
      const listed = await ex.cliOk(['keys', 'list', '--account', team.id, '--json']);
      expect(listed.stdout).toContain('Production sync');
      expect(listed.stdout).not.toContain(liveKey.secret);
    });

    it('curl /api/v1/apps/{app}/metrics/mrr -H "Authorization: Bearer rk_live_…" reads the metric', async () => {
      const [first] = await apps(liveKey.secret);
      appId = (first as { id: string }).id;
      expect(appId).toMatch(/^01JN4HKQX[0-9A-Z]{16}$/);
      const response = await read(await ex.call(mrr(appId), bearer(liveKey.secret)));
      expect(response.status).toBe(200);
      expect(response.type).toBe(JSON_TYPE);
      expect(response.body).toMatchObject({ data: { app: appId, metric: 'mrr', unit: 'USD' }, livemode: true });
      expect(typeof (response.body as Metric).data.value).toBe('number');
    });

    it('the scheme word is case-insensitive; the key must follow it', async () => {
      expect((await ex.call(mrr(appId), { headers: { authorization: `bearer ${liveKey.secret}` } })).status).toBe(200);
      expect(await read(await ex.call(mrr(appId), { headers: { authorization: 'Bearer' } }))).toEqual({ status: 401, type: JSON_TYPE, body: MISSING });
      expect(await read(await ex.call(mrr(appId), { headers: { authorization: liveKey.secret } }))).toEqual({ status: 401, type: JSON_TYPE, body: INVALID });
      expect(await read(await ex.call(mrr(appId), { headers: { authorization: `Token ${liveKey.secret}` } }))).toEqual({ status: 401, type: JSON_TYPE, body: INVALID });
    });

    it('the key is read from the Authorization header only: in the query or another header it is as good as absent', async () => {
      for (const query of ['access_token', 'api_key', 'key']) {
        expect(await read(await ex.call(`${mrr(appId)}?${query}=${liveKey.secret}`))).toEqual({ status: 401, type: JSON_TYPE, body: MISSING });
      }
      for (const header of ['x-api-key', 'api-key', 'x-ranksy-key']) {
        expect(await read(await ex.call(mrr(appId), { headers: { [header]: liveKey.secret } }))).toEqual({ status: 401, type: JSON_TYPE, body: MISSING });
      }
    });

    it('"every request" is authenticated: without a key the list of apps and unknown paths are 401 too, not the upstream\'s answer or a 404', async () => {
      for (const p of ['/api/v1/apps', '/api/v1/teams', mrr('01JN4HKQX0000000000000000')]) {
        expect(await read(await ex.call(p))).toEqual({ status: 401, type: JSON_TYPE, body: MISSING });
      }
    });
  });

  describe('Getting a key', () => {
    it('keys are stored opaquely: the store holds a hash and a hint, and the secret is in none of its files', async () => {
      const key = await ex.cliJson<KeyOut>(['keys', 'create', '--account', team.id, '--name', 'Opaque', '--scopes', 'metrics:read']);
      expect((await ex.call(mrr(appId), bearer(key.secret))).status).toBe(200);
      await ex.kg.runtime.flush();
      const dir = path.dirname(ex.configFile);
      const db = new Database(path.join(dir, 'keygate.db'), { readonly: true });
      try {
        const row = db.prepare('SELECT name, hint, hash FROM api_keys WHERE id = ?').get(key.id) as { name: string; hint: string; hash: string };
        expect(row).toMatchObject({ name: 'Opaque', hint: `rk_live_…${key.secret.slice(-4)}` });
        // A digest's worth of hex (SHA-256), not the secret written another way.
        expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
        expect(row.hash).not.toContain(Buffer.from(key.secret.slice('rk_live_'.length, -4)).toString('hex'));
      } finally {
        db.close();
      }
      // The database and its write-ahead log, as written: neither the key's random part nor the key in hex.
      // Read by another process: closing a file this one has open would drop SQLite's locks on it.
      const files = readdirSync(dir).filter((f) => /^keygate\.db(-wal)?$/.test(f));
      expect(files).toContain('keygate.db');
      const needles = [key.secret.slice('rk_live_'.length, -4), Buffer.from(key.secret).toString('hex')];
      const found = execFileSync(process.execPath, ['-e', FIND_IN_FILES, ...needles, ...files.map((f) => path.join(dir, f))], { encoding: 'utf8' });
      expect(found).toBe('');
    });

    it('a lost key is revoked and replaced: the old one stops, the new one works', async () => {
      const lost = await ex.cliJson<KeyOut>(['keys', 'create', '--account', team.id, '--name', 'Laptop script']);
      expect((await ex.call(mrr(appId), bearer(lost.secret))).status).toBe(200);
      await ex.cliOk(['keys', 'revoke', lost.id]);
      const revoked = await ex.call(mrr(appId), bearer(lost.secret));
      expect(await read(revoked)).toEqual({ status: 401, type: JSON_TYPE, body: INVALID });
      const replacement = await ex.createKey(team.id, 'Laptop script (new)');
      expect((await ex.call(mrr(appId), bearer(replacement.secret))).status).toBe(200);
    });

    it('keys are bound to the team that created them: another team\'s apps do not exist for them, and a key cannot be moved', async () => {
      const other = await ex.createAccount('Other Team');
      const otherKey = await ex.createKey(other.id, 'theirs');
      const theirApps = await apps(otherKey.secret);
      expect(theirApps).toHaveLength(2);
      expect(theirApps.map((a) => a.id)).not.toContain(appId);

      expect(await read(await ex.call(mrr(appId), bearer(otherKey.secret)))).toEqual({
        status: 404,
        type: JSON_TYPE,
        body: { error: { type: 'invalid_request_error', code: 'app_not_found', message: `No such app: ${appId}` } },
      });
      // The document's own example app id belongs to no team here.
      expect((await ex.call(mrr('01JN4HKQX0000000000000000'), bearer(liveKey.secret))).status).toBe(404);
      // Every team's key sees its own apps' metrics.
      expect((await ex.call(mrr((theirApps[0] as { id: string }).id), bearer(otherKey.secret))).status).toBe(200);
      // Bound for good: not even the operator can move a key to another team (the change is
      // refused whole, the rename with it), and the key still reads its own team's apps.
      const moved = await ex.kg.admin(`/v1/keys/${otherKey.id}`, { method: 'PATCH', body: JSON.stringify({ name: 'moved', accountId: team.id }) });
      expect(moved.status).toBe(400);
      expect(await (await ex.kg.admin(`/v1/keys/${otherKey.id}`)).json()).toMatchObject({ name: 'theirs', accountId: other.id });
      expect(await apps(otherKey.secret)).toEqual(theirApps);
    });
  });

  describe('Test mode vs live mode', () => {
    it('an rk_test_ key reads the same figures as a live key; only livemode differs', async () => {
      const testKey = await ex.cliJson<KeyOut>(['keys', 'create', '--account', team.id, '--name', 'Sandbox', '--mode', 'test', '--scopes', 'metrics:read']);
      expect(testKey.secret).toMatch(/^rk_test_[0-9A-Za-z]{30}$/);
      expect(testKey.mode).toBe('test');

      const live = (await read(await ex.call(mrr(appId), bearer(liveKey.secret)))).body as Metric;
      const test = (await read(await ex.call(mrr(appId), bearer(testKey.secret)))).body as Metric;
      expect(test.livemode).toBe(false);
      expect(live.livemode).toBe(true);
      expect(test.data).toEqual(live.data);
    });

    it('the prefix is part of the key: a live key relabelled rk_test_ (or the reverse) is invalid', async () => {
      const testKey = await ex.createKey(team.id, 'Sandbox 2', { mode: 'test', scopes: ['metrics:read'] });
      const relabelledLive = liveKey.secret.replace('rk_live_', 'rk_test_');
      const relabelledTest = testKey.secret.replace('rk_test_', 'rk_live_');
      expect(await read(await ex.call(mrr(appId), bearer(relabelledLive)))).toEqual({ status: 401, type: JSON_TYPE, body: INVALID });
      expect(await read(await ex.call(mrr(appId), bearer(relabelledTest)))).toEqual({ status: 401, type: JSON_TYPE, body: INVALID });
    });
  });

  describe('Scopes', () => {
    it('metrics:read satisfies the metrics endpoint; so does the wildcard *, which grants every other scope too', async () => {
      const wildcard = await ex.cliJson<KeyOut>(['keys', 'create', '--account', team.id, '--name', 'Everything', '--scopes', '*']);
      expect(wildcard.scopes).toEqual(['*']);
      expect((await ex.call(mrr(appId), bearer(wildcard.secret))).status).toBe(200);
      // "Grants all scopes": the list of apps' apps:read as well.
      expect((await ex.call('/api/v1/apps', bearer(wildcard.secret))).status).toBe(200);
      expect((await ex.call(mrr(appId), bearer(liveKey.secret))).status).toBe(200);
      // A key created without --scopes gets the wildcard (all the plan allows).
      const byDefault = await ex.createKey(team.id, 'Default scopes');
      expect(byDefault.scopes).toEqual(['*']);
    });

    it('a key carries one or more scopes: one with none is refused where it is made (CLI, admin API) or changed', async () => {
      const refusal = 'scopes cannot be empty: every key of this API carries at least one scope; allowed: *, metrics:read, apps:read';
      const keysOfTeam = async () => (await (await ex.kg.admin(`/v1/keys?accountId=${team.id}`)).json()) as KeyOut[];
      const before = await keysOfTeam();
      const cli = await ex.cli(['keys', 'create', '--account', team.id, '--name', 'No scopes', '--scopes', '']);
      expect([cli.code, cli.stderr]).toEqual([1, `error: ${refusal}\n`]);
      const admin = await ex.kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: team.id, name: 'No scopes', scopes: [] }) });
      expect(admin.status).toBe(400);
      expect(await admin.json()).toMatchObject({ status: 400, detail: refusal });
      expect(await keysOfTeam()).toHaveLength(before.length);
      // Nor can a key's scopes be taken away to none.
      const emptied = await ex.cli(['keys', 'update', liveKey.id, '--scopes', '']);
      expect([emptied.code, emptied.stderr]).toEqual([1, `error: ${refusal}\n`]);
      expect((await keysOfTeam()).find((k) => k.id === liveKey.id)?.scopes).toEqual(['metrics:read', 'apps:read']);
    });

    it('a key without metrics:read (or *) gets 403 insufficient_permissions: apps:read alone lists the apps, not their metrics', async () => {
      const appsOnly = await ex.cliJson<KeyOut>(['keys', 'create', '--account', team.id, '--name', 'App list', '--scopes', 'apps:read']);
      expect(appsOnly.scopes).toEqual(['apps:read']);
      // Valid and team-scoped: it sees its team's apps.
      expect((await apps(appsOnly.secret)).map((a) => a.id)).toContain(appId);
      expect(await read(await ex.call(mrr(appId), bearer(appsOnly.secret)))).toEqual({ status: 403, type: JSON_TYPE, body: INSUFFICIENT_PERMISSIONS });
      // The key itself is fine: the refusal is about permissions, so no WWW-Authenticate challenge.
      expect((await ex.call(mrr(appId), bearer(appsOnly.secret))).headers.get('www-authenticate')).toBeNull();
      // The other way round: metrics:read alone reads metrics, not the list of apps.
      const metricsOnly = await ex.createKey(team.id, 'Metrics only', { scopes: ['metrics:read'] });
      expect((await ex.call(mrr(appId), bearer(metricsOnly.secret))).status).toBe(200);
      expect(await read(await ex.call('/api/v1/apps', bearer(metricsOnly.secret)))).toEqual({ status: 403, type: JSON_TYPE, body: INSUFFICIENT_PERMISSIONS_APPS });
    });

    it('scopes the API does not know cannot be granted', async () => {
      const result = await ex.cli(['keys', 'create', '--account', team.id, '--name', 'Bad', '--scopes', 'apps:write']);
      expect(result.code).toBe(1);
      // The CLI names the option and what is allowed, not the value typed (which could be a pasted key).
      expect(result.stderr).toBe('error: --scopes: the scope given is not allowed; allowed: *, metrics:read, apps:read\n');
    });
  });

  describe('What can go wrong', () => {
    it('401 authentication_error: the Authorization header is absent', async () => {
      const response = await ex.call(mrr(appId));
      expect(await read(response)).toEqual({ status: 401, type: JSON_TYPE, body: MISSING });
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="ranksy"');
    });

    it('401 authentication_error: the key is unknown or revoked', async () => {
      const unknown = await ex.call(mrr(appId), bearer('rk_live_xxxxxxxxxxxxxxxxxxxxxxxx'));
      expect(await read(unknown)).toEqual({ status: 401, type: JSON_TYPE, body: INVALID });
      expect(unknown.headers.get('www-authenticate')).toBe('Bearer realm="ranksy", error="invalid_token", error_description="The API key is unknown or revoked."');

      const key = await ex.createKey(team.id, 'To revoke');
      await ex.revokeKey(key.id);
      expect(await read(await ex.call(mrr(appId), bearer(key.secret)))).toEqual({ status: 401, type: JSON_TYPE, body: INVALID });
    });

    it('401 missing_team_scope: a valid key that is no longer bound to a team', async () => {
      const gone = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Disbanded']);
      const key = await ex.createKey(gone.id, 'orphan');
      expect((await ex.call('/api/v1/apps', bearer(key.secret))).status).toBe(200);
      await ex.cliOk(['accounts', 'delete', gone.id]);
      const unbound = await ex.call(mrr(appId), bearer(key.secret));
      expect(await read(unbound)).toEqual({ status: 401, type: JSON_TYPE, body: MISSING_TEAM_SCOPE });
      // A valid key (as the document calls it): challenged, but not as an invalid token.
      expect(unbound.headers.get('www-authenticate')).toBe('Bearer realm="ranksy"');
      expect(await read(await ex.call('/api/v1/apps', bearer(key.secret)))).toEqual({ status: 401, type: JSON_TYPE, body: MISSING_TEAM_SCOPE });
    });

    it('403 insufficient_permissions comes only after the key and its team check out', async () => {
      const appsOnly = await ex.createKey(team.id, 'App list 2', { scopes: ['apps:read'] });
      expect((await read(await ex.call(mrr(appId), bearer(appsOnly.secret)))).body).toEqual(INSUFFICIENT_PERMISSIONS);
      await ex.revokeKey(appsOnly.id);
      expect((await read(await ex.call(mrr(appId), bearer(appsOnly.secret)))).body).toEqual(INVALID);
    });

    it('unknown endpoints and metrics answer 404 in the same envelope', async () => {
      expect(await read(await ex.call('/api/v1/teams', bearer(liveKey.secret)))).toEqual({
        status: 404,
        type: JSON_TYPE,
        body: { error: { type: 'invalid_request_error', code: 'not_found', message: 'No such endpoint.' } },
      });
      expect((await read(await ex.call(`/api/v1/apps/${appId}/metrics/pageviews`, bearer(liveKey.secret)))).body).toMatchObject({
        error: { type: 'invalid_request_error', code: 'metric_not_found' },
      });
    });
  });

  describe('One command', () => {
    it('node bin/keygate.js serve --config <the ranksy profile> starts gateway and upstream (upstream.spawn); a CLI key works through it', async () => {
      const server = await runServeCommand('ranksy');
      try {
        const account = JSON.parse((await server.cli(['accounts', 'create', '--name', 'Acme', '--json'])).stdout) as AccountOut;
        const key = JSON.parse((await server.cli(['keys', 'create', '--account', account.id, '--name', 'first', '--json'])).stdout) as KeyOut;
        const list = (await read(await fetch(`${server.gatewayUrl}/api/v1/apps`, bearer(key.secret)))).body as { data: { id: string }[] };
        const app = (list.data[0] as { id: string }).id;
        const metric = await read(await fetch(`${server.gatewayUrl}/api/v1/apps/${app}/metrics/mrr`, bearer(key.secret)));
        expect(metric).toMatchObject({ status: 200, body: { data: { app, metric: 'mrr' }, livemode: true } });
      } finally {
        expect(await server.stop()).toBe(0);
      }
    });
  });
});
