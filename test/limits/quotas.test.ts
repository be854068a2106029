/**
 * Unit quotas on the embedded default: reservations that keep concurrent requests from
 * spending past a balance, per-record charges counted from the response, nothing charged
 * for non-2xx, overage, periods, usage endpoints, and balances that survive a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { eventually } from '../backends/isolation.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createAccount, updateAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { forecast } from '../../src/operations/forecast.js';

const now = { value: Date.parse('2026-11-20T00:00:00Z') };

function profile(upstreamUrl: string): ConfigInput {
  return {
    upstream: { url: upstreamUrl },
    basePath: '/v1',
    keys: { format: 'hex', hexLength: 40 },
    auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Token' }, { in: 'query', name: 'apikey' }] },
    errors: { envelope: 'error_description', reasons: { insufficient_funds: { status: 400, message: 'Insufficient funds' } } },
    plans: {
      thousand: { meters: { units: { limit: 1000 } } },
      big: { meters: { units: { limit: 100_000 } } },
      flexible: { meters: { units: { limit: 300, overage: true } } },
      billing: { meters: { units: { limit: 1000, period: { billingDay: 15 } } } },
    },
    routes: [
      { method: 'POST', path: '/v1/domain/overview', cost: { meter: 'units', perRequest: 100 } },
      { method: 'GET', path: '/v1/backlinks/records', cost: { meter: 'units', perRecord: 1, records: { json: 'data' }, reserveFromQuery: 'n' } },
      { method: 'GET', path: '/v1/backlinks/records-held', cost: { meter: 'units', perRecord: 1, records: { json: 'data' }, reserveFromQuery: 'n' } },
      { method: 'GET', path: '/v1/backlinks/headers-held', cost: { meter: 'units', perRecord: 1, records: { json: 'data' }, reserveFromQuery: 'n' } },
      // The test upstream echoes the request here: JSON without the `data` it is counted by.
      { method: 'GET', path: '/v1/backlinks/uncountable', cost: { meter: 'units', perRecord: 1, records: { json: 'data' }, reserveFromQuery: 'n' } },
      // The test upstream answers here with the total it is given, written as it is: `{"meta":{"total":1e20}}`.
      { method: 'GET', path: '/v1/backlinks/reported-total', cost: { meter: 'units', perRecord: 1, records: { json: 'meta.total' }, reserveFromQuery: 'n' } },
      // The test upstream answers here with no body: a 204, or a 200 with Content-Length: 0 or an empty chunked body.
      { method: 'GET', path: '/v1/backlinks/empty', cost: { meter: 'units', perRecord: 1, records: { json: 'data' }, reserveFromQuery: 'n' } },
      { method: 'GET', path: '/v1/backlinks/count-header', cost: { meter: 'units', perRecord: 100, records: { header: 'X-Record-Count' } } },
      { method: 'GET', path: '/v1/backlinks/count-header-held', cost: { meter: 'units', perRecord: 100, records: { header: 'X-Record-Count' } } },
      // Counted by a header the test upstream does not send here: `/empty` (no body), `/events-held` (an event stream), anything else (an echo).
      { method: 'GET', path: '/v1/headed/:answer', cost: { meter: 'units', perRecord: 1, records: { header: 'X-Record-Count' }, reserveFromQuery: 'n' } },
      { method: 'GET', path: '/v1/failing/status/:code', cost: { meter: 'units', perRequest: 100 } },
      { method: 'GET', path: '/v1/export/status', cost: { meter: 'units', perRequest: 0 } },
      { method: 'GET', path: '/v1/reports/slow', cost: { meter: 'units', perRequest: 100 } },
      { method: 'GET', path: '/v1/reports/held', cost: { meter: 'units', perRequest: 100 } },
      { method: 'GET', path: '/v1/reports/headers-held', cost: { meter: 'units', perRequest: 100 } },
      // A flat cost: the query's count changes nothing.
      { method: 'GET', path: '/v1/reports/flat', cost: { meter: 'units', perRequest: 5, reserveFromQuery: 'n' } },
      { path: '/v1/*' },
    ],
    builtins: [
      {
        method: 'GET',
        path: '/v1/account/subscription',
        body: { subscription_info: { status: 'active', units_limit: '{{meters.units.limit}}', units_left: '{{meters.units.remaining}}', expiration_datetime: '{{meters.units.periodEnd}}' } },
      },
    ],
  };
}

describe('unit quotas', () => {
  const dir = tempDir('quotas');
  let upstream: TestUpstream;
  let kg: TestKeygate;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(profile(upstream.url), { dir, clock: () => now.value });
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  async function keyOn(plan: string) {
    const account = await createAccount(kg.runtime, { name: plan, planId: plan }, 'test');
    const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test');
    return { secret, accountId: account.id };
  }
  const call = async (secret: string, method: string, path: string) => {
    const r = await kg.call(path, { method, headers: { authorization: `Token ${secret}` } });
    return { status: r.status, body: await r.text() };
  };
  const unitsLeft = async (secret: string) => JSON.parse((await call(secret, 'GET', '/v1/account/subscription')).body).subscription_info.units_left as number;

  it('200 requests at once against 1,000 units at 100 per call admit exactly 10, and never go negative', async () => {
    const { secret, accountId } = await keyOn('thousand');
    const results = await Promise.all(Array.from({ length: 200 }, () => call(secret, 'POST', '/v1/domain/overview')));
    expect(results.filter((r) => r.status === 200)).toHaveLength(10);
    const refused = results.filter((r) => r.status === 400);
    expect(refused).toHaveLength(190);
    expect(JSON.parse(refused[0]!.body)).toEqual({ error_description: 'Insufficient funds' });
    const balance = await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01');
    expect(balance).toEqual({ used: 1000, reserved: 0 });
    expect(await unitsLeft(secret)).toBe(0);
  });

  it('zero-cost routes keep working at zero balance', async () => {
    const { secret } = await keyOn('thousand');
    for (let i = 0; i < 10; i++) await call(secret, 'POST', '/v1/domain/overview');
    expect((await call(secret, 'POST', '/v1/domain/overview')).status).toBe(400);
    expect((await call(secret, 'GET', '/v1/export/status')).status).toBe(200);
    expect((await call(secret, 'GET', '/v1/account/subscription')).status).toBe(200);
  });

  it('charges per record exactly the records returned, from the JSON body or a header', async () => {
    const { secret } = await keyOn('big');
    expect((await call(secret, 'GET', '/v1/backlinks/records?n=37')).status).toBe(200);
    expect(await unitsLeft(secret)).toBe(100_000 - 37);
    const counted = await kg.call('/v1/backlinks/count-header?n=3', { headers: { authorization: `Token ${secret}` } });
    expect(counted.status).toBe(200);
    expect(counted.headers.get('x-record-count')).toBeNull(); // keygate's header, removed
    await counted.text();
    expect(await unitsLeft(secret)).toBe(100_000 - 37 - 300);
  });

  it('passes a counted JSON body on as it arrives, and charges the records counted at its end', async () => {
    const { secret } = await keyOn('big');
    const response = await kg.call('/v1/backlinks/records-held?n=60000&id=streamed', { headers: { authorization: `Token ${secret}` } });
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    // The first half reaches the client while the upstream still holds the rest.
    const first = await reader.read();
    expect(Buffer.from(first.value as Uint8Array).toString()).toMatch(/^\{"data":\[\{"id":1\},/);
    upstream.release('streamed');
    const chunks = [Buffer.from(first.value as Uint8Array)];
    for (let part = await reader.read(); !part.done; part = await reader.read()) chunks.push(Buffer.from(part.value));
    expect((JSON.parse(Buffer.concat(chunks).toString()) as { data: unknown[] }).data).toHaveLength(60_000);
    await eventually(async () => (await unitsLeft(secret)) === 100_000 - 60_000);
    expect(await unitsLeft(secret)).toBe(100_000 - 60_000);
  });

  it('charges a client that hangs up midway through a counted answer the records that reached it', async () => {
    const { secret } = await keyOn('big');
    const n = 60_000;
    const body = JSON.stringify({ data: Array.from({ length: n }, (_, i) => ({ id: i + 1 })) });
    const firstHalf = body.slice(0, body.length / 2);
    const begun = (firstHalf.match(/\{"id"/g) ?? []).length;
    const abort = new AbortController();
    const response = await kg.call(`/v1/backlinks/records-held?n=${n}&id=hang-up`, { headers: { authorization: `Token ${secret}` }, signal: abort.signal });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let received = 0;
    while (received < firstHalf.length) received += ((await reader.read()).value as Uint8Array).length;
    abort.abort();
    // keygate stops the upstream request; the charge is the records that went past.
    const url = `/v1/backlinks/records-held?n=${n}&id=hang-up`;
    expect(await eventually(() => upstream.abandoned.some((r) => r.url === url))).toBe(true);
    upstream.release('hang-up');
    await eventually(async () => (await unitsLeft(secret)) === 100_000 - begun);
    expect(await unitsLeft(secret)).toBe(100_000 - begun);
    expect(begun).toBeGreaterThan(20_000);
  });

  it('charges nothing for a counted answer cut before its body began, by the client or by the upstream', async () => {
    const { secret } = await keyOn('big');
    const arrived = (id: string) => eventually(() => upstream.received.some((r) => r.url.includes(`id=${id}`)));

    const abort = new AbortController();
    const leaving = kg.call('/v1/backlinks/headers-held?n=5000&id=left-early', { headers: { authorization: `Token ${secret}` }, signal: abort.signal }).catch(() => undefined);
    expect(await arrived('left-early')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the upstream's headers reach keygate
    abort.abort();
    await leaving;
    expect(await eventually(() => upstream.abandoned.some((r) => r.url.includes('id=left-early')))).toBe(true);
    upstream.release('left-early');

    // The upstream sent its head, then failed before any of the body: the client was sent
    // nothing yet, and gets the 502 instead.
    const failing = kg.call('/v1/backlinks/headers-held?n=5000&id=cut&fail=1', { headers: { authorization: `Token ${secret}` } }).then(async (r) => ({ status: r.status, body: await r.json() }));
    expect(await arrived('cut')).toBe(true);
    upstream.release('cut');
    expect(await failing).toEqual({ status: 502, body: { error_description: 'The upstream service is unavailable.' } });

    // Neither the 5,000 reserved nor anything else was charged; a whole answer still is.
    expect((await call(secret, 'GET', '/v1/backlinks/records?n=3')).status).toBe(200);
    expect(await eventually(async () => (await unitsLeft(secret)) === 100_000 - 3)).toBe(true);
  });

  it('charges the records a header counts once the body is over: not when the upstream cuts the body, in full when the client hangs up', async () => {
    const { secret } = await keyOn('big');
    const start = async (id: string, extra = '') => {
      const response = await kg.call(`/v1/backlinks/count-header-held?n=7&id=${id}${extra}`, { headers: { authorization: `Token ${secret}` } });
      expect(response.status).toBe(200);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      expect(Buffer.from((await reader.read()).value as Uint8Array).toString()).toBe('{"data":[');
      return reader;
    };
    /** The rest of the body, or how it ended. */
    const rest = async (reader: ReadableStreamDefaultReader<Uint8Array>) => {
      let text = '';
      try {
        for (let part = await reader.read(); !part.done; part = await reader.read()) text += Buffer.from(part.value).toString();
      } catch {
        return 'cut';
      }
      return text;
    };

    // The upstream cuts the body: the client did not get the 7 records, and pays none.
    const cut = await start('header-cut', '&fail=1');
    upstream.release('header-cut');
    expect(await rest(cut)).toBe('cut');
    // A whole answer afterwards is charged (700): the balance shows the cut one charged nothing.
    const whole = await start('header-whole');
    upstream.release('header-whole');
    expect(await rest(whole)).toBe('1]}');
    expect(await eventually(async () => (await unitsLeft(secret)) === 100_000 - 700)).toBe(true);

    // The client hangs up midway: the records were its to read, and are charged.
    const leaving = await start('header-left');
    await leaving.cancel();
    expect(await eventually(() => upstream.abandoned.some((r) => r.url.includes('id=header-left')))).toBe(true);
    upstream.release('header-left');
    expect(await eventually(async () => (await unitsLeft(secret)) === 100_000 - 1400)).toBe(true);
  });

  it('charges nothing, and answers 502, for a head whose body never came or a status that does not exist', async () => {
    const { secret } = await keyOn('thousand');
    const headOnly = kg.call('/v1/reports/headers-held?id=head-only&fail=1', { headers: { authorization: `Token ${secret}` } });
    expect(await eventually(() => upstream.received.some((r) => r.url.includes('id=head-only')))).toBe(true);
    upstream.release('head-only');
    const answer = await headOnly;
    expect({ status: answer.status, body: await answer.json() }).toEqual({ status: 502, body: { error_description: 'The upstream service is unavailable.' } });
    const impossible = await kg.call('/v1/failing/status/700', { headers: { authorization: `Token ${secret}` } });
    expect({ status: impossible.status, body: await impossible.json() }).toEqual({ status: 502, body: { error_description: 'The upstream service is unavailable.' } });
    const logged = kg.logs.lines.map((l) => JSON.parse(l) as { msg: string; status?: number; outcome?: string; target?: string }).filter((l) => l.msg === 'request' && /head-only|status\/700/.test(l.target ?? ''));
    expect(logged.map((l) => [l.status, l.outcome])).toEqual([[502, 'upstream_error'], [502, 'upstream_error']]);
    // Nothing was charged: a whole answer of the same route still is.
    expect(await unitsLeft(secret)).toBe(1000);
    const whole = kg.call('/v1/reports/headers-held?id=whole', { headers: { authorization: `Token ${secret}` } });
    expect(await eventually(() => upstream.received.some((r) => r.url.includes('id=whole')))).toBe(true);
    upstream.release('whole');
    expect((await whole).status).toBe(200);
    expect(await eventually(async () => (await unitsLeft(secret)) === 900)).toBe(true);
  });

  it('charges what the request reserved for a 2xx whose records cannot be counted, and forwards nothing that would change the counted body', async () => {
    const { secret } = await keyOn('big');
    const r = await kg.call('/v1/backlinks/uncountable?n=40', { headers: { authorization: `Token ${secret}`, range: 'bytes=0-10', 'if-range': '"x"', accept_encoding: 'gzip' } });
    expect(r.status).toBe(200);
    const echoed = (await r.json()) as { headers: Record<string, string> };
    expect(echoed.headers.range).toBeUndefined();
    expect(echoed.headers['if-range']).toBeUndefined();
    expect(echoed.headers.accept_encoding).toBeUndefined();
    expect(echoed.headers['accept-encoding']).toBe('identity');
    expect(await unitsLeft(secret)).toBe(100_000 - 40);
  });

  it('charges no records for a 2xx with no body (a 204, a 205, an empty 200), where records are counted in the body: none reached the client', async () => {
    const { secret, accountId } = await keyOn('big');
    for (const query of ['status=204', 'status=205', 'status=200', 'status=200&chunked']) {
      const r = await kg.call(`/v1/backlinks/empty?n=40&${query}`, { headers: { authorization: `Token ${secret}` } });
      expect({ query, status: r.status, body: await r.text() }).toEqual({ query, status: Number(query.slice(7, 10)), body: '' });
    }
    expect(await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).toEqual({ used: 0, reserved: 0 });
    expect(await unitsLeft(secret)).toBe(100_000);
    const warned = kg.logs.lines.map((l) => JSON.parse(l) as { msg: string; account?: string }).filter((l) => l.account === accountId && l.msg.startsWith('could not count records'));
    expect(warned).toEqual([]);
  });

  it('charges no records for a 2xx with no body and no record-count header (a 204, a 205, an empty 200, an empty event stream), and the estimate for one with a body', async () => {
    const { secret, accountId } = await keyOn('big');
    const used = async () => (await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).used;
    const warnings = () => kg.logs.lines.map((l) => JSON.parse(l) as { msg: string; account?: string; header?: string }).filter((l) => l.account === accountId && l.msg.startsWith('upstream sent no record count'));
    const eventStream = `type=${encodeURIComponent('text/event-stream')}`;
    for (const query of ['status=204', 'status=205', 'status=200', 'status=200&chunked', `status=200&${eventStream}`]) {
      const r = await kg.call(`/v1/headed/empty?n=40&${query}`, { headers: { authorization: `Token ${secret}` } });
      expect({ query, status: r.status, body: await r.text() }).toEqual({ query, status: Number(query.slice(7, 10)), body: '' });
    }
    await eventually(async () => (await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).reserved === 0);
    expect(await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).toEqual({ used: 0, reserved: 0 });
    expect(warnings()).toEqual([]);
    // A body without the header may have held records: charged the 40 reserved, with the warning, as before.
    const echoed = await kg.call('/v1/headed/echo?n=40', { headers: { authorization: `Token ${secret}` } });
    expect(echoed.status).toBe(200);
    await echoed.text();
    await eventually(async () => (await used()) === 40);
    // So is an event stream's, whose head went before its body: charged once its body has come.
    const events = kg.call('/v1/headed/events-held?n=40&id=headed-events', { headers: { authorization: `Token ${secret}` } });
    const stream = await events;
    expect(stream.status).toBe(200);
    upstream.release('headed-events');
    expect(await stream.text()).toBe('data: 1\n\n');
    await eventually(async () => (await used()) === 80);
    expect(await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).toEqual({ used: 80, reserved: 0 });
    expect(warnings()).toEqual([expect.objectContaining({ header: 'x-record-count' }), expect.objectContaining({ header: 'x-record-count' })]);
    // An event stream whose client hangs up before its first event got no body: it costs nothing, as any answer cut before its body.
    const leaving = new AbortController();
    const cut = await kg.call('/v1/headed/events-held?n=40&id=headed-cut', { headers: { authorization: `Token ${secret}` }, signal: leaving.signal });
    expect(cut.status).toBe(200);
    leaving.abort();
    await eventually(async () => (await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).reserved === 0);
    expect(await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).toEqual({ used: 80, reserved: 0 });
    upstream.release('headed-cut');
  });

  it('charges no records for a 2xx with no body whose record-count header holds no count, and says so once in the log', async () => {
    const { secret, accountId } = await keyOn('big');
    const warnings = () => kg.logs.lines.map((l) => JSON.parse(l) as { msg: string; account?: string; header?: string }).filter((l) => l.account === accountId && l.msg.startsWith('upstream sent no record count'));
    const eventStream = `type=${encodeURIComponent('text/event-stream')}`;
    const queries = ['status=204&count=lots', 'status=205&count=-1', 'status=200&count=1e3', 'status=200&chunked&count=', `status=200&${eventStream}&count=many`];
    for (const query of queries) {
      const r = await kg.call(`/v1/headed/empty?n=40&${query}`, { headers: { authorization: `Token ${secret}` } });
      expect({ query, status: r.status, count: r.headers.get('x-record-count'), body: await r.text() }).toEqual({ query, status: Number(query.slice(7, 10)), count: null, body: '' });
    }
    await eventually(async () => warnings().length === queries.length);
    expect(await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).toEqual({ used: 0, reserved: 0 });
    expect(await unitsLeft(secret)).toBe(100_000);
    expect(warnings().map((w) => [w.msg, w.header])).toEqual(queries.map(() => ['upstream sent no record count; its answer has no body: charged no records', 'x-record-count']));
  });

  it('charges what the request reserved, not the total, for a 2xx reporting more records than a header could (past 999,999,999,999,999), with overage on', async () => {
    const { secret, accountId } = await keyOn('flexible');
    const usage = async () => ((await (await kg.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: Record<string, Record<string, number>> }).meters.units;
    const reported = async (total: string) => {
      const r = await kg.call(`/v1/backlinks/reported-total?n=40&total=${total}`, { headers: { authorization: `Token ${secret}` } });
      expect(r.status).toBe(200);
      return ((await r.json()) as { meta: { total: number } }).meta.total;
    };
    // The client gets the upstream's answer as it was; the account is charged the 40 reserved.
    expect(await reported('1e20')).toBe(1e20);
    await eventually(async () => (await usage())?.usage === 40);
    expect((await usage())?.usage).toBe(40);
    expect(await reported('1000000000000000')).toBe(1e15);
    await eventually(async () => (await usage())?.usage === 80);
    expect((await usage())?.usage).toBe(80);
    // A total in bounds is charged as counted, past the limit since overage is on.
    expect(await reported('250')).toBe(250);
    await eventually(async () => (await usage())?.usage === 330);
    expect(await usage()).toMatchObject({ usage: 330, limit: 300, remaining: 0, overage: 30 });
    const warned = kg.logs.lines.map((l) => JSON.parse(l) as { msg: string; account?: string; route?: string }).filter((l) => l.account === accountId && l.msg.startsWith('could not count records'));
    expect(warned).toEqual([expect.objectContaining({ route: '/v1/backlinks/reported-total' }), expect.objectContaining({ route: '/v1/backlinks/reported-total' })]);
    expect(warned[0]?.msg).toBe('could not count records in the upstream response; charged the reserved estimate');
  });

  it('counts records in a body the client asked to have compressed (the upstream is asked for it plain)', async () => {
    const { secret } = await keyOn('big');
    const r = await kg.call('/v1/backlinks/records?n=100', { headers: { authorization: `Token ${secret}`, 'accept-encoding': 'gzip' } });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { data: unknown[] }).data).toHaveLength(100);
    expect(await unitsLeft(secret)).toBe(100_000 - 100);
  });

  it('charges HEAD like GET per request, and nothing per record (a HEAD answer delivers none), even at a zero balance', async () => {
    const { secret } = await keyOn('thousand');
    const head = (path: string) => kg.call(path, { method: 'HEAD', headers: { authorization: `Token ${secret}` } });
    const perRecord = ['/v1/backlinks/records?n=37', '/v1/backlinks/count-header?n=3', '/v1/backlinks/records?n=5000'];
    for (const path of perRecord) {
      const r = await head(path);
      expect(r.status).toBe(200);
      expect(await r.text()).toBe('');
    }
    expect(await unitsLeft(secret)).toBe(1000);
    expect((await head('/v1/failing/status/200')).status).toBe(200);
    expect(await unitsLeft(secret)).toBe(900);
    for (let i = 0; i < 9; i++) expect((await call(secret, 'POST', '/v1/domain/overview')).status).toBe(200);
    expect(await unitsLeft(secret)).toBe(0);
    for (const path of perRecord) expect((await head(path)).status).toBe(200);
    expect((await head('/v1/failing/status/200')).status).toBe(400);
  });

  it('forecasts a HEAD as the gateway charges it: the per-request cost, nothing per record', async () => {
    const { secret, accountId } = await keyOn('thousand');
    const calls = [
      { method: 'HEAD', path: '/v1/backlinks/records?n=500', count: 2 },
      { method: 'HEAD', path: '/v1/backlinks/count-header', count: 1 },
      { method: 'HEAD', path: '/v1/failing/status/200', count: 1 },
    ];
    const answer = await kg.admin('/v1/forecast', { method: 'POST', body: JSON.stringify({ calls, accountId }) });
    expect(answer.status).toBe(200);
    const planned = (await answer.json()) as { lines: { units: number }[]; totals: Record<string, number>; covered: boolean };
    expect(planned.lines.map((line) => line.units)).toEqual([0, 0, 100]);
    expect([planned.totals, planned.covered]).toEqual([{ units: 100 }, true]);
    // What the gateway charges for the same calls.
    for (const { method, path, count } of calls) {
      for (let i = 0; i < count; i++) expect((await kg.call(path, { method, headers: { authorization: `Token ${secret}` } })).status).toBe(200);
    }
    expect(await unitsLeft(secret)).toBe(1000 - 100);
  });

  it('reserves what a per-record request asks for, so it cannot outspend the balance', async () => {
    const { secret } = await keyOn('thousand');
    const refused = await call(secret, 'GET', '/v1/backlinks/records?n=1500');
    expect(refused.status).toBe(400);
    expect((await call(secret, 'GET', '/v1/backlinks/records?n=900')).status).toBe(200);
    expect(await unitsLeft(secret)).toBe(100);
  });

  it('reads the count a request asks for as the upstream would, and refuses one it cannot read instead of reserving one record', async () => {
    const { secret } = await keyOn('thousand');
    const message = async (path: string) => {
      const r = await call(secret, 'GET', path);
      return { status: r.status, message: JSON.parse(r.body).error_description as string };
    };
    // Leading zeros are the same number to the upstream, and to keygate.
    expect(await message('/v1/backlinks/records?n=00001500')).toEqual({ status: 400, message: 'Insufficient funds' });
    // Given twice: the largest counts (an upstream may read the last).
    expect(await message('/v1/backlinks/records?n=5&n=1500')).toEqual({ status: 400, message: 'Insufficient funds' });
    // Not a whole number: refused before anything is reserved or forwarded.
    const before = upstream.received.length;
    for (const n of ['1e3', '0x3e8', '%20900', '-1', '9.5']) {
      const refused = await message(`/v1/backlinks/records?n=${n}`);
      // invalid_parameter, with its default message naming the parameter.
      expect(refused).toEqual({ status: 400, message: 'The query parameter n is not valid.' });
    }
    expect(upstream.received.length).toBe(before);
    // Empty or 0 is as absent: the route's reserveRecords (1 here), which the upstream's answer then settles.
    expect((await call(secret, 'GET', '/v1/backlinks/records?n=&x=1')).status).toBe(200);
    expect((await call(secret, 'GET', '/v1/backlinks/records?n=0')).status).toBe(200);
    expect((await call(secret, 'GET', '/v1/backlinks/records?n=0900')).status).toBe(200);
    expect(await unitsLeft(secret)).toBe(100);
  });

  it('forecasts a per-record call by the count its query asks for, as the gateway reserves', async () => {
    const planned = await forecast(kg.runtime, [{ method: 'GET', path: '/v1/backlinks/records?n=10', count: 3 }, { method: 'GET', path: '/v1/backlinks/records', count: 2 }]);
    expect(planned.lines.map((line) => ({ records: line.records, units: line.units }))).toEqual([
      { records: 10, units: 30 },
      { records: 1, units: 2 },
    ]);
    await expect(forecast(kg.runtime, [{ method: 'GET', path: '/v1/backlinks/records?n=1e2', count: 1 }])).rejects.toThrow('calls[0]: n in "/v1/backlinks/records?n=1e2" is not a whole number');
    // On a flat-cost route the count is not read, by the forecast as by the gateway.
    expect((await forecast(kg.runtime, [{ method: 'GET', path: '/v1/reports/flat?n=1e2', count: 2 }])).lines[0]).toMatchObject({ unitsPerCall: 5, units: 10 });
    const { secret } = await keyOn('thousand');
    expect((await call(secret, 'GET', '/v1/reports/flat?n=1e2')).status).toBe(200);
    expect(await unitsLeft(secret)).toBe(995);
  });

  it('charges a per-record answer larger than the balance down to zero and no further when overage is off', async () => {
    const { secret, accountId } = await keyOn('thousand');
    // 15 records at 100 units: 1,500 counted from the answer, which has been served.
    const counted = await kg.call('/v1/backlinks/count-header?n=15', { headers: { authorization: `Token ${secret}` } });
    expect(counted.status).toBe(200);
    await counted.text();
    expect(await eventually(async () => (await unitsLeft(secret)) === 0)).toBe(true);
    const usage = (await (await kg.admin(`/v1/accounts/${accountId}/usage`)).json()) as { meters: Record<string, Record<string, number>> };
    expect(usage.meters.units).toMatchObject({ usage: 1000, limit: 1000, remaining: 0, overage: 0 });
    expect(await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).toEqual({ used: 1000, reserved: 0 });
    const refused = await call(secret, 'POST', '/v1/domain/overview');
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body)).toEqual({ error_description: 'Insufficient funds' });
  });

  it('charges nothing to a client that hangs up before the answer, and stops the upstream request', async () => {
    const { secret, accountId } = await keyOn('thousand');
    const client = new AbortController();
    const call = kg.call('/v1/reports/slow?ms=1500', { headers: { authorization: `Token ${secret}` }, signal: client.signal });
    expect(await eventually(() => upstream.received.some((r) => r.url === '/v1/reports/slow?ms=1500'))).toBe(true);
    // A per-request cost is charged at admission, and given back if no 2xx follows.
    expect(await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).toEqual({ used: 100, reserved: 0 });
    client.abort();
    await expect(call).rejects.toThrow();
    expect(await eventually(() => upstream.abandoned.some((r) => r.url === '/v1/reports/slow?ms=1500'))).toBe(true);
    expect(await kg.runtime.counters.meterBalance(accountId, 'units', '2026-11-01')).toEqual({ used: 0, reserved: 0 });
  });

  it('charges nothing for a response that is not 2xx', async () => {
    const { secret } = await keyOn('thousand');
    for (const code of [404, 500, 429, 301]) {
      expect((await call(secret, 'GET', `/v1/failing/status/${code}`)).status).toBe(code);
    }
    expect(await unitsLeft(secret)).toBe(1000);
    expect((await call(secret, 'GET', '/v1/failing/status/201')).status).toBe(201);
    expect(await unitsLeft(secret)).toBe(900);
  });

  it('counts usage past the limit as overage when the plan or the account allows it', async () => {
    const flexible = await keyOn('flexible');
    for (let i = 0; i < 5; i++) expect((await call(flexible.secret, 'POST', '/v1/domain/overview')).status).toBe(200);
    const usage = (await (await kg.admin(`/v1/accounts/${flexible.accountId}/usage`)).json()) as { meters: Record<string, Record<string, number>> };
    expect(usage.meters.units).toMatchObject({ usage: 500, limit: 300, remaining: 0, overage: 200 });

    const strict = await keyOn('thousand');
    for (let i = 0; i < 10; i++) await call(strict.secret, 'POST', '/v1/domain/overview');
    expect((await call(strict.secret, 'POST', '/v1/domain/overview')).status).toBe(400);
    await updateAccount(kg.runtime, strict.accountId, { overage: true }, 'support');
    expect((await call(strict.secret, 'POST', '/v1/domain/overview')).status).toBe(200);
  });

  it('starts a fresh balance each period: a billing day of the 15th', async () => {
    const { secret } = await keyOn('billing');
    await call(secret, 'POST', '/v1/domain/overview'); // 20 Nov: period 15 Nov–15 Dec
    const before = JSON.parse((await call(secret, 'GET', '/v1/account/subscription')).body).subscription_info;
    expect(before).toEqual({ status: 'active', units_limit: 1000, units_left: 900, expiration_datetime: '2026-12-15' });
    const saved = now.value;
    now.value = Date.parse('2026-12-15T00:00:00Z');
    expect(await unitsLeft(secret)).toBe(1000);
    now.value = saved;
  });
});

