/**
 * shared/seeds/004 (Trakkr API, Authentication), walked top to bottom against
 * examples/trakkr: the shipped keygate.yaml and upstream.mjs on loopback, a real SQLite
 * file, keys made with the `keygate` CLI, real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlledClock, read, readExact, runServeCommand, startExample, type AccountOut, type KeyOut, type RunningExample } from '../support/example.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createKeyFormat } from '../../src/keys/format.js';
import { loadConfigFile } from '../../src/config/load.js';

const EXAMPLE_DIR = path.dirname(fileURLToPath(import.meta.url));

const JSON_TYPE = 'application/json; charset=utf-8';
const MISSING = { status: 401, type: JSON_TYPE, body: { error: 'Missing API key' } };
/** A key of the right form that doesn't exist or has been revoked (the table's row). */
const INVALID = { status: 403, type: JSON_TYPE, body: { error: 'Invalid API key' } };
/** A string that is no Trakkr key at all, as the code example shows its placeholder. */
const NOT_A_KEY = { status: 401, type: JSON_TYPE, body: { error: 'Invalid API key' } };
const NO_API_ON_PLAN = {
  status: 403,
  type: JSON_TYPE,
  body: { error: 'API keys are available on the Scale plan and above. Free and Growth plans do not include API access.' },
};
const HOUR_MS = 3_600_000;

/** curl -H "Authorization: Bearer $TRAKKR_API_KEY" 'https://api.trakkr.ai/get-brands' */
const bearer = (key: string, init: RequestInit = {}): RequestInit => ({ ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string>) } });

