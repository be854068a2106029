/**
 * Forwarding (step 8) and settling (step 9), on @fastify/reply-from over an undici
 * keep-alive pool. The credential is removed (header and query parameter), identity
 * headers are added (and any the client sent are dropped), hop-by-hop headers are
 * dropped, bodies stream both ways. A 2xx commits the route's cost — per-record costs
 * counted from a response header or the JSON body — anything else releases it.
 */
import replyFrom from '@fastify/reply-from';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Runtime } from '../runtime.js';
import type { Route } from '../config/schema.js';
import type { Identity } from '../pipeline/identity.js';
import type { Reservation } from '../counters/counters.js';
import { deny, type Denial } from '../denial/reasons.js';
import { credentialHeaderNames, withoutCredentialParams } from '../auth/credential.js';
import { countRecords, parseRecordHeader } from '../meters/cost.js';
import { settleCharge } from '../pipeline/settle.js';
import { redactUrl } from '../store/open.js';

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1). */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
const HOP_BY_HOP_NAMES = new Set(HOP_BY_HOP);
/** How long idle upstream connections are kept for reuse. */
const UPSTREAM_KEEP_ALIVE_MS = 60_000;
/** Largest JSON body buffered to count records. */
const MAX_COUNTED_BODY = 64 * 1024 * 1024;

export type Forwarding = (
  request: FastifyRequest,
  reply: FastifyReply,
  identity: Identity,
  route: Route,
  reservation: Reservation | undefined,
) => FastifyReply;

export interface ProxyHooks {
  onSettled(request: FastifyRequest, units: number, meter: string | undefined): void;
  onUpstreamError(request: FastifyRequest, reply: FastifyReply, denial: Denial, identity: Identity): void;
}

/** The header names a `Connection` header lists (they are hop-by-hop too). */
function listedInConnection(value: string | string[] | undefined): string[] {
  return typeof value === 'string' ? value.toLowerCase().split(',').map((name) => name.trim()) : [];
}

