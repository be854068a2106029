/**
 * A route that requires a scope for one method, beside a broader route for every method:
 * the other methods on its paths go through the broader route, without the scope. That is
 * how routes match (by method), and keygate says so when it starts, so that an operator who
 * meant "/v1/admin needs admin" learns it before a key without the scope deletes something.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import type { ConfigInput } from '../../src/config/schema.js';

/** keygate in front of a test upstream with `routes` (scopes admin and read), and the secret of a key with `read` alone. */
async function withReader(routes: ConfigInput['routes'], dir: string): Promise<{ upstream: TestUpstream; kg: TestKeygate; secret: string }> {
  const upstream = await startTestUpstream();
  const kg = await startKeygate({ upstream: { url: upstream.url }, scopes: ['admin', 'read'], routes }, { dir: tempDir(dir) });
  const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
  const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'reader', scopes: ['read'] }, 'test');
  return { upstream, kg, secret };
}

/** The warnings keygate logged at start about a route. */
function routeWarnings(kg: TestKeygate): { level: number; msg: string; route?: string }[] {
  return kg.logs.lines.map((line) => JSON.parse(line) as { level: number; msg: string; route?: string }).filter((entry) => entry.level === 40 && entry.route !== undefined);
}

describe('scope gaps between routes', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    ({ upstream, kg, secret } = await withReader([{ method: 'GET', path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/*' }], 'scope-gaps'));
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('lets other methods through the broader route without the scope, as the warning logged at start says', async () => {
    const call = async (method: string) => (await fetch(`${kg.gatewayUrl}/v1/admin/users`, { method, headers: { authorization: `Bearer ${secret}` } })).status;
    expect(await call('GET')).toBe(403);
    expect(await call('DELETE')).toBe(200);
    expect(routeWarnings(kg)).toEqual([
      expect.objectContaining({
        route: 'routes[0]',
        methods: ['POST', 'PUT', 'PATCH', 'DELETE'],
        via: 'routes[1]',
        msg: 'routes[0] (GET /v1/admin/*) requires the scope admin, but POST, PUT, PATCH and DELETE on its paths are judged by routes[1] (/v1/*), which does not: a key without it can POST, PUT, PATCH and DELETE there. Declare those methods with it, or give routes[0] no method (every method then needs it).',
      }),
      // And /v1/admin itself, which the wildcard does not take (the next describe).
      expect.objectContaining({ route: 'routes[0]', root: '/v1/admin', methods: ['GET', 'HEAD'], via: 'routes[1]' }),
    ]);
  });
});

/**
 * A route `/v1/admin/*` does not take `/v1/admin` nor `/v1/admin/` (a wildcard needs a
 * segment after its slash): they go to `/v1/*`, with its scopes. Routes keep matching so
 * (profiles rely on it); keygate says so when it starts, naming the route to add.
 */
describe('a wildcard route whose root falls to a broader route', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;

  beforeAll(async () => {
    ({ upstream, kg, secret } = await withReader([{ path: '/v1/admin/*', scopes: ['admin'] }, { path: '/v1/*', scopes: ['read'] }], 'wildcard-root'));
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('lets a key without the scope reach /v1/admin and /v1/admin/ through /v1/*, as the warning logged at start says', async () => {
    const call = async (path: string) => (await fetch(`${kg.gatewayUrl}${path}`, { headers: { authorization: `Bearer ${secret}` } })).status;
    expect(await call('/v1/admin/users')).toBe(403);
    expect(await call('/v1/admin')).toBe(200);
    expect(await call('/v1/admin/')).toBe(200);
    expect(routeWarnings(kg)).toEqual([
      expect.objectContaining({
        route: 'routes[0]',
        root: '/v1/admin',
        methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
        via: 'routes[1]',
        msg: "routes[0] (/v1/admin/*) does not take /v1/admin or /v1/admin/ (a wildcard needs a segment after its slash): requests to /v1/admin and /v1/admin/ are judged by routes[1] (/v1/*), which does not require the scope admin. To guard /v1/admin and /v1/admin/ as well, declare a route for /v1/admin with routes[0]'s scopes ({path: /v1/admin, ...}); one trailing slash is ignored, so it takes /v1/admin/ too.",
      }),
    ]);
  });
});
