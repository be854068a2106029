/**
 * A key sent where the profile does not read it (`X-API-Key`, `?api_key=`, a `Bearer` in
 * another header): the request is refused `missing_key` exactly as one without any key
 * (the seeds fix that answer), and the log says where the key was sent and where this
 * API reads keys, never the key. Real HTTP on 127.0.0.1, a real SQLite file, the shipped
 * example profiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { rawAll } from '../support/raw-http.js';
import { rawProfile } from '../../examples/support/example.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createKeyFormat } from '../../src/keys/format.js';
import { createAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

type Line = Record<string, unknown>;

/** Sends one request as raw bytes and returns the whole answer, as bytes, but for its `Date` line (the one part that changes between two answers). */
async function rawAnswer(url: string, head: string): Promise<string> {
  return (await rawAll(url, `${head}Connection: close\r\n\r\n`)).replace(/\r\ndate: [^\r]*/i, '');
}

function linesOf(kg: TestKeygate): Line[] {
  return kg.logs.lines.map((text) => JSON.parse(text) as Line);
}

function misplacedLines(kg: TestKeygate): Line[] {
  return linesOf(kg).filter((l) => l.sentIn !== undefined);
}

const EXAMPLES = ['ranktracker', 'ranksy', 'seranking-project', 'seranking-data', 'trakkr'] as const;

/** The places a newcomer puts a key, and what the log names for each. */
const MISPLACED = [
  { head: (key: string) => `X-API-Key: ${key}\r\n`, target: '', sentIn: { in: 'header', name: 'X-API-Key' } },
  { head: (key: string) => `X-Auth-Token: Bearer ${key}\r\n`, target: '', sentIn: { in: 'header', name: 'X-Auth-Token' } },
  { head: (key: string) => `Cookie: theme=dark; api_key=${key}\r\n`, target: '', sentIn: { in: 'cookie', name: 'api_key' } },
  { head: () => '', target: (key: string) => `?page=2&api_key=${key}`, sentIn: { in: 'query', name: 'api_key' } },
  { head: () => '', target: (key: string) => `?k=%20${key}`, sentIn: { in: 'query', name: 'k' } },
  { head: () => '', target: (key: string) => `?page=2&${key}`, sentIn: { in: 'query', name: '' } },
] as const;

