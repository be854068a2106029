/**
 * Case (a)'s target and every other case's upstream: plain node:http, keep-alive, a
 * small fixed JSON body for any request. Run by the runner as its own process.
 */
import http from 'node:http';
import { serveUntilStopped, UPSTREAM_BODY } from './common.js';

const body = Buffer.from(UPSTREAM_BODY);

serveUntilStopped(async () => {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (request, response) => {
    // Drain any request body before answering.
    request.resume();
    response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
    response.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    info: { url: `http://127.0.0.1:${port}` },
    stop: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
});
