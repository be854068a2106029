/**
 * keygate inside a Fastify API, as docs/library.md shows it: a hook checks, the handlers
 * say how many records they returned, `onResponse` settles, and `app.close()` closes the
 * gate, which writes usage to the store.
 */
import path from 'node:path';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import type { Logger } from 'pino';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { createKeygate, parseConfigObject, type CheckAdmitted, type RuntimeOptions } from '../src/index.js';
import { createAccount } from '../src/operations/accounts.js';
import { createKey } from '../src/operations/keys.js';
import { tempDir } from './support/temp.js';

// The docs name the field `keygate`; the gateway's own request record has that name in
// this project's types, so here it is `admitted`.
declare module 'fastify' {
  interface FastifyRequest {
    admitted?: CheckAdmitted;
    records?: number;
  }
}

describe('keygate as a library in a Fastify API', () => {
  const dir = tempDir('library-fastify');
  const config = parseConfigObject({
    upstream: { url: 'http://127.0.0.1:1' }, // never used in process
    store: `sqlite:${path.join(dir, 'k.db')}`,
    errors: { envelope: 'problem', reasons: { missing_key: { reasonPhrase: 'Key required' } } },
    plans: { scale: { meters: { credits: { limit: 100 } } } },
    routes: [
      { method: 'GET', path: '/rows', cost: { meter: 'credits', perRecord: 1, records: { header: 'X-Count' }, reserveRecords: 5 } },
      { method: 'GET', path: '/reports', cost: { meter: 'credits', perRequest: 10 } },
    ],
    builtins: [{ path: '/me', body: { account: '{{account.id}}' } }],
  });

  it("charges the records a handler returned, gives back a failed answer's cost, and writes usage out on app.close()", async () => {
    const gate = await createKeygate({ config, file: 'inline', dir });
    const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
    const issued = await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test');
    const headers = { authorization: `Bearer ${issued.secret}` };

    // docs/library.md's hooks, as written there (but for the field's name).
    const app = Fastify();
    app.addHook('onRequest', async (request, reply) => {
      const result = await gate.check({ method: request.method, url: request.url, headers: request.headers, rawHeaders: request.raw.rawHeaders });
      if (!result.allowed) {
        if (result.error.reasonPhrase) reply.raw.statusMessage = result.error.reasonPhrase;
        return reply.code(result.error.status).headers(result.error.headers).send(Buffer.from(result.error.body));
      }
      request.admitted = result;
      reply.headers(result.headers);
      if (result.route.kind === 'builtin') {
        return reply.code(result.route.builtin.status).header('content-type', result.route.builtin.contentType).send(Buffer.from(result.builtinBody ?? ''));
      }
    });
    app.addHook('onResponse', async (request, reply) => request.admitted?.settle(reply.statusCode, request.records));
    app.addHook('onRequestAbort', async (request) => request.admitted?.settle(499));
    app.addHook('onClose', () => gate.close());
    app.get('/rows', async (request) => {
      const rows = [{ id: 1 }, { id: 2 }, { id: 3 }];
      request.records = rows.length;
      return rows;
    });
    app.get<{ Querystring: { fail?: string } }>('/reports', async (request) => {
      if (request.query.fail) throw new Error('the report could not be made');
      return { reports: [] };
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });

    try {
      const refused = await fetch(`${url}/rows`);
      expect({ status: refused.status, statusText: refused.statusText, type: refused.headers.get('content-type'), auth: refused.headers.get('www-authenticate') }).toEqual({
        status: 401,
        statusText: 'Key required',
        type: 'application/problem+json',
        auth: 'Bearer realm="api"',
      });
      expect(await refused.json()).toMatchObject({ status: 401, code: 'missing_key' });

      const rows = await fetch(`${url}/rows`, { headers });
      expect({ status: rows.status, body: await rows.json() }).toEqual({ status: 200, body: [{ id: 1 }, { id: 2 }, { id: 3 }] });
      const failed = await fetch(`${url}/reports?fail=1`, { headers });
      expect(failed.status).toBe(500);
      await failed.text();
      const reports = await fetch(`${url}/reports`, { headers });
      expect({ status: reports.status, body: await reports.json() }).toEqual({ status: 200, body: { reports: [] } });
      const me = await fetch(`${url}/me`, { headers });
      expect({ status: me.status, type: me.headers.get('content-type'), body: await me.json() }).toEqual({ status: 200, type: 'application/json; charset=utf-8', body: { account: account.id } });
    } finally {
      await app.close();
    }

    // What the store holds once the app has closed: 3 records and one report; the failed report given back.
    const again = await createKeygate({ config, file: 'inline', dir });
    try {
      const meters = await again.runtime.store.loadMeterUsage({ accountId: account.id });
      expect(meters.map((row) => [row.meter, row.used])).toEqual([['credits', 13]]);
      const day = new Date(again.runtime.clock()).toISOString().slice(0, 10);
      const daily = await again.runtime.store.listUsageDaily(account.id, day, day);
      expect(daily.map((row) => [row.metric, row.label, row.value]).sort()).toEqual([
        ['key_requests', issued.key.id, 4],
        ['requests', '2xx', 3],
        ['requests', '5xx', 1],
        ['units', 'credits', 13],
      ]);
    } finally {
      await again.close();
    }
  });

  // Checked by the type check (npm run typecheck); vitest runs nothing here.
  it("takes a Fastify app's logger, or pino's, as its log (types)", () => {
    expectTypeOf<FastifyBaseLogger>().toExtend<NonNullable<RuntimeOptions['log']>>();
    expectTypeOf<Logger>().toExtend<NonNullable<RuntimeOptions['log']>>();
  });

  it("writes its log lines to the Fastify app's own logger, given as `log: app.log`", async () => {
    const lines: Record<string, unknown>[] = [];
    const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) } } });
    const gate = await createKeygate({ config: parseConfigObject({ ...config, store: `sqlite:${path.join(dir, 'app-log.db')}` }), file: 'inline', dir }, { log: app.log });
    const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
    const headers = { authorization: `Bearer ${(await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test')).secret}` };
    app.addHook('onRequest', async (request, reply) => {
      const result = await gate.check({ method: request.method, url: request.url, headers: request.headers });
      if (!result.allowed) return reply.code(result.error.status).send(Buffer.from(result.error.body));
      request.admitted = result;
    });
    app.addHook('onResponse', async (request, reply) => request.admitted?.settle(reply.statusCode, request.records));
    app.addHook('onClose', () => gate.close());
    // A count that is no whole number: keygate charges the reserved estimate, and warns; for a 205, which has no body, no records.
    app.get('/rows', async (request, reply) => {
      request.records = 2.5;
      if ((request.query as { reset?: string }).reset !== undefined) return reply.code(205).send();
      return [];
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const rows = await fetch(`${url}/rows`, { headers });
      expect(rows.status).toBe(200);
      await rows.text();
      const reset = await fetch(`${url}/rows?reset`, { headers });
      expect([reset.status, await reset.text()]).toEqual([205, '']);
    } finally {
      // Closing the gate (onClose) waits for the request to settle.
      await app.close();
    }
    expect(lines.find((line) => line.route === '/rows')).toMatchObject({
      level: 40,
      records: '2.5',
      msg: 'settle was given a number of records that is not a whole number from 0 to 999999999999999; charged the reserved estimate (records are counted whole: pass a whole number)',
    });
    expect(lines.filter((line) => typeof line.msg === 'string' && line.msg.startsWith('settle was given')).map((line) => line.msg)).toEqual([
      'settle was given a number of records that is not a whole number from 0 to 999999999999999; charged the reserved estimate (records are counted whole: pass a whole number)',
      'settle was given a number of records that is not a whole number from 0 to 999999999999999; a 205 has no body: charged no records',
    ]);
    // Fastify's own request lines went to the same logger: one destination for both.
    expect(lines.some((line) => line.msg === 'request completed')).toBe(true);
  });
});
