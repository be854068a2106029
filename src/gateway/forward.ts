/**
 * Forwarding (step 8) and settling (step 9) over an undici keep-alive pool. Each
 * forwarded request is one `Exchange`, undici's dispatch handler: the request body
 * streams up, and the upstream's answer streams straight into the client's response,
 * with backpressure, no intermediate stream and no header object built twice.
 *
 * On the way up the credential (header and query parameter, and any other parameter or
 * header whose value or name holds a key: `headerKeyTest`, `headerNameKeyTest`; with
 * `auth.forwardCredential`, all but the header or parameter the key was read from), hop-by-hop headers, any header the `Connection` header names, `Expect`
 * (keygate has answered it) and any identity header the client made up are dropped (and the dashboard's cookies, which a
 * browser signed in to it on the same host sends here too), and so is every header in which an
 * upstream could read another client, scheme, host, path or method (OVERRIDES_REQUEST);
 * identity and X-Forwarded headers are added (X-Forwarded-Proto, -Host and -Port as a
 * trusted proxy sent them, if it did and they are values one sets). On the way down
 * hop-by-hop headers, the record-count header and gauge headers are dropped, and the
 * RateLimit fields are added. The answer's head is written with the first byte of its
 * body (or at its end), so an upstream that fails in between is still a 502; an event
 * stream's head is sent at once.
 *
 * A 2xx commits the route's cost once its body begins, or, where records are counted (from
 * a response header, or from the JSON body as it streams past), once its body is over;
 * anything else, an upstream failure, or a client that hangs up before the answer
 * releases it.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
// Node's global `performance` is a getter that runs on every read; the module's export is the object itself.
import { performance } from 'node:perf_hooks';
import { Pool, type Dispatcher } from 'undici';
import type { Runtime } from '../runtime.js';
import type { Route } from '../config/schema.js';
import type { Identity } from '../pipeline/identity.js';
import type { Reservation } from '../counters/counters.js';
import { deny, type Denial } from '../denial/reasons.js';
import { credentialHeaderNames, extractCredential, forwardedTargetOf, headerKeyTest, headerNameKeyTest, type FoundCredential } from '../auth/credential.js';
import { parseRecordHeader } from '../meters/cost.js';
import { JsonRecordCounter } from '../meters/json-records.js';
import { settleCharge, type OnCharged } from '../pipeline/settle.js';
import { CONCURRENCY_RETRY_AFTER_S } from '../pipeline/pipeline.js';
import { redactUrl } from '../store/open.js';
import { oncePer } from '../log.js';
import { upstreamFailureHint } from '../upstream-failure.js';
import { trustedProxyCheck } from './trusted-proxies.js';
import { withoutDashboardCookies } from '../dashboard/cookie-names.js';
import { declareHeaderNames } from './undici-header-names.js';
import { isHostValue } from '../host-value.js';
import { accountNameValue, identityHeaderNames, type IdentityField } from './identity-headers.js';
import { lastOnItsConnection } from '../http-internals.js';
import { OVERRIDES_REQUEST } from './overriding-headers.js';
import { bodyStillComing, closeAfterBody, hasBody } from './early-answer.js';
import { continueTolerantConnector } from './unasked-continue.js';

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1). */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
/**
 * Request headers never forwarded besides those: `host` (undici names the upstream),
 * `expect` (keygate answered `100-continue` itself; undici refuses the header) and
 * `proxy`, which no HTTP message defines and a CGI-style upstream reads as its
 * `HTTP_PROXY` setting for its own outgoing calls ("httpoxy"). The X-Forwarded ones,
 * which keygate writes itself, go by their prefix (X_FORWARDED).
 */
const NOT_FORWARDED = ['host', 'expect', 'proxy'];
const X_FORWARDED = 'x-forwarded-';
/** What a load balancer's X-Forwarded-Proto and -Port can be. */
const FORWARDED_PROTO = /^https?$/i;
const FORWARDED_PORT = /^[0-9]{1,5}$/;
/** The X-Forwarded headers keygate writes. */
const FORWARDED_NAMES = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port'];
/**
 * Request headers that would change the body records are counted in (compressed, or only
 * a part of it): not forwarded where records are counted in the JSON body.
 */
