/**
 * The admin API's access log: a line per request a real `serve` answers over HTTP (reads,
 * changes, refusals, unknown routes), naming the client, the target as the gateway's line
 * redacts it, the status and which token answered, and never a token, a key's secret or a
 * body. `log.adminRequests: false` turns it off; by default (`exceptProbes`) health probes
 * and scrapes answered 200 get no line, `true` logs them too.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ADMIN_TOKEN, startKeygate, type TestKeygate } from './support/keygate.js';
import { tempDir } from './support/temp.js';

type Line = Record<string, unknown>;

const READ_TOKEN = 'test-read-token-0123456789ab';
const OLD_TOKEN = 'test-old-admin-token-98765432';
const PROFILE = { keys: { prefix: { live: 'sk_live_' } }, upstream: { url: 'http://127.0.0.1:1' } };

/** The access log's lines so far. */
function accessLines(kg: TestKeygate): Line[] {
  return kg.logs.lines.map((text) => JSON.parse(text) as Line).filter((line) => line.msg === 'admin request');
}

/** The access lines once there are `count` of them: each is written as its answer has been sent, so it may come just after the client has read the answer. */
async function accessLinesWhen(kg: TestKeygate, count: number): Promise<Line[]> {
  await vi.waitFor(() => expect(accessLines(kg)).toHaveLength(count), { timeout: 5_000, interval: 10 });
  return accessLines(kg);
}

