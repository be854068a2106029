/**
 * The access log's line per request, written by keygate's own log and by a logger the
 * application gives (`serve(..., { log })`, as a library user would).
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, LogCapture, startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

const PROFILE = {
  keys: { prefix: { live: 'sk_live_', test: 'sk_test_' } },
  auth: { credentials: [{ in: 'header' as const, name: 'Authorization', scheme: 'Bearer' }, { in: 'query' as const, name: 'token' }] },
  errors: { envelope: 'message' as const },
  scopes: ['read'],
};

type Line = Record<string, unknown>;

async function keyOf(kg: TestKeygate): Promise<{ secret: string; accountId: string; keyId: string }> {
  const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
  const issued = await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: ['*'] }, 'test');
  return { secret: issued.secret, accountId: account.id, keyId: issued.key.id };
}

describe('request log lines', () => {
  let upstream: TestUpstream;
  beforeAll(async () => {
    upstream = await startTestUpstream();
  });
  afterAll(async () => {
    await upstream?.close();
  });

  it("keygate's own log: every field of the line, the key in the query replaced, nothing of it anywhere", async () => {
    const kg = await startKeygate({ ...PROFILE, upstream: { url: upstream.url } }, { dir: tempDir('request-log-own') });
    try {
      const { secret, accountId, keyId } = await keyOf(kg);
      const response = await kg.call(`/sites?q=1&token=${secret}`);
      expect(response.status).toBe(200);
      await response.text();
      const line = kg.logs.lines.map((text) => JSON.parse(text) as Line).findLast((l) => l.msg === 'request');
      expect(line).toMatchObject({
        level: 30,
        name: 'keygate',
        component: 'gateway',
        client: '127.0.0.1',
        method: 'GET',
        target: '/sites?q=1&token=[REDACTED]',
        status: 200,
        outcome: 'forwarded',
        key: keyId,
        account: accountId,
      });
      expect(typeof line?.ms).toBe('number');
      expect(kg.logs.text).not.toContain(secret);
    } finally {
      await kg.close();
    }
  });

  it('a key in a path segment is forwarded as sent, and in no line of the log: request lines, and the warning and line of an upstream that is down', async () => {
    for (const keys of [PROFILE.keys, { format: 'hex' as const, hexLength: 40 }]) {
      const kg = await startKeygate({ ...PROFILE, keys, upstream: { url: upstream.url } }, { dir: tempDir('request-log-path') });
      const down = await startKeygate({ ...PROFILE, keys, upstream: { url: 'http://127.0.0.1:1' } }, { dir: tempDir('request-log-path-down') });
      try {
        const { secret } = await keyOf(kg);
        const paths = [`/v1/data/${secret}`, `/v1/data/key:${secret}.json`, `/v1/data/${secret.replaceAll('_', '%5F')}/x`, `/v1/data/0${secret}?page=2`];
        for (const path of paths) {
          const response = await kg.call(path, { headers: { Authorization: `Bearer ${secret}` } });
          expect(response.status).toBe(200);
          expect(((await response.json()) as { url: string }).url).toBe(path);
        }
        const other = (await keyOf(down)).secret;
        const failed = await down.call(`/v1/data/${other}`, { headers: { Authorization: `Bearer ${other}` } });
        expect(failed.status).toBe(502);
        await failed.text();
        const targets = kg.logs.lines.map((text) => JSON.parse(text) as Line).filter((l) => l.msg === 'request').map((l) => l.target);
        expect(targets).toHaveLength(paths.length);
        expect(down.logs.lines.map((text) => JSON.parse(text) as Line).map((l) => l.msg)).toEqual(expect.arrayContaining(['upstream request failed', 'request']));
        for (const [logs, key] of [[kg.logs.text, secret], [down.logs.text, other]] as const) {
          const body = keys === PROFILE.keys ? key.slice('sk_live_'.length) : key;
          expect(logs).not.toContain(body);
          expect(logs.replaceAll('%5F', '_')).not.toContain(body.slice(4, -4));
        }
      } finally {
        await kg.close();
        await down.close();
      }
    }
  });

  it("an API's own secrets in the query (password, token, signature, names the profile adds) are [REDACTED] in request lines and forwarded as sent", async () => {
    const profile = { ...PROFILE, auth: { credentials: [{ in: 'header' as const, name: 'Authorization', scheme: 'Bearer' }] }, upstream: { url: upstream.url }, log: { redactQuery: ['OTP'] } };
    const kg = await startKeygate(profile, { dir: tempDir('request-log-query-secrets') });
    const down = await startKeygate({ ...profile, upstream: { url: 'http://127.0.0.1:1' } }, { dir: tempDir('request-log-query-secrets-down') });
    try {
      const { secret } = await keyOf(kg);
      const query = '?q=1&password=hunter2hunter2&access_token=abcdefABCDEF0123456789xyzXYZ&X-Amz-Signature=0f9e8d7c6b5a&sig=SIGvalue9&otp=774411&author=ann';
      const sent = await kg.call(`/v1/a${query}`, { headers: { Authorization: `Bearer ${secret}` } });
      expect(sent.status).toBe(200);
      expect(((await sent.json()) as { url: string }).url).toBe(`/v1/a${query}`);
      // A name percent-escaped, a value split by `;`, and a request refused for want of a key.
      const refused = await kg.call('/v1/a?pass%77ord=escaped1secret;more2secret&Api-Key=apikeyvalue3');
      expect(refused.status).toBe(401);
      await refused.text();
      const other = (await keyOf(down)).secret;
      const failed = await down.call('/v1/a?client_secret=downsecret4', { headers: { Authorization: `Bearer ${other}` } });
      expect(failed.status).toBe(502);
      await failed.text();
      const targets = (logs: LogCapture) => logs.lines.map((text) => JSON.parse(text) as Line).filter((l) => l.msg === 'request').map((l) => l.target);
      expect(targets(kg.logs)).toEqual([
        '/v1/a?q=1&password=[REDACTED]&access_token=[REDACTED]&X-Amz-Signature=[REDACTED]&sig=[REDACTED]&otp=[REDACTED]&author=ann',
        '/v1/a?pass%77ord=[REDACTED]&Api-Key=[REDACTED]',
      ]);
      expect(targets(down.logs)).toEqual(['/v1/a?client_secret=[REDACTED]']);
      for (const value of ['hunter2hunter2', 'abcdefABCDEF0123456789xyzXYZ', '0f9e8d7c6b5a', 'SIGvalue9', '774411', 'escaped1secret', 'more2secret', 'apikeyvalue3']) expect(kg.logs.text).not.toContain(value);
      expect(down.logs.text).not.toContain('downsecret4');
    } finally {
      await kg.close();
      await down.close();
    }
  });

  it("the admin API's tokens put in a gateway request's address (a value, a path segment, %-escaped) are [REDACTED] in its request lines", async () => {
    const readToken = 'test-read-token-9876543210';
    const kg = await startKeygate({ ...PROFILE, upstream: { url: upstream.url } }, { dir: tempDir('request-log-admin-token'), adminReadToken: readToken });
    try {
      const { secret } = await keyOf(kg);
      const escaped = ADMIN_TOKEN.replaceAll('-', '%2D');
      for (const target of [`/v1/a?q=${ADMIN_TOKEN}`, `/v1/${readToken}/b`, `/v1/a?x=${escaped}`]) {
        const response = await kg.call(target, { headers: { Authorization: `Bearer ${secret}` } });
        expect(response.status).toBe(200);
        await response.text();
      }
      const targets = kg.logs.lines.map((text) => JSON.parse(text) as Line).filter((l) => l.msg === 'request').map((l) => l.target);
      expect(targets).toEqual(['/v1/a?q=[REDACTED]', '/v1/[REDACTED]/b', '/v1/a?x=[REDACTED]']);
      expect(kg.logs.text).not.toContain(ADMIN_TOKEN);
      expect(kg.logs.text).not.toContain(escaped);
      expect(kg.logs.text).not.toContain(readToken);
    } finally {
      await kg.close();
    }
  });

  it('log.redactQuery changed by a reload applies to the next request line', async () => {
    const dir = tempDir('request-log-query-reload');
    const kg = await startKeygate({ ...PROFILE, upstream: { url: upstream.url } }, { dir });
    try {
      const { secret } = await keyOf(kg);
      const call = async () => (await kg.call('/v1/a?pin=4321&q=1', { headers: { Authorization: `Bearer ${secret}` } })).text();
      await call();
      expect(await kg.reload({ config: { ...kg.runtime.config, log: { ...kg.runtime.config.log, redactQuery: ['pin'] } }, file: 'test profile', dir })).toEqual(['log.redactQuery']);
      await call();
      const targets = kg.logs.lines.map((text) => JSON.parse(text) as Line).filter((l) => l.msg === 'request').map((l) => l.target);
      expect(targets).toEqual(['/v1/a?pin=4321&q=1', '/v1/a?pin=[REDACTED]&q=1']);
    } finally {
      await kg.close();
    }
  });

  it("a logger the application gives keeps its own redaction paths for request lines (here: the client's address)", async () => {
    const capture = new LogCapture();
    const log = pino({ level: 'info', redact: { paths: ['client'], censor: '[hidden]' } }, capture);
    const kg = await startKeygate({ ...PROFILE, upstream: { url: upstream.url } }, { dir: tempDir('request-log-caller'), log });
    try {
      const { secret, keyId } = await keyOf(kg);
      const response = await kg.call('/sites?case=caller', { headers: { Authorization: `Bearer ${secret}` } });
      expect(response.status).toBe(200);
      await response.text();
      const line = capture.lines.map((text) => JSON.parse(text) as Line).findLast((l) => l.msg === 'request');
      expect(line).toMatchObject({ component: 'gateway', client: '[hidden]', target: '/sites?case=caller', status: 200, key: keyId });
      expect(capture.text).not.toContain(secret);
    } finally {
      await kg.close();
    }
  });
});