const CHANGES_COUNTED_BODY = new Set(['accept-encoding', 'range', 'if-range']);
/** How long idle upstream connections are kept for reuse. */
const UPSTREAM_KEEP_ALIVE_MS = 60_000;
/** undici's error codes for an upstream that did not answer in time. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

export interface ForwardHooks {
  /** Units charged for an answer (after the plan's cap), once known. */
  onCharged: OnCharged;
  /**
   * The upstream failed before answering: the client gets this denial (and it is finished
   * there); the log line and metrics name `failure`, which the denial may render otherwise.
   */
  onUpstreamError(request: FastifyRequest, reply: FastifyReply, denial: Denial, identity: Identity, failure: UpstreamFailure): void;
  /** Not forwarded (its account has too many requests in flight): the client gets this denial. */
  onRefused(request: FastifyRequest, reply: FastifyReply, denial: Denial, identity: Identity): void;
  /** The exchange is over: the answer was sent in full, or cut (`status` undefined if the client left first). */
  onFinished(request: FastifyRequest, status: number | undefined): void;
}

export interface Forwarder {
  /** Whether the account has as many requests in flight as it may (the pipeline asks before the counters). */
  accountBusy(accountId: string): boolean;
  forward(request: FastifyRequest, reply: FastifyReply, identity: Identity, route: Route, reservation: Reservation | undefined, rateLimitHeaders: Record<string, string>): void;
  close(): Promise<void>;
}

/** How an upstream failed before it answered, as the log line and metrics name it. */
export type UpstreamFailure = 'upstream_unavailable' | 'upstream_timeout';

/**
 * What the client of a request whose upstream refused the connection gets:
 * upstream_unavailable (502 by default), the answer of a gateway whose upstream is
 * somebody else's. While the upstream keygate started itself (upstream.spawn) is down and
 * will be started again, that upstream is part of this service, which is then briefly
 * unavailable, as when a backend is away: the profile's service_unavailable (503 by
 * default), with Retry-After the time until that next try (at least 1 s).
 */
function upstreamUnavailable(rt: Runtime): Denial {
  const nextStartInMs = rt.upstreamNextStartInMs?.();
  return nextStartInMs === undefined ? deny('upstream_unavailable') : deny('service_unavailable', { retryAfterSeconds: nextStartInMs / 1000 });
}

/** What an exchange needs from its forwarder, fixed for the life of the process. */
interface Upstream {
  rt: Runtime;
  hooks: ForwardHooks;
  /** Response header (lower case) → the gauge meter it reports; undefined where the profile has no gauges. */
  gaugeByHeader: Map<string, string> | undefined;
  /** Writes the warning for a failed upstream request, at most once every FAILURE_LOG_INTERVAL_MS. */
  logFailure: ReturnType<typeof oncePer>;
  /** upstream.url, passwords masked, for those warnings (a reload does not change it). */
  redactedUrl: string;
  /** upstream.url as given, for those warnings' hint (its scheme and port; never logged). */
  url: string;
}

/**
 * How often the warning for a failed upstream request is written, at most: with the
 * upstream down every request fails, and each already has its access line (and metric).
 */
const FAILURE_LOG_INTERVAL_MS = 10_000;

/** The requests of one account in flight upstream. */
interface InFlight {
  count: number;
}

/**
 * Accounts whose requests-in-flight count is kept (one object each, reused: a busy
 * account's count is not made and dropped with every request); past this many, those
 * with none in flight are forgotten.
 */
const IN_FLIGHT_SWEEP_AT = 10_000;

