/**
 * The one schema for keygate.yaml. It validates the file at start-up, gives every other
 * module its TypeScript types (`Config`, `Plan`, `Route`, ...) and is exported as JSON
 * Schema for editors (`keygate schema`). Every field is optional: all but `upstream.url`
 * have a default, and that one only `keygate serve` needs, to run the gateway (the library,
 * and a profile with `gateway: false`, forward nothing).
 */
import { describeListenHost, hostsOverlap } from './listen-hosts.js';
import { isAddressRange } from '../gateway/trusted-proxies.js';
import { IDENTITY_FIELDS, identityHeaderNames, type IdentityField } from '../gateway/identity-headers.js';
import { OVERRIDES_REQUEST } from '../gateway/overriding-headers.js';
import { profileRouteTable, ROUTE_METHODS, RouteTableError } from '../routes/route-table.js';
import { z } from 'zod';
import { DENIAL_REASONS, MESSAGE_PLACEHOLDER, MESSAGE_PLACEHOLDERS, placeholderName, type DenialReason } from '../denial/reasons.js';
import { DAY_MS, DURATION_PATTERN, parseDuration } from './duration.js';
import { templateProblems } from '../gateway/template.js';
import { ERROR_TEMPLATE_FIELDS, errorTemplateProblems } from '../dialect/error-template.js';
import { didYouMean } from './closest-name.js';
import { importedLengthRange } from '../keys/format.js';
import { repeatedWindow, repeatedWindowWhy } from '../limits/repeated-windows.js';
import { MAX_AMOUNT, tooLarge } from './amounts.js';
import { EACH, unsoundRead, whenSound, withReads, type FieldPath } from './sound-fields.js';

const MAX_DURATION_DAYS = 36_500;
const MAX_DURATION_MS = MAX_DURATION_DAYS * DAY_MS;

const DURATION_WORDS = 'a duration such as "500ms", "1s", "10m", "24h" or "7d"';
const TOO_LONG = `a duration of at most ${MAX_DURATION_DAYS}d (100 years)`;

/**
 * Why a value that is neither a duration's text nor a whole number of milliseconds is
 * refused, in keygate's words rather than zod's "Invalid input": a fraction of a
 * millisecond (1.5), a number too large for a double (1e400, read as Infinity), `true`, a list.
 */
export function notADuration(input: unknown): string {
  if (typeof input !== 'number') return DURATION_WORDS;
  if (input === Number.POSITIVE_INFINITY) return TOO_LONG;
  return input < 0 ? 'a duration, not a negative number' : `${DURATION_WORDS}, or a whole number of milliseconds`;
}

/** `10m`, `1s`, `24h`, `7d` or a number of milliseconds; parsed to milliseconds. */
const duration = z
  .union(
    [
      z.string().regex(DURATION_PATTERN, DURATION_WORDS),
      // A bare number is milliseconds; one under a second was almost surely meant as seconds
      // (`window: 60` would limit nothing), so it must say its unit.
      z
        .number()
        .int()
        .nonnegative('a duration, not a negative number')
        .refine((ms) => !(ms >= 1 && ms < 1000), { error: (issue) => `a bare number is milliseconds: ${String(issue.input)} would be ${String(issue.input)} ms; write "${String(issue.input)}s" (or "${String(issue.input)}ms" if that is meant)` })
        // The refinement above is no JSON Schema of its own: said here, an editor refuses `60` as keygate does.
        .meta({ not: { minimum: 1, maximum: 999 } }),
    ],
    { error: (issue) => (issue.code === 'invalid_union' ? notADuration(issue.input) : undefined) },
  )
  // Past 2^53 ms parseDuration has no answer: too long too.
  .transform((value) => parseDuration(value) ?? Number.POSITIVE_INFINITY)
  // Longer would put a block's end or a window's start where no date can be shown (Retry-After of 100,000,000 days).
  .refine((ms) => ms <= MAX_DURATION_MS, TOO_LONG);

const positiveDuration = duration.refine((ms) => ms > 0, 'a duration longer than zero');
/** A duration a timer waits for: Node's timers hold at most 2^31 - 1 ms (a longer one fires at once). */
const timerDuration = (max: string, maxMs: number) => duration.refine((ms) => ms <= maxMs, `a duration of at most ${max}`);
const HOUR_MS = 3_600_000;

/** The most bytes of log lines kept for standard output while its reader does not read, by default (`log.bufferSize`). */
export const LOG_BUFFER_BYTES = 16 * 1024 * 1024;
const LOG_BUFFER_MIN_BYTES = 64 * 1024;
const LOG_BUFFER_MAX_BYTES = 1024 * 1024 * 1024;

/**
 * The gateway's default limit on a request's head: 1 KB under Node's 16 KB, so that what
 * keygate adds on the way up (identity and X-Forwarded headers, ~250 bytes with a few
 * scopes; a key with hundreds of scopes takes more) does not take a request it admitted
 * over a Node upstream's own limit, whose 431 has no body and is in no API's envelope.
 */
export const GATEWAY_MAX_HEADER_SIZE = 15 * 1024;
/** Node's own limit, kept by the admin API and the dashboard. */
const NODE_MAX_HEADER_SIZE = 16 * 1024;

/** Where a listener listens; each field has a default (the port and head limit: each listener its own). */
const listen = (port: number, maxHeaderSize: number) =>
  z
    .object({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(port),
      maxHeaderSize: z
        .number()
        .int()
        .min(1024, 'a number of bytes, at least 1024')
        .max(1024 * 1024, 'a number of bytes, at most 1048576 (1 MB)')
        .default(maxHeaderSize)
        .describe(
          `The largest request head (request line and headers, in bytes) this listener reads; a larger one is answered 414 if its request line (the URL) alone is over, else 431. Default: ${GATEWAY_MAX_HEADER_SIZE} for the gateway (1 KB under Node's 16 KB, leaving room for the headers it adds before forwarding), ${NODE_MAX_HEADER_SIZE} for the admin API and the dashboard.`,
        ),
      requestTimeout: positiveDuration
        .optional()
        .describe('How long a client may take to send a whole request (headers and body) before it is answered 408. Default: 5m for the gateway, 30s for the admin API and the dashboard.'),
      maxConnections: z
        .number()
        .int()
        .positive('a number of connections, at least 1')
        .optional()
        .describe(
          'Most client connections this listener holds open at once (on each address, when the host resolves to several); one over it is closed as it comes in, counted in keygate_connections_dropped_total and logged once a minute. Default for the gateway: the process\'s open-files limit less upstream.connections and 512 (left for the admin API, the dashboard, the store and Redis), so a flood of connections cannot take the descriptors /health and the admin API need; none for the admin API and the dashboard.',
        ),
      keepAliveTimeout: timerDuration('24h', 24 * HOUR_MS)
        // Announced in whole seconds (`Keep-Alive: timeout=N`): under one would say 0.
        .refine((ms) => ms >= 1000, 'a duration of at least 1s')
        .prefault('72s')
        .describe('How long an idle client connection is kept open for its next request (sent as `Keep-Alive: timeout=...`). Keep a load balancer\'s idle timeout towards keygate below it.'),
    })
    .strict()
    .prefault({});

/**
 * A table looked up by names that come from requests and the store (plan and meter ids):
 * without a prototype, so "constructor" or "toString" is no entry rather than Object's.
 */
function byName<T>(table: Record<string, T>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, table);
}

/**
 * A scope: printable ASCII without spaces, `"` or `\\` (OAuth's scope-token, RFC 6749
 * §3.3). Upstreams receive a key's scopes space-separated in a header.
 */
const scopeName = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope of printable ASCII characters without spaces, " or \\ (sent to the upstream in a header)');

/** A list of scopes, each once: a scope listed twice is a slip (the second adds nothing). */
const scopeList = z.array(scopeName).superRefine((scopes, ctx) => {
  // A set, not indexOf for each: a profile may list tens of thousands (one a customer), and each indexOf would read the list again.
  const seen = new Set<string>();
  scopes.forEach((scope, j) => {
    if (seen.has(scope)) ctx.addIssue({ code: 'custom', path: [j], message: `scope "${scope}" is listed twice; list it once` });
    seen.add(scope);
  });
});

const identifier = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_.:-]*$/, 'a name of letters, digits, "_", ".", ":" or "-", starting with a letter');

/** A path, as a regular expression: JSON Schema has a `pattern` for it (not zod's own "starts_with" format). */
const STARTS_WITH_SLASH = /^\//;
/**
 * Path characters that mean the same to every reader (RFC 3986 unreserved, and the
 * sub-delimiters but `;`), and escapes of non-ASCII bytes, as clients send those: the
 * base path is compared with the request's path as sent.
 */
