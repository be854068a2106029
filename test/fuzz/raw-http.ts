/**
 * One HTTP/1.1 request as bytes over a new loopback socket, for the fuzz properties:
 * fetch and undici refuse to send most of what they generate (odd methods, raw unicode
 * in the target, control characters in a header), and a server must answer those too.
 *
 * @example
 * const answer = await exchange(kg.gatewayUrl, { method: 'GET', target: '/v1/domains', headers: [['authorization', key]] });
 * answer.status; // 401
 */
import { connect } from 'node:net';

export interface RawRequest {
  method: string;
  /** The request target as sent: a path and query, or an absolute URL. */
  target: string;
  /** Each header line as sent, in order, names and values as given (UTF-8 bytes). */
  headers?: readonly (readonly [string, string])[];
  body?: string;
}

export interface RawAnswer {
  status: number;
  /** The status line and header lines, as received (latin1). */
  head: string;
  /** Header names lower-cased; the last value of a repeated one. */
  headers: Record<string, string>;
  /** The body, de-chunked, as UTF-8. */
  body: string;
  /** Everything received, for "never sends X back" checks. */
  text: string;
}

/**
 * An answer that does not come is a hang: the property fails with what was sent, rather
 * than the test runner's own time limit ending the whole file.
 */
const NO_ANSWER_MS = 15_000;

/** The request as bytes: `Connection: close` last, so the server ends the exchange. */
export function requestBytes(baseUrl: string, request: RawRequest): Buffer {
  const { host } = new URL(baseUrl);
  const lines = [`${request.method} ${request.target} HTTP/1.1`, `Host: ${host}`];
  for (const [name, value] of request.headers ?? []) lines.push(`${name}: ${value}`);
  if (request.body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(request.body)}`);
  lines.push('Connection: close');
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${request.body ?? ''}`, 'utf8');
}

/** Sends `request` and reads the first answer, up to the server closing the connection. */
export function exchange(baseUrl: string, request: RawRequest): Promise<RawAnswer> {
  return exchangeBytes(baseUrl, requestBytes(baseUrl, request));
}

export function exchangeBytes(baseUrl: string, bytes: Buffer): Promise<RawAnswer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${NO_ANSWER_MS / 1000} s to ${JSON.stringify(bytes.toString('latin1').slice(0, 300))}`));
    }, NO_ANSWER_MS);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // A server that answers before reading all it was sent may reset the connection: what came counts.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const text = all.toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      if (split === -1) return reject(new Error(`no complete answer (received ${JSON.stringify(text.slice(0, 300))}) to ${JSON.stringify(bytes.toString('latin1').slice(0, 300))}`));
      const head = text.slice(0, split);
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const rest = all.subarray(Buffer.byteLength(head, 'latin1') + 4);
      const body = /chunked/i.test(headers['transfer-encoding'] ?? '') ? dechunk(rest) : rest;
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), head, headers, body: body.toString('utf8'), text: all.toString('utf8') });
    });
    socket.write(bytes);
  });
}

function dechunk(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = bytes.indexOf('\r\n', at);
    if (eol === -1) break;
    const size = Number.parseInt(bytes.subarray(at, eol).toString('latin1'), 16);
    if (!size) break;
    parts.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}
