/**
 * A connection between requests that keeps sending bytes which begin no request (blank
 * lines, `\r\n` once a second): Node's keep-alive timer starts again on every byte it
 * reads, and its head and request timeouts run only once a request has begun, so such a
 * connection would be held for as long as its client likes. Each listener looks at its
 * connections between requests every so often and closes one that has been between
 * requests for `keepAliveTimeout`, as Node closes a silent one. Only this sweep: no work
 * for each request. (Before a first request, blank lines count as its head: Node answers
 * 408 after `headersTimeout`.)
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { answerInFlight, betweenRequests } from './http-internals.js';

/** How often a listener looks, at most: a connection is closed within two of these past its keep-alive. */
const SWEEP_MS = 5_000;
/** How often at least: a sweep walks every connection between requests. */
const SWEEP_MIN_MS = 100;

/** When a connection was first seen between requests, and what it had written then (an answer since changes it). */
interface IdleSince {
  at: number;
  written: number;
}

/**
 * Closes the connections of `server` that stay between requests past its keepAliveTimeout,
 * however many bytes they send meanwhile. Starts when called; stops when the server closes.
 *
 * @example
 * closeKeptAliveByBlankLines(app.server); // after app.server.keepAliveTimeout is set
 */
export function closeKeptAliveByBlankLines(server: Server): void {
  const seen = new WeakMap<Socket, IdleSince>();
  const sweep = () => {
    const idle = betweenRequests(server);
    // A Node without the list: its own keep-alive timer is all there is.
    if (idle === undefined) return;
    const now = performance.now();
    for (const socket of idle) {
      if (socket === undefined || socket.destroyed) continue;
      // Node counts a request read whole, its answer not yet sent, as between requests too.
      if (answerInFlight(socket)) {
        seen.delete(socket);
        continue;
      }
      const since = seen.get(socket);
      if (since === undefined || since.written !== socket.bytesWritten) seen.set(socket, { at: now, written: socket.bytesWritten });
      else if (now - since.at >= server.keepAliveTimeout) socket.destroySoon();
    }
  };
  const timer = setInterval(sweep, Math.max(SWEEP_MIN_MS, Math.min(SWEEP_MS, server.keepAliveTimeout / 4)));
  timer.unref();
  server.once('close', () => clearInterval(timer));
}
