/**
 * keygate as a library for a backend in any language: `POST /v1/check` runs the library's
 * `check` (steps 1–7) on a request the backend received, and `POST /v1/check/{id}/settle`
 * its `settle` once the backend has answered. A refusal is a 200 too: the check worked,
 * and its answer is the error to send, exactly as the library renders it.
 *
 * @example
 * // POST /v1/check {"method":"GET","url":"/v1/rows","headers":{"authorization":"Bearer sk_live_…"},"remoteAddress":"203.0.113.5"}
 * // → {"allowed":true,"settle":"chk_…","identity":{…},"headers":{"ratelimit":"…"},…}
 * // POST /v1/check/chk_…/settle {"status":200,"records":12}
 * // → {"id":"chk_…","status":200,"charged":true}
 */
import { isIP } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Runtime } from '../runtime.js';
import type { Metrics } from '../metrics.js';
import { requestChecker, type CheckResult } from '../library.js';
import { scopesHeader } from '../gateway/forward.js';
import { MAX_REPORTED } from '../meters/cost.js';
import { OperationError } from '../operations/errors.js';
import { DEFAULT_MAX_PENDING, DEFAULT_SETTLE_TIMEOUT_MS, PendingChecks, UNSETTLED_STATUS, type CheckFate } from './pending-checks.js';

export type AdminApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

export interface CheckRouteOptions {
  metrics: Metrics;
  /** Unsettled checks are released after this long (ms); default 10 minutes. */
  settleTimeoutMs?: number;
  /** Checks held waiting for a settle, at most; default 50,000. */
  maxPending?: number;
  /** The admin API's problem details, as its refusals are declared. */
  problem: z.ZodType;
}

/** An HTTP method as a request line carries it (a token). */
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$/;
/** The longest target taken: far past what any HTTP server reads in a request line. */
const MAX_URL = 65_536;
/** A request target in origin form (`/v1/rows?page=2`) or absolute form (`http://host/v1/rows`), as a request line carries one the gateway reads. */
const ORIGIN_OR_ABSOLUTE_FORM = /^(\/|https?:\/\/)/i;

const CheckBody = z
  .object({
    method: z.string().regex(METHOD, 'an HTTP method, as the client sent it: GET, POST, …').describe(
        "The method the client sent, in its case. One Node's HTTP parser does not read, a method it does not know (FOO) or one in lower case (get), is refused as bad_request, as the gateway refuses it",
      ),
    url: z
      .string()
      .max(MAX_URL, `a path and query of at most ${MAX_URL} characters`)
      .regex(ORIGIN_OR_ABSOLUTE_FORM, 'must be the request target as the client sent it: the path and query, starting with / (e.g. /v1/rows?page=2), or a whole http(s) URL')
      .describe(
        'The request target as the backend received it, still percent-encoded: path and query string (a key in the query is read as the gateway reads it), or the whole URL of an absolute-form request line (http://host/v1/rows), judged by its path and query as the gateway judges it. One with a space, a control character or a character outside ASCII (/v1/ünïcode, ?q=a b), which no request line carries, is refused as bad_request, as the gateway refuses it',
      ),
    headers: z
      .record(z.string(), z.union([z.string(), z.array(z.string())], { error: 'a header value: a string, or an array of strings for a header sent more than once' }))
      .optional()
      .describe(
        'The request headers as the client sent them (names in any case): left out, read as a request sent with none (a QUERY without a Content-Type is refused as bad_request, as the gateway refuses it); an array: a header sent more than once (two Authorization headers are refused as malformed_key, as the gateway refuses them). A Host that names no host (empty, a/b?c, user@host) or two Host headers are refused as bad_request, as the gateway refuses them; no Host is taken',
      ),
    remoteAddress: z
      .string()
      .refine((text) => isIP(text) !== 0, "an IP address, the client's as the backend saw it (192.0.2.7, 2001:db8::1)")
      .optional()
      .describe(
        "The address of the client that sent the request, as the backend's socket saw it (the library's remoteAddress), never the backend's own: with auth.unknownKeys, unknown keys are counted per such address (an IPv6 /64 as one) and a blocked one is refused too_many_failures. Behind a proxy in trustedProxies, the X-Forwarded-For in headers names the client. Left out: nothing is counted",
      ),
  })
  .strict();

