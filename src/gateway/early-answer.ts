/**
 * An answer sent before its request's body is all in: a 401 on an upload, an upstream's
 * early 413. Left to Node, the connection is kept open and the rest of the body read and
 * dropped, however long it is (bounded only by the listener's `requestTimeout`, 5
 * minutes on the gateway); and where the answer says `Connection: close`, Node closes at
 * once, while the client is still sending, so that its system answers the next bytes with
 * a reset that wipes the answer before the client has read it.
 *
 * So such an answer says `Connection: close` (a client that sees it stops sending, as RFC
 * 9112 asks), and the connection then closes as nginx's lingering close does: keygate's
 * side is closed once the answer is written, the rest of the body is still read and
 * dropped, and the connection is closed once the body is in, the client has closed its
 * side, or LINGER_MS have passed, by when the client has read its answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** How long the rest of a body already answered is read, at most, before the connection is closed. */
export const LINGER_MS = 5_000;

/** Whether the request comes with a body, by its head. */
export function hasBody({ headers }: IncomingMessage): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Whether the request has a body that is not all in yet. */
export function bodyStillComing(request: IncomingMessage): boolean {
  return !request.complete && hasBody(request);
}

/**
 * Has the answer close its connection after a linger: it says `Connection: close`, set
 * here on `response` (before its head is written) or, with `headers`, added to the list
 * the caller writes.
 */
export function closeAfterBody(request: IncomingMessage, response: ServerResponse, headers?: (string | string[])[]): void {
  if (headers) headers.push('connection', 'close');
  else response.setHeader('connection', 'close');
  lingerOnClose(request, response.socket);
}

/**
 * Node closes a connection whose answer said `Connection: close` by calling the socket's
 * `destroySoon()` once the answer is written (an undocumented method, which its HTTP
 * server has called there since its first versions). On this socket that call lingers
 * instead; a second one (a drain's) closes it as before.
 */
function lingerOnClose(request: IncomingMessage, socket: Socket | null): void {
  if (socket === null || Object.hasOwn(socket, 'destroySoon')) return;
  const destroySoon = socket.destroySoon;
  socket.destroySoon = () => {
    socket.destroySoon = destroySoon;
    // Done: the rest was in before the answer was written.
    if (request.complete) return socket.destroySoon();
    socket.end();
    const close = () => {
      clearTimeout(timer);
      socket.destroySoon();
    };
    const timer = setTimeout(close, LINGER_MS);
    timer.unref();
    request.once('end', close);
    socket.once('close', () => clearTimeout(timer));
    // Node reads and drops the rest only when nothing took the body: an upstream that
    // answered early may have stopped reading it.
    request.resume();
  };
}
