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
import { actualAmount, countRecords, parseRecordHeader } from '../meters/cost.js';

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1). */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
const HOP_BY_HOP_NAMES = new Set(HOP_BY_HOP);
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
  onUpstreamError(request: FastifyRequest, reply: FastifyReply, denial: Denial): void;
}

export async function registerProxy(app: FastifyInstance, rt: Runtime, hooks: ProxyHooks): Promise<Forwarding> {
  const { config, counters, log } = rt;
  await app.register(replyFrom, {
    base: config.upstream.url,
    undici: { connections: config.upstream.connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: config.upstream.timeout, bodyTimeout: config.upstream.timeout },
    disableRequestLogging: true,
  });

  const dropHeaders = new Set([...HOP_BY_HOP, ...credentialHeaderNames(config.auth.credentials)]);
  const identityPrefix = config.identityHeaders.prefix.toLowerCase();
  // Built once, not per request.
  const noRetry = () => null;
  const upstreamQuery = (_search: string | undefined, reqUrl: string): string => {
    const stripped = withoutCredentialParams(reqUrl, config.auth.credentials);
    const q = stripped.indexOf('?');
    return q === -1 ? '' : stripped.slice(q + 1);
  };
  const identityHeader = {
    account: `${config.identityHeaders.prefix}Account`,
    key: `${config.identityHeaders.prefix}Key`,
    mode: `${config.identityHeaders.prefix}Mode`,
    scopes: `${config.identityHeaders.prefix}Scopes`,
    plan: `${config.identityHeaders.prefix}Plan`,
  };
  const gaugeHeaders = Object.entries(config.gauges).map(([meter, g]) => ({ meter, header: g.header.toLowerCase() }));
  const gaugeHeaderNames = new Set(gaugeHeaders.map((g) => g.header));

  return (request, reply, identity, route, reservation) => {
    const cost = route.cost;
    const recordHeader = cost?.records && 'header' in cost.records ? cost.records.header.toLowerCase() : undefined;
    const recordJson = cost?.records && 'json' in cost.records ? cost.records.json : undefined;
    let recordsFromHeader: number | undefined;
    let settled = false;

    const settle = (status: number, records: number | undefined) => {
      if (settled) return;
      settled = true;
      const units = cost && status >= 200 && status < 300 ? actualAmount(cost, records) : 0;
      if (reservation) {
        counters.settle(reservation, units).catch((error: unknown) => log.error({ err: error }, 'could not settle a reservation'));
      }
      hooks.onSettled(request, units, cost?.meter);
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
        const listed = typeof req.headers.connection === 'string' ? req.headers.connection.toLowerCase().split(',').map((h) => h.trim()) : [];
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
        return out;
      },
      rewriteHeaders: (headers) => {
        // Hop-by-hop headers describe the upstream connection, not the client's.
        const listed = typeof headers.connection === 'string' ? headers.connection.toLowerCase().split(',').map((h) => h.trim()) : [];
        const hopByHop = (name: string) => HOP_BY_HOP_NAMES.has(name) || listed.includes(name);
        // Removed in this order: hop-by-hop, the record count (read first), each gauge (read first).
        if (recordHeader) recordsFromHeader = hopByHop(recordHeader) ? undefined : parseRecordHeader(headers[recordHeader]);
        gaugeHeaders.forEach(({ meter, header }, i) => {
          const gone = hopByHop(header) || header === recordHeader || gaugeHeaders.slice(0, i).some((g) => g.header === header);
          const value = gone ? undefined : parseRecordHeader(headers[header]);
          if (value !== undefined) {
            rt.store
              .setGauge({ accountId: identity.account.id, meter, value, updatedAt: rt.clock() })
              .catch((error: unknown) => log.error({ err: error }, 'could not record a gauge'));
          }
        });
        // A copy without them: deleting from the upstream's object (usually at least
        // `connection` and `keep-alive`) would make it and every later read of it slower.
        const kept: typeof headers = {};
        for (const name of Object.keys(headers)) {
          if (hopByHop(name) || name === recordHeader || gaugeHeaderNames.has(name)) continue;
          kept[name] = headers[name];
        }
        return kept;
      },
      onResponse: (_request, _reply, res) => {
        const status = res.statusCode;
        const body = res.stream as Readable;
        if (recordJson && status >= 200 && status < 300) {
          readCapped(body, MAX_COUNTED_BODY).then(
            (buffer) => {
              let records: number | undefined;
              try {
                records = countRecords(JSON.parse(buffer.toString('utf8')), recordJson);
              } catch {
                records = undefined;
              }
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
        if (recordHeader && status >= 200 && status < 300 && recordsFromHeader === undefined) {
          log.warn({ route: route.path, header: recordHeader }, 'upstream sent no record count; charged the reserved estimate');
        }
        settle(status, recordsFromHeader);
        reply.send(body);
      },
      onError: (_reply, { error }) => {
        settle(0, undefined);
        const timedOut = (error as { statusCode?: number }).statusCode === 504;
        log.warn({ err: { message: error.message, code: (error as { code?: string }).code }, upstream: config.upstream.url }, 'upstream request failed');
        hooks.onUpstreamError(request, reply, deny(timedOut ? 'upstream_timeout' : 'upstream_unavailable'));
      },
    });
  };
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
