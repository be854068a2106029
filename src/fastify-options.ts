/**
 * What every keygate listener shares: its Fastify options (our logger, no per-request
 * noise, lenient routing), and answers in its own format to what Node's HTTP server
 * would refuse bare or not at all (requests its parser cannot read, an odd `Expect`,
 * a missing or doubled Host), or hand to no route (CONNECT).
 */
import { METHODS, ServerResponse, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { LogController, type FastifyBaseLogger, type FastifyServerOptions } from 'fastify';
import pino from 'pino';
import type { Log } from './log.js';
import { afterAnswers, answerInFlight, requestBeingRead } from './http-internals.js';
import { isRefusedHost } from './host-value.js';
import { PROCESS_TAG } from './process-tag.js';

/**
 * Request ids unique across processes, for logs gathered from many: this process's tag
 * (PROCESS_TAG) and a count shared by its listeners, `Zq3f9A1c-1b`.
 */
let requestCount = 0;

/** What every listener has, with or without a Fastify logger. */
export const LISTENER_OPTIONS = {
  requestIdHeader: false,
  genReqId: () => `${PROCESS_TAG}-${(++requestCount).toString(36)}`,
  return503OnClosing: true,
  routerOptions: { maxParamLength: 2048, ignoreTrailingSlash: true },
} as const satisfies FastifyServerOptions;

export function listenerOptions(log: Log, component: string): FastifyServerOptions & { loggerInstance: FastifyBaseLogger } {
  // Fastify's own info lines ("Server listening at …") say what keygate's start-up line
  // says, ahead of it and of the demo's banner: its logger speaks from warnings up. A
  // log given by the caller may have a level pino does not name, or none: it is kept.
  const levelValue = log.level === undefined ? undefined : pino.levels.values[log.level];
  const options = levelValue !== undefined && levelValue < WARN ? { level: 'warn' } : {};
  return {
    ...LISTENER_OPTIONS,
    loggerInstance: log.child({ component }, options) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  };
}

/** pino's number for `warn`. */
const WARN = pino.levels.values.warn as number;

/**
 * The status of a request Node's HTTP parser refused (Fastify's `clientErrorHandler`):
 * a head over the limit 414 while still in its request line (the URL is too long), 431
 * once in its headers, a request that took too long 408, anything else 400.
 * Undefined when there is no one left to answer (the client reset the connection).
 */
function clientErrorStatus(error: ParserError, socket: Socket): NodeRefusal | 'undecided' | undefined {
  if (error.code === 'ECONNRESET' || socket.destroyed) return undefined;
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    const place = overflowPlace(error);
    return place === undefined ? 'undecided' : place === 'request line' ? 414 : 431;
  }
  return error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
}

/** What Node adds to a parser error: the bytes it was reading (its last chunk) and how far it got in them. */
type ParserError = NodeJS.ErrnoException & { rawPacket?: unknown; bytesParsed?: unknown };

const LF = 0x0a;
/** `GET `, `POST `, …: how a request line begins. */
const REQUEST_LINE_START = new RegExp(`^(?:${METHODS.join('|')}) `);

const CR = 0x0d;
const SP = 0x20;
/** What follows the URL in a request line, after its space. */
const HTTP_VERSION_START = 'HTTP/';

/**
 * Where a head refused as too large was refused: in its request line (the URL is too
 * long) or in its headers; undefined when the bytes Node was parsing cannot tell yet.
 * Node counts the URL and the headers against one limit and says "Header overflow" for
 * both, with the chunk it was parsing (its last read) and where in it it stopped: at the
 * end of the URL or header value that went over, or at the chunk's end if that goes on.
 * - A line break before that point: the line after the last one is the one (a request
 *   line, of a request pipelined behind another, or a header line).
 * - Else, a chunk that begins with a request line holds it.
 * - Else the line began in an earlier read (a URL or a header value split across reads):
 *   what ended it says which, a space followed by `HTTP/` the URL, a line break or
 *   anything else a header. Where it does not end in this chunk: undefined.
 */
