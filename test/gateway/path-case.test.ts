/**
 * Paths that differ only in letter case, in front of an API that routes them as one (Express
 * and ASP.NET by default): with `upstream.caseSensitivePaths: false` a request is judged by
 * the route the API serves it as, so `/v1/Admin/Users` cannot pass under `/v1/*`'s scopes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

const ROUTES = [
  { method: 'GET', path: '/v1/admin/users', scopes: ['admin'] },
  { method: 'POST', path: '/v1/reports', scopes: ['reports:write'] },
  { path: '/v1/*' },
];

describe('path case at the gateway', () => {
  let upstream: TestUpstream;
  const keygates: TestKeygate[] = [];

  /** A keygate in front of the upstream (under `basePath`, by default none), and a key with `reports:write` only. */
  async function start(caseSensitivePaths: boolean, basePath = '/'): Promise<{ kg: TestKeygate; call: (method: string, path: string) => Promise<number> }> {
    const kg = await startKeygate({ upstream: { url: upstream.url, caseSensitivePaths }, basePath, scopes: ['admin', 'reports:write'], routes: ROUTES }, { dir: tempDir(`path-case-${caseSensitivePaths}`) });
    keygates.push(kg);
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'reports', scopes: ['reports:write'] }, 'test');
    const call = async (method: string, path: string) => (await fetch(kg.gatewayUrl + path, { method, headers: { authorization: `Bearer ${secret}` } })).status;
    return { kg, call };
  }

  beforeAll(async () => {
    upstream = await startTestUpstream();
  });

  afterAll(async () => {
    for (const kg of keygates) await kg.close();
    await upstream?.close();
  });

  it('with caseSensitivePaths: false, judges /v1/Admin/Users by the /v1/admin/users route (403), and forwards nothing', async () => {
    const { call } = await start(false);
    const before = upstream.received.length;
    for (const path of ['/v1/admin/users', '/v1/Admin/Users', '/v1/ADMIN/USERS', '/v1/%41dmin/users']) expect(await call('GET', path), path).toBe(403);
    expect(upstream.received.length).toBe(before);
    // Routes the key may call still answer, in any case.
    expect(await call('POST', '/v1/REPORTS')).toBe(200);
    expect(await call('GET', '/v1/projects')).toBe(200);
    expect(upstream.received.slice(before).map((r) => r.url)).toEqual(['/v1/REPORTS', '/v1/projects']);
  });

  it('with caseSensitivePaths: false, compares basePath ignoring case too, and forwards the path in the letters sent', async () => {
    const { call } = await start(false, '/v1');
    const before = upstream.received.length;
    expect(await call('GET', '/V1/projects')).toBe(200);
    expect(await call('POST', '/V1/REPORTS')).toBe(200);
    // Judged by the route the API serves it as, whatever the case of basePath's letters.
    expect(await call('GET', '/V1/Admin/Users')).toBe(403);
    // Still under basePath only: a path that merely begins with its letters is not.
    for (const path of ['/V1x/projects', '/V/projects', '/projects']) expect(await call('GET', path), path).toBe(404);
    expect(upstream.received.slice(before).map((r) => r.url)).toEqual(['/V1/projects', '/V1/REPORTS']);
  });

  it('by default compares basePath as written: /V1/projects is outside /v1 (no_route), and nothing is forwarded', async () => {
    const { call } = await start(true, '/v1');
    const before = upstream.received.length;
    expect(await call('GET', '/V1/projects')).toBe(404);
    expect(await call('GET', '/v1/projects')).toBe(200);
    expect(upstream.received.slice(before).map((r) => r.url)).toEqual(['/v1/projects']);
  });

  it('by default matches case-sensitively: /v1/Admin/Users is another path, judged by /v1/*', async () => {
    const { call } = await start(true);
    expect(await call('GET', '/v1/admin/users')).toBe(403);
    const before = upstream.received.length;
    expect(await call('GET', '/v1/Admin/Users')).toBe(200);
    expect(upstream.received.slice(before).map((r) => r.url)).toEqual(['/v1/Admin/Users']);
  });
});
