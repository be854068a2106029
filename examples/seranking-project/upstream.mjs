/**
 * A small stand-in for the SE Ranking project API (api4.seranking.com) behind keygate:
 * projects ("sites") owned by accounts. It trusts the identity headers keygate adds (it
 * listens on loopback only); another account's site does not exist for the caller (404).
 *
 *   GET    /sites          the account's sites
 *   POST   /sites          {"url": "http://example.com", "title": "example1"} → 201 {"site_id": 147696}
 *   GET    /sites/:id      one site
 *   DELETE /sites/:id      delete it
 *
 * Bodies are JSON whatever the Content-Type says (the document's curl sends JSON with
 * curl's default form content type). Errors use the API's {"message": ...} envelope.
 * keygate must never forward the caller's credential: a request that still carries an
 * Authorization header or a token parameter is answered with 500.
 *
 * Data lives in memory: a restart starts empty (site ids start at 147696 again).
 *
 *   node upstream.mjs [port]        (default 8133, as keygate.yaml expects)
 */
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { readJson } from '../support/read-json.mjs';

export const DEFAULT_PORT = 8133;
export const FIRST_SITE_ID = 147696;
const ACCOUNT_HEADER = 'x-keygate-account';
const MAX_BODY = 64 * 1024;

export function createUpstream() {
  /** @type {Map<number, {id: number, account: string, url: string, title: string, created: string}>} */
  const sites = new Map();
  let nextId = FIRST_SITE_ID;
  const out = (s) => ({ id: s.id, url: s.url, title: s.title, created: s.created });

  return createServer((req, res) => {
    const send = (status, body) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, text ? { 'content-type': 'application/json' } : {});
      res.end(text);
    };
    const url = new URL(req.url ?? '/', 'http://upstream');
    if (req.headers.authorization !== undefined || url.searchParams.has('token')) {
      return send(500, { message: 'Server error: keygate forwarded the credential' });
    }
    const account = req.headers[ACCOUNT_HEADER];
    if (typeof account !== 'string' || account === '') return send(403, { message: 'No token' });
    const path = url.pathname.replace(/\/+$/, '');

    if (path === '/sites') {
      if (req.method === 'GET') return send(200, [...sites.values()].filter((s) => s.account === account).map(out));
      if (req.method === 'POST') {
        readJson(req, MAX_BODY).then(
          (body) => {
            const siteUrl = typeof body?.url === 'string' ? body.url.trim() : '';
            if (!/^https?:\/\/[^\s/]+/.test(siteUrl)) return send(400, { message: 'Bad Request' });
            const site = { id: nextId++, account, url: siteUrl, title: typeof body.title === 'string' ? body.title : siteUrl, created: new Date().toISOString().slice(0, 10) };
            sites.set(site.id, site);
            send(201, { site_id: site.id });
          },
          () => send(400, { message: 'Bad Request' }),
        );
        return undefined;
      }
      return send(405, { message: 'Method Not Allowed' });
    }
    const m = /^\/sites\/(\d+)$/.exec(path);
    if (m) {
      const site = sites.get(Number(m[1]));
      if (!site || site.account !== account) return send(404, { message: 'Not Found' });
      if (req.method === 'GET') return send(200, out(site));
      if (req.method === 'DELETE') {
        sites.delete(site.id);
        return send(204);
      }
      return send(405, { message: 'Method Not Allowed' });
    }
    return send(404, { message: 'Not Found' });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[2] ?? DEFAULT_PORT);
  createUpstream().listen(port, '127.0.0.1', () => console.log(`seranking-project upstream on http://127.0.0.1:${port}`));
}
