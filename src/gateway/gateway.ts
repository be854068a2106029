/**
 * The gateway listener: every request under the base path goes through the pipeline;
 * admitted ones are answered by a built-in endpoint or forwarded upstream (steps 8–9),
 * refused ones get the dialect's error. Nothing a client sends can produce a 500 with a
 * stack trace or crash the process.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
// Node's global `performance` is a getter that runs on every read; the module's export is the object itself.
import { performance } from 'node:perf_hooks';
import { answerExpectAndConnect, badHost, clientErrorHandlerFor, LISTENER_OPTIONS, refuseNoHostOurselves, type NodeRefusal, type RawAnswer } from '../fastify-options.js';
import type { Runtime } from '../runtime.js';
import type { Denial } from '../denial/reasons.js';
import type { RenderedError } from '../dialect/dialect.js';
import { deny } from '../denial/reasons.js';
import { refusedKeyOwner, type Decision, type GatewayRequest } from '../pipeline/pipeline.js';
import type { Identity } from '../pipeline/identity.js';
import { CLIENT_CLOSED, type Metrics, type Outcome } from '../metrics.js';
import { renderBuiltin } from './builtins.js';
import { judgeTarget, normalBasePath, type Target } from './request-path.js';
import { AWAITS_CONTINUE, createForwarder, type AwaitingRequest } from './forward.js';
import { lastOnItsConnection } from '../http-internals.js';
import { statusClass } from '../usage/usage-recorder.js';
import { redactedTarget } from './redacted-target.js';
import { oncePer, requestLogOf, type Log } from '../log.js';
import { keyUnderOtherScheme, misplacedKey, type MisplacedKey } from '../auth/misplaced-key.js';
import type { CredentialLocation } from '../config/schema.js';
import { ROUTE_METHODS } from '../routes/route-table.js';
import { keepTickObjectShape } from '../tick-shape.js';
import { clientAddress, trustedProxyCheck } from './trusted-proxies.js';
import { DRAINING_RETRY_AFTER_S, OUTAGE_RETRY_AFTER_S, storeState } from '../operations/health.js';
import { CountersUnavailableError } from '../counters/counters.js';
import { bodyStillComing, closeAfterBody } from './early-answer.js';
import { KeyMemo } from '../keys/key-memo.js';

/** What the access log and metrics need to know about one request (every field set up front: one shape). */
export class RequestRecord {
  readonly startedAt = performance.now();
  outcome: Outcome = 'denied';
  reason: string | undefined = undefined;
  keyId: string | undefined = undefined;
  accountId: string | undefined = undefined;
  /** When the pipeline admitted the request (the runtime clock's ms): its usage counts on that day. */
  admittedAt: number | undefined = undefined;
  /**
   * Only while request lines are logged (log.requests): when the request was handed to the
   * upstream pool (performance.now()), then the ms until the upstream's answer's head came.
   * Left unset otherwise: no clock is read for them.
   */
  forwardedAt: number | undefined = undefined;
  upstreamMs: number | undefined = undefined;
  /**
   * The address the request came from, read as it arrives: undici, streaming the body
   * upstream, clears the request's `socket` when it destroys it (the upstream failed, or
   * the client left).
   */
  constructor(readonly peer: string | undefined) {}
}

declare module 'fastify' {
  interface FastifyRequest {
    keygate: RequestRecord | null;
  }
}

export interface GatewayOptions {
  metrics?: Metrics;
  /** Where request lines go (default: the runtime's log): `serve` gives its log without the process fields, which `reqId` carries. */
  requestLog?: Log;
}

/** The one transfer coding keygate forwards (Node has decoded it already). */
const ONLY_CHUNKED = /^[ \t]*chunked[ \t]*$/i;
/** Fastify's error for a request body whose Content-Type is no media type. */
const INVALID_MEDIA_TYPE = 'FST_ERR_CTP_INVALID_MEDIA_TYPE';