export function createForwarder(rt: Runtime, hooks: ForwardHooks): Forwarder {
  const { config } = rt;
  // serve refuses a profile without one before it builds the gateway (a library's profile may have none).
  const url = config.upstream.url;
  if (url === undefined) throw new Error('the gateway forwards to upstream.url, and the profile has none');
  const pool = new Pool(url, {
    connections: config.upstream.connections,
    pipelining: 1,
    keepAliveTimeout: UPSTREAM_KEEP_ALIVE_MS,
    headersTimeout: config.upstream.timeout,
    bodyTimeout: config.upstream.timeout,
    // Sockets that pass over a `100 Continue` the upstream sends unasked (undici fails on one).
    connect: continueTolerantConnector(),
  });
  const upstream: Upstream = {
    rt,
    hooks,
    gaugeByHeader: Object.keys(config.gauges).length > 0 ? new Map(Object.entries(config.gauges).map(([meter, g]) => [g.header.toLowerCase(), meter])) : undefined,
    logFailure: oncePer(FAILURE_LOG_INTERVAL_MS),
    redactedUrl: redactUrl(url),
    url,
  };
  // One account cannot take every connection of the pool (with slow uploads, say, or a
  // slow endpoint): the others' requests would wait behind its own, however few they are.
  const maxInFlight = config.upstream.maxInFlightPerAccount ?? Math.max(1, Math.ceil(config.upstream.connections / 2));
  const inFlight = new Map<string, InFlight>();
  // Written in lower case (header names are case-insensitive; HTTP/2 allows nothing else):
  // undici checks a lower-case name without copying it first.
  const identityPrefix = config.identityHeaders.prefix.toLowerCase();
  const names = identityHeaderNames(config.identityHeaders);
  /** The identity headers named in full (identityHeaders.names), as a CGI-style upstream reads them too (underscores for dashes). */
  const named = Object.values(names).flatMap((name) => (name === undefined || name.startsWith(identityPrefix) ? [] : [name, name.replaceAll('_', '-')]));
  // And the identity headers an earlier gateway set, which the upstream may still read.
  const dropped = new Set([...HOP_BY_HOP, ...NOT_FORWARDED, ...OVERRIDES_REQUEST, ...credentialHeaderNames(config.auth.credentials), ...config.identityHeaders.drop.map((name) => name.toLowerCase()), ...named]);
  declareHeaderNames([...Object.values(names).filter((name) => name !== undefined), ...FORWARDED_NAMES]);
  /** keygate's identity headers for one request, as undici's flat [name, value, ...] list. */
  const identityHeaders = identityHeaderList(names);
  const credentials = config.auth.credentials;
  /** The request target without credential parameters, or any other whose value is a key, as the upstream gets it. */
  const forwardedTarget = forwardedTargetOf(credentials, rt.keyFormat);
  /** Whether a header's value holds a key (then it is not forwarded); keys without a prefix are looked for as the caller's own only. */
  const holdsKey = headerKeyTest(rt.keyFormat);
  /** Whether a header's name holds a key (`X-sk_live_<key>`, a client's names swapped with its values): not forwarded either. */
  const nameHoldsKey = headerNameKeyTest(rt.keyFormat);
  const bareKeys = rt.keyFormat.bareKeys;
  /** `auth.forwardCredential`: the header or parameter the key was read from goes on as sent (read once per request, only then). */
  const forwardCredential = config.auth.forwardCredential;
  const impersonates = (name: string) => dropped.has(name) || name.startsWith(identityPrefix) || name.startsWith(X_FORWARDED);
  const fromTrustedProxy = trustedProxyCheck(config.trustedProxies);
  /** Whether request lines are logged now (log.requests, which a reload may change). */
  const logsRequests = () => rt.config.log.requests;

  /** The credential the request presented (it was admitted: there is one). */
  function presented(request: FastifyRequest): FoundCredential | undefined {
    const raw = request.raw;
    const credential = extractCredential({ headers: raw.headers, url: raw.url ?? '/', rawHeaders: raw.rawHeaders }, credentials);
    return credential.kind === 'found' ? credential : undefined;
  }

  /**
   * The headers the upstream receives, as undici's flat [name, value, ...] list. keygate's
   * own come first: an upstream that keeps only the first N headers (Node keeps 2,000)
   * drops some of a client's many headers, never the identity.
   */
  function upstreamHeaders(request: FastifyRequest, identity: Identity, plainBody: boolean, forwarded: FoundCredential | undefined): string[] {
    const headers = request.raw.headers;
    // The caller's key, read again (the pipeline keeps no copy): for every header where it is all a key without a
    // prefix is told by; else only once a header holds a prefix or a `%` (its prefix may follow a letter there).
    let ownRead = false;
    let ownSecret: string | undefined;
    const ownKey = (): string | undefined => {
      if (!ownRead) {
        ownRead = true;
        ownSecret = (forwarded ?? presented(request))?.secret;
      }
      return ownSecret;
    };
    const own = bareKeys ? ownKey() : ownKey;
    const out = identityHeaders(identity);
    const socket = request.raw.socket as { remoteAddress?: string; encrypted?: boolean };
    // The address the gateway's record read as the request arrived: the same (Node keeps a
    // socket's peer once read), and each `remoteAddress` read costs a few hundred instructions.
    const peer = request.keygate?.peer ?? socket.remoteAddress ?? '';
    const forwardedFor = headers['x-forwarded-for'];
    out.push('x-forwarded-for', forwardedFor === undefined || holdsKey(String(forwardedFor), own) ? peer : `${String(forwardedFor)}, ${peer}`);
    // From a trusted load balancer, how the client reached it; from anyone else, how the
    // client reached keygate. A value no load balancer would set (a client's, passed on)
    // is not passed on either: keygate's own stands in for it.
    const viaProxy = fromTrustedProxy?.(peer) === true;
    const proto = viaProxy ? headers['x-forwarded-proto'] : undefined;
    out.push('x-forwarded-proto', typeof proto === 'string' && FORWARDED_PROTO.test(proto) ? proto : socket.encrypted ? 'https' : 'http');
    const host = viaProxy ? headers['x-forwarded-host'] : undefined;
    const forwardedHost = typeof host === 'string' && isHostValue(host) ? host : headers.host;
    if (forwardedHost !== undefined && !holdsKey(forwardedHost, own)) out.push('x-forwarded-host', forwardedHost);
    const port = viaProxy ? headers['x-forwarded-port'] : undefined;
    if (typeof port === 'string' && FORWARDED_PORT.test(port)) out.push('x-forwarded-port', port);
    // Records are counted in the body as sent: it must come whole and uncompressed.
    if (plainBody) out.push('accept-encoding', 'identity');
    // `auth.forwardCredential`: the header the key came from, as sent (with its scheme); the
    // other credential headers are dropped still, and so is every other copy of the key.
    if (forwarded?.sent !== undefined) out.push(forwarded.location.name.toLowerCase(), forwarded.sent);
    const listed = listedInConnection(headers.connection);
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || impersonates(name) || listed?.includes(name) || nameHoldsKey(name, own)) continue;
      // `X_Keygate_Account` is `X-Keygate-Account` to a CGI-style upstream (both become
      // HTTP_X_KEYGATE_ACCOUNT): read with dashes, a name must pass the same rules.
      const dashed = name.includes('_') ? name.replaceAll('_', '-') : name;
      if (dashed !== name && impersonates(dashed)) continue;
      if (plainBody && CHANGES_COUNTED_BODY.has(dashed)) continue;
      if (name === 'cookie' && typeof value === 'string') {
        // A dashboard session on the same host is no business of the upstream's.
        const kept = withoutDashboardCookies(value);
        if (kept !== undefined && !holdsKey(kept, own)) out.push(name, kept);
        continue;
      }
      if (typeof value === 'string') {
        if (!holdsKey(value, own)) out.push(name, value);
      } else {
        for (const item of value) if (!holdsKey(item, own)) out.push(name, item);
      }
    }
    return out;
  }

  return {
    accountBusy: (accountId) => (inFlight.get(accountId)?.count ?? 0) >= maxInFlight,
    forward(request, reply, identity, route, reservation, rateLimitHeaders) {
      const accountId = identity.account.id;
      let slot = inFlight.get(accountId);
      if (slot === undefined) {
        if (inFlight.size >= IN_FLIGHT_SWEEP_AT) for (const [id, idle] of inFlight) if (idle.count === 0) inFlight.delete(id);
        inFlight.set(accountId, (slot = { count: 0 }));
      } else if (slot.count >= maxInFlight) {
        // The pipeline refuses such a request before the counters; one that got past it
        // while its counters answered (Redis) is refused here, with its rate-limit hit
        // counted. Nothing was forwarded: its reservation is released.
        void settleCharge(rt, accountId, request.method, route, reservation, 0, undefined, hooks.onCharged);
        hooks.onRefused(request, reply, deny('concurrency_limited', { retryAfterSeconds: CONCURRENCY_RETRY_AFTER_S }), identity);
        return;
      }
      const exchange = new Exchange(upstream, request, reply, identity, route, reservation, rateLimitHeaders, slot);
      const forwarded = forwardCredential ? presented(request) : undefined;
      const options: Dispatcher.DispatchOptions = {
        path: forwardedTarget(request.raw.url ?? '/', request.raw.headers, request.raw.rawHeaders, forwarded),
        method: request.method as Dispatcher.HttpMethod,
        headers: upstreamHeaders(request, identity, exchange.countsJson, forwarded),
        body: requestBody(request, reply.raw),
      };
      // Taken only now: from here on the exchange ends in onResponseEnd or onResponseError
      // (or its client leaves while it waits for a connection), which give it back; a
      // throw before would have kept it for good.
      exchange.takePlace();
      // The upstream's time is for the request line alone: without one, no clock is read for it.
      if (logsRequests()) {
        const record = request.keygate;
        if (record) record.forwardedAt = performance.now();
      }
      pool.dispatch(options, exchange);
    },
    close: () => pool.close(),
  };
}