const RenderedError = z.object({
  status: z.number().int(),
  reasonPhrase: z.string().optional().describe("The status line's text, where the profile gives its own"),
  headers: z.record(z.string(), z.string()).describe('Content-Type, WWW-Authenticate, Retry-After, RateLimit, …: send them all'),
  body: z.string().describe('The body, byte for byte as the gateway sends it (in UTF-8)'),
});

const Admitted = z.object({
  allowed: z.literal(true),
  settle: z.string().describe(`The id to settle with (POST /v1/check/{id}/settle) once the backend has answered; released unsettled (as status ${UNSETTLED_STATUS}) after the settle timeout, 10 minutes by default`),
  url: z.string().describe('The target without credential parameters (nor any other holding a key): what to route by and log'),
  identity: z.object({
    account: z.object({ id: z.string(), name: z.string() }),
    key: z.object({ id: z.string(), name: z.string(), hint: z.string(), mode: z.enum(['live', 'test']), scopes: z.array(z.string()).describe('Its scopes within what its plan allows now (as the gateway tells the upstream)') }),
    plan: z.object({ id: z.string(), name: z.string().describe("The plan's name, or its id where the profile gives it none") }),
  }),
  route: z.object({ name: z.string().describe('The route the request matched, as the profile names it (or its method and path)'), builtin: z.boolean() }),
  headers: z.record(z.string(), z.string()).describe('RateLimit fields to add to the answer'),
  builtin: z
    .object({ status: z.number().int(), contentType: z.string(), body: z.string() })
    .optional()
    .describe("A built-in endpoint's (usage, subscription) answer: send it as it is, then settle with its status"),
});
const Refused = z.object({
  allowed: z.literal(false),
  reason: z.string().describe('Why, as logs and metrics name it (missing_key, rate_limited, …); the client sees only error'),
  error: RenderedError.describe("The answer to send, in the API's dialect, exactly as the gateway sends it"),
  misplaced: z
    .object({
      in: z.enum(['header', 'cookie', 'query']),
      name: z.string().describe("The header's, cookie's or query parameter's name as sent ('' for a query pair or cookie without a name), anything shaped like a key in it hidden"),
    })
    .optional()
    .describe('A missing_key refusal whose request holds a key where the profile does not read keys (X-API-Key, a cookie, ?api_key=): where, never the key, for your log (the gateway logs it as sentIn)'),
});

/** One range for a count that is not one, whichever bound it missed (as docs/library.md gives it). */
const RECORDS_RANGE = `a whole number from 0 to ${MAX_REPORTED}`;

const SettleBody = z
  .object({
    status: z.number().int().min(100, 'an HTTP status, 100 to 599').max(599, 'an HTTP status, 100 to 599').describe('The status the backend answered: a 2xx charges the cost, anything else releases it'),
    records: z
      .number()
      .int(RECORDS_RANGE)
      .min(0, RECORDS_RANGE)
      .max(MAX_REPORTED, RECORDS_RANGE)
      .optional()
      .describe("Per-record routes: the records the answer held (else what the check reserved is charged; a 204 or 205, which has no body, is charged no records)"),
  })
  .strict();

/** A settle id as POST /v1/check gives it. */
const CHECK_ID = /^chk_[0-9A-Za-z]{16}$/;

/** How a settle that finds no pending check is told why. */
function notPending(id: string, fate: CheckFate | undefined, timeoutMs: number): string {
  // Quoted only when it has a check id's shape: a client may have put a key there by mistake.
  if (fate === undefined) return `no check ${CHECK_ID.test(id) ? `${id} ` : 'with that id '}is waiting for a settle: its id is not one POST /v1/check gave (or it was forgotten, ${timeoutMs / 1000} s after it ended)`;
  if (fate.kind === 'settled') return `check ${id} was settled already (status ${fate.status}): a second settle changes nothing`;
  const why = { timeout: `it was not settled within ${timeoutMs / 1000} s`, evicted: 'more checks were waiting for their settle than the admin API holds', shutdown: 'keygate was stopping' }[fate.why];
  return `check ${id} was released unsettled, its reservation given back (as status ${UNSETTLED_STATUS}), because ${why}: this settle changes nothing`;
}