/**
 * A connection's peer address, kept on its socket as it opens: a request reads it from
 * there instead of through `socket.remoteAddress`, a getter that costs a few hundred
 * instructions a time (Node keeps the address once read: the value is the same).
 */
const PEER = Symbol('keygate: peer address');
/** The last key a connection presented, and its digest (see KeyMemo): one per connection. */
const KEY_MEMO = Symbol('keygate: last key presented');
type PeerSocket = Socket & { [PEER]?: string; [KEY_MEMO]?: KeyMemo };

/** The address a request came from (undefined once its connection has gone without one read). */
function peerOf(socket: PeerSocket): string | undefined {
  return socket[PEER] ?? socket.remoteAddress;
}

/**
 * How often, at most, the log says that keys were sent in one place the profile does not
 * read (a client repeats its mistake with every request), for each of the first
 * MISPLACED_KEY_PLACES places told; any others share one such limit.
 */
const MISPLACED_KEY_LOG_INTERVAL_MS = 1_000;
const MISPLACED_KEY_PLACES = 32;

/** A place a key is sent, as the log's message says it: `the header X-API-Key`, `the cookie api_key`, `?token=<key>`. */
function placeOf(place: MisplacedKey | CredentialLocation, reads: boolean): string {
  if (place.in === 'cookie') return place.name === '' ? 'a cookie without a name' : `the cookie ${place.name}`;
  if (place.in === 'query') return reads ? `?${place.name}=<key>` : place.name === '' ? 'a query parameter without a name (?<key>)' : `the query parameter ${place.name}`;
  if (!reads || !('scheme' in place)) return `the header ${place.name}`;
  return place.scheme.toLowerCase() === 'none' ? `${place.name}: <key>` : `${place.name}: ${place.scheme} <key>`;
}

/** The reason the metrics give a request Node's parser or keygate's listener refused before routing. */
const NODE_REFUSAL_REASONS: Record<NodeRefusal, string> = {
  400: 'bad_request',
  408: 'request_timeout',
  414: 'uri_too_long',
  417: 'expectation_failed',
  431: 'headers_too_large',
};