describe('balances survive a restart', () => {
  const dir = tempDir('quotas-restart');

  it('keeps committed usage in the SQLite file across a stop and a start', async () => {
    const upstream = await startTestUpstream();
    try {
      const first = await startKeygate(profile(upstream.url), { dir, clock: () => now.value });
      const account = await createAccount(first.runtime, { name: 'a', planId: 'thousand' }, 'test');
      const { secret } = await createKey(first.runtime, { accountId: account.id, name: 'k' }, 'test');
      for (let i = 0; i < 3; i++) {
        const r = await first.call('/v1/domain/overview', { method: 'POST', headers: { authorization: `Token ${secret}` } });
        expect(r.status).toBe(200);
        await r.text();
      }
      await first.close();

      const second = await startKeygate(profile(upstream.url), { dir, clock: () => now.value });
      try {
        const r = await second.call(`/v1/account/subscription?apikey=${secret}`);
        expect(JSON.parse(await r.text()).subscription_info.units_left).toBe(700);
        for (let i = 0; i < 7; i++) await (await second.call('/v1/domain/overview', { method: 'POST', headers: { authorization: `Token ${secret}` } })).text();
        const refused = await second.call('/v1/domain/overview', { method: 'POST', headers: { authorization: `Token ${secret}` } });
        expect(refused.status).toBe(400);
        await refused.text();
      } finally {
        await second.close();
      }
    } finally {
      await upstream.close();
    }
  });

  it('keeps a charge given back after it was written to the file given back (a non-2xx that took longer than a write-back)', async () => {
    const upstream = await startTestUpstream();
    try {
      const first = await startKeygate(profile(upstream.url), { dir: tempDir('quotas-give-back'), clock: () => now.value });
      const account = await createAccount(first.runtime, { name: 'a', planId: 'thousand' }, 'test');
      const { secret } = await createKey(first.runtime, { accountId: account.id, name: 'k' }, 'test');
      const stored = async () => (await first.runtime.store.loadMeterUsage({ accountId: account.id })).map((r) => r.used);
      try {
        const answer = first.call('/v1/reports/held?id=late&status=503', { headers: { authorization: `Token ${secret}` } });
        expect(await eventually(() => upstream.received.some((r) => r.url.includes('id=late')))).toBe(true);
        // The flat cost is charged at admission, and written back while the request waits.
        await first.runtime.flush();
        expect(await stored()).toEqual([100]);
        upstream.release('late');
        const response = await answer;
        expect(response.status).toBe(503);
        await response.text();
        await first.runtime.flush();
        expect(await stored()).toEqual([0]);
      } finally {
        await first.close();
      }
    } finally {
      await upstream.close();
    }
  });
});

