/**
 * The admin REST API, on its own listener, for the operator's scripts: accounts, plans,
 * keys, members, usage, forecasts, the audit log, health and Prometheus metrics. Every
 * route but /health and /openapi.json needs `Authorization: Bearer <admin token>` (a
 * read-only token, for reports and monitoring, is enough for GET, HEAD and a forecast);
 * with no token configured those are all that answer.
 * Requests and responses are zod schemas, which also produce the OpenAPI document.
 * Errors are RFC 9457 problem details.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { describeProblem, isZodDefault, JSON_FORMAT, type ProblemFormat } from '../config/load.js';
import { amountNumber, MAX_WINDOW_NAME, notADuration } from '../config/schema.js';
import { MAX_AMOUNT } from '../config/amounts.js';
import type { Runtime } from '../runtime.js';
import type { KeyFormat } from '../keys/format.js';
import { withoutKeys } from '../keys/redact.js';
import { redactedTarget, withoutAdminTokens } from '../gateway/redacted-target.js';
import { recordRouteMethods, routerPath } from '../route-methods.js';
import { oncePer } from '../log.js';
import { headerCount } from '../auth/credential.js';
import type { Metrics } from '../metrics.js';
import { answerExpectAndConnect, badHost, clientErrorHandlerFor, listenerOptions, refuseNoHostOurselves, type NodeRefusal, type RawAnswer } from '../fastify-options.js';
import { parseDuration, unitlessNumberHint } from '../config/duration.js';
import { auditEventOut, type Actor } from '../operations/audit.js';
import { planOut } from '../operations/plans.js';
import { DATE_RANGE, inDateRange, OperationError, OPERATION_STATUS, OUTSIDE_DATE_RANGE } from '../operations/errors.js';
import { withWindowShape } from '../limits/window-shape.js';
import { accountOut, changeAccount, createAccount, deleteAccount, getAccount, keysTurnedOff, keysTurnedOffWarning, pastPlanExpiryWarning, refusedKeyWarning } from '../operations/accounts.js';
import { blockedUntilOf, createKey, defaultRotationOverlap, getKey, keyOut, revokeKey, rotateKey, rotationOut, unblockKey, updateKey } from '../operations/keys.js';
import { CountersRefusedError, CountersUnavailableError } from '../counters/counters.js';
import { BUSY_TIMEOUT_MS, isBusyError } from '../store/sqlite/sqlite-database.js';
import { StoreWriteError } from '../store/write-refusal.js';
import { UnstorableTextError } from '../store/unstorable-text.js';
import { dashboardOffNote, inviteMember, memberOut, passwordResetLink, removeMember, unlockMember } from '../operations/members.js';
import { accountUsage, dailyUsage, setGauge, usageOut } from '../operations/usage.js';
import { forecast, PlannedCallSchema } from '../operations/forecast.js';
import type { AccountRecord, KeyRecord, MemberRecord } from '../store/store.js';
import { checkHealth, OUTAGE_RETRY_AFTER_S, requestFailureLog } from '../operations/health.js';
import { KEYGATE_VERSION } from '../build-info.js';
import { completeDocument, PROBLEM_MEDIA_TYPE, toldToOthers, type OpenApiDocument } from './openapi.js';
import { MAX_FAILED_SIGN_INS_PER_EMAIL } from '../members/lockout.js';
import { PageQuery, pageLimit, paged } from './paging.js';
import { registerCheckRoutes } from './check-routes.js';
import { registerAddressBlockRoutes } from './address-block-routes.js';
import { adminClientOf, registerAccessLog, type AdminTokenUsed } from './access-log.js';

const ACTOR = 'admin-api';

declare module 'fastify' {
  interface FastifyRequest {
    /** The audit log's actor for this request's changes (which admin token, where there are several). */
    adminActor: string;
    /** rt.untoldChanges when the request arrived. */
    untoldAtStart: Runtime['untoldChanges'] | null;
    /** Which token the request came with, for the access log (never any part of the token). */
    adminTokenUsed: AdminTokenUsed;
  }
}

const isoOrNull = z.string().nullable();
/** An account's overage switch as a request gives it: "plan" (the CLI's word) is refused naming null, the API's. */
const overageIn = z.boolean({ error: 'expected true or false, or null to follow the plan' }).nullable();
const OutWindow = z.object({ name: z.string().describe('The policy name in the RateLimit headers'), limit: z.number(), window: z.string().describe('As the profile writes it: "1s", "1h"'), scope: z.enum(['key', 'account']) });
const Account = z.object({
  id: z.string(),
  name: z.string(),
  planId: z.string(),
  planExpiresAt: isoOrNull,
  apiAccess: z.boolean().describe("The account's own switch; its keys also need the plan's API access and an unexpired plan (apiEnabled)"),
  apiEnabled: z.boolean().describe("Whether its keys can call the API now: apiAccess, the plan's API access, and the plan not expired (as usage's apiEnabled)"),
  overage: z.boolean().nullable().describe('null: follow the plan'),
  limits: z
    .object({
      rateLimits: z.array(OutWindow).nullable().describe("The account's own windows in place of its plan's (a route's extra windows stay); null: the plan's; []: no plan-level window"),
      meters: z.record(z.string(), z.number()).describe("Meter name → the account's own limit; a meter not named has the plan's"),
    })
    .describe("The account's own limits (its overrides of the plan's)"),
  effectiveLimits: z
    .object({ rateLimits: z.array(OutWindow), meters: z.record(z.string(), z.number()) })
    .describe('The limits its keys are held to now: its own where it has them, else its plan\'s (as the RateLimit headers and usage give them)'),
  createdAt: z.string(),
});
/** One rate-limit window as a request gives it (an account's or a key's own); what its name and scope mean differs between the two. */
function windowIn(nameMeans: string, scopeMeans: string) {
  return z
    .object({
      name: z.string().optional().describe(`${nameMeans} (at most ${MAX_WINDOW_NAME} characters)`),
      limit: amountNumber("a window's limit").describe(`Requests allowed in any rolling window (a whole number, from 1 to ${MAX_AMOUNT})`),
      // A number that is none (1e309 is read as Infinity) is refused as the profile refuses it, not as zod's "Invalid input".
      window: z.union([z.string(), z.number()], { error: (issue) => (issue.code === 'invalid_union' ? notADuration(issue.input) : undefined) }).describe('As the profile writes it: "1s", "10m", "1h" (a number: milliseconds)'),
      scope: z.enum(['key', 'account']).optional().describe(scopeMeans),
    })
    .strict();
}
/** A change of an account's own limits: a JSON merge patch (a part left out stays; null: the plan's). */
const LimitsChange = z
  .object({
    rateLimits: z
      .array(windowIn('The policy name in the RateLimit headers; default e.g. "100-per-1s"', "Counted per key (default) or shared by the account's keys"))
      .nullable()
      .optional()
      .describe("Windows in place of the plan's own rateLimits (all of them: give every window the account should have; each length once per scope, as the larger limit of two would never refuse a request); null: the plan's again"),
    meters: z
      .record(z.string(), amountNumber("a meter's limit").nullable())
      .nullable()
      .optional()
      .describe("Meter name → the account's limit for it (a meter of its plan; 0 or more); null: the plan's again. Meters not named stay as they are; meters: null gives every meter the plan's again"),
  })
  .strict()
  .nullable()
  .describe("The account's own limits; null: the plan's for all of them");
/** A key's own windows as a request gives them (as an account's, but per key only). */
const KeyWindowsIn = z
  .array(
    windowIn(
      'The policy name in the RateLimit headers is "key-" and this; default "key-<limit>-per-<window>", e.g. "key-10-per-1m"',
      'Only "key" (the default): a window shared by the account\'s keys is the account\'s own limit, and is refused (400)',
    ),
  )
  .describe("The key's own rate-limit windows, applied on top of its account's (its plan's or its own, and a route's): all windows or none, so they can only lower what the key may send. Each length once; [] for none");