const PLAIN_PATH = /^(?:[/A-Za-z0-9._~!$&'()*+,=:@-]|%[89A-Fa-f][0-9A-Fa-f])*$/;

/**
 * Request headers clients and proxies send (RFC 9110, 9111, 9218, 6265, 6454, Fetch's
 * CORS and Sec- headers, client hints, W3C Trace Context, idempotency keys) and the
 * de-facto X- ones: what an identity header prefix must not begin.
 */
const CLIENT_HEADERS = [
  'accept', 'accept-charset', 'accept-encoding', 'accept-language', 'access-control-request-headers', 'access-control-request-method', 'authorization',
  'cache-control', 'connection', 'content-encoding', 'content-language', 'content-length', 'content-location', 'content-range', 'content-type', 'cookie',
  'date', 'dnt', 'early-data', 'expect', 'forwarded', 'from', 'host', 'idempotency-key', 'if-match', 'if-modified-since', 'if-none-match', 'if-range',
  'if-unmodified-since', 'keep-alive', 'max-forwards', 'origin', 'pragma', 'prefer', 'priority', 'range', 'referer', 'sec-ch-ua', 'sec-fetch-mode', 'te',
  'trailer', 'traceparent', 'tracestate', 'transfer-encoding', 'upgrade', 'upgrade-insecure-requests', 'user-agent', 'via', 'x-correlation-id',
  'x-forwarded-for', 'x-real-ip', 'x-request-id', 'x-requested-with',
];

/** Headers without which no request can be forwarded: never dropped by `identityHeaders.drop`. */
const CARRIES_THE_REQUEST = ['host', 'content-length', 'content-type', 'content-encoding', 'transfer-encoding'];

/** Hop-by-hop headers (RFC 9110 §7.6.1) that CLIENT_HEADERS does not list: no upstream receives them as sent. */
const PROXY_HOP_BY_HOP = ['proxy-authenticate', 'proxy-authorization', 'proxy-connection'];

/** An HTTP token (RFC 9110 §5.6.2): a header name, an authentication scheme. */
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * A header name `identityHeaders.names` gives a field, or false (the header left out).
 * Not one a request needs or a client sends for itself (a client's copy of an identity
 * header is dropped from every request), nor an X-Forwarded- one, which keygate writes.
 */
const identityHeaderName = z
  // The token's pattern is for the JSON Schema alone (editors refuse "X Bad" as keygate does); keygate's own refusal is said below.
  .union([z.literal(false), z.string().meta({ pattern: HTTP_TOKEN.source })], { error: 'expected a header name such as X-Consumer-ID, or false to leave the header out' })
  .superRefine((name, ctx) => {
    if (name === false) return;
    const lower = name.toLowerCase();
    if (!HTTP_TOKEN.test(name)) ctx.addIssue({ code: 'custom', message: `expected a header name such as X-Consumer-ID (letters, digits and !#$%&'*+.^_\`|~-), got ${JSON.stringify(name)}` });
    else if (CARRIES_THE_REQUEST.includes(lower)) ctx.addIssue({ code: 'custom', message: `${name} carries the request itself (its host or body): keygate cannot forward a request without it` });
    else if (PROXY_HOP_BY_HOP.includes(lower) || ['connection', 'keep-alive', 'te', 'trailer', 'upgrade'].includes(lower)) ctx.addIssue({ code: 'custom', message: `${name} is a hop-by-hop header (it describes one connection, RFC 9110 §7.6.1): choose a name of your own, such as X-Consumer-ID` });
    else if (lower.startsWith('x-forwarded-')) ctx.addIssue({ code: 'custom', message: `${name} is an X-Forwarded- header, which keygate writes itself: choose a name of your own, such as X-Consumer-ID` });
    else if (CLIENT_HEADERS.includes(lower)) ctx.addIssue({ code: 'custom', message: `${name} is a standard request header, which keygate would then drop from every request as one posing as its own: choose a name of your own, such as X-Consumer-ID` });
    else if (OVERRIDES_REQUEST.includes(lower)) ctx.addIssue({ code: 'custom', message: `${name} is a header in which upstreams read another client, host, path or method than the request's (keygate drops a client's copy from every request): choose a name of your own, such as X-Consumer-ID` });
  });

/** Whether a URL is an origin and nothing more (a trailing `/` allowed); one that is no URL at all is reported by its own check. */
function isOriginOnly(url: string): boolean {
  // Not an http(s) URL at all (`localhost:4000` parses as the scheme `localhost:` and the
  // path `4000`): the URL check says so, and a "path" the value never had is not named.
  if (!URL.canParse(url)) return true;
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return true;
  return parsed.pathname === '/' && parsed.search === '' && parsed.hash === '';
}

/** One label of a DNS name: letters, digits, `-` and `_`, not beginning or ending with `-`. */
const DNS_LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
/**
 * What dashboard.allowedHosts takes: a DNS name (dot-separated labels, an optional final
 * dot), or a leading wildcard over a name of two labels at least (`*.example.com`: `*.com`
 * would let every page under .com rebind to the dashboard). No scheme, port or path.
 */
const DASHBOARD_HOST_NAME = new RegExp(`^(?:\\*\\.(?=.{1,252}$)${DNS_LABEL}(?:\\.${DNS_LABEL})+|(?=.{1,254}$)${DNS_LABEL}(?:\\.${DNS_LABEL})*)\\.?$`);

/** A method in any case, read as capitals; JSON Schema offers the capitals (an enum editors complete). */
const httpMethod = z.preprocess((method) => (typeof method === 'string' ? method.toUpperCase() : method), z.enum([...ROUTE_METHODS, '*']));


/**
 * A number where one too large for a number at all (YAML's or JSON's `1e400`, or 400
 * nines, read as Infinity) is said to be too large for `what` ("a window's limit"), with
 * the most it may be, not "expected a finite number" (nor, where the value is not
 * reported, "required").
 */
export function amountNumber(what: string) {
  return z.number({ error: (issue) => (issue.input === Number.POSITIVE_INFINITY ? tooLarge(what) : undefined) });
}

/** An amount of at most MAX_AMOUNT (`what`: "a window's limit"), too large said so as by amountNumber. */
function amount(what: string) {
  return amountNumber(what).max(MAX_AMOUNT, { error: tooLarge(what), abort: true });
}

/**
 * The longest name a window may have: each is sent in the RateLimit headers of every answer
 * (twice), and an account's and a key's own windows (20 each) with names of thousands of
 * characters took an answer's head past what a Node client reads (16 KB: UND_ERR_HEADERS_OVERFLOW).
 */
export const MAX_WINDOW_NAME = 64;

/** One rate-limit window: at most `limit` requests in any rolling `window`. */
export const rateLimitSchema = z
  .object({
    name: identifier
      .max(MAX_WINDOW_NAME, `at most ${MAX_WINDOW_NAME} characters (it is sent in the RateLimit headers of every answer)`)
      .optional()
      .describe(`Policy name used in the RateLimit headers (at most ${MAX_WINDOW_NAME} characters); defaults to e.g. "5-per-1s".`),
    limit: amount("a window's limit").int().positive(),
    window: positiveDuration,
    scope: z.enum(['key', 'account']).default('key').describe('Count per key, or shared by all keys of an account.'),
  })
  .strict();

/**
 * A list of windows (a plan's, or a route's extra ones): each length once per scope, the
 * second of a pair refused as the typo it almost always is (limits/repeated-windows.ts).
 */
const rateLimitList = z.array(rateLimitSchema).superRefine((windows, ctx) => {
  const repeated = repeatedWindow(windows);
  if (repeated) ctx.addIssue({ code: 'custom', path: [repeated.at], message: repeatedWindowWhy(`rateLimits[${repeated.earlier}]`, windows[repeated.at] as RateLimit) });
});

/** Escalating blocks for keys that keep exceeding their limits. */
export const blockSchema = z
  .object({
    after: z.number().int().positive().describe('Rate-limit violations that trigger a block.'),
    within: positiveDuration.describe('...counted over this rolling period.'),
    duration: positiveDuration.describe('Length of the first block.'),
    factor: z.number().min(1).default(2).describe('Each further block is this many times longer.'),
    max: positiveDuration.prefault('24h').describe('Longest block.'),
    forgetAfter: positiveDuration
      .prefault('24h')
      .describe('A key with no block for this long starts again from the first block length.'),
    scope: z
      .enum(['key', 'account'])
      .default('key')
      .describe('Block the offending key, or every key of its account (so extra keys do not dodge a block).'),
  })
  .strict();

const period = z.union(
  [
    z.literal('month').describe('Calendar month, UTC.'),
    z
      .object({ billingDay: z.number().int().min(1).max(28) })
      .strict()
      .describe('Monthly from this day of the month, UTC.'),
  ],
  { error: 'expected "month" or { billingDay: 1 to 28 }' },
);

export const meterSchema = z
  .object({
    kind: z.enum(['consumed', 'gauge']).default('consumed'),
    limit: amount("a meter's limit").nonnegative(),
    period: period.default('month'),
    overage: z
      .boolean()
      .default(false)
      .describe('Allow usage past the limit (counted as overage) instead of refusing.'),
    admit: z
      .enum(['whenCovered', 'untilZero'])
      .default('whenCovered')
      .describe(
        'Without overage, which requests with a cost are refused. whenCovered: each one whose cost (at least) does not fit in what is left. untilZero: only once nothing is left; the request that reaches zero is served and charged down to zero, no further ("should your balance reach zero, subsequent requests are refused").',
      ),
    unit: z.string().optional().describe('Human name of the unit, e.g. "units" or "credits".'),
  })
  .strict();

export const planSchema = z
  .object({
    name: z.string().optional(),
    apiAccess: z.boolean().default(true),
    maxKeys: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe('Most keys (not revoked, not expired) an account may hold; 0 = the plan includes no API keys.'),
    scopes: scopeList
      .optional()
      .describe('Scopes keys on this plan may be given; defaults to all of the profile\'s scopes.'),
    rateLimits: rateLimitList.default([]),
    block: blockSchema.optional(),
    meters: z.record(identifier, meterSchema).default({}).transform(byName),
  })
  .strict();

const recordCount = z.union([
  z
    .object({ header: z.string().min(1).describe('Response header holding the record count (removed before the client sees it).') })
    .strict(),
  z
    .object({
      json: z
        .string()
        .describe('Dotted path to an array (its length) or a number in the JSON response body, e.g. "data" or "meta.total".'),
    })
    .strict(),
]);

/** Records a per-record cost reserves for where it says nothing of them. */
export const RESERVE_RECORDS_DEFAULT = 1;

export const costSchema = z
  .object({
    meter: identifier,
    perRequest: amount('a cost').nonnegative().optional(),
    perRecord: amount('a cost').nonnegative().optional(),
    records: recordCount
      .optional()
      .describe('Where the gateway counts the records in its upstream\'s answer; needed beside perRecord, but with gateway: false (each settle of POST /v1/check gives the count).'),
    reserveRecords: amount('reserveRecords')
      .int()
      .positive()
      .default(RESERVE_RECORDS_DEFAULT)
      .describe('Records reserved before forwarding when the count is only known from the response.'),
    reserveFromQuery: z
      .string()
      .optional()
      .describe('Query parameter with the most records a request asks for (e.g. "limit"); when present, that many are reserved.'),
  })
  .strict()
  .refine((c) => (c.perRequest === undefined) !== (c.perRecord === undefined), {
    message: 'give exactly one of perRequest or perRecord',
    ...whenSound(['perRequest'], ['perRecord']),
  });

/**
 * A route's path is matched against the request's path decoded (src/routes/route-table.ts):
 * written with an escape (`%40`) it would never match, and its requests would go to a
 * broader route.
 */
const NO_ESCAPE = /^[^%]*$/;
const NO_ESCAPE_MESSAGE = 'the characters themselves, not percent-escapes: "@" for %40, a colon as "::" (one ":" starts a parameter)';

/**
 * Path patterns written as another tool writes them, which the router would take as the
 * characters themselves: such a route never matches the requests it was meant for (they
 * go to a broader route, or are no_route), and `keygate check` passed it. Each is said
 * with the pattern as keygate writes it.
 */
const PATTERN_MISTAKES: readonly { mistake: RegExp; message: string | ((path: string) => string) }[] = [
  { mistake: /\{[^/{}]*\}/, message: (path) => `a parameter is written ":id", not "{id}" (braces would be matched as the characters themselves): ${openApiParameters(path)}` },
  // A "?" ending the pattern is the router's optional parameter (/v1/items/:id?), not a query.
  { mistake: /\?.|#/, message: 'a path only, without "?" or "#": a route is matched on the request\'s path, never its query' },
  // A lone ":" (not the "::" that writes a colon) followed by no name.
  { mistake: /(?<!:)(?:::)*:(?![A-Za-z0-9_:])/, message: 'a parameter needs a name after its ":" (/v1/items/:id); a colon itself is written "::"' },
  { mistake: /\*./, message: 'a "*" ends the path (/v1/items/*): it matches the rest of it, so nothing can follow it' },
];

/**
 * An OpenAPI path (`/v1/stations/{id}`) as keygate writes it (`/v1/stations/:id`), for the
 * message that refuses it; `/v1/items/:id` where a brace holds no parameter name.
 */
function openApiParameters(path: string): string {
  const braces = /\{([^/{}]*)\}/g;
  const named = [...path.matchAll(braces)].every(([, name]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name ?? ''));
  return named ? path.replace(braces, ':$1') : '/v1/items/:id';
}

/** A parameter with a regular expression, as the router reads one: `:name(...)`. */
const REGEX_PARAMETER = /:[A-Za-z0-9_]+\((?:[^()\\]|\\.)*\)/g;

/** A route's or built-in's path pattern: starts with "/", no escapes, none of PATTERN_MISTAKES outside a parameter's regular expression. */
function pathPattern(example: string) {
  return z
    .string()
    .regex(STARTS_WITH_SLASH, `a path starting with "/", such as ${example}`)
    .regex(NO_ESCAPE, NO_ESCAPE_MESSAGE)
    .superRefine((path, ctx) => {
      // A parameter's regular expression (find-my-way's `:code(^[a-z]{2}$)`) may hold any of those characters.
      const outsideRegexes = path.replace(REGEX_PARAMETER, ':p');
      const found = PATTERN_MISTAKES.find(({ mistake }) => mistake.test(outsideRegexes));
      if (found && STARTS_WITH_SLASH.test(path)) ctx.addIssue({ code: 'custom', message: typeof found.message === 'string' ? found.message : found.message(path) });
    });
}

export const routeSchema = z
  .object({
    method: httpMethod.default('*'),
    path: pathPattern('/v1/domains/:id').describe('Path pattern: "/v1/domains", "/v1/domains/:id", "/v1/backlinks/*"; a colon itself is "::".'),
    scopes: scopeList.default([]).describe('Scopes the key must hold (all of them).'),
    cost: costSchema.optional(),
    rateLimits: rateLimitList.default([]).describe('Extra windows for this route only.'),
  })
  .strict();

/** A Content-Type value: `type/subtype` with optional `; name=value` parameters (no line breaks). */
const mediaType = z
  .string()
  .regex(/^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(?:[ \t]*;[ \t]*[\w!#$&^.+-]+=(?:[\w!#$&^.+-]+|"[^"\r\n]*"))*$/, 'a media type such as application/json or application/json; charset=utf-8');

export const builtinSchema = z
  .object({
    method: httpMethod.default('GET'),
    path: pathPattern('/v1/account/usage'),
    status: z.number().int().min(200).max(299).default(200),
    scopes: scopeList.default([]),
    allowWhenApiDisabled: z
      .boolean()
      .default(false)
      .describe('Answer even when the plan has API access off (so a client can read apiEnabled).'),
    body: z
      .unknown()
      .nonoptional('required: what the endpoint answers (a mapping, a list or a string), placeholders such as "{{meters.units.remaining}}" in its values')
      .describe('Response body template; "{{meters.units.remaining}}" style placeholders.'),
    contentType: mediaType.default('application/json; charset=utf-8').describe('Content-Type of the answer, as the API documents it (e.g. "application/json").'),
  })
  .strict();

/** An authentication scheme for `errors.challenge`: an HTTP token, but not "none" in any case. */
const BARE_KEY_CHALLENGE = /^(?![Nn][Oo][Nn][Ee]$)[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const credentialLocation = z.discriminatedUnion('in', [
  z
    .object({
      in: z.literal('header'),
      name: z.string().regex(HTTP_TOKEN, 'a header name such as Authorization or X-API-Key').default('Authorization'),
      scheme: z
        .string()
        .regex(HTTP_TOKEN, 'one word such as Bearer or Token (it is sent in the WWW-Authenticate header), or none')
        .default('none')
        .describe('"none" for a bare key, or the scheme word: "Bearer", "Token", ...'),
    })
    .strict(),
  z.object({ in: z.literal('query'), name: z.string().min(1) }).strict(),
]);

/** A credential header read as `<scheme> <key>` (not a bare key, not a query parameter): 401s name its scheme. */
export function hasScheme(location: CredentialLocation): boolean {
  return location.in === 'header' && location.scheme.toLowerCase() !== 'none';
}

/** The most unknown keys `auth.unknownKeys.limit` may allow an address per window (more would hold more times in memory per address). */
export const MAX_UNKNOWN_KEYS_PER_WINDOW = 1000;

/**
 * Unknown keys per client address (auth/unknown-key-limit.ts): off unless given. Only
 * `unknown_key` counts (see there why revoked, expired and malformed keys do not).
 */
export const unknownKeyLimitSchema = z
  .object({
    limit: z
      .number()
      .int()
      .positive('a number of unknown keys, at least 1')
      .max(MAX_UNKNOWN_KEYS_PER_WINDOW, `a number of unknown keys, at most ${MAX_UNKNOWN_KEYS_PER_WINDOW}`)
      .describe('Unknown keys one client address (an IPv4 address, an IPv6 /64) may present within `window`; the one that reaches it blocks the address.'),
    window: positiveDuration.describe('...counted over this rolling period, e.g. "1m".'),
    block: positiveDuration.describe('How long a blocked address is refused (too_many_failures, 429) for any well-formed key this process does not hold in its key cache, e.g. "10m".'),
  })
  .strict()
  .describe(
    'Off unless given. Throttles key guessing per client address (counted in Redis for every process with Redis counters, else in each process): after `limit` unknown keys within `window`, the address is refused for `block` without a store lookup, but for keys this process holds in its key cache (keys in use). Revoked, expired and malformed keys do not count.',
  );

const reasonRendering = z
  .object({
    status: z.number().int().min(400).max(599).optional(),
    code: z.string().optional(),
    message: z.string().optional(),
    type: z.string().optional().describe('Error type for the typed envelope (and a template\'s {{type}}), e.g. "authentication_error".'),
    reasonPhrase: z
      .string()
      .regex(/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/, 'printable ASCII, not starting or ending with a space (it is sent in the status line)')
      .optional()
      .describe(`The reason phrase of the status line, where the API documents its own ("503 Service unavailable"); by default the standard one ("Service Unavailable"). Also the problem envelope's title.`),
  })
  .strict();

/** How answers advertise their rate-limit windows (`rateLimitHeaders`). */
export const RATE_LIMIT_HEADER_STYLES = ['ietf', 'kong', 'both', 'none'] as const;

export const ENVELOPES = ['jsonapi', 'message', 'error_description', 'error', 'typed', 'problem', 'template'] as const;

/** Any JSON value (YAML's dates and the like are refused: they are not JSON). */
const jsonValue = z.json();

const dialect = z
  .object({
    envelope: z
      .enum(ENVELOPES)
      .default('problem')
      .describe('The shape of error bodies: one of the six fixed ones, or "template" for the shape errors.template gives.'),
    template: z
      .union([z.record(z.string(), jsonValue), z.array(jsonValue)], {
        error: 'a JSON object or list, such as { error: { code: "{{code}}", message: "{{message}}" } }, holding only strings, finite numbers, true, false, null, lists and mappings',
      })
      .optional()
      .describe(
        `The body of every error where envelope is "template": any JSON object or list whose string values may hold ${ERROR_TEMPLATE_FIELDS.map((name) => `{{${name}}}`).join(', ')}. A string that is only "{{status}}" (or "{{retryAfter}}") is a number (retryAfter: null where no Retry-After is sent); placeholders inside a longer string are text.`,
      ),
    wwwAuthenticate: z
      .boolean()
      .default(true)
      .describe('Send WWW-Authenticate on 401s when the header credential has a scheme, or errors.challenge names one.'),
    realm: z
      .string()
      .regex(/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/, 'printable ASCII without " or \\ (it is sent in the WWW-Authenticate header)')
      .default('api'),
    challenge: z
      .string()
      // "none" is how a credential says it has no scheme: here it would be sent as one.
      .regex(BARE_KEY_CHALLENGE, "one word such as Key, other than none (the scheme WWW-Authenticate names: letters, digits and !#$%&'*+.^_`|~-; leave challenge out for no challenge)")
      .optional()
      .describe(
        'Off unless given. The scheme WWW-Authenticate names on 401s where no credential has one (headers with scheme none, query parameters), e.g. "Key" as Kong sends: Key realm="<realm>", with no error parameters. A credential header with a scheme names its own instead.',
      ),
    contentType: mediaType
      .optional()
      .describe('Content-Type of error bodies, as the API documents it (default: application/problem+json for "problem", else application/json; charset=utf-8).'),
    problemTypeBase: z.string().default('https://keygate.dev/problems/'),
    reasons: z.partialRecord(z.enum(DENIAL_REASONS), reasonRendering).default({}),
  })
  .strict()
  .superRefine((errors, ctx) => {
    if (errors.envelope === 'template' && errors.template === undefined) {
      ctx.addIssue({ code: 'custom', path: ['template'], message: 'envelope "template" needs the body to send: template: { … } with {{code}}, {{message}} and the like' });
    }
    // A template beside another envelope would be ignored: the operator meant one of the two.
    if (errors.envelope !== 'template' && errors.template !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['template'], message: `a template shapes errors only with envelope: template (envelope is "${errors.envelope}")` });
    }
    for (const { path, message } of errorTemplateProblems(errors.template)) ctx.addIssue({ code: 'custom', path: ['template', ...path], message });
  }, whenSound(['envelope'], ['template']));

/** A prefix of keys issued before keygate: `-` too, which some APIs' keys hold (`trk-`). */
const importedPrefix = z
  .string()
  // keys.prefix.live takes "" for bare keys; here a mode without a prefix is left out instead.
  .min(1, 'an empty prefix: for keys without a prefix, leave the mode out (prefix: {} or no prefix at all)')
  .regex(/^[A-Za-z0-9_-]*$/, 'letters, digits, "_" and "-" only, such as "rk_live_"');

const importedKeys = z
  .object({
    prefix: z
      .object({ live: importedPrefix.optional(), test: importedPrefix.optional() })
      .strict()
      .prefault({})
      .describe('The prefix of each mode\'s keys, such as { live: rk_live_, test: rk_test_ }; none: bare keys, whose mode the import gives.'),
    alphabet: z
      .enum(['base62', 'hex', 'base64url', 'unreserved'])
      .default('base62')
      .describe(
        'What follows the prefix: base62 (letters and digits), hex (either case), base64url (letters, digits, "-" and "_") or unreserved (letters, digits, "-", "_", "." and "~": the characters a URL never needs escaped, RFC 3986 §2.3; hand-set keys such as "bob.secret~2023"). No alphabet takes "+" or "/": see docs/authentication.md#key-formats.',
      ),
    length: z
      .union([z.number().int(), z.object({ min: z.number().int(), max: z.number().int() }).strict()])
      .describe('How many characters follow the prefix: a number, or { min, max }.'),
  })
  .strict()
  .superRefine((imported, ctx) => {
    const { min, max } = importedLengthRange(imported.length);
    const bare = imported.prefix.live === undefined && imported.prefix.test === undefined;
    // Bare keys are found in logs by their length alone: a short one would hide every word.
    const least = bare ? 16 : 8;
    if (min < least) ctx.addIssue({ code: 'custom', path: ['length'], message: `at least ${least} characters${bare ? ' for keys without a prefix' : ''} (got ${min})` });
    if (max > 256) ctx.addIssue({ code: 'custom', path: ['length'], message: `at most 256 characters (got ${max})` });
    if (min > max) ctx.addIssue({ code: 'custom', path: ['length'], message: `min (${min}) is above max (${max})` });
  }, whenSound(['length'], ['prefix', 'live'], ['prefix', 'test']));

const keyFormat = z
  .object({
    format: z
      .enum(['prefixed', 'hex'])
      .default('prefixed')
      .describe('"prefixed": <prefix><base62 random><crc32 checksum>. "hex": bare hex token, no prefix or checksum (for migrated keys).'),
    prefix: z
      .object({
        live: z.string().regex(/^[A-Za-z0-9_]*$/, 'letters, digits and "_" only, such as "sk_live_"').default('kg_live_'),
        test: z.string().regex(/^[A-Za-z0-9_]+$/, 'letters, digits and "_" only, such as "sk_test_"').optional(),
      })
      .strict()
      .prefault({}),
    hexLength: z.number().int().min(32).max(128).default(40),
    imported: importedKeys
      .optional()
      .describe(
        'Keys the API issued before keygate, registered with `keys import` so that customers keep them: their prefixes by mode (none: bare keys), alphabet and length. They carry no keygate checksum: a string of this shape is looked up (unknown_key if no key was imported with it) instead of refused as malformed_key.',
      ),
    expiry: z
      .boolean()
      .default(true)
      .describe('Whether a key may be given an expiry (keys create --expires, the dashboard\'s Expires field). false: a key lives until it is revoked.'),
    rotation: z
      .union([z.boolean(), z.literal('replace')], { error: 'expected true, false or "replace"' })
      .default(true)
      .describe(
        'Whether keys can be rotated in place. true: a replacement, the old key valid for an overlap (24h unless asked otherwise). "replace": a replacement that revokes the old key at once, so an account never holds more working keys than its plan allows (an API with one key per account). false: a key is replaced by creating a new one and revoking the old.',
      ),
    requireScopes: z
      .boolean()
      .default(false)
      .describe(
        'Whether every key carries at least one scope (an API whose keys "carry one or more scopes"). true: a key given no scopes is refused wherever its scopes are set (keys create, keys import, keys update, the admin API, the dashboard), and a key stored without any is not rotated. false: a key may be given none (`--scopes ""`).',
      ),
  })
  .strict()
  .superRefine((keys, ctx) => {
    // An imported test key needs a profile that has test keys.
    if (keys.imported?.prefix.test !== undefined && (keys.format === 'hex' || keys.prefix.test === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['imported', 'prefix', 'test'], message: `this profile has no test keys (${keys.format === 'hex' ? 'format: hex' : 'no keys.prefix.test'}), so keys imported as test would never be accepted` });
    }
  }, whenSound(['imported', 'prefix', 'test'], ['format'], ['prefix', 'test']));

/** Whether a route pattern can match some path under `base` (`/v1/x`, or `/*`, `/:version/x`). */
function reachableUnder(pattern: string, base: string): boolean {
  if (pattern === base || pattern.startsWith(`${base}/`)) return true;
  const dynamic = pattern.search(/[*:]/);
  return dynamic !== -1 && `${base}/`.startsWith(pattern.slice(0, dynamic));
}

function isStoreUrl(url: string): boolean {
  if (url.startsWith('sqlite:')) return url.length > 'sqlite:'.length;
  if (!/^postgres(ql)?:\/\//.test(url)) return false;
  return URL.canParse(url);
}

function checkStoreUrl(url: string, ctx: z.RefinementCtx): void {
  if (!isStoreUrl(url)) {
    ctx.addIssue({ code: 'custom', message: 'expected "sqlite:<file>" or "postgres://user:password@host:port/database"' });
    return;
  }
  if (url.startsWith('sqlite:')) return;
  const parsed = new URL(url);
  // pg reads a "%" that begins no escape as itself (`50%` is the password 50%): only escapes it cannot read are refused.
  checkEscapes(
    ctx,
    [
      ['user', parsed.username],
      ['password', parsed.password],
      ['database name', parsed.pathname.slice(1)],
    ],
    'literal',
  );
}

/** A `%` that does not begin an escape (`%` and two hex digits). */
const BARE_PERCENT = /%(?![0-9A-Fa-f]{2})/;
const BARE_PERCENTS = /%(?![0-9A-Fa-f]{2})/g;

/**
 * Refuses a URL part whose %-escapes cannot be read: the drivers unescape the user and
 * password (and PostgreSQL's the database name; `literal`: as pg does, a `%` that begins
 * no escape is read as itself), and one that cannot be would stop start-up
 * with "URI malformed", naming no field, after the store's migrations (or read a bare `%`
 * one way and the escapes beside it another). The part itself is never said: it may be a
 * password.
 */
function checkEscapes(ctx: z.RefinementCtx, parts: [name: string, text: string][], bare: 'refused' | 'literal' = 'refused'): void {
  for (const [name, text] of parts) {
    if (bare === 'refused' && BARE_PERCENT.test(text)) {
      ctx.addIssue({ code: 'custom', message: `the ${name} has a "%" not followed by two hex digits; write a "%" in it as %25` });
      continue;
    }
    try {
      decodeURIComponent(bare === 'literal' ? text.replace(BARE_PERCENTS, '%25') : text);
    } catch {
      ctx.addIssue({ code: 'custom', message: `the ${name}'s %-escapes do not spell UTF-8 text; write a "%" in it as %25, and any other character as the %-escapes of its UTF-8 bytes` });
    }
  }
}

/**
 * Query parameters a counters URL may carry: keygate's `prefix`, and the connection
 * settings ioredis reads from a URL (not its other options: keygate sets those).
 */
const REDIS_URL_PARAMS = ['prefix', 'db', 'username', 'password', 'family'];

function checkCountersUrl(url: string, ctx: z.RefinementCtx): void {
  if (url === 'memory') return;
  if (!/^rediss?:\/\//.test(url) || !URL.canParse(url)) {
    ctx.addIssue({ code: 'custom', message: 'expected "memory" or "redis://host:port[/db][?prefix=...]"' });
    return;
  }
  const parsed = new URL(url);
  // As ioredis reads them, unescaped (and keygate check's AUTH).
  checkEscapes(ctx, [
    ['user', parsed.username],
    ['password', parsed.password],
  ]);
  // A mistyped parameter (`?prefx=`) would otherwise be dropped, and the shared default
  // prefix used: another deployment's counters and revocation channel.
  // Nor is one given twice read as either: which was meant cannot be known.
  const seen = new Set<string>();
  for (const name of parsed.searchParams.keys()) {
    if (!REDIS_URL_PARAMS.includes(name)) ctx.addIssue({ code: 'custom', message: `unknown parameter "${name}"; a counters URL takes ${REDIS_URL_PARAMS.join(', ')}` });
    else if (seen.has(name)) ctx.addIssue({ code: 'custom', message: `parameter "${name}" is given twice; give it once` });
    seen.add(name);
  }
  // The database, as `/N` or `?db=N`: a typo (`/1O`, `/16` on a Redis with 16) would
  // otherwise leave this process counting in database 0, apart from the others, or
  // crash it on connecting.
  const path = parsed.pathname.replace(/^\//, '');
  const param = parsed.searchParams.get('db');
  if (path !== '' && param !== null) ctx.addIssue({ code: 'custom', message: `the database is given twice (/${path} and ?db=${param}); give it once, as /N` });
  for (const db of [...(path === '' ? [] : [path]), ...(param === null ? [] : [param])]) {
    if (!/^[0-9]{1,2}$/.test(db) || Number(db) > MAX_REDIS_DB) {
      ctx.addIssue({ code: 'custom', message: `the database must be a number from 0 to ${MAX_REDIS_DB} (Redis has 16 unless configured otherwise), got "${db}"` });
    }
  }
  // An empty prefix puts every key and the revocation channel at the top of the shared
  // Redis, where another deployment's (or anything else's) may be.
  if (parsed.searchParams.get('prefix') === '') ctx.addIssue({ code: 'custom', message: 'prefix is empty; give one that keeps this deployment apart, such as ?prefix=eu1: (or leave it out for keygate:)' });
  const family = parsed.searchParams.get('family');
  if (family !== null && family !== '4' && family !== '6') ctx.addIssue({ code: 'custom', message: `family must be 4 (IPv4) or 6 (IPv6), got "${family}"` });
}

/**
 * The API's name where a profile gives none: its id with each word capitalised
 * ("seranking-data" → "Seranking Data", "ranksy" → "Ranksy").
 */
export function titleFromName(name: string): string {
  const words = name.split(/[-_\s]+/).filter((word) => word !== '');
  return words.length === 0 ? name : words.map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join(' ');
}

/** The highest database number of a Redis with its default 16. */
const MAX_REDIS_DB = 15;

/** The profile's sections, each validated on its own terms; configSchema adds the checks between them. */
const profileSections = z
  .object({
    name: z.string().default('keygate').describe('The profile\'s id, e.g. "seranking-data": in /health and the start-up log line (`profile`).'),
    title: z
      .string()
      .trim()
      .min(1, 'a name to show, e.g. "SE Ranking Data"')
      .optional()
      .describe(
        'The API\'s name as its customers know it, without "API", e.g. "SE Ranking Data": in the dashboard\'s header, page titles and sentences ("call the SE Ranking Data API"). Default: name with each word capitalised ("seranking-data" → "Seranking Data").',
      ),
    gateway: z
      .boolean()
      .default(true)
      .describe(
        'Whether keygate serve runs the gateway: the listener on `listen` that forwards the requests it admits to upstream.url. false: no gateway, for a backend that checks its requests itself through the admin API (POST /v1/check and its settle): keygate serve then opens the admin API (whose admin token it requires) and the dashboard only, and upstream.url and upstream.spawn are refused (nothing is forwarded); the gateway\'s other fields (listen, upstream.timeout, upstream.connections, …) then set nothing, and keygate check and serve warn of those given.',
      ),
    listen: listen(8080, GATEWAY_MAX_HEADER_SIZE),
    basePath: z
      .string()
      .regex(STARTS_WITH_SLASH, 'a path starting with "/", such as /v1')
      // As the gateway takes a request's path: one with `.`/`..` segments, `//`, escapes or
      // `;` would refuse every request (and the upstream might read another path).
      .refine(
        (path) => !STARTS_WITH_SLASH.test(path) || (PLAIN_PATH.test(path) && !path.includes('//') && !path.split('/').some((segment) => segment === '.' || segment === '..')),
        'a plain path such as /v1 or /api/v2: no "." or ".." segment, no "//", none of ; ? # \\ or spaces, and percent-escapes only for non-ASCII characters, as clients send them (/caf%C3%A9 for /café)',
      )
      .default('/')
      .describe('keygate guards everything under this path.'),
    upstream: z
      .object({
        url: z
          .url({ protocol: /^https?$/, error: 'an http(s) URL such as http://127.0.0.1:4000' })
          .refine(isOriginOnly, 'an origin such as http://127.0.0.1:4000, without a path, query or fragment (the request path and query are forwarded unchanged)')
          // undici's Pool takes the URL's origin only: a user and password in it would reach no one (an upstream that needs them would refuse every request).
          .refine(
            (url) => !URL.canParse(url) || (new URL(url).username === '' && new URL(url).password === ''),
            'a user or password here is never sent to the upstream (keygate sends no credentials of its own upstream): remove it, and let the upstream trust keygate by its address',
          )
          .optional()
          .describe('Where admitted requests go, e.g. http://127.0.0.1:4000. Needed by keygate serve, but with gateway: false (the admin API alone); a profile without it is also for the library (createKeygate), which forwards nothing.'),
        timeout: positiveDuration.prefault('30s'),
        caseSensitivePaths: z
          .boolean()
          .default(true)
          .describe(
            'Whether the API tells paths apart by letter case, as most frameworks do (Fastify, Rails, Django, Flask, Go). false for one that does not (Express and ASP.NET by default): routes and basePath are then matched ignoring case, so /v1/ADMIN/users is judged by the /v1/admin/users route, with its scopes and cost, as the API serves it (and forwarded as sent).',
          ),
        connections: z.number().int().positive().default(128),
        maxInFlightPerAccount: z
          .number()
          .int()
          .positive()
          .optional()
          .describe('Most requests of one account forwarded at once by a process (default: half of connections); more are refused as concurrency_limited.'),
        spawn: z
          .array(z.string())
          .min(1)
          .optional()
          .describe('For demos: a command keygate starts (relative to this file) before serving, e.g. ["node", "upstream.js"].'),
      })
      .strict()
      .refine((upstream) => upstream.maxInFlightPerAccount === undefined || upstream.maxInFlightPerAccount <= upstream.connections, {
        ...whenSound(['maxInFlightPerAccount'], ['connections']),
        path: ['maxInFlightPerAccount'],
        error: 'at most upstream.connections (one account cannot have more requests in flight than the pool has connections)',
      })
      // Port 0: keygate chooses a free one for the command it starts, and tells it in PORT.
      .refine((upstream) => upstream.spawn !== undefined || upstream.url === undefined || !URL.canParse(upstream.url) || new URL(upstream.url).port !== '0', {
        ...whenSound(['spawn'], ['url']),
        path: ['url'],
        error: 'port 0 (any free port) only with upstream.spawn, which keygate then tells the port it chose; give the port the upstream listens on',
      })
      .refine((upstream) => upstream.spawn === undefined || upstream.url !== undefined, {
        ...whenSound(['spawn'], ['url']),
        path: ['url'],
        error: 'required with upstream.spawn: where the command keygate starts listens, and requests are forwarded (port 0: any free port, told to it in PORT)',
      })
      .prefault({}),
    store: z
      .string()
      .default('sqlite:./data/keygate.db')
      .superRefine(checkStoreUrl)
      .describe('sqlite:<file> (relative to the working directory) or postgres://...'),
    counters: z
      .string()
      .default('memory')
      .superRefine(checkCountersUrl)
      .describe('"memory" or redis://[user:password@]host:port[/db][?prefix=keygate:] (quote it in YAML when it ends in ":")'),
    counterFailure: z
      .enum(['closed', 'open'])
      .default('closed')
      .describe('When the counters backend is unreachable: refuse with 503, or fall back to per-process limits.'),
    keyCacheTtl: duration.prefault('30s').describe('How long a process trusts a cached key without a revocation message.'),
    trustedProxies: z
      .array(
        z.string().refine(isAddressRange, {
          error: (issue) => `expected an IP address or a CIDR range such as 10.0.0.0/8 or fd00::/8, got ${JSON.stringify(issue.input)}`,
        }),
      )
      .default([])
      .describe('Load balancers in front of keygate (IP addresses or CIDR ranges): from them, X-Forwarded-Proto, -Host and -Port are passed on as sent instead of replaced.'),
    keys: keyFormat.prefault({}),
    auth: z
      .object({
        // Defaulted on its own too: a profile that adds unknownKeys keeps the default credential.
        credentials: z.array(credentialLocation).min(1).prefault([{ in: 'header', name: 'Authorization', scheme: 'Bearer' }]),
        unknownKeys: unknownKeyLimitSchema.optional(),
        forwardCredential: z
          .boolean()
          .default(false)
          .describe(
            'Pass the credential on to the upstream as the client sent it: the header, or the query parameter, the key was read from (Kong\'s hide_credentials: false), for an upstream that still reads the key. Every other copy of a key is still removed (the other credential locations, their look-alikes, a key in any other header, parameter or header name), and logs still hide it. Off: the upstream never receives the key. Takes effect at restart.',
          ),
      })
      .strict()
      .prefault({}),
    errors: dialect.prefault({}),
    identityHeaders: z
      .object({
        prefix: z
          .string()
          .regex(/^[A-Za-z0-9-]+$/, 'a header name prefix such as "X-Keygate-"')
          .superRefine((prefix, ctx) => {
            // Client headers with the prefix are dropped (none may pose as keygate's): a
            // prefix that begins a standard header would drop that header from every request.
            const lower = prefix.toLowerCase();
            const taken = CLIENT_HEADERS.find((name) => name.startsWith(lower));
            if (taken) ctx.addIssue({ code: 'custom', message: `"${prefix}" begins the standard header ${taken}, which keygate would then drop from every request as one posing as its own: choose a prefix of your own, such as "X-Keygate-"` });
          })
          .default('X-Keygate-'),
        drop: z
          .array(
            z
              .string()
              .regex(HTTP_TOKEN, 'a header name such as X-Consumer-ID')
              .refine((name) => !CARRIES_THE_REQUEST.includes(name.toLowerCase()), { message: 'carries the request itself (its host or body): keygate cannot forward a request without it' }),
          )
          .default([])
          .describe(
            'More request headers your upstream reads as who is calling, beyond those with the prefix: the ones an earlier gateway set (Kong: X-Consumer-ID, X-Consumer-Username, X-Credential-Identifier, X-Anonymous-Consumer). A client\'s copy of each is dropped from every request (any case, or with underscores for dashes), so none can pose as another. Takes effect at restart.',
          ),
        names: z
          .object(Object.fromEntries(IDENTITY_FIELDS.map((field) => [field, identityHeaderName.optional()])) as Record<IdentityField, z.ZodOptional<typeof identityHeaderName>>)
          .strict()
          .optional()
          .describe(
            'Per identity field (account, key, mode, scopes, plan, accountName), the whole header name to write it in instead of <prefix><Field> (Kong\'s X-Consumer-ID, say), or false to leave it out. accountName (the account\'s name, percent-encoded where it is not printable ASCII) is written only where named here. A client\'s copy of each named header is dropped, as one with the prefix is. Takes effect at restart.',
          ),
      })
      .strict()
      .superRefine((identityHeaders, ctx) => {
        // Two fields in one header: the upstream would read two values, or the second for the first.
        const names = identityHeaderNames(identityHeaders);
        const seen = new Map<string, IdentityField>();
        for (const field of IDENTITY_FIELDS) {
          const name = names[field];
          if (name === undefined) continue;
          // As a CGI-style upstream reads them: X_Consumer_ID is X-Consumer-ID.
          const dashed = name.replaceAll('_', '-');
          const first = seen.get(dashed);
          const which = (f: IdentityField) => (identityHeaders.names?.[f] === undefined ? `${f} (by the prefix)` : f);
          if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['names', field], message: `${name} is the header of ${which(first)} too: give each field a header of its own (or false to leave one out)` });
          else seen.set(dashed, field);
        }
      })
      .prefault({}),
    scopes: scopeList.default([]).describe('Every scope the API knows, offered when creating keys.'),
    plans: z
      .record(identifier, planSchema)
      .refine((plans) => Object.keys(plans).length > 0, 'at least one plan')
      .transform(byName)
      .prefault({ default: {} }),
    defaultPlan: identifier.optional().describe('Plan given to new accounts; defaults to the first plan.'),
    rateLimitHeaders: z
      .enum(RATE_LIMIT_HEADER_STYLES)
      .default('ietf')
      .describe(
        'The rate-limit headers answers carry where windows apply (upstream answers, built-ins, rate_limited, blocked, insufficient_funds): "ietf", RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers); "kong", as Kong\'s rate-limiting plugin sends them, for clients migrating from Kong (X-RateLimit-Limit-Minute and X-RateLimit-Remaining-Minute per window, a window of another length by its seconds, X-RateLimit-Limit-10; RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset of the window closest to its limit); "both"; "none". A 429 carries Retry-After whatever this says. Reloadable.',
      ),
    routes: z.array(routeSchema).prefault([{ path: '/*' }]),
    builtins: z.array(builtinSchema).default([]),
    gauges: z
      .record(identifier, z.object({ header: z.string().min(1) }).strict())
      .default({})
      .describe('Gauge meters the upstream reports in a response header (absolute value; the header is removed).'),
    admin: z
      .object({
        listen: listen(8081, NODE_MAX_HEADER_SIZE),
        tokenEnv: z.string().default('KEYGATE_ADMIN_TOKEN').describe('Environment variable holding the admin token.'),
        readTokenEnv: z
          .string()
          .default('KEYGATE_ADMIN_READ_TOKEN')
          .describe('Environment variable holding read-only admin tokens (GET, HEAD and POST /v1/forecast: reports, monitoring), optional.'),
      })
      .strict()
      .prefault({}),
    dashboard: z
      .object({
        enabled: z.boolean().default(true),
        listen: listen(8082, NODE_MAX_HEADER_SIZE),
        publicUrl: z
          .url({ protocol: /^https?$/, error: 'an http(s) URL such as https://dashboard.example.com' })
          .refine(isOriginOnly, 'an origin such as https://dashboard.example.com, without a path, query or fragment (the dashboard is served at the root of its host)')
          .optional()
          .describe(
            'URL members reach the dashboard at (for invitation links). Its host is a name the dashboard answers to (against DNS rebinding, it refuses, 421, a request addressed to a name it is not known by: see allowedHosts).',
          ),
        allowedHosts: z
          .array(
            z
              .string()
              .regex(DASHBOARD_HOST_NAME, {
                error: (issue) =>
                  String(issue.input).includes('*')
                    ? 'a wildcard such as *.example.com ("*." and then a name of two labels or more: it matches the names below that one, not the name itself), without a scheme, port or path'
                    : 'a host name such as keys.internal or keygate, or a wildcard such as *.example.com, without a scheme, port or path',
              })
              .transform((name) => name.toLowerCase().replace(/\.$/, '')),
          )
          .default([])
          .describe(
            'More host names the dashboard answers to, besides publicUrl\'s host, IP addresses and localhost (and *.localhost), which it always answers: a request addressed to any other name (its Host, or a trusted proxy\'s X-Forwarded-Host) is refused (421), so that a page whose DNS name turns to the dashboard\'s address (DNS rebinding) cannot use it. For a proxy that passes its own Host (keygate:8082) and no X-Forwarded-Host, without publicUrl. Names only: no port. A leading wildcard, *.example.com, matches every name below example.com (a.example.com, a.b.example.com), not example.com itself.',
          ),
        apiUrl: z
          .url({ protocol: /^https?$/, error: 'an http(s) URL such as https://api.example.com/v1' })
          .refine((url) => !/[?#']/.test(url), "a URL without a query, a fragment or a quote ('), such as https://api.example.com/v1")
          .optional()
          .describe('URL your customers send requests to (the gateway as they reach it), shown with a new key and a curl line to try it. Optional: without it the key page names only the header or parameter.'),
        secureCookies: z
          .boolean()
          .optional()
          .describe(
            'Set Secure on cookies (with the __Host- prefix). Defaults to on when publicUrl is https://, else off (plain http on loopback). A cookie set in answer to a request that came over HTTPS (TLS, or a trusted proxy\'s X-Forwarded-Proto: https) is Secure either way.',
          ),
        sessionTtl: positiveDuration.prefault('12h'),
      })
      .strict()
      .transform((dashboard) => ({ ...dashboard, secureCookies: dashboard.secureCookies ?? (dashboard.publicUrl !== undefined && new URL(dashboard.publicUrl).protocol === 'https:') }))
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        requests: z.boolean().default(true).describe('One log line per gateway request.'),
        adminRequests: z
          .union([z.boolean(), z.literal('exceptProbes')], { error: 'expected true, false or "exceptProbes"' })
          .default('exceptProbes')
          .describe(
            'One log line per admin API request (`component: "admin"`): client, method, target, status, ms and which token answered (`auth`), never the token or a body. "exceptProbes" (the default): none for a health probe or a Prometheus scrape answered 200 (GET or HEAD /health, /health/ready, /metrics), which a load balancer and Prometheus send every few seconds; one that is refused (401, 503) is logged. true: every request; false: none. POST /v1/check and its settle follow log.requests instead.',
          ),
        redactQuery: z
          .array(z.string().min(1, 'a parameter name, not empty'))
          .default([])
          .describe(
            'Names of query parameters whose values logs show as [REDACTED] (the request line\'s `target`), besides the built-in ones (names holding password, passwd, secret, token, apikey, api_key, api-key, access_key, accesskey, authorization, credential, private, session or signature, and auth or sig as a whole name or part of one): matched whole, in any case, percent-decoded. The upstream receives them as sent.',
          ),
        bufferSize: z
          .number()
          .int()
          .min(LOG_BUFFER_MIN_BYTES, `a number of bytes, at least ${LOG_BUFFER_MIN_BYTES}`)
          .max(LOG_BUFFER_MAX_BYTES, `a number of bytes, at most ${LOG_BUFFER_MAX_BYTES} (1 GB)`)
          .default(LOG_BUFFER_BYTES)
          .describe(
            `The most bytes of log lines keygate keeps for standard output while its reader does not read (a stalled log shipper, a full pipe): requests are never held by the log, and a line past this is dropped, counted in keygate_log_lines_dropped_total, said at once in a warning on standard error and, once the reader reads again, on standard output. Default ${LOG_BUFFER_BYTES} (16 MB). Taken at start.`,
          ),
      })
      .strict()
      .prefault({}),
    shutdown: z
      .object({
        readinessDelay: timerDuration('10m', 10 * 60_000)
          .prefault('0s')
          .describe(
            'On SIGTERM or SIGINT, how long keygate goes on serving with /health/ready answering 503 before it closes its listeners, so that a load balancer takes it out first (a second signal cuts it short).',
          ),
        drainTimeout: timerDuration('1h', HOUR_MS)
          .refine((ms) => ms > 0, 'a duration longer than zero')
          .prefault('10s')
          .describe('Once the listeners are closed, how long answers in flight may take to finish before their connections are cut.'),
      })
      .strict()
      .prefault({}),
    pepperEnv: z
      .string()
      .default('KEYGATE_PEPPER')
      .describe('Environment variable with a secret pepper; when set, key hashes are HMAC-SHA-256 with it.'),
  })
  .strict();

type ProfileSections = z.output<typeof profileSections>;

/**
 * A check between fields of different sections, and the fields it reads (sound-fields.ts):
 * it runs whenever those have no problem of their own, however wrong the rest is.
 */
interface CrossCheck {
  reads: readonly FieldPath[];
  run(config: ProfileSections, report: ReportProblem): void;
}

/** Says a problem of a check between sections: where, and what is wrong. */
type ReportProblem = (path: (string | number)[], message: string) => void;

/** Every meter some plan defines: a name no plan has is most likely a typo of one of these. */
function meterNamesOf(config: ProfileSections): Set<string> {
  return new Set(Object.values(config.plans).flatMap((plan) => Object.keys(plan.meters)));
}

/**
 * Where a route or built-in requires a scope no key can be given: only `*` keys would pass,
 * or (with no scopes listed and no plan naming it) none at all.
 */
function checkRequiredScopes(config: ProfileSections, report: ReportProblem, field: 'routes' | 'builtins'): void {
  const known = new Set(config.scopes);
  // Without a scopes list, a key may carry only what a plan's own list names.
  const onSomePlan = new Set(Object.values(config.plans).flatMap((plan) => plan.scopes ?? []));
  config[field].forEach(({ scopes }, i) =>
    scopes.forEach((scope, j) => {
      if (known.size > 0 && !known.has(scope)) report([field, i, 'scopes', j], `unknown scope "${scope}"${didYouMean(scope, known)}; list it under scopes`);
      if (known.size === 0 && !onSomePlan.has(scope) && !onSomePlan.has('*')) {
        report([field, i, 'scopes', j], `unknown scope "${scope}"; list it under scopes (none are listed, so no key could be given it, nor call this route)`);
      }
    }),
  );
}

/** The listeners serve opens, each with the field of its port, in the order a port conflict is said. */
function listenersOf(config: ProfileSections) {
  return [
    ...(config.gateway ? [{ name: 'the gateway', path: ['listen', 'port'], ...config.listen }] : []),
    { name: 'the admin API', path: ['admin', 'listen', 'port'], ...config.admin.listen },
    ...(config.dashboard.enabled ? [{ name: 'the dashboard', path: ['dashboard', 'listen', 'port'], ...config.dashboard.listen }] : []),
  ];
}

const PLAN_NAMES: FieldPath = ['plans', EACH];
const PLAN_SCOPES: FieldPath = ['plans', EACH, 'scopes'];
const METER_NAMES: FieldPath = ['plans', EACH, 'meters', EACH];
const METER_KINDS: FieldPath = ['plans', EACH, 'meters', EACH, 'kind'];

/** The checks between sections, in the order their problems are said (after the sections' own). */
const CROSS_CHECKS: readonly CrossCheck[] = [
  {
    // An identity header in the credential header: the upstream would read a key id where
    // the key goes, and a client's key there would be dropped as a forged identity.
    reads: [['auth', 'credentials', EACH, 'in'], ['auth', 'credentials', EACH, 'name'], ['identityHeaders', 'prefix'], ['identityHeaders', 'names', EACH]],
    run(config, report) {
      const names = identityHeaderNames(config.identityHeaders);
      const dashed = (name: string) => name.toLowerCase().replaceAll('_', '-');
      config.auth.credentials.forEach((location, i) => {
        if (location.in !== 'header') return;
        for (const field of IDENTITY_FIELDS) {
          const name = names[field];
          if (name === undefined || dashed(name) !== dashed(location.name)) continue;
          const path = config.identityHeaders.names?.[field] === undefined ? ['identityHeaders', 'prefix'] : ['identityHeaders', 'names', field];
          report(path, `${location.name} is where clients send their key (auth.credentials[${i}]): keygate would write ${field} in it for the upstream, and drop a client's key there as a forged identity: choose another header name`);
        }
      });
    },
  },
  {
    reads: [['defaultPlan'], PLAN_NAMES],
    run(config, report) {
      if (config.defaultPlan !== undefined && !Object.keys(config.plans).includes(config.defaultPlan)) {
        report(['defaultPlan'], `no plan named "${config.defaultPlan}"`);
      }
    },
  },
  {
    reads: [['scopes'], PLAN_SCOPES, ['routes', EACH, 'scopes']],
    run: (config, report) => checkRequiredScopes(config, report, 'routes'),
  },
  {
    reads: [['routes', EACH, 'cost', 'meter'], METER_NAMES, METER_KINDS],
    run(config, report) {
      const meterNames = meterNamesOf(config);
      config.routes.forEach((route, i) => {
        if (!route.cost) return;
        const meter = route.cost.meter;
        if (!meterNames.has(meter)) report(['routes', i, 'cost', 'meter'], `no plan defines meter "${meter}"${didYouMean(meter, meterNames)}`);
        // A gauge's usage is the level reported for it: units charged to it would be counted
        // where no usage, forecast or dashboard shows them, yet refuse requests at its limit.
        const gaugeOn = Object.keys(config.plans).filter((id) => config.plans[id]?.meters[meter]?.kind === 'gauge');
        if (gaugeOn.length > 0) {
          const plans = `${gaugeOn.length === 1 ? 'plan' : 'plans'} ${gaugeOn.map((id) => `"${id}"`).join(', ')}`;
          report(['routes', i, 'cost', 'meter'], `"${meter}" is a gauge on ${plans} (a level the upstream or an operator reports): a cost is charged to a consumed meter`);
        }
      });
    },
  },
  {
    reads: [['scopes'], PLAN_SCOPES, ['builtins', EACH, 'scopes']],
    run: (config, report) => checkRequiredScopes(config, report, 'builtins'),
  },
  {
    // Two listeners on one port: serve would fail on the second, blaming "another process".
    reads: [['gateway'], ['listen', 'port'], ['listen', 'host'], ['admin', 'listen', 'port'], ['admin', 'listen', 'host'], ['dashboard', 'enabled'], ['dashboard', 'listen', 'port'], ['dashboard', 'listen', 'host']],
    run(config, report) {
      const listeners = listenersOf(config);
      listeners.forEach((listener, i) => {
        const earlier = listeners.slice(0, i).find((other) => listener.port !== 0 && other.port === listener.port && hostsOverlap(other.host, listener.host));
        if (!earlier) return;
        const field = earlier.path.join('.');
        // Hosts written alike need no word; others, which addresses they share.
        const hosts = earlier.host === listener.host ? '' : `, and ${[...listener.path.slice(0, -1), 'host'].join('.')} ${describeListenHost(listener.host)} and ${[...earlier.path.slice(0, -1), 'host'].join('.')} ${describeListenHost(earlier.host)} overlap`;
        report(listener.path, `port ${listener.port} is ${earlier.name}'s too (${field})${hosts}: each listener needs a port of its own`);
      });
    },
  },
  {
    // The gateway counts a per-record route's records in its upstream's answers, where `records` says. Without a gateway
    // there is no answer to read: each settle of POST /v1/check gives the count (unused-fields.ts warns of one given); nor
    // without an upstream (a library's profile: its settle gives the count; given an upstream later, the profile is refused then).
    reads: [['gateway'], ['upstream', 'url'], ['upstream', 'spawn'], ['routes', EACH, 'cost', 'perRecord'], ['routes', EACH, 'cost', 'records']],
    run(config, report) {
      if (!config.gateway || (config.upstream.url === undefined && config.upstream.spawn === undefined)) return;
      config.routes.forEach(({ cost }, i) => {
        if (cost?.perRecord !== undefined && cost.records === undefined) report(['routes', i, 'cost', 'records'], 'perRecord needs records: { header } or { json }');
      });
    },
  },
  {
    // Without a gateway nothing is forwarded: an upstream given would be unused, one started would serve no one.
    reads: [['gateway'], ['upstream', 'url'], ['upstream', 'spawn']],
    run(config, report) {
      if (config.gateway) return;
      if (config.upstream.spawn !== undefined) {
        report(['upstream', 'spawn'], 'gateway: false forwards nothing, so there is no upstream to start: remove upstream.spawn, or remove gateway: false to run the gateway');
      } else if (config.upstream.url !== undefined) {
        report(['upstream', 'url'], 'gateway: false forwards nothing: remove upstream.url, or remove gateway: false to run the gateway');
      }
    },
  },
  {
    // A gauge header reports a gauge meter: one no plan has as a gauge would be dropped unread.
    reads: [['gauges', EACH], METER_NAMES, METER_KINDS],
    run(config, report) {
      const meterNames = meterNamesOf(config);
      for (const meter of Object.keys(config.gauges)) {
        const kinds = new Set(Object.values(config.plans).flatMap((plan) => (plan.meters[meter] ? [plan.meters[meter].kind] : [])));
        if (kinds.size === 0) report(['gauges', meter], `no plan defines meter "${meter}"${didYouMean(meter, meterNames)}`);
        else if (!kinds.has('gauge')) report(['gauges', meter], `"${meter}" is a consumed meter on every plan that has it: a gauge header reports a meter of kind gauge`);
      }
    },
  },
  {
    reads: [['scopes'], PLAN_SCOPES],
    run(config, report) {
      const known = new Set(config.scopes);
      for (const [id, plan] of Object.entries(config.plans)) {
        for (const [j, scope] of (plan.scopes ?? []).entries()) {
          if (scope !== '*' && known.size > 0 && !known.has(scope)) report(['plans', id, 'scopes', j], `unknown scope "${scope}"${didYouMean(scope, known)}`);
        }
      }
    },
  },
  {
    // A plan whose keys may carry no scope, where every key needs one: no key could be made on it.
    reads: [['keys', 'requireScopes'], ['scopes'], PLAN_SCOPES],
    run(config, report) {
      if (!config.keys.requireScopes) return;
      for (const [id, plan] of Object.entries(config.plans)) {
        if ((plan.scopes ?? config.scopes).length > 0) continue;
        const where = plan.scopes ? 'its scopes list is empty' : 'neither it nor the profile lists any scopes';
        report(['keys', 'requireScopes'], `every key needs a scope, but plan "${id}" allows none (${where}), so no key could be created on it`);
      }
    },
  },
  {
    // Messages are sent as written, but for the placeholders a reason fills in.
    reads: [['errors', 'reasons', EACH, 'message']],
    run(config, report) {
      for (const [reason, rendering] of Object.entries(config.errors.reasons)) {
        const allowed = MESSAGE_PLACEHOLDERS[reason as DenialReason] ?? [];
        for (const [placeholder, name] of rendering?.message?.matchAll(MESSAGE_PLACEHOLDER) ?? []) {
          if (allowed.includes(placeholderName(name as string))) continue;
          const only = allowed.length > 0 ? `this message may hold ${allowed.map((n) => `{{${n}}}`).join(', ')}` : 'nothing is filled in in this message';
          report(['errors', 'reasons', reason, 'message'], `${placeholder} would be sent as written: ${only}`);
        }
      }
    },
  },
  {
    reads: [['builtins', EACH, 'body'], METER_NAMES],
    run(config, report) {
      const meterNames = meterNamesOf(config);
      config.builtins.forEach((builtin, i) => {
        for (const message of templateProblems(builtin.body, meterNames)) report(['builtins', i, 'body'], message);
      });
    },
  },
  {
    reads: [['keys', 'prefix', 'test'], ['keys', 'prefix', 'live']],
    run(config, report) {
      if (config.keys.prefix.test !== undefined && config.keys.prefix.test === config.keys.prefix.live) {
        report(['keys', 'prefix', 'test'], 'the test prefix must differ from the live prefix');
      }
    },
  },
  {
    // Only requests under basePath reach the pipeline (compared ignoring case where routes are matched so).
    reads: [['upstream', 'caseSensitivePaths'], ['basePath'], ['routes', EACH, 'path'], ['builtins', EACH, 'path']],
    run(config, report) {
      const caseOf = config.upstream.caseSensitivePaths ? (path: string) => path : (path: string) => path.toLowerCase();
      const base = caseOf(config.basePath.replace(/\/$/, ''));
      for (const field of ['routes', 'builtins'] as const) {
        config[field].forEach((route, i) => {
          if (base.startsWith('/') && !reachableUnder(caseOf(route.path), base)) {
            report([field, i, 'path'], `"${route.path}" is outside basePath "${config.basePath}": no request can reach it`);
          }
        });
      }
    },
  },
  {
    // Two routes for the same requests, or a pattern the router cannot take.
    // The table also reads each route's scopes (whether every route requires some).
    reads: [['upstream', 'caseSensitivePaths'], ['routes', EACH, 'method'], ['routes', EACH, 'path'], ['routes', EACH, 'scopes'], ['builtins', EACH, 'method'], ['builtins', EACH, 'path'], ['builtins', EACH, 'scopes']],
    run(config, report) {
      try {
        profileRouteTable(config);
      } catch (error) {
        if (!(error instanceof RouteTableError)) throw error;
        report(error.at, error.message);
      }
    },
  },
];

export const configSchema = profileSections
  // Run even where some section failed (zod would skip it): each check whose fields are sound.
  .superRefine(
    (config, ctx) => {
      // The sections' own problems, before any check adds its own.
      const found = [...ctx.issues];
      for (const check of CROSS_CHECKS) {
        if (unsoundRead(found, check.reads)) continue;
        // What it read goes with each problem: the loader drops one that reads a field the file gives twice.
        check.run(config, (path, message) => ctx.addIssue({ code: 'custom', path, message, params: withReads(check.reads) }));
      }
    },
    { when: () => true },
  )
  .transform((config) => ({ ...config, title: config.title ?? titleFromName(config.name) }));

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type Plan = Config['plans'][string];
export type Meter = Plan['meters'][string];
export type RateLimit = z.output<typeof rateLimitSchema>;
export type BlockPolicy = z.output<typeof blockSchema>;
export type Route = Config['routes'][number];
export type Cost = z.output<typeof costSchema>;
export type Builtin = Config['builtins'][number];
export type CredentialLocation = Config['auth']['credentials'][number];
export type DialectConfig = Config['errors'];
export type Envelope = (typeof ENVELOPES)[number];
export type KeyFormatConfig = Config['keys'];
export type MeterPeriod = Meter['period'];
export type UnknownKeyPolicy = z.output<typeof unknownKeyLimitSchema>;
export type RateLimitHeaderStyle = Config['rateLimitHeaders'];