function overflowPlace(error: ParserError): 'request line' | 'headers' | undefined {
  const { rawPacket: packet, bytesParsed: at } = error;
  if (!Buffer.isBuffer(packet) || typeof at !== 'number' || at <= 0 || at > packet.length) return 'headers';
  const lineStart = packet.lastIndexOf(LF, at - 1) + 1;
  // A method is at most a few letters: the line's first 16 bytes say whether it is a request line.
  if (REQUEST_LINE_START.test(packet.toString('latin1', lineStart, Math.min(at, lineStart + 16)))) return 'request line';
  if (lineStart > 0) return 'headers';
  // Node stops just past the URL (before its space) or the header value (past its CR).
  return lineEnd(packet, at - 1);
}

/**
 * What ends the line being read, from `from` in `packet` on: the URL (a space, then
 * `HTTP/`) or a header (a line break first, or a space inside a header value);
 * undefined when neither comes in `packet`. A URL holds no space, CR or LF.
 */
function lineEnd(packet: Buffer, from: number): 'request line' | 'headers' | undefined {
  for (let i = Math.max(0, from); i < packet.length; i++) {
    const byte = packet[i];
    if (byte === CR || byte === LF) return 'headers';
    if (byte !== SP) continue;
    // The version may itself come in the next read: a space at the chunk's end says nothing yet.
    const after = packet.toString('latin1', i + 1, i + 1 + HTTP_VERSION_START.length);
    if (after.length < HTTP_VERSION_START.length && HTTP_VERSION_START.startsWith(after)) return undefined;
    return after === HTTP_VERSION_START ? 'request line' : 'headers';
  }
  return undefined;
}

/**
 * How long a head over the limit whose refused line has not ended yet (split across
 * reads) waits for the client's next bytes to say whether it was the URL; then it is
 * answered 431, as one in the headers.
 */
const OVERFLOW_DECIDED_WITHIN_MS = 1_000;

/**
 * Writes a whole answer on a connection Node's parser has given up on, and closes it.
 * `headers`: more header lines, each ending in CRLF; `reasonPhrase`: the status line's, by
 * default the standard one.
 */
export function answerRawAndClose(socket: Socket, status: number, contentType: string, body: string, headers = '', reasonPhrase = STATUS_CODES[status] ?? ''): void {
  // A client that resets the connection meanwhile must not become an uncaught error (a
  // socket handed to a 'connect' listener has no error listener of Node's any more).
  if (socket.listenerCount('error') === 0) socket.on('error', ignore);
  if (socket.writable) {
    const bytes = Buffer.from(body);
    socket.write(`HTTP/1.1 ${status} ${reasonPhrase}\r\nContent-Type: ${contentType}\r\nContent-Length: ${bytes.length}\r\n${headers}Connection: close\r\n\r\n`);
    socket.write(bytes);
  }
  // What was written goes out first; the client's own close is not awaited.
  socket.destroySoon();
}

function ignore(): void {}

/** What Node's HTTP server would answer itself, with an empty body. */
export type NodeRefusal = 400 | 408 | 414 | 417 | 431;

/** A listener's own answer to one: its body, its type and any more headers. */
export interface RawAnswer {
  /** The status line's reason phrase, when not the standard one (a profile's own). */
  reasonPhrase?: string;
  contentType: string;
  body: string;
  headers?: Record<string, string>;
}

/** Headers as raw lines, each ending in CRLF. */
function headerLines(headers: Record<string, string> = {}): string {
  return Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
}

/**
 * Fastify's `clientErrorHandler` for a listener that answers in its own format what Node's
 * HTTP parser refuses (a head over the listener's `maxHeaderSize`: 414 in its request line, 431 in its headers; too slow: 408; not HTTP: 400), and closes
 * the connection. A head that went over the limit in a line split across reads and not
 * ended yet is answered once the client's next bytes end it (within
 * OVERFLOW_DECIDED_WITHIN_MS: else 431). A refusal in the head of a pipelined request waits for the answers
 * before it; one in the body of a request whose answer has begun cuts the connection.
 */