/** A key's scopes as a request gives them; `which` says more of them. */
const keyScopes = (which: string) =>
  z.array(z.string()).optional().describe(`The key's scopes${which}, among those its plan allows. * grants every scope and is given alone: beside other scopes it is refused (400). None ([]) is refused (400) where every route needs a scope (such a key could call nothing) or the profile sets keys.requireScopes`);
const Key = z.object({
  id: z.string(),
  name: z.string(),
  hint: z.string().describe('prefix and last four characters'),
  accountId: z.string().nullable(),
  mode: z.enum(['live', 'test']),
  scopes: z.array(z.string()),
  status: z.enum(['active', 'revoked', 'expired', 'expiring', 'unbound']).describe('unbound: its account was deleted (refused with key_not_bound)'),
  createdAt: z.string(),
  lastUsedAt: isoOrNull,
  expiresAt: isoOrNull,
  revokedAt: isoOrNull,
  createdBy: z.string().nullable(),
  rotatedFrom: z.string().nullable(),
  rateLimits: z.array(OutWindow).describe("The key's own windows, on top of its account's ([]: none); named in the RateLimit headers as given here"),
  blockedUntil: isoOrNull
    .optional()
    .describe("When the key's rate-limit block (or its account's) ends; null: not blocked. Given by GET /v1/keys and /v1/keys/{id}; left out when the counters cannot be asked"),
});
const IssuedKey = Key.extend({ secret: z.string().describe('shown only in this response') });
const Problem = z.object({ type: z.string(), title: z.string(), status: z.number().int(), detail: z.string() }).describe('RFC 9457 problem details; `detail` says what to change');
/** As the document gives it: members besides these allowed (RFC 9457 extensions), no `$schema` of its own. */
const { $schema: _dialect, ...PROBLEM_JSON_SCHEMA } = z.toJSONSchema(Problem, { io: 'input' });
const MeterUsage = z.object({
  kind: z.enum(['consumed', 'gauge']),
  unit: z.string().nullable().describe("the meter's unit as the plan names it (e.g. credits); null: it names none"),
  usage: z.number().describe('consumed: the units charged this period, overage included; gauge: the level last reported'),
  limit: z.number().describe("the account's own limit where it has one (limits.meters), else its plan's"),
  remaining: z.number().describe('limit less usage, never below 0 (a per-record request in flight has its units reserved, not yet taken off; a flat cost is taken off as it is admitted)'),
  overage: z.number().describe('usage past the limit'),
  overageAllowed: z.boolean().describe("whether requests go on past the limit (the account's overage switch, else the plan's)"),
  periodStart: z.string().describe('the first day of the current period (UTC), 2026-12-01'),
  periodEnd: z.string().describe('the first day of the next period, not the last of this one: the day a consumed meter starts afresh (a gauge is never reset)'),
});
const KeyRequests = z.object({
  keyId: z.string(),
  name: z.string().nullable().describe('null: a key the store no longer has'),
  hint: z.string().nullable(),
  requests: z.number().describe('requests the key had admitted (forwarded, or answered by a built-in) from periodStart to today'),
  lastUsedAt: isoOrNull,
  revoked: z.boolean(),
});
const Usage = z.object({
  accountId: z.string(),
  planId: z.string(),
  planName: z.string(),
  apiEnabled: z.boolean(),
  planExpired: z.boolean(),
  meters: z.record(z.string(), MeterUsage),
  periodStart: z.string().describe("the current period's first day (UTC): the plan's first consumed meter's, else the calendar month's"),
  keys: z.array(KeyRequests).describe("the account's keys by requests in the current period, most first: every key counted (a revoked one too) and its other keys not revoked"),
});
const ForecastResult = z.object({
  lines: z.array(PlannedCallSchema.extend({ meter: z.string().nullable(), unitsPerCall: z.number(), units: z.number() })),
  totals: z.record(z.string(), z.number()),
  total: z.number(),
  planId: z.string().optional().describe("the account's plan, whose meters the balance is of (with accountId)"),
  balance: z
    .record(
      z.string(),
      z.object({
        remaining: z.number(),
        covered: z.boolean(),
        overageAllowed: z.boolean(),
        inPlan: z.boolean().describe("false: the account's plan has no such meter, so remaining is 0 and the gateway refuses every call that costs units of it (insufficient_funds, \"Your plan does not include …\")"),
      }),
    )
    .optional(),
  covered: z.boolean().optional(),
});
const IdParams = z.object({ id: z.string() });
const dateInput = z
  .union([z.iso.datetime({ offset: true }), z.iso.date()], { error: 'expected a date (2027-01-31) or a date and time with its offset (2027-01-31T12:00:00Z)' })
  // A year 0000 (a typing mistake) or a time past 9999 by its offset: no date any page or table shows.
  // Its refusal reads `body.<field>: ` and these words: outsideDateRange's, as the CLI and the dashboard say it.
  .refine((text) => inDateRange(Date.parse(text)), { error: OUTSIDE_DATE_RANGE })
  .describe(`ISO date or date-time, ${DATE_RANGE}`);
/**
 * How this listener refuses: problem details whose `detail` carries no key. A detail may
 * quote what the client sent (an id, a path, a field's name), and a client may have
 * pasted a key's secret there (`GET /v1/keys/sk_live_…`).
 */
function problemSender(keyFormat: KeyFormat, adminTokens: readonly string[]) {
  // A detail may quote a path or a field's name: an admin token sent there by mistake is not said back.
  return (reply: FastifyReply, status: number, detail: string, title?: string): FastifyReply =>
    reply.code(status).type(PROBLEM_MEDIA_TYPE).send(problemDetails(status, shortened(withoutAdminTokens(withoutKeys(keyFormat, detail), adminTokens)), title));
}

/** The most of a detail sent back: one quoting what a client sent (a 500 KB id) is cut there. */
const MAX_DETAIL = 1_000;

function shortened(detail: string): string {
  return detail.length > MAX_DETAIL ? `${detail.slice(0, MAX_DETAIL)}…` : detail;
}

/** A request body refused before any route reads it, with what the client is told (and headers that say more). */
class BodyRefusal extends Error {
  constructor(
    readonly status: 400 | 415,
    detail: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(detail);
    this.name = 'BodyRefusal';
  }
}

/** Charsets whose bytes read as UTF-8 (US-ASCII is a part of it). */
const UTF8_CHARSETS: ReadonlySet<string> = new Set(['utf-8', 'us-ascii']);
const NOT_UTF8 = 'Send the body as UTF-8 JSON: Content-Type: application/json, with charset=utf-8 or no charset.';
/** A body missing where one is needed, however it is missing (none, empty, `null`). */
const NO_BODY = 'body: expected a JSON object; the request had none';
const NOT_UTF8_BYTES = 'The body is not UTF-8: send JSON encoded as UTF-8.';
/**
 * A body with a Content-Encoding (gzip, say): keygate does not decode one, so compressed
 * bytes would be refused as not UTF-8, and a body labelled compressed but sent plain would
 * be read as what it is not. Said as RFC 9110 §15.5.16 asks: a 415 whose Accept-Encoding
 * names the one coding taken.
 */
const ENCODED = 'The body has a Content-Encoding (compressed, say), which the admin API does not decode: send the JSON uncompressed, without Content-Encoding.';
/** The largest body the admin API reads: far more than any of its requests needs. */
const BODY_LIMIT_BYTES = 1024 * 1024;
const TOO_LARGE = `The body is over the admin API's limit of 1 MB (${BODY_LIMIT_BYTES} bytes); none of its requests needs one that large.`;
const PROTOTYPE_KEY = 'The body is valid JSON, but it has a "__proto__" key (or a "constructor" holding "prototype"), which keygate refuses: no admin request takes one.';

/** Fastify's JSON parser, in the form it has (`getDefaultJsonParser` is typed as either form). */
type JsonParser = (request: FastifyRequest, body: string, done: (error: Error | null, body?: unknown) => void) => void;