describe('a key sent where the profile does not read it', () => {
  let upstream: TestUpstream;
  beforeAll(async () => {
    upstream = await startTestUpstream();
  });
  afterAll(async () => {
    await upstream?.close();
  });

  it.each(EXAMPLES)('%s: refused as a request without a key, byte for byte; one log line names where it was sent and where keys are read, never the key', async (name) => {
    const raw = rawProfile(name);
    const { spawn: _spawn, ...upstreamConfig } = raw.upstream as Record<string, unknown>;
    const dir = tempDir(`misplaced-${name}`);
    const kg = await startKeygate({ ...raw, store: `sqlite:${dir}/keygate.db`, upstream: { ...upstreamConfig, url: upstream.url }, log: { requests: true } } as ConfigInput, { dir });
    try {
      const basePath = kg.runtime.config.basePath.replace(/\/$/, '');
      const key = createKeyFormat(kg.runtime.config.keys).generate('live');
      const without = await rawAnswer(kg.gatewayUrl, `GET ${basePath}/anything HTTP/1.1\r\nHost: x\r\n`);
      expect(without).toMatch(/^HTTP\/1\.1 4\d\d /);
      expect(misplacedLines(kg)).toEqual([]);

      const readFrom = kg.runtime.config.auth.credentials;
      for (const place of MISPLACED) {
        const target = typeof place.target === 'string' ? place.target : place.target(key);
        const answer = await rawAnswer(kg.gatewayUrl, `GET ${basePath}/anything${target} HTTP/1.1\r\nHost: x\r\n${place.head(key)}`);
        expect(answer, place.sentIn.name).toBe(without);
      }
      const lines = misplacedLines(kg);
      expect(lines.map((l) => l.sentIn)).toEqual(MISPLACED.map((p) => p.sentIn));
      for (const line of lines) {
        expect(line).toMatchObject({ level: 30, component: 'gateway', client: '127.0.0.1', readFrom: JSON.parse(JSON.stringify(readFrom)) });
        const { name } = line.sentIn as { name: string };
        expect(line.msg).toContain(name === '' ? 'a key was sent in a query parameter without a name (?<key>)' : name);
        expect(line.msg).toContain(readFrom[0]?.name);
      }
      // Each request's own line joins it by reqId; neither holds the key, nor any of the log.
      const requests = linesOf(kg).filter((l) => l.msg === 'request');
      expect(lines.map((l) => l.reqId)).toEqual(requests.slice(1).map((r) => r.reqId));
      expect(requests.map((r) => r.reason)).toEqual(Array(1 + MISPLACED.length).fill('missing_key'));
      const body = key.replace(/^[a-z]+_[a-z]+_/, '');
      expect(kg.logs.text).not.toContain(body);
      expect(kg.logs.text).not.toContain(body.slice(4, -4));
    } finally {
      await kg.close();
    }
  });

  const PROFILE = {
    keys: { prefix: { live: 'sk_live_', test: 'sk_test_' } },
    auth: { credentials: [{ in: 'header' as const, name: 'Authorization', scheme: 'Token' }, { in: 'query' as const, name: 'token' }] },
    errors: { envelope: 'message' as const },
    scopes: ['read'],
  };

  it('says nothing for a request that is admitted, or refused for another reason than a missing key, with a key elsewhere too', async () => {
    const dir = tempDir('misplaced-other');
    const kg = await startKeygate({ ...PROFILE, upstream: { url: upstream.url } }, { dir });
    try {
      const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
      const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live', scopes: ['*'] }, 'test');
      const admitted = await kg.call('/v1/x', { headers: { Authorization: `Token ${secret}`, 'X-API-Key': secret } });
      expect(admitted.status).toBe(200);
      await admitted.text();
      // Another scheme in the header the profile reads is malformed_key (docs/authentication.md), not missing.
      for (const headers of [{ Authorization: `Bearer ${secret}`, 'X-API-Key': secret }, { Authorization: 'Token sk_live_short', 'X-API-Key': secret }]) {
        const refused = await kg.call('/v1/x', { headers });
        expect(refused.status).toBe(401);
        await refused.text();
      }
      expect(misplacedLines(kg)).toEqual([]);
      expect(linesOf(kg).filter((l) => l.msg === 'request').map((l) => l.reason)).toEqual([undefined, 'malformed_key', 'malformed_key']);
    } finally {
      await kg.close();
    }
  });

  it('looks at the first 64 headers and query parameters only, and at values no longer than a key (a scheme word before it allowed)', async () => {
    const dir = tempDir('misplaced-bounds');
    const kg = await startKeygate({ ...PROFILE, upstream: { url: upstream.url } }, { dir });
    try {
      const key = createKeyFormat(kg.runtime.config.keys).generate('live');
      const filler = Array.from({ length: 70 }, (_, i) => `X-Filler-${i}: ${i}\r\n`).join('');
      const params = Array.from({ length: 70 }, (_, i) => `p${i}=${i}`).join('&');
      const refusals = [
        await rawAnswer(kg.gatewayUrl, `GET /v1/x HTTP/1.1\r\nHost: x\r\n${filler}X-Late: ${key}\r\n`),
        await rawAnswer(kg.gatewayUrl, `GET /v1/x?${params}&late=${key} HTTP/1.1\r\nHost: x\r\n`),
        // A key with a scheme word and a run of spaces before it, or twenty blanks (`+`), is past the length looked at.
        await rawAnswer(kg.gatewayUrl, `GET /v1/x?long=${'+'.repeat(20)}${key} HTTP/1.1\r\nHost: x\r\nX-Long: Bearer${' '.repeat(20)}${key}\r\n`),
      ];
      for (const answer of refusals) expect(answer).toMatch(/^HTTP\/1\.1 401 /);
      expect(misplacedLines(kg)).toEqual([]);
      // Within the bounds, a key is found: the 64th header (Host is the first), a parameter's value without its blanks.
      const within = Array.from({ length: 62 }, (_, i) => `X-Filler-${i}: ${i}\r\n`).join('');
      await rawAnswer(kg.gatewayUrl, `GET /v1/x HTTP/1.1\r\nHost: x\r\n${within}x-lAtE: ${key}\r\n`);
      expect(misplacedLines(kg).map((l) => l.sentIn)).toEqual([{ in: 'header', name: 'x-lAtE' }]);
    } finally {
      await kg.close();
    }
  });

  it('with bare hex keys, says nothing of a request id, trace id, entity tag or session cookie of their shape; names a header or cookie meant for a key', async () => {
    const dir = tempDir('misplaced-hex-ids');
    const kg = await startKeygate({ ...PROFILE, keys: { format: 'hex', hexLength: 40 }, upstream: { url: upstream.url } }, { dir });
    try {
      const sha1 = createKeyFormat(kg.runtime.config.keys).generate('live');
      const ids = `X-Request-Id: ${sha1}\r\nX-Correlation-Id: ${sha1}\r\nIf-None-Match: ${sha1}\r\nX-B3-TraceId: ${sha1}\r\nCookie: sid=${sha1}\r\n`;
      const plain = await rawAnswer(kg.gatewayUrl, `GET /v1/x HTTP/1.1\r\nHost: x\r\n${ids}`);
      expect(plain).toMatch(/^HTTP\/1\.1 401 /);
      expect(misplacedLines(kg)).toEqual([]);
      await rawAnswer(kg.gatewayUrl, `GET /v1/x HTTP/1.1\r\nHost: x\r\n${ids}X-API-Key: ${sha1}\r\n`);
      await rawAnswer(kg.gatewayUrl, `GET /v1/x HTTP/1.1\r\nHost: x\r\n${ids}Cookie: api_key=${sha1}\r\n`);
      expect(misplacedLines(kg).map((l) => l.sentIn)).toEqual([
        { in: 'header', name: 'X-API-Key' },
        { in: 'cookie', name: 'api_key' },
      ]);
    } finally {
      await kg.close();
    }
  });

  it("a key in a query parameter the profile does not read is hidden from the request line, also for bare hex and imported keys without a prefix", async () => {
    const profiles: ConfigInput[] = [
      { ...PROFILE },
      { ...PROFILE, keys: { format: 'hex', hexLength: 40 } },
      { ...PROFILE, keys: { prefix: { live: 'sk_live_' }, imported: { prefix: {}, alphabet: 'base64url', length: 32 } } },
    ];
    for (const profile of profiles) {
      const dir = tempDir('misplaced-redacted');
      const kg = await startKeygate({ ...profile, upstream: { url: upstream.url } }, { dir });
      try {
        const imported = 'Ab-_0123456789abcdefghijKLMNOPQR';
        const key = profile.keys && 'imported' in profile.keys ? imported : createKeyFormat(kg.runtime.config.keys).generate('live');
        for (const target of [`/v1/x?q=1&key=${key}`, `/v1/x?q=1&userKey=${encodeURIComponent(key)}&page=2`]) {
          const answer = await kg.call(target);
          expect(answer.status).toBe(401);
          await answer.text();
        }
        expect(misplacedLines(kg).map((l) => l.sentIn)).toEqual([{ in: 'query', name: 'key' }, { in: 'query', name: 'userKey' }]);
        const targets = linesOf(kg).filter((l) => l.msg === 'request').map((l) => l.target as string);
        expect(targets).toHaveLength(2);
        for (const target of targets) expect(target).toMatch(/^\/v1\/x\?q=1&(key|userKey)=[^&]*\[REDACTED\]/);
        expect(kg.logs.text).not.toContain(key.slice(-20));
      } finally {
        await kg.close();
      }
    }
  });
});

