/**
 * The admin API's access log: one line per request (`log.adminRequests`), as the gateway
 * has one per request (`log.requests`), by default none for health probes and scrapes
 * answered 200. This listener mints and revokes keys: an operator, or an auditor, asks
 * who called it, from where, and with which token, also for the requests that changed
 * nothing (reads, refusals, 404s), which the audit log does not keep.
 *
 * A line holds keygate's own fields only: the client's address, the method, the target
 * with its credential and secret-named parameters redacted (as the gateway's), the status,
 * the time taken, and which token answered, named by its place in the variable and never
 * by any part of itself. No header and no body: a created key's secret, an invitation
 * link or a password never reaches it; nor does a token a script put in the address.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { redactedTarget } from '../gateway/redacted-target.js';
import { clientAddress, trustedProxyCheck } from '../gateway/trusted-proxies.js';

/**
 * Which token a request came with, as the access log names it: the admin token by its
 * place in `admin.tokenEnv` (`admin token #2` while a new one replaces an old one), a
 * read-only one, none, or one this keygate does not know (`wrong`, also a header that is
 * not `Bearer <token>` or is sent twice).
 */
export type AdminTokenUsed = `admin token #${number}` | 'read-only token' | 'none' | 'wrong';

export const ACCESS_LINE = 'admin request';

/**
 * The address a request came from: the peer's, or behind a proxy in `trustedProxies` the
 * client it names in X-Forwarded-For, as the gateway's and the dashboard's are read.
 */
export function adminClientOf(rt: Runtime): (request: FastifyRequest) => string {
  // trustedProxies is taken at start, as the gateway takes it.
  const trusted = trustedProxyCheck(rt.config.trustedProxies);
  return (request) => clientAddress(request.raw.socket.remoteAddress, request.raw.headers['x-forwarded-for'], trusted);
}

/**
 * The routes that check an API's own requests over HTTP (`POST /v1/check` and its settle):
 * one or two per request a backend answers, so their lines follow `log.requests`, as the
 * gateway's request lines do, and turning request lines off for their volume turns these off too.
 */
const CHECK_ROUTES = new Set(['/v1/check', '/v1/check/:id/settle']);

/**
 * The routes a load balancer's probe and a Prometheus scrape call, every few seconds each:
 * with `log.adminRequests: exceptProbes` (the default) their answers of 200 get no line,
 * which would otherwise be most of the log (a probe every 5 s is 17,280 lines a day).
 */
const PROBE_ROUTES = new Set(['/health', '/health/ready', '/metrics']);

/** Whether a request's line is written under `log.adminRequests` (a check's, see CHECK_ROUTES, is decided apart). */
function logsAdminRequest(setting: Runtime['config']['log']['adminRequests'], request: FastifyRequest, status: number): boolean {
  if (setting !== 'exceptProbes') return setting;
  // A refused scrape (a wrong token) or a probe told 503 is still logged: that is news.
  const probe = (request.method === 'GET' || request.method === 'HEAD') && PROBE_ROUTES.has(request.routeOptions.url ?? '') && status === 200;
  return !probe;
}

/** Writes the line of each request once its answer is sent, refusals and 404s too (not one Node's HTTP parser refused: that never reaches Fastify). */
export function registerAccessLog(app: FastifyInstance, rt: Runtime, clientOf: (request: FastifyRequest) => string): void {
  const log = rt.log.child({ component: 'admin' });
  app.addHook('onResponse', (request, reply, done) => {
    // Read per request: a reload may turn either on or off.
    const { adminRequests, requests } = rt.config.log;
    if (CHECK_ROUTES.has(request.routeOptions.url ?? '') ? requests : logsAdminRequest(adminRequests, request, reply.statusCode)) {
      log.info(
        {
          reqId: request.id,
          client: clientOf(request),
          method: request.method,
          target: redactedTarget(rt, request.raw.url),
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 10) / 10,
          auth: request.adminTokenUsed,
        },
        ACCESS_LINE,
      );
    }
    done();
  });
}
