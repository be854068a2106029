/**
 * Case (b): the floor keygate is measured against. The same stack as keygate's gateway
 * (src/gateway/forward.ts): Fastify 5 routing every method and path to one handler,
 * bodies not parsed, and an undici Pool (keygate's pool options) dispatching each
 * request with a handler that streams the answer straight into the client's response,
 * with backpressure. No checks and nothing added: only the headers HTTP itself says a
 * proxy must not pass on (hop-by-hop, Host, Expect) are left out. Like keygate, it stops
 * the upstream request when the client hangs up first (one shared 'close' listener):
 * without that, an answer streamed into a closed response waits for a 'drain' that never
 * comes, and its upstream connection is never given back (after a few rounds of the
 * bench, whose load generator hangs up on the requests in flight when it stops, every
 * connection of the pool was stuck and the proxy answered nothing).
 * It keeps the shape of nextTick's queue entries as keygate's gateway does
 * (src/tick-shape.ts): without it, a process that meets enough full garbage collections
 * runs every nextTick through V8's runtime, and the floor would move with them.
 *
 * Usage (by the runner): node bench/bare-proxy.js <upstream url>
 */
import Fastify from 'fastify';
import { Pool } from 'undici';
import { serveUntilStopped, UNDICI_OPTIONS } from './common.js';
import { keepTickObjectShape } from '../dist/tick-shape.js';

const upstreamUrl = process.argv[2];
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'host', 'expect']);

/** undici's dispatch handler for one request: the answer goes straight to `res`. */
class Exchange {
  constructor(reply) {
    this.reply = reply;
    this.res = reply.raw;
    this.controller = null;
    this.done = false;
    this.res[EXCHANGE] = this;
    this.res.on('close', onResponseClose);
  }

  onRequestStart(controller) {
    this.controller = controller;
    if (this.res.destroyed) controller.abort(new Error('the client went away'));
  }

  onResponseStart(_controller, statusCode, headers) {
    if (statusCode < 200) return;
    const out = [];
    for (const name in headers) if (!HOP_BY_HOP.has(name)) out.push(name, headers[name]);
    this.reply.hijack();
    this.res.writeHead(statusCode, out);
  }

  onResponseData(controller, chunk) {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd() {
    this.done = true;
    this.res.end();
  }

  onResponseError(_controller, error) {
    this.done = true;
    if (this.res.headersSent) this.res.destroy(error);
    else if (!this.res.destroyed) this.reply.code(502).send({ error: 'bad gateway' });
  }

  clientGone() {
    if (this.done || this.res.writableFinished) return;
    this.controller?.abort(new Error('the client went away'));
  }
}

const EXCHANGE = Symbol('bare proxy exchange');

function onResponseClose() {
  this[EXCHANGE]?.clientGone();
}

serveUntilStopped(async () => {
  if (!upstreamUrl) throw new Error('usage: bare-proxy.js <upstream url>');
  keepTickObjectShape();
  const app = Fastify({ logger: false, exposeHeadRoutes: false, requestIdHeader: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  const pool = new Pool(upstreamUrl, UNDICI_OPTIONS);
  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: '/*',
    handler: (request, reply) => {
      const headers = [];
      for (const name in request.headers) if (!NOT_FORWARDED.has(name)) headers.push(name, request.headers[name]);
      pool.dispatch({ path: request.url, method: request.method, headers, body: request.body ?? null }, new Exchange(reply));
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address();
  return {
    info: { url: `http://127.0.0.1:${port}` },
    stop: async () => {
      await app.close();
      await pool.close();
    },
  };
});
