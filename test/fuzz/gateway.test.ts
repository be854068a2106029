/**
 * Property-based fuzzing of the gateway, for each of the five example profiles (their
 * shipped keygate.yaml and upstream.mjs, a real SQLite file, raw bytes over loopback):
 * arbitrary Authorization values, query strings with the profile's key parameters, paths
 * and methods. Whatever is sent, keygate answers (no hang), never with a 5xx while its
 * upstream and store are up (a 5xx here is keygate's own fault: its profile's 5xx are for
 * upstream trouble), every 4xx is an error in the profile's envelope, a valid key mixed
 * into the garbage is never sent back nor logged, nothing is logged as an error, and
 * keygate still serves a good request afterwards.
 *
 * A failure prints fast-check's seed and shrunk counterexample; re-run it with
 * `FUZZ_SEED=<seed> FUZZ_PATH=<path> npx vitest run test/fuzz/gateway.test.ts`
 * (fuzz-settings.ts).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlledClock, startExample, type RunningExample } from '../../examples/support/example.js';
import { envelopeProblem } from './envelope.js';
import { exchange, type RawAnswer, type RawRequest } from './raw-http.js';
import { fuzzSettings } from './fuzz-settings.js';

interface ProfileUnderTest {
  name: string;
  /** The plan the fuzzing account is on (one with API access), and the key's scopes where keys need them. */
  plan?: string;
  scopes?: string[];
  /** A request a good key gets 200 for (a built-in or the upstream's). */
  good: string;
}

const PROFILES: ProfileUnderTest[] = [
  { name: 'ranktracker', good: '/v1/account/usage' },
  { name: 'ranksy', scopes: ['*'], good: '/api/v1/apps' },
  { name: 'seranking-project', good: '/account/balance' },
  { name: 'seranking-data', good: '/v1/account/subscription' },
  { name: 'trakkr', plan: 'scale', good: '/get-brands' },
];

const RUNS = 150;

/** Methods keygate routes, forwards or refuses, in the cases clients send them. */
const KNOWN_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'PROPFIND', 'get', 'Post', 'QUERY', 'PRI', 'M-SEARCH', 'SEARCH'];
/** RFC 9110 tchar: what a method name may hold. */
const TCHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".split('');

/** Any text, CR and LF aside: those end a header line (framing, which test/gateway/bad-input.test.ts covers). */
const anyText = (maxLength: number) => fc.string({ unit: 'binary', maxLength }).map((s) => s.replace(/[\r\n]/g, ''));
const asciiText = (maxLength: number) => fc.string({ unit: 'binary-ascii', maxLength }).map((s) => s.replace(/[\r\n]/g, ''));

