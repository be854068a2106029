/**
 * A profile whose API answers errors in its own shape (`{"fault":{"kind","text"}}`, none
 * of the six fixed envelopes) gets every error in that shape, over real HTTP against a
 * real SQLite file: denials, the answers decided before any key is read (414), a built-in
 * endpoint's refusals, and the library's check.
 */
import path from 'node:path';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogCapture, startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';
import { createKeygate, parseConfigObject, type Keygate } from '../../src/index.js';
import { createLog } from '../../src/log.js';

const FAULT_TYPE = 'application/vnd.fault+json';
/** A message with quotes and a backslash: the body must still be JSON, and say it as written. */
const MISSING = 'Send your key as "Authorization: Bearer <key>" (not C:\\key.txt).';

const errors: ConfigInput['errors'] = {
  envelope: 'template',
  contentType: FAULT_TYPE,
  template: { fault: { kind: '{{code}}', text: '{{message}}', status: '{{status}}', reason: '{{reason}}', retry: '{{retryAfter}}' }, ref: 'E{{status}}' },
  reasons: { missing_key: { message: MISSING } },
};

function fault(status: number, kind: string, text: string, reason: string, retry: number | null = null) {
  return { fault: { kind, text, status, reason, retry }, ref: `E${status}` };
}

/** Sends raw bytes and returns the status, head and body of the answer. */
function raw(url: string, bytes: string): Promise<{ status: number; head: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    socket.setTimeout(5_000, () => reject(new Error('no answer within 5 s')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', ...rest] = Buffer.concat(chunks).toString('utf8').split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), head, body: rest.join('\r\n\r\n') });
    });
    socket.write(bytes);
  });
}

describe('errors in the template envelope, over HTTP', () => {
  const dir = tempDir('template-envelope');
  let upstream: TestUpstream;
  let kg: TestKeygate;
  let secret: string;
  let tight: string;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        basePath: '/v1',
        keys: { prefix: { live: 'kg_live_' } },
        errors,
        plans: { open: {}, tight: { rateLimits: [{ limit: 1, window: '1h' }] } },
        defaultPlan: 'open',
        routes: [{ method: 'GET', path: '/v1/read' }],
        builtins: [{ path: '/v1/account', body: { account: '{{account.name}}' } }],
      },
      { dir },
    );
    const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
    secret = (await createKey(kg.runtime, { accountId: account.id, name: 'k' }, 'test')).secret;
    const limited = await createAccount(kg.runtime, { name: 'Tight', planId: 'tight' }, 'test');
    tight = (await createKey(kg.runtime, { accountId: limited.id, name: 't' }, 'test')).secret;
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  const call = (p: string, key?: string) => kg.call(p, key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } });

  async function expectFault(response: Response, expected: ReturnType<typeof fault>) {
    const text = await response.text();
    expect(response.status, text).toBe(expected.fault.status);
    expect(response.headers.get('content-type')).toBe(FAULT_TYPE);
    expect(JSON.parse(text)).toEqual(expected);
    return response;
  }

  it('admits a good key (the baseline)', async () => {
    expect((await call('/v1/read', secret)).status).toBe(200);
  });

  it('a missing key: 401 in the fault shape, its quoted message intact, with the challenge', async () => {
    const r = await expectFault(await call('/v1/read'), fault(401, 'missing_key', MISSING, 'missing_key'));
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="api"');
  });

  it('an unknown key: 401 invalid_key, the typed reason telling it from a malformed one', async () => {
    await expectFault(await call('/v1/read', kg.runtime.keyFormat.generate('live')), fault(401, 'invalid_key', 'Invalid API key.', 'unknown_key'));
    await expectFault(await call('/v1/read', 'kg_live_nonsense'), fault(401, 'invalid_key', 'Invalid API key.', 'malformed_key'));
  });

  it('no route: 404 not_found, under the base path and outside it', async () => {
    await expectFault(await call('/v1/nothing-here', secret), fault(404, 'not_found', 'No such endpoint.', 'no_route'));
    await expectFault(await call('/elsewhere', secret), fault(404, 'not_found', 'No such endpoint.', 'no_route'));
  });

  it('rate_limited: the body says the wait the Retry-After header does', async () => {
    expect((await call('/v1/read', tight)).status).toBe(200);
    const r = await expectFault(await call('/v1/read', tight), fault(429, 'rate_limited', 'Too many requests. Slow down.', 'rate_limited', 3600));
    expect(r.headers.get('retry-after')).toBe('3600');
  });

  it('a URL too long for the head limit: 414 in the fault shape, before any key is read', async () => {
    const r = await raw(kg.gatewayUrl, `GET /v1/read?q=${'a'.repeat(20 * 1024)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(r.status).toBe(414);
    expect(r.head.toLowerCase()).toContain(`content-type: ${FAULT_TYPE}`);
    expect(JSON.parse(r.body)).toEqual(fault(414, 'uri_too_long', 'The request URL is too long.', 'uri_too_long'));
  });

  it("a built-in endpoint refuses in the fault shape too, and answers in its own", async () => {
    await expectFault(await call('/v1/account'), fault(401, 'missing_key', MISSING, 'missing_key'));
    const served = await call('/v1/account', secret);
    expect([served.status, await served.json()]).toEqual([200, { account: 'Acme' }]);
  });
});

describe("errors in the template envelope, from the library's check", () => {
  const dir = tempDir('template-envelope-library');
  let gate: Keygate;

  beforeAll(async () => {
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}`, errors });
    gate = await createKeygate({ config, file: 'inline', dir }, { log: createLog({ level: 'info', destination: new LogCapture() }) });
  });

  afterAll(async () => {
    await gate?.close();
  });

  it('a missing key is refused with the template body, status and content type', async () => {
    const result = await gate.check({ method: 'GET', url: '/anything', headers: {} });
    expect(result.allowed).toBe(false);
    if (result.allowed) return;
    expect(result.error.status).toBe(401);
    expect(result.error.headers['content-type']).toBe(FAULT_TYPE);
    expect(JSON.parse(result.error.body)).toEqual(fault(401, 'missing_key', MISSING, 'missing_key'));
  });
});