/** POST /v1/check and POST /v1/check/{id}/settle, and the pending checks between them. */
export function registerCheckRoutes(app: AdminApp, rt: Runtime, options: CheckRouteOptions): void {
  const timeoutMs = options.settleTimeoutMs ?? DEFAULT_SETTLE_TIMEOUT_MS;
  const { metrics, problem: Problem } = options;
  const pending = new PendingChecks({
    timeoutMs,
    max: options.maxPending ?? DEFAULT_MAX_PENDING,
    clock: rt.clock,
    log: rt.log,
    onReleased: (why) => metrics.checkReleased(why),
  });
  const check = requestChecker(rt, { caller: 'admin API check', onCharged: (units, meter) => metrics.units(meter, units) });
  app.addHook('onClose', () => pending.close());

  app.post(
    '/v1/check',
    {
      schema: {
        operationId: 'checkRequest',
        tags: ['check'],
        summary: "Check a request a backend received, as the gateway would (credential, key, account and plan, route and scopes, blocks and rate limits, the cost reserved)",
        description:
          'For a backend that is not Node.js (keygate as a library, over HTTP). A refusal is a 200 too, with allowed: false and the error to send as it is. An admitted request is settled with POST /v1/check/{id}/settle once the backend has answered: a 2xx charges the route\'s cost, anything else releases it; one not settled within 10 minutes is released.',
        body: CheckBody,
        response: { 200: z.discriminatedUnion('allowed', [Admitted, Refused]), 400: Problem },
      },
    },
    async (request) => {
      const { method, url, headers = {}, remoteAddress } = request.body;
      // The end client's address is the pipeline's peer, as the library's check takes it: the admin API's own peer is the backend.
      const result: CheckResult = await check({ method, url, headers, ...(remoteAddress === undefined ? {} : { remoteAddress }) }, () => {});
      if (!result.allowed) return { allowed: false as const, reason: result.reason, error: result.error, ...(result.misplaced === undefined ? {} : { misplaced: result.misplaced }) };
      const { identity, route } = result;
      const id = pending.add(result);
      return {
        allowed: true as const,
        settle: id,
        url: result.url,
        identity: {
          account: { id: identity.account.id, name: identity.account.name },
          key: { id: identity.key.id, name: identity.key.name, hint: identity.key.hint, mode: identity.key.mode, scopes: scopesHeader(identity.key.scopes, identity.plan.scopes).split(' ').filter(Boolean) },
          plan: { id: identity.planId, name: identity.plan.name ?? identity.planId },
        },
        route: { name: route.name, builtin: route.kind === 'builtin' },
        headers: { ...result.headers },
        ...(route.kind === 'builtin' ? { builtin: { status: route.builtin.status, contentType: route.builtin.contentType, body: result.builtinBody ?? '' } } : {}),
      };
    },
  );

  app.post(
    '/v1/check/:id/settle',
    {
      schema: {
        operationId: 'settleCheck',
        tags: ['check'],
        summary: "Settle a check once the backend has answered: a 2xx charges the route's cost (per record: the records given), anything else releases it",
        description: 'A second settle, or one after the check was released unsettled, is a 404 saying so, and changes nothing.',
        params: z.object({ id: z.string() }),
        body: SettleBody,
        response: { 200: z.object({ id: z.string(), status: z.number().int(), charged: z.boolean().describe('true: a 2xx, the cost charged; false: released') }), 400: Problem, 404: Problem },
      },
    },
    async (request) => {
      const { id } = request.params;
      const { status, records } = request.body;
      const outcome = await pending.settle(id, status, records);
      if (outcome === undefined || !outcome.settled) throw new OperationError('not_found', notPending(id, outcome?.fate, timeoutMs));
      // The library's settle outcome, named by the check it settled.
      return { id, ...outcome.outcome };
    },
  );
}
