/**
 * A plain node:http upstream for gateway tests. It records what it received and can
 * answer with any status, slowly, with N records, or by streaming.
 *
 *   /status/<code>[?reason=<text>]  answers that status (with that reason phrase)
 *   /slow?ms=<n>          answers after n ms
 *   /held?id=<id>[&status=<code>]  answers (200, or that status) once the test calls release(id)
 *   /records?n=<n>        {"data":[...n items]} and X-Record-Count: n (gzipped when the request accepts gzip)
 *   /records-held?n=<n>&id=<id>  the first half of {"data":[...n items]}, the rest once the test calls release(id)
 *   /headers-held?id=<id>[&fail=1]  a 200's headers at once; on release(id) its body {"data":[1]}, or (fail) a cut connection
 *   /events-held?id=<id>[&type=<content type>]  a text/event-stream head at once; on release(id) one event and the end
 *   /count-header?n=<n>   X-Record-Count: n with a tiny body
 *   /empty?status=<code>[&chunked][&type=<content type>][&count=<text>]  that status with no body (its Content-Length 0, or chunked), with X-Record-Count: <text> if given
 *   /reported-total?total=<text>  {"meta":{"total":<text>},"data":[]}, the text written as it is (`1e20` stays `1e20`)
 *   /count-header-held?n=<n>&id=<id>[&fail=1]  X-Record-Count: n and the first half of a body; the rest on release(id), or (fail) a cut connection
 *   /stream?chunks=<n>    n chunks, 20 ms apart
 *   /hop                  200 with hop-by-hop headers of its own (Keep-Alive, one named by Connection)
 *   /big?mb=<n>           n MB of a repeating pattern, written as fast as the socket takes it
 *   /cookies              200 with two Set-Cookie headers
 *   anything else         200 with {method, url, headers, body} echoed
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface TestUpstream {
  url: string;
  received: Received[];
  /** serve's start-up try (HEAD / with User-Agent: keygate-serve), kept apart: not a request the gateway forwarded. */
  tried: Received[];
  /** Requests whose connection closed before the upstream answered them. */
  abandoned: Received[];
  /** Answers the /held request with this id (now, or as soon as it arrives). */
  release(id: string): void;
  close(): Promise<void>;
}

