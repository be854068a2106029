/** Options every keygate listener shares: our logger, no per-request noise, lenient routing. */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify';
import type { Log } from './log.js';

/** What every listener has, with or without a Fastify logger. */
export const LISTENER_OPTIONS = {
  requestIdHeader: false,
  return503OnClosing: true,
  routerOptions: { maxParamLength: 2048, ignoreTrailingSlash: true },
} as const satisfies FastifyServerOptions;

export function listenerOptions(log: Log, component: string): FastifyServerOptions & { loggerInstance: FastifyBaseLogger } {
  return {
    ...LISTENER_OPTIONS,
    loggerInstance: log.child({ component }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  };
}

/**
 * The status of a request Node's HTTP parser refused (Fastify's `clientErrorHandler`):
 * headers over the limit 431, a request that took too long 408, anything else 400.
 * Undefined when there is no one left to answer (the client reset the connection).
 */
export function clientErrorStatus(error: NodeJS.ErrnoException, socket: Socket): 400 | 408 | 431 | undefined {
  if (error.code === 'ECONNRESET' || socket.destroyed) return undefined;
  return error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
}

/**
 * Writes a whole answer on a connection Node's parser has given up on, and closes it.
 * `headers`: more header lines, each ending in CRLF.
 */
export function answerRawAndClose(socket: Socket, status: number, contentType: string, body: string, headers = ''): void {
  // A client that resets the connection meanwhile must not become an uncaught error (a
  // socket handed to a 'connect' listener has no error listener of Node's any more).
  if (socket.listenerCount('error') === 0) socket.on('error', ignore);
  if (socket.writable) {
    const bytes = Buffer.from(body);
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: ${contentType}\r\nContent-Length: ${bytes.length}\r\n${headers}Connection: close\r\n\r\n`);
    socket.write(bytes);
  }
  // What was written goes out first; the client's own close is not awaited.
  socket.destroySoon();
}

function ignore(): void {}
