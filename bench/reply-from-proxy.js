/**
 * Case (p): a reference, not the floor. The proxy most Fastify users would write for
 * themselves: @fastify/reply-from over undici with keygate's pool options, bodies not
 * parsed, no checks at all. keygate forwarded through reply-from until 2026-11-30; it
 * now has its own dispatch handler (the bare proxy, case (b), is built the same way).
 *
 * Usage (by the runner): node bench/reply-from-proxy.js <upstream url>
 */
import Fastify from 'fastify';
import replyFrom from '@fastify/reply-from';
import { serveUntilStopped, UNDICI_OPTIONS, UPSTREAM_TIMEOUT_MS } from './common.js';

const upstreamUrl = process.argv[2];

serveUntilStopped(async () => {
  if (!upstreamUrl) throw new Error('usage: reply-from-proxy.js <upstream url>');
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