export async function startTestUpstream(): Promise<TestUpstream> {
  const received: Received[] = [];
  const tried: Received[] = [];
  const abandoned: Received[] = [];
  const held = new Map<string, () => void>();
  const released = new Set<string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      if (req.headers['user-agent'] === 'keygate-serve') {
        tried.push(entry);
        res.end();
        return;
      }
      received.push(entry);
      res.once('close', () => {
        if (!res.writableFinished) abandoned.push(entry);
      });
      const url = new URL(req.url ?? '/', 'http://upstream');
      const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(value));
      };
      const status = /\/status\/(\d{3})$/.exec(url.pathname);
      if (status) {
        const reason = url.searchParams.get('reason');
        if (reason !== null) res.statusMessage = reason;
        return json(Number(status[1]), { status: Number(status[1]) });
      }
      if (url.pathname.endsWith('/slow')) {
        setTimeout(() => json(200, { slow: true }), Number(url.searchParams.get('ms') ?? 1000));
        return;
      }
      if (url.pathname.endsWith('/held')) {
        const id = url.searchParams.get('id') ?? '';
        const answer = () => json(Number(url.searchParams.get('status') ?? 200), { held: id });
        if (released.delete(id)) answer();
        else held.set(id, answer);
        return;
      }
      if (url.pathname.endsWith('/events-held')) {
        res.writeHead(200, { 'content-type': url.searchParams.get('type') ?? 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
        res.flushHeaders();
        const id = url.searchParams.get('id') ?? '';
        const rest = () => res.end('data: 1\n\n');
        if (released.delete(id)) rest();
        else held.set(id, rest);
        return;
      }
      if (url.pathname.endsWith('/headers-held')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        const id = url.searchParams.get('id') ?? '';
        const rest = () => (url.searchParams.get('fail') ? res.destroy() : res.end('{"data":[1]}'));
        if (released.delete(id)) rest();
        else held.set(id, rest);
        return;
      }
      if (url.pathname.endsWith('/records-held')) {
        const n = Number(url.searchParams.get('n') ?? 0);
        const text = JSON.stringify({ data: Array.from({ length: n }, (_, i) => ({ id: i + 1 })) });
        const id = url.searchParams.get('id') ?? '';
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(text.slice(0, text.length / 2));
        const rest = () => res.end(text.slice(text.length / 2));
        if (released.delete(id)) rest();
        else held.set(id, rest);
        return;
      }
      if (url.pathname.endsWith('/records')) {
        const n = Number(url.searchParams.get('n') ?? 0);
        const body = { data: Array.from({ length: n }, (_, i) => ({ id: i + 1 })) };
        if (!String(req.headers['accept-encoding'] ?? '').includes('gzip')) return json(200, body, { 'x-record-count': String(n) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(gzipSync(JSON.stringify(body)));
        return;
      }
      if (url.pathname.endsWith('/count-header-held')) {
        const id = url.searchParams.get('id') ?? '';
        res.writeHead(200, { 'content-type': 'application/json', 'x-record-count': url.searchParams.get('n') ?? '0' });
        res.write('{"data":[');
        const rest = () => (url.searchParams.get('fail') ? res.destroy() : res.end('1]}'));
        if (released.delete(id)) rest();
        else held.set(id, rest);
        return;
      }
      // An answer with no body: `status` (a 204, a 200), its length said (0) or, `chunked`, not; `type` its content type (JSON by default).
      if (url.pathname.endsWith('/empty')) {
        const count = url.searchParams.get('count');
        res.writeHead(Number(url.searchParams.get('status') ?? 200), { 'content-type': url.searchParams.get('type') ?? 'application/json', ...(count === null ? {} : { 'x-record-count': count }) });
        if (url.searchParams.has('chunked')) res.flushHeaders();
        res.end();
        return;
      }
      if (url.pathname.endsWith('/count-header')) return json(200, { ok: true }, { 'x-record-count': url.searchParams.get('n') ?? '0' });
      if (url.pathname.endsWith('/reported-total')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"meta":{"total":${url.searchParams.get('total') ?? '0'}},"data":[]}`);
        return;
      }
      if (url.pathname.endsWith('/big')) {
        const chunk = Buffer.alloc(64 * 1024, 'abcdefghijklmnopqrstuvwxyz0123456789');
        let left = Number(url.searchParams.get('mb') ?? 1) * 16;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left * chunk.length) });
        const pump = () => {
          while (left > 0) {
            left -= 1;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      if (url.pathname.endsWith('/cookies')) {
        res.writeHead(200, [['content-type', 'text/plain'], ['set-cookie', 'a=1; Path=/'], ['set-cookie', 'b=2; Path=/']].flat());
        res.end('cookies');
        return;
      }
      if (url.pathname.endsWith('/hop')) {
        res.writeHead(200, { 'content-type': 'text/plain', connection: 'keep-alive, X-Upstream-Private', 'keep-alive': 'timeout=5', 'x-upstream-private': 'hop', 'x-kept': 'yes' });
        res.end('hop');
        return;
      }
      if (url.pathname.endsWith('/stream')) {
        const n = Number(url.searchParams.get('chunks') ?? 3);
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const timer = setInterval(() => {
          res.write(`chunk ${++i}\n`);
          if (i >= n) {
            clearInterval(timer);
            res.end();
          }
        }, 20);
        return;
      }
      return json(200, entry);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    tried,
    abandoned,
    release(id) {
      const answer = held.get(id);
      if (!held.delete(id)) return void released.add(id);
      answer?.();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
