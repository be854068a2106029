/**
 * Case (b): the floor keygate is measured against. The same stack as keygate's gateway
 * (Fastify 5, @fastify/reply-from over undici with keygate's pool options, bodies not
 * parsed) and no checks at all: every request is forwarded as it came.
 *
 * Usage (by the runner): node bench/bare-proxy.js <upstream url>
 */
import Fastify from 'fastify';
import replyFrom from '@fastify/reply-from';
import { serveUntilStopped, UNDICI_OPTIONS, UPSTREAM_TIMEOUT_MS } from './common.js';

const upstreamUrl = process.argv[2];

serveUntilStopped(async () => {
  if (!upstreamUrl) throw new Error('usage: bare-proxy.js <upstream url>');
  const app = Fastify({ logger: false, exposeHeadRoutes: false, requestIdHeader: false });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  await app.register(replyFrom, { base: upstreamUrl, undici: UNDICI_OPTIONS, disableRequestLogging: true });
  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: '/*',
    handler: (_request, reply) => reply.from(undefined, { timeout: UPSTREAM_TIMEOUT_MS, retryDelay: () => null }),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address();
  return { info: { url: `http://127.0.0.1:${port}` }, stop: () => app.close() };
});