describe('admin API access log', () => {
  let kg: TestKeygate;
  beforeAll(async () => {
    kg = await startKeygate(PROFILE, { dir: tempDir('admin-access-log'), adminToken: `${ADMIN_TOKEN},${OLD_TOKEN}`, adminReadToken: READ_TOKEN });
  });
  afterAll(async () => {
    await kg?.close();
  });

  it('a line for each request, read, refused or unknown, with the client, the redacted target, the status and which token answered, never the token', async () => {
    const before = accessLines(kg).length;
    const asked: [string, Record<string, string>, number][] = [
      ['/v1/accounts', { authorization: `Bearer ${ADMIN_TOKEN}` }, 200],
      ['/v1/accounts', { authorization: `Bearer ${OLD_TOKEN}` }, 200],
      ['/v1/accounts', { authorization: `Bearer ${READ_TOKEN}` }, 200],
      ['/v1/accounts', {}, 401],
      ['/v1/accounts', { authorization: 'Bearer wrong-token-7f3e2d1c' }, 401],
      ['/v1/nothing-here', { authorization: `Bearer ${ADMIN_TOKEN}` }, 404],
      ['/v1/accounts?password=hunter2-pass', { authorization: `Bearer ${ADMIN_TOKEN}` }, 400],
    ];
    for (const [path, headers, status] of asked) {
      const response = await fetch(`${kg.adminUrl}${path}`, { headers });
      await response.text();
      expect(response.status).toBe(status);
    }
    const lines = (await accessLinesWhen(kg, before + asked.length)).slice(before);
    expect(lines.map(({ component, client, method, target, status, auth }) => ({ component, client, method, target, status, auth }))).toEqual([
      { component: 'admin', client: '127.0.0.1', method: 'GET', target: '/v1/accounts', status: 200, auth: 'admin token #1' },
      { component: 'admin', client: '127.0.0.1', method: 'GET', target: '/v1/accounts', status: 200, auth: 'admin token #2' },
      { component: 'admin', client: '127.0.0.1', method: 'GET', target: '/v1/accounts', status: 200, auth: 'read-only token' },
      { component: 'admin', client: '127.0.0.1', method: 'GET', target: '/v1/accounts', status: 401, auth: 'none' },
      { component: 'admin', client: '127.0.0.1', method: 'GET', target: '/v1/accounts', status: 401, auth: 'wrong' },
      { component: 'admin', client: '127.0.0.1', method: 'GET', target: '/v1/nothing-here', status: 404, auth: 'admin token #1' },
      { component: 'admin', client: '127.0.0.1', method: 'GET', target: '/v1/accounts?password=[REDACTED]', status: 400, auth: 'admin token #1' },
    ]);
    for (const line of lines) {
      expect(line).toMatchObject({ level: 30, name: 'keygate', reqId: expect.any(String) });
      expect(typeof line.ms).toBe('number');
    }
    for (const secret of [ADMIN_TOKEN, OLD_TOKEN, READ_TOKEN, 'wrong-token-7f3e2d1c', 'hunter2-pass']) expect(kg.logs.text).not.toContain(secret);
    // Nor any part of a token: its first and last characters say nothing either.
    expect(kg.logs.text).not.toContain(ADMIN_TOKEN.slice(-8));
  });

  it("a key made through the admin API: its line says POST /v1/keys 201, and the key's secret is nowhere in the log", async () => {
    const account = await kg.admin('/v1/accounts', { method: 'POST', body: JSON.stringify({ name: 'Logged Ltd' }) });
    expect(account.status).toBe(201);
    const { id: accountId } = (await account.json()) as { id: string };
    const before = accessLines(kg).length;
    const made = await kg.admin('/v1/keys', { method: 'POST', body: JSON.stringify({ accountId, name: 'deploy' }) });
    expect(made.status).toBe(201);
    const { secret } = (await made.json()) as { secret: string };
    expect(secret).toMatch(/^sk_live_/);
    const [line] = (await accessLinesWhen(kg, before + 1)).slice(before);
    expect(line).toMatchObject({ component: 'admin', method: 'POST', target: '/v1/keys', status: 201, auth: 'admin token #1' });
    // The key's id may be logged (as the gateway's line names it); its secret, or its random part, never.
    expect(kg.logs.text).not.toContain(secret);
    expect(kg.logs.text).not.toContain(secret.slice('sk_live_'.length));
  });

  it('an admin token put in the address (a query value, a path segment, escaped) is replaced on the access line and the refusal line, never logged', async () => {
    const kg = await startKeygate(PROFILE, { dir: tempDir('admin-access-log-token-in-url'), adminToken: `${ADMIN_TOKEN},${OLD_TOKEN}`, adminReadToken: READ_TOKEN });
    try {
      // `%2D` for `-`: a script that escapes its parameters sends the token so.
      const escaped = ADMIN_TOKEN.replaceAll('-', '%2D');
      const asked: [string, Record<string, string>, number][] = [
        [`/v1/accounts?q=${ADMIN_TOKEN}`, { authorization: `Bearer ${ADMIN_TOKEN}` }, 200],
        [`/v1/keys/${OLD_TOKEN}`, { authorization: `Bearer ${ADMIN_TOKEN}` }, 404],
        [`/v1/accounts?q=${escaped}`, { authorization: `Bearer ${ADMIN_TOKEN}` }, 200],
        [`/v1/${READ_TOKEN}/accounts?x=${ADMIN_TOKEN}`, {}, 401],
      ];
      for (const [path, headers, status] of asked) {
        const response = await fetch(`${kg.adminUrl}${path}`, { headers });
        await response.text();
        expect(response.status).toBe(status);
      }
      const lines = await accessLinesWhen(kg, asked.length);
      expect(lines.map(({ target, status }) => ({ target, status }))).toEqual([
        { target: '/v1/accounts?q=[REDACTED]', status: 200 },
        { target: '/v1/keys/[REDACTED]', status: 404 },
        { target: '/v1/accounts?q=[REDACTED]', status: 200 },
        { target: '/v1/[REDACTED]/accounts?x=[REDACTED]', status: 401 },
      ]);
      const refusal = kg.logs.lines.map((text) => JSON.parse(text) as Line).find((line) => line.msg === 'admin API refused a request for its token');
      expect(refusal).toMatchObject({ path: '/v1/[REDACTED]/accounts', status: 401 });
      for (const secret of [ADMIN_TOKEN, OLD_TOKEN, READ_TOKEN, escaped]) expect(kg.logs.text).not.toContain(secret);
    } finally {
      await kg.close();
    }
  });

  it('a read-only token refused for a change is named as such on its line', async () => {
    const before = accessLines(kg).length;
    const refused = await fetch(`${kg.adminUrl}/v1/accounts`, { method: 'POST', headers: { authorization: `Bearer ${READ_TOKEN}`, 'content-type': 'application/json' }, body: '{"name":"x"}' });
    expect(refused.status).toBe(403);
    await refused.text();
    const [line] = (await accessLinesWhen(kg, before + 1)).slice(before);
    expect(line).toMatchObject({ method: 'POST', target: '/v1/accounts', status: 403, auth: 'read-only token' });
  });
});

