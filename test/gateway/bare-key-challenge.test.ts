/**
 * `errors.challenge`: the WWW-Authenticate challenge of a profile whose keys are sent with
 * no scheme (a bare header, `scheme: none`, or a query parameter), as Kong's key-auth
 * sends `Key realm="kong"`. Opt-in: without it such a profile's 401s carry none, as
 * before; a credential header with a scheme names its own. Over real HTTP, against a real
 * SQLite file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey, revokeKey } from '../../src/operations/keys.js';

/** Kong's key-auth credentials: `apikey: <key>` or `?apikey=<key>`. */
const KONG_CREDENTIALS: NonNullable<ConfigInput['auth']>['credentials'] = [
  { in: 'header', name: 'apikey', scheme: 'none' },
  { in: 'query', name: 'apikey' },
];

interface Gateway {
  kg: TestKeygate;
  /** A working key, with the scope `read` only. */
  good: string;
  revoked: string;
  /** Well-formed, never issued. */
  unknown: string;
}

async function gateway(upstream: TestUpstream, label: string, profile: Pick<ConfigInput, 'auth' | 'errors'>): Promise<Gateway> {
  const kg = await startKeygate(
    {
      upstream: { url: upstream.url },
      keys: { prefix: { live: 'sk_live_' } },
      scopes: ['read', 'write'],
      routes: [{ path: '/v1/write', scopes: ['write'] }, { path: '/v1/*' }],
      ...profile,
    },
    { dir: tempDir(`bare-key-challenge-${label}`) },
  );
  const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
  const good = (await createKey(kg.runtime, { accountId: account.id, name: 'good', scopes: ['read'] }, 'test')).secret;
  const revokedKey = await createKey(kg.runtime, { accountId: account.id, name: 'revoked' }, 'test');
  await revokeKey(kg.runtime, revokedKey.key.id, 'test');
  return { kg, good, revoked: revokedKey.secret, unknown: kg.runtime.keyFormat.generate('live') };
}

/** The status, the code the body gives and the challenge a client sees. */
async function seen(response: Response): Promise<{ status: number; code: unknown; challenge: string | null }> {
  const body = (await response.json()) as { code?: unknown };
  return { status: response.status, code: body.code, challenge: response.headers.get('www-authenticate') };
}

describe('errors.challenge', () => {
  let upstream: TestUpstream;
  const started: TestKeygate[] = [];
  const start = async (label: string, profile: Pick<ConfigInput, 'auth' | 'errors'>) => {
    const g = await gateway(upstream, label, profile);
    started.push(g.kg);
    return g;
  };

  beforeAll(async () => {
    upstream = await startTestUpstream();
  });

  afterAll(async () => {
    for (const kg of started) await kg.close();
    await upstream?.close();
  });

  it('Key with a bare header key (scheme none): every 401 carries Key realm="<realm>" alone, with no error parameters, from the header or the query; a 403 and an admitted request none', async () => {
    const { kg, good, revoked, unknown } = await start('kong', { auth: { credentials: KONG_CREDENTIALS }, errors: { challenge: 'Key', realm: 'kong' } });
    const challenged = { status: 401, challenge: 'Key realm="kong"' };
    expect(await seen(await kg.call('/v1/items'))).toEqual({ ...challenged, code: 'missing_key' });
    expect(await seen(await kg.call('/v1/items', { headers: { apikey: unknown } }))).toEqual({ ...challenged, code: 'invalid_key' });
    expect(await seen(await kg.call(`/v1/items?apikey=${unknown}`))).toEqual({ ...challenged, code: 'invalid_key' });
    expect(await seen(await kg.call('/v1/items', { headers: { apikey: `Bearer ${good}` } }))).toEqual({ ...challenged, code: 'invalid_key' });
    expect(await seen(await kg.call('/v1/items', { headers: { apikey: revoked } }))).toEqual({ ...challenged, code: 'revoked_key' });
    // Not a 401: the key works, it lacks the scope.
    expect(await seen(await kg.call('/v1/write', { headers: { apikey: good } }))).toEqual({ status: 403, code: 'insufficient_scope', challenge: null });
    const admitted = await kg.call('/v1/items', { headers: { apikey: good } });
    expect({ status: admitted.status, challenge: admitted.headers.get('www-authenticate') }).toEqual({ status: 200, challenge: null });
    await admitted.text();
  });

  it('Key with query parameters only: missing and unknown keys are challenged with the default realm', async () => {
    const { kg, unknown } = await start('query', { auth: { credentials: [{ in: 'query', name: 'api_key' }] }, errors: { challenge: 'Key' } });
    expect(await seen(await kg.call('/v1/items'))).toEqual({ status: 401, code: 'missing_key', challenge: 'Key realm="api"' });
    expect(await seen(await kg.call(`/v1/items?api_key=${unknown}`))).toEqual({ status: 401, code: 'invalid_key', challenge: 'Key realm="api"' });
  });

  it('left out (the default): a bare-key profile\'s 401s carry no challenge, as before', async () => {
    const { kg, unknown } = await start('default', { auth: { credentials: KONG_CREDENTIALS } });
    expect(await seen(await kg.call('/v1/items'))).toEqual({ status: 401, code: 'missing_key', challenge: null });
    expect(await seen(await kg.call('/v1/items', { headers: { apikey: unknown } }))).toEqual({ status: 401, code: 'invalid_key', challenge: null });
  });

  it('with errors.wwwAuthenticate: false: no challenge at all', async () => {
    const { kg, unknown } = await start('off', { auth: { credentials: KONG_CREDENTIALS }, errors: { challenge: 'Key', wwwAuthenticate: false } });
    expect(await seen(await kg.call('/v1/items'))).toEqual({ status: 401, code: 'missing_key', challenge: null });
    expect(await seen(await kg.call(`/v1/items?apikey=${unknown}`))).toEqual({ status: 401, code: 'invalid_key', challenge: null });
  });

  it('beside a credential header with a scheme: that scheme is the challenge, with invalid_token where a key fails, wherever the key was sent', async () => {
    const { kg, unknown } = await start('mixed', {
      auth: { credentials: [{ in: 'query', name: 'apikey' }, { in: 'header', name: 'Authorization', scheme: 'Bearer' }] },
      errors: { challenge: 'Key' },
    });
    expect(await seen(await kg.call('/v1/items'))).toEqual({ status: 401, code: 'missing_key', challenge: 'Bearer realm="api"' });
    expect(await seen(await kg.call(`/v1/items?apikey=${unknown}`))).toEqual({
      status: 401,
      code: 'invalid_key',
      challenge: 'Bearer realm="api", error="invalid_token", error_description="Invalid API key."',
    });
  });
});