/** The `charset` parameter of a Content-Type, lower-cased and unquoted; undefined when it has none. */
function charsetOf(contentType: string | undefined): string | undefined {
  for (const parameter of (contentType ?? '').split(';').slice(1)) {
    const eq = parameter.indexOf('=');
    if (eq !== -1 && parameter.slice(0, eq).trim().toLowerCase() === 'charset') return parameter.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
  }
  return undefined;
}

/** Whether `text` is JSON at all (a byte-order mark ignored, as Fastify's parser does). */
function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
    return true;
  } catch {
    return false;
  }
}

/** How often a refused token is logged, at most. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** An RFC 9457 problem details body. */
function problemDetails(status: number, detail: string, title = statusTitle(status)) {
  return { type: 'about:blank', title, status, detail };
}

/**
 * A placeholder as the docs write one (`kgadm_…`, `<token>`, `...`), as it arrives: an
 * ellipsis sent as UTF-8 (curl) reads as three Latin-1 characters in a header.
 */
const PLACEHOLDER = /\u2026|\u00e2\u0080\u00a6|\.\.\.|^<[^>]*>$/;

/**
 * Why a request was refused for its admin token, as its 401 says it: a script with a
 * wrong (old, mistyped) token is told so, not told to send one it did send. The token
 * itself is never repeated.
 */
function adminTokenRefusal(why: 'missing' | 'not_bearer' | 'twice' | 'wrong' | 'api_key' | 'placeholder', tokenEnv: string, tokenFrom: string | undefined): string {
  switch (why) {
    case 'placeholder':
      // Copied from a doc's example (`Bearer kgadm_…`) without putting the token in.
      return `The admin token is not valid: that is a placeholder, as the docs write one. Send the admin token keygate was started with (${tokenFrom ?? `${tokenEnv}; the demo prints its own as it starts`}).`;
    case 'api_key':
      // The key just created, tried on the wrong listener: said, since "not valid" alone reads as a broken key.
      return `The admin token is not valid: that has the form of this API's keys. An API key goes to the gateway; the admin API takes the admin token keygate was started with (${tokenFrom ?? tokenEnv}).`;
    case 'missing':
      return 'Missing admin token: send it as "Authorization: Bearer <token>".';
    case 'not_bearer':
      return 'Send the admin token as "Authorization: Bearer <token>".';
    case 'twice':
      return 'Send the admin token once, as "Authorization: Bearer <token>".';
    case 'wrong':
      return 'The admin token is not valid: it is not one this keygate was started with.';
  }
}

/** Problem details for what Node would answer bare. */
function nodeRefusal(status: NodeRefusal): RawAnswer {
  const detail = {
    400: 'The request could not be read as HTTP.',
    408: 'The request took too long to arrive.',
    414: 'The request URL is too long.',
    417: 'Only "Expect: 100-continue" is supported.',
    431: 'The request headers are too large.',
  }[status];
  return { contentType: PROBLEM_MEDIA_TYPE, body: JSON.stringify(problemDetails(status, detail)) };
}

/**
 * Adds a `Keygate-Warning` to the answer, on a line of its own beside any it has already.
 * A header is sent as ASCII (Node refuses a value with a character past Latin-1, such as
 * the CLI's "…", which would turn the answer into a 500): "…" is written "...", anything
 * else outside printable ASCII "?".
 */
function addWarning(reply: FastifyReply, warning: string): void {
  const had = reply.getHeader('keygate-warning');
  const line = warning.replaceAll('…', '...').replace(/[^\x20-\x7e]/g, '?');
  reply.header('keygate-warning', had === undefined ? line : [...[had].flat().map(String), line]);
}

