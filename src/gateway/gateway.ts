/**
 * The gateway listener: every request under the base path goes through the pipeline;
 * admitted ones are answered by a built-in endpoint or forwarded upstream (steps 8–9),
 * refused ones get the dialect's error. Nothing a client sends can produce a 500 with a
 * stack trace or crash the process.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { listenerOptions } from '../fastify-options.js';
import type { Runtime } from '../runtime.js';
import type { Denial } from '../denial/reasons.js';
import { deny } from '../denial/reasons.js';
import type { Decision, GatewayRequest } from '../pipeline/pipeline.js';
import type { Identity } from '../pipeline/identity.js';
import { withoutCredentialParams } from '../auth/credential.js';
import { REDACTED } from '../log.js';
import type { Metrics } from '../metrics.js';
import { renderBuiltin } from './builtins.js';
import { isCanonicalPath } from './request-path.js';
import { registerProxy, type Forwarding } from './proxy.js';

/** What the access log and metrics need to know about one request. */
export interface RequestRecord {
  startedAt: number;
  outcome: 'forwarded' | 'builtin' | 'denied';
  reason?: string;
  keyId?: string;
  accountId?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    keygate: RequestRecord | null;
  }
}

export interface GatewayOptions {
  metrics?: Metrics;
}

export async function buildGateway(rt: Runtime, options: GatewayOptions = {}): Promise<FastifyInstance> {
  const { config, dialect, pipeline, usage, log } = rt;
  const app = Fastify({
    ...listenerOptions(log, 'gateway'),
    exposeHeadRoutes: false,
    // Errors Fastify meets before routing (an undecodable URL, say) are the client's.
    // They skip the request hooks, so they are logged here.
    frameworkErrors: (_error, request, reply) => {
      send(request, reply, deny('bad_request'));
      finish(request, reply.statusCode);
    },
    // Requests Node's HTTP parser refuses (headers over 16 KB, bytes that are not HTTP)
    // still get an answer in the API's envelope.
    clientErrorHandler: (error: NodeJS.ErrnoException, socket: Socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
      const status = tooLarge ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const rendered = tooLarge
        ? dialect.renderMessage(431, 'headers_too_large', 'Request headers are too large.')
        : status === 408
          ? dialect.renderMessage(408, 'request_timeout', 'The request took too long to arrive.')
          : dialect.render(deny('bad_request'));
      if (socket.writable) {
        const body = Buffer.from(rendered.body);
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${rendered.headers['content-type']}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        );
        socket.write(body);
      }
      socket.destroy();
    },
  });
  app.decorateRequest('keygate', null);
  // A child logger per request costs more than the checks themselves (pino rebuilds its
  // redaction for each child); access log lines carry the request id explicitly instead.
  app.setChildLoggerFactory((logger) => logger);

  // Bodies are not parsed: they stream to the upstream untouched.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  const forward: Forwarding = await registerProxy(app, rt, {
    onSettled: (_request, units, meter) => {
      if (units > 0 && meter) options.metrics?.units.inc({ meter }, units);
    },
    onUpstreamError: (request, reply, denial, identity) => send(request, reply, denial, identity),
  });

  const basePath = config.basePath.replace(/\/$/, '');
  const underBase = (path: string) => basePath === '' || path === basePath || path.startsWith(`${basePath}/`);

  function send(request: FastifyRequest, reply: FastifyReply, denial: Denial, identity?: Identity): FastifyReply {
    // Errors met before routing arrive here before the handler has started a record.
    const record = (request.keygate ??= { startedAt: performance.now(), outcome: 'denied' });
    record.outcome = 'denied';
    record.reason = denial.reason;
    if (identity) {
      record.keyId = identity.key.id;
      record.accountId = identity.account.id;
      usage.add(identity.account.id, rt.clock(), 'denials', denial.reason);
    }
    const rendered = dialect.render(denial);
    return reply.code(rendered.status).headers(rendered.headers).send(rendered.body);
  }

  async function handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const record: RequestRecord = { startedAt: performance.now(), outcome: 'denied' };
    request.keygate = record;
    const url = request.raw.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    // What is matched must be what is forwarded: no `\`, `.` or `..` tricks.
    if (!isCanonicalPath(path)) return send(request, reply, deny('bad_request'));
    if (!underBase(path)) return send(request, reply, deny('no_route'));

    const gatewayRequest: GatewayRequest = { method: request.method, path, url, headers: request.headers };
    const decision: Decision = await pipeline.authorize(gatewayRequest);
    if (!decision.allowed) return send(request, reply, decision.denial, decision.identity);

    const { identity, route } = decision;
    record.keyId = identity.key.id;
    record.accountId = identity.account.id;
    usage.touch(identity.key.id, rt.clock());
    reply.headers(decision.headers);

    if (route.kind === 'builtin') {
      record.outcome = 'builtin';
      usage.add(identity.account.id, rt.clock(), 'requests', '2xx');
      const body = await renderBuiltin(rt, route.builtin, identity);
      return reply.code(route.builtin.status).header('content-type', 'application/json; charset=utf-8').send(body);
    }
    record.outcome = 'forwarded';
    return forward(request, reply, decision.identity, route.route, decision.reservation);
  }

  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url: '/*', handler: handle });
  app.setNotFoundHandler((request, reply) => send(request, reply, deny('no_route')));
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err: error, path: redactedTarget(rt, request.raw.url) }, 'gateway error');
      return send(request, reply, deny('service_unavailable'));
    }
    // Bad URL encoding, path traversal, unreadable body...: the client's mistake.
    return send(request, reply, deny('bad_request'));
  });

  app.addHook('onResponse', (request, reply, done) => {
    finish(request, reply.statusCode);
    done();
  });

  /** Metrics, the daily request counter and the access log line, once per request. */
  function finish(request: FastifyRequest, status: number): void {
    const record = request.keygate;
    if (!record) return;
    const ms = performance.now() - record.startedAt;
    const outcome = record.outcome;
    options.metrics?.requests.inc({ outcome, reason: record.reason ?? '' });
    options.metrics?.duration.observe({ outcome }, ms / 1000);
    if (record.accountId && outcome === 'forwarded') usage.add(record.accountId, rt.clock(), 'requests', `${Math.floor(status / 100)}xx`);
    if (!config.log.requests) return;
    request.log.info(
      {
        reqId: request.id,
        method: request.method,
        target: redactedTarget(rt, request.raw.url),
        status,
        ms: Math.round(ms * 10) / 10,
        outcome,
        ...(record.reason ? { reason: record.reason } : {}),
        ...(record.keyId ? { key: record.keyId } : {}),
        ...(record.accountId ? { account: record.accountId } : {}),
      },
      'request',
    );
  }

  return app;
}

/** The request target as it may appear in logs: credential parameters replaced. */
export function redactedTarget(rt: Pick<Runtime, 'config'>, url: string | undefined): string {
  return withoutCredentialParams(url ?? '/', rt.config.auth.credentials, REDACTED);
}