/** Set on a request whose client waits for `100 Continue` before it sends its body, until keygate sends it. */
export const AWAITS_CONTINUE = Symbol('keygate: client awaits 100 Continue');
export type AwaitingRequest = IncomingMessage & { [AWAITS_CONTINUE]?: boolean };

/**
 * The body to stream upstream: what Fastify handed over, or, for a GET or HEAD (whose
 * bodies Fastify leaves unread), the request itself when it has one (a search API may take
 * its query as a GET body); null for none. A client waiting for `100 Continue` is told to
 * send it now.
 */
function requestBody(request: FastifyRequest, res: ServerResponse): Readable | null {
  const body = request.body instanceof Readable ? request.body : hasBody(request.raw) ? request.raw : null;
  const raw = request.raw as AwaitingRequest;
  if (body !== null && raw[AWAITS_CONTINUE] === true) {
    raw[AWAITS_CONTINUE] = false;
    res.writeContinue();
  }
  return body;
}

/** When an answer's head is written: with the first of its body, at its end (it has none), or before its body (an event stream's). */
type HeadSentAt = 'body' | 'end' | 'early';

/**
 * One forwarded request, from dispatch to the last byte of the answer. undici calls the
 * `onResponse*` methods; the client's response is written directly.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly countsJson: boolean;
  private readonly res: ServerResponse;
  private controller: Dispatcher.DispatchController | null = null;
  private settled = false;
  /** The answer's head has been written to the client. */
  private headSent = false;
  /**
   * The answer's head, kept from its arrival until the first byte of its body (or its
   * end): an upstream that fails in between has sent the client nothing, which then gets
   * a 502 in the API's envelope and pays nothing, instead of a cut connection.
   */
  private head: { statusMessage: string | undefined; headers: (string | string[])[]; recordHeader: string | undefined; countSent: boolean; records: number | undefined } | null = null;
  /** The exchange is over (answered in full, or failed). */
  private done = false;
  private clientLeft = false;
  /** Counts the records of a JSON answer as it passes on to the client. */
  private counter: JsonRecordCounter | null = null;
  /** The records a 2xx's header counted, charged once its body is over (not if the upstream cuts it). */
  private headerRecords: number | undefined = undefined;
  /**
   * A 2xx whose record-count header was missing or held no count, and whose head went before
   * its body (an event stream's): charged the estimate once a body has begun, no records if
   * it ends without one.
   */
  private uncounted: 'missing' | 'unreadable' | undefined = undefined;
  /** Some of the answer's body has been passed on to the client. */
  private bodySent = false;
  private status = 0;
  /** Its place among its account's requests in flight. */
  private place: 'none' | 'taken' | 'given back' = 'none';

  constructor(
    private readonly upstream: Upstream,
    private readonly request: FastifyRequest,
    private readonly reply: FastifyReply,
    private readonly identity: Identity,
    private readonly route: Route,
    private readonly reservation: Reservation | undefined,
    private readonly rateLimitHeaders: Record<string, string>,
    /** The account's requests in flight, this one among them until the exchange is over. */
    private readonly inFlight: InFlight,
  ) {
    this.res = reply.raw;
    const records = route.cost?.records;
    // A HEAD answer has no body: no records to count, none delivered.
    this.countsJson = records !== undefined && 'json' in records && request.method !== 'HEAD';
    // A client that hangs up before the answer stops the upstream request and pays
    // nothing; one that hangs up midway stops it too. ('close' also follows every
    // normal end, when there is nothing left to do.) One shared listener, no closure.
    (this.res as ExchangeResponse)[EXCHANGE] = this;
    this.res.on('close', onResponseClose);
    // The client may have hung up while the request waited on the pipeline (a key
    // lookup, Redis): its 'close' came before this listener. Nothing is sent upstream.
    if (this.res.destroyed) this.clientGone();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientLeft) controller.abort(new Error('the client went away'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (statusCode < 200) return; // 1xx: the final answer follows
    if (statusCode > 599) {
      // No such status (RFC 9110 §15): not passed on as if it meant something.
      controller.abort(new Error(`upstream answered with status ${statusCode}`));
      return;
    }
    this.status = statusCode;
    const record = this.request.keygate;
    if (record && record.forwardedAt !== undefined) record.upstreamMs = performance.now() - record.forwardedAt;
    const { rt, gaugeByHeader } = this.upstream;
    const records = this.route.cost?.records;
    const recordHeader = records && 'header' in records ? records.header.toLowerCase() : undefined;
    const listed = listedInConnection(headers.connection);
    const out: (string | string[])[] = [];
    let recordsFromHeader: number | undefined;
    let countSent = false;
    // A 204 carries no Content-Length (RFC 9110 §8.6): one the upstream sent anyway is not passed on.
    const noLength = statusCode === 204;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || HOP_BY_HOP_NAMES.has(name) || listed?.includes(name) || (noLength && name === 'content-length')) continue;
      if (name === recordHeader) {
        recordsFromHeader = parseRecordHeader(value);
        countSent = true;
        continue;
      }
      const gauge = gaugeByHeader?.get(name);
      if (gauge !== undefined) {
        const level = parseRecordHeader(value);
        if (level !== undefined && this.identity.plan.meters[gauge]?.kind === 'gauge') rt.usage.gauge(this.identity.account.id, gauge, level, rt.clock());
        continue;
      }
      out.push(name, value);
    }
    for (const name in this.rateLimitHeaders) out.push(name, this.rateLimitHeaders[name] as string);
    // The client's body is not all in: its connection cannot carry another request.
    if (bodyStillComing(this.request.raw)) closeAfterBody(this.request.raw, this.res, out);
    this.head = { statusMessage, headers: out, recordHeader, countSent, records: recordsFromHeader };
    // An event stream's head goes at once: its client waits on it for the connection to
    // open, and its first event may be long in coming.
    const type = headers['content-type'];
    if (typeof type === 'string' && isEventStream(type) && this.sendHead(controller, 'early')) this.res.flushHeaders();
  }

  /**
   * Writes the answer's head (once its body begins, or ends empty) and settles what is
   * settled on it: everything but records counted in the body, which are settled at its end.
   */
  private sendHead(controller: Dispatcher.DispatchController, at: HeadSentAt): boolean {
    const head = this.head;
    if (head === null) return true;
    this.head = null;
    const { rt } = this.upstream;
    const statusCode = this.status;
    const records = this.route.cost?.records;
    const ok = statusCode >= 200 && statusCode < 300;
    // While keygate stops, the answer closes its connection: its client opens the next one
    // elsewhere before the listener closes (a load balancer too). Decided as the head is
    // written, so that a request pipelined behind it meanwhile is not dropped unanswered.
    if (rt.stopping && this.request.raw.complete && lastOnItsConnection(this.request.raw, this.reply.raw.socket)) head.headers.push('connection', 'close');
    try {
      // The upstream's reason phrase too (an API's own status, 244 say, has none in Node's
      // table), when it is plain ASCII: Node refuses to send anything else (undici reads the
      // phrase as UTF-8), and a phrase is not worth the answer.
      if (head.statusMessage && isPlainReason(head.statusMessage)) this.res.writeHead(statusCode, head.statusMessage, head.headers as unknown as string[]);
      else this.res.writeHead(statusCode, head.headers as unknown as string[]);
    } catch (error) {
      // A header Node will not send (an invalid character, say): the upstream's fault. Nothing
      // was written: the client gets a 502.
      rt.log.warn({ ...this.logContext(), error: { message: (error as Error).message } }, 'upstream response has a header that cannot be sent');
      // writeHead may have taken the upstream's reason phrase before it refused: not for the 502.
      (this.res as { statusMessage?: string }).statusMessage = undefined;
      controller.abort(error as Error);
      return false;
    }
    this.headSent = true;
    this.reply.hijack();
    if (this.countsJson && ok) this.counter = new JsonRecordCounter((records as { json: string }).json);
    else if (head.records !== undefined && ok && this.request.method !== 'HEAD') this.headerRecords = head.records;
    else if (head.recordHeader && ok && this.request.method !== 'HEAD') {
      // No count read (no header, or one that holds no count). An answer without a body (a
      // 204, a 205, an empty 200) delivered no records: none charged, as where records are
      // counted in the body. One with a body is charged the estimate. An event stream's head
      // goes before its body: whether it has one is known later.
      if (at === 'end') this.settleBodiless(head.countSent);
      else if (at === 'early') this.uncounted = head.countSent ? 'unreadable' : 'missing';
      else this.settleUncounted();
    } else this.settle(statusCode, head.records);
    return true;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.head !== null && !this.sendHead(controller, 'body')) return;
    this.counter?.write(chunk);
    this.bodySent = true;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(controller: Dispatcher.DispatchController): void {
    // An answer over is no longer aborted by undici: a head that cannot be sent is failed here.
    if (this.head !== null && !this.sendHead(controller, 'end')) {
      this.onResponseError(controller, new Error('upstream response has a header that cannot be sent'));
      return;
    }
    this.done = true;
    this.givePlaceBack();
    if (this.counter) {
      // No body at all (a 204, an empty 200) delivered no records: none charged. A body that
      // cannot be counted may have delivered some: charged what was reserved, below.
      const records = this.bodySent ? this.counter.end() : 0;
      this.counter = null;
      if (records === undefined) this.upstream.rt.log.warn(this.logContext(), 'could not count records in the upstream response; charged the reserved estimate');
      this.settle(this.status, records);
    } else if (this.headerRecords !== undefined) this.settle(this.status, this.headerRecords);
    else if (this.uncounted !== undefined) {
      if (this.bodySent) this.settleUncounted();
      else this.settleBodiless(this.uncounted === 'unreadable');
    }
    this.res.end();
    this.upstream.hooks.onFinished(this.request, this.status);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    if (this.done) return;
    // A 204 or 304 has no body whatever its Content-Length says (RFC 9110 §6.4.1), but undici
    // fails one whose length is not 0 once its head is in: that head is the whole answer.
    if (this.head !== null && (this.status === 204 || this.status === 304) && (error as { code?: string }).code === LENGTH_MISMATCH) {
      this.onResponseEnd(controller);
      return;
    }
    this.done = true;
    this.givePlaceBack();
    // A head that arrived without its body is dropped: the client is told as if none had come.
    this.head = null;
    this.settleCut(false);
    const { rt, hooks } = this.upstream;
    if (this.clientLeft) {
      hooks.onFinished(this.request, this.headSent ? this.status : undefined);
      return;
    }
    if (this.headSent) {
      // Part of the answer is on its way: the client can only be told by a cut connection.
      rt.log.warn({ ...this.logContext(), error: { message: error.message, code: (error as { code?: string }).code } }, 'upstream response failed midway');
      this.res.destroy();
      hooks.onFinished(this.request, this.status);
      return;
    }
    const code = (error as { code?: string }).code;
    this.upstream.logFailure((more) => {
      // What the error means for upstream.url ("wrong version number": it is http://), as keygate check says it.
      const hint = upstreamFailureHint(this.upstream.url, code, error.message);
      rt.log.warn({ ...this.logContext(), error: { message: error.message, code }, upstream: this.upstream.redactedUrl, ...(hint === undefined ? {} : { hint }), ...more }, 'upstream request failed');
    });
    if (code !== undefined && TIMEOUT_CODES.has(code)) hooks.onUpstreamError(this.request, this.reply, deny('upstream_timeout'), this.identity, 'upstream_timeout');
    else hooks.onUpstreamError(this.request, this.reply, upstreamUnavailable(rt), this.identity, 'upstream_unavailable');
  }

  /** Which request, key and account a warning is about, and the route it matched. */
  private logContext(): { reqId: string; key: string; account: string; route: string } {
    return { reqId: this.request.id, key: this.identity.key.id, account: this.identity.account.id, route: this.route.path };
  }

  /** The client's connection closed; unless the exchange is over, the client left. */
  clientGone(): void {
    if (this.done || this.res.writableFinished) return;
    this.clientLeft = true;
    this.settleCut(true);
    // Still waiting for a connection: nothing can be aborted until it has one (then it is),
    // but the account's place is free now.
    if (this.controller === null) this.givePlaceBack();
    this.controller?.abort(new Error('the client went away'));
  }

  /** Counts this exchange among its account's requests in flight (unless its client has left). */
  takePlace(): void {
    if (this.clientLeft) return;
    this.place = 'taken';
    this.inFlight.count += 1;
  }

  /** Gives the account's place back, once. */
  private givePlaceBack(): void {
    if (this.place !== 'taken') return;
    this.place = 'given back';
    this.inFlight.count -= 1;
  }

  /**
   * The exchange ended before the answer did. Where no body reached the client, or nothing
   * is counted from it, the reservation is released. The records of a counted answer that
   * reached the client are charged (a client could otherwise read an export and hang up
   * before its end). Where the count lies further on (a total at the end), a client that
   * hung up after part of the body is charged the estimate; an upstream that failed, nothing.
   * Records a header counted are charged to a client that hung up after part of the body,
   * and not when the upstream cut it (the client did not get them all).
   */
  private settleCut(byClient: boolean): void {
    // An event stream without a count, cut after some of its body: the estimate, as one with a body is charged.
    if (this.uncounted !== undefined && this.bodySent) {
      this.settleUncounted();
      return;
    }
    if (!this.bodySent || (!this.counter && this.headerRecords === undefined)) {
      this.settle(0, undefined);
      return;
    }
    if (this.counter) this.settle(this.status, this.counter.sofar() ?? (byClient ? undefined : 0));
    else this.settle(this.status, byClient ? this.headerRecords : 0);
  }

  /** A 2xx whose records could not be counted from its header: charged what was reserved, said in the log. */
  private settleUncounted(): void {
    if (this.settled) return;
    const header = this.route.cost?.records;
    this.upstream.rt.log.warn({ ...this.logContext(), header: header && 'header' in header ? header.header.toLowerCase() : undefined }, 'upstream sent no record count; charged the reserved estimate');
    this.settle(this.status, undefined);
  }

  /**
   * A 2xx without a body whose records were to be counted from a header: it delivered no
   * records, none charged. A header that held no count is said in the log (an upstream
   * that means to send one), as for an answer with a body.
   */
  private settleBodiless(unreadable: boolean): void {
    if (this.settled) return;
    if (unreadable) {
      const header = this.route.cost?.records;
      this.upstream.rt.log.warn({ ...this.logContext(), header: header && 'header' in header ? header.header.toLowerCase() : undefined }, 'upstream sent no record count; its answer has no body: charged no records');
    }
    this.settle(this.status, 0);
  }

  private settle(status: number, records: number | undefined): void {
    if (this.settled) return;
    this.settled = true;
    const { rt, hooks } = this.upstream;
    void settleCharge(rt, this.identity.account.id, this.request.method, this.route, this.reservation, status, records, hooks.onCharged);
  }
}