export function clientErrorHandlerFor(answer: (status: NodeRefusal) => RawAnswer): (error: NodeJS.ErrnoException, socket: Socket) => void {
  /** Connections whose parser has failed: Node reports every later chunk again. */
  const refusing = new WeakSet<Socket>();
  /** Connections whose head went over the limit in a line not ended yet: what the next chunk Node reports says. */
  const undecided = new WeakMap<Socket, (error: ParserError) => void>();
  const send = (status: NodeRefusal, socket: Socket) => {
    const { reasonPhrase, contentType, body, headers } = answer(status);
    answerRawAndClose(socket, status, contentType, body, headerLines(headers), reasonPhrase);
  };
  const refuse = (error: NodeJS.ErrnoException, socket: Socket) => {
    const status = clientErrorStatus(error, socket);
    if (status === undefined) return;
    if (status !== 'undecided') {
      send(status, socket);
      return;
    }
    // A URL or header value split across reads: the client's next bytes end it.
    const decide = (place: 'request line' | 'headers') => {
      clearTimeout(timer);
      undecided.delete(socket);
      if (!socket.destroyed) send(place === 'request line' ? 414 : 431, socket);
    };
    const timer = setTimeout(() => decide('headers'), OVERFLOW_DECIDED_WITHIN_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    // The last bytes read are read again with the next ones: a space, then the version's first letters, may end one read.
    const { rawPacket: packet, bytesParsed: at } = error as ParserError;
    let tail = Buffer.isBuffer(packet) && typeof at === 'number' ? packet.subarray(Math.max(0, at - 1, packet.length - HTTP_VERSION_START.length - 1)) : Buffer.alloc(0);
    undecided.set(socket, (later) => {
      if (!Buffer.isBuffer(later.rawPacket)) return decide('headers');
      const bytes = Buffer.concat([tail, later.rawPacket]);
      const place = lineEnd(bytes, 0);
      if (place !== undefined) return decide(place);
      tail = bytes.subarray(Math.max(0, bytes.length - HTTP_VERSION_START.length - 1));
    });
  };
  return (error, socket) => {
    undecided.get(socket)?.(error);
    if (clientErrorStatus(error, socket) === undefined || refusing.has(socket)) return;
    refusing.add(socket);
    const inFlight = answerInFlight(socket);
    const reading = requestBeingRead(socket);
    if (reading && !reading.complete) {
      // In the body of the request being read (or its time ran out). If it has its
      // answer already (an upload refused early) or the answer has begun, a second
      // answer would be garbage on the connection: it is closed.
      if (!inFlight || inFlight.headersSent) socket.destroy();
      else refuse(error, socket);
      return;
    }
    // In the head of a request after others on the connection (pipelined): their
    // answers go out first, then this one's.
    afterAnswers(socket, () => refuse(error, socket));
  };
}

/**
 * Answers in the listener's format what Node would answer bare or not at all: an `Expect`
 * other than 100-continue (417), and CONNECT, which Node hands to no route (it would close
 * the connection without a word). No listener is a tunnel, so no route takes CONNECT: it
 * is handed to the routes as an ordinary request, and answered as any method a path does
 * not take is (the gateway: the key first, then 405 with the methods the path takes in
 * `Allow`, or no_route; the admin API 405 with `Allow`, or 404; the dashboard 404), on a
 * connection closed after the answer (what follows the request's head is a tunnel's).
 */
export function answerExpectAndConnect(server: Server, answer: (status: 417) => RawAnswer): void {
  server.on('checkExpectation', (_request: IncomingMessage, response: ServerResponse) => {
    const { reasonPhrase, contentType, body, headers } = answer(417);
    response.writeHead(417, reasonPhrase, { ...headers, 'content-type': contentType, 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
  });
  server.on('connect', (request: IncomingMessage, socket: Socket) => {
    // Node has let go of the connection: a client that resets it must not become an uncaught error.
    if (socket.listenerCount('error') === 0) socket.on('error', ignore);
    afterAnswers(socket, () => {
      if (socket.destroyed) return;
      const response = new ServerResponse(request);
      // Node's parser reads nothing more on this connection: it closes with the answer.
      response.shouldKeepAlive = false;
      response.assignSocket(socket);
      response.once('finish', () => socket.destroySoon());
      server.emit('request', request, response);
    });
  });
}

/**
 * Node answers an HTTP/1.1 request without Host with an empty 400 unless told not to:
 * each listener refuses it itself (with `badHost`), in its own format.
 */
export function refuseNoHostOurselves(server: Server): void {
  (server as Server & { requireHostHeader: boolean }).requireHostHeader = false;
}


/**
 * An HTTP/1.1 request without Host, any request with two (RFC 9112 §3.2: a server must
 * refuse both; Node keeps the first of several), or with one that is no host.
 */
export function badHost(request: IncomingMessage): boolean {
  const host = request.headers.host;
  if (host === undefined) return request.httpVersion === '1.1';
  return isRefusedHost(host, request.rawHeaders);
}