describe('a key sent in the header the profile reads, under another scheme', () => {
  let upstream: TestUpstream;
  beforeAll(async () => {
    upstream = await startTestUpstream();
  });
  afterAll(async () => {
    await upstream?.close();
  });

  const underOtherScheme = (kg: TestKeygate) => linesOf(kg).filter((l) => l.sentAs !== undefined);

  it('is refused malformed_key as before; one log line names the scheme sent and where keys are read, never the key, and none for a value that is no key', async () => {
    const dir = tempDir('other-scheme');
    const credentials = [{ in: 'header' as const, name: 'Authorization', scheme: 'Bearer' }, { in: 'query' as const, name: 'api_key' }];
    const kg = await startKeygate({ keys: { prefix: { live: 'sk_live_' } }, auth: { credentials }, errors: { envelope: 'problem' }, upstream: { url: upstream.url }, log: { requests: true } }, { dir });
    try {
      const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
      const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live' }, 'test');
      const answers = [];
      for (const authorization of [`Token ${secret}`, secret, 'Token sk_live_short', `Bearer ${secret}x`]) {
        const refused = await kg.call('/v1/x', { headers: { Authorization: authorization } });
        answers.push([refused.status, (await refused.json()).code]);
      }
      expect(answers).toEqual([[401, 'invalid_key'], [401, 'invalid_key'], [401, 'invalid_key'], [401, 'invalid_key']]);
      const lines = underOtherScheme(kg);
      expect(lines.map((l) => l.sentAs)).toEqual([
        { in: 'header', name: 'Authorization', scheme: 'Token' },
        { in: 'header', name: 'Authorization', scheme: '' },
      ]);
      expect(lines.map((l) => l.msg)).toEqual([
        'malformed_key: a key was sent in the header Authorization after the scheme Token; this API reads keys from Authorization: Bearer <key>, or ?api_key=<key>',
        'malformed_key: a key was sent bare (no scheme) in the header Authorization; this API reads keys from Authorization: Bearer <key>, or ?api_key=<key>',
      ]);
      const requests = linesOf(kg).filter((l) => l.msg === 'request');
      expect(lines.map((l) => l.reqId)).toEqual(requests.slice(0, 2).map((r) => r.reqId));
      expect(kg.logs.text).not.toContain(secret.slice(8));
    } finally {
      await kg.close();
    }
  });

  it('a key in quotes under the right scheme (pasted from a .env or JSON file): refused malformed_key as before; the log line says it came in quotes, never the key', async () => {
    const dir = tempDir('quoted-key');
    const kg = await startKeygate({ keys: { prefix: { live: 'sk_live_' } }, errors: { envelope: 'error' }, upstream: { url: upstream.url }, log: { requests: true } }, { dir });
    try {
      const account = await createAccount(kg.runtime, { name: 'Acme' }, 'test');
      const { secret } = await createKey(kg.runtime, { accountId: account.id, name: 'k', mode: 'live' }, 'test');
      const answers = [];
      // Values that are no key in quotes first (no line), then the key in quotes (one line).
      for (const authorization of [`Bearer "${secret}x"`, `Bearer "${secret}'`, `Bearer "${secret}"`]) {
        const refused = await kg.call('/v1/x', { headers: { Authorization: authorization } });
        answers.push([refused.status, await refused.json()]);
      }
      expect(answers).toEqual(Array(3).fill([401, { error: 'Invalid API key.' }]));
      expect(underOtherScheme(kg).map((l) => [l.sentAs, l.msg])).toEqual([
        [{ in: 'header', name: 'Authorization', scheme: 'Bearer', quoted: true }, 'malformed_key: a key was sent in quotes in the header Authorization after the scheme Bearer; this API reads keys from Authorization: Bearer <key>, without quotes'],
      ]);
      expect(kg.logs.text).not.toContain(secret.slice(8));
    } finally {
      await kg.close();
    }
  });

  it('where the key goes bare, names the scheme word sent before it', async () => {
    const dir = tempDir('other-scheme-bare');
    const kg = await startKeygate({ ...rawProfile('ranktracker'), store: `sqlite:${dir}/keygate.db`, upstream: { url: upstream.url }, log: { requests: true } } as ConfigInput, { dir });
    try {
      const key = createKeyFormat(kg.runtime.config.keys).generate('live');
      const refused = await kg.call('/v1/projects', { headers: { Authorization: `Bearer ${key}` } });
      expect(refused.status).toBe(401);
      await refused.text();
      expect(underOtherScheme(kg).map((l) => [l.sentAs, l.msg])).toEqual([
        [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }, 'malformed_key: a key was sent in the header Authorization after the scheme Bearer; this API reads keys from Authorization: <key>'],
      ]);
      expect(kg.logs.text).not.toContain(key.slice(-20));
    } finally {
      await kg.close();
    }
  });
});