describe('an insufficient_funds message with the meter, its limit and its reset day', () => {
  it('fills in {{meter}}, {{limit}} and {{resets}} (the first day of the next period, per plan period)', async () => {
    const upstream = await startTestUpstream();
    const at = Date.parse('2026-11-20T12:00:00Z');
    const kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        errors: { envelope: 'message', reasons: { insufficient_funds: { message: 'The {{meter}} quota ({{ limit }}) is used up; it starts afresh on {{resets}}.' } } },
        plans: { monthly: { meters: { calls: { limit: 1 } } }, billing: { meters: { calls: { limit: 1, period: { billingDay: 15 } } } } },
        routes: [{ method: 'GET', path: '/data', cost: { meter: 'calls', perRequest: 1 } }],
      },
      { dir: tempDir('quota-message'), clock: () => at },
    );
    try {
      for (const [plan, resets] of [['monthly', '2026-12-01'], ['billing', '2026-12-15']]) {
        const account = await createAccount(kg.runtime, { name: plan as string, planId: plan as string }, 'test');
        const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test');
        const get = () => kg.call('/data', { headers: { authorization: `Bearer ${secret}` } });
        expect((await get()).status).toBe(200);
        const refused = await get();
        expect(refused.status).toBe(402);
        expect(await refused.json()).toEqual({ message: `The calls quota (1) is used up; it starts afresh on ${resets}.` });
      }
    } finally {
      await kg.close();
      await upstream.close();
    }
  });
});