function statusTitle(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

const NO_QUERY = z.object({}).strict();

/** The document's groups of operations. */
const TAGS = {
  accounts: 'Accounts (teams): plan, API access, overage, plan expiry',
  plans: "The profile's plans, every setting",
  keys: 'API keys: create (the secret shown once), import, rename, rotate, revoke, unblock',
  usage: 'Metered usage, gauges, daily counts and forecasts',
  members: 'Dashboard members and operators: invitations, password resets, sign-in pauses lifted, removal',
  audit: 'Who changed what, newest first',
  addressBlocks: 'Client addresses blocked for too many unknown keys (auth.unknownKeys), shared by every process with Redis counters: listed, lifted',
  check: 'A request checked as the gateway would, for a backend in any language (keygate as a library over HTTP), then settled',
};

/** The one POST a read-only token may send: a forecast prices calls and writes nothing. */
const READ_ONLY_POST = '/v1/forecast';

/** Audit entries a page holds unless `limit` says otherwise. */
const AUDIT_PAGE = 200;

/** An account to list the rows of; empty is refused (leave the parameter out for every account's). */
const AccountFilter = z.string().min(1, "an account id (leave accountId out for every account's)").optional();

export interface AdminOptions {
  tokens: readonly string[];
  readTokens?: readonly string[];
  metrics: Metrics;
  /** Why the admin token was refused, when it was (too short, a space in it): the locked API says so. */
  lockedBecause?: string;
  /**
   * Where the admin token is found, as a caller refused for a wrong one is told; default,
   * the variable `admin.tokenEnv` names. The demo's, when it made one up: its banner.
   */
  tokenFrom?: string;
  /** POST /v1/check's pending settles: how long they are held, and how many (defaults: 10 minutes, 50,000). */
  check?: { settleTimeoutMs?: number; maxPending?: number };
}

export async function buildAdmin(rt: Runtime, options: AdminOptions): Promise<FastifyInstance> {
  const adminTokens = [...options.tokens, ...(options.readTokens ?? [])];
  const problem = problemSender(rt.keyFormat, adminTokens);
  const app = Fastify({
    ...listenerOptions(rt.log, 'admin'),
    http: { maxHeaderSize: rt.config.admin.listen.maxHeaderSize },
    bodyLimit: BODY_LIMIT_BYTES,
    // Before routing (an undecodable URL, a path parameter over 2,048 characters): still problem details.
    frameworkErrors: (error, _request, reply) => {
      const status = (error as { statusCode?: number }).statusCode ?? 400;
      problem(reply, status >= 400 && status < 500 ? status : 400, 'The request URL could not be read.');
    },
    // Requests Node's parser refuses (headers over the listener's `maxHeaderSize`, bytes that are not HTTP, too slow).
    clientErrorHandler: clientErrorHandlerFor(nodeRefusal),
  }).withTypeProvider<ZodTypeProvider>();
  // Who the audit log says made a change: `admin-api`, or `admin-api#2` for the second of several tokens.
  app.decorateRequest('adminActor', ACTOR);
  app.decorateRequest('untoldAtStart', null);
  app.decorateRequest('adminTokenUsed', 'none');
  const clientOf = adminClientOf(rt);
  // Targets are logged as the gateway's are (redactedTarget), which leaves out the admin
  // tokens too (serve hands them to the runtime: rt.adminTokens).
  registerAccessLog(app, rt, clientOf);
  /** Who the audit log names for a request's changes: its token's name, and the client's address as the access log reads it. */
  const actorOf = (request: FastifyRequest): Actor => ({ name: request.adminActor, address: clientOf(request) });
  // What Node would answer bare, or not at all, is problem details too; so is a request
  // without Host, or with two (refused in the first hook).
  refuseNoHostOurselves(app.server);
  answerExpectAndConnect(app.server, nodeRefusal);
  app.setValidatorCompiler(validatorCompiler);
  // Bodies are JSON only: anything else is a 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');
  // And JSON in UTF-8 only: Fastify reads any charset as UTF-8, misreading the bytes. Its
  // parser says "not valid JSON" also of JSON it refuses for a "__proto__" key (or a
  // "constructor" holding "prototype"; secure-json-parse's reason stops there, never
  // reaching the error handler): that body is told why instead.
  const fastifyJson = app.getDefaultJsonParser('error', 'error') as JsonParser;
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, bytes: Buffer, done) => {
    const charset = charsetOf(request.headers['content-type']);
    if (charset !== undefined && !UTF8_CHARSETS.has(charset)) return done(new BodyRefusal(415, NOT_UTF8), undefined);
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') return done(new BodyRefusal(415, ENCODED, { 'accept-encoding': 'identity' }), undefined);
    // Bytes that are not UTF-8 would be read as U+FFFD and stored so (a name "��").
    if (!isUtf8(bytes)) return done(new BodyRefusal(400, NOT_UTF8_BYTES), undefined);
    const body = bytes.toString('utf8');
    // An operation that takes no body (revoke, unblock, a delete) is sent one by clients that
    // label every request JSON: nothing, `{}` or `null` is no body; fields it would not read
    // are refused, not ignored (a "reason" that is never kept).
    const bodySchema = request.routeOptions.schema?.body as z.ZodType | undefined;
    const takesBody = bodySchema !== undefined;
    // Nothing is no body, also where a body is optional (rotate's).
    if (body.trim() === '') return done(!takesBody || bodySchema.safeParse(undefined).success ? null : new BodyRefusal(400, NO_BODY), undefined);
    fastifyJson(request, body, (error, parsed) => {
      const refusedJson = (error as { code?: string } | null)?.code === 'FST_ERR_CTP_INVALID_JSON_BODY' && parsesAsJson(body);
      // An unknown route (or a known path asked with another method) answers 404/405, whatever the body.
      if (error || takesBody || request.is404) return done(refusedJson ? new BodyRefusal(400, PROTOTYPE_KEY) : error, parsed);
      if (parsed === null || (typeof parsed === 'object' && !Array.isArray(parsed) && Object.keys(parsed).length === 0)) return done(null, undefined);
      done(new BodyRefusal(400, `${request.method} ${(request.routeOptions.url ?? routerPath(request.url)).replace(/:(\w+)/g, '{$1}')} takes no body: send none, or {}.`), undefined);
    });
  });
  // A known path asked with another method is a 405.
  const methodsAt = recordRouteMethods(app);
  // A query parameter a route does not take is refused, not ignored: a mistyped filter
  // (?account= for ?accountId=) would otherwise answer with everything.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/v1/') && !route.schema?.querystring) route.schema = { ...route.schema, querystring: NO_QUERY };
  });
  app.setSerializerCompiler(serializerCompiler);
  // A change other processes learn of through Redis (a revocation, a rotation, an
  // account's plan) that could not be sent there holds here and in the store: the others
  // learn of it from the store within about a second, or, where not even the store's mark
  // could be written, keep their cached keys for up to keyCacheTtl. The answer says which,
  // for scripts. Only the routes that make such changes carry it (two of them made at the
  // same moment both do if either could not be sent).
  app.addHook('onRequest', (request, _reply, done) => {
    request.untoldAtStart = rt.untoldChanges;
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    const before = request.untoldAtStart;
    if (before !== null && reply.statusCode < 300 && request.method !== 'GET' && toldToOthers(request.routeOptions.url ?? '')) {
      const now = rt.untoldChanges;
      if (now.lost > before.lost) {
        addWarning(reply, `saved and in effect in this process, but other keygate processes were not told (Redis is unreachable, and the store's change mark could not be written): they keep a cached key for up to keyCacheTtl (${rt.config.keyCacheTtl} ms)`);
      } else if (now.viaStore > before.viaStore) {
        addWarning(reply, 'saved and in effect in this process; Redis is unreachable, so the other keygate processes learn of it from the store, within about a second, rather than at once');
      }
    }
    done(null, payload);
  });

  await app.register(swagger, {
    openapi: {
      // 3.1: its schemas are JSON Schema, in which a nullable date is `anyOf [.., {type: null}]`.
      openapi: '3.1.0',
      info: { title: 'keygate admin API', version: '1', description: 'Accounts, keys, members, usage and forecasts of one keygate profile.' },
      components: {
        securitySchemes: {
          adminToken: { type: 'http', scheme: 'bearer', description: 'The admin token (the variable admin.tokenEnv names); a read-only token (admin.readTokenEnv) is accepted for GET, HEAD and POST /v1/forecast.' },
        },
      },
      security: [{ adminToken: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: (document) => completeDocument(('openapiObject' in document ? document.openapiObject : document.swaggerObject) as OpenApiDocument, TAGS, PROBLEM_JSON_SCHEMA),
  });

  const expected = options.tokens.map(digest);
  const expectedRead = (options.readTokens ?? []).map(digest);
  const { tokenEnv, readTokenEnv } = rt.config.admin;
  /** Someone guessing the token, or a script with an old one, is seen in the log: at most one line every 10 s. */
  const logRefusal = oncePer(REFUSAL_LOG_INTERVAL_MS);
  const refusedToken = (request: FastifyRequest, status: 401 | 403, why: string) =>
    logRefusal((more) => rt.log.warn({ component: 'admin', reqId: request.id, client: clientOf(request), method: request.method, path: routerPath(redactedTarget(rt, request.url)), status, why, ...more }, 'admin API refused a request for its token'));
  app.addHook('onRequest', async (request, reply) => {
    // Answers carry new keys' secrets, invitation links, who holds which key: never kept by a cache.
    reply.header('cache-control', 'no-store');
    // Two Authorization lines are refused as the gateway refuses two keys: Node keeps the
    // first only, so whether the request passed would depend on their order.
    const twice = headerCount(request.raw.rawHeaders, 'authorization') > 1;
    const header = request.headers.authorization ?? '';
    const match = twice ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    // Compare digests so the comparison is constant-time whatever the lengths, and with
    // every token (no early stop tells which one came close).
    const presented = match ? digest(match[1] as string) : undefined;
    let valid = -1;
    let readOnly = false;
    expected.forEach((token, i) => {
      if (presented && timingSafeEqual(presented, token)) valid = i;
    });
    for (const token of expectedRead) if (presented && timingSafeEqual(presented, token)) readOnly = true;
    // Told for every request, /health's too: the access log says which token each came with.
    request.adminTokenUsed = valid >= 0 ? `admin token #${valid + 1}` : readOnly ? 'read-only token' : header === '' && !twice ? 'none' : 'wrong';
    if (badHost(request.raw)) return problem(reply.header('connection', 'close'), 400, 'An HTTP/1.1 request needs one Host header, naming a host.');
    const path = routerPath(request.url);
    if (path === '/health' || path === '/health/ready' || path === '/openapi.json') return;
    if (expected.length === 0 && expectedRead.length === 0) {
      const fix = options.lockedBecause ? `${options.lockedBecause}; restart keygate with a good one` : `start keygate with ${tokenEnv} set`;
      return problem(reply, 503, `The admin API is locked: ${fix}.`, 'Service Unavailable');
    }
    if (valid >= 0) {
      // While one token replaces another ("new,old"), the audit log says which one made a change.
      if (expected.length > 1) request.adminActor = `${ACTOR}#${valid + 1}`;
      return;
    }
    if (readOnly) {
      if (request.method === 'GET' || request.method === 'HEAD' || (request.method === 'POST' && path === READ_ONLY_POST)) return;
      refusedToken(request, 403, 'read-only token, for a change');
      return problem(reply, 403, `This token (from ${readTokenEnv}) may only read: GET, HEAD and POST /v1/forecast. Changes need the admin token (${options.tokenFrom ?? tokenEnv}).`);
    }
    refusedToken(request, 401, twice ? 'two Authorization headers' : header === '' ? 'no token' : 'not a token of this keygate');
    reply.header('www-authenticate', 'Bearer realm="keygate-admin"');
    const token = match?.[1] ?? '';
    const wrong = rt.keyFormat.check(token).ok ? 'api_key' : PLACEHOLDER.test(token) ? 'placeholder' : 'wrong';
    return problem(reply, 401, adminTokenRefusal(twice ? 'twice' : header === '' ? 'missing' : presented ? wrong : 'not_bearer', tokenEnv, options.tokenFrom));
  });

  const logFailure = requestFailureLog(rt, 'admin API');
  app.setErrorHandler(async (error: Error & { statusCode?: number; validation?: unknown; code?: string }, request, reply) => {
    if (error instanceof OperationError) return problem(reply, OPERATION_STATUS[error.kind], withWindowShape(error));
    // Text no store holds (a NUL), sent where it would be written: invalid input, not a fault.
    if (error instanceof UnstorableTextError) return problem(reply, 400, `${error.message}.`);
    if (error instanceof BodyRefusal) return problem(reply.headers(error.headers), error.status, error.message);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return problem(reply, 413, TOO_LARGE);
    // Redis answered with an error (NOPERM, READONLY): reachable, so not said to be away.
    if (error instanceof CountersRefusedError) return problem(reply.header('retry-after', String(OUTAGE_RETRY_AFTER_S)), 503, `${error.message}; try again once Redis takes the command.`);
    // Redis is away: what needs it (lifting a block) cannot be done now, by anyone.
    if (error instanceof CountersUnavailableError) return problem(reply.header('retry-after', String(OUTAGE_RETRY_AFTER_S)), 503, `${error.message}; try again once it is back.`);
    if (error.validation) return problem(reply, 400, describeValidation(error, request));
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return problem(reply, 415, 'Send JSON with Content-Type: application/json.');
    if (error.statusCode && error.statusCode < 500) return problem(reply, error.statusCode, error.message.replace(/^Body /, 'The body '));
    // The database refused the write for want of room or permission (a full disk): an
    // outage to wait out (the runtime logs it, with the store, and /health/ready says when
    // it ends). Writes are not one transaction (a key, then its audit entry), so a change
    // may have been saved in part.
    if (error instanceof StoreWriteError) {
      request.log.warn({ method: request.method, target: redactedTarget(rt, request.raw.url), code: error.code }, `admin API could not save a change: ${error.message}`);
      const refused = `The database could not be written: ${error.why} (${error.fix})`;
      const what = request.method === 'GET' || request.method === 'HEAD' ? 'try again' : 'this change was not saved, or only in part: check before sending it again';
      return problem(reply.header('retry-after', String(OUTAGE_RETRY_AFTER_S)), 503, `${refused}; ${what} once /health/ready answers 200.`, 'Service Unavailable');
    }
    // Another process held the SQLite file's write lock past the wait (a sqlite3 shell
    // inside a transaction, say): not a fault of keygate's. Writes are not one transaction
    // (a key, then its audit entry), so a change may have been made in part.
    if (isBusyError(error)) {
      request.log.warn({ method: request.method, target: redactedTarget(rt, request.raw.url) }, 'admin API could not write: the SQLite file is busy (another process holds its write lock)');
      const busy = `The store (${rt.store.kind}) is busy: another process has held its write lock for more than ${BUSY_TIMEOUT_MS / 1000} s`;
      if (request.method === 'GET' || request.method === 'HEAD') return problem(reply.header('retry-after', String(OUTAGE_RETRY_AFTER_S)), 503, `${busy}; try again once it lets go.`, 'Service Unavailable');
      return problem(reply, 503, `${busy}; this change may or may not have been made: check before sending it again.`, 'Service Unavailable');
    }
    // The store is away (PostgreSQL down, say): an outage to wait out, as Redis's is. A
    // read can simply be asked again; a change may have been made in part before the store
    // went (a key written, its audit entry not): to be checked before it is sent again.
    if (await logFailure(request.log, error, { target: redactedTarget(rt, request.raw.url) })) {
      const store = `The store (${rt.store.kind}) is not reachable`;
      if (request.method === 'GET' || request.method === 'HEAD') return problem(reply.header('retry-after', String(OUTAGE_RETRY_AFTER_S)), 503, `${store}; try again once it is back.`, 'Service Unavailable');
      return problem(reply, 503, `${store}; this change may or may not have been made: once it is back, check before sending it again.`, 'Service Unavailable');
    }
    return problem(reply, 500, 'Internal error; see the keygate log.', 'Internal Server Error');
  });
  app.setNotFoundHandler((request, reply) => {
    const path = routerPath(request.url);
    const allowed = methodsAt(request.url);
    if (allowed.length === 0) return problem(reply, 404, `No admin route ${request.method} ${path}.`);
    const allow = allowed.join(', ');
    return problem(reply.header('allow', allow), 405, `${path} takes ${allow}, not ${request.method}.`);
  });

  // /health: the process runs (always 200), and how its backends are; /health/ready: 503
  // while it refuses requests for want of a backend, while the upstream it started
  // (upstream.spawn) is down, or once it is stopping, for a load
  // balancer that should take such a process out (every process shares the backends: an outage of one takes
  // them all out, which a closed counters backend does to limited routes anyway).
  // `version`: which release answers, for a rolling upgrade's old and new processes side by side.
  const health = async () => ({ ...(await checkHealth(rt)), profile: rt.config.name, version: KEYGATE_VERSION, backends: { store: rt.store.kind, counters: rt.counters.kind } });
  app.get('/health', { schema: { hide: true } }, health);
  app.get('/health/ready', { schema: { hide: true } }, async (_request, reply) => {
    const state = await health();
    return reply.code(state.status === 'unavailable' || state.status === 'stopping' ? 503 : 200).send(state);
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    options.metrics.backends(await checkHealth(rt));
    return reply.type(options.metrics.contentType).send(await options.metrics.text());
  });

  const Duration = z.string().describe('As the profile writes it: "1s", "10m", "24h"');
  const PlanSchema = z.object({
    id: z.string(),
    name: z.string(),
    apiAccess: z.boolean(),
    maxKeys: z.number().nullable(),
    scopes: z.array(z.string()).nullable().describe('Scopes keys on this plan may carry; null: any of the profile\'s'),
    rateLimits: z.array(z.object({ name: z.string().describe('The policy name in the RateLimit headers'), limit: z.number(), window: Duration, scope: z.enum(['key', 'account']) })),
    block: z
      .object({ after: z.number(), within: Duration, duration: Duration, factor: z.number(), max: Duration, forgetAfter: Duration, scope: z.enum(['key', 'account']) })
      .nullable(),
    meters: z.record(
      z.string(),
      z.object({ kind: z.enum(['consumed', 'gauge']), limit: z.number(), period: z.union([z.literal('month'), z.object({ billingDay: z.number() })]), overage: z.boolean(), admit: z.enum(['whenCovered', 'untilZero']), unit: z.string().nullable() }),
    ),
  });
  app.get('/v1/plans', { schema: { operationId: 'listPlans', tags: ['plans'], summary: 'Plans of the profile, every setting', response: { 200: z.array(PlanSchema) } } }, async () =>
    Object.entries(rt.config.plans).map(([id, plan]) => planOut(id, plan)),
  );

  // accounts
  const AccountsQuery = z
    .object({ q: z.string().trim().min(1).max(200).optional().describe('Only accounts whose name contains this (either case), or whose id it is'), ...PageQuery })
    .strict();
  /** An expiry set in the past is saved (it ends the account's access now), and the answer says so: it may be a mistyped year. */
  const warnOfPastPlanExpiry = (reply: FastifyReply, account: AccountRecord) => {
    const warning = pastPlanExpiryWarning(account, rt.clock());
    if (warning !== undefined) addWarning(reply, warning);
  };
  app.get('/v1/accounts', { schema: { operationId: 'listAccounts', tags: ['accounts'], summary: 'Accounts, a page at a time; q matches part of a name or the whole id', querystring: AccountsQuery, response: { 200: z.array(Account) } } }, async (request, reply) => {
    const { q } = request.query;
    return (await paged(request, reply, (page) => rt.store.listAccounts({ ...(q !== undefined ? { search: q } : {}), ...page }))).map((a) => accountOut(a, rt));
  });
  app.post(
    '/v1/accounts',
    {
      schema: {
        operationId: 'createAccount',
        tags: ['accounts'],
        summary: 'Create an account (a team) on a plan, the default plan unless named',
        description:
          "`limits` gives the account its own limits from the start, as PATCH /v1/accounts/{id} takes them (checked against the plan it is created on, refused with the same 400s); null or absent: the plan's. They are in the account.created audit event's detail.",
        body: z.object({ name: z.string().min(1).max(200), planId: z.string().optional(), apiAccess: z.boolean().optional(), overage: overageIn.optional(), planExpiresAt: dateInput.nullable().optional(), limits: LimitsChange.optional() }).strict(),
        response: { 201: Account, 400: Problem },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const account = await createAccount(
        rt,
        {
          name: b.name,
          ...(b.planId !== undefined ? { planId: b.planId } : {}),
          ...(b.apiAccess !== undefined ? { apiAccess: b.apiAccess } : {}),
          ...(b.overage !== undefined ? { overage: b.overage } : {}),
          ...(b.planExpiresAt !== undefined ? { planExpiresAt: b.planExpiresAt === null ? null : Date.parse(b.planExpiresAt) } : {}),
          ...(b.limits !== undefined ? { limits: b.limits } : {}),
        },
        actorOf(request),
      ).catch(namingPlanField);
      if (b.planExpiresAt !== undefined) warnOfPastPlanExpiry(reply, account);
      return reply.code(201).send(accountOut(account, rt));
    },
  );
  app.get('/v1/accounts/:id', { schema: { operationId: 'getAccount', tags: ['accounts'], summary: 'One account: plan, API access, overage, plan expiry, its own limits and those in effect', params: IdParams, response: { 200: Account, 404: Problem } } }, async (request) =>
    accountOut(await getAccount(rt, request.params.id), rt),
  );
  app.patch(
    '/v1/accounts/:id',
    {
      schema: {
        operationId: 'updateAccount',
        tags: ['accounts'],
        summary: 'Change an account: name, plan, API access, overage, plan expiry, its own limits',
        description:
          "Takes effect on its keys' next request, in every keygate process. `limits` overrides the plan's limits for this account alone: `rateLimits` replaces the plan's own windows (a route's extra windows stay), `meters` a meter's limit; null gives either back to the plan. Their change is audited as account.limits_changed.",
        params: IdParams,
        body: z.object({ name: z.string().min(1).max(200).optional(), planId: z.string().optional(), apiAccess: z.boolean().optional(), overage: overageIn.optional(), planExpiresAt: dateInput.nullable().optional(), limits: LimitsChange.optional() }).strict(),
        response: { 200: Account, 400: Problem, 404: Problem },
      },
    },
    async (request, reply) => {
      const b = request.body;
      if (Object.values(b).every((value) => value === undefined)) throw new OperationError('invalid', 'nothing to change: give name, planId, apiAccess, overage, planExpiresAt or limits');
      const { planExpiresAt, ...rest } = b;
      const patch = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
      if (planExpiresAt !== undefined) Object.assign(patch, { planExpiresAt: planExpiresAt === null ? null : Date.parse(planExpiresAt) });
      const { account, changed, before } = await changeAccount(rt, request.params.id, patch, actorOf(request)).catch(namingPlanField);
      const pastExpiry = planExpiresAt !== undefined && pastPlanExpiryWarning(account, rt.clock()) !== undefined;
      if (planExpiresAt !== undefined) warnOfPastPlanExpiry(reply, account);
      // Keys that worked until this change and are refused from now on (a plan without API access, access off): said, as for a new key.
      if (changed && !pastExpiry) {
        const now = rt.clock();
        const warning = keysTurnedOffWarning(before, account, rt.config.plans, now, await keysTurnedOff(rt, before, account, now), 'http');
        if (warning !== undefined) addWarning(reply, warning);
      }
      return accountOut(account, rt);
    },
  );
  app.delete('/v1/accounts/:id', { schema: { operationId: 'deleteAccount', tags: ['accounts'], summary: 'Delete an account (its members are removed; its keys become unbound)', params: IdParams, response: { 204: z.null(), 404: Problem } } }, async (request, reply) => {
    await deleteAccount(rt, request.params.id, actorOf(request));
    return reply.code(204).send(null);
  });
  app.get('/v1/accounts/:id/usage', { schema: { operationId: 'getAccountUsage', tags: ['usage'], summary: "An account's plan and meters this period (usage, limit, remaining, overage) and its requests by key", params: IdParams, response: { 200: Usage, 404: Problem } } }, async (request) => {
    return usageOut(await accountUsage(rt, request.params.id, { keys: true }));
  });
  app.get(
    '/v1/accounts/:id/usage/daily',
    {
      schema: {
        operationId: 'getAccountDailyUsage',
        tags: ['usage'],
        summary: 'Daily requests (by status class), denials (by reason), units (by meter) and requests by key (metric key_requests, label: the key id)',
        params: IdParams,
        querystring: z
          .object({
            from: z.iso.date().optional().describe('The first day (UTC), included; default: 30 days before `to`'),
            to: z.iso.date().optional().describe('The last day (UTC), included; default: today'),
          })
          .strict(),
        response: { 200: z.array(z.object({ day: z.string(), metric: z.string(), label: z.string(), value: z.number() })) },
      },
    },
    async (request) => dailyUsage(rt, request.params.id, request.query),
  );
  app.put(
    '/v1/accounts/:id/gauges/:meter',
    {
      schema: {
        operationId: 'setGauge',
        tags: ['usage'],
        summary: 'Set a gauge meter (e.g. keywords tracked)',
        params: z.object({ id: z.string(), meter: z.string() }),
        body: z.object({ value: z.number().nonnegative() }).strict(),
        response: { 200: z.object({ meter: z.string(), value: z.number() }), 404: Problem },
      },
    },
    async (request) => {
      await setGauge(rt, request.params.id, request.params.meter, request.body.value);
      return { meter: request.params.meter, value: request.body.value };
    },
  );
  app.post(
    '/v1/forecast',
    {
      schema: {
        operationId: 'forecast',
        tags: ['usage'],
        summary: 'Price planned calls; with accountId, compare with the account\'s balance',
        body: z.object({ accountId: z.string().optional(), calls: z.array(PlannedCallSchema).min(1).max(1000) }).strict(),
        response: { 200: ForecastResult, 400: Problem, 404: Problem },
      },
    },
    async (request) => forecast(rt, request.body.calls, request.body.accountId),
  );

  // keys
  app.get('/v1/keys', { schema: { operationId: 'listKeys', tags: ['keys'], summary: 'Keys (never their secrets), a page at a time, of one account or all', querystring: z.object({ accountId: AccountFilter, ...PageQuery }).strict(), response: { 200: z.array(Key), 404: Problem } } }, async (request, reply) => {
    const now = rt.clock();
    const { accountId } = request.query;
    // A mistyped account is said, not answered as an account without keys (as the CLI does).
    if (accountId) await getAccount(rt, accountId);
    const keys = await paged(request, reply, (page) => rt.store.listKeys({ ...(accountId ? { accountId } : {}), ...page }));
    const blocked = await blockedUntilOf(rt, keys);
    return keys.map((k) => keyOut(k, now, blocked));
  });
  app.post(
    '/v1/keys',
    {
      schema: {
        operationId: 'createKey',
        tags: ['keys'],
        summary: 'Create a key; the secret is in this response only',
        body: z.object({ accountId: z.string(), name: z.string().min(1).max(100), mode: z.enum(['live', 'test']).optional(), scopes: keyScopes(' (default: all its plan allows, * where that is every scope)'), expiresAt: dateInput.nullable().optional(), rateLimits: KeyWindowsIn.optional() }).strict(),
        response: { 201: IssuedKey, 400: Problem, 404: Problem, 409: Problem },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const issued = await createKey(
        rt,
        {
          accountId: b.accountId,
          name: b.name,
          ...(b.mode ? { mode: b.mode } : {}),
          ...(b.scopes ? { scopes: b.scopes } : {}),
          ...(b.expiresAt ? { expiresAt: Date.parse(b.expiresAt) } : {}),
          ...(b.rateLimits ? { rateLimits: b.rateLimits } : {}),
        },
        actorOf(request),
      );
      await warnOfRefusedKey(reply, issued.key);
      // A new key of an account under an account-wide block is blocked too.
      return reply.code(201).send({ ...(await keyAnswer(issued.key)), secret: issued.secret });
    },
  );
  app.post(
    '/v1/keys/import',
    {
      schema: {
        operationId: 'importKey',
        tags: ['keys'],
        summary: 'Register a key the API issued before keygate (a migration); only its hash is kept',
        // expiresAt: the expiry the key had where it was issued (a Kong credential's ttl, say).
        body: z.object({ accountId: z.string(), name: z.string().min(1).max(100), secret: z.string().min(1).max(256), mode: z.enum(['live', 'test']).optional(), scopes: keyScopes(' (default: all its plan allows, * where that is every scope)'), expiresAt: dateInput.nullable().optional(), rateLimits: KeyWindowsIn.optional() }).strict(),
        response: { 201: Key, 400: Problem, 404: Problem, 409: Problem },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const imported = await createKey(
        rt,
        { accountId: b.accountId, name: b.name, ...(b.mode ? { mode: b.mode } : {}), ...(b.scopes ? { scopes: b.scopes } : {}), ...(b.expiresAt ? { expiresAt: Date.parse(b.expiresAt) } : {}), ...(b.rateLimits ? { rateLimits: b.rateLimits } : {}) },
        actorOf(request),
        { secret: b.secret },
      );
      await warnOfRefusedKey(reply, imported.key);
      return reply.code(201).send(await keyAnswer(imported.key));
    },
  );
  /**
   * A key made on an account whose keys are refused for now (API access off, the plan's
   * off, the plan expired) is made all the same: the answer says why its requests will be
   * refused, as the CLI says it on stderr but with the admin API's change (PATCH), before its
   * first request is the first sign.
   */
  async function warnOfRefusedKey(reply: FastifyReply, key: KeyRecord): Promise<void> {
    if (key.accountId === null) return;
    const warning = refusedKeyWarning(await getAccount(rt, key.accountId), rt.config.plans, rt.clock(), 'http');
    if (warning !== undefined) addWarning(reply, warning);
  }
  /** A key as GET /v1/keys/{id} gives it, also after a change: with `blockedUntil`, as far as the counters can say. */
  async function keyAnswer(key: KeyRecord): Promise<z.infer<typeof Key>> {
    return keyOut(key, rt.clock(), await blockedUntilOf(rt, [key]));
  }
  app.get('/v1/keys/:id', { schema: { operationId: 'getKey', tags: ['keys'], summary: 'One key: name, hint, mode, scopes, status, last used', params: IdParams, response: { 200: Key, 404: Problem } } }, async (request) => {
    return keyAnswer(await getKey(rt, request.params.id));
  });
  app.post('/v1/keys/:id/revoke', { schema: { operationId: 'revokeKey', tags: ['keys'], summary: 'Revoke: refused from the next request on, in every process', params: IdParams, response: { 200: Key, 404: Problem } } }, async (request) =>
    keyAnswer(await revokeKey(rt, request.params.id, actorOf(request))),
  );
  app.patch(
    '/v1/keys/:id',
    {
      schema: {
        operationId: 'updateKey',
        tags: ['keys'],
        summary: 'Rename a key, change its scopes or its own rate-limit windows (from its next request on, in every process)',
        params: IdParams,
        body: z.object({ name: z.string().min(1).max(100).optional(), scopes: keyScopes(', replacing its current ones'), rateLimits: KeyWindowsIn.nullable().optional().describe("Every window of its own the key should have, replacing its current ones; [] or null: none (its account's limits alone)") }).strict(),
        response: { 200: Key, 400: Problem, 404: Problem, 409: Problem },
      },
    },
    async (request) => keyAnswer(await updateKey(rt, request.params.id, request.body, actorOf(request))),
  );
  app.post(
    '/v1/keys/:id/unblock',
    {
      schema: {
        operationId: 'unblockKey',
        tags: ['keys'],
        summary: "Lift the key's rate-limit block and its account's, in every process; their violations are forgotten",
        params: IdParams,
        response: { 200: z.object({ key: Key, lifted: z.number().int().describe('blocks that were in force') }), 404: Problem },
      },
    },
    async (request) => {
      const { key, lifted } = await unblockKey(rt, request.params.id, actorOf(request));
      return { key: await keyAnswer(key), lifted };
    },
  );
  app.post(
    '/v1/keys/:id/rotate',
    {
      schema: {
        operationId: 'rotateKey',
        tags: ['keys'],
        summary: 'Issue a replacement; the old key stays valid for the overlap, then expires (revoked at once with keys.rotation: replace)',
        params: IdParams,
        // No body at all is the default overlap, as `{}` is.
        body: z
          .object({ overlap: z.string().optional().describe('"0", "1h", "24h", "7d", ...; default "24h", or "0" where the profile replaces rotated keys at once (keys.rotation: replace)') })
          .strict()
          .nullish(),
        response: {
          200: IssuedKey.extend({
            previous: Key,
            ended: z
              .array(z.object({ id: z.string(), hint: z.string() }))
              .describe('Earlier keys of the chain, still in an overlap, that this rotation revoked (keys.rotation: replace); empty when none'),
          }),
          400: Problem,
          404: Problem,
          409: Problem,
        },
      },
    },
    async (request, reply) => {
      const text = request.body?.overlap ?? defaultRotationOverlap(rt);
      const overlap = parseDuration(text);
      if (overlap === undefined) throw new OperationError('invalid', `overlap "${text}" is not a duration such as 1h, 24h or 7d${unitlessNumberHint(text, '"10m"')}`);
      const rotated = await rotateKey(rt, request.params.id, overlap, actorOf(request));
      await warnOfRefusedKey(reply, rotated.key);
      // The replacement shares the old key's account, and so its account-wide block.
      const blocked = await blockedUntilOf(rt, [rotated.key, rotated.previous]);
      const now = rt.clock();
      return rotationOut(rotated, now, blocked);
    },
  );

  // members and audit
  const Member = z.object({
    id: z.string(),
    email: z.string(),
    accountId: z.string().nullable(),
    role: z.enum(['member', 'operator']),
    status: z.enum(['active', 'invited']),
    createdAt: z.string(),
    lockedUntil: isoOrNull.describe(`Sign-ins with this email are paused for every address until then (after ${MAX_FAILED_SIGN_INS_PER_EMAIL} wrong passwords in a row from anywhere); null: they are not`),
  });
  const MembersQuery = z
    .object({
      accountId: AccountFilter,
      email: z.string().min(1, 'an e-mail address (leave email out for everyone)').optional().describe('Only the member or operator with this address (either case), as the CLI names them: the id a removal or an unlock takes'),
    })
    .strict();
  app.get('/v1/members', { schema: { operationId: 'listMembers', tags: ['members'], summary: 'Members and operators, with pending invitations; one by address', querystring: MembersQuery, response: { 200: z.array(Member), 404: Problem } } }, async (request) => {
    const now = rt.clock();
    const { accountId, email } = request.query;
    if (accountId) await getAccount(rt, accountId);
    const members =
      email === undefined
        ? await rt.store.listMembers(accountId ? { accountId } : {})
        : [await rt.store.findMemberByEmail(email)].filter((m): m is MemberRecord => m !== undefined && (!accountId || m.accountId === accountId));
    return members.map((m) => memberOut(m, now));
  });
  /** A dashboard link is made where the profile turns the dashboard off: the answer says it leads nowhere yet. */
  const warnIfDashboardOff = (reply: FastifyReply) => {
    const note = dashboardOffNote(rt.config);
    if (note !== undefined) addWarning(reply, note);
  };
  app.post(
    '/v1/members/invitations',
    {
      schema: {
        operationId: 'inviteMember',
        tags: ['members'],
        summary: 'Invite a member; the link (in this response only) lets them set a password',
        body: z.object({ email: z.string(), accountId: z.string().nullable().optional(), role: z.enum(['member', 'operator']).optional() }).strict(),
        response: {
          201: z.object({
            id: z.string(),
            email: z.string(),
            role: z.string(),
            url: z.string(),
            replacedInvitation: z.object({ accountId: z.string().nullable(), role: z.string() }).nullable().describe('a pending invitation of the same address, whose link stopped working'),
          }),
          400: Problem,
          404: Problem,
          409: Problem,
        },
      },
    },
    async (request, reply) => {
      const { body } = request;
      if ((body.accountId ?? null) === null && body.role !== 'operator') throw new OperationError('invalid', 'say whom the invitation is for: "accountId" (a member of that account) or "role": "operator" (sees every account)');
      const invitation = await inviteMember(rt, { email: body.email, accountId: body.accountId ?? null, ...(body.role ? { role: body.role } : {}) }, actorOf(request));
      warnIfDashboardOff(reply);
      return reply.code(201).send({ id: invitation.member.id, email: invitation.member.email, role: invitation.member.role, url: invitation.url, replacedInvitation: invitation.replaced ?? null });
    },
  );
  app.post(
    '/v1/members/password-resets',
    {
      schema: {
        operationId: 'createPasswordReset',
        tags: ['members'],
        summary: 'A one-time link (in this response only) for a member to choose a new password',
        body: z.object({ email: z.string() }).strict(),
        response: { 201: z.object({ id: z.string(), email: z.string(), url: z.string() }), 404: Problem },
      },
    },
    async (request, reply) => {
      const link = await passwordResetLink(rt, request.body.email, actorOf(request));
      warnIfDashboardOff(reply);
      return reply.code(201).send({ id: link.member.id, email: link.member.email, url: link.url });
    },
  );
  app.delete(
    '/v1/members/:id',
    { schema: { operationId: 'removeMember', tags: ['members'], summary: 'Remove a member or operator: signed out everywhere; their password and any pending link stop working', params: IdParams, response: { 204: z.null(), 404: Problem } } },
    async (request, reply) => {
      await removeMember(rt, { id: request.params.id }, actorOf(request));
      return reply.code(204).send(null);
    },
  );
  app.post(
    '/v1/members/:id/unlock',
    {
      schema: {
        operationId: 'unlockMember',
        tags: ['members'],
        summary: "Lift every sign-in pause of a member's email, its own and those of the addresses and /64s that guessed at it, in every process; the wrong passwords counted are forgotten",
        params: IdParams,
        response: { 200: z.object({ member: Member, lifted: z.boolean().describe('whether a pause was in force') }), 404: Problem },
      },
    },
    async (request) => {
      const { member, lifted } = await unlockMember(rt, { id: request.params.id }, actorOf(request));
      return { member: memberOut(member, rt.clock()), lifted };
    },
  );
  app.get(
    '/v1/audit',
    {
      schema: {
        operationId: 'listAuditEvents',
        tags: ['audit'],
        summary: 'Key and account events, newest first',
        querystring: z
          .object({
            accountId: AccountFilter,
            limit: pageLimit().default(AUDIT_PAGE).describe(`At most this many (default ${AUDIT_PAGE}), newest first; a Link header (rel="next") gives the older ones`),
            after: PageQuery.after,
          })
          .strict(),
        response: {
          200: z.array(
            z.object({
              id: z.string(),
              at: z.string(),
              actor: z.string().describe('Who made the change: admin-api (admin-api#2 for the second of several tokens), a dashboard member\'s email, cli, or dashboard for a sign-in lock'),
              actorAddress: z
                .string()
                .nullable()
                .describe('The client address the change was asked from, as the admin access log reads it (behind a proxy in trustedProxies, the client X-Forwarded-For names): the admin API\'s or the dashboard\'s; null for the CLI\'s and the library\'s, and for events written before keygate kept it'),
              action: z.string(),
              accountId: z.string().nullable(),
              keyId: z.string().nullable(),
              detail: z.record(z.string(), z.unknown()),
            }),
          ),
          404: Problem,
        },
      },
    },
    async (request, reply) => {
      const { accountId, after } = request.query;
      const entries = await paged(request, reply, (page) => rt.store.listAudit({ ...(accountId ? { accountId } : {}), ...page }), (e) => ({ createdAt: e.at, id: e.id }));
      // A deleted account's log stays (who deleted it, and when): only an id with neither an
      // account nor a line in the log is refused, as a mistyped one (the page past the last is empty).
      if (accountId && after === undefined && entries.length === 0) await getAccount(rt, accountId);
      return entries.map(auditEventOut);
    },
  );

  registerCheckRoutes(app, rt, { metrics: options.metrics, problem: Problem, ...options.check });
  registerAddressBlockRoutes(app, rt, { problem: Problem, actorOf });

  return app;
}

/** JSON's words, for a query string: what it holds are parameters (?account=), not fields. */
const QUERY_FORMAT: ProblemFormat = { ...JSON_FORMAT, member: 'parameter' };

/**
 * A plan the profile does not have, refused naming the field it was given in, as the
 * schema's refusals name theirs (`body.planId: no such plan; plans are: …`). The operation's
 * words are the dashboard's too, whose form picks the plan from a list, and the CLI's, which
 * names its option (--plan).
 */
function namingPlanField(error: unknown): never {
  if (error instanceof OperationError && error.withoutValue?.field === 'planId') throw new OperationError(error.kind, `body.planId: ${error.message}`);
  throw error;
}

/**
 * A request the route's schema refused, in words: each problem with where it is
 * (`body.expiresAt`), an unknown field with the one it most likely meant.
 */
function describeValidation(error: Error & { validation?: unknown; validationContext?: string }, request: FastifyRequest): string {
  const context = error.validationContext as 'body' | 'querystring' | 'params' | 'headers' | undefined;
  // fastify-type-provider-zod hands on each zod issue as { keyword: code, instancePath, message, params: the rest }.
  const issues = Array.isArray(error.validation) ? (error.validation as { keyword?: string; instancePath?: string; message?: string; params?: Record<string, unknown> }[]) : [];
  const schema = context === undefined ? undefined : (request.routeOptions.schema as Record<string, unknown> | undefined)?.[context];
  // zod leaves the value refused out of its issues: it is looked up in what was sent.
  const sent: unknown = context === 'body' ? request.body : context === 'querystring' ? request.query : context === 'params' ? request.params : context === 'headers' ? request.headers : undefined;
  const valueAt = (segments: readonly string[]) => segments.reduce<unknown>((value, segment) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[segment] : undefined), sent);
  // The fields of the part refused (its top level, an optional body's too; deeper ones are not suggested).
  let object: unknown = schema;
  while (object instanceof z.ZodOptional || object instanceof z.ZodNullable) object = object.unwrap();
  const knownFields = (path: readonly PropertyKey[]) => (path.length === 0 && object instanceof z.ZodObject ? Object.keys(object.shape) : []);
  const described = issues.map((issue) => {
    const segments = issue.instancePath?.split('/').slice(1).filter(Boolean) ?? [];
    const zodIssue = issue.keyword && issue.params ? ({ ...issue.params, code: issue.keyword, path: segments, message: issue.message ?? '', input: valueAt(segments) } as z.core.$ZodIssue) : undefined;
    const path = segments.join('.');
    const where = [error.validationContext, path].filter(Boolean).join('.');
    // No body at all, where one is needed: say so, not "got null".
    if (where === 'body' && zodIssue?.code === 'invalid_type' && (zodIssue.input === null || zodIssue.input === undefined)) return NO_BODY;
    // A query parameter given twice comes as a list: said so, not "expected a string, got an array".
    if (context === 'querystring' && segments.length === 1 && Array.isArray(zodIssue?.input) && zodIssue.code === 'invalid_type') return `${where}: given ${zodIssue.input.length} times; give it once`;
    // The schema's own messages ("must be a path starting with /") as they are; zod's in keygate's words.
    const message = zodIssue && isZodDefault(zodIssue.message) ? describeProblem(zodIssue, knownFields, context === 'querystring' ? QUERY_FORMAT : JSON_FORMAT) : (issue.message ?? 'invalid');
    return `${where || '(request)'}: ${message}`;
  });
  // A value that misses two rules with one message (a count both fractional and too large) says it once.
  return described.length > 0 ? [...new Set(described)].join('; ') : error.message;
}