export async function buildGateway(rt: Runtime, options: GatewayOptions = {}): Promise<FastifyInstance> {
  // `config` is kept for what only a restart changes (basePath); the dialect, the pipeline
  // and the reloadable settings are read from `rt` per request, as a reload replaces them.
  const { config, usage } = rt;
  const log = rt.log.child({ component: 'gateway' });
  /** The access log's lines, one per request (`finish`): fields of keygate's own only, so not run through redaction paths. */
  const requestLog = requestLogOf(options.requestLog ?? rt.log, { component: 'gateway' });
  const { metrics } = options;
  // Keeps every nextTick of the process off V8's slow path (see tick-shape.ts); the CLI
  // and the library's entry point have asked already, when they loaded.
  keepTickObjectShape();
  const app = Fastify({
    ...LISTENER_OPTIONS,
    // Larger heads are answered 414 (in the request line) or 431 in the envelope here, not by the upstream after keygate added its headers.
    http: { maxHeaderSize: config.listen.maxHeaderSize },
    // No logger for Fastify itself: with one it does work on every request (a child
    // logger, response listeners) even with request logging off. The gateway writes its
    // own lines through `log`, once per request, in `finish`.
    logger: false,
    exposeHeadRoutes: false,
    // Requests that arrive while keygate stops are refused by `handle`, in the dialect
    // (Fastify's own 503 is not in the API's envelope).
    return503OnClosing: false,
    // Errors Fastify meets before routing (an undecodable URL, say) are the client's.
    frameworkErrors: (_error, request, reply) => {
      send(request, reply, deny('bad_request'));
    },
    // Requests Node's HTTP parser refuses (headers over `listen.maxHeaderSize`, bytes that are not HTTP)
    // still get an answer in the API's envelope.
    clientErrorHandler: clientErrorHandlerFor(nodeRefusal),
  });

  /** The envelope's answer to what Node would answer bare (counted as a refusal: it has no record, nor a log line). */
  function nodeRefusal(status: NodeRefusal): RawAnswer {
    const rendered = renderNodeRefusal(status);
    metrics?.request('denied', NODE_REFUSAL_REASONS[status], 0, rendered.status);
    // Sent with the refusal's own status, so with the profile's reason phrase only where that status is the one it names.
    return {
      ...(rendered.reasonPhrase === undefined || status !== rendered.status ? {} : { reasonPhrase: rendered.reasonPhrase }),
      contentType: rendered.headers['content-type'] as string,
      body: rendered.body,
    };
  }

  function renderNodeRefusal(status: NodeRefusal): RenderedError {
    const { dialect } = rt;
    switch (status) {
      case 414:
        return dialect.renderMessage(414, 'uri_too_long', 'The request URL is too long.');
      case 431:
        return dialect.renderMessage(431, 'headers_too_large', 'Request headers are too large.');
      case 408:
        return dialect.renderMessage(408, 'request_timeout', 'The request took too long to arrive.');
      case 417:
        return dialect.renderMessage(417, 'expectation_failed', 'Only "Expect: 100-continue" is supported.');
      case 400:
        return dialect.render(deny('bad_request'));
    }
  }

  app.decorateRequest('keygate', null);

  // What Node would answer itself, with an empty body, is answered in the envelope; CONNECT
  // comes to `handle` as other methods no route takes do. A request without Host
  // (HTTP/1.1 requires one) or with two: refused in `handle`.
  refuseNoHostOurselves(app.server);
  answerExpectAndConnect(app.server, nodeRefusal);
  // Node answers `Expect: 100-continue` at once, before any key is read, and a client that
  // is then refused has sent its body for nothing. keygate tells a request to continue
  // only once it forwards it; Node ends the connection after an answer sent without it
  // (the body may follow, or not).
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    (req as AwaitingRequest)[AWAITS_CONTINUE] = true;
    app.server.emit('request', req, res);
  });
  // Node keeps only the first thousand or so header lines and drops the rest without a word:
  // a key sent after them would be "missing". The head's size (listen.maxHeaderSize) is
  // the limit instead.
  app.server.maxHeadersCount = 0;
  app.server.on('connection', (socket: PeerSocket) => {
    socket[PEER] = socket.remoteAddress;
    socket[KEY_MEMO] = new KeyMemo();
  });

  // Bodies are not parsed: they stream to the upstream untouched.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  const forwarder = createForwarder(rt, {
    onCharged: (units, meter) => metrics?.units(meter, units),
    onUpstreamError: (request, reply, denial, identity, failure) => send(request, reply, denial, identity, 'upstream_error', failure),
    onRefused: (request, reply, denial, identity) => send(request, reply, denial, identity),
    onFinished: (request, status) => finish(request, status ?? CLIENT_CLOSED),
  });
  app.addHook('onClose', async () => forwarder.close());
  const accountBusy = forwarder.accountBusy;

  /** Set once keygate begins to stop: what arrives from then on is refused. */
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });

  const basePath = normalBasePath(config.basePath);
  const fromTrustedProxy = trustedProxyCheck(config.trustedProxies);

  /**
   * The last path judged good, and the judgement: clients repeat their requests, and
   * `judgeTarget` depends on the target and the settings alone (basePath is fixed until a
   * restart), so the same target is compared rather than judged again. Only a path without
   * a query is kept: a query may hold a credential, which is never compared as a string.
   */
  let lastJudged: { rawUrl: string; caseSensitive: boolean; target: Target } | undefined;
  function judged(rawUrl: string, caseSensitive: boolean): Target {
    const last = lastJudged;
    if (last !== undefined && last.rawUrl === rawUrl && last.caseSensitive === caseSensitive) return last.target;
    const target = judgeTarget(rawUrl, basePath, caseSensitive);
    if (target.ok && target.path === rawUrl) lastJudged = { rawUrl, caseSensitive, target };
    return target;
  }

  /**
   * Answers with the dialect's rendering of a denial: a refusal, or (`upstream_error`) an
   * admitted request whose upstream failed, which the account's usage counts as a request
   * answered 5xx, not as a refusal. The log line and metrics name `logReason` (by
   * default the denial's): a 503 says there whether keygate was stopping or failed.
   */
  function send(request: FastifyRequest, reply: FastifyReply, denial: Denial, identity?: Identity, outcome: 'denied' | 'upstream_error' = 'denied', logReason: string = denial.reason): FastifyReply {
    // Errors met before routing arrive here before the handler has started a record.
    const record = (request.keygate ??= new RequestRecord(request.raw.socket?.remoteAddress));
    record.outcome = outcome;
    record.reason = logReason;
    const rendered = rt.dialect.render(denial);
    if (identity) {
      record.keyId = identity.key.id;
      record.accountId = identity.account.id;
      if (outcome === 'denied') usage.add(identity.account.id, rt.clock(), 'denials', denial.reason);
      else usage.add(identity.account.id, rt.clock(), 'requests', statusClass(rendered.status));
    }
    const answer = () => {
      // As bytes: Fastify adds "; charset=utf-8" to a string's JSON Content-Type, and the
      // profile may name one without (errors.contentType).
      // The API's own reason phrase ("503 Service unavailable"), where the profile gives one: Node sends it as set.
      if (rendered.reasonPhrase !== undefined) reply.raw.statusMessage = rendered.reasonPhrase;
      reply.code(rendered.status).headers(rendered.headers).send(Buffer.from(rendered.body));
      finish(request, rendered.status);
    };
    const bodyComing = bodyStillComing(request.raw);
    if (!rt.stopping && !bodyComing) {
      answer();
      return reply;
    }
    // Decided once Node's parser has read what came with the request's head: a request
    // pipelined behind it is known then, and a body sent with the head is in after the
    // I/O phase in which it was read (Node's parser reads it after the request's event).
    const later = bodyComing ? setImmediate : queueMicrotask;
    later(() => {
      if (reply.sent) return;
      try {
        // While keygate stops (its readiness delay), a refusal closes its connection too, as
        // forwarded answers do: its client's next request goes to another process; one
        // pipelined behind it is answered before the connection closes, not dropped.
        if (rt.stopping && lastOnItsConnection(request.raw, reply.raw.socket)) reply.header('connection', 'close');
        // An upload refused before its body is in (src/gateway/early-answer.ts).
        if (bodyStillComing(request.raw)) closeAfterBody(request.raw, reply.raw);
        answer();
      } catch (error) {
        // Out of any handler's reach here: not thrown on (it would end the process); the connection is cut instead.
        log.error({ err: error, reqId: request.id }, 'gateway error while answering');
        reply.raw.destroy();
      }
    });
    return reply;
  }

  /** Answers a refusal that is no pipeline denial (a 501, say), already rendered in the envelope. */
  function sendMessage(request: FastifyRequest, reply: FastifyReply, rendered: RenderedError, reason: string): void {
    const record = request.keygate as RequestRecord;
    record.reason = reason;
    if (bodyStillComing(request.raw)) closeAfterBody(request.raw, reply.raw);
    reply.code(rendered.status).headers(rendered.headers).send(Buffer.from(rendered.body));
    finish(request, rendered.status);
  }

  /**
   * Not an async function: Fastify would then wait on the reply as a thenable. The
   * answer is sent by `respond`, by the forwarder, or by `fail`.
   */
  function handle(request: FastifyRequest, reply: FastifyReply): void {
    request.keygate = new RequestRecord(peerOf(request.raw.socket));
    if (closing) {
      reply.header('connection', 'close');
      // Another process (or this one, restarted) can take it again at once.
      send(request, reply, deny('service_unavailable', { retryAfterSeconds: DRAINING_RETRY_AFTER_S }), undefined, 'denied', 'stopping');
      return;
    }
    // HTTP/1.0 and 1.1 only: Node's parser also takes a bare `GET /path` line (0.9, no
    // headers at all) and a text "HTTP/2.0", neither of which a client sends.
    if (request.raw.httpVersionMajor !== 1 || badHost(request.raw)) {
      reply.header('connection', 'close');
      send(request, reply, deny('bad_request'));
      return;
    }
    // A body coded other than in chunks (`gzip, chunked`) would reach the upstream unlabelled:
    // keygate forwards the decoded chunks only (RFC 9112 §6.1: 501 for a coding it does not know).
    // Node's header object itself: Fastify's `request.headers` is a getter that returns it.
    const headers = request.raw.headers;
    const coding = headers['transfer-encoding'];
    if (coding !== undefined && !ONLY_CHUNKED.test(coding)) {
      reply.header('connection', 'close');
      sendMessage(request, reply, rt.dialect.renderMessage(501, 'not_implemented', 'Only "Transfer-Encoding: chunked" is supported.'), 'not_implemented');
      return;
    }
    // What is matched must be what is forwarded: no `\`, `.` or `..` tricks.
    // basePath is compared as routes are matched (upstream.caseSensitivePaths, reloadable).
    const target = judged(request.raw.url ?? '/', rt.config.upstream.caseSensitivePaths);
    // The absolute form is judged, logged and forwarded as its path and query.
    if (target.url !== request.raw.url) request.raw.url = target.url;
    if (!target.ok) {
      send(request, reply, deny(target.reason));
      return;
    }
    // And its host is the request's, whatever Host says (RFC 9112 §3.2.2): the upstream's
    // X-Forwarded-Host. Not from a trusted load balancer, whose Host (the one it checked and
    // routed by) stands.
    if (target.authority !== undefined && fromTrustedProxy?.(request.keygate.peer ?? '') !== true) request.raw.headers.host = target.authority;
    const { url, path } = target;
    const gatewayRequest: GatewayRequest = { method: request.method, path, url, headers, rawHeaders: request.raw.rawHeaders, accountBusy, keyMemo: (request.raw.socket as PeerSocket)[KEY_MEMO], peer: request.keygate.peer };
    const decision = rt.pipeline.authorize(gatewayRequest);
    if (decision instanceof Promise) {
      decision.then((settled) => respond(request, reply, settled)).catch((error: unknown) => fail(request, reply, error));
    } else {
      respond(request, reply, decision);
    }
  }

  /** Limits on how often each place a key was sent instead is told of (see tellOfMisplacedKey). */
  const misplacedKeyLines = new Map<string, ReturnType<typeof oncePer>>();
  const otherMisplacedKeyLines = oncePer(MISPLACED_KEY_LOG_INTERVAL_MS);
  /** The line's limit for one place a key was sent (the first MISPLACED_KEY_PLACES places each their own, the rest one between them). */
  function misplacedKeyLine(place: string): ReturnType<typeof oncePer> {
    let once = misplacedKeyLines.get(place);
    if (once === undefined && misplacedKeyLines.size < MISPLACED_KEY_PLACES) misplacedKeyLines.set(place, (once = oncePer(MISPLACED_KEY_LOG_INTERVAL_MS)));
    return once ?? otherMisplacedKeyLines;
  }

  /**
   * A request refused `missing_key` that holds a key elsewhere (`X-API-Key`, `?api_key=`):
   * one line says where it was sent and where this API reads keys, never the key. Its
   * answer is the one any request without a key gets (the API's own).
   */
  function tellOfMisplacedKey(request: FastifyRequest): void {
    const found = misplacedKey({ url: request.raw.url ?? '/', rawHeaders: request.raw.rawHeaders }, rt.keyFormat);
    if (found === undefined) return;
    const place = `${found.in} ${found.name.toLowerCase()}`;
    const readFrom = rt.config.auth.credentials;
    const client = clientAddress((request.keygate as RequestRecord).peer, request.raw.headers['x-forwarded-for'], fromTrustedProxy);
    misplacedKeyLine(place)((more) =>
      log.info(
        { reqId: request.id, client, sentIn: found, readFrom, ...more },
        `missing_key: a key was sent in ${placeOf(found, false)}, which this API does not read; it reads keys from ${readFrom.map((location) => placeOf(location, true)).join(', or ')}`,
      ),
    );
  }

  /**
   * A request refused `malformed_key` whose header holds a key of this format under another
   * scheme (`Token <key>` where `Bearer` goes, a bare key): its answer says the key is
   * invalid, as the API's does; one line says which scheme came and where this API reads
   * keys, never the key.
   */
  function tellOfOtherScheme(request: FastifyRequest): void {
    const readFrom = rt.config.auth.credentials;
    const found = keyUnderOtherScheme(request.raw.rawHeaders, readFrom, rt.keyFormat);
    if (found === undefined) return;
    const place = `${found.quoted ? 'quoted' : 'scheme'} ${found.name.toLowerCase()} ${found.scheme.toLowerCase()}`;
    const client = clientAddress((request.keygate as RequestRecord).peer, request.raw.headers['x-forwarded-for'], fromTrustedProxy);
    const sent = found.quoted
      ? `in quotes in the header ${found.name}${found.scheme === '' ? '' : ` after the scheme ${found.scheme}`}`
      : found.scheme === '' ? `bare (no scheme) in the header ${found.name}` : `in the header ${found.name} after the scheme ${found.scheme}`;
    misplacedKeyLine(place)((more) =>
      log.info(
        { reqId: request.id, client, sentAs: found, readFrom, ...more },
        `malformed_key: a key was sent ${sent}; this API reads keys from ${readFrom.map((location) => placeOf(location, true)).join(', or ')}${found.quoted ? ', without quotes' : ''}`,
      ),
    );
  }

  function respond(request: FastifyRequest, reply: FastifyReply, decision: Decision): void {
    if (!decision.allowed) {
      if (decision.denial.reason === 'missing_key') tellOfMisplacedKey(request);
      else if (decision.denial.reason === 'malformed_key') tellOfOtherScheme(request);
      if (decision.key) {
        // Which key (and whose) is still in use although refused, for the log.
        const record = request.keygate as RequestRecord;
        const { id, accountId } = decision.key;
        record.keyId = id;
        record.accountId = accountId ?? undefined;
        const owner = refusedKeyOwner(decision);
        if (owner !== undefined) usage.add(owner, rt.clock(), 'denials', decision.denial.reason);
      }
      send(request, reply, decision.denial, decision.identity);
      return;
    }
    const { identity, route } = decision;
    const record = request.keygate as RequestRecord;
    record.keyId = identity.key.id;
    record.accountId = identity.account.id;
    record.admittedAt = decision.at;
    usage.touch(identity.key.id, identity.account.id, decision.at);

    if (route.kind === 'builtin') {
      record.outcome = 'builtin';
      usage.add(identity.account.id, decision.at, 'requests', '2xx');
      renderBuiltin(rt, route.builtin, identity)
        .then((body) => {
          // While keygate stops (its readiness delay), the answer closes its connection: the
          // client opens its next one elsewhere. Forwarded answers and refusals (`send`) do the same.
          if (rt.stopping && lastOnItsConnection(request.raw, reply.raw.socket)) reply.header('connection', 'close');
          reply.code(route.builtin.status).headers(decision.headers).header('content-type', route.builtin.contentType).send(Buffer.from(body));
          finish(request, route.builtin.status);
        })
        .catch((error: unknown) => fail(request, reply, error));
      return;
    }
    record.outcome = 'forwarded';
    forwarder.forward(request, reply, identity, route.route, decision.reservation, decision.headers);
  }

  /**
   * Something broke on the way to an answer (a built-in reading the store, say): logged,
   * and the client gets a 503 in the dialect. The log line and metrics say which: a
   * backend away (`service_unavailable`, as the pipeline says it) or keygate's own fault
   * (`internal_error`).
   */
  function fail(request: FastifyRequest, reply: FastifyReply, error: unknown): void {
    backendAway(error).then((away) => {
      log.error({ err: error, reqId: request.id, target: redactedTarget(rt, request.raw.url), ...(away ? { backendAway: true } : {}) }, 'gateway error');
      if (reply.sent || reply.raw.headersSent) return;
      // Headers set for the answer that failed (one Node refused to send, say) go with it.
      for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
      try {
        const denial = deny('service_unavailable', { retryAfterSeconds: OUTAGE_RETRY_AFTER_S });
        send(request, reply, denial, undefined, 'denied', away ? denial.reason : 'internal_error');
      } catch (again) {
        // Not even the 503 could be sent: the connection is cut rather than left waiting.
        log.error({ err: again, reqId: request.id }, 'gateway error while answering');
        reply.raw.destroy();
      }
    }).catch(() => reply.raw.destroy());
  }

  /** The store's ping in flight, shared by the failures that arrive meanwhile (a store in trouble is not asked once per request). */
  let storePing: Promise<boolean> | undefined;
  /**
   * Whether an error came of a backend that is away: Redis (so the counters said), or a
   * store that does not answer a ping now (within a second; a healthy one answers in
   * milliseconds).
   */
  function backendAway(error: unknown): Promise<boolean> {
    if (error instanceof CountersUnavailableError) return Promise.resolve(true);
    storePing ??= storeState(rt).then(
      (state) => state === 'unreachable',
      () => true,
    ).finally(() => {
      storePing = undefined;
    });
    return storePing;
  }

  app.route({ method: [...ROUTE_METHODS], url: '/*', handler: handle });
  // A method keygate forwards on no route (TRACE, PROPFIND, CONNECT, ...) goes through the pipeline
  // like any other: the key first (a caller without one learns nothing of the routes), then
  // 405 with the methods the path takes, or no_route.
  app.setNotFoundHandler(handle);
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    // Fastify refuses a body whose Content-Type is no media type (`json`, an empty one) before
    // the handler runs, key unread; keygate reads no body: the pipeline judges the request as
    // any other, and the upstream its body.
    if (error.code === INVALID_MEDIA_TYPE) {
      handle(request, reply);
      return reply;
    }
    // Bad URL encoding, an unreadable body...: the client's mistake. Anything else is ours.
    if ((error.statusCode ?? 500) < 500) return send(request, reply, deny('bad_request'));
    fail(request, reply, error);
    return reply;
  });

  /** Metrics, the daily request counter and the access log line: once per request. */
  function finish(request: FastifyRequest, status: number): void {
    const record = request.keygate;
    if (!record) return;
    request.keygate = null;
    const ms = performance.now() - record.startedAt;
    const outcome = record.outcome;
    metrics?.request(outcome, record.reason ?? '', ms / 1000, status);
    if (record.accountId && outcome === 'forwarded') usage.add(record.accountId, record.admittedAt ?? rt.clock(), 'requests', statusClass(status));
    if (!rt.config.log.requests) return;
    requestLog.info(
      {
        reqId: request.id,
        // Behind trusted load balancers, the client they name.
        client: clientAddress(record.peer, request.raw.headers['x-forwarded-for'], fromTrustedProxy),
        method: request.method,
        target: redactedTarget(rt, request.raw.url),
        status,
        ms: Math.round(ms * 10) / 10,
        // Of `ms`, the upstream's part: from forwarding to its answer's head (a forwarded request's).
        upstreamMs: record.upstreamMs === undefined ? undefined : Math.round(record.upstreamMs * 10) / 10,
        outcome,
        // One shape for every line: a field without a value is left out of it (pino writes no undefined).
        reason: record.reason || undefined,
        key: record.keyId || undefined,
        account: record.accountId || undefined,
      },
      'request',
    );
  }

  return app;
}
