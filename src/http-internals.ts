/**
 * What Node's HTTP server knows about a connection and does not expose: the answer being
 * written on it, the request being read, and which connections are between requests.
 * Each is read the way Node's own code reads it; each degrades to "unknown" (undefined)
 * if a future Node renames it.
 */
import type { Socket } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/**
 * The response being written on a connection, if any. Node keeps it on the socket as
 * `_httpMessage` (and clears it once the response is handed over in full, or hands the
 * socket to the next pipelined response) and exposes nothing public for it.
 */
export function answerInFlight(socket: Socket): ServerResponse | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

/** Runs `then` once no answer is being written on the connection (each pipelined one in turn). */
export function afterAnswers(socket: Socket, then: () => void): void {
  const answer = answerInFlight(socket);
  if (answer) answer.once('close', () => afterAnswers(socket, then));
  else then();
}

/**
 * The request Node's HTTP parser read last on a connection: set once its headers are in,
 * and kept (`complete` once it has been read to its end) until the next one's headers
 * are in. Node keeps the parser on the socket and the request on the parser, and exposes
 * neither.
 */
export function requestBeingRead(socket: Socket): IncomingMessage | undefined {
  return (socket as Socket & { parser?: { incoming?: IncomingMessage | null } | null }).parser?.incoming ?? undefined;
}

/**
 * Whether no later request has arrived on the request's connection (one pipelined
 * behind it): then its answer may close the connection without dropping another, which
 * Node would never answer. True when Node's parser cannot tell (the connection is gone).
 * `socket`: the answer's (`reply.raw.socket`), which the request no longer holds once
 * undici has streamed it upstream as a body and destroyed it.
 */
export function lastOnItsConnection(request: IncomingMessage, socket: Socket | null): boolean {
  return ((socket === null ? undefined : requestBeingRead(socket)) ?? request) === request;
}

/** Node's list of a server's HTTP connections (internal: it exposes no public way to ask). */
const CONNECTIONS_LIST = 'http.server.connections';
interface ConnectionsList {
  /** The parsers of connections that have read at least one request and are not inside another. */
  idle(): { socket?: Socket }[];
}

/**
 * The connections that have read their last request whole and nothing of the next:
 * Node's HTTP parser knows, and its own `closeIdleConnections` asks it the same way. (A
 * connection that has not sent a byte yet is not among them.) Undefined if a future
 * Node drops that list (serve.ts's drain then counts every connection that has read a
 * byte as between requests, and cuts one with half a request's headers in).
 */
export function betweenRequests(server: Server): Set<Socket | undefined> | undefined {
  const key = Object.getOwnPropertySymbols(server).find((symbol) => symbol.description === CONNECTIONS_LIST);
  const list = key && (server as unknown as Record<symbol, ConnectionsList | undefined>)[key];
  if (typeof list?.idle !== 'function') return undefined;
  return new Set(list.idle().map((parser) => parser.socket));
}