describe('Trakkr API: shared/seeds/004 against examples/trakkr', () => {
  const clock = controlledClock();
  let ex: RunningExample;
  let account: AccountOut;
  let key: KeyOut;
  /** A key of Trakkr's form that was never issued: what "doesn't exist" means. */
  const unregistered = createKeyFormat(loadConfigFile(path.join(EXAMPLE_DIR, 'keygate.yaml')).config.keys).generate('live');

  beforeAll(async () => {
    ex = await startExample('trakkr', { clock });
  });
  afterAll(async () => {
    await ex?.close();
  });

  describe('API Keys: available on the Scale plan and above', () => {
    it('a Scale account gets sk_live_ keys from the CLI', async () => {
      account = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Acme', '--plan', 'scale']);
      key = await ex.cliJson<KeyOut>(['keys', 'create', '--account', account.id, '--name', 'production']);
      expect(key.secret).toMatch(/^sk_live_[0-9A-Za-z]{30}$/);
      expect(key.hint).toBe(`sk_live_…${key.secret.slice(-4)}`);
      expect((await ex.call('/get-brands', bearer(key.secret))).status).toBe(200);
    });

    it('Free and Growth plans do not include API access: no keys, and a Scale key moved down is refused with 403', async () => {
      for (const plan of ['free', 'growth']) {
        const small = await ex.createAccount(`On ${plan}`, plan);
        const refused = await ex.cli(['keys', 'create', '--account', small.id, '--name', 'k']);
        expect(refused.code, plan).toBe(1);
        expect(refused.stderr).toBe(`error: the ${plan === 'free' ? 'Free' : 'Growth'} plan does not include API keys; upgrade the plan first\n`);
        // The admin API refuses it with the same words, and makes no key.
        const viaAdmin = await ex.kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId: small.id, name: 'k' }) });
        expect([viaAdmin.status, ((await viaAdmin.json()) as { detail?: string }).detail], plan).toEqual([
          409,
          `the ${plan === 'free' ? 'Free' : 'Growth'} plan does not include API keys; upgrade the plan first`,
        ]);
        expect(await ex.cliJson<unknown[]>(['keys', 'list', '--account', small.id]), plan).toEqual([]);
        await ex.updateAccount(small.id, { planId: 'scale' });
        const smallKey = await ex.createKey(small.id, 'k');
        await ex.updateAccount(small.id, { planId: plan });
        expect(await read(await ex.call('/get-brands', bearer(smallKey.secret))), plan).toEqual(NO_API_ON_PLAN);
      }
      // New accounts start on Free.
      const fresh = await ex.cliJson<AccountOut>(['accounts', 'create', '--name', 'Newcomer']);
      expect(fresh.planId).toBe('free');
    });

    it('moving between plans turns the same key on and off', async () => {
      const growing = await ex.createAccount('Growing', 'scale');
      const growingKey = await ex.createKey(growing.id, 'k');
      await ex.cliOk(['accounts', 'update', growing.id, '--plan', 'growth']);
      expect(await read(await ex.call('/get-brands', bearer(growingKey.secret)))).toEqual(NO_API_ON_PLAN);
      await ex.cliOk(['accounts', 'update', growing.id, '--plan', 'scale']);
      expect((await ex.call('/get-brands', bearer(growingKey.secret))).status).toBe(200);
      await ex.updateAccount(growing.id, { planId: 'enterprise' });
      expect((await ex.call('/get-brands', bearer(growingKey.secret))).status).toBe(200);
      await ex.updateAccount(growing.id, { planId: 'growth' });
      expect(await read(await ex.call('/get-brands', bearer(growingKey.secret)))).toEqual(NO_API_ON_PLAN);
    });
  });

  describe('Key format sk_live_: full read/write access to all brands the account can access', () => {
    it('writes and reads brands; another account\'s brand does not exist for it', async () => {
      const created = await read(await ex.call('/create-brand', bearer(key.secret, { method: 'POST', body: JSON.stringify({ name: 'Acme', domain: 'acme.com' }), headers: { 'content-type': 'application/json' } })));
      expect(created).toMatchObject({ status: 201, body: { brand: { name: 'Acme', domain: 'acme.com' } } });
      const brand = (created.body as { brand: { id: string } }).brand;

      expect(await read(await ex.call('/get-brands', bearer(key.secret)))).toEqual({ status: 200, type: JSON_TYPE, body: { brands: [brand] } });

      const other = await ex.createAccount('Other', 'scale');
      const otherKey = await ex.createKey(other.id, 'k');
      expect((await read(await ex.call('/get-brands', bearer(otherKey.secret)))).body).toEqual({ brands: [] });
      expect(await read(await ex.call(`/get-brand?brand_id=${brand.id}`, bearer(otherKey.secret)))).toEqual({ status: 404, type: JSON_TYPE, body: { error: 'Brand not found' } });
      expect((await ex.call(`/get-brand?brand_id=${brand.id}`, bearer(key.secret))).status).toBe(200);
    });
  });

  describe('Using your API key', () => {
    it('curl -H "Authorization: Bearer $TRAKKR_API_KEY" /get-brands', async () => {
      const TRAKKR_API_KEY = key.secret;
      const response = await ex.call('/get-brands', { headers: { Authorization: `Bearer ${TRAKKR_API_KEY}` } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe(JSON_TYPE);
      expect(((await response.json()) as { brands: unknown[] }).brands).toHaveLength(1);
    });

    it('all API requests must include a valid API key', async () => {
      for (const path of ['/get-brands', '/get-brand?brand_id=brand_1', '/create-brand', '/anything']) {
        expect(await read(await ex.call(path)), path).toEqual(MISSING);
        expect(await read(await ex.call(path, bearer('sk_live_xxxxxxxxxxxx'))), path).toEqual(NOT_A_KEY);
        expect(await read(await ex.call(path, bearer(unregistered))), path).toEqual(INVALID);
      }
    });
  });

  describe('Security best practices', () => {
    it('rotate keys regularly: the replacement works at once, the old key until the overlap ends', async () => {
      const old = await ex.createKey(account.id, 'rotating');
      const rotated = await ex.cliJson<KeyOut & { previous: { id: string } }>(['keys', 'rotate', old.id, '--overlap', '1h']);
      expect(rotated.secret).toMatch(/^sk_live_/);
      expect(rotated.previous.id).toBe(old.id);
      expect((await ex.call('/get-brands', bearer(rotated.secret))).status).toBe(200);
      expect((await ex.call('/get-brands', bearer(old.secret))).status).toBe(200);

      clock.advance(HOUR_MS + 1_000);
      expect(await read(await ex.call('/get-brands', bearer(old.secret)))).toEqual(INVALID);
      expect((await ex.call('/get-brands', bearer(rotated.secret))).status).toBe(200);
    });

    it('separate keys per environment: each works, and revoking one leaves the others alone', async () => {
      const env = Object.fromEntries(
        await Promise.all(['development', 'staging', 'production-2'].map(async (name) => [name, await ex.createKey(account.id, name)] as const)),
      );
      for (const k of Object.values(env)) expect((await ex.call('/get-brands', bearer(k.secret))).status).toBe(200);
      await ex.cliOk(['keys', 'revoke', (env.staging as KeyOut).id]);
      expect(await read(await ex.call('/get-brands', bearer((env.staging as KeyOut).secret)))).toEqual(INVALID);
      expect((await ex.call('/get-brands', bearer((env.development as KeyOut).secret))).status).toBe(200);
      expect((await ex.call('/get-brands', bearer((env['production-2'] as KeyOut).secret))).status).toBe(200);
    });
  });

  describe('Authentication Errors', () => {
    it('401 Missing API key: no Authorization header was provided', async () => {
      const response = await ex.call('/get-brands');
      expect(await read(response)).toEqual(MISSING);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="trakkr"');
      // An empty header, or the scheme word alone, provides no key either.
      expect(await read(await ex.call('/get-brands', { headers: { authorization: '' } }))).toEqual(MISSING);
      expect(await read(await ex.call('/get-brands', { headers: { authorization: 'Bearer ' } }))).toEqual(MISSING);
    });

    it('403 Invalid API key: the key does not exist or has been revoked', async () => {
      // A key of Trakkr's form (prefix, length, checksum) that was never issued here.
      const response0 = await ex.call('/get-brands', bearer(unregistered));
      expect(await read(response0)).toEqual(INVALID);
      expect(response0.headers.get('www-authenticate')).toBeNull();

      const revoked = await ex.createKey(account.id, 'to revoke');
      expect((await ex.call('/get-brands', bearer(revoked.secret))).status).toBe(200);
      await ex.revokeKey(revoked.id);
      const response = await ex.call('/get-brands', bearer(revoked.secret));
      expect(await read(response)).toEqual(INVALID);
      // 403 is not a challenge: no WWW-Authenticate.
      expect(response.headers.get('www-authenticate')).toBeNull();
    });

    it('a header that is there but is not a Bearer key is an invalid key (401), not a missing one', async () => {
      expect(await read(await ex.call('/get-brands', { headers: { authorization: key.secret } }))).toEqual(NOT_A_KEY);
      expect(await read(await ex.call('/get-brands', { headers: { authorization: `Basic ${Buffer.from(`${key.secret}:`).toString('base64')}` } }))).toEqual(NOT_A_KEY);
    });

    it('the code example: its placeholder answers 401 Unauthorized {"error": "Invalid API key"}, and so does any string that is no Trakkr key', async () => {
      const response = await ex.call('/get-brands', { headers: { Authorization: 'Bearer sk_live_xxxxxxxxxxxx' } });
      expect(await read(response)).toEqual(NOT_A_KEY);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="trakkr", error="invalid_token", error_description="Invalid API key"');
      const wrongChecksum = `${key.secret.slice(0, -1)}${key.secret.endsWith('a') ? 'b' : 'a'}`;
      for (const text of [wrongChecksum, `sk_live_${'A'.repeat(30)}`, key.secret.replace('sk_live_', 'sk_test_')]) {
        expect(await read(await ex.call('/get-brands', bearer(text))), text).toEqual(NOT_A_KEY);
      }
    });
  });

  describe('Authentication Errors, byte for byte', () => {
    it('the code example\'s answer as printed: 401 Unauthorized and {"error": "Invalid API key"}; the table\'s rows likewise', async () => {
      const JSON_TEXT = (error: string) => JSON.stringify({ error });
      expect(await readExact(await ex.call('/get-brands', { headers: { Authorization: 'Bearer sk_live_xxxxxxxxxxxx' } }))).toEqual({
        status: '401 Unauthorized',
        type: JSON_TYPE,
        text: '{"error":"Invalid API key"}',
      });
      expect(await readExact(await ex.call('/get-brands'))).toEqual({ status: '401 Unauthorized', type: JSON_TYPE, text: JSON_TEXT('Missing API key') });
      expect(await readExact(await ex.call('/get-brands', bearer(unregistered)))).toEqual({ status: '403 Forbidden', type: JSON_TYPE, text: JSON_TEXT('Invalid API key') });
    });
  });

  describe('One command', () => {
    it('node bin/keygate.js serve --config <the trakkr profile> starts gateway and upstream (upstream.spawn); a CLI key works through it', async () => {
      const server = await runServeCommand('trakkr');
      try {
        const acme = JSON.parse((await server.cli(['accounts', 'create', '--name', 'Acme', '--plan', 'scale', '--json'])).stdout) as AccountOut;
        const first = JSON.parse((await server.cli(['keys', 'create', '--account', acme.id, '--name', 'first', '--json'])).stdout) as KeyOut;
        expect(await read(await fetch(`${server.gatewayUrl}/get-brands`, bearer(first.secret)))).toEqual({ status: 200, type: JSON_TYPE, body: { brands: [] } });
        expect(await read(await fetch(`${server.gatewayUrl}/get-brands`))).toEqual(MISSING);
      } finally {
        expect(await server.stop()).toBe(0);
      }
    });
  });
});