describe('admin API access log: client address and the switch', () => {
  it('behind a proxy in trustedProxies the client X-Forwarded-For names; from anyone else, the peer', async () => {
    for (const [trustedProxies, client] of [[['127.0.0.1'], '203.0.113.9'], [[], '127.0.0.1']] as const) {
      const kg = await startKeygate({ ...PROFILE, trustedProxies: [...trustedProxies] }, { dir: tempDir('admin-access-log-proxy') });
      try {
        const response = await kg.admin('/v1/accounts', { headers: { 'x-forwarded-for': '203.0.113.9' } });
        expect(response.status).toBe(200);
        await response.text();
        const [line] = await accessLinesWhen(kg, 1);
        expect(line).toMatchObject({ target: '/v1/accounts', status: 200, client });
      } finally {
        await kg.close();
      }
    }
  });

  it("an audit event names the client address its request's access line names: behind a trusted proxy the forwarded one, else the peer", async () => {
    for (const [trustedProxies, client] of [[['127.0.0.1'], '203.0.113.9'], [[], '127.0.0.1']] as const) {
      const kg = await startKeygate({ ...PROFILE, trustedProxies: [...trustedProxies] }, { dir: tempDir('admin-access-log-audit') });
      try {
        const created = await kg.admin('/v1/accounts', { method: 'POST', headers: { 'x-forwarded-for': '203.0.113.9' }, body: JSON.stringify({ name: 'Acme' }) });
        expect(created.status).toBe(201);
        const { id } = (await created.json()) as { id: string };
        const [line] = await accessLinesWhen(kg, 1);
        expect(line).toMatchObject({ method: 'POST', target: '/v1/accounts', status: 201, client });
        // Read without the header: the event keeps where the change came from, not where it is read from.
        const events = (await (await kg.admin(`/v1/audit?accountId=${id}`)).json()) as Line[];
        expect(events.map(({ actor, actorAddress, action }) => ({ actor, actorAddress, action }))).toEqual([{ actor: 'admin-api', actorAddress: client, action: 'account.created' }]);
      } finally {
        await kg.close();
      }
    }
  });

  it('log.adminRequests turned off by a reload: the next request has no line', async () => {
    const dir = tempDir('admin-access-log-reload');
    const kg = await startKeygate(PROFILE, { dir });
    try {
      await (await kg.admin('/v1/accounts')).text();
      await accessLinesWhen(kg, 1);
      expect(await kg.reload({ config: { ...kg.runtime.config, log: { ...kg.runtime.config.log, adminRequests: false } }, file: 'test profile', dir })).toEqual(['log.adminRequests']);
      await (await kg.admin('/v1/plans')).text();
      await kg.close();
      expect(accessLines(kg).map((line) => line.target)).toEqual(['/v1/accounts']);
    } finally {
      await kg.close();
    }
  });

  it('log.adminRequests: false writes no line for admin requests', async () => {
    const kg = await startKeygate({ ...PROFILE, log: { adminRequests: false } }, { dir: tempDir('admin-access-log-off') });
    try {
      for (const headers of [{}, { authorization: `Bearer ${ADMIN_TOKEN}` }] as Record<string, string>[]) {
        const response = await fetch(`${kg.adminUrl}/v1/accounts`, { headers });
        await response.text();
      }
      // Closing waits for the answers and their hooks: a line that was coming is written by then.
      await kg.close();
      expect(accessLines(kg)).toEqual([]);
      // The refusal's own warning (not an access line) is still written.
      expect(kg.logs.text).toContain('admin API refused a request for its token');
    } finally {
      await kg.close();
    }
  });
});