/**
 * The function that lists a request's identity headers. The profile's own names (the
 * default five, with the prefix) get the list written out as it always was: no per-request
 * work for names that are the same on every request. Any other choice of names gets a
 * list built by field, those left out skipped.
 */
function identityHeaderList(names: Record<IdentityField, string | undefined>): (identity: Identity) => string[] {
  const { account, key, mode, scopes, plan, accountName } = names;
  if (account !== undefined && key !== undefined && mode !== undefined && scopes !== undefined && plan !== undefined && accountName === undefined) {
    return (identity) => [account, identity.account.id, key, identity.key.id, mode, identity.key.mode, scopes, scopesHeader(identity.key.scopes, identity.plan.scopes), plan, identity.planId];
  }
  return (identity) => {
    const out: string[] = [];
    if (account !== undefined) out.push(account, identity.account.id);
    if (key !== undefined) out.push(key, identity.key.id);
    if (mode !== undefined) out.push(mode, identity.key.mode);
    if (scopes !== undefined) out.push(scopes, scopesHeader(identity.key.scopes, identity.plan.scopes));
    if (plan !== undefined) out.push(plan, identity.planId);
    if (accountName !== undefined) out.push(accountName, accountNameValue(identity.account.name));
    return out;
  };
}

/**
 * The scopes the upstream is told of: the key's, within what its plan allows now (as the
 * pipeline judged them): a plan changed to fewer scopes narrows the keys made before.
 */