export async function registerProxy(app: FastifyInstance, rt: Runtime, hooks: ProxyHooks): Promise<Forwarding> {
  const { config, log } = rt;
  await app.register(replyFrom, {
    base: config.upstream.url,
    undici: { connections: config.upstream.connections, pipelining: 1, keepAliveTimeout: UPSTREAM_KEEP_ALIVE_MS, headersTimeout: config.upstream.timeout, bodyTimeout: config.upstream.timeout },
    disableRequestLogging: true,
  });

  const dropHeaders = new Set([...HOP_BY_HOP, ...credentialHeaderNames(config.auth.credentials)]);
  const identityPrefix = config.identityHeaders.prefix.toLowerCase();
  const identityHeader = {
    account: `${config.identityHeaders.prefix}Account`,
    key: `${config.identityHeaders.prefix}Key`,
    mode: `${config.identityHeaders.prefix}Mode`,
    scopes: `${config.identityHeaders.prefix}Scopes`,
    plan: `${config.identityHeaders.prefix}Plan`,
  };
  /** Response header (lower case) → the gauge meter it reports. */
  const gaugeByHeader = new Map(Object.entries(config.gauges).map(([meter, g]) => [g.header.toLowerCase(), meter]));
  // Built once, not per request.
  const noRetry = () => null;
  const upstreamQuery = (_search: string | undefined, reqUrl: string): string => {
    const stripped = withoutCredentialParams(reqUrl, config.auth.credentials);
    const q = stripped.indexOf('?');
    return q === -1 ? '' : stripped.slice(q + 1);
  };

  return (request, reply, identity, route, reservation) => {
    const recordHeader = route.cost?.records && 'header' in route.cost.records ? route.cost.records.header.toLowerCase() : undefined;
    const recordJson = route.cost?.records && 'json' in route.cost.records ? route.cost.records.json : undefined;
    let recordsFromHeader: number | undefined;
    let settled = false;
    const settle = (status: number, records: number | undefined) => {
      if (settled) return;
      settled = true;
      hooks.onSettled(request, settleCharge(rt, identity.account.id, route, reservation, status, records), route.cost?.meter);
    };
    // A client that hangs up before the answer still releases what it reserved.
    reply.raw.once('close', () => settle(0, undefined));

    return reply.from(undefined, {
      timeout: config.upstream.timeout,
      // Never retry on our own (reply-from retries GETs on 503): the upstream decides.
      retryDelay: noRetry,
      queryString: upstreamQuery,
      rewriteRequestHeaders: (req, headers) => {
        const out: IncomingHttpHeaders = {};
        const listed = listedInConnection(req.headers.connection);
        for (const name of Object.keys(headers)) {
          if (dropHeaders.has(name) || name.startsWith(identityPrefix) || listed.includes(name)) continue;
          out[name] = headers[name];
        }
        out[identityHeader.account] = identity.account.id;
        out[identityHeader.key] = identity.key.id;
        out[identityHeader.mode] = identity.key.mode;
        out[identityHeader.scopes] = identity.key.scopes.join(' ');
        out[identityHeader.plan] = identity.planId;
        const forwardedFor = req.headers['x-forwarded-for'];
        out['x-forwarded-for'] = forwardedFor ? `${forwardedFor}, ${req.ip}` : req.ip;
        out['x-forwarded-proto'] = req.protocol;
        if (req.headers.host) out['x-forwarded-host'] = req.headers.host;
        // Records are counted in the body as sent: it must not come compressed.
        if (recordJson) out['accept-encoding'] = 'identity';
        return out;
      },
      rewriteHeaders: (headers) => {
        // Hop-by-hop headers describe the upstream connection, not the client's; the
        // record count and gauge levels are keygate's. A copy without them: deleting
        // from undici's object would make every later read of it slower.
        const listed = listedInConnection(headers.connection);
        const kept: typeof headers = {};
        for (const name of Object.keys(headers)) {
          if (HOP_BY_HOP_NAMES.has(name) || listed.includes(name)) continue;
          if (name === recordHeader) recordsFromHeader = parseRecordHeader(headers[name]);
          const gauge = gaugeByHeader.get(name);
          if (gauge) {
            const level = parseRecordHeader(headers[name]);
            if (level !== undefined && identity.plan.meters[gauge]?.kind === 'gauge') rt.usage.gauge(identity.account.id, gauge, level, rt.clock());
          }
          if (name !== recordHeader && !gauge) kept[name] = headers[name];
        }
        return kept;
      },
      onResponse: (_request, _reply, res) => {
        const status = res.statusCode;
        const body = res.stream as Readable;
        const ok = status >= 200 && status < 300;
        if (recordJson && ok) {
          readCapped(body, MAX_COUNTED_BODY).then(
            (buffer) => {
              const records = countJsonRecords(buffer, recordJson);
              if (records === undefined) log.warn({ route: route.path }, 'could not count records in the upstream response; charged the reserved estimate');
              settle(status, records);
              reply.send(buffer);
            },
            (error: unknown) => {
              settle(0, undefined);
              log.error({ err: error }, 'upstream response body failed');
              reply.raw.destroy();
            },
          );
          return;
        }
        if (recordHeader && ok && recordsFromHeader === undefined) {
          log.warn({ route: route.path, header: recordHeader }, 'upstream sent no record count; charged the reserved estimate');
        }
        settle(status, recordsFromHeader);
        reply.send(body);
      },
      onError: (_reply, { error }) => {
        settle(0, undefined);
        const timedOut = (error as { statusCode?: number }).statusCode === 504;
        log.warn({ err: { message: error.message, code: (error as { code?: string }).code }, upstream: redactUrl(config.upstream.url) }, 'upstream request failed');
        hooks.onUpstreamError(request, reply, deny(timedOut ? 'upstream_timeout' : 'upstream_unavailable'), identity);
      },
    });
  };
}

function countJsonRecords(body: Buffer, path: string): number | undefined {
  try {
    return countRecords(JSON.parse(body.toString('utf8')), path);
  } catch {
    return undefined;
  }
}

function readCapped(stream: Readable, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        stream.destroy();
        reject(new Error(`upstream JSON body over ${max} bytes cannot be counted`));
        return;
      }
      chunks.push(chunk);
    });
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}