describe('admin API access log: health probes and scrapes', () => {
  /** Asks each of these (path, method, token), expecting its status; then stops keygate, which writes every line that was coming. */
  async function ask(kg: TestKeygate, asked: readonly [string, string, string | undefined, number][]): Promise<void> {
    for (const [path, method, token, status] of asked) {
      const response = await fetch(`${kg.adminUrl}${path}`, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
      await response.text();
      expect(`${method} ${path} ${response.status}`).toBe(`${method} ${path} ${status}`);
    }
  }
  const said = (kg: TestKeygate) => accessLines(kg).map((line) => `${line.method as string} ${line.target as string} ${line.status as number}`);

  it('by default (exceptProbes) no line for /health, /health/ready and /metrics answered 200, GET or HEAD; a scrape refused for its token is logged, as is every other request', async () => {
    const kg = await startKeygate(PROFILE, { dir: tempDir('admin-access-log-probes') });
    try {
      expect(kg.runtime.config.log.adminRequests).toBe('exceptProbes');
      await ask(kg, [
        ['/health', 'GET', undefined, 200],
        ['/health', 'HEAD', undefined, 200],
        ['/health/ready', 'GET', undefined, 200],
        ['/metrics', 'GET', ADMIN_TOKEN, 200],
        ['/metrics?name[]=keygate_build_info', 'GET', ADMIN_TOKEN, 200],
        ['/metrics', 'GET', undefined, 401],
        ['/metrics', 'GET', 'wrong-token-0123456789abcdef', 401],
        ['/v1/plans', 'GET', ADMIN_TOKEN, 200],
      ]);
      await kg.close();
      expect(said(kg)).toEqual(['GET /metrics 401', 'GET /metrics 401', 'GET /v1/plans 200']);
    } finally {
      await kg.close();
    }
  });

  it('log.adminRequests: true logs probes and scrapes too; a reload to exceptProbes stops it from the next request', async () => {
    const dir = tempDir('admin-access-log-probes-all');
    const kg = await startKeygate({ ...PROFILE, log: { adminRequests: true } }, { dir });
    try {
      await ask(kg, [
        ['/health', 'GET', undefined, 200],
        ['/health/ready', 'GET', undefined, 200],
        ['/metrics', 'GET', ADMIN_TOKEN, 200],
      ]);
      await vi.waitFor(() => expect(said(kg)).toHaveLength(3), { timeout: 5_000, interval: 10 });
      expect(await kg.reload({ config: { ...kg.runtime.config, log: { ...kg.runtime.config.log, adminRequests: 'exceptProbes' } }, file: 'test profile', dir })).toEqual(['log.adminRequests']);
      await ask(kg, [
        ['/health', 'GET', undefined, 200],
        ['/metrics', 'GET', ADMIN_TOKEN, 200],
        ['/v1/plans', 'GET', ADMIN_TOKEN, 200],
      ]);
      await kg.close();
      expect(said(kg)).toEqual(['GET /health 200', 'GET /health/ready 200', 'GET /metrics 200', 'GET /v1/plans 200']);
    } finally {
      await kg.close();
    }
  });
});

describe('admin API access log: checks over HTTP follow log.requests', () => {
  it('POST /v1/check and its settle are logged as admin requests while log.requests is on, and not while it is off (log.adminRequests on)', async () => {
    for (const requests of [true, false]) {
      const kg = await startKeygate({ ...PROFILE, log: { requests, adminRequests: true } }, { dir: tempDir('admin-access-log-check') });
      try {
        const checked = await kg.admin('/v1/check', { method: 'POST', body: JSON.stringify({ method: 'GET', url: '/v1/data', headers: {} }) });
        expect(checked.status).toBe(200);
        expect(((await checked.json()) as { allowed: boolean }).allowed).toBe(false);
        const settled = await kg.admin('/v1/check/chk_nothing/settle', { method: 'POST', body: JSON.stringify({ status: 200 }) });
        await settled.text();
        await (await kg.admin('/v1/plans')).text();
        await kg.close();
        expect(accessLines(kg).map((line) => `${line.method as string} ${line.target as string}`)).toEqual(
          requests ? ['POST /v1/check', 'POST /v1/check/chk_nothing/settle', 'GET /v1/plans'] : ['GET /v1/plans'],
        );
      } finally {
        await kg.close();
      }
    }
  });
});