describe.each(PROFILES)('fuzzing the gateway of examples/$name', (profile) => {
  const clock = controlledClock();
  let ex: RunningExample;
  let key: string;
  let envelope: Parameters<typeof envelopeProblem>[0];
  let scheme: string | undefined;
  let queryNames: string[];
  let errorLinesBefore = 0;

  beforeAll(async () => {
    ex = await startExample(profile.name, { clock });
    const account = await ex.createAccount('Fuzz', profile.plan);
    key = (await ex.createKey(account.id, 'fuzz', profile.scopes ? { scopes: profile.scopes } : {})).secret;
    const { config } = ex.shipped;
    envelope = config.errors.envelope;
    const header = config.auth.credentials.find((c) => c.in === 'header');
    scheme = header?.in === 'header' && header.scheme.toLowerCase() !== 'none' ? header.scheme : undefined;
    queryNames = config.auth.credentials.flatMap((c) => (c.in === 'query' ? [c.name] : []));
  });

  afterAll(async () => {
    await ex?.close();
  });

  /** The Authorization value that carries the key as the profile asks. */
  const authorization = (secret: string) => (scheme ? `${scheme} ${secret}` : secret);

  /** Every property's checks on one answer; a counterexample's message says which failed. */
  function judge(request: RawRequest, answer: RawAnswer): void {
    const what = `${request.method} ${request.target} → ${answer.head.split('\r\n')[0]}`;
    expect(answer.status, what).toBeGreaterThanOrEqual(100);
    // The upstream and the store are up: a 5xx can only be keygate's own fault.
    expect(answer.status, what).toBeLessThan(500);
    if (answer.status >= 400 && request.method.toUpperCase() !== 'HEAD') {
      expect(envelopeProblem(envelope, answer.status, answer.body), what).toBeUndefined();
    }
    expect(answer.text.includes(key), `${what}: the key came back`).toBe(false);
  }

  /** One request with the clock a second on: rate limits and blocks have passed, so keys get through. */
  async function send(request: RawRequest): Promise<RawAnswer> {
    clock.advance(1_100);
    const answer = await exchange(ex.kg.gatewayUrl, request);
    judge(request, answer);
    return answer;
  }

  /** After each property: nothing logged as an error, the key never logged, and a good request still served. */
  async function stillServing(): Promise<void> {
    const lines = ex.kg.logs.lines;
    const errors = lines.slice(errorLinesBefore).filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
    errorLinesBefore = lines.length;
    expect(errors).toEqual([]);
    expect(ex.kg.logs.text.includes(key)).toBe(false);
    clock.advance(1_100);
    const good = await exchange(ex.kg.gatewayUrl, { method: 'GET', target: profile.good, headers: [['Authorization', authorization(key)]] });
    expect(good.status, good.body).toBe(200);
  }

  /** Text a key is hidden in: before, after, or instead of part of it. */
  const keyInGarbage = () =>
    fc.oneof(
      { weight: 3, arbitrary: fc.constant(key) },
      { weight: 1, arbitrary: fc.tuple(anyText(12), anyText(12)).map(([before, after]) => `${before}${key}${after}`) },
      { weight: 1, arbitrary: fc.tuple(fc.nat(), asciiText(3)).map(([at, text]) => {
        const i = at % key.length;
        return `${key.slice(0, i)}${text}${key.slice(i + 1)}`;
      }) },
      { weight: 1, arbitrary: fc.integer({ min: 2, max: 400 }).map((n) => key.repeat(n)) },
    );

  it('any Authorization value: answered in the envelope, the key never sent back', async () => {
    const schemeWord = fc.constantFrom('', 'Bearer', 'bearer', 'BEARER', 'Token', 'token', 'Basic', 'Bearer,', 'Token:', scheme ?? 'Bearer');
    const space = fc.constantFrom('', ' ', '  ', '\t', ' \t ', '\u00a0', '\u3000');
    const value = fc.oneof(
      { weight: 2, arbitrary: fc.tuple(fc.constantFrom('', ' ', '\t'), keyInGarbage()).map(([s, k]) => `${s}${authorization(k)}${s}`) },
      { weight: 3, arbitrary: fc.tuple(space, schemeWord, space, keyInGarbage(), space).map((parts) => parts.join('')) },
      { weight: 2, arbitrary: anyText(80) },
      { weight: 1, arbitrary: fc.tuple(schemeWord, fc.integer({ min: 1_000, max: 24_000 }), fc.constantFrom('a', 'é', '\u0001', '🔑', ' ')).map(([word, n, c]) => `${word} ${c.repeat(n)}`) },
    );
    const name = fc.constantFrom('Authorization', 'authorization', 'AUTHORIZATION');
    // Mostly one header; none, or two or three (given twice is malformed_key), now and then.
    const headers = fc.oneof({ weight: 4, arbitrary: fc.tuple(name, value).map((h) => [h]) }, { weight: 1, arbitrary: fc.array(fc.tuple(name, value), { maxLength: 3 }) });
    const target = fc.constantFrom(profile.good, profile.good.replace(/\/[^/]*$/, '/nothing-here'));
    await fc.assert(
      fc.asyncProperty(headers, target, async (h, t) => {
        await send({ method: 'GET', target: t, headers: h });
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
    await stillServing();
  });

  it("any query string with the profile's key parameters: answered in the envelope, the key never sent back", async () => {
    const name = fc.oneof(fc.constantFrom(...queryNames, 'apikey', 'token', 'limit', 'key', ''), asciiText(8));
    const value = fc.oneof(keyInGarbage(), anyText(30), fc.constantFrom('', '%', '%zz', '%00', '%0A', '%C3', '%FF%FE', '+', '=', '&', '-1', '1e308', 'NaN'));
    /** How a pair is written: encoded as a browser would, as sent raw, or half of each. */
    const write = fc.constantFrom('encoded', 'raw', 'name-only');
    const pair = fc.tuple(name, value, write).map(([n, v, how]) => {
      if (how === 'name-only') return encodeURIComponent(n);
      if (how === 'raw') return `${n}=${v}`;
      return `${encodeURIComponent(n)}=${encodeURIComponent(v)}`;
    });
    const query = fc.tuple(fc.array(pair, { maxLength: 5 }), fc.constantFrom('&', ';', '&&')).map(([pairs, separator]) => pairs.join(separator));
    const withHeader = fc.boolean();
    await fc.assert(
      fc.asyncProperty(query, withHeader, async (q, header) => {
        // Spaces and other bytes a request line cannot hold go as they are: the parser's 400 must be in the envelope too.
        await send({ method: 'GET', target: `${profile.good}?${q}`, headers: header ? [['Authorization', authorization(key)]] : [] });
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
    await stillServing();
  });

  it('any path (encodings, dot segments, doubled and encoded slashes, unicode), with a good key: never a 5xx', async () => {
    const base = ex.shipped.config.basePath.replace(/\/$/, '');
    const plainSegment = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_~-]{1,12}$/), fc.constantFrom('v1', 'V1', 'apps', 'account', 'usage', 'balance', 'subscription', 'get-brands', 'domains', 'metrics', 'mrr', 'backlinks', 'summary'));
    const oddSegment = fc.oneof(
      fc.constantFrom('', '.', '..', '%2e', '%2E%2E', '.%2e', '%2F', '%2f', '%5C', '\\', '%00', '%', '%zz', '%25', '%252F', '%2561', ';x', 'a;b', '%3B', '?', '#', '%23', '*', '~', '%C2%85', '%E2%80%AE', 'é', '%C3%A9', '🔑', ':id', 'v1', 'V1', 'apps', 'account', 'usage'),
      asciiText(10),
      anyText(10),
      anyText(10).map(encodeURIComponent),
      fc.integer({ min: 500, max: 9_000 }).map((n) => 'x'.repeat(n)),
    );
    const segment = fc.oneof({ weight: 3, arbitrary: plainSegment }, { weight: 1, arbitrary: oddSegment });
    const path = fc.tuple(fc.oneof({ weight: 4, arbitrary: fc.constant(base) }, { weight: 1, arbitrary: fc.constantFrom('', '/', '//', base.toUpperCase(), 'http://127.0.0.1', 'HTTP://[::1]:1', '*', 'a') }), fc.array(segment, { minLength: 1, maxLength: 5 }), fc.constantFrom('', '/', '?', '?x=1', '#frag')).map(
      ([start, segments, end]) => `${start}/${segments.join('/')}${end}`,
    );
    await fc.assert(
      fc.asyncProperty(path, async (p) => {
        await send({ method: 'GET', target: p.replace(/ /g, '%20'), headers: [['Authorization', authorization(key)]] });
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
    await stillServing();
  });

  it('any method, with or without a body and a good key: never a 5xx', async () => {
    const method = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...KNOWN_METHODS) }, fc.array(fc.constantFrom(...TCHARS), { minLength: 1, maxLength: 12 }).map((c) => c.join('')), asciiText(8).filter((m) => m.trim() !== '' && !m.includes(' ')));
    const target = fc.oneof({ weight: 3, arbitrary: fc.constant(profile.good) }, { weight: 1, arbitrary: fc.constantFrom(profile.good.replace(/\/[^/]*$/, '/nothing-here'), `${ex.shipped.config.basePath.replace(/\/$/, '')}/`, '*') });
    const body = fc.option(anyText(100), { nil: undefined });
    await fc.assert(
      fc.asyncProperty(method, target, body, fc.boolean(), async (m, t, b, withKey) => {
        await send({ method: m, target: t, headers: withKey ? [['Authorization', authorization(key)]] : [], ...(b === undefined ? {} : { body: b }) });
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
    await stillServing();
  });
});