export function scopesHeader(keyScopes: readonly string[], planScopes: readonly string[] | undefined): string {
  if (planScopes === undefined || planScopes.includes('*')) return keyScopes.join(' ');
  if (keyScopes.includes('*')) return planScopes.join(' ');
  return keyScopes.filter((scope) => planScopes.includes(scope)).join(' ');
}

const HOP_BY_HOP_NAMES = new Set(HOP_BY_HOP);
/** undici's error for an answer whose body is not as long as its Content-Length said. */
const LENGTH_MISMATCH = 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH';

/** The media type of server-sent events (its parameters may follow). */
const EVENT_STREAM = 'text/event-stream';

/** Whether a Content-Type names an event stream, in any case (RFC 9110 §8.3.1), with or without parameters. */
function isEventStream(type: string): boolean {
  const n = EVENT_STREAM.length;
  // Most answers are something else, which their first letter tells without a copy.
  if (type.length < n || (type.charCodeAt(0) | 0x20) !== 0x74) return false;
  if (!type.startsWith(EVENT_STREAM) && type.slice(0, n).toLowerCase() !== EVENT_STREAM) return false;
  if (type.length === n) return true;
  // Parameters follow (`; charset=utf-8`), or the type is another one (`text/event-streams`).
  const next = type.charCodeAt(n);
  return next === 0x3b || next === 0x20 || next === 0x09; // `;`, space, tab
}
/** A reason phrase Node will send as it is. */
const PLAIN_REASON = /^[\t\x20-\x7e]+$/;
/** The last reason phrase found plain (never empty). */
let lastPlainReason: string | undefined;

/** Whether Node will send `phrase` as it is; an upstream repeats its phrases, so the last plain one is not tested again. */
function isPlainReason(phrase: string): boolean {
  if (phrase === lastPlainReason) return true;
  if (!PLAIN_REASON.test(phrase)) return false;
  lastPlainReason = phrase;
  return true;
}
const EXCHANGE = Symbol('keygate exchange');
type ExchangeResponse = ServerResponse & { [EXCHANGE]?: Exchange };

function onResponseClose(this: ExchangeResponse): void {
  this[EXCHANGE]?.clientGone();
}

/**
 * The header names a `Connection` header lists besides the usual values (hop-by-hop too).
 * The usual values, which name no other header, are compared as they are: each value
 * arrives as a new string, which a Set would hash first.
 */
function listedInConnection(value: string | string[] | undefined): string[] | undefined {
  if (typeof value !== 'string' || value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'Close') return undefined;
  return value.toLowerCase().split(',').map((name) => name.trim());
}
